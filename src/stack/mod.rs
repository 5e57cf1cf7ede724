//! The environment's step graph, built from the config: the one place that names resource
//! kinds. Each layer's wiring sits in its own file; a new kind is a module in `resources/`
//! and a few lines in its layer here. The graph's edges are derived from the `Ref`s each
//! kind's spec holds, so a dependency is declared once.
//!
//! Edge kinds follow PLATFORM.md, "When a dependent call may start".

mod alerting;
mod cdn;
mod compute;
mod database;
mod edge;
mod network;
mod platform;
mod recorded;
mod scheduled;
pub mod select;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::aws::tags;
use crate::config::EnvConfig;
use crate::executor::{Task, TaskGraph};
use crate::graph::{Builder, GraphError};
use crate::model::Ref;
use crate::policy::{Grants, Node as PolicyNode, Verb};
use crate::resources::template::Attr;
use crate::resources::{Adapter, Cx, Resource};

pub use database::{DB_CLUSTER, DB_MONITORING_ROLE};
pub use network::{subnet_id, IGW, KMS_KEY, VPC};
pub use platform::{HOSTED_ZONE, STATE_BUCKET, STATE_BUCKET_SUFFIX};
pub use recorded::{from_record, is_scheduled_repair};
pub use scheduled::{GROUP_SUFFIX as SCHEDULE_GROUP_SUFFIX, SCHEDULE_SUFFIX};

/// The prefix of the scheduled repair's own nodes (`repair-schedule`, `repair-task-role`).
pub const SCHEDULED_REPAIR: &str = "repair-";

pub type StepGraph = TaskGraph<Cx>;

/// Collects the nodes of one environment.
pub struct Stack<'a> {
    env: &'a EnvConfig,
    builder: Builder<Arc<dyn Task<Cx>>>,
    /// Each node's kind, what it publishes and the fields it compares, by node.
    kinds: BTreeMap<String, KindInfo>,
    /// Every `${node.attr}` a node's templates name: (the node, the named node, attr).
    placeholders: Vec<(String, String, Attr)>,
    /// A graph for removing (`down`, the retired nodes): every node an earlier `up` may
    /// have made, even one the config would not make now.
    removal: bool,
}

/// What the graph's checks need of a node's kind.
struct KindInfo {
    kind: &'static str,
    publishes: &'static [Attr],
    fields: &'static [&'static str],
    grants: &'static Grants,
    replaceable: bool,
    name_part: Option<String>,
}

impl<'a> Stack<'a> {
    /// An ignore entry must name a node and a field its kind compares (or one of our tags,
    /// or a member of a keyed field).
    fn check_ignored(&self, entry: &str) -> Result<(), String> {
        let (node, field) = entry.split_once('.').unwrap_or((entry, ""));
        let Some(info) = self.kinds.get(node) else {
            return Err(format!(
                "`{node}` is not a node of this environment (`tap-provision graph` lists them)"
            ));
        };
        let known = field.starts_with("tags.")
            || info.fields.iter().any(|f| {
                field
                    .strip_prefix(f)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
            });
        if known {
            Ok(())
        } else {
            Err(format!(
                "a {} has no field `{field}` (its fields: {}, and tags.<key>)",
                info.kind,
                info.fields.join(", ")
            ))
        }
    }

    /// The policy `verb` needs on the nodes added so far ([`crate::policy::document`]).
    fn policy(&self, verb: Verb) -> serde_json::Value {
        crate::policy::document(verb, self.grants())
    }

    fn grants(&self) -> impl Iterator<Item = PolicyNode<'_>> + '_ {
        self.kinds.iter().map(|(node, info)| PolicyNode {
            id: node.as_str(),
            grants: info.grants,
            replaceable: info.replaceable,
            name_part: info.name_part.as_deref(),
        })
    }

    fn new(env: &'a EnvConfig) -> Self {
        Stack {
            env,
            builder: Builder::default(),
            kinds: BTreeMap::new(),
            placeholders: Vec::new(),
            removal: false,
        }
    }

    /// The graph, once every template names an attribute its node publishes and every
    /// `[repair] ignore` entry a node and one of its fields.
    fn build(mut self) -> Result<StepGraph, Vec<GraphError>> {
        for entry in &self.env.repair.ignore {
            if let Err(message) = self.check_ignored(entry) {
                self.builder.reject(GraphError::Ignore {
                    entry: entry.clone(),
                    message,
                });
            }
        }
        for (reader, node, attr) in std::mem::take(&mut self.placeholders) {
            let Some(KindInfo {
                kind, publishes, ..
            }) = self.kinds.get(&node)
            else {
                continue; // not in the graph: reported as a missing dependency
            };
            let ok = publishes.contains(&attr)
                || (attr == Attr::ArnSuffix && publishes.contains(&Attr::Arn));
            if !ok {
                let names: Vec<&str> = publishes.iter().map(|a| a.name()).collect();
                self.builder.reject(GraphError::Spec {
                    node: reader,
                    message: format!(
                        "`${{{node}.{}}}`: `{node}` ({kind}) publishes no {} (it publishes {})",
                        attr.name(),
                        attr.name(),
                        names.join(", ")
                    ),
                });
            }
        }
        self.builder.build()
    }

    /// Adds node `id` with the kind's spec; returns a reference to its identifiers. Its
    /// edges are what the spec declares it reads; a wrong template is a graph error.
    pub fn add<R: Resource>(&mut self, id: &str, spec: R) -> Ref {
        let replaceable = spec.replaceable();
        let name_part = spec.name_part().map(String::from);
        match Adapter::new(id, tags::standard(self.env, id), spec) {
            Ok(task) => {
                self.kinds.insert(
                    id.to_string(),
                    KindInfo {
                        kind: R::KIND,
                        publishes: R::PUBLISHES,
                        fields: R::FIELDS,
                        grants: R::GRANTS,
                        replaceable,
                        name_part,
                    },
                );
                self.placeholders.extend(
                    task.placeholders()
                        .iter()
                        .map(|(node, attr)| (id.to_string(), node.clone(), *attr)),
                );
                let deps = task
                    .inputs()
                    .into_iter()
                    .map(|r| (r.node, r.needs))
                    .collect();
                self.builder
                    .add(id, R::KIND, deps, Arc::new(task) as Arc<dyn Task<Cx>>);
            }
            Err(errors) => {
                for message in errors {
                    self.builder.reject(GraphError::Spec {
                        node: id.to_string(),
                        message,
                    });
                }
            }
        }
        Ref::id(id)
    }
}

/// The graph `down` removes: the config's, with the scheduled repair's nodes even when the
/// config has no schedule (an earlier `up` may have made them).
pub fn build_for_down(env: &EnvConfig) -> Result<StepGraph, Vec<GraphError>> {
    build_as(&with_schedule(env), true)
}

/// The scheduled repair's nodes when the config has no schedule: what `up` deletes when an
/// earlier `up` made them. `None` with a schedule.
pub fn retired(env: &EnvConfig) -> Option<StepGraph> {
    if env.repair.schedule.is_some() {
        return None;
    }
    let all = build_as(&with_schedule(env), true).ok()?;
    Some(all.only(|n| is_scheduled_repair(&n.id)))
}

/// `env` with a schedule, for finding and deleting its nodes (by name: the expression and
/// image do not matter then).
fn with_schedule(env: &EnvConfig) -> EnvConfig {
    let mut env = env.clone();
    if env.repair.schedule.is_none() {
        env.repair.schedule = Some("rate(1 day)".into());
        env.repair
            .image
            .get_or_insert_with(|| "tap-provision:retired".into());
    }
    env
}

/// The environment's step graph as `how` builds it ([`build`], or [`build_for_down`]), for a
/// command: an error names the file for what the config got wrong (an ignore entry naming no
/// node) and calls the rest a bug.
pub fn checked(
    env: &EnvConfig,
    how: fn(&EnvConfig) -> Result<StepGraph, Vec<GraphError>>,
) -> anyhow::Result<StepGraph> {
    how(env).map_err(|errors| {
        let (config, ours): (Vec<_>, Vec<_>) = errors
            .iter()
            .partition(|e| matches!(e, GraphError::Ignore { .. }));
        let lines = |es: &[&GraphError]| -> String {
            es.iter().map(|e| format!("\n  - {e}")).collect::<String>()
        };
        if ours.is_empty() {
            anyhow::anyhow!(
                "{}: {} problem(s) in the environment file{}",
                env.file.display(),
                config.len(),
                lines(&config)
            )
        } else {
            anyhow::anyhow!(
                "the step graph of {} is not valid (a bug in tap-provision):{}{}",
                env.full_name(),
                lines(&ours),
                lines(&config)
            )
        }
    })
}

pub fn build(env: &EnvConfig) -> Result<StepGraph, Vec<GraphError>> {
    build_as(env, false)
}

fn build_as(env: &EnvConfig, removal: bool) -> Result<StepGraph, Vec<GraphError>> {
    let mut s = Stack::new(env);
    s.removal = removal;
    let net = network::build(&mut s, env);
    database::build(&mut s, env, &net);
    let platform = platform::build(&mut s, env);
    let edge = edge::build(&mut s, env, &net, &platform);
    compute::build(&mut s, env, &net, &edge);
    cdn::build(&mut s, env, &platform);
    alerting::build(&mut s, env, &net);
    scheduled::build(&mut s, env, &net);
    s.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Needs;
    use crate::policy::Verb;

    /// `config/prod.toml`, built into the test binary: a binary reused from another clone of
    /// the same sources (a shared build cache) reads no path of that clone.
    const PROD_TOML: &str = include_str!("../../config/prod.toml");

    pub(crate) fn env(nat: usize) -> EnvConfig {
        let text = PROD_TOML
            .replace("nat_gateways = 3", &format!("nat_gateways = {nat}"))
            .replace("protected = true", "protected = false");
        crate::config::parse(std::path::Path::new("prod.toml"), "prod", &text).unwrap()
    }

    /// `config/prod.toml` with a scheduled repair: every kind of node there is.
    fn with_scheduled_repair() -> EnvConfig {
        let text = PROD_TOML.to_string()
            + "\n[repair]\nschedule = \"rate(1 hour)\"\nimage = \"tap-provision:1.0.0\"\n";
        crate::config::parse(std::path::Path::new("prod.toml"), "prod", &text).unwrap()
    }

    fn deps(g: &StepGraph, id: &str) -> Vec<(String, Needs)> {
        let ix = g.index_of(id).unwrap();
        g.node(ix)
            .deps
            .iter()
            .map(|(d, n)| (g.node(*d).id.clone(), *n))
            .collect()
    }

    #[test]
    fn prod_graph_has_every_layer() {
        let g = build(&env(3)).unwrap();
        let kinds = |k: &str| g.nodes().iter().filter(|n| n.kind == k).count();
        assert_eq!(kinds("subnet"), 9);
        assert_eq!(kinds("nat_gateway"), 3);
        assert_eq!(kinds("elastic_ip"), 3);
        assert_eq!(kinds("route_table"), 5);
        assert_eq!(kinds("security_group"), 3);
        assert_eq!(kinds("aurora_instance"), 2);
        assert_eq!(kinds("hosted_zone"), 1);
        assert_eq!(kinds("s3_bucket"), 3, "state, static assets, CDN logs");
        assert_eq!(kinds("ecs_service"), 2);
        assert_eq!(kinds("distribution"), 1);
        assert_eq!(
            kinds("certificate"),
            2,
            "prod is not in us-east-1: one for CloudFront there"
        );
        // ... + alerting: topic, 2 CPU, 2 connections (writer, reader), 2 unhealthy, 5XX,
        // dashboard.
        assert_eq!(g.len(), 29 + 8 + 2 + 3 + 8 + 13 + 6 + 9);
        // PLATFORM.md: only the certificates are waited for (ISSUED), by the HTTPS listener
        // and the distribution (prod is not in us-east-1: CloudFront's is its own); every
        // other edge needs identifiers only (nothing waits for a NAT, the ALB or CloudFront).
        let ready: Vec<(String, String)> = g
            .edges()
            .filter(|(_, _, n)| *n == Needs::Ready)
            .map(|(node, dep, _)| (g.node(node).id.clone(), g.node(dep).id.clone()))
            .collect();
        assert_eq!(
            ready,
            [
                ("listener-https".to_string(), "certificate".to_string()),
                ("cdn".to_string(), "certificate-cdn".to_string()),
            ]
        );
        // Each private table routes to its own zone's NAT; a NAT needs the attached IGW.
        assert!(deps(&g, "route-table-private-b").contains(&("nat-b".into(), Needs::Id)));
        assert!(deps(&g, "nat-a").contains(&(IGW.into(), Needs::Id)));
        // The internet-facing ALB too (`InvalidSubnet` before the attach): the gateway's
        // create returns once AttachInternetGateway has, so its identifiers mean attached.
        assert!(deps(&g, "alb").contains(&(IGW.into(), Needs::Id)));
    }

    #[test]
    fn template_reads_are_edges() {
        // Nothing lists them by hand: the execution role's policy names the log groups, the
        // DB secrets and the key, the backend's container secrets name both DB secrets.
        let g = build(&env(3)).unwrap();
        for dep in [
            "logs-frontend",
            "logs-backend",
            "logs-xray",
            DB_CLUSTER,
            "db-connection",
            KMS_KEY,
        ] {
            assert!(
                deps(&g, "ecs-execution-role").contains(&(dep.to_string(), Needs::Id)),
                "ecs-execution-role -> {dep}"
            );
        }
        for dep in [DB_CLUSTER, "db-connection"] {
            assert!(deps(&g, "task-backend").contains(&(dep.to_string(), Needs::Id)));
        }
    }

    #[test]
    fn a_wrong_declaration_fails_the_build_naming_the_node() {
        use crate::resources::iam_role::IamRole;
        use crate::resources::template::Template;
        let env = env(3);
        let mut s = Stack::new(&env);
        let role = |policy: serde_json::Value| IamRole {
            suffix: "r".into(),
            service: "ecs-tasks.amazonaws.com".into(),
            description: "test".into(),
            policy: Template(policy),
            path: None,
            source_arn: None,
            managed: Vec::new(),
        };
        s.add(KMS_KEY, role(serde_json::json!({})));
        s.add(
            "typo",
            role(serde_json::json!({"Resource": "${kms-key.endpiont}"})),
        );
        s.add("unclosed", role(serde_json::json!(["${kms-key.arn"])));
        s.add("elsewhere", role(serde_json::json!("${nowhere.arn}")));
        // A role publishes no endpoint (an Aurora cluster does).
        s.add(
            "unpublished",
            role(serde_json::json!("${kms-key.endpoint}")),
        );
        s.add("fine", role(serde_json::json!("${kms-key.arn}")));
        let Err(errors) = s.build() else {
            panic!("a graph with wrong templates was built");
        };
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 4, "{shown:#?}");
        assert!(
            shown.iter().any(|e| e.contains("`unpublished`")
                && e.contains("`kms-key` (iam_role) publishes no endpoint")),
            "{shown:#?}"
        );
        assert!(
            shown
                .iter()
                .any(|e| e.contains("`typo`") && e.contains("unknown attribute `endpiont`")),
            "{shown:#?}"
        );
        assert!(
            shown
                .iter()
                .any(|e| e.contains("`unclosed`") && e.contains("unclosed")),
            "{shown:#?}"
        );
        assert!(
            errors.contains(&GraphError::Missing {
                node: "elsewhere".into(),
                missing: "nowhere".into()
            }),
            "{shown:#?}"
        );
    }

    #[test]
    fn instances_follow_each_other_by_identifiers_only() {
        let g = build(&env(3)).unwrap();
        assert!(
            deps(&g, "db-instance-1").contains(&(DB_CLUSTER.to_string(), Needs::Id)),
            "no wait for the cluster"
        );
        assert!(
            deps(&g, "db-instance-2").contains(&("db-instance-1".to_string(), Needs::Id)),
            "one call after another"
        );
        assert!(deps(&g, DB_CLUSTER).contains(&("sg-db".to_string(), Needs::Id)));
        assert!(deps(&g, "backup-plan").contains(&(DB_CLUSTER.to_string(), Needs::Id)));
    }

    #[test]
    fn services_start_on_identifiers() {
        let g = build(&env(3)).unwrap();
        // PLATFORM.md: CreateService after the rule that attaches its target group,
        // RegisterScalableTarget while the service deploys, the secret read at task start.
        for (node, dep) in [
            ("service-backend", "rule-api"),
            ("service-frontend", "rule-default"),
            ("service-backend", "task-backend"),
            ("scaling-backend", "service-backend"),
            ("task-backend", DB_CLUSTER),
            ("task-backend", "ecs-execution-role"),
            ("ecs-execution-role", DB_CLUSTER),
            ("task-backend", "db-connection"),
            ("ecs-execution-role", "db-connection"),
            ("db-connection", DB_CLUSTER),
        ] {
            assert!(
                deps(&g, node).contains(&(dep.to_string(), Needs::Id)),
                "{node} -> {dep}"
            );
        }
        assert!(!deps(&g, "task-frontend")
            .iter()
            .any(|(d, _)| d == DB_CLUSTER));
    }

    #[test]
    fn one_nat_serves_every_zone() {
        let g = build(&env(1)).unwrap();
        assert_eq!(
            g.nodes().iter().filter(|n| n.kind == "nat_gateway").count(),
            1
        );
        for z in ['a', 'b', 'c'] {
            assert!(deps(&g, &format!("route-table-private-{z}"))
                .contains(&("nat-a".into(), Needs::Id)));
        }
    }

    /// `*` matches any run of characters, as IAM's ARN patterns do.
    fn glob(pattern: &str, text: &str) -> bool {
        match pattern.split_once('*') {
            None => pattern == text,
            Some((head, rest)) => {
                text.starts_with(head)
                    && (head.len()..=text.len())
                        .any(|i| text.is_char_boundary(i) && glob(rest, &text[i..]))
            }
        }
    }

    /// Services whose actions here take `aws:ResourceTag`, where the policy's
    /// `NeverAnotherEnvironmentsResources` keeps a prefix from reaching another environment
    /// (an instance's name part is a number: `tap-prod-db-*` also matches `tap-prod-db`'s
    /// `tap-prod-db-db-1`). Every other service is named exactly.
    const TAG_CONDITIONED: &[&str] = &["rds"];

    #[test]
    fn no_grant_reaches_an_environment_whose_name_extends_this_one() {
        let g = build(&with_scheduled_repair()).unwrap();
        let fill = |arn: &str, full: &str, name: &str| {
            arn.replace("${partition}", "aws")
                .replace("${region}", "eu-west-1")
                .replace("${account}", "123456789012")
                .replace("${project}", "tap")
                .replace("${env_name}", name)
                .replace("${env}", full)
        };
        for verb in [Verb::Up, Verb::Down, Verb::ScheduledRepair] {
            let doc = crate::policy::document(verb, crate::policy::nodes_of(&g));
            let statements = doc["Statement"].as_array().unwrap();
            assert!(statements
                .iter()
                .any(|s| s["Sid"] == "NeverAnotherEnvironmentsResources"));
            let patterns: Vec<&str> = statements
                .iter()
                .filter(|s| s["Effect"] == "Allow")
                .filter_map(|s| s["Resource"].as_array())
                .flatten()
                .filter_map(|r| r.as_str())
                .collect();
            assert!(
                patterns.iter().all(|p| !p.contains("${suffix}")),
                "{verb:?}"
            );
            // A prefix of ours against their names (patterns without the environment, such
            // as `hostedzone/*`, name what has no name to scope by: not a prefix).
            let named: Vec<&str> = patterns
                .iter()
                .copied()
                .filter(|p| p.contains("${env"))
                .collect();
            for (full, name) in [("tap-prod-eu", "prod-eu"), ("tap-prod-db", "prod-db")] {
                for theirs in &named {
                    let theirs = fill(theirs, full, name).replace('*', "x");
                    let service = theirs.split(':').nth(2).unwrap();
                    for ours in &named {
                        if glob(&fill(ours, "tap-prod", "prod"), &theirs) {
                            assert!(
                                TAG_CONDITIONED.contains(&service),
                                "{verb:?}: {ours} reaches {full}'s {theirs}"
                            );
                        }
                    }
                }
            }
            // Named exactly: the buckets (the state bucket holds the lock and the record)
            // and the schedule group.
            let text = doc.to_string();
            assert!(text.contains("arn:${partition}:s3:::${env}-state-${account}\""));
            assert!(!text.contains("s3:::${env}-*"));
            if verb != Verb::ScheduledRepair {
                assert!(text.contains("schedule-group/${env}-repair\""), "{verb:?}");
            }
        }
    }

    /// The deny on another environment's resources leaves reads alone (a KMS key is found
    /// by reading every key's tags): every read a kind declares is a `Describe*`, `Get*`
    /// or `List*`, which the deny spares.
    #[test]
    fn every_read_is_spared_by_the_deny_on_other_environments() {
        let g = build(&with_scheduled_repair()).unwrap();
        let doc = crate::policy::document(Verb::Up, crate::policy::nodes_of(&g));
        let deny = doc["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == "NeverAnotherEnvironmentsResources")
            .unwrap();
        let spared: Vec<&str> = deny["NotAction"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        for node in crate::policy::nodes_of(&g) {
            for grant in node.grants.read {
                for action in grant.actions {
                    assert!(
                        spared.iter().any(|p| glob(p, action)),
                        "{}: {action} would be denied on another environment's resources",
                        node.id
                    );
                }
            }
        }
    }

    #[test]
    fn every_spec_survives_the_record() {
        let g = build(&env(3)).unwrap();
        for node in g.nodes() {
            let record = node.payload.record();
            let back = node
                .payload
                .with_record(&record)
                .unwrap_or_else(|e| panic!("{}: {e}", node.id));
            assert_eq!(back.record(), record, "{}", node.id);
        }
    }
}
