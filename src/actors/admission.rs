//! The AdmissionActor: per-caller in-flight count and byte budget
//! ([`omnigraph_sync::admission::Admission`], model-checked under loom) and
//! an optional token-bucket rate per caller (`governor`).
//!
//! Reference: `docs/user/operations/server.md`, "Per-actor admission
//! control": `OMNIGRAPH_PER_ACTOR_INFLIGHT_MAX` (default 16),
//! `OMNIGRAPH_PER_ACTOR_BYTES_MAX` (default 4 GiB); over budget → 429 with
//! `Retry-After`. The rate (`OMNIGRAPH_PER_ACTOR_RATE_PER_SEC`,
//! `OMNIGRAPH_PER_ACTOR_RATE_BURST`) is ours and off by default.

use std::num::NonZeroU32;
use std::sync::Arc;

use actix::{Actor, Context, Handler, Message};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use omnigraph_sync::admission::{Admission, Limits, Permit, Rejected};

use super::Metrics;

/// Budgets, read from the environment by [`AdmissionConfig::from_env`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionConfig {
    pub limits: Limits,
    /// Requests per second per caller, and the burst above it; `None`: no
    /// rate limit.
    pub rate: Option<(NonZeroU32, NonZeroU32)>,
}

impl AdmissionConfig {
    /// Reads `OMNIGRAPH_PER_ACTOR_INFLIGHT_MAX`, `OMNIGRAPH_PER_ACTOR_BYTES_MAX`,
    /// `OMNIGRAPH_PER_ACTOR_RATE_PER_SEC` and `OMNIGRAPH_PER_ACTOR_RATE_BURST`
    /// (default: the rate). Errors name the variable and the bad value.
    pub fn from_env() -> Result<AdmissionConfig, String> {
        fn var<T: std::str::FromStr>(name: &str) -> Result<Option<T>, String> {
            match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => v.trim().parse().map(Some).map_err(|_| {
                    format!("{name}={v:?} is not a valid number; give a positive integer")
                }),
                _ => Ok(None),
            }
        }
        let defaults = Limits::default();
        let max_inflight: usize =
            var("OMNIGRAPH_PER_ACTOR_INFLIGHT_MAX")?.unwrap_or(defaults.max_inflight);
        let max_bytes: u64 = var("OMNIGRAPH_PER_ACTOR_BYTES_MAX")?.unwrap_or(defaults.max_bytes);
        if max_inflight == 0 || max_bytes == 0 {
            return Err("OMNIGRAPH_PER_ACTOR_INFLIGHT_MAX and OMNIGRAPH_PER_ACTOR_BYTES_MAX must be at least 1".into());
        }
        let per_sec: Option<u32> = var("OMNIGRAPH_PER_ACTOR_RATE_PER_SEC")?;
        let burst: Option<u32> = var("OMNIGRAPH_PER_ACTOR_RATE_BURST")?;
        let rate = match per_sec {
            None => None,
            Some(r) => {
                let r = NonZeroU32::new(r).ok_or(
                    "OMNIGRAPH_PER_ACTOR_RATE_PER_SEC=0 would admit no request; give a positive rate, or unset it to turn rate limiting off",
                )?;
                let b = NonZeroU32::new(burst.unwrap_or(r.get())).ok_or_else(|| {
                    "OMNIGRAPH_PER_ACTOR_RATE_BURST must be at least 1".to_string()
                })?;
                Some((r, b))
            }
        };
        Ok(AdmissionConfig {
            limits: Limits {
                max_inflight,
                max_bytes,
            },
            rate,
        })
    }
}

/// Ask to admit one request of `bytes` (its body size) for `actor`.
#[derive(Debug)]
pub struct Admit {
    pub actor: String,
    pub bytes: u64,
}

/// A refusal: the message and how long to wait.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub message: String,
    /// Whole seconds for `Retry-After` (at least 1).
    pub retry_after: u64,
    /// The request can never be admitted (bigger than the whole budget):
    /// answer 413, not 429.
    pub too_large: bool,
}

impl Message for Admit {
    type Result = Result<Permit, Rejection>;
}

/// Holds the budgets; one per server.
pub struct AdmissionActor {
    admission: Admission,
    rate: Option<DefaultKeyedRateLimiter<String>>,
    metrics: Arc<Metrics>,
}

impl AdmissionActor {
    pub fn new(config: AdmissionConfig, metrics: Arc<Metrics>) -> AdmissionActor {
        let admission = Admission::new(config.limits);
        metrics.watch_admission(admission.clone());
        AdmissionActor {
            admission,
            rate: config
                .rate
                .map(|(r, b)| RateLimiter::keyed(Quota::per_second(r).allow_burst(b))),
            metrics,
        }
    }
}

impl Actor for AdmissionActor {
    type Context = Context<Self>;
}

impl Handler<Admit> for AdmissionActor {
    type Result = Result<Permit, Rejection>;

    fn handle(&mut self, msg: Admit, _: &mut Context<Self>) -> Self::Result {
        if let Some(limiter) = &self.rate
            && let Err(not_until) = limiter.check_key(&msg.actor)
        {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            self.metrics.rejection("rate");
            return Err(Rejection {
                message: format!(
                    "actor `{}` is over its request rate; retry after {} ms",
                    msg.actor,
                    wait.as_millis()
                ),
                retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
                too_large: false,
            });
        }
        self.admission
            .try_admit(&msg.actor, msg.bytes)
            .map_err(|r| {
                let (reason, too_large) = match r {
                    Rejected::Inflight { .. } => ("inflight", false),
                    Rejected::Bytes { .. } => ("bytes", false),
                    Rejected::TooLarge { .. } => ("too_large", true),
                };
                self.metrics.rejection(reason);
                Rejection {
                    message: format!("actor `{}`: {r}", msg.actor),
                    retry_after: 1,
                    too_large,
                }
            })
    }
}
