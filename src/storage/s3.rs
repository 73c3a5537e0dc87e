//! S3 and S3-compatible object storage, configured one way for both
//! kinds of object a graph keeps there: its control objects
//! ([`crate::storage::ControlStore::s3`], `object_store`'s S3 client) and
//! its Lance tables (Lance's S3 store, given the same options as
//! `storage_options`, [`lance_options`]).
//!
//! Configuration, in order, later wins: the `AWS_*` environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, …, read by
//! `object_store`'s `AmazonS3Builder::from_env`), then the options
//! registered for the bucket ([`set_bucket_options`]), then options given
//! for one store. Keys are `object_store`'s `AmazonS3ConfigKey` names,
//! which are also Lance's `storage_options` keys (`aws_endpoint`,
//! `aws_region`, `aws_access_key_id`, `aws_secret_access_key`,
//! `aws_session_token`, `allow_http`, `aws_virtual_hosted_style_request`).
//! Conditional writes use the HTTP precondition headers
//! (`If-None-Match`/`If-Match`): the manifest publish and Lance's commit
//! are create-if-absent, so a store that ignores them is refused.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};

use super::ControlError;

/// An `s3://bucket[/prefix]` location, split.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct S3Location {
    pub bucket: String,
    /// Without leading or trailing `/`; empty for the bucket's root.
    pub prefix: String,
}

impl S3Location {
    /// Parses `s3://bucket[/prefix]`.
    ///
    /// # Errors
    /// [`ControlError::BadLocation`] for another scheme or an empty bucket
    /// name.
    pub fn parse(uri: &str) -> Result<S3Location, ControlError> {
        let bad = |reason: &str| ControlError::BadLocation {
            uri: uri.to_string(),
            reason: reason.to_string(),
        };
        let rest = uri
            .strip_prefix("s3://")
            .ok_or_else(|| bad("expected s3://<bucket>[/<prefix>]"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad(
                "the bucket name is empty: expected s3://<bucket>[/<prefix>]",
            ));
        }
        Ok(S3Location {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        })
    }

    /// `s3://bucket/prefix` (no trailing `/`).
    pub fn uri(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    /// The location of `path` under this one.
    pub fn join(&self, path: &str) -> S3Location {
        let path = path.trim_matches('/');
        S3Location {
            bucket: self.bucket.clone(),
            prefix: match (self.prefix.is_empty(), path.is_empty()) {
                (true, _) => path.to_string(),
                (false, true) => self.prefix.clone(),
                (false, false) => format!("{}/{path}", self.prefix),
            },
        }
    }
}

/// Options registered per bucket ([`set_bucket_options`]).
static BUCKET_OPTIONS: LazyLock<Mutex<HashMap<String, Vec<(String, String)>>>> =
    LazyLock::new(Default::default);

/// Registers S3 options for every store this process opens on `bucket`
/// (control objects and Lance tables alike), over the environment's; the
/// way to configure a bucket without environment variables (tests, and a
/// process that reaches buckets with different endpoints or keys).
/// Replaces what was registered for the bucket before.
///
/// # Errors
/// [`ControlError::BadLocation`] when a key is not an `AmazonS3ConfigKey`
/// name or conditional puts are disabled.
pub fn set_bucket_options<K: AsRef<str>, V: Into<String>>(
    bucket: &str,
    options: impl IntoIterator<Item = (K, V)>,
) -> Result<(), ControlError> {
    let options: Vec<(String, String)> = options
        .into_iter()
        .map(|(k, v)| (k.as_ref().to_string(), v.into()))
        .collect();
    // Checked now, so a bad key is met where it was given.
    builder(&format!("s3://{bucket}"), options.iter().cloned())?;
    if let Ok(mut m) = BUCKET_OPTIONS.lock() {
        m.insert(bucket.to_string(), options);
    }
    Ok(())
}

fn bucket_options(bucket: &str) -> Vec<(String, String)> {
    BUCKET_OPTIONS
        .lock()
        .ok()
        .and_then(|m| m.get(bucket).cloned())
        .unwrap_or_default()
}

/// An `AmazonS3Builder` for `uri`'s bucket: the environment, the bucket's
/// registered options, then `options`; conditional puts by ETag. Returns
/// the builder and the location.
///
/// # Errors
/// [`ControlError::BadLocation`]: not `s3://bucket[/prefix]`, an unknown
/// option key, conditional puts disabled.
pub fn builder<K: AsRef<str>, V: Into<String>>(
    uri: &str,
    options: impl IntoIterator<Item = (K, V)>,
) -> Result<(AmazonS3Builder, S3Location), ControlError> {
    let at = S3Location::parse(uri)?;
    let bad = |reason: String| ControlError::BadLocation {
        uri: uri.to_string(),
        reason,
    };
    let mut b = AmazonS3Builder::from_env();
    let registered = bucket_options(&at.bucket);
    let given: Vec<(String, String)> = options
        .into_iter()
        .map(|(k, v)| (k.as_ref().to_string(), v.into()))
        .collect();
    for (key, value) in registered.into_iter().chain(given) {
        let parsed: AmazonS3ConfigKey = key.to_ascii_lowercase().parse().map_err(|_| {
            bad(format!(
                "unknown S3 option `{key}` (expected an object_store AmazonS3ConfigKey \
                 name such as aws_endpoint, aws_region, aws_access_key_id, allow_http)"
            ))
        })?;
        b = b.with_config(parsed, value);
    }
    if b.get_config_value(&AmazonS3ConfigKey::ConditionalPut)
        == Some(S3ConditionalPut::Disabled.to_string())
    {
        return Err(bad(
            "conditional puts are disabled (aws_conditional_put); graphs need \
             If-None-Match/If-Match: remove the option"
                .into(),
        ));
    }
    let b = b
        .with_bucket_name(&at.bucket)
        .with_conditional_put(S3ConditionalPut::ETagMatch);
    Ok((b, at))
}

/// Lance's `storage_options` for a table at `uri`: the options registered
/// for its bucket ([`set_bucket_options`]) when it is on `s3://`, `None`
/// otherwise. Lance reads the `AWS_*` environment itself, as
/// [`builder`] does, so both kinds of object see one configuration.
pub fn lance_options(uri: &str) -> Option<HashMap<String, String>> {
    let at = S3Location::parse(uri).ok()?;
    let options = bucket_options(&at.bucket);
    (!options.is_empty()).then(|| options.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_join() {
        let at = S3Location::parse("s3://b/some/prefix/").expect("parse");
        assert_eq!(at.bucket, "b");
        assert_eq!(at.prefix, "some/prefix");
        assert_eq!(at.uri(), "s3://b/some/prefix");
        assert_eq!(at.join("_graph").uri(), "s3://b/some/prefix/_graph");
        let root = S3Location::parse("s3://b").expect("parse");
        assert_eq!(root.prefix, "");
        assert_eq!(root.join("nodes/").uri(), "s3://b/nodes");
        assert!(S3Location::parse("s3:///x").is_err());
        assert!(S3Location::parse("gs://b/x").is_err());
    }

    #[test]
    fn bad_options_are_refused_where_given() {
        let e =
            set_bucket_options("b-bad", [("aws_endpiont", "http://x")]).expect_err("typo refused");
        assert!(e.to_string().contains("aws_endpiont"), "{e}");
        let e = set_bucket_options("b-bad", [("aws_conditional_put", "disabled")])
            .expect_err("disabled refused");
        assert!(e.to_string().contains("If-None-Match"), "{e}");
    }
}
