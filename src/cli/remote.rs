//! Remote mode: the CLI's graph verbs sent to an `omnigraph-server` over
//! HTTP instead of opening the graph's storage (reference
//! `docs/user/cli/reference.md`, "Scopes & profiles"; docs/cli.md,
//! "Remote mode").
//!
//! `--server URL --graph ID` addresses a served graph; the request and
//! response bodies are the server's (`src/api`), so `--json` prints the
//! same shapes embedded and remote. `--server` is a URL or the name of a
//! server in the operator's `config.yaml`; the bearer token is found as
//! [`super::operator`] says (`OMNIGRAPH_TOKEN`, the server's keyed token
//! from the environment or `credentials`, `OMNIGRAPH_BEARER_TOKEN`). A
//! refusal prints as one line with the
//! server's error code; `429` is retried after its `Retry-After` (at most
//! [`MAX_RETRIES`] times, each wait at most [`MAX_RETRY_WAIT`]).

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::CliError;

/// Retries of a `429 Too Many Requests` before the refusal is reported.
pub const MAX_RETRIES: u32 = 3;

/// The longest `Retry-After` the client waits; a longer one is reported
/// instead of waited for.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

/// A request's whole deadline (a large load included).
pub const TIMEOUT: Duration = Duration::from_secs(600);

/// The flags that address a served graph.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerArgs {
    /// A server to send the command to: an `http://` or `https://` URL,
    /// or the name of a server in the operator's `config.yaml` (reference
    /// CLI `--server`). Exclusive with a graph URI or `--store`.
    #[arg(long, value_name = "NAME|URL")]
    pub server: Option<String>,
    /// The graph on that server (`omnigraph graphs list --server URL`
    /// lists them); overrides a profile's `default_graph`.
    #[arg(long, value_name = "ID")]
    pub graph: Option<String>,
    /// A named scope from the operator's `config.yaml` (`profiles:`);
    /// also `$OMNIGRAPH_PROFILE`. An explicit address (`--server`, a URI,
    /// `--store`) wins over it.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
}

impl ServerArgs {
    /// The client for the served scope this command resolves to, or
    /// `None` for a graph opened directly: `--server`; else the profile
    /// (`--profile`, `$OMNIGRAPH_PROFILE`) when no local address is
    /// given (`local`); else `defaults.server` when none is. Errors: an
    /// unknown profile, a store- or cluster-bound one (not supported
    /// here), `--graph` without a served scope, a bad server.
    pub fn remote_unless(&self, local: bool) -> Result<Option<Remote>, CliError> {
        if let Some(s) = &self.server {
            return Remote::new(s, self.graph.clone()).map(Some);
        }
        if !local {
            let named = self.profile.clone().or_else(|| {
                std::env::var("OMNIGRAPH_PROFILE")
                    .ok()
                    .filter(|p| !p.trim().is_empty())
            });
            let cfg = super::operator::config()?;
            let scope = match &named {
                Some(n) => Some(cfg.profiles.get(n).cloned().ok_or_else(|| {
                    CliError::Usage(format!(
                        "no profile `{n}` in {}",
                        super::operator::known_in_config(cfg.profiles.keys())
                    ))
                })?),
                None => cfg.defaults.server.is_some().then(|| cfg.defaults.clone()),
            };
            if let Some(p) = scope {
                if let Some(s) = &p.server {
                    let graph = self.graph.clone().or(p.default_graph.clone());
                    return Remote::new(s, graph).map(Some);
                }
                return Err(CliError::Usage(format!(
                    "profile `{}` is {}: this build reaches only server-bound profiles; \
                     pass the graph's URI or --store instead",
                    named.unwrap_or_default(),
                    p.describe()
                )));
            }
        }
        if self.graph.is_some() {
            return Err(CliError::Usage(
                "--graph selects a graph on a server: pass --server URL|NAME or --profile NAME"
                    .into(),
            ));
        }
        Ok(None)
    }
}

/// The reference's message for a positional or `--store` `http(s)://`
/// URI: a server is addressed with `--server` only.
pub fn refuse_http_uri(uri: &str) -> Result<(), CliError> {
    if uri.starts_with("http://") || uri.starts_with("https://") {
        return Err(CliError::Usage(format!(
            "a remote graph must be addressed with --server <url> --graph <id>; \
             a positional (or --store/--uri) http(s):// URL ({uri}) does not dispatch to a server"
        )));
    }
    Ok(())
}

/// A client of one server (and, for graph verbs, one graph on it).
pub struct Remote {
    base: reqwest::Url,
    graph: Option<String>,
    token: Option<String>,
    client: reqwest::Client,
}

/// What the server answered with: its status and body.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl Remote {
    /// A client of `server` (an `http(s)://` URL or an operator server's
    /// name). Errors: an unknown name or an unparsable URL (usage), an
    /// unsafe credentials file, a client that cannot be built.
    pub fn new(server: &str, graph: Option<String>) -> Result<Remote, CliError> {
        let (url, name) = super::operator::resolve_server(server)?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(CliError::Usage(format!(
                "--server {server}: the server's url `{url}` is not http:// or https://"
            )));
        }
        let server = url.as_str();
        let mut base = reqwest::Url::parse(server)
            .map_err(|e| CliError::Usage(format!("--server {server}: {e}")))?;
        // Path segments are appended below; a trailing slash would add an
        // empty one.
        if base.path().ends_with('/') {
            let p = base.path().trim_end_matches('/').to_string();
            base.set_path(&p);
        }
        let token = super::operator::token_for(name.as_deref())?;
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| CliError::Usage(format!("cannot build the HTTP client: {e}")))?;
        Ok(Remote {
            base,
            graph,
            token,
            client,
        })
    }

    /// The server's base URL and the graph, for the write echo.
    pub fn describe(&self) -> String {
        let base = self.base.as_str().trim_end_matches('/');
        match &self.graph {
            Some(g) => format!("{base} graph {g}"),
            None => base.to_string(),
        }
    }

    /// The URL of `segments` under the server (each segment
    /// percent-encoded, so a branch `review/x` stays one segment).
    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> reqwest::Url {
        let mut u = self.base.clone();
        if let Ok(mut p) = u.path_segments_mut() {
            p.extend(segments);
        }
        if !query.is_empty() {
            u.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        u
    }

    /// The URL of `rest` under `/graphs/{graph}`. Errors: no `--graph`.
    fn graph_url(&self, rest: &[&str], query: &[(&str, String)]) -> Result<reqwest::Url, CliError> {
        let g = self.graph.as_deref().ok_or_else(|| {
            CliError::Usage(format!(
                "which graph on {}? pass --graph ID (`omnigraph graphs list --server {}` lists them)",
                self.base, self.base
            ))
        })?;
        let mut segments = vec!["graphs", g];
        segments.extend_from_slice(rest);
        Ok(self.url(&segments, query))
    }

    /// Sends the request `build` makes, retrying a `429` after its
    /// `Retry-After`; returns a success's body decoded as `T`. Errors: the
    /// server unreachable or timing out, a refusal (its code and message),
    /// a body that is not the expected JSON.
    async fn send<T: DeserializeOwned>(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<T, CliError> {
        let mut tries = 0;
        loop {
            let mut rb = build();
            if let Some(t) = &self.token {
                rb = rb.bearer_auth(t);
            }
            let res = rb.send().await.map_err(|e| CliError::Remote {
                status: 0,
                code: "unreachable".into(),
                message: format!("{}: {e}", self.base),
            })?;
            let status = res.status().as_u16();
            let retry_after = res
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = res.bytes().await.map_err(|e| CliError::Remote {
                status,
                code: "unreachable".into(),
                message: format!("reading the answer of {}: {e}", self.base),
            })?;
            let answer = Answer {
                status,
                body: body.to_vec(),
            };
            if status == 429 && tries < MAX_RETRIES {
                let wait = retry_after.unwrap_or(Duration::from_secs(1));
                if wait <= MAX_RETRY_WAIT {
                    tries += 1;
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            return decode(answer);
        }
    }

    /// `GET` of `segments` under the server.
    pub async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<T, CliError> {
        let u = self.url(segments, query);
        self.send(|| self.client.get(u.clone())).await
    }

    /// `GET` of `rest` under the graph.
    pub async fn graph_get<T: DeserializeOwned>(
        &self,
        rest: &[&str],
        query: &[(&str, String)],
    ) -> Result<T, CliError> {
        let u = self.graph_url(rest, query)?;
        self.send(|| self.client.get(u.clone())).await
    }

    /// `POST` of `body` as JSON to `rest` under the graph.
    pub async fn graph_post<B: Serialize, T: DeserializeOwned>(
        &self,
        rest: &[&str],
        body: &B,
    ) -> Result<T, CliError> {
        self.graph_post_with(rest, None, body).await
    }

    /// [`Remote::graph_post`] with `Omnigraph-If-Graph-Commit: <commit>`
    /// (the conditional routes end in `if-graph-commit`).
    pub async fn graph_post_if<B: Serialize, T: DeserializeOwned>(
        &self,
        rest: &[&str],
        commit: &str,
        body: &B,
    ) -> Result<T, CliError> {
        self.graph_post_with(rest, Some(commit), body).await
    }

    async fn graph_post_with<B: Serialize, T: DeserializeOwned>(
        &self,
        rest: &[&str],
        if_commit: Option<&str>,
        body: &B,
    ) -> Result<T, CliError> {
        let u = self.graph_url(rest, &[])?;
        let bytes = serde_json::to_vec(body)
            .map_err(|e| CliError::Input(format!("cannot encode the request: {e}")))?;
        self.send(|| {
            let rb = self
                .client
                .post(u.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes.clone());
            match if_commit {
                Some(c) => rb.header("Omnigraph-If-Graph-Commit", c),
                None => rb,
            }
        })
        .await
    }

    /// `POST` of raw `bytes` (`content_type`) to `rest` under the graph.
    pub async fn graph_post_raw<T: DeserializeOwned>(
        &self,
        rest: &[&str],
        query: &[(&str, String)],
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<T, CliError> {
        let u = self.graph_url(rest, query)?;
        let body = bytes::Bytes::from(bytes);
        self.send(|| {
            self.client
                .post(u.clone())
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body.clone())
        })
        .await
    }

    /// `POST` of `body` as JSON to `rest` under the graph, the answer's
    /// body streamed into `sink` as it arrives (an export's NDJSON).
    /// Returns the bytes written. Errors: as [`Remote::send`]'s, and the
    /// sink failing (I/O).
    pub async fn graph_post_stream<B: Serialize>(
        &self,
        rest: &[&str],
        body: &B,
        sink: &mut dyn std::io::Write,
    ) -> Result<u64, CliError> {
        let u = self.graph_url(rest, &[])?;
        let bytes = serde_json::to_vec(body)
            .map_err(|e| CliError::Input(format!("cannot encode the request: {e}")))?;
        let mut rb = self
            .client
            .post(u)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(bytes);
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        let unreachable = |e: reqwest::Error| CliError::Remote {
            status: 0,
            code: "unreachable".into(),
            message: format!("{}: {e}", self.base),
        };
        let mut res = rb.send().await.map_err(unreachable)?;
        let status = res.status().as_u16();
        if !(200..300).contains(&status) {
            let body = res.bytes().await.map_err(unreachable)?;
            return decode::<serde_json::Value>(Answer {
                status,
                body: body.to_vec(),
            })
            .map(|_| 0);
        }
        let mut n = 0u64;
        while let Some(chunk) = res.chunk().await.map_err(unreachable)? {
            sink.write_all(&chunk).map_err(|source| CliError::Read {
                path: "the output".into(),
                source,
            })?;
            n += chunk.len() as u64;
        }
        Ok(n)
    }

    /// A `method` (`GET` or `HEAD`) of `rest` under the graph with extra
    /// request `headers`, for a binary answer: its status, response
    /// headers and body. Errors: unreachable, and any status outside
    /// 200..300 decoded as [`Remote::send`] does (a HEAD refusal has no
    /// body: its status alone).
    pub async fn graph_bytes(
        &self,
        method: reqwest::Method,
        rest: &[&str],
        query: &[(&str, String)],
        headers: &[(&str, String)],
    ) -> Result<(u16, reqwest::header::HeaderMap, Vec<u8>), CliError> {
        let u = self.graph_url(rest, query)?;
        let mut rb = self.client.request(method, u);
        for (k, v) in headers {
            rb = rb.header(*k, v);
        }
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        let unreachable = |e: reqwest::Error| CliError::Remote {
            status: 0,
            code: "unreachable".into(),
            message: format!("{}: {e}", self.base),
        };
        let res = rb.send().await.map_err(unreachable)?;
        let status = res.status().as_u16();
        let head = res.headers().clone();
        let body = res.bytes().await.map_err(unreachable)?.to_vec();
        if !(200..300).contains(&status) {
            if body.is_empty() {
                return Err(CliError::Remote {
                    status,
                    code: "error".into(),
                    message: format!("the server answered {status}"),
                });
            }
            return decode::<serde_json::Value>(Answer { status, body })
                .map(|_| (status, head, Vec::new()));
        }
        Ok((status, head, body))
    }

    /// `DELETE` of `rest` under the graph.
    pub async fn graph_delete<T: DeserializeOwned>(&self, rest: &[&str]) -> Result<T, CliError> {
        let u = self.graph_url(rest, &[])?;
        self.send(|| self.client.delete(u.clone())).await
    }
}

/// A success's body as `T`, or the refusal as [`CliError::Remote`] with
/// the server's `code` and `error` (`docs/server.md`, "Errors").
fn decode<T: DeserializeOwned>(a: Answer) -> Result<T, CliError> {
    if (200..300).contains(&a.status) {
        return serde_json::from_slice(&a.body).map_err(|e| CliError::Remote {
            status: a.status,
            code: "bad_response".into(),
            message: format!(
                "the server's answer is not what this CLI expects ({e}): {}",
                String::from_utf8_lossy(&a.body[..a.body.len().min(300)])
            ),
        });
    }
    let (code, message) = match serde_json::from_slice::<crate::api::ErrorOutput>(&a.body) {
        Ok(e) => (
            e.code
                .and_then(|c| serde_json::to_value(c).ok())
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| {
                    if e.precondition_failure.is_some() {
                        "precondition_failure".into()
                    } else {
                        "error".into()
                    }
                }),
            e.error,
        ),
        Err(_) => (
            "error".into(),
            String::from_utf8_lossy(&a.body[..a.body.len().min(300)]).into_owned(),
        ),
    };
    Err(CliError::Remote {
        status: a.status,
        code,
        message,
    })
}
