//! The data tier: subnet group, cluster, writer and readers, AWS Backup.

use serde_json::json;

use super::network::Network;
use super::Stack;
use crate::config::EnvConfig;
use crate::resources::aurora_cluster::AuroraCluster;
use crate::resources::aurora_instance::AuroraInstance;
use crate::resources::backup_plan::BackupPlan;
use crate::resources::backup_vault::BackupVault;
use crate::resources::db_subnet_group::DbSubnetGroup;
use crate::resources::iam_role::IamRole;
use crate::resources::template::Template;

pub const DB_CLUSTER: &str = "db-cluster";
pub const DB_MONITORING_ROLE: &str = "db-monitoring-role";

pub fn db_instance_id(number: usize) -> String {
    format!("db-instance-{number}")
}

pub fn build(s: &mut Stack<'_>, env: &EnvConfig, net: &Network) {
    let db = &env.database;
    let zones = &env.network.zones;
    let subnet_group = s.add(
        "db-subnet-group",
        DbSubnetGroup {
            subnets: net.isolated_subnets.clone(),
        },
    );
    let monitoring_role = s.add(
        DB_MONITORING_ROLE,
        IamRole {
            suffix: "rds-monitoring".into(),
            service: "monitoring.rds.amazonaws.com".into(),
            description: "RDS enhanced monitoring of the Aurora instances (tap-provision)".into(),
            // The statements of AWS's AmazonRDSEnhancedMonitoringRole, scoped to this account.
            policy: Template(json!({
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:PutRetentionPolicy"],
                     "Resource": ["arn:${partition}:logs:${region}:${account}:log-group:RDS*"]},
                    {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams", "logs:GetLogEvents"],
                     "Resource": ["arn:${partition}:logs:${region}:${account}:log-group:RDS*:log-stream:*"]}
                ]
            })),
            path: None,
            source_arn: None,
            managed: Vec::new(),
        },
    );
    // Secrets Manager: RDS manages the master secret under the CMK (no node of ours).
    let cluster = s.add(
        DB_CLUSTER,
        AuroraCluster {
            subnet_group,
            security_group: net.db_security_group.clone(),
            key: net.key.clone(),
            engine_version: db.engine_version.clone(),
            backup_retention_days: db.backup_retention_days,
            deletion_protection: db.deletion_protection,
            database_name: db.database_name.clone(),
            master_username: db.master_username.clone(),
        },
    );
    // PLATFORM.md: CreateDBInstance is accepted while the cluster is `creating` (identifiers
    // only); calls on one cluster go one after another, so each instance waits for the
    // previous one's identifiers, never for its readiness.
    let mut previous = None;
    for number in 1..=1 + db.readers {
        let id = db_instance_id(number);
        let instance = s.add(
            &id,
            AuroraInstance {
                number,
                zone: zones[(number - 1) % zones.len()].name.clone(),
                instance_class: db.instance_class.clone(),
                cluster: cluster.clone(),
                key: net.key.clone(),
                monitoring_role: monitoring_role.clone(),
                after: previous.take(),
            },
        );
        previous = Some(instance);
    }

    let vault = s.add(
        "backup-vault",
        BackupVault {
            key: net.key.clone(),
        },
    );
    let role = s.add(
        "backup-role",
        IamRole {
            suffix: "backup".into(),
            service: "backup.amazonaws.com".into(),
            description: "AWS Backup of the Aurora cluster (tap-provision)".into(),
            policy: Template(json!({
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["rds:CreateDBClusterSnapshot", "rds:DescribeDBClusters", "rds:DescribeDBClusterSnapshots",
                                   "rds:AddTagsToResource", "rds:ListTagsForResource", "rds:CopyDBClusterSnapshot",
                                   "rds:DeleteDBClusterSnapshot", "rds:ModifyDBClusterSnapshotAttribute"],
                        "Resource": ["arn:${partition}:rds:${region}:${account}:cluster:${env}-db",
                                     "arn:${partition}:rds:${region}:${account}:cluster-snapshot:*"]
                    },
                    {
                        "Effect": "Allow",
                        "Action": ["kms:DescribeKey", "kms:CreateGrant", "kms:GenerateDataKey*", "kms:Decrypt", "kms:ReEncrypt*"],
                        "Resource": "arn:${partition}:kms:${region}:${account}:key/*",
                        "Condition": {"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/${env}"}}
                    },
                    {
                        "Effect": "Allow",
                        "Action": ["backup:DescribeBackupVault", "backup:CopyIntoBackupVault"],
                        "Resource": "arn:${partition}:backup:${region}:${account}:backup-vault:${env}"
                    },
                    {"Effect": "Allow", "Action": "tag:GetResources", "Resource": "*"}
                ]
            })),
            path: None,
            source_arn: None,
            managed: Vec::new(),
        },
    );
    // PLATFORM.md: a new backup role may not be assumable yet; the selection retries.
    let b = &env.backup;
    s.add(
        "backup-plan",
        BackupPlan {
            vault,
            role,
            cluster,
            schedule: b.schedule.clone(),
            start_window_minutes: b.start_window_minutes,
            completion_window_minutes: b.completion_window_minutes,
            retention_days: b.retention_days,
        },
    );
}
