//! Run types shared by the executor, the resource kinds, the CLI and the output layer, so
//! none of them imports another for its types. Pure: no AWS SDK, no tokio.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diff::{Change, Ignored};
use crate::error::{Failure, NodeError};
use crate::graph::Needs;

/// A dependency on another node, declared once, as a field of the kind that uses it. The
/// graph's edges are derived from these and from templates' placeholders
/// (`resources::declared`), and a node can read only the attributes of the nodes it reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    pub node: String,
    /// What this node needs of that one before it may start (PLATFORM.md, "When a dependent
    /// call may start").
    pub needs: Needs,
}

impl Ref {
    /// Needs the other node's identifiers: met as soon as its create call returned.
    pub fn id(node: impl Into<String>) -> Ref {
        Ref {
            node: node.into(),
            needs: Needs::Id,
        }
    }

    /// Needs the other node ready (a certificate ISSUED).
    pub fn ready(node: impl Into<String>) -> Ref {
        Ref {
            node: node.into(),
            needs: Needs::Ready,
        }
    }
}

/// A DNS record a node needs someone to publish (ACM's validation records).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    pub name: String,
    pub record_type: String,
    pub value: String,
}

/// What a node publishes about its live resource, for its dependents and the outputs.
/// Create, update, replace and observe all return it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Attrs {
    /// The primary id: `vpc-…`, a key id, a log group name, a role name, a zone id.
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// A name where it differs from the id (a hosted zone's domain).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A DNS name clients resolve (a load balancer, a distribution).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
    /// The Route53 zone id of `dns_name` (alias targets), or a hosted zone's own id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosted_zone_id: Option<String>,
    /// A connection endpoint (an Aurora writer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reader_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// The ARN of a secret AWS manages for this resource (never its value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_arn: Option<String>,
    /// Where a person looks at it (a dashboard's console page).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// AWS's word for the resource's state (`available`, `pending`), for `status`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub validation_records: Vec<DnsRecord>,
}

impl Attrs {
    pub fn id(id: impl Into<String>) -> Attrs {
        Attrs {
            id: id.into(),
            ..Attrs::default()
        }
    }

    pub fn with_arn(mut self, arn: impl Into<String>) -> Attrs {
        self.arn = Some(arn.into());
        self
    }

    /// What is empty where an identifier must be (`"id"`, `"ARN"`): such attributes are
    /// never published to dependents nor recorded.
    pub fn missing_identifier(&self) -> Option<&'static str> {
        if self.id.is_empty() {
            Some("id")
        } else if self.arn.as_deref() == Some("") {
            Some("ARN")
        } else {
            None
        }
    }
}

/// Shown in place of an input attribute that exists only once its node is created (`plan`).
pub const UNKNOWN: &str = "(known after apply)";

/// A node's identifiers handed to the executor once, from its create call
/// ([`Inputs::publish`]) or when its apply returns, whichever comes first.
pub struct EarlyIds<'a> {
    sent: std::sync::atomic::AtomicBool,
    send: Box<dyn Fn(Attrs) + Send + Sync + 'a>,
}

impl<'a> EarlyIds<'a> {
    pub fn new(send: impl Fn(Attrs) + Send + Sync + 'a) -> Self {
        EarlyIds {
            sent: std::sync::atomic::AtomicBool::new(false),
            send: Box::new(send),
        }
    }

    /// Sends `attrs` unless identifiers were sent already.
    pub fn publish(&self, attrs: Attrs) {
        if !self.sent.swap(true, std::sync::atomic::Ordering::SeqCst) {
            (self.send)(attrs);
        }
    }

    pub fn sent(&self) -> bool {
        self.sent.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The attributes of the nodes one node declared as inputs. Strict during `up` (every input
/// has been published, the executor guarantees it); lenient in `plan` and `drift`, where an
/// input that does not exist yet reads as [`UNKNOWN`], so the comparison still runs and
/// reports the field as changing.
pub struct Inputs<'a> {
    node: &'a str,
    values: &'a [(String, Option<Attrs>)],
    strict: bool,
    publisher: Option<&'a EarlyIds<'a>>,
    to_exist_only: bool,
}

impl<'a> Inputs<'a> {
    pub fn new(node: &'a str, values: &'a [(String, Option<Attrs>)], strict: bool) -> Self {
        Inputs {
            node,
            values,
            strict,
            publisher: None,
            to_exist_only: false,
        }
    }

    /// Asks a create for what makes the resource exist and be found again (its name, its
    /// tags) and nothing more: the lock step needs only the state bucket, and each settings
    /// call after it is one more write before the run can start. What a create leaves out
    /// converges when the node is next looked at (the run looks at the state bucket again as
    /// it starts it). A kind whose create is one call ignores it.
    pub fn to_exist_only(mut self) -> Self {
        self.to_exist_only = true;
        self
    }

    /// See [`Inputs::to_exist_only`].
    pub fn exist_only(&self) -> bool {
        self.to_exist_only
    }

    /// Where [`Inputs::publish`] hands identifiers over (the executor's run of `up`).
    pub fn publishing_to(mut self, publisher: &'a EarlyIds<'a>) -> Self {
        self.publisher = Some(publisher);
        self
    }

    /// A node's identifiers, as soon as its create call has answered: nodes that need only
    /// them start now, while this one goes on with its settings calls (a group's rules, a
    /// VPC's DNS attributes). Publish exactly what the create will return: it is what those
    /// nodes read until this one finishes. Once per node; nothing without an id (the
    /// apply's own check then fails the node). Should a later call fail, the node fails and
    /// every node waiting on it is skipped, as if nothing had been published.
    pub fn publish(&self, attrs: &Attrs) {
        if let Some(p) = self.publisher {
            if attrs.missing_identifier().is_none() {
                p.publish(attrs.clone());
            }
        }
    }

    /// Whether this node has published its identifiers: a create that did must not be made
    /// again (its dependents already use what it made).
    pub fn published(&self) -> bool {
        self.publisher.is_some_and(EarlyIds::sent)
    }

    /// The attributes `r` published; `None` while it does not exist (lenient mode only).
    pub fn attrs(&self, r: &Ref) -> Result<Option<&'a Attrs>, Failure> {
        let Some((_, value)) = self.values.iter().find(|(n, _)| *n == r.node) else {
            return Err(Failure::new(
                "UndeclaredInput",
                format!(
                    "{} reads `{}`, which it did not declare as an input (a bug in tap-provision)",
                    self.node, r.node
                ),
            ));
        };
        match value {
            Some(a) => Ok(Some(a)),
            None if self.strict => Err(Failure::new(
                "MissingDependency",
                format!(
                    "{} needs `{}`, which has published nothing",
                    self.node, r.node
                ),
            )),
            None => Ok(None),
        }
    }

    /// One attribute of `r`, [`UNKNOWN`] while `r` does not exist or has not published it
    /// yet (lenient mode: a planned node publishes only what its name gives).
    pub fn attr(
        &self,
        r: &Ref,
        what: &str,
        get: impl Fn(&'a Attrs) -> Option<&'a str>,
    ) -> Result<&'a str, Failure> {
        match self.attrs(r)?.map(get) {
            None => Ok(UNKNOWN),
            // An empty value is never sent on: the adapter refuses to publish one, so this
            // is a kind publishing an attribute it does not have.
            Some(Some("")) if self.strict => Err(Failure::new(
                "MissingAttribute",
                format!(
                    "{} needs the {what} of `{}`, which is empty",
                    self.node, r.node
                ),
            )),
            Some(Some(v)) => Ok(v),
            Some(None) if !self.strict => Ok(UNKNOWN),
            Some(None) => Err(Failure::new(
                "MissingAttribute",
                format!(
                    "{} needs the {what} of `{}`, which it did not publish",
                    self.node, r.node
                ),
            )),
        }
    }

    /// `r`'s port, as text (see [`Inputs::attr`]).
    pub fn port(&self, r: &Ref) -> Result<String, Failure> {
        let port = self.attrs(r)?.and_then(|a| a.port).map(|p| p.to_string());
        match port {
            Some(p) => Ok(p),
            None => self.attr(r, "port", |_| None).map(String::from),
        }
    }

    pub fn id(&self, r: &Ref) -> Result<&'a str, Failure> {
        self.attr(r, "id", |a| Some(a.id.as_str()))
    }

    pub fn arn(&self, r: &Ref) -> Result<&'a str, Failure> {
        self.attr(r, "ARN", |a| a.arn.as_deref())
    }
}

/// The action `up` takes on a node, as `plan` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Create,
    Update {
        changes: Vec<Change>,
    },
    /// Some property AWS cannot change in place: delete, then create.
    Replace {
        changes: Vec<Change>,
    },
    /// Some property AWS cannot change in place, on a kind `up` does not replace (it holds
    /// data or others depend on it): `up` stops there with what to do.
    Blocked {
        changes: Vec<Change>,
    },
    Unchanged,
    /// A lookup-only node (it exists outside the environment) was not found: `up` stops
    /// before it creates anything.
    Missing {
        message: String,
    },
}

impl Action {
    pub fn label(&self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update { .. } => "change",
            Action::Replace { .. } => "replace",
            Action::Blocked { .. } => "blocked",
            Action::Unchanged => "unchanged",
            Action::Missing { .. } => "missing",
        }
    }

    pub fn changes(&self) -> &[Change] {
        match self {
            Action::Update { changes }
            | Action::Replace { changes }
            | Action::Blocked { changes } => changes,
            _ => &[],
        }
    }

    /// True when `up` would call a mutating API for it.
    pub fn is_change(&self) -> bool {
        matches!(
            self,
            Action::Create | Action::Update { .. } | Action::Replace { .. }
        )
    }
}

/// What comparing a node's desired and live state found.
#[derive(Debug, Clone)]
pub struct NodePlan {
    pub action: Action,
    /// Differences in values AWS or its services own, not acted on, each with its reason.
    pub ignored: Vec<Ignored>,
    /// True when the node's published attributes change with the action (a replacement).
    pub new_attrs: bool,
}

/// One entry of the outputs printed after `up` and by `status`, built from the attributes
/// nodes publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub key: &'static str,
    pub value: Value,
    /// Values of several nodes under one key are collected into a list.
    pub list: bool,
}

/// Builds the outputs map from every node's entries.
pub fn collect_outputs(entries: impl IntoIterator<Item = Output>) -> BTreeMap<String, Value> {
    let mut out: BTreeMap<String, Value> = BTreeMap::new();
    for e in entries {
        if e.list {
            let slot = out
                .entry(e.key.to_string())
                .or_insert_with(|| Value::Array(vec![]));
            if let Value::Array(items) = slot {
                items.push(e.value);
            }
        } else {
            out.insert(e.key.to_string(), e.value);
        }
    }
    out
}

/// A node's desired spec as `up` last applied it: stored in the environment's state bucket
/// so `drift` can tell a change made in AWS from a config edit not applied yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub kind: String,
    pub spec: Value,
    pub tags: Vec<(String, String)>,
    /// The live resource's identifiers when it was last applied: how it is found again when
    /// its tags (or the attribute it is found by) were edited out of band. `None` in a record
    /// of format 1, and in [`crate::executor::Task::record`]'s answer (the spec alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<RecordedIds>,
}

/// What the applied record keeps of a live resource to find it again: its primary id and ARN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedIds {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
}

impl RecordedIds {
    pub fn of(attrs: &Attrs) -> RecordedIds {
        RecordedIds {
            id: attrs.id.clone(),
            arn: attrs.arn.clone(),
        }
    }
}

/// What `down` and `up` were told about data and protection.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunFlags {
    /// `--destroy-data`: no final snapshot; the KMS key, backup vault, recovery points and
    /// bucket contents go.
    pub destroy_data: bool,
    /// `--disable-protection`: turn deletion protection off, then delete.
    pub disable_protection: bool,
}

/// What happened to one node in a run.
#[derive(Debug)]
pub enum Outcome {
    Created(Attrs),
    Updated(Attrs, Vec<Change>),
    Replaced(Attrs, Vec<Change>),
    Unchanged(Attrs),
    Deleted,
    /// `down` found nothing to delete.
    Absent,
    /// `down` kept it on purpose, with the reason and how to remove it.
    Kept(String),
    Failed(NodeError),
    Skipped(String),
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Created(_) => "created",
            Outcome::Updated(..) => "updated",
            Outcome::Replaced(..) => "replaced",
            Outcome::Unchanged(_) => "unchanged",
            Outcome::Deleted => "deleted",
            Outcome::Absent => "absent",
            Outcome::Kept(_) => "kept",
            Outcome::Failed(_) => "failed",
            Outcome::Skipped(_) => "skipped",
        }
    }

    /// True when the run changed something in AWS.
    pub fn is_change(&self) -> bool {
        matches!(
            self,
            Outcome::Created(_) | Outcome::Updated(..) | Outcome::Replaced(..) | Outcome::Deleted
        )
    }

    pub fn attrs(&self) -> Option<&Attrs> {
        match self {
            Outcome::Created(a)
            | Outcome::Updated(a, _)
            | Outcome::Replaced(a, _)
            | Outcome::Unchanged(a) => Some(a),
            _ => None,
        }
    }
}

pub struct NodeReport {
    pub node: String,
    pub kind: &'static str,
    pub outcome: Outcome,
    pub elapsed: Duration,
}

#[derive(Default)]
pub struct RunReport {
    pub nodes: Vec<NodeReport>,
    pub interrupted: bool,
    pub elapsed: Duration,
}

impl RunReport {
    pub fn failed(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| matches!(n.outcome, Outcome::Failed(_)))
            .count()
    }

    pub fn changed(&self) -> usize {
        self.nodes.iter().filter(|n| n.outcome.is_change()).count()
    }

    /// 1 when a node failed, 130 when interrupted, else 0 ([`crate::error::exit`]).
    pub fn exit_code(&self) -> i32 {
        use crate::error::exit;
        if self.failed() > 0 {
            exit::ERROR
        } else if self.interrupted {
            exit::INTERRUPTED
        } else {
            exit::OK
        }
    }
}

/// Where the executor and the resource kinds send what happens; the reporter implements it.
pub trait Events: Send + Sync {
    fn node_started(&self, node: &str, kind: &str);
    /// What a running node is doing now ("creating", "waiting for available (pending, 12s)").
    fn node_progress(&self, node: &str, message: &str);
    fn node_finished(&self, node: &str, kind: &str, outcome: &Outcome, elapsed: Duration);
    fn warn(&self, message: &str);
    /// Something to know after the run (where kept data is, what is scheduled).
    fn note(&self, message: &str);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_strict_in_up_and_lenient_in_plan() {
        let values = vec![
            (
                "vpc".to_string(),
                Some(Attrs::id("vpc-1").with_arn("arn:vpc")),
            ),
            ("nat-a".to_string(), None),
        ];
        let lenient = Inputs::new("subnet-a", &values, false);
        assert_eq!(lenient.id(&Ref::id("vpc")).unwrap(), "vpc-1");
        assert_eq!(lenient.arn(&Ref::id("vpc")).unwrap(), "arn:vpc");
        assert_eq!(lenient.id(&Ref::id("nat-a")).unwrap(), UNKNOWN);
        assert_eq!(
            lenient.id(&Ref::id("sg-db")).unwrap_err().code,
            "UndeclaredInput"
        );
        let strict = Inputs::new("subnet-a", &values, true);
        assert_eq!(
            strict.id(&Ref::id("nat-a")).unwrap_err().code,
            "MissingDependency"
        );
        assert_eq!(
            strict
                .attr(&Ref::id("vpc"), "DNS name", |a| a.dns_name.as_deref())
                .unwrap_err()
                .code,
            "MissingAttribute"
        );
    }

    #[test]
    fn outputs_collect_lists() {
        let out = collect_outputs([
            Output {
                key: "subnets",
                value: "a".into(),
                list: true,
            },
            Output {
                key: "vpc",
                value: "v".into(),
                list: false,
            },
            Output {
                key: "subnets",
                value: "b".into(),
                list: true,
            },
        ]);
        assert_eq!(out["subnets"], serde_json::json!(["a", "b"]));
        assert_eq!(out["vpc"], "v");
    }
}
