//! Starting the real `omnigraph-server` binary on 127.0.0.1 port 0; calls go
//! through [`omnigraph::http::client`].

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub use omnigraph::http::client::{Response, request};

/// The environment variables the server reads; cleared for every start so
/// the caller's shell cannot leak into a test.
const SERVER_ENV: [&str; 22] = [
    "FAILPOINTS",
    "OMNIGRAPH_SERVER_BEARER_TOKEN",
    "OMNIGRAPH_SERVER_BEARER_TOKENS_JSON",
    "OMNIGRAPH_SERVER_BEARER_TOKENS_FILE",
    "OMNIGRAPH_UNAUTHENTICATED",
    "OMNIGRAPH_REQUIRE_ALL_GRAPHS",
    "OMNIGRAPH_PER_ACTOR_INFLIGHT_MAX",
    "OMNIGRAPH_PER_ACTOR_BYTES_MAX",
    "OMNIGRAPH_PER_ACTOR_RATE_PER_SEC",
    "OMNIGRAPH_PER_ACTOR_RATE_BURST",
    "OMNIGRAPH_QUERY_MAX_ROWS",
    "OMNIGRAPH_QUERY_MAX_MS",
    "OMNIGRAPH_QUERY_MAX_BYTES",
    "OMNIGRAPH_QUERY_MAX_EXPANSIONS",
    "OMNIGRAPH_QUERY_MEMORY_MAX_BYTES",
    "OMNIGRAPH_BODY_TIMEOUT_MS",
    "LANCE_CPU_THREADS",
    "OMNIGRAPH_BULK_NICE",
    "OMNIGRAPH_BULK_RUNTIME",
    "OMNIGRAPH_COMMIT_CPU",
    "OMNIGRAPH_THP",
    "OMNIGRAPH_COMMIT_IO",
];

fn command(args: &[&str], env: &[(&str, &str)], stderr: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_omnigraph-server"));
    c.args(args);
    for k in SERVER_ENV {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.env("OMNIGRAPH_LOG", "warn");
    c.stdout(Stdio::piped());
    c.stderr(std::fs::File::create(stderr).expect("stderr file"));
    c
}

/// A running server; killed on drop.
pub struct Server {
    child: Child,
    pub addr: String,
}

impl Server {
    /// Starts the server with `args` (`--bind 127.0.0.1:0` is added) and
    /// waits for its `OMNIGRAPH_LISTEN_ADDR=` line.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let stderr = dir.join(format!("server-{}.log", ulid::Ulid::new()));
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--bind", "127.0.0.1:0"]);
        let mut child = command(&all, env, &stderr).spawn().expect("spawn server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("OMNIGRAPH_LISTEN_ADDR=") {
                    let _ = tx.send(a.to_string());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(addr) => {
                assert!(addr.starts_with("127.0.0.1:"), "listens on {addr}");
                Server { child, addr }
            }
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "server did not start: {}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                );
            }
        }
    }

    /// Kills the server with SIGKILL (no shutdown, no flush) and waits.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..300 {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("server did not stop on SIGTERM");
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Response {
        request(&self.addr, "GET", path, token, None)
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &str) -> Response {
        request(&self.addr, "POST", path, token, Some(body.as_bytes()))
    }

    pub fn delete(&self, path: &str, token: Option<&str>) -> Response {
        request(&self.addr, "DELETE", path, token, None)
    }

    /// The value of the first `/metrics` line that starts with `prefix`
    /// (`token` must be allowed to read the metrics).
    pub fn metric(&self, token: Option<&str>, prefix: &str) -> Option<f64> {
        let body = self.get("/metrics", token).expect(200).body;
        body.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// Waits until the metric `prefix` reads `want` (the server's own
    /// account of an event, instead of a sleep that hopes it happened),
    /// polling every 20 ms; panics after 60 s naming what it waited for.
    pub fn await_metric(&self, token: Option<&str>, prefix: &str, want: f64) {
        let start = std::time::Instant::now();
        loop {
            let now = self.metric(token, prefix);
            if now == Some(want) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "`{prefix}` still reads {now:?} after 60 s, not {want}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the server expecting it to refuse to start: returns (exit code,
/// stderr).
pub fn refuse(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let stderr = dir.join(format!("refuse-{}.log", ulid::Ulid::new()));
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--bind", "127.0.0.1:0"]);
    let mut child = command(&all, env, &stderr).spawn().expect("spawn server");
    for _ in 0..1200 {
        if let Ok(Some(s)) = child.try_wait() {
            return (
                s.code(),
                std::fs::read_to_string(&stderr).unwrap_or_default(),
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("server started although it should have refused: {args:?}");
}

/// Creates a graph with the CLI; returns its path.
pub fn init_graph(dir: &Path, name: &str, schema: &Path) -> String {
    let uri = dir.join(name).to_str().expect("utf8").to_string();
    cli_ok(&["init", "--schema", schema.to_str().expect("utf8"), &uri]);
    uri
}

/// Runs the `omnigraph` CLI; panics with its stderr unless it succeeds.
///
/// A write the CLI makes to a root a server serves can meet the server's
/// upkeep holding a table; it then waits, gives up and says to retry
/// (`EngineError::Busy`, exit 1). Retried as a user would, up to 20 times
/// 250 ms apart; any other failure fails at once.
pub fn cli_ok(args: &[&str]) {
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_omnigraph"))
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .expect("run omnigraph")
    };
    let mut out = run();
    for _ in 0..20 {
        let busy = String::from_utf8_lossy(&out.stderr).contains("is being written by");
        if out.status.success() || !busy {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
        out = run();
    }
    assert!(
        out.status.success(),
        "omnigraph {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes a file and returns its path as a string.
pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write file");
    p.to_str().expect("utf8").to_string()
}
