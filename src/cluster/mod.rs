//! The cluster control plane: `cluster.yaml` (reference
//! `docs/user/clusters/config.md` of ModernRelay/omnigraph). This file
//! parses and validates the config (`cluster validate`); [`plan`] diffs it
//! against the state ledger; [`apply`] holds the writers (`import`,
//! `apply`, `approve`, `force-unlock`, `refresh`, `status`) and
//! [`apply::serving`], what `omnigraph-server --cluster` boots from.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::policy::{BundleKind, PolicyEngine};

pub mod apply;
pub mod plan;

/// `cluster.yaml`. Unknown fields are refused; fields the reference
/// reserves for later phases are refused with `unsupported_field`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    version: u32,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    storage: Option<String>,
    #[serde(default)]
    state: Option<StateDecl>,
    #[serde(default)]
    graphs: BTreeMap<String, GraphFile>,
    #[serde(default)]
    policies: BTreeMap<String, PolicyDecl>,
    /// `providers:`: only the `embedding` namespace is supported.
    #[serde(default)]
    providers: BTreeMap<String, serde_yaml::Value>,
}

/// `providers.embedding.<name>` (reference docs/user/clusters/config.md):
/// a query-time embedding provider profile. `api_key` must be `${ENV}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingProfile {
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub api_key: Option<String>,
}

impl EmbeddingProfile {
    /// The server's embedding configuration for this profile, resolving
    /// `api_key`'s `${ENV}` through `get` (done only when a `--cluster`
    /// server boots). Errors name the variable to set.
    pub fn resolve(
        &self,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<crate::embed::EmbeddingConfig, crate::embed::EmbeddingError> {
        crate::embed::EmbeddingConfig::from_profile(
            self.kind.as_deref().unwrap_or("openai-compatible"),
            self.base_url.as_deref(),
            self.model.as_deref(),
            self.api_key.as_deref(),
            get,
        )
    }
}

/// A graph's `embedding_provider:` as a profile name: `name`,
/// `provider.embedding.name` or `providers.embedding.name`.
fn provider_name(r: &str) -> &str {
    r.strip_prefix("provider.embedding.")
        .or_else(|| r.strip_prefix("providers.embedding."))
        .unwrap_or(r)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateDecl {
    #[serde(default)]
    backend: Option<String>,
    /// Read by `plan`/`apply` when they land; accepted now so valid
    /// configs validate.
    #[serde(default)]
    #[allow(dead_code)]
    lock: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GraphFile {
    schema: String,
    #[serde(default)]
    queries: Option<QueriesDecl>,
    /// A `providers.embedding.<name>` this graph embeds query text with.
    #[serde(default)]
    embedding_provider: Option<String>,
}

/// The three forms of a graph's `queries:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum QueriesDecl {
    /// A directory: every top-level `*.gq`, sorted.
    Dir(String),
    /// Explicit files.
    Files(Vec<String>),
    /// `name: {file: F}`.
    Map(BTreeMap<String, QueryRef>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRef {
    pub file: String,
}

/// A policy entry.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDecl {
    pub file: String,
    pub applies_to: Vec<String>,
}

/// One validation problem: a stable code, the resource it is about
/// (`graph.<id>`, `schema.<id>`, `query.<graph>.<name>`, `policy.<name>`,
/// `config`) and a message naming the file and the remedy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub code: &'static str,
    pub resource: String,
    pub message: String,
}

/// The outcome of `cluster validate`.
#[derive(Debug, Clone, Serialize)]
pub struct ValidationReport {
    pub ok: bool,
    pub name: Option<String>,
    pub graphs: usize,
    pub queries: usize,
    pub policies: usize,
    pub findings: Vec<Finding>,
    /// Desired resources (`schema.<g>`, `query.<g>.<name>`, `graph.<g>`,
    /// `policy.<name>`) → content digest `sha256:<hex>`; what `plan`
    /// compares with the ledger.
    #[serde(skip)]
    pub resources: BTreeMap<String, String>,
    /// Where the cluster stores its state and graphs: `storage:` (a path
    /// relative to the folder, `file://…` or `s3://bucket/prefix`) or the
    /// folder itself.
    #[serde(skip)]
    pub storage_root: crate::engine::root::Root,
    /// What `apply` publishes per desired resource: the schema source, the
    /// query file's source, the policy bundle's text.
    #[serde(skip)]
    pub payloads: BTreeMap<String, String>,
    /// Each policy resource's `applies_to`.
    #[serde(skip)]
    pub bindings: BTreeMap<String, Vec<String>>,
}

/// `sha256:<hex>` of some bytes.
pub fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(bytes);
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Fields the reference reserves for later phases.
const RESERVED: [&str; 5] = ["pipelines", "embeddings", "ui", "aliases", "bindings"];

fn finding(code: &'static str, resource: impl Into<String>, message: impl Into<String>) -> Finding {
    Finding {
        code,
        resource: resource.into(),
        message: message.into(),
    }
}

/// The `.gq` files a `queries:` declaration names, relative to `dir`.
fn query_files(dir: &Path, q: &QueriesDecl) -> Result<Vec<PathBuf>, String> {
    match q {
        QueriesDecl::Dir(d) => {
            let path = dir.join(d);
            let mut files: Vec<PathBuf> = std::fs::read_dir(&path)
                .map_err(|e| format!("cannot read query directory {}: {e}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "gq"))
                .collect();
            files.sort();
            Ok(files)
        }
        QueriesDecl::Files(list) => Ok(list.iter().map(|f| dir.join(f)).collect()),
        QueriesDecl::Map(m) => {
            let set: BTreeSet<PathBuf> = m.values().map(|r| dir.join(&r.file)).collect();
            Ok(set.into_iter().collect())
        }
    }
}

/// Validates `providers:` and the graphs' `embedding_provider:`; each
/// profile becomes the resource `provider.embedding.<name>` (payload: its
/// JSON, `api_key` as the `${ENV}` reference; bound to the graphs that
/// name it, like a policy's `applies_to`).
fn embedding_providers(
    file: &ConfigFile,
    report: &mut ValidationReport,
    findings: &mut Vec<Finding>,
) {
    let mut profiles: BTreeMap<String, EmbeddingProfile> = BTreeMap::new();
    for (ns, v) in &file.providers {
        if ns != "embedding" {
            findings.push(finding(
                "unsupported_field",
                "config",
                format!("`providers.{ns}` is not supported; only `providers.embedding` is"),
            ));
            continue;
        }
        let map: BTreeMap<String, EmbeddingProfile> = match serde_yaml::from_value(v.clone()) {
            Ok(m) => m,
            Err(e) => {
                findings.push(finding(
                    "config_syntax",
                    "config",
                    format!("`providers.embedding`: {e}; each entry takes kind, base_url, model, api_key"),
                ));
                continue;
            }
        };
        for (name, p) in map {
            let res = format!("provider.embedding.{name}");
            // The name becomes a path segment of the published profile.
            if crate::engine::GraphId::parse(&name).is_err() {
                findings.push(finding(
                    "invalid_provider",
                    &res,
                    format!("provider name `{name}`: use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit"),
                ));
                continue;
            }
            let kind = p.kind.as_deref().unwrap_or("openai-compatible");
            let real = match crate::embed::Provider::parse(kind) {
                Err(e) => {
                    findings.push(finding("invalid_provider", &res, e.to_string()));
                    false
                }
                Ok(k) => k != crate::embed::Provider::Mock,
            };
            match &p.api_key {
                None if real => findings.push(finding(
                    "provider_key_missing",
                    &res,
                    "a real embedding provider needs `api_key: ${ENV_VAR}`",
                )),
                None => {}
                Some(k) => {
                    if let Err(e) = crate::embed::check_key_reference(k) {
                        findings.push(finding("inline_secret", &res, e));
                    }
                }
            }
            if let Some(b) = &p.base_url
                && !(b.starts_with("http://") || b.starts_with("https://"))
            {
                findings.push(finding(
                    "invalid_provider",
                    &res,
                    format!("base_url `{b}` is not an http(s) URL"),
                ));
            }
            profiles.insert(name, p);
        }
    }
    let mut bound: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, g) in &file.graphs {
        let Some(r) = &g.embedding_provider else {
            continue;
        };
        let name = provider_name(r);
        if !profiles.contains_key(name) {
            findings.push(finding(
                "unknown_provider",
                format!("graph.{id}"),
                format!(
                    "embedding_provider `{r}` names no `providers.embedding.{name}`; {}",
                    crate::diag::valid_list("providers", profiles.keys().map(|k| k.as_str()))
                ),
            ));
            continue;
        }
        bound.entry(name.to_string()).or_default().push(id.clone());
    }
    for (name, p) in &profiles {
        let res = format!("provider.embedding.{name}");
        let text = serde_json::to_string(p).unwrap_or_default();
        let graphs = bound.remove(name).unwrap_or_default();
        let d = digest(format!("{text}\napplies_to:{}", graphs.join(",")).as_bytes());
        report.resources.insert(res.clone(), d);
        report.payloads.insert(res.clone(), text);
        report.bindings.insert(res, graphs);
    }
}

/// Validates the cluster folder `dir` (which holds `cluster.yaml`): syntax
/// and fields, schema files that compile, stored queries that parse and type
/// check against their graph's schema with unique names, policy bundles
/// that compile, `applies_to` naming declared graphs or `cluster`, one
/// runtime kind per bundle, one bundle per scope. Every problem is reported,
/// not only the first. `Err` only when `cluster.yaml` cannot be read.
pub fn validate(dir: &Path) -> Result<ValidationReport, String> {
    let path = dir.join("cluster.yaml");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut findings = Vec::new();
    let mut report = ValidationReport {
        ok: false,
        name: None,
        graphs: 0,
        queries: 0,
        policies: 0,
        findings: Vec::new(),
        resources: BTreeMap::new(),
        storage_root: crate::engine::root::Root::Local(
            std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()),
        ),
        payloads: BTreeMap::new(),
        bindings: BTreeMap::new(),
    };
    // Reserved fields first, so they get their own code.
    if let Ok(serde_yaml::Value::Mapping(m)) = serde_yaml::from_str::<serde_yaml::Value>(&text) {
        for key in m.keys().filter_map(|k| k.as_str()) {
            if RESERVED.contains(&key) {
                findings.push(finding(
                    "unsupported_field",
                    "config",
                    format!(
                        "{}: `{key}:` is not supported by this release; remove it",
                        path.display()
                    ),
                ));
            }
        }
    }
    let mut stripped = text.clone();
    if !findings.is_empty()
        && let Ok(serde_yaml::Value::Mapping(mut m)) =
            serde_yaml::from_str::<serde_yaml::Value>(&text)
    {
        for k in RESERVED {
            m.remove(k);
        }
        stripped = serde_yaml::to_string(&m).unwrap_or(text.clone());
    }
    let file: ConfigFile = match serde_yaml::from_str(&stripped) {
        Ok(f) => f,
        Err(e) => {
            let at = e
                .location()
                .map(|l| format!("line {}, column {}: ", l.line(), l.column()))
                .unwrap_or_default();
            findings.push(finding(
                "config_syntax",
                "config",
                format!("{}: {at}{e}", path.display()),
            ));
            report.findings = findings;
            return Ok(report);
        }
    };
    if file.version != 1 {
        findings.push(finding(
            "unsupported_version",
            "config",
            format!(
                "{}: `version: {}` is not supported; use `version: 1`",
                path.display(),
                file.version
            ),
        ));
    }
    if let Some(s) = &file.state
        && let Some(b) = &s.backend
        && b != "cluster"
    {
        findings.push(finding(
            "unsupported_state_backend",
            "config",
            format!("state.backend `{b}` is not supported; omit it or use `cluster`"),
        ));
    }
    report.name = file.metadata.as_ref().and_then(|m| m.name.clone());
    if let Some(storage) = &file.storage {
        // A relative local path is relative to the folder.
        let uri = if storage.contains("://") {
            storage.clone()
        } else {
            dir.join(storage).display().to_string()
        };
        match crate::engine::root::Root::parse(&uri) {
            Ok(root) => report.storage_root = root,
            Err(e) => findings.push(finding(
                "unsupported_storage",
                "config",
                format!(
                    "{}: storage `{storage}`: {e}; use a path, file://… or s3://bucket/prefix",
                    path.display()
                ),
            )),
        }
    }
    for (id, g) in &file.graphs {
        report.graphs += 1;
        if let Err(e) = crate::engine::GraphId::parse(id) {
            findings.push(finding(
                "invalid_graph_id",
                format!("graph.{id}"),
                e.to_string(),
            ));
        }
        let schema_path = dir.join(&g.schema);
        let mut graph_parts: Vec<String> = Vec::new();
        if let Some(r) = &g.embedding_provider {
            graph_parts.push(format!("embedding_provider:{}", provider_name(r)));
        }
        let catalog = match std::fs::read_to_string(&schema_path) {
            Err(e) => {
                findings.push(finding(
                    "schema_missing",
                    format!("schema.{id}"),
                    format!("cannot read {}: {e}", schema_path.display()),
                ));
                None
            }
            Ok(src) => {
                let d = digest(src.as_bytes());
                graph_parts.push(format!("schema:{d}"));
                report.resources.insert(format!("schema.{id}"), d);
                report.payloads.insert(format!("schema.{id}"), src.clone());
                match crate::schema::compile_schema_file(&schema_path.display().to_string(), &src) {
                    Ok(c) => Some(c),
                    Err(d) => {
                        findings.push(finding(
                            "schema_error",
                            format!("schema.{id}"),
                            d.render(false),
                        ));
                        None
                    }
                }
            }
        };
        let Some(q) = &g.queries else {
            report.resources.insert(
                format!("graph.{id}"),
                digest(graph_parts.join("\n").as_bytes()),
            );
            continue;
        };
        let files = match query_files(dir, q) {
            Ok(f) => f,
            Err(e) => {
                findings.push(finding("query_missing", format!("graph.{id}"), e));
                continue;
            }
        };
        let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
        for f in files {
            let src = match std::fs::read_to_string(&f) {
                Ok(s) => s,
                Err(e) => {
                    findings.push(finding(
                        "query_missing",
                        format!("graph.{id}"),
                        format!("cannot read {}: {e}", f.display()),
                    ));
                    continue;
                }
            };
            let Some(catalog) = &catalog else { continue };
            let (compiled, diags) =
                crate::query::compile_queries_file(catalog, &f.display().to_string(), &src);
            if compiled.has_errors() {
                findings.push(finding(
                    "query_parse_error",
                    format!("graph.{id}"),
                    diags.render(false),
                ));
            }
            for name in &compiled.declared {
                if let QueriesDecl::Map(m) = q
                    && !m.contains_key(name)
                {
                    continue;
                }
                let d = digest(src.as_bytes());
                report
                    .resources
                    .insert(format!("query.{id}.{name}"), d.clone());
                report
                    .payloads
                    .insert(format!("query.{id}.{name}"), src.clone());
                graph_parts.push(format!("query.{name}:{d}"));
                if let Some(prev) = seen.insert(name.clone(), f.clone()) {
                    findings.push(finding(
                        "duplicate_query_name",
                        format!("query.{id}.{name}"),
                        format!(
                            "query `{name}` is declared in both {} and {}",
                            prev.display(),
                            f.display()
                        ),
                    ));
                }
            }
        }
        if let QueriesDecl::Map(m) = q
            && catalog.is_some()
        {
            for (name, r) in m {
                if !seen.contains_key(name) {
                    findings.push(finding(
                        "query_not_found",
                        format!("query.{id}.{name}"),
                        format!("{} declares no query `{name}`", dir.join(&r.file).display()),
                    ));
                }
            }
        }
        report.queries += seen.len();
        graph_parts.sort();
        report.resources.insert(
            format!("graph.{id}"),
            digest(graph_parts.join("\n").as_bytes()),
        );
    }
    embedding_providers(&file, &mut report, &mut findings);
    let mut scopes: BTreeMap<String, String> = BTreeMap::new();
    for (name, p) in &file.policies {
        report.policies += 1;
        let res = format!("policy.{name}");
        let ppath = dir.join(&p.file);
        let bundle = match std::fs::read_to_string(&ppath) {
            Err(e) => {
                findings.push(finding(
                    "policy_missing",
                    &res,
                    format!("cannot read {}: {e}", ppath.display()),
                ));
                None
            }
            Ok(text) => {
                // The digest covers the bundle and its bindings.
                let mut bound = p.applies_to.clone();
                bound.sort();
                let d = digest(format!("{text}\napplies_to:{}", bound.join(",")).as_bytes());
                report.resources.insert(res.clone(), d);
                report.payloads.insert(res.clone(), text.clone());
                report.bindings.insert(res.clone(), bound);
                match PolicyEngine::compile(&ppath.display().to_string(), &text) {
                    Ok(b) => Some(b),
                    Err(e) => {
                        findings.push(finding("policy_error", &res, e.to_string()));
                        None
                    }
                }
            }
        };
        if p.applies_to.is_empty() {
            findings.push(finding(
                "policy_unbound",
                &res,
                "`applies_to` is empty; name graphs or `cluster`",
            ));
        }
        let server = p.applies_to.iter().any(|a| a == "cluster");
        if server && p.applies_to.len() > 1 {
            findings.push(finding(
                "policy_kind_mismatch",
                &res,
                "a bundle applies either to `cluster` or to graphs, never both; split it",
            ));
        }
        for a in &p.applies_to {
            if a != "cluster" && !file.graphs.contains_key(a) {
                findings.push(finding(
                    "unknown_graph",
                    &res,
                    format!("applies_to names `{a}`, which `graphs:` does not declare"),
                ));
            }
            if let Some(other) = scopes.insert(a.clone(), name.clone()) {
                findings.push(finding(
                    "duplicate_policy_scope",
                    &res,
                    format!("`{a}` already has bundle `{other}`; one bundle per scope — combine the rules into one file"),
                ));
            }
        }
        if let Some(b) = bundle {
            let want = if server {
                BundleKind::Server
            } else {
                BundleKind::Graph
            };
            if b.kind() != want {
                findings.push(finding(
                    "policy_kind_mismatch",
                    &res,
                    format!(
                        "{} holds {} rules but applies_to binds it to {}",
                        ppath.display(),
                        if b.kind() == BundleKind::Server {
                            "server"
                        } else {
                            "per-graph"
                        },
                        if server { "`cluster`" } else { "graphs" }
                    ),
                ));
            }
        }
    }
    report.ok = findings.is_empty();
    report.findings = findings;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(p, text).expect("write");
    }

    const SCHEMA: &str = "node Person {\n  name: String @key\n}\n";
    const QUERY: &str = "query people() {\n  match { $p: Person }\n  return { $p.name }\n}\n";
    const GRAPH_POLICY: &str =
        "version: 1\nrules:\n  - id: r\n    allow:\n      actors: \"*\"\n      actions: [read]\n";
    const SERVER_POLICY: &str = "version: 1\nkind: server\nrules:\n  - id: s\n    allow:\n      actors: \"*\"\n      actions: [graph_list]\n";

    fn folder(config: &str) -> tempfile::TempDir {
        let t = tempfile::tempdir().expect("tmp");
        write(t.path(), "cluster.yaml", config);
        write(t.path(), "a.pg", SCHEMA);
        write(t.path(), "queries/people.gq", QUERY);
        write(t.path(), "g.policy.yaml", GRAPH_POLICY);
        write(t.path(), "s.policy.yaml", SERVER_POLICY);
        t
    }

    const GOOD: &str = "version: 1\nmetadata:\n  name: test\ngraphs:\n  a:\n    schema: a.pg\n    queries: queries/\npolicies:\n  g:\n    file: g.policy.yaml\n    applies_to: [a]\n  s:\n    file: s.policy.yaml\n    applies_to: [cluster]\n";

    #[test]
    fn a_good_folder_validates() {
        let t = folder(GOOD);
        let r = validate(t.path()).expect("read");
        assert!(r.ok, "{:?}", r.findings);
        assert_eq!((r.graphs, r.queries, r.policies), (1, 1, 2));
        assert_eq!(r.name.as_deref(), Some("test"));
    }

    #[test]
    fn every_problem_is_reported_with_its_code() {
        let cases: Vec<(String, &str)> = vec![
            (
                GOOD.replace("schema: a.pg", "schema: nope.pg"),
                "schema_missing",
            ),
            (
                GOOD.replace(
                    "queries: queries/",
                    "queries: [queries/people.gq, queries/people.gq]",
                ),
                "duplicate_query_name",
            ),
            (
                GOOD.replace(
                    "queries: queries/",
                    "queries:\n      nobody:\n        file: queries/people.gq",
                ),
                "query_not_found",
            ),
            (
                GOOD.replace("applies_to: [a]", "applies_to: [b]"),
                "unknown_graph",
            ),
            (
                GOOD.replace("applies_to: [a]", "applies_to: [a, cluster]"),
                "policy_kind_mismatch",
            ),
            (
                GOOD.replace("file: s.policy.yaml", "file: g.policy.yaml"),
                "policy_kind_mismatch",
            ),
            (
                GOOD.replace("applies_to: [cluster]", "applies_to: [a]"),
                "duplicate_policy_scope",
            ),
            (format!("{GOOD}pipelines: {{}}\n"), "unsupported_field"),
            (
                GOOD.replace("version: 1\nmetadata", "version: 2\nmetadata"),
                "unsupported_version",
            ),
            (GOOD.replace("metadata:", "metadataa:"), "config_syntax"),
            (
                GOOD.replace("graphs:\n  a:", "graphs:\n  ../a:"),
                "invalid_graph_id",
            ),
        ];
        for (config, code) in cases {
            let t = folder(&config);
            let r = validate(t.path()).expect("read");
            assert!(!r.ok, "{config}");
            assert!(
                r.findings.iter().any(|f| f.code == code),
                "{code}: {:?}",
                r.findings
            );
        }
        // A schema error and a query that no longer type checks.
        let t = folder(GOOD);
        write(
            t.path(),
            "queries/people.gq",
            "query q() { match { $p: Nobody } return { $p } }\n",
        );
        let r = validate(t.path()).expect("read");
        assert!(
            r.findings
                .iter()
                .any(|f| f.code == "query_parse_error" && f.message.contains("people.gq")),
            "{:?}",
            r.findings
        );
        write(t.path(), "a.pg", "node {\n");
        let r = validate(t.path()).expect("read");
        assert!(
            r.findings.iter().any(|f| f.code == "schema_error"),
            "{:?}",
            r.findings
        );
    }
}
