//! Content-addressed blobs: the published text of query and policy
//! resources, under `__cluster/resources/`.

pub(super) fn hex(d: &str) -> &str {
    d.strip_prefix("sha256:").unwrap_or(d)
}

/// The blob of a query or policy resource, relative to `__cluster/`.
pub(super) fn blob_path(resource: &str, d: &str) -> Option<String> {
    let parts: Vec<&str> = resource.splitn(3, '.').collect();
    match parts.as_slice() {
        ["query", g, name] => Some(format!("resources/query/{g}/{name}/{}.gq", hex(d))),
        ["policy", name] => Some(format!("resources/policy/{name}/{}.yaml", hex(d))),
        ["policy", name, rest] => Some(format!("resources/policy/{name}.{rest}/{}.yaml", hex(d))),
        ["provider", ns, name] => Some(format!("resources/provider/{ns}/{name}/{}.json", hex(d))),
        _ => None,
    }
}
