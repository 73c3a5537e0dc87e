//! The storage backends a test runs its graphs on: local directories
//! always, and `s3://` on a moto server this process starts (the same
//! `scripts/s3_test_server.py` the storage contract uses) when
//! `OMNIGRAPH_MOTO_PYTHON` names a Python with moto (`.ci/run` and
//! `scripts/test` set it; without it the S3 runs are skipped with a
//! line on stderr). Included with `#[path]` by the test binaries that
//! use it.

#![allow(dead_code)]

use std::path::Path;

/// The bucket every S3 run writes under (each graph its own prefix).
pub const BUCKET: &str = "omnigraph-graphs";

/// Where a test's graphs live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Local,
    S3,
}

struct Moto {
    port: u16,
    _stdin: std::process::ChildStdin,
    _child: std::process::Child,
}

fn moto() -> Option<&'static Moto> {
    use std::io::BufRead;
    static SERVER: std::sync::OnceLock<Option<Moto>> = std::sync::OnceLock::new();
    SERVER
        .get_or_init(|| {
            let python = std::env::var_os("OMNIGRAPH_MOTO_PYTHON")?;
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/s3_test_server.py");
            let mut child = std::process::Command::new(&python)
                .arg(script)
                .arg(BUCKET)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {python:?} {script}: {e}"));
            let mut line = String::new();
            std::io::BufReader::new(child.stdout.take().expect("stdout"))
                .read_line(&mut line)
                .expect("read the server's port");
            let port: u16 = line.trim().parse().unwrap_or_else(|_| {
                panic!("the S3 test server did not print its port (got {line:?})")
            });
            omnigraph::storage::s3::set_bucket_options(BUCKET, options_for(port))
                .expect("bucket options");
            Some(Moto {
                port,
                _stdin: child.stdin.take().expect("stdin"),
                _child: child,
            })
        })
        .as_ref()
}

fn options_for(port: u16) -> Vec<(String, String)> {
    [
        ("aws_endpoint", format!("http://127.0.0.1:{port}")),
        ("allow_http", "true".to_string()),
        ("aws_access_key_id", "test".to_string()),
        ("aws_secret_access_key", "test".to_string()),
        ("aws_region", "us-east-1".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The backends to run on: `Local`, then `S3` when moto is available.
pub fn backends() -> Vec<Backend> {
    if moto().is_some() {
        vec![Backend::Local, Backend::S3]
    } else {
        eprintln!("OMNIGRAPH_MOTO_PYTHON is not set: s3:// runs skipped");
        vec![Backend::Local]
    }
}

/// Just `S3`, when moto is available (tests about S3 itself).
pub fn s3() -> Option<Backend> {
    moto().map(|_| Backend::S3)
}

impl Backend {
    /// A graph root named `name` for one test: under `tmp` locally, under
    /// a fresh prefix of [`BUCKET`] on S3.
    pub fn root(self, tmp: &Path, name: &str) -> String {
        match self {
            Backend::Local => tmp.join(name).to_str().expect("utf8").to_string(),
            Backend::S3 => format!("s3://{BUCKET}/{}/{name}", ulid::Ulid::new()),
        }
    }

    /// The environment a child process (the CLI, the server) needs to
    /// reach the backend: the standard `AWS_*` variables for S3.
    pub fn env(self) -> Vec<(String, String)> {
        match (self, moto()) {
            (Backend::S3, Some(m)) => vec![
                (
                    "AWS_ENDPOINT_URL".into(),
                    format!("http://127.0.0.1:{}", m.port),
                ),
                ("AWS_ALLOW_HTTP".into(), "true".into()),
                ("AWS_ACCESS_KEY_ID".into(), "test".into()),
                ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
                ("AWS_REGION".into(), "us-east-1".into()),
            ],
            _ => Vec::new(),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Local => "local",
            Backend::S3 => "s3",
        })
    }
}
