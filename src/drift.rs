//! Telling drift from pending config edits. Pure.
//!
//! Two comparisons of the same observation: against the config (what `up` would do) and
//! against the applied record (what `up` last applied). For each field:
//!
//! | live vs config | live vs applied | finding |
//! |---|---|---|
//! | differs | differs | drift (and pending as well, when config and record disagree) |
//! | differs | equal | pending: a config edit `up` has not applied |
//! | equal | differs | nothing: live already is what the config asks |
//!
//! A resource gone is drift when the record has it, pending (a create) when it does not. With
//! no record at all, every difference counts as drift: the tool cannot tell, and a payment
//! platform would rather look.

use serde::Serialize;

use crate::diff::{Change, Ignored};
use crate::error::NodeError;
use crate::model::{Action, NodePlan};

/// What drifted on one node.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Drifted {
    /// It is gone.
    Deleted,
    /// Properties, set members or tags changed in AWS.
    Changed { changes: Vec<Change> },
}

/// One node's findings.
#[derive(Debug, Serialize)]
pub struct NodeDrift {
    pub node: String,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<Drifted>,
    /// A config edit not applied yet: what `up` would do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<Action>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<Ignored>,
    /// Not in the applied record (the finding assumes the config was applied).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unrecorded: bool,
    #[serde(skip_serializing)]
    pub error: Option<NodeError>,
}

impl NodeDrift {
    pub fn has_drift(&self) -> bool {
        self.drift.is_some()
    }
}

/// What the comparisons found for one node.
pub struct Compared<'a> {
    pub node: &'a str,
    pub kind: &'static str,
    pub present: bool,
    /// Against the config.
    pub current: Option<&'a Result<NodePlan, NodeError>>,
    /// Against the applied record; `None` when the record has no entry for it.
    pub applied: Option<&'a Result<NodePlan, NodeError>>,
    /// True when there is an applied record at all.
    pub have_record: bool,
}

/// Classifies one node (see the module's table).
pub fn classify(c: Compared<'_>) -> NodeDrift {
    let mut out = NodeDrift {
        node: c.node.to_string(),
        kind: c.kind,
        drift: None,
        pending: None,
        ignored: Vec::new(),
        unrecorded: c.have_record && c.applied.is_none(),
        error: None,
    };
    let current = match c.current {
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            out.error = Some(e.summary());
            return out;
        }
        None => return out,
    };
    if let Action::Missing { .. } = current.action {
        out.pending = Some(current.action.clone());
        return out;
    }
    out.ignored = current.ignored.clone();
    // Compared with the record where it has the node; with the config otherwise.
    let (applied, recorded) = match c.applied {
        Some(Ok(p)) => (p, true),
        Some(Err(e)) => {
            out.error = Some(e.summary());
            return out;
        }
        None => (current, false),
    };
    if !c.present {
        if recorded || !c.have_record {
            out.drift = Some(Drifted::Deleted);
        } else {
            out.pending = Some(Action::Create);
        }
        return out;
    }
    let now = current.action.changes();
    let then = applied.action.changes();
    let drift: Vec<Change> = then
        .iter()
        .filter(|a| now.iter().any(|n| n.same_field(a)))
        .cloned()
        .collect();
    if !drift.is_empty() {
        out.drift = Some(Drifted::Changed { changes: drift });
    }
    if recorded {
        let pending: Vec<Change> = now.iter().filter(|n| !then.contains(n)).cloned().collect();
        if !pending.is_empty() {
            out.pending = Some(if pending.iter().any(|c| c.replace) {
                Action::Replace { changes: pending }
            } else {
                Action::Update { changes: pending }
            });
        }
    }
    out
}

/// Counts of a set of findings.
pub struct Tally {
    pub drifted: usize,
    pub pending: usize,
    pub errors: usize,
}

pub fn tally(findings: &[NodeDrift]) -> Tally {
    let missing = |d: &NodeDrift| matches!(d.pending, Some(Action::Missing { .. }));
    Tally {
        drifted: findings.iter().filter(|d| d.has_drift()).count(),
        pending: findings
            .iter()
            .filter(|d| d.pending.is_some() && !missing(d))
            .count(),
        errors: findings
            .iter()
            .filter(|d| d.error.is_some() || missing(d))
            .count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(field: &str, want: &str, have: &str) -> Change {
        Change {
            field: field.into(),
            want: want.into(),
            have: have.into(),
            replace: false,
            confidential: false,
        }
    }

    fn plan(changes: Vec<Change>) -> Result<NodePlan, NodeError> {
        Ok(NodePlan {
            action: if changes.is_empty() {
                Action::Unchanged
            } else {
                Action::Update { changes }
            },
            ignored: vec![],
            new_attrs: false,
        })
    }

    fn compare<'a>(
        present: bool,
        current: &'a Result<NodePlan, NodeError>,
        applied: Option<&'a Result<NodePlan, NodeError>>,
        have_record: bool,
    ) -> NodeDrift {
        classify(Compared {
            node: "n",
            kind: "k",
            present,
            current: Some(current),
            applied,
            have_record,
        })
    }

    #[test]
    fn a_hand_change_is_drift_a_config_edit_is_pending() {
        // Retention edited in the config (7 -> 14); someone added an SSH rule by hand.
        let current = plan(vec![
            change("retention", "14", "7"),
            change("ingress", "(no additions)", "extra tcp/22"),
        ]);
        let applied = plan(vec![change("ingress", "(no additions)", "extra tcp/22")]);
        let d = compare(true, &current, Some(&applied), true);
        assert_eq!(
            d.drift,
            Some(Drifted::Changed {
                changes: vec![change("ingress", "(no additions)", "extra tcp/22")]
            })
        );
        assert_eq!(
            d.pending,
            Some(Action::Update {
                changes: vec![change("retention", "14", "7")]
            })
        );
    }

    #[test]
    fn live_already_as_configured_is_nothing() {
        // An interrupted `up` applied 14 but did not record it.
        let current = plan(vec![]);
        let applied = plan(vec![change("retention", "7", "14")]);
        let d = compare(true, &current, Some(&applied), true);
        assert!(d.drift.is_none() && d.pending.is_none());
    }

    #[test]
    fn gone_is_drift_when_recorded_pending_when_new() {
        let current = Ok(NodePlan {
            action: Action::Create,
            ignored: vec![],
            new_attrs: true,
        });
        let recorded = compare(false, &current, Some(&current), true);
        assert_eq!(recorded.drift, Some(Drifted::Deleted));
        let new = compare(false, &current, None, true);
        assert!(new.drift.is_none());
        assert_eq!(new.pending, Some(Action::Create));
        assert!(new.unrecorded);
        // No record at all: the tool cannot tell, so it is drift.
        let unknown = compare(false, &current, None, false);
        assert_eq!(unknown.drift, Some(Drifted::Deleted));
    }

    #[test]
    fn without_a_record_every_difference_is_drift() {
        let current = plan(vec![change("retention", "14", "7")]);
        let d = compare(true, &current, None, false);
        assert!(d.has_drift());
        assert!(d.pending.is_none());
    }
}
