//! Blob reads (reference docs/user/cli/reference.md, "Blob read
//! commands"; `GET`/`HEAD /graphs/{id}/blob`): a 5 MiB value round trip,
//! byte ranges (206, 416), validators (ETag, 304, If-Range), the CLI's
//! `blob get|stat` embedded and remote, and 413 `resource_limit` past a
//! body cap.

use base64::Engine as _;
use omnigraph::http::client::{request, request_with};

use crate::support::{Server, init_graph, write};

const SCHEMA: &str = "node Doc {\n  name: String @key\n  body: Blob?\n  title: String?\n}\n";

/// 5 MiB of printable bytes (so the test client's text body is exact).
fn payload() -> Vec<u8> {
    (0..5usize << 20)
        .map(|i| b'a' + ((i * 7 + i / 977) % 26) as u8)
        .collect()
}

fn header<'a>(r: &'a omnigraph::http::client::Response, name: &str) -> &'a str {
    r.header(name)
        .unwrap_or_else(|| panic!("no {name} header: {:?}", r.headers))
}

fn cli(args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_omnigraph"))
        .args(args)
        .output()
        .expect("run omnigraph");
    assert!(
        out.status.success(),
        "omnigraph {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn a_five_mib_blob_round_trips_whole_and_by_range() {
    let tmp = tempfile::tempdir().expect("tmp");
    let schema = write(tmp.path(), "s.pg", SCHEMA);
    let uri = init_graph(tmp.path(), "g.omni", std::path::Path::new(&schema));
    let server = Server::start(
        tmp.path(),
        &["--graph", &format!("g={uri}"), "--unauthenticated"],
        &[],
    );
    let bytes = payload();
    let line = format!(
        "{{\"type\":\"Doc\",\"data\":{{\"name\":\"d\",\"title\":\"t\",\"body\":\"base64:{}\"}}}}\n{{\"type\":\"Doc\",\"data\":{{\"name\":\"empty\"}}}}\n",
        base64::engine::general_purpose::STANDARD.encode(&bytes)
    );
    server
        .post("/graphs/g/load/ndjson?mode=merge", None, &line)
        .expect(200);
    let path = "/graphs/g/blob?entity=node&type=Doc&id=d&property=body";

    let whole = server.get(path, None).expect(200);
    assert_eq!(whole.body.len(), bytes.len());
    assert!(
        whole.body.as_bytes() == bytes.as_slice(),
        "the bytes come back unchanged"
    );
    assert_eq!(header(&whole, "Accept-Ranges"), "bytes");
    let etag = header(&whole, "ETag").to_string();
    assert!(etag.starts_with('"') && etag.len() == 66, "{etag}");
    let snapshot = header(&whole, "Omnigraph-Snapshot-Id").to_string();

    let part = request_with(
        &server.addr,
        "GET",
        path,
        None,
        &[("Range", "bytes=1000-1999")],
        None,
    );
    assert_eq!(part.status, 206);
    assert_eq!(
        header(&part, "Content-Range"),
        format!("bytes 1000-1999/{}", bytes.len())
    );
    assert!(part.body.as_bytes() == &bytes[1000..2000]);
    let tail = request_with(
        &server.addr,
        "GET",
        path,
        None,
        &[("Range", "bytes=-10")],
        None,
    );
    assert_eq!(tail.status, 206);
    assert!(tail.body.as_bytes() == &bytes[bytes.len() - 10..]);
    let open = request_with(
        &server.addr,
        "GET",
        path,
        None,
        &[("Range", "bytes=5242870-")],
        None,
    );
    assert_eq!(open.status, 206);
    assert_eq!(open.body.len(), 10);

    let past = request_with(
        &server.addr,
        "GET",
        path,
        None,
        &[("Range", "bytes=6000000-")],
        None,
    )
    .expect(416);
    assert_eq!(
        header(&past, "Content-Range"),
        format!("bytes */{}", bytes.len())
    );
    let j = past.json();
    assert_eq!(j["blob_range"]["start"], 6000000);
    assert_eq!(j["blob_range"]["length"], bytes.len());

    // Validators: 304 on a match; If-Range with another tag ignores Range.
    let same = request_with(
        &server.addr,
        "GET",
        path,
        None,
        &[("If-None-Match", &etag)],
        None,
    );
    assert_eq!(same.status, 304);
    assert!(same.body.is_empty());
    let stale = request_with(
        &server.addr,
        "GET",
        path,
        None,
        &[("Range", "bytes=0-9"), ("If-Range", "\"other\"")],
        None,
    );
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body.len(), bytes.len());

    let head = request(&server.addr, "HEAD", path, None, None);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(header(&head, "Content-Length"), bytes.len().to_string());
    assert_eq!(header(&head, "ETag"), etag);

    // Refusals: unknown entity and null cell (404), not a Blob, unknown
    // property or type, a missing selector (400); time travel by commit.
    server
        .get(
            "/graphs/g/blob?entity=node&type=Doc&id=nope&property=body",
            None,
        )
        .expect(404);
    server
        .get(
            "/graphs/g/blob?entity=node&type=Doc&id=empty&property=body",
            None,
        )
        .expect(404);
    server
        .get(
            "/graphs/g/blob?entity=node&type=Doc&id=d&property=title",
            None,
        )
        .expect(400);
    server
        .get(
            "/graphs/g/blob?entity=node&type=Doc&id=d&property=nope",
            None,
        )
        .expect(400);
    server
        .get(
            "/graphs/g/blob?entity=node&type=Nope&id=d&property=body",
            None,
        )
        .expect(400);
    server
        .get("/graphs/g/blob?entity=node&type=Doc&id=d", None)
        .expect(400);
    server
        .get(
            "/graphs/g/blob?entity=vertex&type=Doc&id=d&property=body",
            None,
        )
        .expect(400);
    let at = server
        .get(&format!("{path}&snapshot={snapshot}"), None)
        .expect(200);
    assert_eq!(at.body.len(), bytes.len());

    // The CLI: embedded and remote agree, whole and by range.
    let url = format!("http://{}", server.addr);
    let cell = ["node", "Doc", "d", "body"];
    let mut local = vec!["blob", "get"];
    local.extend(cell);
    local.extend(["--store", &uri, "--offset", "4096", "--length", "100"]);
    let mut remote = vec!["blob", "get"];
    remote.extend(cell);
    remote.extend([
        "--server", &url, "--graph", "g", "--offset", "4096", "--length", "100",
    ]);
    let (l, r) = (cli(&local), cli(&remote));
    assert_eq!(l, r);
    assert!(l == bytes[4096..4196]);
    let out = tmp.path().join("body.bin");
    let mut whole_cli = vec!["blob", "get"];
    whole_cli.extend(cell);
    whole_cli.extend([
        "--server",
        &url,
        "--graph",
        "g",
        "--out",
        out.to_str().expect("utf8"),
    ]);
    cli(&whole_cli);
    assert!(std::fs::read(&out).expect("out") == bytes);
    let stat = |extra: &[&str]| {
        let mut a = vec!["blob", "stat"];
        a.extend(cell);
        a.extend(extra);
        a.push("--json");
        serde_json::from_slice::<serde_json::Value>(&cli(&a)).expect("json")
    };
    let (sl, sr) = (
        stat(&["--store", &uri]),
        stat(&["--server", &url, "--graph", "g"]),
    );
    assert_eq!(sl, sr);
    assert_eq!(sl["length"], bytes.len());
    assert_eq!(sl["etag"], etag.as_str());

    // Past the load body cap (32 MiB): 413 with the cap in resource_limit.
    let huge = "x".repeat((32 << 20) + 1024);
    let r = server
        .post("/graphs/g/load/ndjson?mode=merge", None, &huge)
        .expect(413)
        .json();
    assert_eq!(r["resource_limit"]["resource"], "request_body_bytes");
    assert_eq!(r["resource_limit"]["limit"], 32 << 20);
    assert!(r["resource_limit"]["actual"].as_u64().expect("actual") > 32 << 20);
}
