//! The applied record: each node's spec as `up` last applied it, kept as one JSON object in
//! the environment's state bucket (versioned, so every earlier record stays). `drift`
//! compares live AWS with it, to tell a change made in AWS (drift) from a config edit not
//! applied yet (pending).
//!
//! The record is never how resources are found: they are found by their tags and names.
//! Losing it breaks neither `up` nor `down`; `drift` then counts every difference as drift
//! and says why.

use std::collections::BTreeMap;

use aws_sdk_s3::primitives::ByteStream;
use serde::{Deserialize, Serialize};

use crate::aws::errors::OrAbsent;
use crate::error::Failure;
use crate::model::NodeRecord;
use crate::resources::s3_bucket::bucket_name;
use crate::resources::Scope;
use crate::stack::STATE_BUCKET_SUFFIX;

/// The object's key in the state bucket.
pub const KEY: &str = "tap-provision/applied.json";
const FORMAT: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub format: u32,
    pub environment: String,
    /// Node id -> its spec as last applied.
    pub nodes: BTreeMap<String, NodeRecord>,
}

impl Record {
    pub fn new(environment: &str) -> Record {
        Record {
            format: FORMAT,
            environment: environment.to_string(),
            nodes: BTreeMap::new(),
        }
    }
}

/// Where the record lives: `s3://<bucket>/<KEY>`.
pub fn location(scope: &Scope) -> (String, &'static str) {
    (
        bucket_name(&scope.env_full, STATE_BUCKET_SUFFIX, &scope.account),
        KEY,
    )
}

/// Reads the record; `None` when the bucket or the object does not exist, or it was
/// written by an incompatible version of the tool (said in the returned note).
pub async fn load(
    s3: &aws_sdk_s3::Client,
    scope: &Scope,
) -> Result<(Option<Record>, Option<String>), Failure> {
    let (bucket, key) = location(scope);
    let Some((bytes, _)) =
        read_object(s3, &bucket, key, Some(&scope.account), "the applied record").await?
    else {
        return Ok((
            None,
            Some(format!("no applied record at s3://{bucket}/{key}")),
        ));
    };
    match serde_json::from_slice::<Record>(&bytes) {
        Ok(r) if r.format == FORMAT && r.environment == scope.env_full => Ok((Some(r), None)),
        Ok(r) => Ok((
            None,
            Some(format!(
                "the applied record at s3://{bucket}/{key} is of format {} for {}: ignored",
                r.format, r.environment
            )),
        )),
        Err(e) => Ok((
            None,
            Some(format!(
                "the applied record at s3://{bucket}/{key} is unreadable ({e}): ignored"
            )),
        )),
    }
}

/// Writes the record.
pub async fn save(s3: &aws_sdk_s3::Client, scope: &Scope, record: &Record) -> Result<(), Failure> {
    let (bucket, key) = location(scope);
    write_json(
        s3,
        &bucket,
        key,
        Some(&scope.account),
        record,
        "the applied record",
    )
    .await
}

/// An object of the state bucket and its ETag; `None` when it or the bucket does not exist.
/// `what` names it in errors ("the applied record").
pub async fn read_object(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    owner: Option<&str>,
    what: &str,
) -> Result<Option<(Vec<u8>, String)>, Failure> {
    let Some(out) = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_expected_bucket_owner(owner.map(str::to_string))
        .send()
        .await
        .or_absent()
        .map_err(|f| f.context(format!("reading {what} s3://{bucket}/{key}")))?
    else {
        return Ok(None);
    };
    let etag = out.e_tag().unwrap_or_default().to_string();
    let bytes = out
        .body
        .collect()
        .await
        .map_err(|e| Failure::new("Transport", format!("reading s3://{bucket}/{key}: {e}")))?
        .to_vec();
    Ok(Some((bytes, etag)))
}

/// Writes `value` as JSON to the state bucket (unconditionally: the lock's conditional
/// writes are its own).
pub async fn write_json<T: Serialize>(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    owner: Option<&str>,
    value: &T,
    what: &str,
) -> Result<(), Failure> {
    let body = serde_json::to_vec_pretty(value)
        .map_err(|e| Failure::new("Internal", format!("encoding {what}: {e}")))?;
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/json")
        .set_expected_bucket_owner(owner.map(str::to_string))
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| Failure::from(e).context(format!("writing {what} s3://{bucket}/{key}")))?;
    Ok(())
}
