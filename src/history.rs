//! Run history: every run that acts (`up` with something to do, `repair` with drift, `down`)
//! stores its report in the environment's state bucket, one object per run under
//! [`PREFIX`], named by its end so keys sort by time (and a run that takes the lock can tell
//! whether another one finished since it looked: [`finished_since`]): who ran it, when, each node's outcome
//! and each property it changed. `history --env X` lists the latest. Reports hold no secret:
//! changes carry the values the diffs show, and no diff reads the database password.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::aws::calls::CallSummary;
use crate::aws::errors::OrAbsent;
use crate::error::Failure;
use crate::lock::{timestamp, Holder};
use crate::model::{Outcome, RunReport};

pub const PREFIX: &str = "tap-provision/runs/";
const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunEntry {
    pub format: u32,
    pub environment: String,
    pub command: String,
    pub run_id: String,
    /// `user@host`.
    pub owner: String,
    /// The AWS identity it acted as.
    pub identity: String,
    pub started: String,
    pub finished: String,
    /// `ok`, `failed` or `interrupted`.
    pub result: String,
    /// Outcome label -> number of nodes.
    pub counts: BTreeMap<String, usize>,
    pub reads: u64,
    pub writes: u64,
    pub retries: u64,
    pub nodes: Vec<NodeEntry>,
    /// A scheduled run's summary (every scheduled run stores one, clean and skipped too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<ScheduledEntry>,
}

/// What a scheduled run found and did, as `history` and `status --all` show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScheduledEntry {
    /// `repair` or `detect`.
    pub mode: String,
    /// `clean`, `put back`, `drift remains`, `drift detected`, `skipped`, `failed`.
    pub verdict: String,
    pub drifted: Vec<String>,
    pub put_back: Vec<String>,
    pub remaining: Vec<String>,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeEntry {
    pub node: String,
    pub kind: String,
    pub outcome: String,
    pub elapsed_ms: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<ChangeEntry>,
    /// Why it failed, was kept or skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangeEntry {
    pub field: String,
    pub want: String,
    pub had: String,
}

impl RunEntry {
    pub fn new(
        environment: &str,
        who: &Holder,
        report: &RunReport,
        calls: &CallSummary,
        (started, finished): (u64, u64),
    ) -> RunEntry {
        let mut counts = BTreeMap::new();
        let nodes = report
            .nodes
            .iter()
            .map(|n| {
                *counts.entry(n.outcome.label().to_string()).or_insert(0) += 1;
                let changes = match &n.outcome {
                    Outcome::Updated(_, c) | Outcome::Replaced(_, c) => c
                        .iter()
                        .map(|c| {
                            // A secret's value is kept out of a bucket that keeps versions.
                            let secret = c.confidential;
                            let shown = |v: &String| {
                                if secret {
                                    "(a secret value)".to_string()
                                } else {
                                    v.clone()
                                }
                            };
                            ChangeEntry {
                                field: c.field.clone(),
                                want: shown(&c.want),
                                had: shown(&c.have),
                            }
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                let detail = match &n.outcome {
                    Outcome::Failed(e) => Some(e.to_string()),
                    Outcome::Kept(r) | Outcome::Skipped(r) => Some(r.clone()),
                    _ => None,
                };
                NodeEntry {
                    node: n.node.clone(),
                    kind: n.kind.to_string(),
                    outcome: n.outcome.label().to_string(),
                    elapsed_ms: n.elapsed.as_millis() as u64,
                    changes,
                    detail,
                }
            })
            .collect();
        RunEntry {
            format: FORMAT,
            environment: environment.to_string(),
            command: who.command.clone(),
            run_id: who.run_id.clone(),
            owner: who.owner.clone(),
            identity: who.identity.clone(),
            started: timestamp(started),
            finished: timestamp(finished),
            result: if report.failed() > 0 {
                "failed"
            } else if report.interrupted {
                "interrupted"
            } else {
                "ok"
            }
            .to_string(),
            counts,
            reads: calls.reads,
            writes: calls.writes,
            retries: calls.retries,
            nodes,
            scheduled: None,
        }
    }

    /// `tap-provision/runs/<end>-<command>-<run id>.json`: keys sort by end.
    pub fn key(&self) -> String {
        format!(
            "{PREFIX}{}-{}-{}.json",
            self.finished, self.command, self.run_id
        )
    }

    /// Nodes it changed (created, updated, replaced, deleted).
    pub fn changed(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| {
                matches!(
                    n.outcome.as_str(),
                    "created" | "updated" | "replaced" | "deleted"
                )
            })
            .count()
    }
}

/// Stores a run's report.
pub async fn store(s3: &aws_sdk_s3::Client, bucket: &str, entry: &RunEntry) -> Result<(), Failure> {
    crate::record::write_json(s3, bucket, &entry.key(), None, entry, "the run report").await
}

/// The latest `limit` runs, newest first; empty when the bucket does not exist.
pub async fn latest(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    limit: usize,
) -> Result<Vec<RunEntry>, Failure> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let Some(page) = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(PREFIX)
            .set_continuation_token(token)
            .send()
            .await
            .or_absent()
            .map_err(|f| f.context(format!("listing s3://{bucket}/{PREFIX}")))?
        else {
            return Ok(Vec::new());
        };
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        token = page.next_continuation_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    keys.sort();
    let mut runs = Vec::new();
    for key in keys.iter().rev().take(limit) {
        let Some((bytes, _)) =
            crate::record::read_object(s3, bucket, key, None, "a run report").await?
        else {
            continue;
        };
        match serde_json::from_slice::<RunEntry>(&bytes) {
            Ok(entry) => runs.push(entry),
            Err(e) => tracing::warn!("s3://{bucket}/{key} is not a run report ({e}): skipped"),
        }
    }
    Ok(runs)
}

/// True when a run stored its report at or after `since` (Unix seconds, less 5 s for clocks
/// apart): what it changed may postdate what this run observed. One ListObjectsV2.
pub async fn finished_since(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    since: u64,
) -> Result<bool, Failure> {
    let out = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(PREFIX)
        .start_after(format!("{PREFIX}{}", timestamp(since.saturating_sub(5))))
        .max_keys(1)
        .send()
        .await
        .map_err(|e| Failure::from(e).context(format!("listing s3://{bucket}/{PREFIX}")))?;
    Ok(!out.contents().is_empty())
}
