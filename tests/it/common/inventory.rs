//! Everything an account holds, as counts by kind and identity, read through the SDK (never
//! through the tool): the crash test compares it with a clean run's, so a second NAT gateway,
//! an untagged subnet, target group, certificate or secret, or a leftover distribution is a
//! difference. EC2 resources, KMS keys, load balancers, target groups, certificates and the
//! tool's secrets carry their node tag in their key.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::Tag;

use super::{endpoint, REGION};

pub type Inventory = BTreeMap<String, usize>;

async fn conf(acct: &str, region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint(acct))
        .region(aws_config::Region::new(region.to_string()))
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            acct, "test", None, None, "tests",
        ))
        .load()
        .await
}

fn node(tags: &[Tag], id: Option<&str>) -> String {
    tags.iter()
        .find(|t| t.key() == Some("tap:node"))
        .and_then(|t| t.value())
        .map(str::to_string)
        .unwrap_or_else(|| format!("UNTAGGED {}", id.unwrap_or("?")))
}

/// `key` without what differs between accounts: the account id (in bucket names) and the
/// random id Application Auto Scaling gives its target tracking alarms.
fn normal(key: &str, acct: &str) -> String {
    let key = key.replace(acct, "<account>");
    for marker in ["-AlarmHigh-", "-AlarmLow-"] {
        if let Some(at) = key.find(marker) {
            return format!("{}*", &key[..at + marker.len()]);
        }
    }
    key
}

/// What the account holds in `region` (and in the global services and us-east-1, where
/// CloudFront's certificate lives).
pub async fn inventory(acct: &str, region: &str) -> Inventory {
    let mut inv = Inventory::new();
    let mut add = |key: String| *inv.entry(normal(&key, acct)).or_insert(0) += 1;
    let c = conf(acct, region).await;
    let global = conf(acct, REGION).await;

    // EC2, keyed by the node tag; the default VPC and what AWS makes with a VPC are skipped.
    let ec2 = aws_sdk_ec2::Client::new(&c);
    let vpcs = ec2.describe_vpcs().send().await.expect("DescribeVpcs");
    let defaults: Vec<&str> = vpcs
        .vpcs()
        .iter()
        .filter(|v| v.is_default() == Some(true))
        .filter_map(|v| v.vpc_id())
        .collect();
    let ours = |vpc: Option<&str>| !defaults.contains(&vpc.unwrap_or(""));
    for v in vpcs.vpcs().iter().filter(|v| ours(v.vpc_id())) {
        add(format!("ec2 vpc {}", node(v.tags(), v.vpc_id())));
    }
    let subnets = ec2
        .describe_subnets()
        .send()
        .await
        .expect("DescribeSubnets");
    for s in subnets.subnets().iter().filter(|s| ours(s.vpc_id())) {
        add(format!("ec2 subnet {}", node(s.tags(), s.subnet_id())));
    }
    let tables = ec2.describe_route_tables().send().await.expect("tables");
    for t in tables.route_tables().iter().filter(|t| ours(t.vpc_id())) {
        if !t.associations().iter().any(|a| a.main() == Some(true)) {
            add(format!(
                "ec2 route-table {}",
                node(t.tags(), t.route_table_id())
            ));
        }
    }
    let igws = ec2.describe_internet_gateways().send().await.expect("igws");
    for g in igws.internet_gateways() {
        if g.attachments().iter().all(|a| ours(a.vpc_id())) {
            add(format!(
                "ec2 igw {}",
                node(g.tags(), g.internet_gateway_id())
            ));
        }
    }
    let nats = ec2.describe_nat_gateways().send().await.expect("nats");
    for n in nats.nat_gateways() {
        let state = n.state().map(|s| s.as_str()).unwrap_or("");
        if state != "deleted" {
            add(format!("ec2 nat {}", node(n.tags(), n.nat_gateway_id())));
        }
    }
    let eips = ec2.describe_addresses().send().await.expect("eips");
    for a in eips.addresses() {
        add(format!("ec2 eip {}", node(a.tags(), a.allocation_id())));
    }
    let sgs = ec2.describe_security_groups().send().await.expect("sgs");
    for g in sgs.security_groups().iter().filter(|g| ours(g.vpc_id())) {
        if g.group_name() != Some("default") {
            add(format!("ec2 sg {}", node(g.tags(), g.group_id())));
        }
    }
    // Routes (the local one left out), by table and target, each named by its node tag.
    let mut gateway_node = std::collections::HashMap::new();
    for g in igws.internet_gateways() {
        let id = g.internet_gateway_id().unwrap_or_default();
        gateway_node.insert(id.to_string(), node(g.tags(), Some(id)));
    }
    for n in nats.nat_gateways() {
        let id = n.nat_gateway_id().unwrap_or_default();
        gateway_node.insert(id.to_string(), node(n.tags(), Some(id)));
    }
    for t in tables.route_tables().iter().filter(|t| ours(t.vpc_id())) {
        for r in t.routes() {
            if r.gateway_id() == Some("local") {
                continue;
            }
            let target = r
                .gateway_id()
                .or(r.nat_gateway_id())
                .map(|id| gateway_node.get(id).cloned().unwrap_or(format!("? {id}")))
                .unwrap_or_else(|| "other".into());
            let dest = r
                .destination_cidr_block()
                .or(r.destination_ipv6_cidr_block())
                .or(r.destination_prefix_list_id())
                .unwrap_or("?");
            add(format!(
                "ec2 route {} {dest} -> {target}",
                node(t.tags(), t.route_table_id())
            ));
        }
    }
    // Security group rules, by group, direction, ports and peer (a group by its node tag).
    let group_node: std::collections::HashMap<String, String> = sgs
        .security_groups()
        .iter()
        .map(|g| {
            let id = g.group_id().unwrap_or_default().to_string();
            let name = if g.group_name() == Some("default") {
                "default".to_string()
            } else {
                node(g.tags(), g.group_id())
            };
            (id, name)
        })
        .collect();
    let rules = ec2
        .describe_security_group_rules()
        .send()
        .await
        .expect("DescribeSecurityGroupRules");
    for r in rules.security_group_rules() {
        let group = r.group_id().unwrap_or_default();
        let Some(name) = group_node.get(group) else {
            continue;
        };
        if name == "default"
            || !sgs
                .security_groups()
                .iter()
                .any(|g| g.group_id() == Some(group) && ours(g.vpc_id()))
        {
            continue;
        }
        let peer = r
            .cidr_ipv4()
            .or(r.cidr_ipv6())
            .map(str::to_string)
            .or_else(|| {
                r.referenced_group_info()
                    .and_then(|g| g.group_id())
                    .map(|id| group_node.get(id).cloned().unwrap_or(format!("? {id}")))
            })
            .unwrap_or_else(|| "?".into());
        let ports = match (r.ip_protocol(), r.from_port(), r.to_port()) {
            (Some("-1"), _, _) => "all".to_string(),
            (p, from, to) => format!(
                "{} {}-{}",
                p.unwrap_or("?"),
                from.unwrap_or(-1),
                to.unwrap_or(-1)
            ),
        };
        let way = if r.is_egress() == Some(true) {
            "out"
        } else {
            "in"
        };
        add(format!("ec2 sg-rule {name} {way} {ports} {peer}"));
    }
    let flows = ec2.describe_flow_logs().send().await.expect("flow logs");
    for f in flows.flow_logs() {
        add(format!("ec2 flow-log {}", node(f.tags(), f.flow_log_id())));
    }

    let kms = aws_sdk_kms::Client::new(&c);
    for k in kms.list_keys().send().await.expect("keys").keys() {
        let id = k.key_id().unwrap_or_default();
        let meta = kms.describe_key().key_id(id).send().await.expect("key");
        let state = meta.key_metadata().and_then(|m| m.key_state());
        let pending = state
            .map(|s| s.as_str() == "PendingDeletion")
            .unwrap_or(false);
        let tags = kms
            .list_resource_tags()
            .key_id(id)
            .send()
            .await
            .expect("tags");
        let node = tags
            .tags()
            .iter()
            .find(|t| t.tag_key() == "tap:node")
            .map(|t| t.tag_value().to_string())
            .unwrap_or_else(|| format!("UNTAGGED {id}"));
        add(format!(
            "kms key {node}{}",
            if pending { " (pending deletion)" } else { "" }
        ));
    }
    for a in kms.list_aliases().send().await.expect("aliases").aliases() {
        let name = a.alias_name().unwrap_or_default();
        if !name.starts_with("alias/aws/") {
            add(format!("kms alias {name}"));
        }
    }

    let logs = aws_sdk_cloudwatchlogs::Client::new(&c);
    for g in logs
        .describe_log_groups()
        .send()
        .await
        .expect("logs")
        .log_groups()
    {
        add(format!(
            "logs group {}",
            g.log_group_name().unwrap_or_default()
        ));
    }
    let iam = aws_sdk_iam::Client::new(&global);
    for r in iam.list_roles().send().await.expect("roles").roles() {
        let role = r.role_name();
        add(format!("iam role {role}"));
        let inline = iam
            .list_role_policies()
            .role_name(role)
            .send()
            .await
            .expect("ListRolePolicies");
        for p in inline.policy_names() {
            add(format!("iam role-policy {role} {p}"));
        }
        let attached = iam
            .list_attached_role_policies()
            .role_name(role)
            .send()
            .await
            .expect("ListAttachedRolePolicies");
        for p in attached.attached_policies() {
            add(format!(
                "iam attached {role} {}",
                p.policy_name().unwrap_or_default()
            ));
        }
    }
    let local = iam
        .list_policies()
        .scope(aws_sdk_iam::types::PolicyScopeType::Local)
        .send()
        .await
        .expect("ListPolicies");
    for p in local.policies() {
        add(format!(
            "iam policy {}",
            p.policy_name().unwrap_or_default()
        ));
    }

    let rds = aws_sdk_rds::Client::new(&c);
    let clusters = rds.describe_db_clusters().send().await.expect("clusters");
    for x in clusters.db_clusters() {
        add(format!(
            "rds cluster {}",
            x.db_cluster_identifier().unwrap_or_default()
        ));
    }
    let instances = rds.describe_db_instances().send().await.expect("instances");
    for x in instances.db_instances() {
        add(format!(
            "rds instance {}",
            x.db_instance_identifier().unwrap_or_default()
        ));
    }
    let groups = rds
        .describe_db_subnet_groups()
        .send()
        .await
        .expect("groups");
    for x in groups.db_subnet_groups() {
        let name = x.db_subnet_group_name().unwrap_or_default();
        if name != "default" {
            add(format!("rds subnet-group {name}"));
        }
    }
    let snaps = rds
        .describe_db_cluster_snapshots()
        .send()
        .await
        .expect("snaps");
    for x in snaps.db_cluster_snapshots() {
        if x.snapshot_type() == Some("manual") {
            // Named with the deletion's time: one per down that deleted the cluster.
            let id = x.db_cluster_snapshot_identifier().unwrap_or_default();
            let stem = id.trim_end_matches(|c: char| c.is_ascii_digit());
            add(format!("rds snapshot {stem}*"));
        }
    }

    let backup = aws_sdk_backup::Client::new(&c);
    let vaults = backup.list_backup_vaults().send().await.expect("vaults");
    for v in vaults.backup_vault_list() {
        let name = v.backup_vault_name().unwrap_or_default();
        if name != "Default" {
            add(format!("backup vault {name}"));
        }
    }
    let plans = backup.list_backup_plans().send().await.expect("plans");
    for p in plans.backup_plans_list() {
        add(format!(
            "backup plan {}",
            p.backup_plan_name().unwrap_or_default()
        ));
        let id = p.backup_plan_id().unwrap_or_default();
        let sel = backup
            .list_backup_selections()
            .backup_plan_id(id)
            .send()
            .await
            .expect("selections");
        for s in sel.backup_selections_list() {
            add(format!(
                "backup selection {}",
                s.selection_name().unwrap_or_default()
            ));
        }
    }

    let s3 = aws_sdk_s3::Client::new(&global);
    for b in s3.list_buckets().send().await.expect("buckets").buckets() {
        add(format!("s3 bucket {}", b.name().unwrap_or_default()));
    }
    let r53 = aws_sdk_route53::Client::new(&global);
    for z in r53
        .list_hosted_zones()
        .send()
        .await
        .expect("zones")
        .hosted_zones()
    {
        add(format!("route53 zone {}", z.name()));
        let records = r53
            .list_resource_record_sets()
            .hosted_zone_id(z.id())
            .send()
            .await
            .expect("records");
        for r in records.resource_record_sets() {
            // A validation record's name is a hash ACM derives from the account and domain.
            let name = match r.name().split_once('.') {
                Some((label, rest)) if label.starts_with('_') => format!("_*.{rest}"),
                _ => r.name().to_string(),
            };
            add(format!("route53 record {name} {}", r.r#type().as_str()));
        }
    }

    let mut regions = vec![(region, &c)];
    if region != REGION {
        regions.push((REGION, &global));
    }
    for (reg, conf) in regions {
        let acm = aws_sdk_acm::Client::new(conf);
        let certs = acm.list_certificates().send().await.expect("certificates");
        for x in certs.certificate_summary_list() {
            let tags = acm
                .list_tags_for_certificate()
                .certificate_arn(x.certificate_arn().unwrap_or_default())
                .send()
                .await
                .expect("certificate tags");
            let node = tags
                .tags()
                .iter()
                .find(|t| t.key() == "tap:node")
                .and_then(|t| t.value())
                .unwrap_or("UNTAGGED");
            add(format!(
                "acm {reg} certificate {} {node}",
                x.domain_name().unwrap_or_default()
            ));
        }
    }

    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&c);
    let lbs = elb.describe_load_balancers().send().await.expect("lbs");
    let tgs = elb.describe_target_groups().send().await.expect("tgs");
    // The node tag of every load balancer and target group, in one DescribeTags.
    let arns: Vec<String> = lbs
        .load_balancers()
        .iter()
        .filter_map(|l| l.load_balancer_arn())
        .chain(
            tgs.target_groups()
                .iter()
                .filter_map(|t| t.target_group_arn()),
        )
        .map(str::to_string)
        .collect();
    let mut elb_node = std::collections::HashMap::new();
    if !arns.is_empty() {
        let described = elb
            .describe_tags()
            .set_resource_arns(Some(arns))
            .send()
            .await
            .expect("elb tags");
        for d in described.tag_descriptions() {
            let node = d
                .tags()
                .iter()
                .find(|t| t.key() == Some("tap:node"))
                .and_then(|t| t.value())
                .unwrap_or("UNTAGGED");
            elb_node.insert(
                d.resource_arn().unwrap_or_default().to_string(),
                node.to_string(),
            );
        }
    }
    let node_of_arn = |arn: Option<&str>| {
        elb_node
            .get(arn.unwrap_or_default())
            .cloned()
            .unwrap_or_else(|| "UNTAGGED".into())
    };
    for lb in lbs.load_balancers() {
        add(format!(
            "elb lb {} {}",
            lb.load_balancer_name().unwrap_or_default(),
            node_of_arn(lb.load_balancer_arn())
        ));
        let arn = lb.load_balancer_arn().unwrap_or_default();
        let listeners = elb
            .describe_listeners()
            .load_balancer_arn(arn)
            .send()
            .await
            .expect("listeners");
        for l in listeners.listeners() {
            add(format!("elb listener {}", l.port().unwrap_or_default()));
            let rules = elb
                .describe_rules()
                .listener_arn(l.listener_arn().unwrap_or_default())
                .send()
                .await
                .expect("rules");
            for r in rules.rules() {
                add(format!(
                    "elb rule {} {}",
                    l.port().unwrap_or_default(),
                    r.priority().unwrap_or_default()
                ));
            }
        }
    }
    for t in tgs.target_groups() {
        add(format!(
            "elb tg {} {}",
            t.target_group_name().unwrap_or_default(),
            node_of_arn(t.target_group_arn())
        ));
    }

    let ecs = aws_sdk_ecs::Client::new(&c);
    let clusters = ecs.list_clusters().send().await.expect("ecs clusters");
    for arn in clusters.cluster_arns() {
        let d = ecs
            .describe_clusters()
            .clusters(arn)
            .send()
            .await
            .expect("cluster");
        let Some(cl) = d.clusters().first() else {
            continue;
        };
        if cl.status() != Some("ACTIVE") {
            continue;
        }
        add(format!(
            "ecs cluster {}",
            cl.cluster_name().unwrap_or_default()
        ));
        let services = ecs
            .list_services()
            .cluster(arn)
            .send()
            .await
            .expect("services");
        for s in services.service_arns() {
            let d = ecs
                .describe_services()
                .cluster(arn)
                .services(s)
                .send()
                .await
                .expect("service");
            for sv in d.services().iter().filter(|s| s.status() == Some("ACTIVE")) {
                add(format!(
                    "ecs service {}",
                    sv.service_name().unwrap_or_default()
                ));
            }
        }
    }
    // Revisions by family, active and inactive: a revision registered twice shows here.
    for (status, word) in [
        (aws_sdk_ecs::types::TaskDefinitionStatus::Active, "active"),
        (
            aws_sdk_ecs::types::TaskDefinitionStatus::Inactive,
            "inactive",
        ),
    ] {
        let defs = ecs
            .list_task_definitions()
            .status(status)
            .send()
            .await
            .expect("task definitions");
        for arn in defs.task_definition_arns() {
            let family = arn.rsplit('/').next().unwrap_or(arn);
            let family = family.split(':').next().unwrap_or(family);
            add(format!("ecs {word}-revision {family}"));
        }
    }

    let aas = aws_sdk_applicationautoscaling::Client::new(&c);
    let ns = aws_sdk_applicationautoscaling::types::ServiceNamespace::Ecs;
    let targets = aas
        .describe_scalable_targets()
        .service_namespace(ns.clone())
        .send()
        .await
        .expect("scalable targets");
    for t in targets.scalable_targets() {
        add(format!("aas target {}", t.resource_id()));
    }
    let policies = aas
        .describe_scaling_policies()
        .service_namespace(ns)
        .send()
        .await
        .expect("policies");
    for p in policies.scaling_policies() {
        add(format!("aas policy {}", p.policy_name()));
    }

    let cf = aws_sdk_cloudfront::Client::new(&global);
    let dists = cf.list_distributions().send().await.expect("distributions");
    for d in dists
        .distribution_list()
        .map(|l| l.items())
        .unwrap_or_default()
    {
        let alias = d.aliases().and_then(|a| a.items().first().cloned());
        add(format!(
            "cloudfront distribution {}",
            alias.unwrap_or_default()
        ));
    }
    let oacs = cf.list_origin_access_controls().send().await.expect("oacs");
    for o in oacs
        .origin_access_control_list()
        .map(|l| l.items())
        .unwrap_or_default()
    {
        add(format!("cloudfront oac {}", o.name()));
    }

    let oais = cf
        .list_cloud_front_origin_access_identities()
        .send()
        .await
        .expect("origin access identities");
    for o in oais
        .cloud_front_origin_access_identity_list()
        .map(|l| l.items())
        .unwrap_or_default()
    {
        add(format!("cloudfront oai {}", o.comment()));
    }

    let sm = aws_sdk_secretsmanager::Client::new(&c);
    for s in sm
        .list_secrets()
        .send()
        .await
        .expect("secrets")
        .secret_list()
    {
        let name = s.name().unwrap_or_default();
        if name.starts_with("rds!cluster-") {
            // RDS's own, named after the cluster's resource id and tagged by RDS.
            add("secret rds!cluster-*".to_string());
            continue;
        }
        let node = s
            .tags()
            .iter()
            .find(|t| t.key() == Some("tap:node"))
            .and_then(|t| t.value())
            .unwrap_or("UNTAGGED");
        add(format!("secret {name} {node}"));
    }
    let sns = aws_sdk_sns::Client::new(&c);
    for t in sns.list_topics().send().await.expect("topics").topics() {
        let arn = t.topic_arn().unwrap_or_default();
        add(format!(
            "sns topic {}",
            arn.rsplit(':').next().unwrap_or(arn)
        ));
    }
    let subs = sns
        .list_subscriptions()
        .send()
        .await
        .expect("subscriptions");
    for s in subs.subscriptions() {
        add(format!(
            "sns subscription {}",
            s.endpoint().unwrap_or_default()
        ));
    }
    let cw = aws_sdk_cloudwatch::Client::new(&c);
    for a in cw
        .describe_alarms()
        .send()
        .await
        .expect("alarms")
        .metric_alarms()
    {
        add(format!(
            "cloudwatch alarm {}",
            a.alarm_name().unwrap_or_default()
        ));
    }
    for d in cw
        .list_dashboards()
        .send()
        .await
        .expect("dashboards")
        .dashboard_entries()
    {
        add(format!(
            "cloudwatch dashboard {}",
            d.dashboard_name().unwrap_or_default()
        ));
    }
    inv
}

/// The lines where `got` differs from `want`, for an assertion message.
pub fn differences(want: &Inventory, got: &Inventory) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = want.keys().chain(got.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let (w, g) = (
                want.get(k).copied().unwrap_or(0),
                got.get(k).copied().unwrap_or(0),
            );
            (w != g).then(|| format!("{k}: want {w}, found {g}"))
        })
        .collect()
}

/// A fixed inventory (tests/it/expected/*.txt): a count and a key a line, `#` lines naming
/// the PLATFORM.md row each group comes from.
pub fn expected(text: &str) -> Inventory {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (n, key) = l
                .split_once(' ')
                .unwrap_or_else(|| panic!("`{l}`: count key"));
            let n = n.parse().unwrap_or_else(|_| panic!("`{l}`: a count first"));
            (key.to_string(), n)
        })
        .collect()
}

/// `inv` in the fixed table's form, for a failure message (or to write a new table).
pub fn listing(inv: &Inventory) -> String {
    inv.iter().map(|(k, n)| format!("{n} {k}\n")).collect()
}

/// What `up --env prod` makes: PLATFORM.md's inventory for the prod defaults.
pub fn prod_up() -> Inventory {
    expected(include_str!("../expected/prod-up.txt"))
}

/// What `down --env prod --disable-protection` keeps of it.
pub fn prod_down() -> Inventory {
    expected(include_str!("../expected/prod-down.txt"))
}
