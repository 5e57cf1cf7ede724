//! Aurora instances: the writer and the readers, in different zones, with Performance
//! Insights under the CMK and enhanced monitoring every 60 s.
//!
//! PLATFORM.md: CreateDBInstance is accepted once CreateDBCluster has returned (identifiers
//! only), but parallel calls on one cluster fail `InvalidDBClusterStateFault`: the graph
//! chains each instance on the previous one's identifiers (about a second each), and that
//! fault is retried with backoff, never reported.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_rds::types::{DbInstance, Filter};

use super::aurora_cluster::{cluster_name, rds_ready, ENGINE};
use super::{Ids, NodeCx, Resource};
use crate::aws::errors::OrAbsent;
use crate::aws::retry;
use crate::aws::tags::{from_rds, rds_tags};
use crate::aws::wait::{self, Poll};
use crate::diff::{Change, Changes};
use crate::error::Failure;

pub struct AuroraInstance {
    /// 1 is the writer (created first), 2.. the readers.
    pub number: usize,
    pub zone: String,
    pub cluster: String,
    pub key: String,
    pub monitoring_role: String,
}

const MONITORING_INTERVAL: i32 = 60;

/// The instance identifier: `<project>-<env>-db-<n>`.
pub fn instance_name(env_full: &str, number: usize) -> String {
    format!("{}-{number}", cluster_name(env_full))
}

/// Every instance of the environment's cluster, read once per run for all instance nodes.
async fn cluster_instances<'a>(cx: &'a NodeCx<'_>) -> Result<&'a [DbInstance], Failure> {
    cx.cx
        .db_instances
        .get_or_try_init(|| async {
            cx.cx
                .clients
                .rds
                .describe_db_instances()
                .filters(
                    Filter::builder()
                        .name("db-cluster-id")
                        .values(cluster_name(&cx.env_full()))
                        .build(),
                )
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .map_err(|e| Failure::from(e).context("DescribeDBInstances"))
        })
        .await
        .map(Vec::as_slice)
}

async fn describe(cx: &NodeCx<'_>, name: &str) -> Result<Option<DbInstance>, Failure> {
    let out = cx
        .cx
        .clients
        .rds
        .describe_db_instances()
        .db_instance_identifier(name)
        .send()
        .await
        .or_absent()?;
    Ok(out.and_then(|o| o.db_instances().first().cloned()))
}

impl AuroraInstance {
    fn name(&self, cx: &NodeCx<'_>) -> String {
        instance_name(&cx.env_full(), self.number)
    }
}

#[async_trait]
impl Resource for AuroraInstance {
    type Observed = DbInstance;
    const KIND: &'static str = "aurora_instance";

    async fn find(&self, cx: &NodeCx<'_>) -> Result<Option<DbInstance>, Failure> {
        let name = self.name(cx);
        Ok(cluster_instances(cx)
            .await?
            .iter()
            .find(|i| {
                i.db_instance_identifier() == Some(name.as_str())
                    && i.db_instance_status() != Some("deleting")
            })
            .cloned())
    }

    fn ids(&self, _cx: &NodeCx<'_>, have: &DbInstance) -> Result<Ids, Failure> {
        Ok(Ids {
            id: have
                .db_instance_identifier()
                .ok_or_else(|| Failure::missing("instance identifier"))?
                .to_string(),
            arn: have.db_instance_arn().map(String::from),
        })
    }

    fn is_ready(&self, have: &DbInstance) -> bool {
        have.db_instance_status() == Some("available")
    }

    fn diff(&self, cx: &NodeCx<'_>, have: &DbInstance) -> Result<Vec<Change>, Failure> {
        let db = &cx.env().database;
        let key = cx.ids_of(&self.key)?;
        let key_arn = key.arn(&self.key)?;
        let role = cx.ids_of(&self.monitoring_role)?;
        let mut c = Changes::default();
        c.immutable(
            "db_cluster_identifier",
            cx.ids_of(&self.cluster)?.id.as_str(),
            have.db_cluster_identifier().unwrap_or(""),
        );
        c.immutable(
            "availability_zone",
            self.zone.as_str(),
            have.availability_zone().unwrap_or(""),
        );
        c.field(
            "db_instance_class",
            db.instance_class.as_str(),
            have.db_instance_class().unwrap_or(""),
        );
        c.field(
            "performance_insights_enabled",
            true,
            have.performance_insights_enabled().unwrap_or(false),
        );
        let pi_key = have.performance_insights_kms_key_id();
        c.field(
            "performance_insights_kms_key",
            true,
            pi_key.is_some_and(|k| k == key_arn || key_arn.ends_with(&format!("/{k}"))),
        );
        c.field(
            "monitoring_interval",
            Some(MONITORING_INTERVAL),
            have.monitoring_interval(),
        );
        c.field(
            "monitoring_role_arn",
            role.arn(&self.monitoring_role)?,
            have.monitoring_role_arn().unwrap_or("(none)"),
        );
        c.field(
            "publicly_accessible",
            false,
            have.publicly_accessible().unwrap_or(false),
        );
        c.tags(&cx.tags(), &from_rds(have.tag_list()));
        Ok(c.into_vec())
    }

    async fn create(&self, cx: &NodeCx<'_>) -> Result<Ids, Failure> {
        let db = &cx.env().database;
        let key = cx.ids_of(&self.key)?;
        let key_arn = key.arn(&self.key)?.to_string();
        let role = cx.ids_of(&self.monitoring_role)?;
        let role_arn = role.arn(&self.monitoring_role)?.to_string();
        let cluster = cx.ids_of(&self.cluster)?.id;
        let name = self.name(cx);
        let rds = &cx.cx.clients.rds;
        let out = retry::eventually(
            Duration::from_secs(120),
            |f| {
                // Another instance call on the same cluster is in flight (tpa #50115).
                f.code == "InvalidDBClusterStateFault"
                    // PLATFORM.md: a new monitoring role is not visible to RDS at once.
                    || (f.code == "InvalidParameterValue" && f.message.contains("IAM role ARN value is invalid"))
                    || f.code == "KMSKeyNotAccessibleFault"
            },
            || async {
                rds.create_db_instance()
                    .db_instance_identifier(&name)
                    .db_cluster_identifier(&cluster)
                    .engine(ENGINE)
                    .db_instance_class(&db.instance_class)
                    .availability_zone(&self.zone)
                    .publicly_accessible(false)
                    .enable_performance_insights(true)
                    .performance_insights_kms_key_id(&key_arn)
                    .performance_insights_retention_period(7)
                    .monitoring_interval(MONITORING_INTERVAL)
                    .monitoring_role_arn(&role_arn)
                    .promotion_tier(if self.number == 1 { 0 } else { 1 })
                    .copy_tags_to_snapshot(true)
                    .set_tags(Some(rds_tags(&cx.tags())))
                    .send()
                    .await
                    .map_err(Failure::from)
            },
        )
        .await?;
        let instance = out
            .db_instance()
            .ok_or_else(|| Failure::missing("instance"))?;
        Ok(Ids {
            id: name,
            arn: instance.db_instance_arn().map(String::from),
        })
    }

    /// The longest wait of an `up`: 6-10 minutes on AWS. Nothing waits on it but the run.
    async fn wait_ready(&self, cx: &NodeCx<'_>, ids: &Ids) -> Result<(), Failure> {
        wait::until(
            &format!("Aurora instance {}", ids.id),
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
                        .and_then(|i| i.db_instance_status()),
                ))
            },
        )
        .await
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        have: &DbInstance,
        changes: &[Change],
    ) -> Result<(), Failure> {
        let db = &cx.env().database;
        let rds = &cx.cx.clients.rds;
        let key = cx.ids_of(&self.key)?;
        let role = cx.ids_of(&self.monitoring_role)?;
        let has = |f: &str| changes.iter().any(|c| c.field == f);
        if changes.iter().any(|c| !c.field.starts_with("tags.")) {
            let mut call = rds
                .modify_db_instance()
                .db_instance_identifier(self.name(cx))
                .apply_immediately(true);
            if has("db_instance_class") {
                call = call.db_instance_class(&db.instance_class);
            }
            if has("performance_insights_enabled") || has("performance_insights_kms_key") {
                call = call
                    .enable_performance_insights(true)
                    .performance_insights_kms_key_id(key.arn(&self.key)?);
            }
            if has("monitoring_interval") || has("monitoring_role_arn") {
                call = call
                    .monitoring_interval(MONITORING_INTERVAL)
                    .monitoring_role_arn(role.arn(&self.monitoring_role)?);
            }
            if has("publicly_accessible") {
                call = call.publicly_accessible(false);
            }
            call.send().await?;
        }
        if changes.iter().any(|c| c.field.starts_with("tags.")) {
            if let Some(arn) = have.db_instance_arn() {
                rds.add_tags_to_resource()
                    .resource_name(arn)
                    .set_tags(Some(rds_tags(&cx.tags())))
                    .send()
                    .await?;
            }
        }
        Ok(())
    }

    async fn delete(&self, cx: &NodeCx<'_>, _have: &DbInstance) -> Result<(), Failure> {
        let rds = &cx.cx.clients.rds;
        let name = self.name(cx);
        retry::eventually(
            cx.env().wait_timeout,
            |f| f.code == "InvalidDBClusterStateFault" || f.code == "InvalidDBInstanceState",
            || async {
                rds.delete_db_instance()
                    .db_instance_identifier(&name)
                    .send()
                    .await
                    .or_absent()
                    .map(|_| ())
            },
        )
        .await?;
        wait::until(
            &format!("Aurora instance {name} to be deleted"),
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
                    Some(i) => {
                        Poll::Pending(i.db_instance_status().unwrap_or("deleting").to_string())
                    }
                })
            },
        )
        .await
    }
}
