//! The applied record: each node's spec as `up` last applied it, kept as one JSON object in
//! the environment's state bucket (versioned, so every earlier record stays). `drift`
//! compares live AWS with it, to tell a change made in AWS (drift) from a config edit not
//! applied yet (pending).
//!
//! Resources are found first by their tags and names; the record adds each node's identifiers
//! as last applied, so a resource whose tags were edited out of band is still found (and
//! re-tagged), never made twice. Losing it breaks neither `up` nor `down`; `drift` then counts
//! every difference as drift and says why. A record that exists but cannot be read stops
//! every command that would compare with it or write it.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_s3::primitives::ByteStream;
use serde::{Deserialize, Serialize};

use crate::aws::errors::OrAbsent;
use crate::config::Repair;
use crate::error::Failure;
use crate::model::{NodeRecord, RecordedIds};
use crate::resources::s3_bucket::bucket_name;
use crate::resources::Scope;
use crate::stack::STATE_BUCKET_SUFFIX;

/// The object's key in the state bucket.
pub const KEY: &str = "tap-provision/applied.json";
/// The format this version writes. Formats 1 (no identifiers per node) and 2 (no header of
/// what `up` ran with) are read and migrated: what they lack is written by the next `up`.
pub const FORMAT: u32 = 3;
const OLDEST_READ: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub format: u32,
    pub environment: String,
    /// What the last `up` ran with: all a scheduled run needs instead of the env file.
    /// `None` in records of formats 1 and 2, until the next `up`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<Applied>,
    /// Node id -> its spec as last applied, and the identifiers of what it applied.
    pub nodes: BTreeMap<String, NodeRecord>,
    /// Nodes an `up` set out to create and has not recorded: stored before it creates them,
    /// so that what a killed run made is looked for even once the config no longer has it
    /// (the scheduled repair turned off).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub started: BTreeSet<String>,
}

/// The settings of the last `up` (format 3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    pub project: String,
    pub env: String,
    pub region: String,
    /// `timeouts.wait_seconds`.
    pub wait_seconds: u64,
    /// `[repair]`: schedule, mode, ignore list.
    pub repair: Repair,
    /// The nodes of the last `up`'s config. An entry not among them (a node since removed
    /// from the config) is never re-created by a scheduled run.
    pub nodes: Vec<String>,
}

impl Record {
    pub fn new(environment: &str) -> Record {
        Record {
            format: FORMAT,
            environment: environment.to_string(),
            applied: None,
            nodes: BTreeMap::new(),
            started: BTreeSet::new(),
        }
    }

    /// The identifiers `node` had when it was last applied.
    pub fn ids(&self, node: &str) -> Option<&RecordedIds> {
        self.nodes.get(node).and_then(|n| n.ids.as_ref())
    }

    /// Every node the record names: applied, or started by a run that stopped.
    pub fn named(&self) -> impl Iterator<Item = &String> {
        self.nodes.keys().chain(&self.started)
    }
}

/// Where the record lives: `s3://<bucket>/<KEY>`.
pub fn location(scope: &Scope) -> (String, &'static str) {
    (
        bucket_name(&scope.env_full, STATE_BUCKET_SUFFIX, &scope.account),
        KEY,
    )
}

/// What to do about a record that cannot be used, in words: it is versioned, so an earlier
/// version can be restored; moving it aside starts over from tags and names on purpose.
pub fn start_over_hint(scope: &Scope) -> String {
    let (bucket, key) = location(scope);
    format!(
        "restore a readable version (`aws s3api list-object-versions --bucket {bucket} --prefix {key}`), \
         or, to start over from tags and names on purpose, move it aside \
         (`aws s3 mv s3://{bucket}/{key} s3://{bucket}/{key}.unreadable`) and run `up`"
    )
}

/// Reads the record. `Ok(None)` only when AWS says the bucket or the object does not exist;
/// anything else that stops it being read (access denied, throttled after the retries, not
/// JSON, a format this version does not know, another environment's) is an error that names
/// the object and what to do, so no command acts on a record it could not read.
pub async fn load(s3: &aws_sdk_s3::Client, scope: &Scope) -> Result<Option<Record>, Failure> {
    let (bucket, key) = location(scope);
    let hint = || start_over_hint(scope);
    let Some((bytes, _)) =
        read_object(s3, &bucket, key, Some(&scope.account), "the applied record")
            .await
            .map_err(|f| {
                Failure::new(
                    "UnreadableRecord",
                    format!("{f}; nothing was changed: check that this identity may read it (s3:GetObject) and retry"),
                )
            })?
    else {
        return Ok(None);
    };
    parse(&bytes, &scope.env_full).map(Some).map_err(|why| {
        Failure::new(
            "UnreadableRecord",
            format!(
                "the applied record s3://{bucket}/{key} {why}; nothing was changed: {}",
                hint()
            ),
        )
    })
}

/// Parses a record of any format this version reads, migrated to the current one (pure).
pub fn parse(bytes: &[u8], env_full: &str) -> Result<Record, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("is not JSON ({e})"))?;
    let format = value
        .get("format")
        .and_then(serde_json::Value::as_u64)
        .ok_or("has no `format` number: it was not written by tap-provision")?;
    if format > u64::from(FORMAT) || format < u64::from(OLDEST_READ) {
        return Err(format!(
            "is of format {format}, which this version does not read (it reads {OLDEST_READ} to {FORMAT}): \
             written by another version of tap-provision; use that version or a newer one"
        ));
    }
    let mut record: Record = serde_json::from_value(value)
        .map_err(|e| format!("is of format {format} but does not parse as one ({e})"))?;
    if record.environment != env_full {
        return Err(format!(
            "is the record of environment `{}`, not `{env_full}`",
            record.environment
        ));
    }
    // Format 1 had no identifiers per node, format 2 no header: each is added by the next
    // run that writes.
    record.format = FORMAT;
    Ok(record)
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

#[cfg(test)]
mod tests {
    use super::*;

    const ENV: &str = "tap-prod";

    fn v1() -> String {
        serde_json::json!({
            "format": 1,
            "environment": ENV,
            "nodes": {"vpc": {"kind": "vpc", "spec": {"cidr": "10.0.0.0/16"}, "tags": [["tap:node", "vpc"]]}}
        })
        .to_string()
    }

    #[test]
    fn format_1_is_migrated_without_identifiers() {
        let r = parse(v1().as_bytes(), ENV).unwrap();
        assert_eq!(r.format, FORMAT);
        assert_eq!(r.nodes["vpc"].kind, "vpc");
        assert_eq!(r.ids("vpc"), None);
    }

    #[test]
    fn the_current_format_keeps_identifiers() {
        let mut r = Record::new(ENV);
        let mut entry = parse(v1().as_bytes(), ENV).unwrap().nodes["vpc"].clone();
        entry.ids = Some(RecordedIds {
            id: "vpc-1".into(),
            arn: None,
        });
        r.nodes.insert("vpc".into(), entry);
        let back = parse(&serde_json::to_vec(&r).unwrap(), ENV).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.ids("vpc").map(|i| i.id.as_str()), Some("vpc-1"));
    }

    #[test]
    fn anything_else_is_unreadable_with_the_reason() {
        let cases: [(&[u8], &str); 6] = [
            (b"not json at all", "is not JSON"),
            (b"{\"nodes\": {}}", "has no `format` number"),
            (
                b"{\"format\": 4, \"environment\": \"tap-prod\", \"nodes\": {}}",
                "format 4, which this version does not read",
            ),
            (
                b"{\"format\": 0, \"environment\": \"tap-prod\", \"nodes\": {}}",
                "format 0",
            ),
            (
                b"{\"format\": 2, \"environment\": \"tap-prod\", \"nodes\": []}",
                "does not parse",
            ),
            (
                b"{\"format\": 2, \"environment\": \"tap-dev\", \"nodes\": {}}",
                "environment `tap-dev`",
            ),
        ];
        for (bytes, why) in cases {
            let e = parse(bytes, ENV).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }
}
