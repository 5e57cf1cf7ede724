//! What a run leaves in the applied record: the nodes `up` is about to create (before it
//! does), then what each node became.

use std::collections::BTreeSet;

use super::{Pass, Session};
use crate::error::Step;
use crate::model::{Events, Outcome, RecordedIds, RunReport};
use crate::record::{self, Record};
use crate::stack::{StepGraph, STATE_BUCKET};

/// How a run's outcomes enter the applied record ([`Session::store_record`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recording {
    /// `up`: every node left as configured takes the config's spec.
    Applied,
    /// `repair`: only nodes it put back take the (applied) spec it restored.
    Repaired,
    /// `down`: nodes gone leave the record.
    Removed,
}

impl Session {
    /// Before `up` creates nodes the applied record does not name: names them in the
    /// record's `started`, so a run killed before it stores the record leaves nothing that
    /// the next look would not find (the scheduled repair's nodes are looked for, to be
    /// deleted, only when the record names them; a KMS key the tagging API does not list
    /// yet is looked for key by key). One write, only when something is new; a new
    /// environment's first `up` starts its record here.
    pub async fn record_started(&self, pass: &mut Pass, creates: &[String]) {
        if creates.is_empty() {
            return;
        }
        let record = pass
            .record
            .get_or_insert_with(|| Record::new(&self.env.full_name()));
        let before = record.started.len();
        record.started.extend(creates.iter().cloned());
        if record.started.len() == before {
            return;
        }
        if let Err(e) = record::save(&self.cx.aws.s3, &self.cx.scope, record).await {
            self.reporter.warn(&format!(
                "{e}; what this run creates is found again by its tags and names"
            ));
        }
    }

    /// Stores what a run did in the applied record, with each node's live identifiers.
    /// `up` ([`Recording::Applied`]): nodes now as configured take the config's spec. `repair`
    /// ([`Recording::Repaired`]): nodes it created or changed take the spec it restored (the
    /// one last applied), the others keep theirs. Every verb: nodes deleted leave the record,
    /// nodes left in place refresh their identifiers. Writes only when it changed, so a
    /// converged `up` makes no write. A failure is a warning: the resources are fine, only the
    /// record is older (and the next look still finds them by tags and names).
    pub async fn store_record(
        &self,
        graph: &StepGraph,
        report: &RunReport,
        before: Option<&Record>,
        how: Recording,
    ) {
        // Gone, or not known to be there. A bucket whose settings could not be put (the
        // lock step made it, the run puts them) is there, and takes the record.
        let state_bucket_gone = report.nodes.iter().any(|n| {
            n.node == STATE_BUCKET
                && match &n.outcome {
                    Outcome::Deleted | Outcome::Absent | Outcome::Skipped(_) => true,
                    Outcome::Failed(e) => e.step != Step::Update,
                    _ => false,
                }
        });
        if state_bucket_gone {
            return;
        }
        let env = self.env.full_name();
        let mut record = before.cloned().unwrap_or_else(|| Record::new(&env));
        if how == Recording::Applied {
            record.applied = Some(self.header_after(record.applied.as_ref()));
        }
        for (node, r) in graph.nodes().iter().zip(&report.nodes) {
            let ids = r.outcome.attrs().map(RecordedIds::of);
            // With no record before, a repair ran the config's specs everywhere: what it left
            // unchanged is as configured, as after `up`.
            let as_applied =
                how == Recording::Applied || (how == Recording::Repaired && before.is_none());
            let applied = match (&r.outcome, how) {
                (Outcome::Created(_) | Outcome::Updated(..) | Outcome::Replaced(..), _) => true,
                (Outcome::Unchanged(_), _) => as_applied,
                (Outcome::Deleted | Outcome::Absent, _) => {
                    record.nodes.remove(&node.id);
                    continue;
                }
                _ => false,
            };
            if applied {
                let mut entry = node.payload.record();
                entry.ids = ids;
                record.nodes.insert(node.id.clone(), entry);
            } else if let (Some(entry), Some(ids)) = (record.nodes.get_mut(&node.id), ids) {
                entry.ids = Some(ids);
            }
        }
        if self.only.is_some() {
            // Part of the environment: the header names only nodes the record has.
            let have: BTreeSet<String> = record.nodes.keys().cloned().collect();
            if let Some(header) = record.applied.as_mut() {
                header.nodes.retain(|n| have.contains(n));
            }
        }
        // Recorded now: no longer only started. After `up`, which looked at every node it
        // could have made (the retired ones too), only a node it still could not settle
        // (failed, skipped) stays: one it found absent, deleted, or no longer has anywhere
        // is settled (unless the run was interrupted before it looked at the retired ones, or
        // was limited by `--only` and did not look at the others).
        let unsettled: BTreeSet<&str> = graph
            .nodes()
            .iter()
            .zip(&report.nodes)
            .filter(|(_, r)| !matches!(r.outcome, Outcome::Deleted | Outcome::Absent))
            .map(|(n, _)| n.id.as_str())
            .collect();
        let nodes = record.nodes.keys().cloned().collect::<BTreeSet<_>>();
        record.started.retain(|id| {
            !nodes.contains(id)
                && (how != Recording::Applied
                    || unsettled.contains(id.as_str())
                    || ((report.interrupted || self.only.is_some())
                        && graph.index_of(id).is_none()))
        });
        if before == Some(&record) {
            return;
        }
        if let Err(e) = record::save(&self.cx.aws.s3, &self.cx.scope, &record).await {
            self.reporter.warn(&format!(
                "{e}; `drift` compares with the previous record until the next `up` stores it"
            ));
        }
    }
}
