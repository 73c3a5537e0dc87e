//! Storage layout helpers: the cluster folder, graph roots,
//! content-addressed blobs, atomic writes.

use super::*;

pub(super) fn cluster_dir(root: &Path) -> PathBuf {
    root.join("__cluster")
}

/// Where graph `id` lives under a storage root.
pub fn graph_root(root: &Path, id: &str) -> PathBuf {
    root.join("graphs").join(format!("{id}.omni"))
}

pub(super) fn hex(d: &str) -> &str {
    d.strip_prefix("sha256:").unwrap_or(d)
}

/// The blob of a query or policy resource.
pub(super) fn blob_path(root: &Path, resource: &str, d: &str) -> Option<PathBuf> {
    let base = cluster_dir(root).join("resources");
    let parts: Vec<&str> = resource.splitn(3, '.').collect();
    match parts.as_slice() {
        ["query", g, name] => Some(
            base.join("query")
                .join(g)
                .join(name)
                .join(format!("{}.gq", hex(d))),
        ),
        ["policy", name] => Some(
            base.join("policy")
                .join(name)
                .join(format!("{}.yaml", hex(d))),
        ),
        ["policy", name, rest] => Some(
            base.join("policy")
                .join(format!("{name}.{rest}"))
                .join(format!("{}.yaml", hex(d))),
        ),
        _ => None,
    }
}

pub(super) fn io(path: &Path, e: std::io::Error) -> ClusterError {
    cerr("io_error", format!("{}: {e}", path.display()))
}

/// Writes a file atomically (temp + rename).
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ClusterError> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).map_err(|e| io(p, e))?;
    }
    let tmp = path.with_extension(format!("tmp-{}", ulid::Ulid::new()));
    std::fs::write(&tmp, bytes).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))
}
