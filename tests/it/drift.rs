//! `plan`, `drift` and `repair` on the emulator. For each kind: a property changed out of
//! band, tags removed, the resource deleted out of band; each is reported by `drift` without
//! a write, put back by `repair`, and `drift` is clean afterwards. Write counts come from the
//! emulator (the launcher counts requests), never from the tool's own report.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{Filter, IpPermission, Ipv6Range};
use serde_json::Value;

use crate::common::{
    account, config_dir, local, reset_calls, run, sdk, up_ok, writes, Run, REGION,
};

const ENV: &str = "tap-local";

fn env_filter() -> Filter {
    Filter::builder()
        .name("tag:tap:environment")
        .values(ENV)
        .build()
}

fn node_of(tags: &[aws_sdk_ec2::types::Tag]) -> Option<&str> {
    tags.iter()
        .find(|t| t.key() == Some("tap:node"))
        .and_then(|t| t.value())
}

/// The nodes a drift run reported as drifted.
fn drifted(r: &Run) -> BTreeSet<String> {
    r.events_of("drift")
        .into_iter()
        .filter(|e| !e["drift"].is_null())
        .map(|e| e["node"].as_str().unwrap().to_string())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Looks up the ids of the environment's resources through the SDK, as an operator would.
struct Live {
    ec2: aws_sdk_ec2::Client,
    kms: aws_sdk_kms::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    iam: aws_sdk_iam::Client,
    rds: aws_sdk_rds::Client,
    backup: aws_sdk_backup::Client,
    s3: aws_sdk_s3::Client,
    r53: aws_sdk_route53::Client,
    account: String,
}

impl Live {
    async fn new(acct: &str) -> Live {
        let conf = sdk(acct).await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&conf)
                .force_path_style(true)
                .build(),
        );
        Live {
            ec2: aws_sdk_ec2::Client::new(&conf),
            kms: aws_sdk_kms::Client::new(&conf),
            logs: aws_sdk_cloudwatchlogs::Client::new(&conf),
            iam: aws_sdk_iam::Client::new(&conf),
            rds: aws_sdk_rds::Client::new(&conf),
            backup: aws_sdk_backup::Client::new(&conf),
            s3,
            r53: aws_sdk_route53::Client::new(&conf),
            account: acct.to_string(),
        }
    }

    fn bucket(&self) -> String {
        format!("{ENV}-state-{}", self.account)
    }

    /// Every EC2 resource id of the environment by node.
    async fn ec2_ids(&self) -> Vec<(String, String)> {
        let ec2 = &self.ec2;
        let mut out = Vec::new();
        let vpcs = ec2
            .describe_vpcs()
            .filters(env_filter())
            .send()
            .await
            .unwrap();
        for v in vpcs.vpcs() {
            out.push((
                node_of(v.tags()).unwrap().into(),
                v.vpc_id().unwrap().into(),
            ));
        }
        let subnets = ec2
            .describe_subnets()
            .filters(env_filter())
            .send()
            .await
            .unwrap();
        for v in subnets.subnets() {
            out.push((
                node_of(v.tags()).unwrap().into(),
                v.subnet_id().unwrap().into(),
            ));
        }
        let igws = ec2
            .describe_internet_gateways()
            .filters(env_filter())
            .send()
            .await
            .unwrap();
        for v in igws.internet_gateways() {
            out.push((
                node_of(v.tags()).unwrap().into(),
                v.internet_gateway_id().unwrap().into(),
            ));
        }
        let eips = ec2
            .describe_addresses()
            .filters(env_filter())
            .send()
            .await
            .unwrap();
        for v in eips.addresses() {
            out.push((
                node_of(v.tags()).unwrap().into(),
                v.allocation_id().unwrap().into(),
            ));
        }
        let nats = ec2.describe_nat_gateways().send().await.unwrap();
        for v in nats.nat_gateways() {
            if matches!(
                v.state().map(|s| s.as_str()),
                Some("available") | Some("pending")
            ) {
                if let Some(n) = node_of(v.tags()) {
                    out.push((n.into(), v.nat_gateway_id().unwrap().into()));
                }
            }
        }
        let tables = ec2
            .describe_route_tables()
            .filters(env_filter())
            .send()
            .await
            .unwrap();
        for v in tables.route_tables() {
            out.push((
                node_of(v.tags()).unwrap().into(),
                v.route_table_id().unwrap().into(),
            ));
        }
        let sgs = ec2
            .describe_security_groups()
            .filters(env_filter())
            .send()
            .await
            .unwrap();
        for v in sgs.security_groups() {
            out.push((
                node_of(v.tags()).unwrap().into(),
                v.group_id().unwrap().into(),
            ));
        }
        let flows = ec2
            .describe_flow_logs()
            .filter(env_filter())
            .send()
            .await
            .unwrap();
        for v in flows.flow_logs() {
            out.push((
                node_of(v.tags()).unwrap().into(),
                v.flow_log_id().unwrap().into(),
            ));
        }
        out
    }

    async fn id(&self, node: &str) -> String {
        self.ec2_ids()
            .await
            .into_iter()
            .find(|(n, _)| n == node)
            .unwrap_or_else(|| panic!("no live {node}"))
            .1
    }

    async fn key_id(&self) -> String {
        self.kms
            .describe_key()
            .key_id(format!("alias/{ENV}"))
            .send()
            .await
            .unwrap()
            .key_metadata()
            .unwrap()
            .key_id()
            .to_string()
    }

    async fn plan_id(&self) -> String {
        self.backup
            .list_backup_plans()
            .send()
            .await
            .unwrap()
            .backup_plans_list()[0]
            .backup_plan_id()
            .unwrap()
            .to_string()
    }

    async fn zone_id(&self) -> String {
        let zones = self.r53.list_hosted_zones().send().await.unwrap();
        zones.hosted_zones()[0]
            .id()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string()
    }

    async fn rds_arns(&self) -> Vec<String> {
        let mut arns = Vec::new();
        let groups = self.rds.describe_db_subnet_groups().send().await.unwrap();
        arns.extend(
            groups
                .db_subnet_groups()
                .iter()
                .filter_map(|g| g.db_subnet_group_arn().map(String::from)),
        );
        let clusters = self.rds.describe_db_clusters().send().await.unwrap();
        arns.extend(
            clusters
                .db_clusters()
                .iter()
                .filter_map(|c| c.db_cluster_arn().map(String::from)),
        );
        let instances = self.rds.describe_db_instances().send().await.unwrap();
        arns.extend(
            instances
                .db_instances()
                .iter()
                .filter_map(|i| i.db_instance_arn().map(String::from)),
        );
        arns
    }
}

/// `drift` reports `expected` as drifted, exits 2, and writes nothing; `repair` puts it
/// back (exit 0, nothing remaining) with `writes`; `drift` is clean afterwards.
async fn drift_then_repair(acct: &str, expected: BTreeSet<String>) -> (Run, Run) {
    reset_calls(acct).await;
    let d = local("drift", &[], acct, None).await;
    assert_eq!(d.code, 2, "drift:\n{}\n{}", d.stdout, d.stderr);
    assert_eq!(drifted(&d), expected, "{}", d.stdout);
    assert!(
        writes(acct).await.is_empty(),
        "drift wrote: {:?}",
        writes(acct).await
    );
    let r = local("repair", &[], acct, None).await;
    assert_eq!(r.code, 0, "repair:\n{}\n{}", r.stdout, r.stderr);
    let done = r.event("repair_finished");
    assert_eq!(done["remaining"], Value::Array(vec![]), "{done}");
    assert_eq!(done["drifted"], expected.len(), "{done}");
    let after = local("drift", &[], acct, None).await;
    assert_eq!(after.code, 0, "drift after repair:\n{}", after.stdout);
    assert!(drifted(&after).is_empty());
    (d, r)
}

#[tokio::test]
async fn an_empty_account_plans_every_node_as_a_create_without_a_write() {
    let acct = account();
    let r = local("plan", &[], &acct, None).await;
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    let plans = r.events_of("plan");
    assert_eq!(plans.len(), 35);
    assert!(
        plans.iter().all(|p| p["action"] == "create"),
        "{}",
        r.stdout
    );
    assert_eq!(r.event("plan_finished")["counts"]["create"], 35);
    assert!(writes(&acct).await.is_empty(), "{:?}", writes(&acct).await);
}

#[tokio::test]
async fn a_config_edit_is_pending_not_drift_and_repair_leaves_it_to_up() {
    let acct = account();
    up_ok(&acct).await;
    let dir = config_dir(|t| {
        t.replace(
            "flow_logs_retention_days = 7",
            "flow_logs_retention_days = 14",
        )
    });
    reset_calls(&acct).await;
    let plan = local("plan", &[], &acct, Some(dir.path())).await;
    assert_eq!(plan.code, 2, "{}\n{}", plan.stdout, plan.stderr);
    let changed: Vec<Value> = plan
        .events_of("plan")
        .into_iter()
        .filter(|p| p["action"] != "unchanged")
        .collect();
    assert_eq!(changed.len(), 1, "{}", plan.stdout);
    assert_eq!(changed[0]["node"], "flow-logs-group");
    assert_eq!(changed[0]["changes"][0]["field"], "retention_in_days");
    assert_eq!(changed[0]["changes"][0]["have"], "7");
    assert_eq!(changed[0]["changes"][0]["want"], "14");

    let drift = local("drift", &[], &acct, Some(dir.path())).await;
    assert_eq!(drift.code, 0, "pending is not drift:\n{}", drift.stdout);
    let finished = drift.event("drift_finished");
    assert_eq!(finished["drifted"], 0);
    assert_eq!(finished["pending"], 1);
    let repair = local("repair", &[], &acct, Some(dir.path())).await;
    assert_eq!(repair.code, 0, "{}", repair.stderr);
    assert!(
        writes(&acct).await.is_empty(),
        "plan, drift and repair wrote: {:?}",
        writes(&acct).await
    );

    let up = local("up", &["--yes"], &acct, Some(dir.path())).await;
    assert_eq!(up.code, 0, "{}", up.stderr);
    let w = writes(&acct).await;
    assert_eq!(w.get("logs:PutRetentionPolicy"), Some(&1), "{w:?}");
    assert_eq!(w.get("s3:PutObject"), Some(&1), "the applied record: {w:?}");
    assert_eq!(w.len(), 2, "{w:?}");
    let plan = local("plan", &[], &acct, Some(dir.path())).await;
    assert_eq!(plan.code, 0, "{}", plan.stdout);
}

#[tokio::test]
async fn properties_changed_out_of_band_are_drift_and_repair_puts_each_back() {
    let acct = account();
    up_ok(&acct).await;
    let live = Live::new(&acct).await;
    let ec2 = &live.ec2;
    let (vpc, igw, sg_db, isolated_table, private_a) = (
        live.id("vpc").await,
        live.id("internet-gateway").await,
        live.id("sg-db").await,
        live.id("route-table-isolated").await,
        live.id("subnet-private-a").await,
    );
    // VPC: DNS hostnames off. Subnet: public IPs on a private subnet.
    ec2.modify_vpc_attribute()
        .vpc_id(&vpc)
        .enable_dns_hostnames(
            aws_sdk_ec2::types::AttributeBooleanValue::builder()
                .value(false)
                .build(),
        )
        .send()
        .await
        .unwrap();
    ec2.modify_subnet_attribute()
        .subnet_id(&private_a)
        .map_public_ip_on_launch(
            aws_sdk_ec2::types::AttributeBooleanValue::builder()
                .value(true)
                .build(),
        )
        .send()
        .await
        .unwrap();
    // Internet gateway detached; a route added to the isolated table; IPv6 egress on the
    // group that has none.
    ec2.detach_internet_gateway()
        .internet_gateway_id(&igw)
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap();
    ec2.create_route()
        .route_table_id(&isolated_table)
        .destination_cidr_block("10.99.0.0/16")
        .gateway_id(&igw)
        .send()
        .await
        .unwrap();
    ec2.authorize_security_group_egress()
        .group_id(&sg_db)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(443)
                .to_port(443)
                .ipv6_ranges(Ipv6Range::builder().cidr_ipv6("::/0").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    // KMS rotation off; flow-log retention shortened; the flow-log role's policy widened.
    live.kms
        .disable_key_rotation()
        .key_id(live.key_id().await)
        .send()
        .await
        .unwrap();
    live.logs
        .put_retention_policy()
        .log_group_name(format!("/tap/{ENV}/vpc-flow-logs"))
        .retention_in_days(1)
        .send()
        .await
        .unwrap();
    live.iam
        .put_role_policy()
        .role_name(format!("{ENV}-vpc-flow-logs"))
        .policy_name("tap-provision")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"logs:*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    // Aurora: retention shortened on the cluster, a reader resized.
    live.rds
        .modify_db_cluster()
        .db_cluster_identifier(format!("{ENV}-db"))
        .backup_retention_period(5)
        .apply_immediately(true)
        .send()
        .await
        .unwrap();
    live.rds
        .modify_db_instance()
        .db_instance_identifier(format!("{ENV}-db-2"))
        .db_instance_class("db.r6g.large")
        .apply_immediately(true)
        .send()
        .await
        .unwrap();
    // Backup schedule changed; state bucket's public access block removed.
    let plan_id = live.plan_id().await;
    let plan = live
        .backup
        .get_backup_plan()
        .backup_plan_id(&plan_id)
        .send()
        .await
        .unwrap();
    let rule = &plan.backup_plan().unwrap().rules()[0];
    live.backup
        .update_backup_plan()
        .backup_plan_id(&plan_id)
        .backup_plan(
            aws_sdk_backup::types::BackupPlanInput::builder()
                .backup_plan_name(format!("{ENV}-db"))
                .rules(
                    aws_sdk_backup::types::BackupRuleInput::builder()
                        .rule_name(rule.rule_name())
                        .target_backup_vault_name(rule.target_backup_vault_name())
                        .schedule_expression("cron(0 1 * * ? *)")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    live.s3
        .delete_public_access_block()
        .bucket(live.bucket())
        .send()
        .await
        .unwrap();
    // More of the same kinds. KMS: the key policy replaced, the alias pointed at another key.
    let key_id = live.key_id().await;
    live.kms
        .put_key_policy()
        .key_id(&key_id)
        .policy_name("default")
        .policy(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    let other = live.kms.create_key().send().await.unwrap();
    live.kms
        .update_alias()
        .alias_name(format!("alias/{ENV}"))
        .target_key_id(other.key_metadata().unwrap().key_id())
        .send()
        .await
        .unwrap();
    // The log group's key removed; the monitoring role's trust widened; a managed and an
    // inline policy added to the backup role.
    live.logs
        .disassociate_kms_key()
        .log_group_name(format!("/tap/{ENV}/vpc-flow-logs"))
        .send()
        .await
        .unwrap();
    live.iam
        .update_assume_role_policy()
        .role_name(format!("{ENV}-rds-monitoring"))
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#)
        .send()
        .await
        .unwrap();
    let admin = live
        .iam
        .create_policy()
        .policy_name("by-hand")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    live.iam
        .attach_role_policy()
        .role_name(format!("{ENV}-backup"))
        .policy_arn(admin.policy().unwrap().arn().unwrap())
        .send()
        .await
        .unwrap();
    live.iam
        .put_role_policy()
        .role_name(format!("{ENV}-backup"))
        .policy_name("by-hand")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    // The DB subnet group down to two subnets; the ALB group's egress revoked; a second
    // backup selection.
    live.rds
        .modify_db_subnet_group()
        .db_subnet_group_name(ENV)
        .subnet_ids(live.id("subnet-isolated-a").await)
        .subnet_ids(live.id("subnet-isolated-b").await)
        .send()
        .await
        .unwrap();
    ec2.revoke_security_group_egress()
        .group_id(live.id("sg-alb").await)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("-1")
                .ip_ranges(
                    aws_sdk_ec2::types::IpRange::builder()
                        .cidr_ip("0.0.0.0/0")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    live.backup
        .create_backup_selection()
        .backup_plan_id(&plan_id)
        .backup_selection(
            aws_sdk_backup::types::BackupSelection::builder()
                .selection_name("by-hand")
                .iam_role_arn(format!("arn:aws:iam::{acct}:role/{ENV}-backup"))
                .resources("*")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let expected = set(&[
        "vpc",
        "subnet-private-a",
        "internet-gateway",
        "route-table-isolated",
        "sg-db",
        "kms-key",
        "flow-logs-group",
        "flow-logs-role",
        "db-cluster",
        "db-instance-2",
        "backup-plan",
        "state-bucket",
        "db-monitoring-role",
        "backup-role",
        "db-subnet-group",
        "sg-alb",
    ]);
    let (drift, _) = drift_then_repair(&acct, expected).await;
    // The changes are named precisely.
    let sg = drift
        .events_of("drift")
        .into_iter()
        .find(|e| e["node"] == "sg-db")
        .unwrap();
    let field = &sg["drift"]["changes"][0];
    assert_eq!(field["field"], "egress");
    assert!(
        field["have"].as_str().unwrap().contains("tcp/443 ::/0"),
        "{field}"
    );

    // Each property is back, with exactly the writes it needs (counted by the emulator).
    let w = writes(&acct).await;
    let want: std::collections::BTreeMap<String, u64> = [
        ("ec2:ModifyVpcAttribute", 1),
        ("ec2:ModifySubnetAttribute", 1),
        ("ec2:AttachInternetGateway", 1),
        ("ec2:DeleteRoute", 1),
        ("ec2:RevokeSecurityGroupEgress", 1),
        ("ec2:AuthorizeSecurityGroupEgress", 1),
        ("kms:EnableKeyRotation", 1),
        ("kms:PutKeyPolicy", 1),
        ("kms:UpdateAlias", 1),
        ("logs:PutRetentionPolicy", 1),
        ("logs:AssociateKmsKey", 1),
        ("iam:PutRolePolicy", 1),
        ("iam:UpdateAssumeRolePolicy", 1),
        ("iam:DetachRolePolicy", 1),
        ("iam:DeleteRolePolicy", 1),
        ("rds:ModifyDBCluster", 1),
        ("rds:ModifyDBInstance", 1),
        ("rds:ModifyDBSubnetGroup", 1),
        ("backup:UpdateBackupPlan", 1),
        ("backup:DeleteBackupSelection", 2),
        ("backup:CreateBackupSelection", 1),
        ("s3:PutPublicAccessBlock", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(w, want);
    let igws = ec2
        .describe_internet_gateways()
        .internet_gateway_ids(&igw)
        .send()
        .await
        .unwrap();
    assert_eq!(
        igws.internet_gateways()[0].attachments()[0].vpc_id(),
        Some(vpc.as_str())
    );
    let sg = ec2
        .describe_security_groups()
        .group_ids(&sg_db)
        .send()
        .await
        .unwrap();
    assert!(sg.security_groups()[0].ip_permissions_egress().is_empty());
    let cluster = live.rds.describe_db_clusters().send().await.unwrap();
    assert_eq!(cluster.db_clusters()[0].backup_retention_period(), Some(30));
}

#[tokio::test]
async fn tags_removed_out_of_band_are_drift_and_repair_puts_them_back() {
    let acct = account();
    up_ok(&acct).await;
    let live = Live::new(&acct).await;
    let cost = "CostCenter";
    let ids: Vec<String> = live.ec2_ids().await.into_iter().map(|(_, id)| id).collect();
    live.ec2
        .delete_tags()
        .set_resources(Some(ids))
        .tags(aws_sdk_ec2::types::Tag::builder().key(cost).build())
        .send()
        .await
        .unwrap();
    live.kms
        .untag_resource()
        .key_id(live.key_id().await)
        .tag_keys(cost)
        .send()
        .await
        .unwrap();
    let group_arn = format!("arn:aws:logs:{REGION}:{acct}:log-group:/tap/{ENV}/vpc-flow-logs");
    live.logs
        .untag_resource()
        .resource_arn(group_arn)
        .tag_keys(cost)
        .send()
        .await
        .unwrap();
    for role in ["vpc-flow-logs", "rds-monitoring", "backup"] {
        live.iam
            .untag_role()
            .role_name(format!("{ENV}-{role}"))
            .tag_keys(cost)
            .send()
            .await
            .unwrap();
    }
    for arn in live.rds_arns().await {
        live.rds
            .remove_tags_from_resource()
            .resource_name(arn)
            .tag_keys(cost)
            .send()
            .await
            .unwrap();
    }
    let vault_arn = format!("arn:aws:backup:{REGION}:{acct}:backup-vault:{ENV}");
    let plan_arn = format!(
        "arn:aws:backup:{REGION}:{acct}:backup-plan:{}",
        live.plan_id().await
    );
    for arn in [vault_arn, plan_arn] {
        live.backup
            .untag_resource()
            .resource_arn(arn)
            .tag_key_list(cost)
            .send()
            .await
            .unwrap();
    }
    let tags = live
        .s3
        .get_bucket_tagging()
        .bucket(live.bucket())
        .send()
        .await
        .unwrap();
    let kept: Vec<aws_sdk_s3::types::Tag> = tags
        .tag_set()
        .iter()
        .filter(|t| t.key() != cost)
        .cloned()
        .collect();
    live.s3
        .put_bucket_tagging()
        .bucket(live.bucket())
        .tagging(
            aws_sdk_s3::types::Tagging::builder()
                .set_tag_set(Some(kept))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    live.r53
        .change_tags_for_resource()
        .resource_type(aws_sdk_route53::types::TagResourceType::Hostedzone)
        .resource_id(live.zone_id().await)
        .remove_tag_keys(cost)
        .send()
        .await
        .unwrap();

    // Every node of every kind lost a tag of ours.
    let all: BTreeSet<String> = crate::common::nodes_of_local();
    let (drift, _) = drift_then_repair(&acct, all).await;
    assert!(drift
        .events_of("drift")
        .iter()
        .all(|e| e["drift"]["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["field"] == "tags.CostCenter" && c["have"] == "(absent)")));
    let w = writes(&acct).await;
    assert_eq!(
        w.get("ec2:CreateTags"),
        Some(&22),
        "one per EC2 resource: {w:?}"
    );
    for op in [
        "kms:TagResource",
        "logs:TagResource",
        "s3:PutBucketTagging",
        "route53:ChangeTagsForResource",
    ] {
        assert_eq!(w.get(op), Some(&1), "{op}: {w:?}");
    }
    assert_eq!(w.get("iam:TagRole"), Some(&3), "{w:?}");
    assert_eq!(w.get("rds:AddTagsToResource"), Some(&4), "{w:?}");
    assert_eq!(w.get("backup:TagResource"), Some(&2), "{w:?}");
}

#[tokio::test]
async fn resources_deleted_out_of_band_are_drift_and_repair_recreates_them() {
    let acct = account();
    up_ok(&acct).await;
    let live = Live::new(&acct).await;
    let ec2 = &live.ec2;
    // The NAT gateway: gone, but it keeps its Elastic IP while `deleting`.
    ec2.delete_nat_gateway()
        .nat_gateway_id(live.id("nat-a").await)
        .send()
        .await
        .unwrap();
    // A private route table (association first, as AWS requires) and the flow log.
    let table = live.id("route-table-private-b").await;
    let tables = ec2
        .describe_route_tables()
        .route_table_ids(&table)
        .send()
        .await
        .unwrap();
    for a in tables.route_tables()[0].associations() {
        ec2.disassociate_route_table()
            .association_id(a.route_table_association_id().unwrap())
            .send()
            .await
            .unwrap();
    }
    ec2.delete_route_table()
        .route_table_id(&table)
        .send()
        .await
        .unwrap();
    ec2.delete_flow_logs()
        .flow_log_ids(live.id("flow-logs").await)
        .send()
        .await
        .unwrap();
    // The KMS key scheduled for deletion; the backup role; a reader; the backup plan; the
    // hosted zone this environment owns.
    live.kms
        .schedule_key_deletion()
        .key_id(live.key_id().await)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    let role = format!("{ENV}-backup");
    live.iam
        .delete_role_policy()
        .role_name(&role)
        .policy_name("tap-provision")
        .send()
        .await
        .unwrap();
    live.iam
        .delete_role()
        .role_name(&role)
        .send()
        .await
        .unwrap();
    live.rds
        .delete_db_instance()
        .db_instance_identifier(format!("{ENV}-db-2"))
        .send()
        .await
        .unwrap();
    let plan_id = live.plan_id().await;
    let selections = live
        .backup
        .list_backup_selections()
        .backup_plan_id(&plan_id)
        .send()
        .await
        .unwrap();
    for s in selections.backup_selections_list() {
        live.backup
            .delete_backup_selection()
            .backup_plan_id(&plan_id)
            .selection_id(s.selection_id().unwrap())
            .send()
            .await
            .unwrap();
    }
    live.backup
        .delete_backup_plan()
        .backup_plan_id(&plan_id)
        .send()
        .await
        .unwrap();
    live.r53
        .delete_hosted_zone()
        .id(live.zone_id().await)
        .send()
        .await
        .unwrap();

    // Repair at once: the NAT gateway is still `deleting` and holds the address.
    reset_calls(&acct).await;
    let r = local("repair", &[], &acct, None).await;
    assert_eq!(r.code, 0, "repair:\n{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("which holds Elastic IP"),
        "repair waited for the old NAT gateway to let go of its address:\n{}",
        r.stdout
    );
    let expected = set(&[
        "nat-a",
        "route-table-private-a",
        "route-table-private-b",
        "route-table-private-c",
        "flow-logs",
        "kms-key",
        "backup-role",
        "db-instance-2",
        "backup-plan",
        "hosted-zone",
    ]);
    assert_eq!(drifted(&r), expected, "{}", r.stdout);
    let deleted: BTreeSet<String> = r
        .events_of("drift")
        .into_iter()
        .filter(|e| e["drift"]["status"] == "deleted")
        .map(|e| e["node"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        deleted,
        set(&[
            "nat-a",
            "route-table-private-b",
            "flow-logs",
            "backup-role",
            "db-instance-2",
            "backup-plan",
            "hosted-zone"
        ])
    );
    let w = writes(&acct).await;
    for (op, n) in [
        ("ec2:CreateNatGateway", 1),
        ("ec2:CreateRouteTable", 1),
        ("ec2:ReplaceRoute", 2),
        ("ec2:CreateFlowLogs", 1),
        ("kms:CancelKeyDeletion", 1),
        ("iam:CreateRole", 1),
        ("backup:CreateBackupPlan", 1),
        ("backup:CreateBackupSelection", 1),
        ("route53:CreateHostedZone", 1),
    ] {
        assert_eq!(w.get(op), Some(&n), "{op}: {w:?}");
    }
    assert!(
        w.get("rds:CreateDBInstance").is_some_and(|n| *n >= 1),
        "{w:?}"
    );
    assert!(
        !w.contains_key("ec2:CreateVpc") && !w.contains_key("kms:CreateKey"),
        "{w:?}"
    );
    let after = local("drift", &[], &acct, None).await;
    assert_eq!(after.code, 0, "drift after repair:\n{}", after.stdout);
    assert_eq!(
        live.rds
            .describe_db_instances()
            .send()
            .await
            .unwrap()
            .db_instances()
            .len(),
        2,
        "exactly the wanted instances"
    );
}

#[tokio::test]
async fn a_missing_hosted_zone_stops_up_before_anything_is_created() {
    let acct = account();
    let dir = config_dir(|t| t.replace("create_zone = true", "create_zone = false"));
    let r = local("up", &["--yes"], &acct, Some(dir.path())).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("hosted zone tap.local.example.com was not found")
            && r.stderr.contains("dns.hosted_zone"),
        "{}",
        r.stderr
    );
    assert!(writes(&acct).await.is_empty(), "{:?}", writes(&acct).await);
    let plan = local("plan", &[], &acct, Some(dir.path())).await;
    assert_eq!(
        plan.code, 1,
        "a missing lookup is an error: {}",
        plan.stdout
    );

    // Once the zone exists (made by someone else), `up` uses it and never owns it.
    let live = Live::new(&acct).await;
    live.r53
        .create_hosted_zone()
        .name("tap.local.example.com")
        .caller_reference("someone-else")
        .send()
        .await
        .unwrap();
    let plan = local("plan", &[], &acct, Some(dir.path())).await;
    assert_eq!(plan.code, 2);
    let zone = plan
        .events_of("plan")
        .into_iter()
        .find(|p| p["node"] == "hosted-zone")
        .unwrap();
    assert_eq!(zone["action"], "unchanged");
    // Given by id, it is found by id.
    let id = live.zone_id().await;
    let by_id = config_dir(|t| {
        t.replace(
            "create_zone = true",
            &format!("create_zone = false\nhosted_zone = \"{id}\""),
        )
    });
    let plan = local("plan", &[], &acct, Some(by_id.path())).await;
    assert_eq!(plan.code, 2, "{}", plan.stdout);
    let zone = plan
        .events_of("plan")
        .into_iter()
        .find(|p| p["node"] == "hosted-zone")
        .unwrap();
    assert_eq!(zone["action"], "unchanged");
    assert!(
        writes(&acct).await.contains_key("route53:CreateHostedZone"),
        "made by hand above"
    );
    assert_eq!(writes(&acct).await.len(), 1, "the tool wrote nothing");
}

#[tokio::test]
async fn losing_the_record_breaks_neither_up_nor_drift() {
    let acct = account();
    up_ok(&acct).await;
    let live = Live::new(&acct).await;
    // Empty and delete the state bucket, record included.
    let versions = live
        .s3
        .list_object_versions()
        .bucket(live.bucket())
        .send()
        .await
        .unwrap();
    for v in versions.versions() {
        live.s3
            .delete_object()
            .bucket(live.bucket())
            .key(v.key().unwrap())
            .set_version_id(v.version_id().map(String::from))
            .send()
            .await
            .unwrap();
    }
    live.s3
        .delete_bucket()
        .bucket(live.bucket())
        .send()
        .await
        .unwrap();

    let d = local("drift", &[], &acct, None).await;
    assert_eq!(d.code, 2, "{}", d.stdout);
    assert_eq!(drifted(&d), set(&["state-bucket"]));
    assert!(d.event("drift_finished")["record_note"]
        .as_str()
        .unwrap()
        .contains("no applied record"));
    up_ok(&acct).await;
    let d = local("drift", &[], &acct, None).await;
    assert_eq!(d.code, 0, "the record is back:\n{}", d.stdout);
    assert!(d.event("drift_finished")["record_note"].is_null());
}

#[tokio::test]
async fn prod_converges_and_plan_drift_and_repair_then_write_nothing() {
    let acct = account();
    // prod's hosted zone exists outside the environment, as in a real account.
    let live = Live::new(&acct).await;
    live.r53
        .create_hosted_zone()
        .name("pay.example.com")
        .caller_reference("company-dns")
        .send()
        .await
        .unwrap();
    let up = run(&["up", "--env", "prod", "--yes", "--json"], &acct).await;
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    assert_eq!(up.finished()["counts"]["created"], 38, "{}", up.finished());
    assert_eq!(
        up.outcome("hosted-zone"),
        "unchanged",
        "looked up, never made"
    );
    reset_calls(&acct).await;
    for verb in ["plan", "drift", "repair", "up"] {
        let mut args = vec![verb, "--env", "prod", "--json"];
        if verb == "up" {
            args.push("--yes");
        }
        let r = run(&args, &acct).await;
        assert_eq!(r.code, 0, "{verb}:\n{}\n{}", r.stdout, r.stderr);
    }
    assert!(writes(&acct).await.is_empty(), "{:?}", writes(&acct).await);
    // The state bucket lives in the environment's region.
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(crate::common::endpoint())
        .region(aws_config::Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            &acct, "test", None, None, "tests",
        ))
        .load()
        .await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    );
    let location = s3
        .get_bucket_location()
        .bucket(format!("tap-prod-state-{acct}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        location.location_constraint().map(|l| l.as_str()),
        Some("eu-west-1")
    );
}
