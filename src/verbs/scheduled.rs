//! The scheduled run: what EventBridge Scheduler starts on Fargate, unattended. It needs no
//! env file: it repairs to what the last `up` applied (the applied record carries the specs,
//! the identifiers, the wait timeout, the mode and the ignore list), never to a config.
//!
//! - Anything it cannot read or explain (no record, an unreadable one, a denied read) stops
//!   it with exit 1 and nothing written; it still tells.
//! - A held lock makes it skip at once (exit 4): a person's run comes first.
//! - It never waits on a resource it did not change, never touches the scheduled repair's
//!   own nodes, and leaves values auto scaling owns alone.
//! - Every run stores a run report; CloudWatch gets its metrics; the alerts topic a message
//!   when it found drift, put something back, left drift or failed ([`crate::tell`]).

use std::sync::Arc;
use std::time::Duration;

use crate::aws::Target;
use crate::config::RepairMode;
use crate::error::{exit, Locked};
use crate::history::{self, RunEntry, ScheduledEntry};
use crate::lock::{self, Holder};
use crate::model::{Events, RunFlags, RunReport};
use crate::output::Reporter;
use crate::record;
use crate::resources::Scope;
use crate::session::{Environment, Session};
use crate::stack::from_record;
use crate::tell::{self, Told, Verdict};

/// The environment a scheduled run is for: all its command line names.
pub struct Scheduled {
    pub project: String,
    pub env: String,
    pub region: String,
}

/// Runs the scheduled command (see the module's doc) and returns its exit code: 0 clean or
/// all put back, 2 drift found (detect mode), 3 drift remains, 4 skipped, 1 failed.
pub async fn run(
    who: Scheduled,
    target: &Target,
    parallelism: usize,
    reporter: Arc<Reporter>,
) -> anyhow::Result<i32> {
    let started = lock::unix_now();
    let mut env = Environment {
        project: who.project,
        env: who.env,
        region: who.region,
        wait_timeout: Duration::from_secs(1200),
        repair: Default::default(),
    };
    // Without credentials nothing can be read, nor told: the error is the run's output.
    let (aws, identity, scope) = Session::connect(&env, target).await?;
    let fail = |why: String, mode: RepairMode| Told {
        mode,
        verdict: Verdict::Failed(why),
        drifted: Vec::new(),
        put_back: Vec::new(),
        remaining: Vec::new(),
        report: None,
    };
    let (bucket, key) = record::location(&scope);
    let loaded = match record::load(&aws.s3, &scope).await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(format!(
            "no applied record at s3://{bucket}/{key}: nothing to repair to; run `tap-provision up --env {}` first",
            env.env
        )),
        Err(f) => Err(f.message),
    };
    let record = match loaded.and_then(|r| match r.applied.clone() {
        Some(applied) => Ok((r, applied)),
        None => Err(format!(
            "the applied record s3://{bucket}/{key} was written by an older tap-provision and does not say how `up` ran: run `up` once"
        )),
    }) {
        Ok(r) => r,
        Err(why) => {
            let told = fail(why, RepairMode::Repair);
            return Ok(conclude(&aws, &scope, &identity, started, told, None, &reporter).await);
        }
    };
    let (record, applied) = record;
    let mode = applied.repair.mode;
    let graph = match from_record(&record, &applied) {
        Ok(g) => g,
        Err(errors) => {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            let why = format!(
                "the applied record s3://{bucket}/{key} does not make a graph: {}",
                lines.join("; ")
            );
            return Ok(conclude(
                &aws,
                &scope,
                &identity,
                started,
                fail(why, mode),
                None,
                &reporter,
            )
            .await);
        }
    };
    env.wait_timeout = Duration::from_secs(applied.wait_seconds);
    env.repair = applied.repair.clone();
    let mut s = Session::assemble(
        (aws.clone(), identity.clone(), scope.clone()),
        env,
        graph,
        RunFlags::default(),
        parallelism,
        reporter.clone(),
    );
    s.unattended = true;
    let (told, report) = match mode {
        RepairMode::Repair => match super::repair::run(&s, Duration::ZERO).await {
            Ok(r) => {
                let drifted = drifted(&r.findings);
                let put_back: Vec<String> = r
                    .report
                    .nodes
                    .iter()
                    .filter(|n| n.outcome.is_change())
                    .map(|n| n.node.clone())
                    .collect();
                let verdict = match r.code {
                    exit::OK if drifted.is_empty() => Verdict::Clean,
                    exit::OK => Verdict::PutBack,
                    exit::DRIFT_REMAINS => Verdict::DriftRemains,
                    exit::INTERRUPTED => Verdict::Failed("interrupted".into()),
                    _ => Verdict::Failed(failures(&r.report, &r.remaining)),
                };
                let told = Told {
                    mode,
                    verdict,
                    drifted,
                    put_back,
                    remaining: r.remaining,
                    report: None,
                };
                (told, Some(r.report))
            }
            Err(e) if e.downcast_ref::<Locked>().is_some() => {
                reporter.note(&format!("skipped: {e}"));
                let told = Told {
                    verdict: Verdict::Skipped(e.to_string()),
                    ..fail(String::new(), mode)
                };
                (told, None)
            }
            Err(e) => (fail(format!("{e:#}"), mode), None),
        },
        RepairMode::Detect => match super::drift::run(&s).await {
            Ok(found) => {
                let drifted = drifted(&found.findings);
                let errors: Vec<String> = found
                    .findings
                    .iter()
                    .filter_map(|d| d.error.as_ref().map(ToString::to_string))
                    .collect();
                let verdict = match found.code {
                    exit::OK => Verdict::Clean,
                    exit::CHANGES => Verdict::Detected,
                    _ => Verdict::Failed(errors.join("; ")),
                };
                let remaining = drifted.iter().map(|(n, _)| n.clone()).collect();
                let told = Told {
                    mode,
                    verdict,
                    drifted,
                    put_back: Vec::new(),
                    remaining,
                    report: None,
                };
                (told, None)
            }
            Err(e) => (fail(format!("{e:#}"), mode), None),
        },
    };
    Ok(conclude(&aws, &scope, &identity, started, told, report, &reporter).await)
}

/// Each drifted node and what drifted on it, secrets' values left out.
fn drifted(findings: &[crate::drift::NodeDrift]) -> Vec<(String, String)> {
    use crate::drift::Drifted;
    findings
        .iter()
        .filter_map(|d| {
            let what = match d.drift.as_ref()? {
                Drifted::Deleted => "deleted outside tap-provision".to_string(),
                Drifted::Changed { changes } => changes
                    .iter()
                    .map(|c| {
                        if c.confidential {
                            format!("{}: (a secret value)", c.field)
                        } else {
                            c.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            };
            Some((d.node.clone(), what))
        })
        .collect()
}

/// What failed in a run, in one line.
fn failures(report: &RunReport, remaining: &[String]) -> String {
    let failed: Vec<String> = report
        .nodes
        .iter()
        .filter_map(|n| match &n.outcome {
            crate::model::Outcome::Failed(e) => Some(e.to_string()),
            _ => None,
        })
        .collect();
    if failed.is_empty() {
        format!("could not read or compare: {}", remaining.join(", "))
    } else {
        failed.join("; ")
    }
}

/// Stores the run's report, tells, prints the verdict; the exit code.
async fn conclude(
    aws: &crate::aws::Clients,
    scope: &Scope,
    identity: &str,
    started: u64,
    mut told: Told,
    report: Option<RunReport>,
    reporter: &Reporter,
) -> i32 {
    let run_id = format!("{started}-{}", std::process::id());
    let command = format!("{}-scheduled", told.mode.verb());
    let holder = Holder::me(&command, identity, &run_id);
    let report = report.unwrap_or_default();
    let mut entry = RunEntry::new(
        &scope.env_full,
        &holder,
        &report,
        &aws.calls.summary(),
        (started, lock::unix_now()),
    );
    entry.result = match &told.verdict {
        Verdict::Failed(_) => "failed",
        Verdict::Skipped(_) => "skipped",
        _ => "ok",
    }
    .to_string();
    entry.scheduled = Some(ScheduledEntry {
        mode: match told.mode {
            RepairMode::Repair => "repair",
            RepairMode::Detect => "detect",
        }
        .into(),
        verdict: told.verdict.label().into(),
        drifted: told.drifted.iter().map(|(n, _)| n.clone()).collect(),
        put_back: told.put_back.clone(),
        remaining: told.remaining.clone(),
        why: match &told.verdict {
            Verdict::Failed(w) | Verdict::Skipped(w) => Some(w.clone()),
            _ => None,
        },
    });
    let bucket = record::location(scope).0;
    match history::store(&aws.s3, &bucket, &entry).await {
        Ok(()) => told.report = Some(format!("s3://{bucket}/{}", entry.key())),
        Err(f) => reporter.warn(&format!("{f}; this run is not in `history`")),
    }
    for problem in tell::tell(aws, scope, &told).await {
        reporter.warn(&problem);
    }
    let code = match &told.verdict {
        Verdict::Clean | Verdict::PutBack => exit::OK,
        Verdict::Detected => exit::CHANGES,
        Verdict::DriftRemains => exit::DRIFT_REMAINS,
        Verdict::Skipped(_) => exit::LOCKED,
        Verdict::Failed(_) => exit::ERROR,
    };
    let line = format!(
        "{}: scheduled {}: {} ({} drifted, {} put back, {} remain){}",
        scope.env_full,
        told.mode.verb(),
        told.verdict.label(),
        told.drifted.len(),
        told.put_back.len(),
        told.remaining.len(),
        told.report
            .as_deref()
            .map(|r| format!("; report {r}"))
            .unwrap_or_default()
    );
    reporter.result(
        serde_json::json!({
            "event": "scheduled_finished",
            "environment": scope.env_full,
            "mode": told.mode.verb(),
            "verdict": told.verdict.label(),
            "why": match &told.verdict { Verdict::Failed(w) | Verdict::Skipped(w) => Some(w), _ => None },
            "drifted": told.drifted.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            "put_back": told.put_back,
            "remaining": told.remaining,
            "report": told.report,
            "exit_code": code,
        }),
        &[line],
    );
    if let Verdict::Failed(why) = &told.verdict {
        reporter.warn(why);
    }
    code
}
