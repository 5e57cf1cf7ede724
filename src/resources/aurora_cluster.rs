//! The Aurora PostgreSQL cluster: CMK-encrypted storage, RDS-managed master secret under the
//! CMK (the password never passes through this tool), backups retained and windowed,
//! maintenance sun:04:00-05:00, postgresql logs exported, tags copied to snapshots, deletion
//! protection from config. `down` takes a final snapshot unless `--destroy-data`.

use crate::aws::wait::expected::{AURORA_CLUSTER_AVAILABLE, AURORA_CLUSTER_DELETED};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_rds::types::{CloudwatchLogsExportConfiguration, DbCluster};
use serde::{Deserialize, Serialize};

use super::{output, Leaving, NodeCx, Resource};
use crate::aws::errors::OrAbsent;
use crate::aws::retry::{self, DB_CLUSTER_BUSY, NEW_KEY_NOT_VISIBLE};
use crate::aws::tags;
use crate::aws::wait::Poll;
use crate::diff::{fields, has, tags_changed, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, Output, Ref};
use crate::policy::{grant, Grants, On};
use crate::resources::template::Attr;

fields! {
    /// The fields an aurora cluster is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        Engine = "engine",
        StorageEncrypted = "storage_encrypted",
        KmsKeyId = "kms_key_id",
        DbSubnetGroup = "db_subnet_group",
        EngineVersion = "engine_version",
        BackupRetentionPeriod = "backup_retention_period",
        PreferredBackupWindow = "preferred_backup_window",
        PreferredMaintenanceWindow = "preferred_maintenance_window",
        DeletionProtection = "deletion_protection",
        CopyTagsToSnapshot = "copy_tags_to_snapshot",
        EnabledCloudwatchLogsExports = "enabled_cloudwatch_logs_exports",
        VpcSecurityGroups = "vpc_security_groups",
        MasterUserSecretKmsKey = "master_user_secret_kms_key",
    }
}

pub const ENGINE: &str = "aurora-postgresql";
pub const BACKUP_WINDOW: &str = "03:00-04:00";
pub const MAINTENANCE_WINDOW: &str = "sun:04:00-sun:05:00";

#[derive(Debug, Serialize, Deserialize)]
pub struct AuroraCluster {
    pub subnet_group: Ref,
    pub security_group: Ref,
    pub key: Ref,
    pub engine_version: String,
    pub backup_retention_days: i32,
    pub deletion_protection: bool,
    pub database_name: String,
    pub master_username: String,
}

/// The cluster's identifier: `<project>-<env>-db`.
pub fn cluster_name(env_full: &str) -> String {
    format!("{env_full}-db")
}

/// Readiness of a cluster or instance from its RDS status (pure).
pub fn rds_ready(status: Option<&str>) -> Poll {
    match status {
        Some("available") => Poll::Ready,
        Some(
            s @ ("failed"
            | "incompatible-parameters"
            | "incompatible-network"
            | "incompatible-restore"
            | "inaccessible-encryption-credentials"
            | "storage-full"),
        ) => Poll::Failed(format!("status `{s}`")),
        Some(s) => Poll::Pending(s.to_string()),
        None => Poll::Pending("unknown".into()),
    }
}

/// Aurora applies minor version upgrades itself in the maintenance window (auto minor
/// version upgrade): a live `16.8` where the config says `16.6` is AWS's doing, not drift,
/// and `up` never downgrades it. A different major version, or an older minor, is a change.
pub const MINOR_UPGRADES_ARE_AWS: &str =
    "Aurora applies minor version upgrades itself (auto minor version upgrade)";

fn is_minor_upgrade(want: &str, have: &str) -> bool {
    let parse = |v: &str| -> Option<(u32, u32)> {
        let (major, minor) = v.split_once('.')?;
        Some((major.parse().ok()?, minor.parse().ok()?))
    };
    matches!((parse(want), parse(have)), (Some((wm, wn)), Some((hm, hn))) if wm == hm && hn > wn)
}

async fn describe(cx: &NodeCx<'_>, name: &str) -> Result<Option<DbCluster>, Failure> {
    let out = cx
        .aws()
        .rds
        .describe_db_clusters()
        .db_cluster_identifier(name)
        .send()
        .await
        .or_absent()?;
    Ok(out.and_then(|o| o.db_clusters().first().cloned()))
}

fn attrs_of(c: &DbCluster) -> Result<Attrs, Failure> {
    let mut a = Attrs::id(
        c.db_cluster_identifier()
            .ok_or_else(|| Failure::missing("cluster identifier"))?,
    );
    a.arn = c.db_cluster_arn().map(String::from);
    a.endpoint = c.endpoint().map(String::from);
    a.reader_endpoint = c.reader_endpoint().map(String::from);
    a.port = c.port();
    a.secret_arn = c
        .master_user_secret()
        .and_then(|s| s.secret_arn())
        .map(String::from);
    a.state = c.status().map(String::from);
    Ok(a)
}

/// Waits until the cluster `name` being deleted is gone. Its name is unique in the account
/// and region: none of that name is [`Leaving::NameFree`].
async fn wait_deleting(cx: &NodeCx<'_>, name: &str) -> Result<Leaving, Failure> {
    match describe(cx, name).await? {
        None => return Ok(Leaving::NameFree),
        Some(c) if c.status() != Some("deleting") => return Ok(Leaving::Nothing),
        Some(_) => {}
    }
    cx.wait_gone(
        &format!("the earlier Aurora cluster {name}"),
        AURORA_CLUSTER_DELETED,
        || async {
            Ok(describe(cx, name)
                .await?
                .map(|c| c.status().unwrap_or("deleting").to_string()))
        },
    )
    .await?;
    Ok(Leaving::Waited)
}

#[async_trait]
impl Resource for AuroraCluster {
    type Observed = DbCluster;
    const KIND: &'static str = "aurora_cluster";
    const GRANTS: &'static Grants = &Grants {
        read: &[grant(
            &["rds:DescribeDBClusters"],
            On::Arns(&["arn:${partition}:rds:${region}:${account}:cluster:${env}-db"]),
        )],
        write: &[
            grant(
                &[
                    "rds:CreateDBCluster",
                    "rds:ModifyDBCluster",
                    "rds:AddTagsToResource",
                ],
                On::Arns(&[
                    "arn:${partition}:rds:${region}:${account}:cluster:${env}-db",
                    "arn:${partition}:rds:${region}:${account}:subgrp:${env}",
                    "arn:${partition}:rds:${region}:${account}:cluster-pg:*",
                    "arn:${partition}:rds:${region}:${account}:og:*",
                ]),
            ),
            // The RDS-managed master secret, made by CreateDBCluster.
            grant(
                &["secretsmanager:CreateSecret", "secretsmanager:TagResource"],
                On::Arns(&[
                    "arn:${partition}:secretsmanager:${region}:${account}:secret:rds!cluster-*",
                ]),
            ),
            grant(
                &[
                    "kms:CreateGrant",
                    "kms:DescribeKey",
                    "kms:GenerateDataKey",
                    "kms:Decrypt",
                ],
                On::Tagged,
            ),
        ],
        delete: &[grant(
            &[
                "rds:DeleteDBCluster",
                "rds:ModifyDBCluster",
                "rds:CreateDBClusterSnapshot",
                "rds:AddTagsToResource",
            ],
            On::Arns(&[
                "arn:${partition}:rds:${region}:${account}:cluster:${env}-db",
                "arn:${partition}:rds:${region}:${account}:cluster-snapshot:${env}-db-final-*",
            ]),
        )],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;
    const PUBLISHES: &'static [Attr] = &[
        Attr::Id,
        Attr::Arn,
        Attr::SecretArn,
        Attr::Endpoint,
        Attr::Port,
    ];

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<DbCluster>, Failure> {
        let found = describe(cx, &cluster_name(cx.env_full())).await?;
        Ok(found.filter(|c| c.status() != Some("deleting")))
    }

    /// A cluster a killed `down` (or anyone) asked to delete holds its subnet group, key and
    /// name until gone: `down` waits it out, and so does a create its name refused.
    async fn wait_leaving(&self, cx: &NodeCx<'_>) -> Result<Leaving, Failure> {
        wait_deleting(cx, &cluster_name(cx.env_full())).await
    }

    fn planned_attrs(&self, cx: &NodeCx<'_>) -> Option<Attrs> {
        let name = cluster_name(cx.env_full());
        Some(Attrs::id(&name).with_arn(cx.arn("rds", &format!("cluster:{name}"))))
    }

    fn attrs(&self, _cx: &NodeCx<'_>, have: &DbCluster) -> Result<Attrs, Failure> {
        attrs_of(have)
    }

    fn is_ready(&self, have: &DbCluster) -> bool {
        have.status() == Some("available")
    }

    /// `modifying`, `backing-up` and the rest are an existing cluster at work.
    fn is_creating(&self, have: &DbCluster) -> bool {
        have.status() == Some("creating")
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &DbCluster,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        let key_arn = inputs.arn(&self.key)?;
        c.immutable(Field::Engine, ENGINE, have.engine().unwrap_or(""));
        c.immutable(
            Field::StorageEncrypted,
            true,
            have.storage_encrypted().unwrap_or(false),
        );
        c.key(Field::KmsKeyId, key_arn, have.kms_key_id(), true);
        c.immutable(
            Field::DbSubnetGroup,
            inputs.id(&self.subnet_group)?,
            have.db_subnet_group().unwrap_or(""),
        );
        // A version change already asked for shows as pending until the cluster has it.
        let version = have
            .pending_modified_values()
            .and_then(|p| p.engine_version())
            .or(have.engine_version())
            .ok_or_else(|| Failure::missing("cluster engine version"))?;
        if is_minor_upgrade(&self.engine_version, version) {
            c.owned_by_aws(
                Field::EngineVersion,
                self.engine_version.as_str(),
                version,
                MINOR_UPGRADES_ARE_AWS,
            );
        } else {
            c.field(Field::EngineVersion, self.engine_version.as_str(), version);
        }
        c.field(
            Field::BackupRetentionPeriod,
            Some(self.backup_retention_days),
            have.backup_retention_period(),
        );
        c.field(
            Field::PreferredBackupWindow,
            BACKUP_WINDOW,
            have.preferred_backup_window().unwrap_or(""),
        );
        c.field(
            Field::PreferredMaintenanceWindow,
            MAINTENANCE_WINDOW,
            have.preferred_maintenance_window().unwrap_or(""),
        );
        c.field(
            Field::DeletionProtection,
            self.deletion_protection,
            have.deletion_protection().unwrap_or(false),
        );
        c.field(
            Field::CopyTagsToSnapshot,
            true,
            have.copy_tags_to_snapshot().unwrap_or(false),
        );
        c.field(
            Field::EnabledCloudwatchLogsExports,
            true,
            have.enabled_cloudwatch_logs_exports()
                .iter()
                .any(|l| l == "postgresql"),
        );
        let sgs: Vec<&str> = have
            .vpc_security_groups()
            .iter()
            .filter_map(|g| g.vpc_security_group_id())
            .collect();
        c.field(
            Field::VpcSecurityGroups,
            vec![inputs.id(&self.security_group)?],
            sgs,
        );
        let secret_key = have.master_user_secret().and_then(|s| s.kms_key_id());
        c.key(Field::MasterUserSecretKmsKey, key_arn, secret_key, false);
        c.tags(cx.tags(), &tags::from_rds(have.tag_list()));
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let key_arn = inputs.arn(&self.key)?;
        let subnet_group = inputs.id(&self.subnet_group)?;
        let sg = inputs.id(&self.security_group)?;
        let name = cluster_name(cx.env_full());
        let rds = &cx.aws().rds;
        // A cluster of this name being deleted keeps the name for minutes: AWS refuses this
        // call as already there, and the adapter waits it out (`wait_leaving`).
        let out = retry::on(&[&NEW_KEY_NOT_VISIBLE], || async {
            rds.create_db_cluster()
                .db_cluster_identifier(&name)
                .engine(ENGINE)
                .engine_version(&self.engine_version)
                .database_name(&self.database_name)
                .master_username(&self.master_username)
                .manage_master_user_password(true)
                .master_user_secret_kms_key_id(key_arn)
                .storage_encrypted(true)
                .kms_key_id(key_arn)
                .db_subnet_group_name(subnet_group)
                .vpc_security_group_ids(sg)
                .backup_retention_period(self.backup_retention_days)
                .preferred_backup_window(BACKUP_WINDOW)
                .preferred_maintenance_window(MAINTENANCE_WINDOW)
                .deletion_protection(self.deletion_protection)
                .enable_cloudwatch_logs_exports("postgresql")
                .copy_tags_to_snapshot(true)
                .set_tags(Some(tags::rds(cx.tags())))
                .send()
                .await
                .map_err(Failure::from)
        })
        .await?;
        attrs_of(
            out.db_cluster()
                .ok_or_else(|| Failure::missing("cluster"))?,
        )
    }

    /// The cluster alone is ready in about a minute; its instances, which need only its
    /// identifier, are already being created meanwhile.
    async fn wait_ready(&self, cx: &NodeCx<'_>, attrs: Attrs) -> Result<Attrs, Failure> {
        // The last description, for the attributes once available (endpoints included).
        let last = cx
            .wait_keeping(
                &format!("Aurora cluster {} to be available", attrs.id),
                AURORA_CLUSTER_AVAILABLE,
                || async {
                    let c = describe(cx, &attrs.id).await?;
                    Ok((rds_ready(c.as_ref().and_then(|c| c.status())), c))
                },
            )
            .await?;
        match last {
            Some(c) => attrs_of(&c),
            None => Ok(attrs),
        }
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &DbCluster,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        let rds = &cx.aws().rds;
        let mut call = rds
            .modify_db_cluster()
            .db_cluster_identifier(cluster_name(cx.env_full()))
            .apply_immediately(true);
        let mut modify = false;
        if has(changes, Field::EngineVersion) {
            call = call
                .engine_version(&self.engine_version)
                .allow_major_version_upgrade(true);
            modify = true;
        }
        if has(changes, Field::BackupRetentionPeriod) || has(changes, Field::PreferredBackupWindow)
        {
            call = call
                .backup_retention_period(self.backup_retention_days)
                .preferred_backup_window(BACKUP_WINDOW);
            modify = true;
        }
        if has(changes, Field::PreferredMaintenanceWindow) {
            call = call.preferred_maintenance_window(MAINTENANCE_WINDOW);
            modify = true;
        }
        if has(changes, Field::DeletionProtection) {
            call = call.deletion_protection(self.deletion_protection);
            modify = true;
        }
        if has(changes, Field::CopyTagsToSnapshot) {
            call = call.copy_tags_to_snapshot(true);
            modify = true;
        }
        if has(changes, Field::EnabledCloudwatchLogsExports) {
            call = call.cloudwatch_logs_export_configuration(
                CloudwatchLogsExportConfiguration::builder()
                    .enable_log_types("postgresql")
                    .build(),
            );
            modify = true;
        }
        if has(changes, Field::VpcSecurityGroups) {
            call = call.vpc_security_group_ids(inputs.id(&self.security_group)?);
            modify = true;
        }
        if has(changes, Field::MasterUserSecretKmsKey) {
            call = call
                .manage_master_user_password(true)
                .master_user_secret_kms_key_id(inputs.arn(&self.key)?);
            modify = true;
        }
        let mut attrs = attrs_of(have)?;
        if modify {
            let out = retry::on(&[&DB_CLUSTER_BUSY], || async {
                call.clone().send().await.map_err(Failure::from)
            })
            .await?;
            if let Some(c) = out.db_cluster() {
                attrs = attrs_of(c)?;
            }
        }
        if let (true, Some(arn)) = (tags_changed(changes), have.db_cluster_arn()) {
            tags::retag_rds(rds, arn, cx.tags()).await?;
        }
        Ok(attrs)
    }

    fn protection(&self, _cx: &NodeCx<'_>, have: &DbCluster) -> Option<String> {
        have.deletion_protection().unwrap_or(false).then(|| {
            format!(
                "Aurora cluster {} has deletion protection",
                have.db_cluster_identifier().unwrap_or("?")
            )
        })
    }

    /// Turns off deletion protection when asked (`--disable-protection`), then deletes with a
    /// final snapshot (none with `--destroy-data`) and waits until the cluster is gone.
    async fn delete(&self, cx: &NodeCx<'_>, have: &DbCluster) -> Result<(), Failure> {
        let rds = &cx.aws().rds;
        let name = cluster_name(cx.env_full());
        let flags = cx.cx.flags;
        if have.deletion_protection().unwrap_or(false) {
            if !flags.disable_protection {
                return Err(Failure::new(
                    "DeletionProtection",
                    format!("Aurora cluster {name} has deletion protection; rerun `down` with --disable-protection to remove it"),
                ));
            }
            // A cluster still `modifying` (a repair moments ago) refuses another change.
            retry::on(&[&DB_CLUSTER_BUSY], || async {
                rds.modify_db_cluster()
                    .db_cluster_identifier(&name)
                    .deletion_protection(false)
                    .apply_immediately(true)
                    .send()
                    .await
                    .map_err(Failure::from)
            })
            .await?;
        }
        let snapshot = (!flags.destroy_data).then(|| {
            let stamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            format!("{name}-final-{stamp}")
        });
        // Instances being deleted keep the cluster busy for a while.
        retry::on(&[&DB_CLUSTER_BUSY], || async {
            let call = rds.delete_db_cluster().db_cluster_identifier(&name);
            let call = match &snapshot {
                Some(s) => call.final_db_snapshot_identifier(s),
                None => call.skip_final_snapshot(true),
            };
            call.send().await.or_absent().map(|_| ())
        })
        .await?;
        cx.wait_gone(
            &format!("Aurora cluster {name}"),
            AURORA_CLUSTER_DELETED,
            || async {
                Ok(describe(cx, &name)
                    .await?
                    .map(|c| c.status().unwrap_or("deleting").to_string()))
            },
        )
        .await?;
        match snapshot {
            Some(s) => cx.note(format!(
                "Aurora cluster {name} deleted; its data is kept in the final snapshot `{s}` (encrypted with {}; restore with `aws rds restore-db-cluster-from-snapshot --snapshot-identifier {s}`)",
                cx.scope().kms_alias()
            )),
            None => cx.note(format!(
                "Aurora cluster {name} deleted without a final snapshot (--destroy-data)"
            )),
        }
        Ok(())
    }

    fn outputs(&self, attrs: &Attrs) -> Vec<Output> {
        vec![
            output("db_writer_endpoint", &attrs.endpoint),
            output("db_reader_endpoint", &attrs.reader_endpoint),
            output("db_port", attrs.port),
            output("db_secret_arn", &attrs.secret_arn),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_table() {
        assert_eq!(rds_ready(Some("available")), Poll::Ready);
        assert_eq!(
            rds_ready(Some("creating")),
            Poll::Pending("creating".into())
        );
        assert_eq!(
            rds_ready(Some("backing-up")),
            Poll::Pending("backing-up".into())
        );
        assert!(matches!(
            rds_ready(Some("inaccessible-encryption-credentials")),
            Poll::Failed(_)
        ));
    }

    #[test]
    fn only_newer_minors_of_the_same_major_belong_to_aws() {
        assert!(is_minor_upgrade("16.6", "16.8"));
        assert!(!is_minor_upgrade("16.6", "16.6"));
        assert!(!is_minor_upgrade("16.6", "16.4"), "older: a change");
        assert!(!is_minor_upgrade("16.6", "17.1"), "another major: a change");
        assert!(!is_minor_upgrade("16.6", "garbage"));
    }
}
