//! `--only` on a session: what it reports, what depends on a node in the whole
//! environment, and the applied record's header after a run on part of it.

use std::sync::Arc;

use super::Session;
use crate::drift::NodeDrift;
use crate::model::Action;
use crate::record;
use crate::stack::select::Selection;
use crate::stack::{is_scheduled_repair, STATE_BUCKET};

impl Session {
    /// Whether node `id` is reported on: every node, or with `--only` the selection's.
    pub fn reports(&self, id: &str) -> bool {
        self.only.as_ref().is_none_or(|s| s.contains(id))
    }

    /// Whether a finding is shown: a selected node's, or one that stops the run (a node read
    /// for the selection's sake that could not be read or looked up).
    pub fn shows(&self, d: &NodeDrift) -> bool {
        self.reports(&d.node)
            || d.error.is_some()
            || matches!(d.pending, Some(Action::Missing { .. }))
    }

    /// What depends on run-graph node `ix` in the whole environment, by id: under `--only`,
    /// nodes outside the selection too.
    pub fn dependents(&self, ix: usize) -> Vec<String> {
        let id = &self.graph.node(ix).id;
        let Some(at) = self.full.index_of(id) else {
            return Vec::new();
        };
        self.full
            .dependents(at)
            .into_iter()
            .map(|d| self.full.node(d).id.clone())
            .collect()
    }

    /// The applied record's header once this run is stored: the config's. Under `--only`
    /// the one before, with the run's nodes added; its `[repair]` settings only when the run
    /// covered the scheduled repair (the header says how the schedule runs).
    pub fn header_after(&self, before: Option<&record::Applied>) -> record::Applied {
        let mut now = self.applied();
        if self.only.is_none() {
            return now;
        }
        let run: Vec<String> = self.graph.nodes().iter().map(|n| n.id.clone()).collect();
        let Some(before) = before else {
            now.nodes = run;
            return now;
        };
        let mut nodes = before.nodes.clone();
        nodes.extend(run.iter().filter(|n| !before.nodes.contains(n)).cloned());
        now.nodes = nodes;
        if !run.iter().any(|n| is_scheduled_repair(n)) {
            now.repair = before.repair.clone();
        }
        now
    }

    /// `graph` with only `selection`'s reach (and the state bucket, which holds the lock),
    /// and the session reporting on it alone.
    pub fn restrict(&mut self, selection: Selection) {
        let graph = self
            .graph
            .only(|n| selection.reach.contains(&n.id) || n.id == STATE_BUCKET);
        self.graph = Arc::new(graph);
        self.retired = None;
        self.only = Some(selection);
    }
}
