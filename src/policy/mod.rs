//! Least privilege, derived from the graph: each kind declares the IAM actions its steps call
//! ([`Grants`]: what `observe` reads, what `create` and `update` write, what `delete`
//! removes), each scoped to this environment's exact names (`${suffix}`: each node's own
//! name part) or to its `tap:environment` tag, or to `*` with the reason AWS gives no
//! resource-level permission. A verb's policy is the union over the kinds of the
//! environment's graph, plus what every run needs of its state bucket, and a few denials:
//! changing anything tagged as another environment's, moving a resource to another
//! environment's tag, and (for the scheduled verbs) touching the scheduled repair's own
//! roles and schedule.
//!
//! The documents are templates: `${partition}`, `${region}`, `${account}`, `${project}`,
//! `${env}` (the environment's full name, `<project>-<env>`) and `${env_name}` (its own
//! name, as IAM paths hold it) are filled in for the account they are applied in.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::aws::tags::ENV_TAG;

/// What a policy is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verb {
    Drift,
    Repair,
    Up,
    Down,
    /// What a scheduled run needs (the task role's): never the scheduled repair's own
    /// nodes, and telling (metrics, the alerts topic).
    ScheduledDrift,
    ScheduledRepair,
}

impl Verb {
    pub const ALL: [Verb; 4] = [Verb::Drift, Verb::Repair, Verb::Up, Verb::Down];

    pub fn name(self) -> &'static str {
        match self {
            Verb::Drift => "drift",
            Verb::Repair => "repair",
            Verb::Up => "up",
            Verb::Down => "down",
            Verb::ScheduledDrift => "scheduled-drift",
            Verb::ScheduledRepair => "scheduled-repair",
        }
    }

    /// The scheduled run of `drift` or `repair`; the verb itself for the others.
    pub fn scheduled_run(self) -> Verb {
        match self {
            Verb::Drift => Verb::ScheduledDrift,
            Verb::Repair => Verb::ScheduledRepair,
            other => other,
        }
    }

    pub fn parse(text: &str) -> Option<Verb> {
        Verb::ALL.into_iter().find(|v| v.name() == text)
    }

    fn reads(self) -> bool {
        true
    }

    fn writes(self) -> bool {
        matches!(self, Verb::Repair | Verb::ScheduledRepair | Verb::Up)
    }

    fn deletes(self) -> bool {
        matches!(self, Verb::Up | Verb::Down)
    }

    /// The verbs a schedule runs: never on the scheduled repair's own nodes.
    pub fn scheduled(self) -> bool {
        matches!(self, Verb::ScheduledDrift | Verb::ScheduledRepair)
    }

    fn repairs(self) -> bool {
        matches!(self, Verb::Repair | Verb::ScheduledRepair)
    }
}

/// Where a grant applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum On {
    /// ARN patterns of this environment's resources (templates: `${env}` is the
    /// environment's full name; `${suffix}` the node's own name part, as
    /// [`crate::resources::Resource::name_part`] gives it, so a grant names each resource
    /// exactly where the service has no tag condition to tell environments apart).
    Arns(&'static [&'static str]),
    /// Like `Arns` (the environment's roles), for attaching a managed policy: only one of
    /// the environment's own (`iam:PolicyARN`), never one that would widen the role.
    AttachingOwnPolicies(&'static [&'static str]),
    /// Resources tagged `tap:environment` = this environment (`aws:ResourceTag`).
    Tagged,
    /// Creates that tag what they make with this environment (`aws:RequestTag`).
    Creating,
    /// The tagging action, only inside a create call that tags what it makes with this
    /// environment: the service's `<service>:CreateAction` context key is set. Never on a
    /// resource made elsewhere (that would claim it).
    TagOnCreate(&'static str),
    /// `*`: AWS gives the action no resource-level permission, or none usable before the
    /// resource exists; the reason.
    Any(&'static str),
}

/// Actions on one scope.
#[derive(Debug, Clone, Copy)]
pub struct Grant {
    pub actions: &'static [&'static str],
    pub on: On,
}

/// Everything one kind calls, by step.
#[derive(Debug, Clone, Copy)]
pub struct Grants {
    /// `observe` and readiness polls.
    pub read: &'static [Grant],
    /// `create`, `update`, tagging.
    pub write: &'static [Grant],
    /// `delete` and waiting for a deletion.
    pub delete: &'static [Grant],
}

impl Grants {
    pub const NONE: Grants = Grants {
        read: &[],
        write: &[],
        delete: &[],
    };
}

/// Shorthand for a kind's declarations: `grant(&["ec2:DescribeVpcs"], On::Any("..."))`.
pub const fn grant(actions: &'static [&'static str], on: On) -> Grant {
    Grant { actions, on }
}

/// The environment's full name in templates.
pub const ENV_FULL: &str = "${env}";

/// The reason EC2's describes are `*`.
pub const EC2_DESCRIBE: &str = "EC2 Describe* actions have no resource-level permission";
/// Reading tags in bulk by ARN ([`crate::aws::bulk_tags`]): the tagging API takes no
/// resource. Without it each node reads its own tags, as allowed on its resource.
pub const BULK_TAGS: Grant = grant(
    &[crate::aws::bulk_tags::ACTION],
    On::Any("tags are read in bulk by ARN (the tagging API takes no resource)"),
);
/// The reason ELB's describes are `*`.
pub const ELB_DESCRIBE: &str =
    "Elastic Load Balancing Describe* actions have no resource-level permission";

/// One node of the graph, as a policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    pub id: &'a str,
    pub grants: &'a Grants,
    /// `up` and `repair` may replace it (delete, then create): they need its deletes.
    pub replaceable: bool,
    /// What `${suffix}` stands for in its grants' ARNs.
    pub name_part: Option<&'a str>,
}

/// Where one statement applies: a grant's scope with its ARNs filled in for the nodes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Scoped {
    /// ARNs, and whether attached policies must be the environment's own.
    Arns(Vec<String>, bool),
    Other(On),
}

impl Scoped {
    /// `on` for node part `name_part`: `${suffix}` filled in.
    fn of(on: On, name_part: Option<&str>) -> Scoped {
        // A kind that names `${suffix}` without a name part keeps the placeholder, which
        // no account fills in: the policy fails to render, never widens to `*`.
        let fill = |arns: &[&str]| {
            arns.iter()
                .map(|a| match name_part {
                    Some(part) => a.replace(SUFFIX, part),
                    None => a.to_string(),
                })
                .collect()
        };
        match on {
            On::Arns(arns) => Scoped::Arns(fill(arns), false),
            On::AttachingOwnPolicies(arns) => Scoped::Arns(fill(arns), true),
            other => Scoped::Other(other),
        }
    }
}

/// The environment's managed policies: all a role of it may have attached.
pub const OWN_POLICIES: &str =
    "arn:${partition}:iam::${account}:policy/${project}/${env_name}/${env}-*";

/// A node's own name part in a grant's ARN.
pub const SUFFIX: &str = "${suffix}";

/// What every run needs besides its kinds: its state bucket (the lock, the applied record,
/// the run history) and who it is.
const SESSION: &[Grant] = &[
    grant(
        &["sts:GetCallerIdentity"],
        On::Any("STS GetCallerIdentity has no resource"),
    ),
    grant(
        &["ec2:DescribeAvailabilityZones", "ec2:DescribeSubnets"],
        On::Any("the zones, when the env file names none: EC2 Describe* take no resource"),
    ),
    grant(
        &["s3:ListBucket"],
        On::Arns(&["arn:${partition}:s3:::${env}-state-${account}"]),
    ),
    grant(
        &["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
        On::Arns(&["arn:${partition}:s3:::${env}-state-${account}/tap-provision/*"]),
    ),
];

/// What a scheduled run tells with (metrics and the alerts topic).
const TELLING: &[Grant] = &[
    grant(
        &["cloudwatch:PutMetricData"],
        On::Any("CloudWatch PutMetricData has no resource; limited to the tool's namespace"),
    ),
    grant(
        &["sns:Publish"],
        On::Arns(&["arn:${partition}:sns:${region}:${account}:${env}-alerts"]),
    ),
    // The topic is encrypted with the environment's key.
    grant(&["kms:GenerateDataKey*", "kms:Decrypt"], On::Tagged),
];

/// Every action that sets tags, by service: a resource may never be moved to another
/// environment's tag value, nor lose it.
const TAGGING: &[&str] = &[
    "acm:AddTagsToCertificate",
    "application-autoscaling:TagResource",
    "backup:TagResource",
    "cloudfront:TagResource",
    "cloudwatch:TagResource",
    "ec2:CreateTags",
    "ecs:TagResource",
    "elasticloadbalancing:AddTags",
    "iam:TagRole",
    "kms:TagResource",
    "logs:TagResource",
    "rds:AddTagsToResource",
    "route53:ChangeTagsForResource",
    "s3:PutBucketTagging",
    "scheduler:TagResource",
    "secretsmanager:TagResource",
    "sns:TagResource",
];

const UNTAGGING: &[&str] = &[
    "acm:RemoveTagsFromCertificate",
    "application-autoscaling:UntagResource",
    "backup:UntagResource",
    "cloudfront:UntagResource",
    "cloudwatch:UntagResource",
    "ec2:DeleteTags",
    "ecs:UntagResource",
    "elasticloadbalancing:RemoveTags",
    "iam:UntagRole",
    "kms:UntagResource",
    "logs:UntagResource",
    "rds:RemoveTagsFromResource",
    "scheduler:UntagResource",
    "secretsmanager:UntagResource",
    "sns:UntagResource",
];

/// The policy document `verb` needs, for a graph whose nodes have `kinds` (node, its
/// kind's grants). The scheduled verbs leave out the scheduled repair's own nodes and deny
/// their roles and schedule outright.
pub fn document<'a>(verb: Verb, nodes: impl IntoIterator<Item = Node<'a>>) -> Value {
    // Scope -> actions, so each scope is one statement; a node's exact ARNs join the
    // statement of the same actions on its kind's other nodes.
    let mut by_scope: BTreeMap<Scoped, Vec<&'static str>> = BTreeMap::new();
    let mut add = |grants: &[Grant], name_part: Option<&str>| {
        for g in grants {
            by_scope
                .entry(Scoped::of(g.on, name_part))
                .or_default()
                .extend(g.actions);
        }
    };
    add(SESSION, None);
    if verb.scheduled() {
        add(TELLING, None);
    }
    for (grants, name_part) in steps(verb, nodes) {
        add(grants, name_part);
    }
    // The same actions on several nodes' ARNs (under the same condition): one statement.
    let mut arns_by_actions: BTreeMap<(Vec<&'static str>, bool), Vec<String>> = BTreeMap::new();
    let mut statements: Vec<Value> = Vec::new();
    for (scoped, mut actions) in by_scope {
        actions.sort_unstable();
        actions.dedup();
        match scoped {
            Scoped::Arns(arns, own) => arns_by_actions
                .entry((actions, own))
                .or_default()
                .extend(arns),
            Scoped::Other(on) => statements.push(statement(on, &actions)),
        }
    }
    for ((actions, own), mut arns) in arns_by_actions {
        arns.sort();
        arns.dedup();
        let mut s = json!({"Effect": "Allow", "Action": actions, "Resource": arns});
        if own {
            s["Condition"] = json!({"ArnLike": {"iam:PolicyARN": OWN_POLICIES}});
        }
        statements.push(s);
    }
    let services: BTreeSet<&str> = statements
        .iter()
        .filter_map(|s| s["Action"].as_array())
        .flatten()
        .filter_map(|a| a.as_str()?.split_once(':').map(|(svc, _)| svc))
        .collect();
    statements.extend(denials(verb, &services));
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// The read actions of `services` (`Describe*`, `Get*`, `List*`): what the deny on another
/// environment's resources leaves alone, since finding our own resource may read another's
/// tags on the way (a KMS key found by tag, a certificate by its domain).
fn reads_of(services: &BTreeSet<&str>) -> Vec<String> {
    services
        .iter()
        .flat_map(|svc| ["Describe*", "Get*", "List*"].map(|verb| format!("{svc}:{verb}")))
        .collect()
}

fn statement(on: On, actions: &[&str]) -> Value {
    let tag_key = |kind: &str| format!("aws:{kind}/{ENV_TAG}");
    match on {
        On::Arns(arns) => json!({"Effect": "Allow", "Action": actions, "Resource": arns}),
        On::AttachingOwnPolicies(arns) => json!({
            "Effect": "Allow", "Action": actions, "Resource": arns,
            "Condition": {"ArnLike": {"iam:PolicyARN": OWN_POLICIES}}
        }),
        On::Tagged => json!({
            "Effect": "Allow", "Action": actions, "Resource": "*",
            "Condition": {"StringEquals": {tag_key("ResourceTag"): ENV_FULL}}
        }),
        On::Creating => json!({
            "Effect": "Allow", "Action": actions, "Resource": "*",
            "Condition": {"StringEquals": {tag_key("RequestTag"): ENV_FULL}}
        }),
        On::TagOnCreate(create_action) => json!({
            "Effect": "Allow", "Action": actions, "Resource": "*",
            "Condition": {
                "StringEquals": {tag_key("RequestTag"): ENV_FULL},
                "Null": {create_action: "false"}
            }
        }),
        On::Any(_) => {
            let mut s = json!({"Effect": "Allow", "Action": actions, "Resource": "*"});
            if actions == ["cloudwatch:PutMetricData"] {
                s["Condition"] =
                    json!({"StringEquals": {"cloudwatch:namespace": crate::tell::NAMESPACE}});
            }
            s
        }
    }
}

/// Never change what carries another environment's tag (reads of `services` aside), never
/// move a resource to another environment's tag, nor strip it; the scheduled verbs never
/// touch the scheduled repair's own roles, task family and schedule.
fn denials(verb: Verb, services: &BTreeSet<&str>) -> Vec<Value> {
    let mut out = vec![
        json!({
            "Sid": "NeverTagForAnotherEnvironment",
            "Effect": "Deny", "Action": TAGGING, "Resource": "*",
            "Condition": {
                "StringNotEquals": {format!("aws:RequestTag/{ENV_TAG}"): ENV_FULL},
                "Null": {format!("aws:RequestTag/{ENV_TAG}"): "false"}
            }
        }),
        // A name prefix (`tap-prod-*`) also matches an environment whose name extends this
        // one's (`tap-prod-eu-*`): nothing that carries another environment's tag is
        // changed, whatever the allows say; reads stay allowed (finding our own resources
        // reads others' tags). Services without tag conditions are named exactly
        // (`${suffix}`). A resource of ours retagged by hand as another environment's is
        // then not taken back: reported, as `reconcile` does.
        json!({
            "Sid": "NeverAnotherEnvironmentsResources",
            "Effect": "Deny", "NotAction": reads_of(services), "Resource": "*",
            "Condition": {
                "StringNotEquals": {format!("aws:ResourceTag/{ENV_TAG}"): ENV_FULL},
                "Null": {format!("aws:ResourceTag/{ENV_TAG}"): "false"}
            }
        }),
        json!({
            "Sid": "NeverRemoveTheEnvironmentTag",
            "Effect": "Deny", "Action": UNTAGGING, "Resource": "*",
            "Condition": {"ForAnyValue:StringEquals": {"aws:TagKeys": [ENV_TAG]}}
        }),
    ];
    if verb.scheduled() {
        out.push(json!({
            "Sid": "NeverTheScheduledRepairItself",
            "Effect": "Deny",
            "Action": ["iam:*", "scheduler:*"],
            "Resource": [
                "arn:${partition}:iam::${account}:role/${project}/${env_name}/${env}-repair-*",
                "arn:${partition}:scheduler:${region}:${account}:schedule-group/${env}-repair",
                "arn:${partition}:scheduler:${region}:${account}:schedule/${env}-repair/*"
            ]
        }));
    }
    out
}

/// IAM's limit on one managed policy: characters, whitespace not counted.
pub const MANAGED_POLICY_LIMIT: usize = 6144;
/// IAM's limit on a role's inline policies together: characters, whitespace not counted.
pub const INLINE_ROLE_LIMIT: usize = 10_240;

/// A document's size as IAM counts it (no whitespace).
pub fn size(doc: &Value) -> usize {
    doc.to_string()
        .chars()
        .filter(|c| !c.is_whitespace())
        .count()
}

/// The nodes of `graph`, as a policy sees them.
pub fn nodes_of(graph: &crate::stack::StepGraph) -> Vec<Node<'_>> {
    graph
        .nodes()
        .iter()
        .map(|n| Node {
            id: &n.id,
            grants: n.payload.grants(),
            replaceable: n.payload.replaceable(),
            name_part: n.payload.name_part(),
        })
        .collect()
}

/// `doc` as several documents of at most `limit` characters each, statements kept whole
/// and in order (one document when it fits).
pub fn split(doc: &Value, limit: usize) -> Vec<Value> {
    split_by(doc, limit, size)
}

/// Like [`split`], with the size measured by `measure` (a template's size once filled in).
/// `measure` must add up as [`size`] does: a document's size is its wrapper's plus each
/// statement's, one more between two (each statement is measured once, on its own).
pub fn split_by(doc: &Value, limit: usize, measure: impl Fn(&Value) -> usize) -> Vec<Value> {
    let statements = doc["Statement"].as_array().cloned().unwrap_or_default();
    let wrap = |s: Vec<Value>| json!({"Version": "2012-10-17", "Statement": s});
    // A document's size is its wrapper's plus each statement's, with a comma between two, so
    // each statement is measured once (measuring every growing document was quadratic: a
    // tenth of a `plan`'s CPU). A statement that cannot be measured (usize::MAX) stays alone.
    let empty = measure(&wrap(Vec::new()));
    let mut out: Vec<Vec<Value>> = vec![Vec::new()];
    let mut used = empty;
    for s in statements {
        let own = measure(&wrap(vec![s.clone()])).saturating_sub(empty);
        let last = out.last_mut().expect("never empty");
        let comma = usize::from(!last.is_empty());
        let grown = used.saturating_add(comma).saturating_add(own);
        if grown > limit && !last.is_empty() {
            out.push(vec![s]);
            used = empty.saturating_add(own);
        } else {
            last.push(s);
            used = grown;
        }
    }
    out.into_iter().map(wrap).collect()
}

/// The reasons given for `*` grants, by action: what `iam-policy --explain` prints.
pub fn unscoped<'a>(
    verb: Verb,
    nodes: impl IntoIterator<Item = Node<'a>>,
) -> BTreeMap<&'static str, &'static str> {
    let mut out = BTreeMap::new();
    let mut add = |grants: &[Grant]| {
        for g in grants {
            if let On::Any(reason) = g.on {
                for a in g.actions {
                    out.entry(*a).or_insert(reason);
                }
            }
        }
    };
    add(SESSION);
    if verb.scheduled() {
        add(TELLING);
    }
    for (grants, _) in steps(verb, nodes) {
        add(grants);
    }
    out
}

/// The grants of the steps `verb` runs on `nodes`: reads always; writes for `up` and
/// `repair`; deletes for `down`, `up`, and a replacement by `repair`. The scheduled verbs
/// never touch the scheduled repair's own nodes.
fn steps<'a>(
    verb: Verb,
    nodes: impl IntoIterator<Item = Node<'a>>,
) -> Vec<(&'a [Grant], Option<&'a str>)> {
    let mut out = Vec::new();
    for n in nodes {
        if verb.scheduled() && crate::stack::is_scheduled_repair(n.id) {
            continue;
        }
        if verb.reads() {
            out.push((n.grants.read, n.name_part));
        }
        if verb.writes() {
            out.push((n.grants.write, n.name_part));
        }
        if verb.deletes() || (verb.repairs() && n.replaceable) {
            out.push((n.grants.delete, n.name_part));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const VPC: Grants = Grants {
        read: &[grant(&["ec2:DescribeVpcs"], On::Any("no resource"))],
        write: &[
            grant(&["ec2:CreateVpc"], On::Creating),
            grant(&["ec2:ModifyVpcAttribute"], On::Tagged),
        ],
        delete: &[grant(&["ec2:DeleteVpc"], On::Tagged)],
    };

    fn node(id: &str) -> Node<'_> {
        Node {
            id,
            grants: &VPC,
            replaceable: false,
            name_part: None,
        }
    }

    fn actions(doc: &Value) -> Vec<String> {
        doc["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["Effect"] == "Allow")
            .flat_map(|s| s["Action"].as_array().unwrap().clone())
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn each_verb_gets_its_steps_and_one_statement_per_scope() {
        let drift = document(Verb::Drift, [node("vpc")]);
        let a = actions(&drift);
        assert!(a.contains(&"ec2:DescribeVpcs".to_string()));
        assert!(!a
            .iter()
            .any(|a| a == "ec2:CreateVpc" || a == "ec2:DeleteVpc"));
        let repair = actions(&document(Verb::Repair, [node("vpc")]));
        assert!(repair.contains(&"ec2:CreateVpc".to_string()));
        assert!(!repair.contains(&"ec2:DeleteVpc".to_string()));
        let down = document(Verb::Down, [node("vpc")]);
        assert!(actions(&down).contains(&"ec2:DeleteVpc".to_string()));
        assert!(!actions(&down).contains(&"ec2:CreateVpc".to_string()));
        let tagged: Vec<&Value> = down["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| {
                s["Condition"]["StringEquals"]["aws:ResourceTag/tap:environment"] == ENV_FULL
            })
            .collect();
        assert_eq!(tagged.len(), 1, "{down:#}");
    }

    #[test]
    fn scheduled_verbs_leave_the_scheduled_repair_alone_and_tell() {
        let doc = document(Verb::ScheduledRepair, [node("vpc"), node("repair-sg")]);
        let text = doc.to_string();
        assert!(text.contains("NeverTheScheduledRepairItself"));
        assert!(text.contains("cloudwatch:PutMetricData"));
        let up = document(Verb::Up, [node("vpc")]).to_string();
        let by_hand = document(Verb::Repair, [node("vpc")]).to_string();
        assert!(!by_hand.contains("NeverTheScheduledRepairItself"));
        assert!(!up.contains("NeverTheScheduledRepairItself"));
        assert!(!up.contains("sns:Publish"));
        assert_eq!(
            unscoped(Verb::ScheduledDrift, [node("vpc")]).get("ec2:DescribeVpcs"),
            Some(&"no resource")
        );
    }

    #[test]
    fn a_split_fills_each_document_up_to_the_limit_as_measuring_each_whole_would() {
        let statements: Vec<Value> = (0..40)
            .map(|i| json!({"Effect": "Allow", "Action": [format!("s3:Get{}", "x".repeat(i % 7))], "Resource": format!("arn:aws:s3:::b {i}")}))
            .collect();
        let doc = json!({"Version": "2012-10-17", "Statement": statements});
        let wrap = |s: &[Value]| json!({"Version": "2012-10-17", "Statement": s});
        for limit in [1, 120, 200, 333, 1000, 100_000] {
            let parts = split(&doc, limit);
            let kept: Vec<Value> = parts
                .iter()
                .flat_map(|p| p["Statement"].as_array().unwrap().clone())
                .collect();
            assert_eq!(kept, statements, "limit {limit}: every statement, in order");
            for (i, p) in parts.iter().enumerate() {
                let these = p["Statement"].as_array().unwrap();
                assert!(
                    size(p) <= limit || these.len() == 1,
                    "limit {limit}: part {i} is {} long",
                    size(p)
                );
                if let Some(next) = parts.get(i + 1) {
                    let mut more = these.clone();
                    more.push(next["Statement"][0].clone());
                    assert!(
                        size(&wrap(&more)) > limit,
                        "limit {limit}: part {i} had room"
                    );
                }
            }
        }
        // One that cannot be measured stays alone, and the rest go on.
        let unmeasurable = |d: &Value| {
            if d.to_string().contains("b 3\"") {
                usize::MAX
            } else {
                size(d)
            }
        };
        let parts = split_by(&doc, 100_000, unmeasurable);
        let lens: Vec<usize> = parts
            .iter()
            .map(|p| p["Statement"].as_array().unwrap().len())
            .collect();
        assert_eq!(lens, vec![3, 1, 36]);
    }
}
