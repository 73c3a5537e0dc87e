//! The README's first command: `scripts/example` applies the example
//! cluster, loads a generated seed and serves it; this test runs it (with
//! the binaries under test and a small seed), calls the server, and stops
//! it with SIGTERM; then again with `OMNIGRAPH_EXAMPLE_STORAGE=s3://…`,
//! the script starting its own moto: nothing of the cluster is local.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use omnigraph::http::client;

#[test]
fn the_main_job_serves_the_example_cluster() {
    run_example(None);
}

#[test]
fn the_main_job_runs_from_a_bucket() {
    if std::env::var_os("OMNIGRAPH_MOTO_PYTHON").is_none() {
        eprintln!("OMNIGRAPH_MOTO_PYTHON is not set: the s3 example is skipped");
        return;
    }
    run_example(Some("s3://omnigraph-example/clusters/research"));
}

/// Runs `scripts/example` (with `OMNIGRAPH_EXAMPLE_STORAGE=storage` when
/// given), calls what it serves, stops it.
fn run_example(storage: Option<&str>) {
    let tmp = tempfile::tempdir().expect("tmp");
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_omnigraph"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/example");
    let work = tmp.path().join("work");
    let mut cmd = Command::new(&script);
    if let Some(s) = storage {
        cmd.env("OMNIGRAPH_EXAMPLE_STORAGE", s);
    }
    for k in [
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        cmd.env_remove(k);
    }
    let mut child = cmd
        .arg(&work)
        .env("OMNIGRAPH_BIN_DIR", &bin_dir)
        .env("OMNIGRAPH_EXAMPLE_NODES", "3000")
        .env("OMNIGRAPH_EXAMPLE_BIND", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run scripts/example");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut seen = Vec::new();
    let addr = loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(line) => {
                if let Some(a) = line.strip_prefix("OMNIGRAPH_LISTEN_ADDR=") {
                    break a.to_string();
                }
                seen.push(line);
            }
            Err(_) if Instant::now() < deadline => {
                if let Ok(Some(s)) = child.try_wait() {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        use std::io::Read;
                        let _ = e.read_to_string(&mut err);
                    }
                    panic!(
                        "scripts/example exited ({s}) before serving:\n{}\n{err}",
                        seen.join("\n")
                    );
                }
            }
            Err(_) => panic!(
                "scripts/example did not serve in time:\n{}",
                seen.join("\n")
            ),
        }
    };
    let text = seen.join("\n");
    assert!(text.contains("converged"), "{text}");
    let call = |method: &str, path: &str, token: &str, body: &str| {
        client::request(&addr, method, path, Some(token), Some(body.as_bytes()))
    };
    let r = call(
        "POST",
        "/graphs/research/queries/papers_per_venue",
        "reader-token",
        "",
    );
    let v = r.expect(200).json();
    let papers: u64 = v["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|row| row["papers"].as_u64())
        .sum();
    assert_eq!(papers, 3000 - 50 - 600, "{v}");
    let r = call(
        "POST",
        "/graphs/research/queries/add_author",
        "reader-token",
        r#"{"params":{"handle":"x","name":"X"}}"#,
    );
    assert_eq!(r.status, 403, "a reader may not run a stored mutation");
    let r = call("GET", "/graphs", "admin-token", "");
    assert_eq!(r.status, 200);
    // SIGTERM stops the script and its server.
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status}");
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "the server stopped"
    );
    if storage.is_some() {
        let local: Vec<String> = std::fs::read_dir(&work)
            .expect("work")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        assert!(
            !local.iter().any(|f| f == "__cluster" || f == "graphs"),
            "the cluster's state and graph are in the bucket, not in {local:?}"
        );
        assert!(text.contains("moto"), "{text}");
    }
}
