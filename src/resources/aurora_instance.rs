//! Aurora instances: the writer and the readers, in different zones, with Performance
//! Insights under the CMK and enhanced monitoring every 60 s.
//!
//! PLATFORM.md: CreateDBInstance is accepted once CreateDBCluster has returned (identifiers
//! only), but parallel calls on one cluster fail `InvalidDBClusterStateFault`: the graph
//! chains each instance on the previous one's identifiers (`after`, about a second each),
//! and that fault is retried with backoff, never reported.

use crate::aws::wait::expected::{AURORA_INSTANCE_AVAILABLE, AURORA_INSTANCE_DELETED};

use async_trait::async_trait;
use aws_sdk_rds::types::{DbInstance, Filter};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use super::aurora_cluster::{cluster_name, rds_ready, ENGINE};
use super::{Leaving, NodeCx, Resource};
use crate::aws::errors::OrAbsent;
use crate::aws::retry::{
    self, DB_CLUSTER_BUSY, DB_INSTANCE_BUSY, NEW_KEY_NOT_VISIBLE, NEW_ROLE_RDS,
};
use crate::aws::tags;
use crate::diff::{beyond_tags, fields, has, tags_changed, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, Ref};
use crate::policy::{grant, Grants, On};
use crate::resources::template::Attr;

fields! {
    /// The fields an aurora instance is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        DbClusterIdentifier = "db_cluster_identifier",
        AvailabilityZone = "availability_zone",
        DbInstanceClass = "db_instance_class",
        PerformanceInsightsEnabled = "performance_insights_enabled",
        PerformanceInsightsKmsKey = "performance_insights_kms_key",
        MonitoringInterval = "monitoring_interval",
        MonitoringRoleArn = "monitoring_role_arn",
        PubliclyAccessible = "publicly_accessible",
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AuroraInstance {
    /// 1 is the writer (created first), 2.. the readers.
    pub number: usize,
    pub zone: String,
    pub instance_class: String,
    pub cluster: Ref,
    pub key: Ref,
    pub monitoring_role: Ref,
    /// Ordering only: the previous instance's create call has returned.
    pub after: Option<Ref>,
}

const MONITORING_INTERVAL: i32 = 60;

/// The instance identifier: `<project>-<env>-db-<n>`.
pub fn instance_name(env_full: &str, number: usize) -> String {
    format!("{}-{number}", cluster_name(env_full))
}

/// Every instance of the environment's cluster, read once per run for all instance nodes.
#[derive(Default)]
struct ClusterInstances(OnceCell<Vec<DbInstance>>);

async fn cluster_instances(cx: &NodeCx<'_>) -> Result<Vec<DbInstance>, Failure> {
    let cache = cx.shared::<ClusterInstances>();
    let all = cache
        .0
        .get_or_try_init(|| async {
            cx.aws()
                .rds
                .describe_db_instances()
                .filters(
                    Filter::builder()
                        .name("db-cluster-id")
                        .values(cluster_name(cx.env_full()))
                        .build(),
                )
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .or_absent()
                .map(Option::unwrap_or_default)
        })
        .await?;
    Ok(all.clone())
}

async fn describe(cx: &NodeCx<'_>, name: &str) -> Result<Option<DbInstance>, Failure> {
    let out = cx
        .aws()
        .rds
        .describe_db_instances()
        .db_instance_identifier(name)
        .send()
        .await
        .or_absent()?;
    Ok(out.and_then(|o| o.db_instances().first().cloned()))
}

fn attrs_of(i: &DbInstance) -> Result<Attrs, Failure> {
    let mut a = Attrs::id(
        i.db_instance_identifier()
            .ok_or_else(|| Failure::missing("instance identifier"))?,
    );
    a.arn = i.db_instance_arn().map(String::from);
    a.endpoint = i.endpoint().and_then(|e| e.address()).map(String::from);
    a.state = i.db_instance_status().map(String::from);
    Ok(a)
}

impl AuroraInstance {
    fn name(&self, cx: &NodeCx<'_>) -> String {
        instance_name(cx.env_full(), self.number)
    }
}

/// Waits until the instance `name` being deleted is gone. Its name is unique in the account
/// and region: none of that name is [`Leaving::NameFree`].
async fn wait_deleting(cx: &NodeCx<'_>, name: &str) -> Result<Leaving, Failure> {
    match describe(cx, name).await? {
        None => return Ok(Leaving::NameFree),
        Some(i) if i.db_instance_status() != Some("deleting") => return Ok(Leaving::Nothing),
        Some(_) => {}
    }
    cx.wait_gone(
        &format!("the earlier Aurora instance {name}"),
        AURORA_INSTANCE_DELETED,
        || async {
            Ok(describe(cx, name)
                .await?
                .map(|i| i.db_instance_status().unwrap_or("deleting").to_string()))
        },
    )
    .await?;
    Ok(Leaving::Waited)
}

#[async_trait]
impl Resource for AuroraInstance {
    type Observed = DbInstance;
    const KIND: &'static str = "aurora_instance";
    const GRANTS: &'static Grants = &Grants {
        read: &[grant(
            &["rds:DescribeDBInstances"],
            On::Arns(&["arn:${partition}:rds:${region}:${account}:db:*"]),
        )],
        write: &[
            grant(
                &[
                    "rds:CreateDBInstance",
                    "rds:ModifyDBInstance",
                    "rds:AddTagsToResource",
                ],
                On::Arns(&[
                    "arn:${partition}:rds:${region}:${account}:db:${env}-db-*",
                    "arn:${partition}:rds:${region}:${account}:cluster:${env}-db",
                    "arn:${partition}:rds:${region}:${account}:pg:*",
                    "arn:${partition}:rds:${region}:${account}:og:*",
                    "arn:${partition}:rds:${region}:${account}:subgrp:${env}",
                ]),
            ),
            grant(
                &["iam:PassRole"],
                On::Arns(&["arn:${partition}:iam::${account}:role/${env}-rds-monitoring"]),
            ),
        ],
        delete: &[grant(
            &["rds:DeleteDBInstance"],
            On::Arns(&["arn:${partition}:rds:${region}:${account}:db:${env}-db-*"]),
        )],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;
    const PUBLISHES: &'static [Attr] = &[Attr::Id, Attr::Arn];

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<DbInstance>, Failure> {
        let name = self.name(cx);
        Ok(cluster_instances(cx).await?.into_iter().find(|i| {
            i.db_instance_identifier() == Some(name.as_str())
                && i.db_instance_status() != Some("deleting")
        }))
    }

    /// An instance a killed `down` (or anyone) asked to delete keeps its cluster, and its
    /// name, until gone: `down` waits it out, and so does a create its name refused.
    async fn wait_leaving(&self, cx: &NodeCx<'_>) -> Result<Leaving, Failure> {
        wait_deleting(cx, &self.name(cx)).await
    }

    fn planned_attrs(&self, cx: &NodeCx<'_>) -> Option<Attrs> {
        let name = self.name(cx);
        Some(Attrs::id(&name).with_arn(cx.arn("rds", &format!("db:{name}"))))
    }

    fn attrs(&self, _cx: &NodeCx<'_>, have: &DbInstance) -> Result<Attrs, Failure> {
        attrs_of(have)
    }

    fn is_ready(&self, have: &DbInstance) -> bool {
        have.db_instance_status() == Some("available")
    }

    /// `modifying`, `backing-up` and the rest are an existing instance at work.
    fn is_creating(&self, have: &DbInstance) -> bool {
        have.db_instance_status() == Some("creating")
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &DbInstance,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        let key_arn = inputs.arn(&self.key)?;
        c.immutable(
            Field::DbClusterIdentifier,
            inputs.id(&self.cluster)?,
            have.db_cluster_identifier().unwrap_or(""),
        );
        c.immutable(
            Field::AvailabilityZone,
            self.zone.as_str(),
            have.availability_zone().unwrap_or(""),
        );
        // A class change already asked for shows as pending until the instance has it.
        let class = have
            .pending_modified_values()
            .and_then(|p| p.db_instance_class())
            .or(have.db_instance_class())
            .ok_or_else(|| Failure::missing("instance class"))?;
        c.field(Field::DbInstanceClass, self.instance_class.as_str(), class);
        c.field(
            Field::PerformanceInsightsEnabled,
            true,
            have.performance_insights_enabled().unwrap_or(false),
        );
        c.key(
            Field::PerformanceInsightsKmsKey,
            key_arn,
            have.performance_insights_kms_key_id(),
            false,
        );
        c.field(
            Field::MonitoringInterval,
            Some(MONITORING_INTERVAL),
            have.monitoring_interval(),
        );
        c.field(
            Field::MonitoringRoleArn,
            inputs.arn(&self.monitoring_role)?,
            have.monitoring_role_arn().unwrap_or("(none)"),
        );
        c.field(
            Field::PubliclyAccessible,
            false,
            have.publicly_accessible().unwrap_or(false),
        );
        c.tags(cx.tags(), &tags::from_rds(have.tag_list()));
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let key_arn = inputs.arn(&self.key)?;
        let role_arn = inputs.arn(&self.monitoring_role)?;
        let cluster = inputs.id(&self.cluster)?;
        let name = self.name(cx);
        let rds = &cx.aws().rds;
        // An instance of this name being deleted keeps the name for minutes: AWS refuses this
        // call as already there, and the adapter waits it out (`wait_leaving`).
        let out = retry::on(
            &[&DB_CLUSTER_BUSY, &NEW_ROLE_RDS, &NEW_KEY_NOT_VISIBLE],
            || async {
                rds.create_db_instance()
                    .db_instance_identifier(&name)
                    .db_cluster_identifier(cluster)
                    .engine(ENGINE)
                    .db_instance_class(&self.instance_class)
                    .availability_zone(&self.zone)
                    .publicly_accessible(false)
                    .enable_performance_insights(true)
                    .performance_insights_kms_key_id(key_arn)
                    .performance_insights_retention_period(7)
                    .monitoring_interval(MONITORING_INTERVAL)
                    .monitoring_role_arn(role_arn)
                    .promotion_tier(if self.number == 1 { 0 } else { 1 })
                    .copy_tags_to_snapshot(true)
                    .set_tags(Some(tags::rds(cx.tags())))
                    .send()
                    .await
                    .map_err(Failure::from)
            },
        )
        .await?;
        attrs_of(
            out.db_instance()
                .ok_or_else(|| Failure::missing("instance"))?,
        )
    }

    /// The longest wait of an `up`: 6-10 minutes on AWS. Nothing waits on it but the run.
    async fn wait_ready(&self, cx: &NodeCx<'_>, mut attrs: Attrs) -> Result<Attrs, Failure> {
        cx.wait_ready(
            &format!("Aurora instance {} to be available", attrs.id),
            AURORA_INSTANCE_AVAILABLE,
            || async {
                Ok(rds_ready(
                    describe(cx, &attrs.id)
                        .await?
                        .as_ref()
                        .and_then(|i| i.db_instance_status()),
                ))
            },
        )
        .await?;
        attrs.state = Some("available".into());
        Ok(attrs)
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &DbInstance,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        let rds = &cx.aws().rds;
        if beyond_tags(changes) {
            let mut call = rds
                .modify_db_instance()
                .db_instance_identifier(self.name(cx))
                .apply_immediately(true);
            if has(changes, Field::DbInstanceClass) {
                call = call.db_instance_class(&self.instance_class);
            }
            if has(changes, Field::PerformanceInsightsEnabled)
                || has(changes, Field::PerformanceInsightsKmsKey)
            {
                call = call
                    .enable_performance_insights(true)
                    .performance_insights_kms_key_id(inputs.arn(&self.key)?);
            }
            if has(changes, Field::MonitoringInterval) || has(changes, Field::MonitoringRoleArn) {
                call = call
                    .monitoring_interval(MONITORING_INTERVAL)
                    .monitoring_role_arn(inputs.arn(&self.monitoring_role)?);
            }
            if has(changes, Field::PubliclyAccessible) {
                call = call.publicly_accessible(false);
            }
            // An instance still `modifying` (or backing up) refuses another change until done.
            retry::on(&[&DB_INSTANCE_BUSY], || async {
                call.clone().send().await.map_err(Failure::from)
            })
            .await?;
        }
        if let (true, Some(arn)) = (tags_changed(changes), have.db_instance_arn()) {
            tags::retag_rds(rds, arn, cx.tags()).await?;
        }
        attrs_of(have)
    }

    async fn delete(&self, cx: &NodeCx<'_>, _have: &DbInstance) -> Result<(), Failure> {
        let rds = &cx.aws().rds;
        let name = self.name(cx);
        retry::on(&[&DB_CLUSTER_BUSY, &DB_INSTANCE_BUSY], || async {
            rds.delete_db_instance()
                .db_instance_identifier(&name)
                .send()
                .await
                .or_absent()
                .map(|_| ())
        })
        .await?;
        cx.wait_gone(
            &format!("Aurora instance {name}"),
            AURORA_INSTANCE_DELETED,
            || async {
                Ok(describe(cx, &name)
                    .await?
                    .map(|i| i.db_instance_status().unwrap_or("deleting").to_string()))
            },
        )
        .await
    }
}
