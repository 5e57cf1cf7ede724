//! `up`: converge the environment to its config, through the session's one sequence. Stops
//! before any write when a resource cannot be read, a resource the environment only looks up
//! is missing, or a replacement was not agreed to.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::model::{Action, Events, NodePlan, RunReport};
use crate::session::{Acted, Pass, Recording, Session, Verb};
use crate::stack::StepGraph;

/// Asks `prompt` on a terminal; true when the expected answer was typed.
pub type Confirm = dyn Fn(&str, &str) -> anyhow::Result<bool> + Sync;

/// What `up` was told.
pub struct UpOptions<'a> {
    /// `--yes`: no question (replacements are listed as warnings).
    pub yes: bool,
    /// Standard input and error are a terminal: questions may be asked.
    pub interactive: bool,
    pub lock_timeout: Duration,
    pub confirm: &'a Confirm,
}

/// Runs `up` on an open session, reports, and returns the exit code.
pub async fn run(s: &Session, o: UpOptions<'_>) -> anyhow::Result<i32> {
    let up = Up {
        o,
        agreed: Mutex::new(BTreeSet::new()),
    };
    let (pass, report, locked) = match s.run(&up).await? {
        Acted::Ran {
            pass,
            report,
            locked,
        } => (pass, report, locked),
        Acted::Nothing(pass) => (pass, RunReport::default(), false),
    };
    let outputs = s.outputs_of(&report);
    // A new environment's: the record this run started holds its specs now.
    let first = pass.record.as_ref().is_none_or(|r| r.applied.is_none());
    if first && locked && report.failed() == 0 {
        s.reporter.note(&format!(
            "the applied record s3://{}/{} now holds this run's specs",
            crate::record::location(&s.cx.scope).0,
            crate::record::KEY
        ));
    }
    s.reporter.run_finished(
        "up",
        &s.env.full_name(),
        &report,
        &s.cx.aws.calls.summary(),
        &outputs,
    );
    Ok(report.exit_code())
}

struct Up<'a> {
    o: UpOptions<'a>,
    /// Replacements already agreed to (a second look after waiting for the lock asks only
    /// about new ones).
    agreed: Mutex<BTreeSet<String>>,
}

/// What `up` found to do: whether it writes (and so takes the lock); with nothing to write
/// it still runs, to wait for what an earlier, killed run left becoming ready.
struct UpPlan {
    writes: bool,
    /// Nodes it creates that the applied record does not name yet.
    creates: Vec<String>,
}

impl Verb for Up<'_> {
    type Plan = UpPlan;
    const NAME: &'static str = "up";
    const RECORDING: Recording = Recording::Applied;

    fn lock_timeout(&self) -> Duration {
        self.o.lock_timeout
    }

    fn makes_state_bucket(&self) -> bool {
        true
    }

    fn decide(&self, s: &Session, pass: &Pass) -> anyhow::Result<Option<UpPlan>> {
        s.require_readable(pass, "up")?;
        let preview = s.preview(pass);
        let mut missing = Vec::new();
        let mut errors = Vec::new();
        let mut replacements = Vec::new();
        for (ix, (p, node)) in preview.iter().zip(s.graph.nodes()).enumerate() {
            match p {
                Some(Ok(NodePlan {
                    action: Action::Missing { message },
                    ..
                })) => missing.push(format!("{}: {message}", node.id)),
                Some(Ok(NodePlan {
                    action: Action::Replace { changes },
                    ..
                })) => replacements.push((ix, changes.clone())),
                Some(Err(e)) => errors.push(format!("{e}")),
                _ => {}
            }
        }
        // A lookup-only resource (the hosted zone) that is missing stops `up` before it
        // creates anything: everything after it would fail or be half-built.
        if !missing.is_empty() {
            anyhow::bail!(
                "{} cannot be built, nothing was changed:\n  - {}",
                s.env.full_name(),
                missing.join("\n  - ")
            );
        }
        if !errors.is_empty() {
            anyhow::bail!(
                "{}: {} resource(s) could not be compared with the config, so nothing was changed:\n  - {}",
                s.env.full_name(),
                errors.len(),
                errors.join("\n  - ")
            );
        }
        self.agree_to(s, &replacements)?;
        let retiring = s.retiring(pass, "up")?;
        if let Some(g) = s.retired.as_deref().filter(|_| !retiring.is_empty()) {
            let ids: Vec<&str> = retiring.iter().map(|&ix| g.node(ix).id.as_str()).collect();
            s.reporter.note(&format!(
                "[repair] schedule is off: deleting the scheduled repair's {} resource(s): {}",
                ids.len(),
                ids.join(", ")
            ));
        }
        let writes = !retiring.is_empty()
            || preview.iter().any(|p| {
                !matches!(
                    p,
                    Some(Ok(NodePlan {
                        action: Action::Unchanged,
                        ..
                    }))
                )
            })
            || s.record_stale(pass, &preview);
        let creates = preview
            .iter()
            .zip(s.graph.nodes())
            .filter(|(p, _)| {
                matches!(
                    p,
                    Some(Ok(NodePlan {
                        action: Action::Create,
                        ..
                    }))
                )
            })
            .map(|(_, n)| n.id.clone())
            .filter(|id| {
                pass.record
                    .as_ref()
                    .is_none_or(|r| !r.nodes.contains_key(id))
            })
            .collect();
        Ok(Some(UpPlan { writes, creates }))
    }

    fn needs_lock(&self, plan: &UpPlan) -> bool {
        plan.writes
    }

    async fn act(
        &self,
        s: &Session,
        pass: &mut Pass,
        plan: UpPlan,
        cancel: watch::Receiver<bool>,
    ) -> (Arc<StepGraph>, RunReport) {
        s.record_started(pass, &plan.creates).await;
        let n = s.graph.len();
        let report = s
            .apply(s.graph.clone(), pass, vec![true; n], cancel.clone())
            .await;
        s.retire(pass, s.graph.clone(), report, cancel).await
    }
}

impl Up<'_> {
    /// Shows each replacement and what stands on it, then asks on a terminal (the
    /// environment's name, as a protected environment does); elsewhere it takes --yes.
    fn agree_to(
        &self,
        s: &Session,
        replacements: &[(usize, Vec<crate::diff::Change>)],
    ) -> anyhow::Result<()> {
        let mut agreed = self.agreed.lock().unwrap_or_else(|e| e.into_inner());
        let new: Vec<&(usize, Vec<crate::diff::Change>)> = replacements
            .iter()
            .filter(|(ix, _)| !agreed.contains(&s.graph.node(*ix).id))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        // Under `--only`, a replacement whose dependents are outside the selection would
        // leave them standing on what it deletes.
        if s.only.is_some() {
            for (ix, _) in &new {
                let outside: Vec<String> = s
                    .dependents(*ix)
                    .into_iter()
                    .filter(|d| s.graph.index_of(d).is_none())
                    .collect();
                if !outside.is_empty() {
                    anyhow::bail!(
                        "{} needs replacing, and {} stand on it outside the --only selection: add them to --only, or run `up` without it; nothing was changed",
                        s.graph.node(*ix).id,
                        outside.join(", ")
                    );
                }
            }
        }
        let lines: Vec<String> = new
            .iter()
            .map(|(ix, changes)| {
                let node = s.graph.node(*ix);
                let why: Vec<String> = changes
                    .iter()
                    .filter(|c| c.replace)
                    .map(ToString::to_string)
                    .collect();
                let on = s.dependents(*ix);
                format!(
                    "{} ({}): deleted, then created again, for {}; {}",
                    node.id,
                    node.kind,
                    why.join("; "),
                    if on.is_empty() {
                        "nothing depends on it".to_string()
                    } else {
                        format!("depending on it: {}", on.join(", "))
                    }
                )
            })
            .collect();
        let env = &s.env;
        let listing = format!(
            "`up` will replace {} resource(s) of {}:\n  - {}",
            lines.len(),
            env.full_name(),
            lines.join("\n  - ")
        );
        if self.o.yes {
            s.reporter.warn(&listing);
        } else if self.o.interactive {
            let prompt = format!(
                "{listing}\nType the environment name ({}) to replace them: ",
                env.env
            );
            if !(self.o.confirm)(&prompt, &env.env)? {
                anyhow::bail!("not confirmed: nothing was changed");
            }
        } else {
            anyhow::bail!(
                "{listing}\nnothing was changed: pass --yes to replace them when not on a terminal (`tap-provision plan --env {}` shows every change)",
                env.env
            );
        }
        agreed.extend(new.iter().map(|(ix, _)| s.graph.node(*ix).id.clone()));
        Ok(())
    }
}
