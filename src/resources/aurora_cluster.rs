//! The Aurora PostgreSQL cluster: CMK-encrypted storage, RDS-managed master secret under the
//! CMK (the password never passes through this tool), backups 30 d 03:00-04:00, maintenance
//! sun:04:00-05:00, postgresql logs exported, tags copied to snapshots, deletion protection
//! from config. `down` takes a final snapshot unless `--destroy-data`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_rds::types::{CloudwatchLogsExportConfiguration, DbCluster};

use super::{Ids, NodeCx, Resource};
use crate::aws::errors::OrAbsent;
use crate::aws::retry;
use crate::aws::tags::{from_rds, rds_tags};
use crate::aws::wait::{self, Poll};
use crate::diff::{Change, Changes};
use crate::error::Failure;

pub const ENGINE: &str = "aurora-postgresql";
pub const BACKUP_WINDOW: &str = "03:00-04:00";
pub const MAINTENANCE_WINDOW: &str = "sun:04:00-sun:05:00";

pub struct AuroraCluster {
    pub subnet_group: String,
    pub security_group: String,
    pub key: String,
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

/// True when `have` names the key `want_arn` (RDS may answer with the ARN or the key id).
fn same_key(want_arn: &str, have: Option<&str>) -> bool {
    have.is_some_and(|h| h == want_arn || want_arn.ends_with(&format!("/{h}")))
}

async fn describe(cx: &NodeCx<'_>, name: &str) -> Result<Option<DbCluster>, Failure> {
    let out = cx
        .cx
        .clients
        .rds
        .describe_db_clusters()
        .db_cluster_identifier(name)
        .send()
        .await
        .or_absent()?;
    Ok(out.and_then(|o| o.db_clusters().first().cloned()))
}

impl AuroraCluster {
    fn name(cx: &NodeCx<'_>) -> String {
        cluster_name(&cx.env_full())
    }
}

#[async_trait]
impl Resource for AuroraCluster {
    type Observed = DbCluster;
    const KIND: &'static str = "aurora_cluster";
    const PROTECTABLE: bool = true;

    async fn find(&self, cx: &NodeCx<'_>) -> Result<Option<DbCluster>, Failure> {
        let found = describe(cx, &Self::name(cx)).await?;
        Ok(found.filter(|c| c.status() != Some("deleting")))
    }

    fn ids(&self, _cx: &NodeCx<'_>, have: &DbCluster) -> Result<Ids, Failure> {
        Ok(Ids {
            id: have
                .db_cluster_identifier()
                .ok_or_else(|| Failure::missing("cluster identifier"))?
                .to_string(),
            arn: have.db_cluster_arn().map(String::from),
        })
    }

    fn is_ready(&self, have: &DbCluster) -> bool {
        have.status() == Some("available")
    }

    fn diff(&self, cx: &NodeCx<'_>, have: &DbCluster) -> Result<Vec<Change>, Failure> {
        let db = &cx.env().database;
        let key = cx.ids_of(&self.key)?;
        let key_arn = key.arn(&self.key)?;
        let sg = cx.ids_of(&self.security_group)?;
        let mut c = Changes::default();
        c.immutable("engine", ENGINE, have.engine().unwrap_or(""));
        c.immutable(
            "storage_encrypted",
            true,
            have.storage_encrypted().unwrap_or(false),
        );
        c.immutable("kms_key_id", true, same_key(key_arn, have.kms_key_id()));
        c.immutable(
            "db_subnet_group",
            cx.ids_of(&self.subnet_group)?.id.as_str(),
            have.db_subnet_group().unwrap_or(""),
        );
        c.field(
            "engine_version",
            db.engine_version.as_str(),
            have.engine_version().unwrap_or(""),
        );
        c.field(
            "backup_retention_period",
            Some(db.backup_retention_days),
            have.backup_retention_period(),
        );
        c.field(
            "preferred_backup_window",
            BACKUP_WINDOW,
            have.preferred_backup_window().unwrap_or(""),
        );
        c.field(
            "preferred_maintenance_window",
            MAINTENANCE_WINDOW,
            have.preferred_maintenance_window().unwrap_or(""),
        );
        c.field(
            "deletion_protection",
            db.deletion_protection,
            have.deletion_protection().unwrap_or(false),
        );
        c.field(
            "copy_tags_to_snapshot",
            true,
            have.copy_tags_to_snapshot().unwrap_or(false),
        );
        c.field(
            "enabled_cloudwatch_logs_exports",
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
        c.field("vpc_security_groups", vec![sg.id.as_str()], sgs);
        let secret_key = have.master_user_secret().and_then(|s| s.kms_key_id());
        c.field(
            "master_user_secret_managed_with_cmk",
            true,
            same_key(key_arn, secret_key),
        );
        c.tags(&cx.tags(), &from_rds(have.tag_list()));
        Ok(c.into_vec())
    }

    async fn create(&self, cx: &NodeCx<'_>) -> Result<Ids, Failure> {
        let db = &cx.env().database;
        let key = cx.ids_of(&self.key)?;
        let key_arn = key.arn(&self.key)?.to_string();
        let subnet_group = cx.ids_of(&self.subnet_group)?.id;
        let sg = cx.ids_of(&self.security_group)?.id;
        let name = Self::name(cx);
        let rds = &cx.cx.clients.rds;
        // PLATFORM.md: a new KMS key may not be usable by RDS yet: retry
        // KMSKeyNotAccessibleFault for 2 minutes.
        let out = retry::eventually(
            Duration::from_secs(120),
            |f| f.code == "KMSKeyNotAccessibleFault",
            || async {
                rds.create_db_cluster()
                    .db_cluster_identifier(&name)
                    .engine(ENGINE)
                    .engine_version(&db.engine_version)
                    .database_name(&db.database_name)
                    .master_username(&db.master_username)
                    .manage_master_user_password(true)
                    .master_user_secret_kms_key_id(&key_arn)
                    .storage_encrypted(true)
                    .kms_key_id(&key_arn)
                    .db_subnet_group_name(&subnet_group)
                    .vpc_security_group_ids(&sg)
                    .backup_retention_period(db.backup_retention_days)
                    .preferred_backup_window(BACKUP_WINDOW)
                    .preferred_maintenance_window(MAINTENANCE_WINDOW)
                    .deletion_protection(db.deletion_protection)
                    .enable_cloudwatch_logs_exports("postgresql")
                    .copy_tags_to_snapshot(true)
                    .set_tags(Some(rds_tags(&cx.tags())))
                    .send()
                    .await
                    .map_err(Failure::from)
            },
        )
        .await?;
        let cluster = out
            .db_cluster()
            .ok_or_else(|| Failure::missing("cluster"))?;
        Ok(Ids {
            id: name,
            arn: cluster.db_cluster_arn().map(String::from),
        })
    }

    /// The cluster alone is ready in about a minute; its instances, which need only its
    /// identifier, are already being created meanwhile.
    async fn wait_ready(&self, cx: &NodeCx<'_>, ids: &Ids) -> Result<(), Failure> {
        wait::until(
            &format!("Aurora cluster {}", ids.id),
            cx.env().wait_timeout,
            Duration::from_secs(2),
            |state, waited| {
                cx.progress(format!(
                    "waiting for available ({state}, {}s)",
                    waited.as_secs()
                ))
            },
            || async {
                Ok(rds_ready(
                    describe(cx, &ids.id)
                        .await?
                        .as_ref()
                        .and_then(|c| c.status()),
                ))
            },
        )
        .await
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        have: &DbCluster,
        changes: &[Change],
    ) -> Result<(), Failure> {
        let db = &cx.env().database;
        let rds = &cx.cx.clients.rds;
        let has = |f: &str| changes.iter().any(|c| c.field == f);
        let mut call = rds
            .modify_db_cluster()
            .db_cluster_identifier(Self::name(cx))
            .apply_immediately(true);
        let mut modify = false;
        if has("engine_version") {
            call = call
                .engine_version(&db.engine_version)
                .allow_major_version_upgrade(true);
            modify = true;
        }
        if has("backup_retention_period") || has("preferred_backup_window") {
            call = call
                .backup_retention_period(db.backup_retention_days)
                .preferred_backup_window(BACKUP_WINDOW);
            modify = true;
        }
        if has("preferred_maintenance_window") {
            call = call.preferred_maintenance_window(MAINTENANCE_WINDOW);
            modify = true;
        }
        if has("deletion_protection") {
            call = call.deletion_protection(db.deletion_protection);
            modify = true;
        }
        if has("copy_tags_to_snapshot") {
            call = call.copy_tags_to_snapshot(true);
            modify = true;
        }
        if has("enabled_cloudwatch_logs_exports") {
            call = call.cloudwatch_logs_export_configuration(
                CloudwatchLogsExportConfiguration::builder()
                    .enable_log_types("postgresql")
                    .build(),
            );
            modify = true;
        }
        if has("vpc_security_groups") {
            call = call.vpc_security_group_ids(cx.ids_of(&self.security_group)?.id);
            modify = true;
        }
        if has("master_user_secret_managed_with_cmk") {
            let key = cx.ids_of(&self.key)?;
            call = call
                .manage_master_user_password(true)
                .master_user_secret_kms_key_id(key.arn(&self.key)?);
            modify = true;
        }
        if modify {
            call.send().await?;
        }
        if changes.iter().any(|c| c.field.starts_with("tags.")) {
            if let Some(arn) = have.db_cluster_arn() {
                rds.add_tags_to_resource()
                    .resource_name(arn)
                    .set_tags(Some(rds_tags(&cx.tags())))
                    .send()
                    .await?;
            }
        }
        Ok(())
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
        let rds = &cx.cx.clients.rds;
        let name = Self::name(cx);
        if have.deletion_protection().unwrap_or(false) {
            if !cx.cx.flags.disable_protection {
                return Err(Failure::new(
                    "DeletionProtection",
                    format!("Aurora cluster {name} has deletion protection; rerun `down` with --disable-protection to remove it"),
                ));
            }
            rds.modify_db_cluster()
                .db_cluster_identifier(&name)
                .deletion_protection(false)
                .apply_immediately(true)
                .send()
                .await?;
        }
        let snapshot = (!cx.cx.flags.destroy_data).then(|| {
            let stamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            format!("{name}-final-{stamp}")
        });
        // Instances being deleted keep the cluster busy for a while.
        retry::eventually(
            cx.env().wait_timeout,
            |f| {
                f.code == "InvalidDBClusterStateFault"
                    || f.code == "InvalidDBClusterStateFaultException"
            },
            || async {
                let call = rds.delete_db_cluster().db_cluster_identifier(&name);
                let call = match &snapshot {
                    Some(s) => call.final_db_snapshot_identifier(s),
                    None => call.skip_final_snapshot(true),
                };
                call.send().await.or_absent().map(|_| ())
            },
        )
        .await?;
        wait::until(
            &format!("Aurora cluster {name} to be deleted"),
            cx.env().wait_timeout,
            Duration::from_secs(2),
            |state, waited| {
                cx.progress(format!(
                    "waiting for deletion ({state}, {}s)",
                    waited.as_secs()
                ))
            },
            || async {
                Ok(match describe(cx, &name).await? {
                    None => Poll::Ready,
                    Some(c) => Poll::Pending(c.status().unwrap_or("deleting").to_string()),
                })
            },
        )
        .await?;
        match snapshot {
            Some(s) => cx.cx.reporter.note(&format!(
                "Aurora cluster {name} deleted; its data is kept in the final snapshot `{s}` (encrypted with {}; restore with `aws rds restore-db-cluster-from-snapshot --snapshot-identifier {s}`)",
                cx.env().kms_alias()
            )),
            None => cx.cx.reporter.note(&format!("Aurora cluster {name} deleted without a final snapshot (--destroy-data)")),
        }
        Ok(())
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
    fn key_ids_compare_with_arns() {
        let arn = "arn:aws:kms:eu-west-1:123456789012:key/abcd";
        assert!(same_key(arn, Some(arn)));
        assert!(same_key(arn, Some("abcd")));
        assert!(!same_key(arn, Some("other")));
        assert!(!same_key(arn, None));
    }
}

/// What `status` and `up`'s outputs show of the database. Holds the secret's ARN, never
/// its value (this tool never reads the secret).
#[derive(Debug, Clone, serde::Serialize)]
pub struct DatabaseStatus {
    pub cluster: String,
    pub status: String,
    pub writer_endpoint: Option<String>,
    pub reader_endpoint: Option<String>,
    pub port: Option<i32>,
    pub secret_arn: Option<String>,
    pub engine_version: Option<String>,
    pub deletion_protection: bool,
    pub instances: Vec<InstanceStatus>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct InstanceStatus {
    pub id: String,
    pub role: &'static str,
    pub status: String,
    pub zone: Option<String>,
    pub class: Option<String>,
}

/// Describes the environment's cluster and its instances (two reads); `None` when absent.
pub async fn database_status(
    rds: &aws_sdk_rds::Client,
    env_full: &str,
) -> Result<Option<DatabaseStatus>, Failure> {
    let name = cluster_name(env_full);
    let Some(out) = rds
        .describe_db_clusters()
        .db_cluster_identifier(&name)
        .send()
        .await
        .or_absent()?
    else {
        return Ok(None);
    };
    let Some(c) = out.db_clusters().first() else {
        return Ok(None);
    };
    let instances = rds
        .describe_db_instances()
        .filters(
            aws_sdk_rds::types::Filter::builder()
                .name("db-cluster-id")
                .values(&name)
                .build(),
        )
        .send()
        .await?;
    let writer = |id: &str| {
        c.db_cluster_members().iter().any(|m| {
            m.db_instance_identifier() == Some(id) && m.is_cluster_writer().unwrap_or(false)
        })
    };
    let mut members: Vec<InstanceStatus> = instances
        .db_instances()
        .iter()
        .map(|i| {
            let id = i.db_instance_identifier().unwrap_or("").to_string();
            InstanceStatus {
                role: if writer(&id) { "writer" } else { "reader" },
                status: i.db_instance_status().unwrap_or("unknown").to_string(),
                zone: i.availability_zone().map(String::from),
                class: i.db_instance_class().map(String::from),
                id,
            }
        })
        .collect();
    members.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Some(DatabaseStatus {
        cluster: name,
        status: c.status().unwrap_or("unknown").to_string(),
        writer_endpoint: c.endpoint().map(String::from),
        reader_endpoint: c.reader_endpoint().map(String::from),
        port: c.port(),
        secret_arn: c
            .master_user_secret()
            .and_then(|s| s.secret_arn())
            .map(String::from),
        engine_version: c.engine_version().map(String::from),
        deletion_protection: c.deletion_protection().unwrap_or(false),
        instances: members,
    }))
}
