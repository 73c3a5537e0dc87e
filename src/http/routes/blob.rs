//! `GET`/`HEAD /graphs/{id}/blob`: one Blob cell's bytes, whole or one
//! byte range (RFC 9110 §14: `Range: bytes=a-b | a- | -n`, 206 with
//! `Content-Range`, 416 with `Content-Range: bytes */N` and `blob_range`),
//! a strong `ETag` (SHA-256 of the bytes) with `If-None-Match` (304) and
//! `If-Range`, and `Omnigraph-Snapshot-Id` naming the commit read.

use sha2::Digest;

use super::*;

/// A parsed `Range` header against a Blob of `len` bytes: `Ok(None)` to
/// serve it whole (no header, several ranges, or a form this server does
/// not take — RFC 9110 lets a server ignore Range), `Ok(Some((a, b)))` for
/// bytes `a..b`, `Err((start, end))` when unsatisfiable.
fn range_of(header: Option<&str>, len: u64) -> Result<Option<(u64, u64)>, (u64, u64)> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let parse = |s: &str| s.parse::<u64>().ok();
    match (a.is_empty(), b.is_empty()) {
        // `-n`: the last n bytes.
        (true, false) => match parse(b) {
            Some(0) => Err((len, len)),
            Some(n) if len == 0 => Err((0, n)),
            Some(n) => Ok(Some((len.saturating_sub(n), len))),
            None => Ok(None),
        },
        (false, _) => {
            let Some(start) = parse(a) else {
                return Ok(None);
            };
            // The end asked for (exclusive), before clamping to the Blob.
            let end = if b.is_empty() {
                len
            } else {
                match parse(b) {
                    Some(last) if last >= start => last.saturating_add(1),
                    _ => return Ok(None),
                }
            };
            if start >= len {
                return Err((start, end.max(start)));
            }
            Ok(Some((start, end.min(len))))
        }
        (true, true) => Ok(None),
    }
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

#[utoipa::path(get, path = "/graphs/{id}/blob", params(BlobParams), responses((status = 200, description = "The whole Blob (`Accept-Ranges: bytes`, `ETag`, `Omnigraph-Snapshot-Id`)", content_type = "application/octet-stream"), (status = 206, description = "One satisfiable byte range, with `Content-Range`", content_type = "application/octet-stream"), (status = 304, description = "If-None-Match matched the ETag"), (status = 400, body = ErrorOutput, description = "Invalid selector or target, or a property that is not a Blob"), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput, description = "Unknown entity, or a null Blob cell"), (status = 416, body = ErrorOutput, description = "Unsatisfiable range (`Content-Range: bytes */N`, `blob_range`)")), security(("bearer_token" = [])))]
pub(super) async fn blob_get(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    q: Query<BlobParams>,
) -> Res {
    blob(req, state, id, q).await
}

#[utoipa::path(head, path = "/graphs/{id}/blob", params(BlobParams), responses((status = 200, description = "The Blob's headers (`Content-Length`, `ETag`, `Accept-Ranges`), no body"), (status = 206, description = "The headers of one byte range, no body"), (status = 304, description = "If-None-Match matched the ETag"), (status = 400, description = "Invalid selector; HEAD answers have no body"), (status = 401, description = "No or unknown bearer token; no body"), (status = 403, description = "The gate denied `read`; no body"), (status = 404, description = "Unknown entity or a null cell; no body"), (status = 416, description = "Unsatisfiable range (`Content-Range: bytes */N`); no body")), security(("bearer_token" = [])))]
pub(super) async fn blob_head(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    q: Query<BlobParams>,
) -> Res {
    blob(req, state, id, q).await
}

async fn blob(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    q: Query<BlobParams>,
) -> Res {
    let Entered { actor, entry } = enter(&req, &state, &id)?;
    let q = q.into_inner();
    let (at, branch) = read_target(&entry, q.branch, q.snapshot).await?;
    authorize(&entry, &actor, Action::Read, on_branch(&branch))?;
    let op = ops::ReadBlob {
        at,
        kind: q.entity,
        type_name: q.type_name,
        id: q.id,
        property: q.property,
    };
    let cell = ask(&entry, Read(op), STOPPED_READING).await?;
    let len = cell.bytes.len() as u64;
    let etag = format!("\"{:x}\"", sha2::Sha256::digest(&cell.bytes));
    let snapshot = cell.commit.to_string();
    let common = |b: &mut actix_web::HttpResponseBuilder| {
        b.insert_header(("Accept-Ranges", "bytes"))
            .insert_header(("ETag", etag.clone()))
            .insert_header(("Omnigraph-Snapshot-Id", snapshot.clone()));
    };
    if header(&req, "If-None-Match")
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        let mut b = HttpResponse::NotModified();
        common(&mut b);
        return Ok(b.finish());
    }
    // `If-Range` with another validator: the whole Blob, not the range.
    let range_header = match header(&req, "If-Range") {
        Some(v) if v.trim() != etag => None,
        _ => header(&req, "Range"),
    };
    let (status, start, end) = match range_of(range_header, len) {
        Ok(None) => (StatusCode::OK, 0, len),
        Ok(Some((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b),
        Err((a, b)) => {
            let mut e = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!(
                    "range bytes {a}..{b} is outside this Blob of {len} bytes; ask for a range that starts below {len}"
                ),
            );
            e.blob_range = Some(Box::new(BlobRangeOutput {
                start: a,
                end: b,
                length: len,
            }));
            e.headers = vec![
                ("Content-Range".into(), format!("bytes */{len}")),
                ("Accept-Ranges".into(), "bytes".into()),
                ("ETag".into(), etag.clone()),
                ("Omnigraph-Snapshot-Id".into(), snapshot.clone()),
            ];
            return Err(e);
        }
    };
    let mut b = HttpResponse::build(status);
    common(&mut b);
    b.content_type("application/octet-stream");
    if status == StatusCode::PARTIAL_CONTENT {
        b.insert_header((
            "Content-Range",
            format!("bytes {start}-{}/{len}", end.saturating_sub(1)),
        ));
    }
    // A HEAD answer is built with its body too: actix sends the headers
    // (`Content-Length` of the body) and drops the body.
    let part = Bytes::from(cell.bytes).slice(start as usize..end as usize);
    Ok(b.body(part))
}

#[cfg(test)]
mod tests {
    use super::range_of;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(range_of(None, 10), Ok(None));
        assert_eq!(range_of(Some("bytes=0-3"), 10), Ok(Some((0, 4))));
        assert_eq!(range_of(Some("bytes=5-"), 10), Ok(Some((5, 10))));
        assert_eq!(range_of(Some("bytes=-3"), 10), Ok(Some((7, 10))));
        assert_eq!(range_of(Some("bytes=-30"), 10), Ok(Some((0, 10))));
        assert_eq!(range_of(Some("bytes=8-100"), 10), Ok(Some((8, 10))));
        assert_eq!(range_of(Some("bytes=10-"), 10), Err((10, 10)));
        assert_eq!(range_of(Some("bytes=12-20"), 10), Err((12, 21)));
        assert_eq!(range_of(Some("bytes=-0"), 10), Err((10, 10)));
        // Ignored forms: several ranges, other units, nonsense.
        assert_eq!(range_of(Some("bytes=0-1,4-5"), 10), Ok(None));
        assert_eq!(range_of(Some("items=0-1"), 10), Ok(None));
        assert_eq!(range_of(Some("bytes=5-2"), 10), Ok(None));
        assert_eq!(range_of(Some("bytes=x-"), 10), Ok(None));
    }
}
