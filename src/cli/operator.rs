//! The operator's own files: `config.yaml` (named servers) and
//! `credentials` (bearer tokens keyed by server name), in
//! `$OMNIGRAPH_HOME`, else `~/.omnigraph` (reference
//! `docs/user/cli/reference.md`, "`~/.omnigraph/config.yaml` (operator)"
//! and "Credentials keyed by server name"; docs/cli.md, "Remote mode").
//!
//! `config.yaml` holds no token, ever: `servers: {NAME: {url: URL}}`,
//! `profiles`, `defaults` and `aliases` (`omnigraph alias`); other keys
//! are ignored. `credentials`
//! holds one section per server, `[NAME]` then `token = …`, and is created
//! `0600`; a file that group or others may read is refused with the
//! command that fixes it. A token for a server is looked up, in order, in
//! `$OMNIGRAPH_TOKEN` (this invocation's), `$OMNIGRAPH_TOKEN_<NAME>`
//! (`prod` → `OMNIGRAPH_TOKEN_PROD`), the `[NAME]` section, then
//! `$OMNIGRAPH_BEARER_TOKEN`; a keyed token is only sent to the server
//! it is keyed to (a URL is that server when it starts with the
//! server's `url`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::CliError;

/// The operator directory: `$OMNIGRAPH_HOME`, else `$HOME/.omnigraph`.
pub fn home() -> PathBuf {
    if let Some(h) = std::env::var_os("OMNIGRAPH_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h);
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".omnigraph")
}

/// What this build reads of `config.yaml`.
#[derive(Debug, Default, Deserialize)]
pub struct OperatorConfig {
    #[serde(default)]
    pub servers: BTreeMap<String, ServerEntry>,
    /// Named scope bundles (`--profile NAME`, `$OMNIGRAPH_PROFILE`).
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
    /// The scope used when a command names none.
    #[serde(default)]
    pub defaults: Profile,
    /// Personal names for invoking a stored query on a named server
    /// (`omnigraph alias NAME ARGS…`).
    #[serde(default)]
    pub aliases: BTreeMap<String, Alias>,
}

/// An operator alias: a binding, not content (reference "Operator
/// aliases"): the server, the graph, the stored query's name, the
/// parameter names positional arguments fill in order, fixed parameters,
/// and the output format.
#[derive(Debug, Clone, Deserialize)]
pub struct Alias {
    pub server: String,
    #[serde(default)]
    pub graph: Option<String>,
    pub query: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub format: Option<String>,
}

/// A scope: exactly one of a server (by name or URL), a store or a
/// cluster, and a default graph (reference "Scopes & profiles"). As
/// `defaults`, also the read format default (`output`, not used by this
/// build).
#[derive(Debug, Default, Clone, serde::Serialize, Deserialize)]
pub struct Profile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_graph: Option<String>,
}

impl Profile {
    /// `server NAME|URL`, `store URI` or `cluster ROOT`, then the default
    /// graph: one line for `profile list`.
    pub fn describe(&self) -> String {
        let scope = match (&self.server, &self.store, &self.cluster) {
            (Some(s), _, _) => format!("server {s}"),
            (None, Some(s), _) => format!("store {s}"),
            (None, None, Some(c)) => format!("cluster {c}"),
            _ => "no scope".to_string(),
        };
        match &self.default_graph {
            Some(g) => format!("{scope}, graph {g}"),
            None => scope,
        }
    }
}

/// One operator-defined server.
#[derive(Debug, Clone, Deserialize)]
pub struct ServerEntry {
    pub url: String,
}

/// Reads `config.yaml` from [`home`]; an absent file is an empty config.
/// Errors: a file that cannot be read or is not the expected YAML (input,
/// naming the file).
pub fn config() -> Result<OperatorConfig, CliError> {
    let path = home().join("config.yaml");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(OperatorConfig::default()),
        Err(source) => {
            return Err(CliError::Read {
                path: path.display().to_string(),
                source,
            });
        }
    };
    if text.trim().is_empty() {
        return Ok(OperatorConfig::default());
    }
    serde_yaml::from_str(&text).map_err(|e| CliError::Input(format!("{}: {e}", path.display())))
}

/// `--server`'s value as (URL, the operator server's name): a literal
/// `http(s)://` URL (named when it starts with an operator server's
/// `url`), or the name of a server in `config.yaml`. Errors: an unknown
/// name (usage, listing the known ones), a bad config file.
pub fn resolve_server(name_or_url: &str) -> Result<(String, Option<String>), CliError> {
    let cfg = config()?;
    if name_or_url.starts_with("http://") || name_or_url.starts_with("https://") {
        let name = cfg
            .servers
            .iter()
            .filter(|(_, s)| {
                let base = s.url.trim_end_matches('/');
                name_or_url == base
                    || name_or_url
                        .strip_prefix(base)
                        .is_some_and(|rest| rest.starts_with('/'))
            })
            .max_by_key(|(_, s)| s.url.len())
            .map(|(n, _)| n.clone());
        return Ok((name_or_url.to_string(), name));
    }
    match cfg.servers.get(name_or_url) {
        Some(s) => Ok((s.url.clone(), Some(name_or_url.to_string()))),
        None => Err(CliError::Usage(format!(
            "--server `{name_or_url}` is neither an http(s):// URL nor a server in {}",
            known_in_config(cfg.servers.keys())
        ))),
    }
}

/// `…/config.yaml (known: a, b)`, or `(it names none)`: where a name was
/// looked for and which ones exist, for a refusal of an unknown name.
pub fn known_in_config<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    format!(
        "{} ({})",
        home().join("config.yaml").display(),
        if names.is_empty() {
            "it names none".to_string()
        } else {
            format!("known: {}", names.join(", "))
        }
    )
}

fn env_token(var: &str) -> Option<String> {
    std::env::var(var)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// The bearer token for a server named `name` (module docs for the
/// order). Errors: a credentials file others may read, or one that cannot
/// be read.
pub fn token_for(name: Option<&str>) -> Result<Option<String>, CliError> {
    if let Some(t) = env_token("OMNIGRAPH_TOKEN") {
        return Ok(Some(t));
    }
    if let Some(n) = name {
        let var = format!(
            "OMNIGRAPH_TOKEN_{}",
            n.to_ascii_uppercase()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect::<String>()
        );
        if let Some(t) = env_token(&var) {
            return Ok(Some(t));
        }
        if let Some(t) = read_credentials()?.remove(n) {
            return Ok(Some(t));
        }
    }
    Ok(env_token("OMNIGRAPH_BEARER_TOKEN"))
}

fn credentials_path() -> PathBuf {
    home().join("credentials")
}

/// The tokens of the credentials file by server name; empty when there is
/// no file. Errors: a file group or others may read (with the `chmod`
/// that fixes it), one that cannot be read.
pub fn read_credentials() -> Result<BTreeMap<String, String>, CliError> {
    let path = credentials_path();
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => {
            return Err(CliError::Read {
                path: path.display().to_string(),
                source,
            });
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CliError::Usage(format!(
                "{} holds bearer tokens but is readable by others (mode {mode:04o}); \
                 refusing to use it: run `chmod 600 {}`",
                path.display(),
                path.display()
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let text = std::fs::read_to_string(&path).map_err(|source| CliError::Read {
        path: path.display().to_string(),
        source,
    })?;
    Ok(parse_credentials(&text))
}

/// `[NAME]` sections with `token = VALUE` lines; other lines are ignored.
fn parse_credentials(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut section: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.trim().to_string());
        } else if let (Some(s), Some((k, v))) = (&section, line.split_once('='))
            && k.trim() == "token"
        {
            out.insert(s.clone(), v.trim().to_string());
        }
    }
    out
}

/// Writes `tokens` as the credentials file, created `0600` (its directory
/// `0700`) and replaced whole (a temporary file renamed over it). Errors:
/// I/O.
fn write_credentials(tokens: &BTreeMap<String, String>) -> Result<(), CliError> {
    let path = credentials_path();
    let io = |source| CliError::Read {
        path: path.display().to_string(),
        source,
    };
    let dir = home();
    if !dir.exists() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(&dir).map_err(io)?;
    }
    let text: String = tokens
        .iter()
        .map(|(n, t)| format!("[{n}]\ntoken = {t}\n\n"))
        .collect();
    let tmp = dir.join(format!(".credentials.{}", std::process::id()));
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    {
        use std::io::Write;
        let mut f = o.open(&tmp).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, &path).map_err(io)
}

/// `omnigraph login NAME [--token T]`: stores the token (else one line
/// of stdin) for the operator server `NAME`. Errors: `NAME` not in
/// `config.yaml`, an empty token, I/O, an unsafe existing file.
pub fn login(name: &str, token: Option<String>) -> Result<(), CliError> {
    let cfg = config()?;
    if !cfg.servers.contains_key(name) {
        return Err(CliError::Usage(format!(
            "no server `{name}` in {}: add `servers: {{{name}: {{url: https://…}}}}` there first",
            home().join("config.yaml").display()
        )));
    }
    let token = match token {
        Some(t) => t,
        None => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|source| CliError::Read {
                    path: "stdin".into(),
                    source,
                })?;
            line
        }
    };
    let token = token.trim().to_string();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(CliError::Input(
            "the token is empty or holds whitespace; pass it with --token or as one line on stdin"
                .into(),
        ));
    }
    let mut tokens = read_credentials()?;
    tokens.insert(name.to_string(), token);
    write_credentials(&tokens)
}

/// `omnigraph logout NAME`: removes the server's token (nothing to remove
/// is not an error). Errors: I/O, an unsafe existing file.
pub fn logout(name: &str) -> Result<bool, CliError> {
    let mut tokens = read_credentials()?;
    let had = tokens.remove(name).is_some();
    if had {
        write_credentials(&tokens)?;
    }
    Ok(had)
}

#[cfg(test)]
mod tests {
    use super::parse_credentials;

    #[test]
    fn sections_and_tokens_are_read_and_other_lines_ignored() {
        let t = parse_credentials("# mine\n[prod]\ntoken = abc\nother = x\n\n[dev]\n token=def \n");
        assert_eq!(t.get("prod").map(String::as_str), Some("abc"));
        assert_eq!(t.get("dev").map(String::as_str), Some("def"));
        assert_eq!(t.len(), 2);
        assert!(parse_credentials("token = orphan\n").is_empty());
    }
}
