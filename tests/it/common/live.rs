//! The environment's resources as an operator sees them through the SDK: ids by node, and
//! what the drift and repair tests need to change them out of band.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::Filter;
use serde_json::Value;

use super::{local, reset_calls, sdk, writes, Run};

pub const ENV: &str = "tap-local";

pub fn env_filter() -> Filter {
    Filter::builder()
        .name("tag:tap:environment")
        .values(ENV)
        .build()
}

pub fn node_of(tags: &[aws_sdk_ec2::types::Tag]) -> Option<&str> {
    tags.iter()
        .find(|t| t.key() == Some("tap:node"))
        .and_then(|t| t.value())
}

/// The nodes a drift run reported as drifted.
pub fn drifted(r: &Run) -> BTreeSet<String> {
    r.events_of("drift")
        .into_iter()
        .filter(|e| !e["drift"].is_null())
        .map(|e| e["node"].as_str().unwrap().to_string())
        .collect()
}

/// The nodes a drift run reported deleted.
pub fn deleted(r: &Run) -> BTreeSet<String> {
    r.events_of("drift")
        .into_iter()
        .filter(|e| e["drift"]["status"] == "deleted")
        .map(|e| e["node"].as_str().unwrap().to_string())
        .collect()
}

pub fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Looks up the ids of the environment's resources through the SDK, as an operator would.
pub struct Live {
    pub ec2: aws_sdk_ec2::Client,
    pub kms: aws_sdk_kms::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub iam: aws_sdk_iam::Client,
    pub rds: aws_sdk_rds::Client,
    pub backup: aws_sdk_backup::Client,
    pub s3: aws_sdk_s3::Client,
    pub r53: aws_sdk_route53::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub aas: aws_sdk_applicationautoscaling::Client,
    pub cf: aws_sdk_cloudfront::Client,
    pub sm: aws_sdk_secretsmanager::Client,
    account: String,
}

impl Live {
    pub async fn new(acct: &str) -> Live {
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
            elb: aws_sdk_elasticloadbalancingv2::Client::new(&conf),
            ecs: aws_sdk_ecs::Client::new(&conf),
            aas: aws_sdk_applicationautoscaling::Client::new(&conf),
            cf: aws_sdk_cloudfront::Client::new(&conf),
            sm: aws_sdk_secretsmanager::Client::new(&conf),
            account: acct.to_string(),
        }
    }

    /// The applied record, parsed.
    pub async fn record(&self) -> serde_json::Value {
        let got = self
            .s3
            .get_object()
            .bucket(self.bucket())
            .key("tap-provision/applied.json")
            .send()
            .await
            .expect("the applied record");
        let bytes = got.body.collect().await.expect("its body").into_bytes();
        serde_json::from_slice(&bytes).expect("JSON")
    }

    pub fn bucket(&self) -> String {
        format!("{ENV}-state-{}", self.account)
    }

    /// Every EC2 resource id of the environment by node.
    pub async fn ec2_ids(&self) -> Vec<(String, String)> {
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

    pub async fn id(&self, node: &str) -> String {
        self.ec2_ids()
            .await
            .into_iter()
            .find(|(n, _)| n == node)
            .unwrap_or_else(|| panic!("no live {node}"))
            .1
    }

    pub async fn key_id(&self) -> String {
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

    pub async fn plan_id(&self) -> String {
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

    /// Deletes the backup plan `plan_id` out of band: its selections first, as AWS requires.
    pub async fn delete_plan(&self, plan_id: &str) {
        let selections = self
            .backup
            .list_backup_selections()
            .backup_plan_id(plan_id)
            .send()
            .await
            .unwrap();
        for s in selections.backup_selections_list() {
            self.backup
                .delete_backup_selection()
                .backup_plan_id(plan_id)
                .selection_id(s.selection_id().unwrap())
                .send()
                .await
                .unwrap();
        }
        self.backup
            .delete_backup_plan()
            .backup_plan_id(plan_id)
            .send()
            .await
            .unwrap();
    }

    /// One change to a record of the environment's zone, as an operator would make it.
    pub async fn change_record(
        &self,
        action: aws_sdk_route53::types::ChangeAction,
        record: aws_sdk_route53::types::ResourceRecordSet,
    ) {
        use aws_sdk_route53::types::{Change, ChangeBatch};
        let change = Change::builder()
            .action(action)
            .resource_record_set(record)
            .build()
            .unwrap();
        self.r53
            .change_resource_record_sets()
            .hosted_zone_id(self.zone_id().await)
            .change_batch(ChangeBatch::builder().changes(change).build().unwrap())
            .send()
            .await
            .unwrap();
    }

    pub async fn zone_id(&self) -> String {
        let zones = self.r53.list_hosted_zones().send().await.unwrap();
        zones.hosted_zones()[0]
            .id()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string()
    }

    pub async fn rds_arns(&self) -> Vec<String> {
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
pub async fn drift_then_repair(acct: &str, expected: BTreeSet<String>) -> (Run, Run) {
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
