//! The embedding client: one provider-independent client that turns text
//! into vectors for `@embed` properties (load, insert, update,
//! `omnigraph embed`) and for `nearest($v, "text")` queries.
//!
//! Reference: docs/user/search/embeddings.md (providers, variables, the
//! L2-normalized `FixedSizeList(Float32, dim)` storage, the validity rules
//! for returned vectors). Wire shapes:
//!
//! - `openai-compatible` / `openai`: `POST {base}/embeddings` with
//!   `Authorization: Bearer <key>` and `{"model", "input": [..],
//!   "dimensions": n}`; the answer is `{"data": [{"index", "embedding"}]}`
//!   (OpenAI's embeddings API).
//! - `gemini`: `POST {base}/models/{model}:embedContent` for one text and
//!   `:batchEmbedContents` for several, with `x-goog-api-key`, a
//!   `taskType` of `RETRIEVAL_QUERY` or `RETRIEVAL_DOCUMENT` and
//!   `outputDimensionality`; the answers are `{"embedding": {"values"}}`
//!   and `{"embeddings": [{"values"}]}` (Google's Gemini API).
//! - `mock`: no network; deterministic vectors (the sum of a pseudo-random
//!   unit direction per lower-cased word, so texts that share words are
//!   near each other), for tests and offline use.
//!
//! Every call has a per-request timeout, a total deadline across its
//! retries, and retries 429 and 5xx answers and transport failures with
//! exponential backoff (a `Retry-After` in seconds is honoured, within the
//! deadline). Inputs are sent in batches of [`EmbeddingConfig::batch_size`].
//! Each returned vector must have the asked dimension, finite values and a
//! non-zero norm; it is then L2-normalized. Calls log under the
//! `omnigraph::embedding` tracing target.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

/// The tracing target of every embedding event.
pub const TRACE_TARGET: &str = "omnigraph::embedding";

/// Which wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    /// OpenAI's embeddings API at any base URL (default base: OpenRouter).
    OpenAiCompatible,
    /// OpenAI's own host.
    OpenAi,
    /// Google's Gemini API (`embedContent`, `batchEmbedContents`).
    Gemini,
    /// Deterministic offline vectors.
    Mock,
}

impl Provider {
    /// Parses a provider name as the reference spells it:
    /// `openai-compatible`, `openai`, `gemini`, `mock`.
    pub fn parse(name: &str) -> Result<Provider, EmbedError> {
        match name.trim().to_ascii_lowercase().as_str() {
            "" | "openai-compatible" | "openai_compatible" => Ok(Provider::OpenAiCompatible),
            "openai" => Ok(Provider::OpenAi),
            "gemini" => Ok(Provider::Gemini),
            "mock" => Ok(Provider::Mock),
            other => Err(EmbedError::Config {
                reason: format!(
                    "unknown embedding provider `{other}`; use openai-compatible, openai, gemini or mock"
                ),
            }),
        }
    }

    /// The name as configured (`openai-compatible`, …).
    pub fn name(self) -> &'static str {
        match self {
            Provider::OpenAiCompatible => "openai-compatible",
            Provider::OpenAi => "openai",
            Provider::Gemini => "gemini",
            Provider::Mock => "mock",
        }
    }

    /// The default endpoint base.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Provider::OpenAiCompatible => "https://openrouter.ai/api/v1",
            Provider::OpenAi => "https://api.openai.com/v1",
            Provider::Gemini => "https://generativelanguage.googleapis.com/v1beta",
            Provider::Mock => "",
        }
    }

    /// The default model id.
    pub fn default_model(self) -> &'static str {
        match self {
            Provider::OpenAiCompatible => "openai/text-embedding-3-large",
            Provider::OpenAi => "text-embedding-3-large",
            Provider::Gemini => "gemini-embedding-2",
            Provider::Mock => "mock",
        }
    }

    /// The environment variables an API key is read from, first found wins.
    pub fn key_variables(self) -> &'static [&'static str] {
        match self {
            Provider::OpenAiCompatible => &["OPENROUTER_API_KEY", "OPENAI_API_KEY"],
            Provider::OpenAi => &["OPENAI_API_KEY"],
            Provider::Gemini => &["GEMINI_API_KEY"],
            Provider::Mock => &[],
        }
    }
}

/// What a text is embedded for (Gemini's `taskType`; others ignore it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// A query string (`nearest($v, "text")`): `RETRIEVAL_QUERY`.
    Query,
    /// Stored text (`@embed`, `omnigraph embed`): `RETRIEVAL_DOCUMENT`.
    Document,
}

/// One resolved provider configuration (reference `EmbeddingConfig
/// { provider, model, base_url, api_key }`) with the call policy.
#[derive(Clone, PartialEq, Eq)]
pub struct EmbeddingConfig {
    pub provider: Provider,
    pub model: String,
    /// Endpoint base without a trailing `/`.
    pub base_url: String,
    /// `None` only for `mock`.
    pub api_key: Option<String>,
    /// Per-request HTTP timeout, ms; 0 is none (`OMNIGRAPH_EMBED_TIMEOUT_MS`,
    /// 30,000).
    pub timeout_ms: u64,
    /// Wall-clock budget of one batch (its request and every retry), ms;
    /// 0 is unbounded (`OMNIGRAPH_EMBED_DEADLINE_MS`, 60,000). A query's
    /// text is one batch, so this bounds the query's embedding.
    pub deadline_ms: u64,
    /// Attempts per request, the first included
    /// (`OMNIGRAPH_EMBED_RETRY_ATTEMPTS`, 4).
    pub retry_attempts: u32,
    /// First backoff, doubled per retry, ms
    /// (`OMNIGRAPH_EMBED_RETRY_BACKOFF_MS`, 200).
    pub retry_backoff_ms: u64,
    /// Texts per request (`OMNIGRAPH_EMBED_BATCH_SIZE`, 64).
    pub batch_size: usize,
}

impl std::fmt::Debug for EmbeddingConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddingConfig")
            .field("provider", &self.provider)
            .field("model", &self.model)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout_ms", &self.timeout_ms)
            .field("deadline_ms", &self.deadline_ms)
            .field("retry_attempts", &self.retry_attempts)
            .field("retry_backoff_ms", &self.retry_backoff_ms)
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

/// Errors of configuring or calling an embedding provider. Each names the
/// provider and the remedy.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EmbeddingError {
    /// No usable configuration (a missing key, an unknown provider, a bad
    /// number). HTTP 400.
    #[error("embedding provider is not configured: {reason}")]
    Config { reason: String },
    /// The provider refused the request (a 4xx other than 429), or kept
    /// failing until the attempts ran out. HTTP 502.
    #[error("embedding provider `{provider}` failed after {attempts} attempt(s): {reason}")]
    Provider {
        provider: String,
        attempts: u32,
        reason: String,
    },
    /// The call's total deadline passed. HTTP 504.
    #[error(
        "embedding provider `{provider}` did not answer within the {deadline_ms} ms deadline ({attempts} attempt(s)); raise OMNIGRAPH_EMBED_DEADLINE_MS or retry later"
    )]
    Deadline {
        provider: String,
        deadline_ms: u64,
        attempts: u32,
    },
    /// A returned vector is unusable: NaN/Inf, all zero, the wrong
    /// dimension, or a response of the wrong shape. HTTP 502.
    #[error(
        "embedding provider `{provider}` returned an unusable vector for input {input}: {reason}"
    )]
    BadVector {
        provider: String,
        input: usize,
        reason: String,
    },
    /// A `nearest($v, "text")` on a property whose `@embed` records a
    /// model the configured embedder does not use. HTTP 400.
    #[error(
        "`{property}` was embedded with model `{recorded}` (its `@embed(…, model=…)`), but the configured embedder uses `{configured}`; set OMNIGRAPH_EMBED_MODEL (and the matching provider) to `{recorded}`, or re-embed"
    )]
    ModelMismatch {
        property: String,
        recorded: String,
        configured: String,
    },
}

/// Short alias used across the engine.
pub type EmbedError = EmbeddingError;

fn number<T: std::str::FromStr>(
    get: &dyn Fn(&str) -> Option<String>,
    name: &str,
    default: T,
) -> Result<T, EmbedError> {
    match get(name) {
        None => Ok(default),
        Some(v) if v.trim().is_empty() => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| EmbedError::Config {
            reason: format!("{name}=`{v}` is not a non-negative whole number"),
        }),
    }
}

/// The call policy of the `OMNIGRAPH_EMBED_*` variables.
struct Policy {
    timeout_ms: u64,
    deadline_ms: u64,
    retry_attempts: u32,
    retry_backoff_ms: u64,
    batch_size: usize,
}

impl Policy {
    fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Policy, EmbedError> {
        Ok(Policy {
            timeout_ms: number(get, "OMNIGRAPH_EMBED_TIMEOUT_MS", 30_000)?,
            deadline_ms: number(get, "OMNIGRAPH_EMBED_DEADLINE_MS", 60_000)?,
            retry_attempts: number(get, "OMNIGRAPH_EMBED_RETRY_ATTEMPTS", 4u32)?.max(1),
            retry_backoff_ms: number(get, "OMNIGRAPH_EMBED_RETRY_BACKOFF_MS", 200)?,
            batch_size: number(get, "OMNIGRAPH_EMBED_BATCH_SIZE", 64usize)?.clamp(1, 2048),
        })
    }
}

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

impl EmbeddingConfig {
    /// The configuration of the process environment (reference
    /// embeddings.md, "Configuration (environment)").
    pub fn from_env() -> Result<EmbeddingConfig, EmbedError> {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }

    /// [`EmbeddingConfig::from_env`] over any variable lookup (tests).
    /// `OMNIGRAPH_EMBEDDINGS_MOCK` truthy forces `mock` (logged as a
    /// warning when another provider was configured). Errors: an unknown
    /// provider, a bad number, a real provider without its key.
    pub fn from_lookup(
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<EmbeddingConfig, EmbedError> {
        let named = get("OMNIGRAPH_EMBED_PROVIDER").filter(|v| !v.trim().is_empty());
        let mut provider = match &named {
            Some(n) => Provider::parse(n)?,
            None => Provider::OpenAiCompatible,
        };
        if get("OMNIGRAPH_EMBEDDINGS_MOCK").is_some_and(|v| truthy(&v)) {
            if provider != Provider::Mock && named.is_some() {
                tracing::warn!(
                    target: TRACE_TARGET,
                    configured = provider.name(),
                    "OMNIGRAPH_EMBEDDINGS_MOCK overrides the configured embedding provider with mock"
                );
            }
            provider = Provider::Mock;
        }
        let api_key = provider.key_variables().iter().find_map(|k| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        });
        Self::assemble(
            provider,
            get("OMNIGRAPH_EMBED_MODEL").as_deref(),
            get("OMNIGRAPH_EMBED_BASE_URL").as_deref(),
            api_key,
            Policy::from_lookup(get)?,
        )
    }

    /// A checked configuration: an empty `model` or `base_url` takes the
    /// provider's default, the base loses its trailing `/`.
    fn assemble(
        provider: Provider,
        model: Option<&str>,
        base_url: Option<&str>,
        api_key: Option<String>,
        policy: Policy,
    ) -> Result<EmbeddingConfig, EmbedError> {
        let or = |v: Option<&str>, default: &str| {
            v.map(str::trim)
                .filter(|v| !v.is_empty())
                .unwrap_or(default)
                .to_string()
        };
        let config = EmbeddingConfig {
            provider,
            model: or(model, provider.default_model()),
            base_url: or(base_url, provider.default_base_url())
                .trim_end_matches('/')
                .to_string(),
            api_key,
            timeout_ms: policy.timeout_ms,
            deadline_ms: policy.deadline_ms,
            retry_attempts: policy.retry_attempts,
            retry_backoff_ms: policy.retry_backoff_ms,
            batch_size: policy.batch_size,
        };
        config.check()?;
        Ok(config)
    }

    /// A cluster's `providers.embedding.<name>` profile: `kind`, optional
    /// `base_url` and `model` (provider defaults otherwise), `api_key` as
    /// `${ENV_VAR}` resolved through `get` (reference
    /// docs/user/clusters/config.md; inline keys are refused by
    /// validation, see [`check_key_reference`]). The call policy comes from
    /// the `OMNIGRAPH_EMBED_*` variables as in [`EmbeddingConfig::from_env`].
    pub fn from_profile(
        kind: &str,
        base_url: Option<&str>,
        model: Option<&str>,
        api_key: Option<&str>,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<EmbeddingConfig, EmbedError> {
        let provider = Provider::parse(kind)?;
        let api_key = match api_key {
            None => None,
            Some(r) => {
                let var = check_key_reference(r).map_err(|reason| EmbedError::Config { reason })?;
                Some(get(&var).map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).ok_or_else(|| {
                    EmbedError::Config {
                        reason: format!(
                            "the embedding provider's api_key names ${{{var}}}, which is not set in the server's environment"
                        ),
                    }
                })?)
            }
        };
        Self::assemble(
            provider,
            model,
            base_url,
            api_key,
            Policy::from_lookup(get)?,
        )
    }

    /// A deterministic offline configuration (tests, `--mock`).
    pub fn mock() -> EmbeddingConfig {
        EmbeddingConfig {
            provider: Provider::Mock,
            model: "mock".into(),
            base_url: String::new(),
            api_key: None,
            timeout_ms: 30_000,
            deadline_ms: 60_000,
            retry_attempts: 4,
            retry_backoff_ms: 200,
            batch_size: 64,
        }
    }

    fn check(&self) -> Result<(), EmbedError> {
        if self.provider != Provider::Mock && self.api_key.is_none() {
            return Err(EmbedError::Config {
                reason: format!(
                    "provider `{}` needs an API key in {}; or set OMNIGRAPH_EMBED_PROVIDER=mock for deterministic offline vectors",
                    self.provider.name(),
                    self.provider.key_variables().join(" or ")
                ),
            });
        }
        if self.provider != Provider::Mock
            && !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://"))
        {
            return Err(EmbedError::Config {
                reason: format!(
                    "embedding base URL `{}` is not an http(s) URL (OMNIGRAPH_EMBED_BASE_URL)",
                    self.base_url
                ),
            });
        }
        Ok(())
    }
}

/// Checks that a configured API key is an environment reference
/// `${NAME}` and returns `NAME`; an inline secret is refused (reference
/// docs/user/clusters/config.md: "inline secrets are rejected").
pub fn check_key_reference(text: &str) -> Result<String, String> {
    let t = text.trim();
    let name = t
        .strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'))
        .filter(|n| {
            !n.is_empty()
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !n.starts_with(|c: char| c.is_ascii_digit())
        });
    match name {
        Some(n) => Ok(n.to_string()),
        None => Err(
            "api_key must name an environment variable as `${NAME}`; inline keys are refused"
                .into(),
        ),
    }
}

/// A client for one [`EmbeddingConfig`], built once and reused (its HTTP
/// connection pool stays warm). Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Embedder {
    config: EmbeddingConfig,
    http: reqwest::Client,
}

/// One request's failure, before the retry policy decides.
enum Attempt {
    /// Worth retrying (429, 5xx, transport): the reason and a server-asked
    /// delay.
    Retry(String, Option<Duration>),
    /// Not worth retrying.
    Fatal(EmbedError),
}

impl Embedder {
    /// Builds the client. Errors: the TLS stack failing to initialize.
    pub fn new(config: EmbeddingConfig) -> Result<Embedder, EmbedError> {
        let mut builder = reqwest::Client::builder();
        // 0: no per-request timeout (the deadline still bounds a call).
        if config.timeout_ms > 0 {
            builder = builder.timeout(Duration::from_millis(config.timeout_ms));
        }
        let http = builder.build().map_err(|e| EmbedError::Config {
            reason: format!("cannot build the HTTP client: {e}"),
        })?;
        Ok(Embedder { config, http })
    }

    /// The configuration this client calls with.
    pub fn config(&self) -> &EmbeddingConfig {
        &self.config
    }

    /// Refuses ([`EmbedError::ModelMismatch`]) when `property`'s
    /// `@embed(…, model=…)` records another model than this client's, so
    /// stored and query vectors always share one space.
    pub fn check_model(&self, property: &str, recorded: Option<&str>) -> Result<(), EmbedError> {
        match recorded {
            Some(r) if r != self.config.model => Err(EmbedError::ModelMismatch {
                property: property.to_string(),
                recorded: r.to_string(),
                configured: self.config.model.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Embeds `texts` as vectors of `dim` 32-bit floats, L2-normalized, in
    /// input order, in batches of [`EmbeddingConfig::batch_size`], each
    /// batch (its request and retries) within the deadline. Errors:
    /// [`EmbedError`] (nothing partial is returned).
    pub async fn embed(
        &self,
        texts: &[String],
        dim: usize,
        task: Task,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let work = async {
            let mut out = Vec::with_capacity(texts.len());
            for (n, chunk) in texts.chunks(self.config.batch_size).enumerate() {
                let base = n * self.config.batch_size;
                // The deadline bounds each batch's request and its retries
                // (a load of many batches takes as many deadlines).
                let batch = self.embed_batch(chunk, dim, task, &attempts);
                let vectors = if self.config.deadline_ms == 0 {
                    batch.await?
                } else {
                    match tokio::time::timeout(
                        Duration::from_millis(self.config.deadline_ms),
                        batch,
                    )
                    .await
                    {
                        Ok(r) => r?,
                        Err(_) => {
                            return Err(EmbedError::Deadline {
                                provider: self.config.provider.name().into(),
                                deadline_ms: self.config.deadline_ms,
                                attempts: attempts.load(std::sync::atomic::Ordering::Relaxed),
                            });
                        }
                    }
                };
                for (i, v) in vectors.into_iter().enumerate() {
                    out.push(finish(v, dim, base + i, self.config.provider)?);
                }
            }
            Ok(out)
        };
        let r = work.await;
        tracing::debug!(
            target: TRACE_TARGET,
            provider = self.config.provider.name(),
            model = %self.config.model,
            dim,
            inputs = texts.len(),
            attempts = attempts.load(std::sync::atomic::Ordering::Relaxed),
            elapsed_ms = started.elapsed().as_millis() as u64,
            outcome = if r.is_ok() { "ok" } else { "error" },
            "embed"
        );
        r
    }

    /// One batch with the retry policy.
    async fn embed_batch(
        &self,
        texts: &[String],
        dim: usize,
        task: Task,
        attempts: &std::sync::atomic::AtomicU32,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        if self.config.provider == Provider::Mock {
            return Ok(texts.iter().map(|t| mock_vector(t, dim)).collect());
        }
        let mut backoff = Duration::from_millis(self.config.retry_backoff_ms);
        let mut tried = 0;
        loop {
            tried += 1;
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let r = self.request(texts, dim, task).await;
            match r {
                Ok(v) => return Ok(v),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry(reason, asked)) => {
                    tracing::warn!(
                        target: TRACE_TARGET,
                        provider = self.config.provider.name(),
                        attempt = tried,
                        %reason,
                        "embed request failed"
                    );
                    if tried >= self.config.retry_attempts {
                        return Err(EmbedError::Provider {
                            provider: self.config.provider.name().into(),
                            attempts: tried,
                            reason,
                        });
                    }
                    let wait = asked.unwrap_or(backoff).min(Duration::from_secs(30));
                    tokio::time::sleep(wait).await;
                    backoff = backoff.saturating_mul(2);
                }
            }
        }
    }

    /// One HTTP request for `texts`.
    async fn request(
        &self,
        texts: &[String],
        dim: usize,
        task: Task,
    ) -> Result<Vec<Vec<f32>>, Attempt> {
        let c = &self.config;
        let key = c.api_key.clone().unwrap_or_default();
        let (url, body, header) = match c.provider {
            Provider::OpenAiCompatible | Provider::OpenAi => (
                format!("{}/embeddings", c.base_url),
                json!({"model": c.model, "input": texts, "dimensions": dim}),
                ("authorization", format!("Bearer {key}")),
            ),
            Provider::Gemini => {
                let content = |t: &String| json!({"parts": [{"text": t}]});
                let task = match task {
                    Task::Query => "RETRIEVAL_QUERY",
                    Task::Document => "RETRIEVAL_DOCUMENT",
                };
                if texts.len() == 1 {
                    (
                        format!("{}/models/{}:embedContent", c.base_url, c.model),
                        json!({"content": content(&texts[0]), "taskType": task, "outputDimensionality": dim}),
                        ("x-goog-api-key", key),
                    )
                } else {
                    let requests: Vec<Json> = texts
                        .iter()
                        .map(|t| {
                            json!({"model": format!("models/{}", c.model), "content": content(t),
                                   "taskType": task, "outputDimensionality": dim})
                        })
                        .collect();
                    (
                        format!("{}/models/{}:batchEmbedContents", c.base_url, c.model),
                        json!({"requests": requests}),
                        ("x-goog-api-key", key),
                    )
                }
            }
            Provider::Mock => unreachable!("mock never calls out"),
        };
        let resp = self
            .http
            .post(&url)
            .header(header.0, header.1)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| Attempt::Retry(format!("POST {url}: {}", transport(&e)), None))?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = resp.bytes().await.map_err(|e| {
            Attempt::Retry(
                format!("reading the answer of {url}: {}", transport(&e)),
                None,
            )
        })?;
        if matches!(status.as_u16(), 408 | 429) || status.is_server_error() {
            return Err(Attempt::Retry(
                format!("HTTP {status}: {}", snippet(&bytes)),
                retry_after,
            ));
        }
        if !status.is_success() {
            let hint = if status.as_u16() == 401 || status.as_u16() == 403 {
                format!(
                    "; check the API key ({})",
                    c.provider.key_variables().join(" or ")
                )
            } else {
                String::new()
            };
            return Err(Attempt::Fatal(EmbedError::Provider {
                provider: c.provider.name().into(),
                attempts: 1,
                reason: format!("HTTP {status}: {}{hint}", snippet(&bytes)),
            }));
        }
        let bad = |reason: String| {
            Attempt::Fatal(EmbedError::BadVector {
                provider: c.provider.name().into(),
                input: 0,
                reason,
            })
        };
        let v: Json = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("the answer is not JSON ({e}): {}", snippet(&bytes))))?;
        let floats = |x: &Json| -> Option<Vec<f32>> {
            x.as_array()?
                .iter()
                .map(|f| f.as_f64().map(|f| f as f32))
                .collect()
        };
        let vectors: Option<Vec<Vec<f32>>> = match c.provider {
            Provider::Gemini if texts.len() == 1 => {
                floats(&v["embedding"]["values"]).map(|x| vec![x])
            }
            Provider::Gemini => v["embeddings"]
                .as_array()
                .and_then(|a| a.iter().map(|e| floats(&e["values"])).collect()),
            _ => v["data"].as_array().and_then(|a| {
                let mut by_index = BTreeMap::new();
                for (pos, e) in a.iter().enumerate() {
                    let i = e["index"].as_u64().map_or(pos, |i| i as usize);
                    by_index.insert(i, floats(&e["embedding"])?);
                }
                Some(by_index.into_values().collect())
            }),
        };
        let vectors =
            vectors.ok_or_else(|| bad(format!("unexpected answer shape: {}", snippet(&bytes))))?;
        if vectors.len() != texts.len() {
            return Err(bad(format!(
                "{} vectors for {} inputs",
                vectors.len(),
                texts.len()
            )));
        }
        Ok(vectors)
    }
}

fn transport(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out (OMNIGRAPH_EMBED_TIMEOUT_MS)".into()
    } else if e.is_connect() {
        format!("cannot connect: {e}")
    } else {
        e.to_string()
    }
}

fn snippet(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let s = s.trim();
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Checks one returned vector and L2-normalizes it.
fn finish(v: Vec<f32>, dim: usize, input: usize, p: Provider) -> Result<Vec<f32>, EmbedError> {
    let bad = |reason: String| EmbedError::BadVector {
        provider: p.name().into(),
        input,
        reason,
    };
    if v.len() != dim {
        return Err(bad(format!(
            "{} dimensions, the Vector({dim}) property needs {dim}; use a model that supports the `dimensions` parameter or change the property's width",
            v.len()
        )));
    }
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(bad(format!("value {i} is {} (not finite)", v[i])));
    }
    let norm = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return Err(bad("all values are zero (no direction)".into()));
    }
    Ok(v.into_iter()
        .map(|x| (f64::from(x) / norm) as f32)
        .collect())
}

/// The mock provider's vector of `text`: for each lower-cased word, a
/// pseudo-random direction seeded by the word's SHA-256, summed, so texts
/// sharing words are near; a text without words takes the direction of
/// its whole SHA-256. Unnormalized ([`finish`] normalizes).
pub fn mock_vector(text: &str, dim: usize) -> Vec<f32> {
    use sha2::Digest;
    let mut out = vec![0f32; dim];
    let mut add = |seed_text: &str| {
        let d = sha2::Sha256::digest(seed_text.as_bytes());
        let mut seed = u64::from_le_bytes(d[..8].try_into().unwrap_or([0; 8]));
        for x in out.iter_mut() {
            // splitmix64
            seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            *x += ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
        }
    };
    let lower = text.to_lowercase();
    let mut words = 0;
    for w in lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        add(w);
        words += 1;
    }
    if words == 0 {
        add(text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn environment_defaults_and_keys() {
        let c = EmbeddingConfig::from_lookup(&env(&[("OPENROUTER_API_KEY", "k")])).expect("ok");
        assert_eq!(c.provider, Provider::OpenAiCompatible);
        assert_eq!(c.base_url, "https://openrouter.ai/api/v1");
        assert_eq!(c.model, "openai/text-embedding-3-large");
        assert_eq!(c.api_key.as_deref(), Some("k"));
        let e = EmbeddingConfig::from_lookup(&env(&[("OMNIGRAPH_EMBED_PROVIDER", "gemini")]))
            .expect_err("no key");
        assert!(e.to_string().contains("GEMINI_API_KEY"), "{e}");
        let e = EmbeddingConfig::from_lookup(&env(&[("OMNIGRAPH_EMBED_PROVIDER", "cohere")]))
            .expect_err("unknown");
        assert!(e.to_string().contains("unknown embedding provider"), "{e}");
        let c = EmbeddingConfig::from_lookup(&env(&[
            ("OMNIGRAPH_EMBED_PROVIDER", "gemini"),
            ("OMNIGRAPH_EMBEDDINGS_MOCK", "1"),
        ]))
        .expect("mock wins");
        assert_eq!(c.provider, Provider::Mock);
        let e = EmbeddingConfig::from_lookup(&env(&[
            ("OMNIGRAPH_EMBED_PROVIDER", "mock"),
            ("OMNIGRAPH_EMBED_DEADLINE_MS", "soon"),
        ]))
        .expect_err("bad number");
        assert!(e.to_string().contains("OMNIGRAPH_EMBED_DEADLINE_MS"), "{e}");
    }

    #[test]
    fn profiles_resolve_key_references_only() {
        let get = env(&[("K", "secret")]);
        let c = EmbeddingConfig::from_profile("gemini", None, Some("m"), Some("${K}"), &get)
            .expect("ok");
        assert_eq!(c.api_key.as_deref(), Some("secret"));
        assert_eq!(c.model, "m");
        assert!(
            EmbeddingConfig::from_profile("openai", None, None, Some("sk-inline"), &get).is_err()
        );
        assert!(
            EmbeddingConfig::from_profile("openai", None, None, Some("${NOPE}"), &get).is_err()
        );
        assert!(EmbeddingConfig::from_profile("mock", None, None, None, &get).is_ok());
        assert_eq!(check_key_reference("${A_1}").as_deref(), Ok("A_1"));
        assert!(check_key_reference("${1A}").is_err());
    }

    #[test]
    fn vectors_are_checked_and_normalized() {
        let p = Provider::Mock;
        let v = finish(vec![3.0, 4.0], 2, 0, p).expect("ok");
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        assert!(finish(vec![0.0, 0.0], 2, 0, p).is_err());
        assert!(finish(vec![f32::NAN, 1.0], 2, 0, p).is_err());
        assert!(finish(vec![1.0], 2, 0, p).is_err());
    }

    #[test]
    fn mock_vectors_are_deterministic_and_word_based() {
        let a = finish(mock_vector("sovereign ai stack", 64), 64, 0, Provider::Mock).expect("a");
        let b = finish(mock_vector("Sovereign AI", 64), 64, 0, Provider::Mock).expect("b");
        let c = finish(mock_vector("weather report", 64), 64, 0, Provider::Mock).expect("c");
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
        assert_eq!(
            a,
            finish(mock_vector("sovereign ai stack", 64), 64, 0, Provider::Mock).expect("a")
        );
        assert!(
            dot(&a, &b) > dot(&a, &c) + 0.2,
            "{} vs {}",
            dot(&a, &b),
            dot(&a, &c)
        );
    }
}
