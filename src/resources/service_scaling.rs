//! Auto scaling of one ECS service: its scalable target (min..max tasks) and two target
//! tracking policies, CPU and memory, with their cooldowns. One node, because the policies
//! live and die with the target (DeregisterScalableTarget deletes them).
//!
//! Found by the service's resource id; the environment's targets and policies are each read
//! once per run for every service.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_applicationautoscaling::types::{
    MetricType, PolicyType, PredefinedMetricSpecification, ScalableDimension, ScalableTarget,
    ScalingPolicy, ServiceNamespace, TargetTrackingScalingPolicyConfiguration,
};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use super::ecs_cluster::cluster_name;
use super::{NodeCx, Resource};
use crate::aws::errors::OrAbsent;
use crate::aws::retry::{self, NEW_SERVICE_NOT_VISIBLE};
use crate::aws::tags::{self, retag_autoscaling};
use crate::diff::{fields, has, has_member, tags_changed, Change, Changes, Field as _};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, Ref};
use crate::policy::{grant, Grants, On};
use crate::resources::template::Attr;

fields! {
    /// The fields a service scaling is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        MinTasks = "min_tasks",
        MaxTasks = "max_tasks",
        /// One target-tracking policy, by its metric: `policy.cpu`.
        Policy = "policy",
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ServiceScaling {
    /// The service's name in the cluster.
    pub service_name: String,
    /// Ordering: the service must exist (PLATFORM.md: identifiers only, with a retry).
    pub service: Ref,
    pub min_tasks: i32,
    pub max_tasks: i32,
    /// Average CPU and memory utilization (%) the policies keep the service at.
    pub cpu_target: f64,
    pub memory_target: f64,
    pub scale_in_cooldown: i32,
    pub scale_out_cooldown: i32,
}

pub struct Observed {
    target: ScalableTarget,
    policies: Vec<ScalingPolicy>,
    tags: BTreeMap<String, String>,
}

/// The environment's ECS scalable targets and policies, read once per run.
#[derive(Default)]
struct EnvScaling(OnceCell<(Vec<ScalableTarget>, Vec<ScalingPolicy>)>);

async fn env_scaling(
    cx: &NodeCx<'_>,
) -> Result<(Vec<ScalableTarget>, Vec<ScalingPolicy>), Failure> {
    let cache = cx.shared::<EnvScaling>();
    let prefix = format!("service/{}/", cluster_name(cx.env_full()));
    let found = cache
        .0
        .get_or_try_init(|| async {
            let aas = &cx.aws().autoscaling;
            // Both lists at once: one round of latency, not two.
            let (targets, policies) = tokio::try_join!(
                async {
                    aas.describe_scalable_targets()
                        .service_namespace(ServiceNamespace::Ecs)
                        .into_paginator()
                        .items()
                        .send()
                        .collect::<Result<Vec<ScalableTarget>, _>>()
                        .await
                        .map_err(Failure::from)
                },
                async {
                    aas.describe_scaling_policies()
                        .service_namespace(ServiceNamespace::Ecs)
                        .into_paginator()
                        .items()
                        .send()
                        .collect::<Result<Vec<ScalingPolicy>, _>>()
                        .await
                        .map_err(Failure::from)
                },
            )?;
            let ours = |id: &str| id.starts_with(&prefix);
            let targets: Vec<ScalableTarget> = targets
                .into_iter()
                .filter(|t| ours(t.resource_id()))
                .collect();
            let policies: Vec<ScalingPolicy> = policies
                .into_iter()
                .filter(|p| ours(p.resource_id()))
                .collect();
            Ok::<_, Failure>((targets, policies))
        })
        .await?;
    Ok(found.clone())
}

/// One policy as compared: `70% ECSServiceAverageCPUUtilization, in 300s, out 60s`.
fn policy_text(p: Option<&TargetTrackingScalingPolicyConfiguration>) -> String {
    let Some(p) = p else {
        return "(absent)".into();
    };
    format!(
        "{}% {}, cooldown in {}s out {}s{}",
        p.target_value(),
        p.predefined_metric_specification()
            .map(|m| m.predefined_metric_type().as_str())
            .unwrap_or("(custom metric)"),
        p.scale_in_cooldown().unwrap_or_default(),
        p.scale_out_cooldown().unwrap_or_default(),
        if p.disable_scale_in() == Some(true) {
            ", scale-in disabled"
        } else {
            ""
        }
    )
}

impl ServiceScaling {
    fn resource_id(&self, cx: &NodeCx<'_>) -> String {
        format!(
            "service/{}/{}",
            cluster_name(cx.env_full()),
            self.service_name
        )
    }

    fn policy_name(&self, cx: &NodeCx<'_>, metric: &str) -> String {
        format!("{}-{}-{metric}", cx.env_full(), self.service_name)
    }

    /// (name suffix, field, configuration) of each policy.
    fn policies(
        &self,
    ) -> Result<[(&'static str, TargetTrackingScalingPolicyConfiguration); 2], Failure> {
        let config = |metric: MetricType, target: f64| {
            Ok::<_, Failure>(
                TargetTrackingScalingPolicyConfiguration::builder()
                    .target_value(target)
                    .predefined_metric_specification(
                        PredefinedMetricSpecification::builder()
                            .predefined_metric_type(metric)
                            .build()?,
                    )
                    .scale_in_cooldown(self.scale_in_cooldown)
                    .scale_out_cooldown(self.scale_out_cooldown)
                    .disable_scale_in(false)
                    .build()?,
            )
        };
        Ok([
            (
                "cpu",
                config(MetricType::EcsServiceAverageCpuUtilization, self.cpu_target)?,
            ),
            (
                "memory",
                config(
                    MetricType::EcsServiceAverageMemoryUtilization,
                    self.memory_target,
                )?,
            ),
        ])
    }

    async fn register(&self, cx: &NodeCx<'_>, tagged: bool) -> Result<Option<String>, Failure> {
        let aas = &cx.aws().autoscaling;
        let id = self.resource_id(cx);
        let out = retry::on(&[&NEW_SERVICE_NOT_VISIBLE], || async {
            Ok(aas
                .register_scalable_target()
                .service_namespace(ServiceNamespace::Ecs)
                .resource_id(&id)
                .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                .min_capacity(self.min_tasks)
                .max_capacity(self.max_tasks)
                .set_tags(tagged.then(|| tags::map(cx.tags())))
                .send()
                .await?)
        })
        .await?;
        Ok(out.scalable_target_arn().map(String::from))
    }

    async fn put_policy(
        &self,
        cx: &NodeCx<'_>,
        metric: &str,
        config: TargetTrackingScalingPolicyConfiguration,
    ) -> Result<(), Failure> {
        let aas = &cx.aws().autoscaling;
        let id = self.resource_id(cx);
        let name = self.policy_name(cx, metric);
        retry::on(&[&NEW_SERVICE_NOT_VISIBLE], || async {
            aas.put_scaling_policy()
                .policy_name(&name)
                .service_namespace(ServiceNamespace::Ecs)
                .resource_id(&id)
                .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                .policy_type(PolicyType::TargetTrackingScaling)
                .target_tracking_scaling_policy_configuration(config.clone())
                .send()
                .await?;
            Ok(())
        })
        .await
    }

    fn attrs_of(&self, cx: &NodeCx<'_>, arn: Option<&str>) -> Attrs {
        let a = Attrs::id(self.resource_id(cx));
        match arn {
            Some(arn) => a.with_arn(arn),
            None => a,
        }
    }
}

#[async_trait]
impl Resource for ServiceScaling {
    type Observed = Observed;
    const KIND: &'static str = "service_scaling";
    const GRANTS: &'static Grants = &Grants {
        read: &[
            crate::policy::BULK_TAGS,
            grant(
                &["application-autoscaling:DescribeScalableTargets", "application-autoscaling:DescribeScalingPolicies", "application-autoscaling:ListTagsForResource"],
                On::Any("Application Auto Scaling: its describes have no resource-level permission"),
            ),
        ],
        write: &[
            grant(
                &["application-autoscaling:RegisterScalableTarget", "application-autoscaling:TagResource"],
                On::Creating,
            ),
            grant(
                &["application-autoscaling:RegisterScalableTarget", "application-autoscaling:PutScalingPolicy", "application-autoscaling:TagResource"],
                On::Tagged,
            ),
            // What Application Auto Scaling checks of the caller for an ECS service.
            grant(&["ecs:DescribeServices", "ecs:UpdateService"], On::Arns(&["arn:${partition}:ecs:${region}:${account}:service/${env}/*"])),
            grant(
                &["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"],
                On::Arns(&["arn:${partition}:cloudwatch:${region}:${account}:alarm:TargetTracking-service/${env}/*"]),
            ),
            grant(
                &["iam:CreateServiceLinkedRole"],
                On::Arns(&["arn:${partition}:iam::${account}:role/aws-service-role/ecs.application-autoscaling.amazonaws.com/*"]),
            ),
        ],
        delete: &[
            grant(&["application-autoscaling:DeregisterScalableTarget"], On::Tagged),
            grant(
                &["cloudwatch:DeleteAlarms"],
                On::Arns(&["arn:${partition}:cloudwatch:${region}:${account}:alarm:TargetTracking-service/${env}/*"]),
            ),
        ],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;
    const PUBLISHES: &'static [Attr] = &[Attr::Id, Attr::Arn];

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        let (targets, policies) = env_scaling(cx).await?;
        let id = self.resource_id(cx);
        let Some(target) = targets.into_iter().find(|t| t.resource_id() == id) else {
            return Ok(None);
        };
        let tags = match target.scalable_target_arn() {
            // From the run's bulk read when it answers for the target, else its own read. A
            // target that read finds gone (deleted since the describe) is gone, as every kind
            // reading its own tags says; a successful answer without tags is no tags.
            Some(arn) => {
                let own = async {
                    Ok(cx
                        .aws()
                        .autoscaling
                        .list_tags_for_resource()
                        .resource_arn(arn)
                        .send()
                        .await
                        .or_absent()?
                        .map(|o| o.tags().cloned().unwrap_or_default().into_iter().collect()))
                };
                let Some(tags) = cx.tags_of(arn, own).await? else {
                    return Ok(None);
                };
                tags
            }
            None => BTreeMap::new(),
        };
        Ok(Some(Observed {
            target,
            policies: policies
                .into_iter()
                .filter(|p| p.resource_id() == id)
                .collect(),
            tags,
        }))
    }

    fn attrs(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<Attrs, Failure> {
        Ok(self.attrs_of(cx, have.target.scalable_target_arn()))
    }

    fn planned_attrs(&self, cx: &NodeCx<'_>) -> Option<Attrs> {
        Some(self.attrs_of(cx, None))
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        _inputs: &Inputs<'_>,
        have: &Observed,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        c.field(Field::MinTasks, self.min_tasks, have.target.min_capacity());
        c.field(Field::MaxTasks, self.max_tasks, have.target.max_capacity());
        for (metric, want) in self.policies()? {
            let name = self.policy_name(cx, metric);
            let live = have
                .policies
                .iter()
                .find(|p| p.policy_name() == name)
                .and_then(|p| p.target_tracking_scaling_policy_configuration());
            c.field(
                Field::Policy.key(metric),
                policy_text(Some(&want)),
                policy_text(live),
            );
        }
        c.tags(cx.tags(), &have.tags);
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, _inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let arn = self.register(cx, true).await?;
        for (metric, config) in self.policies()? {
            self.put_policy(cx, metric, config).await?;
        }
        Ok(self.attrs_of(cx, arn.as_deref()))
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        _inputs: &Inputs<'_>,
        have: &Observed,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        if has(changes, Field::MinTasks) || has(changes, Field::MaxTasks) {
            self.register(cx, false).await?;
        }
        for (metric, config) in self.policies()? {
            if has_member(changes, Field::Policy, metric) {
                self.put_policy(cx, metric, config).await?;
            }
        }
        let arn = have.target.scalable_target_arn();
        if tags_changed(changes) {
            if let Some(arn) = arn {
                retag_autoscaling(&cx.aws().autoscaling, arn, cx.tags()).await?;
            }
        }
        Ok(self.attrs_of(cx, arn))
    }

    /// Deregistering the target deletes its policies.
    async fn delete(&self, cx: &NodeCx<'_>, _have: &Observed) -> Result<(), Failure> {
        cx.aws()
            .autoscaling
            .deregister_scalable_target()
            .service_namespace(ServiceNamespace::Ecs)
            .resource_id(self.resource_id(cx))
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .send()
            .await
            .or_absent()?;
        Ok(())
    }
}
