//! The environment's step graph, built from the config. The one place that names resource
//! kinds: a new kind is a module in `resources/` and a few lines here.
//!
//! Edge kinds follow PLATFORM.md, "When a dependent call may start".

use std::sync::Arc;

use serde_json::json;

use crate::config::EnvConfig;
use crate::graph::{Builder, Graph, GraphError, Needs};
use crate::resources::aurora_cluster::{self, AuroraCluster};
use crate::resources::aurora_instance::AuroraInstance;
use crate::resources::backup_plan::BackupPlan;
use crate::resources::backup_vault::{self, BackupVault};
use crate::resources::db_subnet_group::DbSubnetGroup;
use crate::resources::flow_log::FlowLog;
use crate::resources::iam_role::IamRole;
use crate::resources::internet_gateway::InternetGateway;
use crate::resources::kms_key::KmsKey;
use crate::resources::log_group::LogGroup;
use crate::resources::nat_gateway::NatGateway;
use crate::resources::route_table::{RouteTable, Target};
use crate::resources::security_group::{Peer, Rule, SecurityGroup};
use crate::resources::subnet::Subnet;
use crate::resources::vpc::Vpc;
use crate::resources::{Adapter, ElasticIp, Node, Resource};

pub type StepGraph = Graph<Arc<dyn Node>>;

struct Stack(Builder<Arc<dyn Node>>);

impl Stack {
    fn add<R: Resource>(&mut self, id: impl Into<String>, deps: &[(&str, Needs)], r: R) {
        let deps = deps.iter().map(|(d, n)| (d.to_string(), *n)).collect();
        self.0
            .add(id, R::KIND, deps, Arc::new(Adapter(r)) as Arc<dyn Node>);
    }
}

pub const KMS_KEY: &str = "kms-key";
pub const VPC: &str = "vpc";
pub const IGW: &str = "internet-gateway";
pub const FLOW_LOGS_GROUP: &str = "flow-logs-group";
pub const FLOW_LOGS_ROLE: &str = "flow-logs-role";

pub fn subnet_id(tier: &str, suffix: char) -> String {
    format!("subnet-{tier}-{suffix}")
}

pub fn build(env: &EnvConfig) -> Result<StepGraph, Vec<GraphError>> {
    use Needs::Id;
    let mut s = Stack(Builder::default());
    let net = &env.network;

    // Encryption.
    s.add(KMS_KEY, &[], KmsKey);

    // Network.
    s.add(VPC, &[], Vpc { cidr: net.vpc_cidr });
    for z in &net.zones {
        for (tier, cidr) in [
            ("public", z.public),
            ("private", z.private),
            ("isolated", z.isolated),
        ] {
            s.add(
                subnet_id(tier, z.suffix),
                &[(VPC, Id)],
                Subnet {
                    vpc: VPC.into(),
                    cidr,
                    zone: z.name.clone(),
                },
            );
        }
    }
    // Create returns after AttachInternetGateway: its id means "attached".
    s.add(IGW, &[(VPC, Id)], InternetGateway { vpc: VPC.into() });
    let public_subnets: Vec<String> = net
        .zones
        .iter()
        .map(|z| subnet_id("public", z.suffix))
        .collect();
    let mut public_deps: Vec<(&str, Needs)> = vec![(VPC, Id), (IGW, Id)];
    public_deps.extend(public_subnets.iter().map(|p| (p.as_str(), Id)));
    s.add(
        "route-table-public",
        &public_deps,
        RouteTable {
            vpc: VPC.into(),
            routes: vec![("0.0.0.0/0".into(), Target::InternetGateway(IGW.into()))],
            subnets: public_subnets.clone(),
        },
    );
    for z in net.zones.iter().take(net.nat_gateways) {
        let eip = format!("eip-nat-{}", z.suffix);
        let nat = format!("nat-{}", z.suffix);
        let subnet = subnet_id("public", z.suffix);
        s.add(eip.clone(), &[], ElasticIp);
        // A NAT created before the IGW is attached turns `failed` minutes later.
        s.add(
            nat,
            &[(subnet.as_str(), Id), (eip.as_str(), Id), (IGW, Id)],
            NatGateway {
                subnet: subnet.clone(),
                eip: eip.clone(),
            },
        );
    }
    for (i, z) in net.zones.iter().enumerate() {
        let nat = format!("nat-{}", net.zones[net.nat_zone_for(i)].suffix);
        let private = subnet_id("private", z.suffix);
        // Routes to a `pending` NAT are accepted: identifiers only.
        s.add(
            format!("route-table-private-{}", z.suffix),
            &[(VPC, Id), (nat.as_str(), Id), (private.as_str(), Id)],
            RouteTable {
                vpc: VPC.into(),
                routes: vec![("0.0.0.0/0".into(), Target::NatGateway(nat.clone()))],
                subnets: vec![private.clone()],
            },
        );
    }
    let isolated: Vec<String> = net
        .zones
        .iter()
        .map(|z| subnet_id("isolated", z.suffix))
        .collect();
    let mut isolated_deps: Vec<(&str, Needs)> = vec![(VPC, Id)];
    isolated_deps.extend(isolated.iter().map(|p| (p.as_str(), Id)));
    s.add(
        "route-table-isolated",
        &isolated_deps,
        RouteTable {
            vpc: VPC.into(),
            routes: vec![],
            subnets: isolated.clone(),
        },
    );

    // Flow logs: the key and the role are eventually consistent; the create calls retry.
    s.add(
        FLOW_LOGS_GROUP,
        &[(KMS_KEY, Id)],
        LogGroup {
            suffix: "vpc-flow-logs",
            retention_days: net.flow_logs_retention_days,
            key: KMS_KEY.into(),
        },
    );
    let group_name = LogGroup::name_for(&env.project, &env.full_name(), "vpc-flow-logs");
    s.add(
        FLOW_LOGS_ROLE,
        &[],
        IamRole {
            suffix: "vpc-flow-logs",
            service: "vpc-flow-logs.amazonaws.com",
            description: "Delivers the VPC's flow logs to its log group (tap-provision)",
            policy: Box::new(move |cx| {
                let group = cx.arn("logs", &format!("log-group:{group_name}"));
                json!({
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Effect": "Allow",
                        "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogGroups", "logs:DescribeLogStreams"],
                        "Resource": [group.clone(), format!("{group}:*")]
                    }]
                })
            }),
        },
    );
    s.add(
        "flow-logs",
        &[(VPC, Id), (FLOW_LOGS_GROUP, Id), (FLOW_LOGS_ROLE, Id)],
        FlowLog {
            vpc: VPC.into(),
            log_group: FLOW_LOGS_GROUP.into(),
            role: FLOW_LOGS_ROLE.into(),
        },
    );

    // Security groups: least privilege (PLATFORM.md, network row).
    let tcp = |port: u16, peer: Peer, description: &'static str| Rule {
        protocol: "tcp",
        port,
        peer,
        description,
    };
    s.add(
        "sg-alb",
        &[(VPC, Id)],
        SecurityGroup {
            vpc: VPC.into(),
            name: "alb",
            description: "ALB: HTTPS and HTTP from anywhere",
            ingress: vec![
                tcp(443, Peer::Cidr("0.0.0.0/0".into()), "HTTPS from anywhere"),
                tcp(
                    80,
                    Peer::Cidr("0.0.0.0/0".into()),
                    "HTTP from anywhere, redirected to HTTPS",
                ),
            ],
            egress: None,
        },
    );
    s.add(
        "sg-ecs",
        &[(VPC, Id), ("sg-alb", Id)],
        SecurityGroup {
            vpc: VPC.into(),
            name: "ecs",
            description: "ECS tasks: container ports from the ALB only",
            ingress: vec![
                tcp(80, Peer::Group("sg-alb".into()), "frontend from the ALB"),
                tcp(3000, Peer::Group("sg-alb".into()), "backend from the ALB"),
            ],
            egress: None,
        },
    );
    s.add(
        "sg-db",
        &[(VPC, Id), ("sg-ecs", Id)],
        SecurityGroup {
            vpc: VPC.into(),
            name: "db",
            description: "Aurora: PostgreSQL from the ECS tasks only, no egress",
            ingress: vec![tcp(
                5432,
                Peer::Group("sg-ecs".into()),
                "PostgreSQL from ECS tasks",
            )],
            egress: Some(vec![]),
        },
    );

    database(&mut s, env);
    s.0.build()
}

pub const DB_SUBNET_GROUP: &str = "db-subnet-group";
pub const DB_CLUSTER: &str = "db-cluster";
pub const DB_MONITORING_ROLE: &str = "db-monitoring-role";
pub const BACKUP_VAULT: &str = "backup-vault";
pub const BACKUP_ROLE: &str = "backup-role";

pub fn db_instance_id(number: usize) -> String {
    format!("db-instance-{number}")
}

/// The data tier: subnet group, cluster, writer and readers, AWS Backup.
fn database(s: &mut Stack, env: &EnvConfig) {
    use Needs::Id;
    let zones = &env.network.zones;
    let isolated: Vec<String> = zones
        .iter()
        .map(|z| subnet_id("isolated", z.suffix))
        .collect();
    let deps: Vec<(&str, Needs)> = isolated.iter().map(|i| (i.as_str(), Id)).collect();
    s.add(
        DB_SUBNET_GROUP,
        &deps,
        DbSubnetGroup {
            subnets: isolated.clone(),
        },
    );

    let region = env.region.clone();
    s.add(
        DB_MONITORING_ROLE,
        &[],
        IamRole {
            suffix: "rds-monitoring",
            service: "monitoring.rds.amazonaws.com",
            description: "RDS enhanced monitoring of the Aurora instances (tap-provision)",
            // The statements of AWS's AmazonRDSEnhancedMonitoringRole, scoped to this account.
            policy: Box::new(move |cx| {
                let groups = format!("arn:{}:logs:{region}:{}:log-group:RDS*", cx.cx.partition, cx.cx.account_id);
                json!({
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:PutRetentionPolicy"], "Resource": [groups.clone()]},
                        {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams", "logs:GetLogEvents"], "Resource": [format!("{groups}:log-stream:*")]}
                    ]
                })
            }),
        },
    );
    // Secrets Manager: RDS manages the master secret under the CMK (no node of ours).
    s.add(
        DB_CLUSTER,
        &[(DB_SUBNET_GROUP, Id), ("sg-db", Id), (KMS_KEY, Id)],
        AuroraCluster {
            subnet_group: DB_SUBNET_GROUP.into(),
            security_group: "sg-db".into(),
            key: KMS_KEY.into(),
        },
    );
    // PLATFORM.md: CreateDBInstance is accepted while the cluster is `creating` (identifiers
    // only); calls on one cluster go one after another, so each instance waits for the
    // previous one's identifiers, never for its readiness.
    for number in 1..=1 + env.database.readers {
        let id = db_instance_id(number);
        let previous = db_instance_id(number - 1);
        let mut deps: Vec<(&str, Needs)> =
            vec![(DB_CLUSTER, Id), (KMS_KEY, Id), (DB_MONITORING_ROLE, Id)];
        if number > 1 {
            deps.push((previous.as_str(), Id));
        }
        s.add(
            id,
            &deps,
            AuroraInstance {
                number,
                zone: zones[(number - 1) % zones.len()].name.clone(),
                cluster: DB_CLUSTER.into(),
                key: KMS_KEY.into(),
                monitoring_role: DB_MONITORING_ROLE.into(),
            },
        );
    }

    s.add(
        BACKUP_VAULT,
        &[(KMS_KEY, Id)],
        BackupVault {
            key: KMS_KEY.into(),
        },
    );
    let alias = env.kms_alias();
    let cluster = aurora_cluster::cluster_name(&env.full_name());
    let vault = backup_vault::vault_name(&env.full_name());
    s.add(
        BACKUP_ROLE,
        &[],
        IamRole {
            suffix: "backup",
            service: "backup.amazonaws.com",
            description: "AWS Backup of the Aurora cluster (tap-provision)",
            policy: Box::new(move |cx| {
                json!({
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": ["rds:CreateDBClusterSnapshot", "rds:DescribeDBClusters", "rds:DescribeDBClusterSnapshots",
                                       "rds:AddTagsToResource", "rds:ListTagsForResource", "rds:CopyDBClusterSnapshot",
                                       "rds:DeleteDBClusterSnapshot", "rds:ModifyDBClusterSnapshotAttribute"],
                            "Resource": [cx.arn("rds", &format!("cluster:{cluster}")), cx.arn("rds", "cluster-snapshot:*")]
                        },
                        {
                            "Effect": "Allow",
                            "Action": ["kms:DescribeKey", "kms:CreateGrant", "kms:GenerateDataKey*", "kms:Decrypt", "kms:ReEncrypt*"],
                            "Resource": cx.arn("kms", "key/*"),
                            "Condition": {"ForAnyValue:StringEquals": {"kms:ResourceAliases": alias}}
                        },
                        {
                            "Effect": "Allow",
                            "Action": ["backup:DescribeBackupVault", "backup:CopyIntoBackupVault"],
                            "Resource": cx.arn("backup", &format!("backup-vault:{vault}"))
                        },
                        {"Effect": "Allow", "Action": "tag:GetResources", "Resource": "*"}
                    ]
                })
            }),
        },
    );
    // PLATFORM.md: a new backup role may not be assumable yet; the selection retries.
    s.add(
        "backup-plan",
        &[(BACKUP_VAULT, Id), (BACKUP_ROLE, Id), (DB_CLUSTER, Id)],
        BackupPlan {
            vault: BACKUP_VAULT.into(),
            role: BACKUP_ROLE.into(),
            cluster: DB_CLUSTER.into(),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(nat: usize) -> EnvConfig {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/prod.toml"))
                .unwrap();
        let text = text
            .replace("nat_gateways = 3", &format!("nat_gateways = {nat}"))
            .replace("protected = true", "protected = false");
        crate::config::parse(std::path::Path::new("prod.toml"), "prod", &text).unwrap()
    }

    #[test]
    fn prod_graph_has_the_network_layer() {
        let g = build(&env(3)).unwrap();
        let kinds = |k: &str| g.nodes().iter().filter(|n| n.kind == k).count();
        assert_eq!(kinds("subnet"), 9);
        assert_eq!(kinds("nat_gateway"), 3);
        assert_eq!(kinds("elastic_ip"), 3);
        assert_eq!(kinds("route_table"), 5);
        assert_eq!(kinds("security_group"), 3);
        assert_eq!(g.len(), 29 + 8);
        // Every edge of this layer needs identifiers only: nothing waits for a NAT.
        assert!(g.edges().all(|(_, _, n)| n == Needs::Id));
        // Each private table routes to its own zone's NAT.
        let rt = g.index_of("route-table-private-b").unwrap();
        let deps: Vec<&str> = g
            .node(rt)
            .deps
            .iter()
            .map(|(d, _)| g.node(*d).id.as_str())
            .collect();
        assert!(deps.contains(&"nat-b"));
        let nat = g.index_of("nat-a").unwrap();
        let deps: Vec<&str> = g
            .node(nat)
            .deps
            .iter()
            .map(|(d, _)| g.node(*d).id.as_str())
            .collect();
        assert!(
            deps.contains(&IGW),
            "a NAT needs the attached internet gateway"
        );
    }

    #[test]
    fn instances_follow_each_other_by_identifiers_only() {
        let g = build(&env(3)).unwrap();
        let deps = |id: &str| -> Vec<(String, Needs)> {
            let ix = g.index_of(id).unwrap();
            g.node(ix)
                .deps
                .iter()
                .map(|(d, n)| (g.node(*d).id.clone(), *n))
                .collect()
        };
        assert!(
            deps("db-instance-1").contains(&(DB_CLUSTER.to_string(), Needs::Id)),
            "no wait for the cluster"
        );
        assert!(
            deps("db-instance-2").contains(&("db-instance-1".to_string(), Needs::Id)),
            "one call after another"
        );
        assert!(deps(DB_CLUSTER).contains(&("sg-db".to_string(), Needs::Id)));
        assert!(deps("backup-plan").contains(&(DB_CLUSTER.to_string(), Needs::Id)));
    }

    #[test]
    fn one_nat_serves_every_zone() {
        let g = build(&env(1)).unwrap();
        assert_eq!(
            g.nodes().iter().filter(|n| n.kind == "nat_gateway").count(),
            1
        );
        for z in ['a', 'b', 'c'] {
            let rt = g.index_of(&format!("route-table-private-{z}")).unwrap();
            assert!(g
                .node(rt)
                .deps
                .iter()
                .any(|(d, _)| g.node(*d).id == "nat-a"));
        }
    }
}
