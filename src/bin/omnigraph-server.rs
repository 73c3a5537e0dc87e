//! `omnigraph-server`: serves many graphs over HTTP.
//!
//! ```text
//! omnigraph-server (--graph ID=URI ... [--queries ID=DIR] [--policy ID=FILE]
//!                   [--server-policy FILE] | --cluster DIR|s3://BUCKET/PREFIX)
//!                  [--query-limits ID=LIMITS ...] [--bind ADDR] [--unauthenticated]
//!                  [--require-all-graphs]
//! ```
//!
//! Prints `OMNIGRAPH_LISTEN_ADDR=host:port` on stdout once bound (port 0
//! picks a free port). Exit status 2 when it refuses to start (the message
//! says why and what to change). See `docs/server.md`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use actix::Actor;
use actix_web::{App, HttpServer, web};
use clap::Parser;
use omnigraph::actors::{
    AdmissionActor, AdmissionConfig, GraphSpec, Metrics, Runtimes, SupervisorActor,
};
use omnigraph::http::{ApiError, AppState, Tokens, configure};
use omnigraph::policy::{BundleKind, Gate, PolicyEngine};

/// mimalloc instead of the system allocator: under concurrent writes the
/// server spent about a fifth of its CPU in glibc's malloc and free
/// (docs/performance.md, "Group commit, kept stagings and mimalloc").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Serves many graphs over HTTP.
#[derive(Debug, Parser)]
#[command(name = "omnigraph-server", version)]
struct Args {
    /// A graph to serve, as `ID=URI` (repeatable).
    #[arg(
        long = "graph",
        value_name = "ID=URI",
        required_unless_present = "cluster"
    )]
    graphs: Vec<String>,
    /// Serve the applied revision of a cluster (`omnigraph cluster
    /// apply`): its config folder, or its storage root (a local folder or
    /// `s3://bucket/prefix`: then nothing local is read). Its graphs,
    /// verified stored-query blobs and policy bundles replace `--graph`,
    /// `--queries`, `--policy` and `--server-policy`.
    #[arg(long, value_name = "DIR|URI", conflicts_with_all = ["graphs", "queries", "policies", "server_policy"])]
    cluster: Option<String>,
    /// A directory of `.gq` stored queries for graph ID, as `ID=DIR`.
    #[arg(long = "queries", value_name = "ID=DIR")]
    queries: Vec<String>,
    /// A policy bundle (YAML) for graph ID, as `ID=FILE`.
    #[arg(long = "policy", value_name = "ID=FILE")]
    policies: Vec<String>,
    /// Read-query limits for graph ID, as
    /// `ID=max_rows=N,max_ms=N,max_bytes=N,max_expansions=N` (any subset;
    /// the rest keep the server's defaults). See docs/server.md, "Limits".
    #[arg(long = "query-limits", value_name = "ID=LIMITS")]
    query_limits: Vec<String>,
    /// The server-level policy bundle (`graph_list`, `graph_admin`).
    #[arg(long = "server-policy", value_name = "FILE")]
    server_policy: Option<PathBuf>,
    /// Address to listen on (`host:port`; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: String,
    /// Serve with no bearer tokens and no policy (local development only).
    /// Also `OMNIGRAPH_UNAUTHENTICATED=1`.
    #[arg(long)]
    unauthenticated: bool,
    /// Refuse to start if any graph fails to open. Also
    /// `OMNIGRAPH_REQUIRE_ALL_GRAPHS=1`.
    #[arg(long)]
    require_all_graphs: bool,
}

fn env_flag(name: &str) -> bool {
    matches!(
        std::env::var(name).as_deref(),
        Ok("1") | Ok("true") | Ok("yes")
    )
}

fn pairs(flag: &str, items: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for item in items {
        let (id, v) = item
            .split_once('=')
            .filter(|(id, v)| !id.is_empty() && !v.is_empty())
            .ok_or_else(|| format!("{flag} {item:?}: expected ID=VALUE"))?;
        if out.insert(id.to_string(), v.to_string()).is_some() {
            return Err(format!("{flag}: graph `{id}` is given twice"));
        }
    }
    Ok(out)
}

struct Config {
    specs: Vec<GraphSpec>,
    server_gate: Gate,
    tokens: Tokens,
    admission: AdmissionConfig,
    bind: String,
    require_all: bool,
    mode: &'static str,
}

/// Checks the arguments and the environment; every refusal says what to
/// change.
fn config(mut args: Args) -> Result<Config, String> {
    // A `--cluster` server's stored queries and policy bundles, as the
    // verified blobs' (origin, text).
    let mut cluster_queries: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut cluster_policies: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut cluster_server_policy: Option<(String, String)> = None;
    // A `--cluster` server's embedding providers, `${ENV}` resolved now.
    let mut cluster_embedding: BTreeMap<String, omnigraph::embed::EmbeddingConfig> =
        BTreeMap::new();
    if let Some(target) = &args.cluster {
        // Boot from the applied revision only: the same flags, from the ledger.
        let s = omnigraph::cluster::apply::serving(target).map_err(|e| e.to_string())?;
        for g in s.graphs {
            args.graphs.push(format!("{}={}", g.id, g.uri));
            if let Some(b) = g.policy {
                cluster_policies.insert(g.id.clone(), (b.uri, b.text));
            }
            if let Some(b) = g.embedding {
                let profile: omnigraph::cluster::EmbeddingProfile = serde_json::from_str(&b.text)
                    .map_err(|e| {
                    format!("{}: not an embedding provider profile: {e}", b.uri)
                })?;
                let config = profile
                    .resolve(&|k| std::env::var(k).ok())
                    .map_err(|e| format!("graph `{}`: {e}", g.id))?;
                cluster_embedding.insert(g.id.clone(), config);
            }
            cluster_queries.insert(
                g.id,
                g.queries.into_iter().map(|b| (b.uri, b.text)).collect(),
            );
        }
        cluster_server_policy = s.server_policy.map(|b| (b.uri, b.text));
    }
    let graphs = pairs("--graph", &args.graphs)?;
    let queries = pairs("--queries", &args.queries)?;
    let policies = pairs("--policy", &args.policies)?;
    let limits = pairs("--query-limits", &args.query_limits)?;
    for (flag, m) in [
        ("--queries", &queries),
        ("--policy", &policies),
        ("--query-limits", &limits),
    ] {
        if let Some(id) = m.keys().find(|id| !graphs.contains_key(*id)) {
            return Err(format!(
                "{flag} names graph `{id}`, which no --graph declares (graphs: {})",
                graphs.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    for id in graphs.keys() {
        omnigraph::engine::GraphId::parse(id).map_err(|e| e.to_string())?;
    }
    let tokens = Tokens::from_env()?;
    let unauthenticated = args.unauthenticated || env_flag("OMNIGRAPH_UNAUTHENTICATED");
    let any_policy = !policies.is_empty()
        || args.server_policy.is_some()
        || !cluster_policies.is_empty()
        || cluster_server_policy.is_some();
    let mode = match (tokens.is_empty(), any_policy) {
        (true, false) if unauthenticated => "open",
        (true, false) => {
            return Err("no bearer tokens are configured; set OMNIGRAPH_SERVER_BEARER_TOKEN, OMNIGRAPH_SERVER_BEARER_TOKENS_JSON or OMNIGRAPH_SERVER_BEARER_TOKENS_FILE, or pass --unauthenticated (OMNIGRAPH_UNAUTHENTICATED=1) to serve without auth for local development".into());
        }
        (true, true) => {
            return Err("a policy is configured but no bearer tokens: every request would be refused with 401; set OMNIGRAPH_SERVER_BEARER_TOKENS_JSON (or _FILE, or OMNIGRAPH_SERVER_BEARER_TOKEN)".into());
        }
        (false, false) => "default_deny",
        (false, true) => "policy_enabled",
    };
    let mut specs = Vec::new();
    for (id, uri) in &graphs {
        let bundle = match (policies.get(id), cluster_policies.get(id)) {
            (Some(file), _) => {
                Some(PolicyEngine::load(std::path::Path::new(file)).map_err(|e| e.to_string())?)
            }
            (None, Some((uri, text))) => {
                Some(PolicyEngine::compile(uri, text).map_err(|e| e.to_string())?)
            }
            (None, None) => None,
        };
        let gate = match bundle {
            Some(p) => {
                let file = p.path().to_string();
                if p.kind() != BundleKind::Graph {
                    return Err(format!(
                        "--policy {id}={file} is a server bundle (graph_list / graph_admin); pass it with --server-policy"
                    ));
                }
                Gate::Policy(Arc::new(p))
            }
            None if mode == "open" => Gate::Open,
            None => Gate::DefaultDeny,
        };
        let defaults = omnigraph::engine::budget::QueryLimits::server();
        let limits = match limits.get(id) {
            Some(spec) => defaults
                .with_spec(spec)
                .map_err(|e| format!("--query-limits {id}={spec}: {e}"))?,
            None => defaults,
        };
        specs.push(GraphSpec {
            id: omnigraph::engine::GraphId::parse(id).map_err(|e| e.to_string())?,
            uri: uri.clone(),
            queries_dir: queries.get(id).map(PathBuf::from),
            query_sources: cluster_queries.remove(id).unwrap_or_default(),
            gate,
            limits,
            embedding: cluster_embedding.remove(id),
        });
    }
    let server_bundle = match (&args.server_policy, &cluster_server_policy) {
        (Some(file), _) => Some(PolicyEngine::load(file).map_err(|e| e.to_string())?),
        (None, Some((uri, text))) => {
            Some(PolicyEngine::compile(uri, text).map_err(|e| e.to_string())?)
        }
        (None, None) => None,
    };
    let server_gate = match server_bundle {
        Some(p) => {
            if p.kind() != BundleKind::Server {
                return Err(format!(
                    "--server-policy {} grants per-graph actions; pass it with --policy ID=FILE",
                    p.path()
                ));
            }
            Gate::Policy(Arc::new(p))
        }
        None if mode == "open" => Gate::Open,
        None => Gate::DefaultDeny,
    };
    Ok(Config {
        specs,
        server_gate,
        tokens,
        admission: AdmissionConfig::from_env()?,
        bind: args.bind,
        require_all: args.require_all_graphs || env_flag("OMNIGRAPH_REQUIRE_ALL_GRAPHS"),
        mode,
    })
}

async fn serve(c: Config, rts: Runtimes) -> Result<(), String> {
    let rt = rts.main.clone();
    tracing::info!(
        mode = c.mode,
        token_source = c.tokens.source.unwrap_or("none"),
        graphs = c.specs.len(),
        "starting"
    );
    let metrics = Arc::new(Metrics::default());
    let (supervisor, registry, failed) = SupervisorActor::boot(c.specs, rts, metrics.clone()).await;
    for (id, reason) in &failed {
        eprintln!("omnigraph-server: graph `{id}` is quarantined: {reason}");
    }
    if c.require_all && !failed.is_empty() {
        return Err(format!(
            "{} graph(s) failed to open and --require-all-graphs is set",
            failed.len()
        ));
    }
    if registry.ready_count() == 0 {
        return Err("no graph opened; nothing to serve".into());
    }
    let admission = AdmissionActor::new(c.admission, metrics.clone()).start();
    let state = web::Data::new(AppState {
        registry,
        supervisor,
        admission,
        tokens: Arc::new(c.tokens),
        server_gate: c.server_gate,
        metrics,
        rt,
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                ApiError::bad_request(format!("bad query string: {e}")).into()
            }))
            .app_data(
                web::PathConfig::default()
                    .error_handler(|e, _| ApiError::bad_request(format!("bad path: {e}")).into()),
            )
            .wrap(actix_web::middleware::from_fn(omnigraph::http::observe))
            .configure(configure)
            .default_service(web::to(|| async {
                Err::<actix_web::HttpResponse, _>(ApiError::not_found(
                    "no such route; see GET /openapi.json",
                ))
            }))
    })
    .shutdown_timeout(30)
    // A client that closes its connection ends its request: the handler
    // is dropped, which cancels its query (docs/server.md, "Limits"). The
    // price: a client that half-closes its side after sending a request
    // gets no answer.
    .h1_allow_half_closed(false)
    .bind(&c.bind)
    .map_err(|e| format!("cannot listen on {}: {e}", c.bind))?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| format!("cannot listen on {}", c.bind))?;
    println!("OMNIGRAPH_LISTEN_ADDR={addr}");
    let _ = std::io::stdout().flush();
    tracing::info!(%addr, "listening");
    server
        .run()
        .await
        .map_err(|e| format!("server stopped: {e}"))?;
    tracing::info!("stopped");
    Ok(())
}

/// The default OS nice value of the bulk runtime's threads
/// (`OMNIGRAPH_BULK_NICE`, 0 to 19): a flood of big loads, and the upkeep
/// beside it, get the CPU the small writes and reads leave (a thread at nice 0 weighs
/// about ten times one at nice 10 in Linux's scheduler).
const BULK_NICE: i32 = 10;

fn bulk_nice() -> Result<i32, String> {
    match std::env::var("OMNIGRAPH_BULK_NICE") {
        Err(_) => Ok(BULK_NICE),
        Ok(v) => v
            .trim()
            .parse::<i32>()
            .ok()
            .filter(|n| (0..=19).contains(n))
            .ok_or_else(|| {
                format!("OMNIGRAPH_BULK_NICE={v}: expected 0 to 19 (0: no lower priority)")
            }),
    }
}

/// Lance's pool for CPU work (page encoding and decoding, index pages) has
/// `LANCE_CPU_THREADS` threads, and one on a machine of up to three
/// cores: there a big load's page encoding queues the small writes' index
/// page decoding behind it. Unless that variable is set, the server gives
/// the pool four threads (at least one per core) so the OS scheduler
/// shares the cores between them, and starts them all now, from the main
/// thread, so none inherits a bulk thread's lower priority (a thread
/// inherits its creator's nice value). Runs before any other thread.
fn lance_cpu_pool() {
    if std::env::var_os("LANCE_CPU_THREADS").is_none() {
        let n = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .max(4);
        // SAFETY: called first in `main`, before any thread is started.
        unsafe { std::env::set_var("LANCE_CPU_THREADS", n.to_string()) };
    }
    let n = lance_core::utils::tokio::get_num_compute_intensive_cpus();
    let all_started = Arc::new(std::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let b = all_started.clone();
            lance_core::utils::tokio::spawn_cpu(move || {
                b.wait();
                Ok::<(), std::io::Error>(())
            })
        })
        .collect();
    let _ = futures::executor::block_on(futures::future::join_all(tasks));
}

/// A runtime big loads prepare on, or upkeep prepares on beside them, or
/// commit turns run on ([`Runtimes`]), its threads named `name`: one
/// worker thread (and its blocking pool), each lowered to nice value
/// `nice` ([`BULK_NICE`] for bulk work, 0 for commits) as it starts, and
/// kept on CPU `cpu` when given ([`commit_cpu`]); with `inline_io` its
/// threads write local files without a hop to the blocking pool
/// ([`omnigraph::storage::local::allow_inline_io`], [`commit_io`]).
/// Lowering a thread's own priority or narrowing its own CPUs needs no
/// privilege; where it fails the thread runs at the normal priority, on
/// any CPU.
fn bulk_runtime(
    nice: i32,
    cpu: Option<usize>,
    inline_io: bool,
    name: &str,
) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name(name)
        .on_thread_start(move || {
            if inline_io {
                omnigraph::storage::local::allow_inline_io();
            }
            // SAFETY: plain syscalls on this thread's own id and a
            // `cpu_set_t` on this stack, no memory shared with Rust. On
            // Linux the nice value and the CPU mask are per thread.
            #[cfg(target_os = "linux")]
            unsafe {
                if nice > 0 {
                    let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                    libc::setpriority(libc::PRIO_PROCESS, tid, nice);
                }
                if let Some(cpu) = cpu {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(cpu, &mut set);
                    libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
                }
            }
            #[cfg(not(target_os = "linux"))]
            let _ = (nice, cpu);
        })
        .build()
}

/// The CPU the commit runtime's threads (its worker and the blocking pool
/// Lance's local file writes hop to) are kept on: the last CPU this
/// process may run on, when it may run on at least two; `None` (any CPU)
/// on one CPU, off Linux, or with `OMNIGRAPH_COMMIT_CPU=any`
/// (`OMNIGRAPH_COMMIT_CPU=one` or unset: pinned; other values are
/// refused).
///
/// A commit turn hops between its worker and blocking threads several
/// times per Lance commit (a transaction file, a manifest and a version
/// hint, each written by blocking tasks). On separate CPUs each hop woke
/// the other CPU: in a 16-caller phase the commit threads waited 0.54 s
/// per second runnable over 24 time slices per commit. Kept on one CPU:
/// 16 callers into one node type 776–851 → 1,072–1,165 commits/s on this
/// 2-core virtual machine (docs/performance.md,
/// "Upkeep round-robin, huge pages off, commit turns on one CPU").
fn commit_cpu() -> Result<Option<usize>, String> {
    match std::env::var("OMNIGRAPH_COMMIT_CPU") {
        Err(_) => {}
        Ok(v) => match v.trim() {
            "one" => {}
            "any" => return Ok(None),
            _ => return Err(format!("OMNIGRAPH_COMMIT_CPU={v}: expected one or any")),
        },
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `sched_getaffinity` fills a `cpu_set_t` on this stack.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let ok = unsafe {
            libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0
        };
        if !ok {
            return Ok(None);
        }
        let allowed: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            .filter(|c| unsafe { libc::CPU_ISSET(*c, &set) })
            .collect();
        if allowed.len() < 2 {
            return Ok(None);
        }
        Ok(allowed.last().copied())
    }
    #[cfg(not(target_os = "linux"))]
    Ok(None)
}

/// Whether the commit runtime's threads write local files themselves
/// ([`omnigraph::storage::local::allow_inline_io`]): the transaction file
/// and manifest of each Lance commit in a turn, and the turn's sidecar and
/// graph manifest, each one write and one rename or link on the commit
/// thread instead of several hops to the blocking pool and back. `OMNIGRAPH_COMMIT_IO=inline` or unset: yes; `pool`: no (for
/// comparison); other values are refused. Files on object storage are
/// never written inline.
fn commit_io() -> Result<bool, String> {
    match std::env::var("OMNIGRAPH_COMMIT_IO") {
        Err(_) => Ok(true),
        Ok(v) => match v.trim() {
            "inline" => Ok(true),
            "pool" => Ok(false),
            _ => Err(format!("OMNIGRAPH_COMMIT_IO={v}: expected inline or pool")),
        },
    }
}

/// Turns transparent huge pages off for this process (Linux
/// `prctl(PR_SET_THP_DISABLE)`, proc(5) "THP_disable") unless
/// `OMNIGRAPH_THP=on`; `off` or unset turns them off, any other value is
/// refused. mimalloc returns freed memory to the OS and faults it in
/// again; with huge pages each such fault zeroed 2 MiB: in a 16-caller
/// group-commit profile `clear_page_erms` under huge-page faults was about
/// 9% of the server's CPU, and 8 callers into 8 node types reached 753
/// commits/s (p99 19 ms) without huge pages against 599 (p99 33 ms) with
/// them (docs/performance.md,
/// "Upkeep round-robin, huge pages off, commit turns on one CPU").
fn huge_pages() -> Result<(), String> {
    let keep = match std::env::var("OMNIGRAPH_THP") {
        Err(_) => false,
        Ok(v) => match v.trim() {
            "off" => false,
            "on" => true,
            _ => return Err(format!("OMNIGRAPH_THP={v}: expected on or off")),
        },
    };
    #[cfg(target_os = "linux")]
    if !keep {
        // SAFETY: a plain syscall on this process's own flags, no memory
        // shared with Rust. On failure the process keeps huge pages.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = keep;
    Ok(())
}

fn main() -> ExitCode {
    if let Err(e) = huge_pages() {
        eprintln!("omnigraph-server: refusing to start: {e}");
        return ExitCode::from(2);
    }
    lance_cpu_pool();
    let args = Args::parse();
    // Test builds: failpoints from the `FAILPOINTS` environment variable
    // (`name=action;...`, the `fail` crate's format).
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    // OMNIGRAPH_LOG sets our level (default info); Lance and other
    // libraries log at warn and above unless OMNIGRAPH_LOG is debug/trace.
    match omnigraph::logging::directives_from_env() {
        Some(filter) => omnigraph::logging::init_with(filter),
        None => omnigraph::logging::init(
            omnigraph::logging::level_from_env().unwrap_or(tracing::Level::INFO),
            &["omnigraph_server", "actix_server"],
        ),
    }
    let c = match config(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("omnigraph-server: refusing to start: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("lance")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("omnigraph-server: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let (nice, commit_cpu, commit_inline) =
        match bulk_nice().and_then(|n| Ok((n, commit_cpu()?, commit_io()?))) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("omnigraph-server: refusing to start: {e}");
                return ExitCode::from(2);
            }
        };
    let bulk = match bulk_runtime(nice, None, false, "bulk") {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("omnigraph-server: cannot start the bulk runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let upkeep = match bulk_runtime(nice, None, false, "upkeep") {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("omnigraph-server: cannot start the upkeep runtime: {e}");
            return ExitCode::from(2);
        }
    };
    // Commit turns: one worker at the normal priority, on one CPU
    // (`Runtimes::commit`, [`commit_cpu`]).
    let commit = match bulk_runtime(0, commit_cpu, commit_inline, "commit") {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("omnigraph-server: cannot start the commit runtime: {e}");
            return ExitCode::from(2);
        }
    };
    // `OMNIGRAPH_BULK_RUNTIME=off`: everything on the main runtime (for
    // comparison; docs/performance.md).
    let rts = if std::env::var("OMNIGRAPH_BULK_RUNTIME").as_deref() == Ok("off") {
        Runtimes::single(rt.handle().clone())
    } else {
        Runtimes {
            main: rt.handle().clone(),
            bulk: bulk.handle().clone(),
            upkeep: upkeep.handle().clone(),
            commit: commit.handle().clone(),
        }
    };
    let r = actix_web::rt::System::new().block_on(serve(c, rts));
    upkeep.shutdown_timeout(std::time::Duration::from_secs(10));
    commit.shutdown_timeout(std::time::Duration::from_secs(10));
    bulk.shutdown_timeout(std::time::Duration::from_secs(10));
    rt.shutdown_timeout(std::time::Duration::from_secs(10));
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("omnigraph-server: refusing to start: {e}");
            ExitCode::from(2)
        }
    }
}
