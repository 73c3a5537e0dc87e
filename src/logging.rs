//! Logging setup shared by the binaries: `OMNIGRAPH_LOG` picks the level,
//! or holds per-target directives.

/// The level `OMNIGRAPH_LOG` names (`error|warn|info|debug|trace`, any
/// case), `None` when it is unset or not a level.
pub fn level_from_env() -> Option<tracing::Level> {
    std::env::var("OMNIGRAPH_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
}

/// Logs to stderr: the `omnigraph` target and each of `targets` at
/// `level`; every other library (Lance, DataFusion, …) at warn, or at
/// `level` itself from debug on. A second call in one process is a no-op.
pub fn init(level: tracing::Level, targets: &[&str]) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let others = if level >= tracing::Level::DEBUG {
        level
    } else {
        tracing::Level::WARN.min(level)
    };
    let filter = targets.iter().fold(
        tracing_subscriber::filter::Targets::new()
            .with_default(others)
            .with_target("omnigraph", level),
        |f, t| f.with_target(*t, level),
    );
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .try_init();
}

/// `OMNIGRAPH_LOG` as per-target directives when it is not a plain level:
/// `error,omnigraph::engine::group=debug` logs one module at debug and the
/// rest at error (the syntax of `tracing_subscriber::filter::Targets`:
/// comma-separated `target=level` pairs and at most one bare default
/// level). `None` when unset, a plain level, or not parseable.
pub fn directives_from_env() -> Option<tracing_subscriber::filter::Targets> {
    let v = std::env::var("OMNIGRAPH_LOG").ok()?;
    if v.parse::<tracing::Level>().is_ok() {
        return None;
    }
    v.parse().ok()
}

/// Logs to stderr through `filter` exactly. A second call in one process
/// is a no-op.
pub fn init_with(filter: tracing_subscriber::filter::Targets) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .try_init();
}
