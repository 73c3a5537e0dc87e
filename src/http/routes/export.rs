//! Export: every row of a branch as JSONL, streamed in chunks.

use super::*;

/// Streams NDJSON in chunks of at most 64 KiB through a two-chunk queue:
/// memory stays constant whatever the graph's size, and a slow client
/// slows the export.
#[utoipa::path(post, path = "/graphs/{id}/export", request_body = ExportRequest, responses((status = 200, description = "NDJSON stream, one entity per line", content_type = "application/x-ndjson"), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput)), security(("bearer_token" = [])))]
pub(super) async fn export(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    body: web::Payload,
) -> Res {
    let Entered { actor, entry } = enter(&req, &state, &id)?;
    let (_, body) = read_json(body, Some(ExportRequest::default())).await?;
    let branch = body.branch.unwrap_or_else(|| MAIN.to_string());
    authorize(&entry, &actor, Action::Export, on_branch(&branch))?;
    let types = if body.type_names.is_empty() {
        None
    } else {
        Some(body.type_names)
    };
    stream_export(&entry, ReadAt::Branch(branch), types, None).await
}

/// Streams the rows visible at `at` (only `types` when given) as NDJSON,
/// then `trailer` once every row was written (a baseline's last line).
/// One trip: the actor checks the types and the target, answers, then
/// writes the rows on a blocking thread while this response streams.
pub(super) async fn stream_export(
    entry: &GraphEntry,
    at: ReadAt,
    types: Option<Vec<String>>,
    trailer: Option<Vec<u8>>,
) -> Res {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, String>>(2);
    let on_error_tx = tx.clone();
    let op = ops::Export {
        at,
        types,
        sink: Box::new(ChunkWriter::new(tx)),
        on_error: Box::new(move |why| {
            let _ = futures::executor::block_on(on_error_tx.send(Err(why)));
        }),
        trailer,
    };
    ask(entry, Read(op), STOPPED_READING).await?;
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|item| (item.map_err(actix_web::error::ErrorInternalServerError), rx))
    });
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(stream))
}

pub(super) const CHUNK: usize = 64 << 10;

pub(super) struct ChunkWriter {
    buf: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, String>>,
}

impl ChunkWriter {
    /// A writer sending 64 KiB chunks to `tx`.
    pub(super) fn new(tx: tokio::sync::mpsc::Sender<Result<Bytes, String>>) -> ChunkWriter {
        ChunkWriter {
            buf: Vec::with_capacity(CHUNK),
            tx,
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        futures::executor::block_on(self.tx.send(Ok(chunk))).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}
