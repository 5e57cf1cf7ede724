//! ECS services on Fargate: in the private subnets without a public IP, behind their target
//! group, FARGATE base 3 weight 1 + FARGATE_SPOT weight 2, rolling deployments at 100-200 %
//! with the circuit breaker rolling back, tags propagated from the service, ECS managed tags.
//! Found by name in the environment's cluster.
//!
//! The desired count is the config's only when the service is created: auto scaling owns it
//! afterwards, so it is reported as AWS's and never reset. `up` waits until the deployment
//! has completed (its tasks running and healthy); `down` deletes the service (ECS stops its
//! tasks) and waits until it is gone, before its target group goes.

use crate::aws::wait::expected::{ECS_SERVICE_DRAINED, ECS_SERVICE_STEADY};

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, CapacityProviderStrategyItem, DeploymentCircuitBreaker,
    DeploymentConfiguration, DeploymentRolloutState, LoadBalancer as EcsLb, NetworkConfiguration,
    PropagateTags, Service, ServiceField,
};
use serde::{Deserialize, Serialize};

use super::ecs_cluster::cluster_name;
use super::{NodeCx, Resource};
use crate::aws::errors::{OrAbsent, Required};
use crate::aws::gathering::{self, Gathering};
use crate::aws::retry::{self, NEW_ROLE_ECS, SERVICE_NAME_DRAINING, TARGET_GROUP_NOT_ATTACHED};
use crate::aws::tags::{self, from_ecs, retag_ecs};
use crate::aws::wait::Poll;
use crate::diff::{fields, has, has_any, tags_changed, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, Ref};
use crate::policy::{grant, Grants, On};
use crate::resources::template::Attr;

fields! {
    /// The fields an ecs service is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        TaskDefinition = "task_definition",
        DesiredCount = "desired_count",
        CapacityProviderStrategy = "capacity_provider_strategy",
        Deployment = "deployment",
        Subnets = "subnets",
        SecurityGroups = "security_groups",
        AssignPublicIp = "assign_public_ip",
        LoadBalancers = "load_balancers",
        HealthCheckGraceSeconds = "health_check_grace_seconds",
        PropagateTags = "propagate_tags",
        EcsManagedTags = "ecs_managed_tags",
    }
}

/// Rolling deployments keep every task serving: 100 % stay, up to 200 % run meanwhile.
pub const MIN_HEALTHY_PERCENT: i32 = 100;
pub const MAX_PERCENT: i32 = 200;
/// (provider, base, weight): the first 3 tasks on FARGATE, then one in three there and two
/// in three on FARGATE_SPOT.
pub const STRATEGY: [(&str, i32, i32); 2] = [("FARGATE", 3, 1), ("FARGATE_SPOT", 0, 2)];

const DESIRED_COUNT_OWNER: &str = "auto scaling owns the desired count once the service exists";

#[derive(Debug, Serialize, Deserialize)]
pub struct EcsService {
    /// The service's name in the cluster: `frontend`, `backend`.
    pub service: String,
    pub cluster: Ref,
    pub task_definition: Ref,
    pub subnets: Vec<Ref>,
    pub security_group: Ref,
    pub target_group: Ref,
    /// Ordering only: the rule that attaches the target group to the load balancer
    /// (PLATFORM.md: "listener rule -> ECS CreateService", identifiers only, with a retry).
    pub listener_rule: Ref,
    /// The container and port the target group sends to.
    pub container: String,
    pub container_port: i32,
    /// Tasks when the service is created.
    pub desired_count: i32,
    pub health_check_grace_seconds: i32,
}

pub struct Observed {
    service: Service,
}

fn attrs_of(s: &Service) -> Result<Attrs, Failure> {
    let arn = s
        .service_arn()
        .ok_or_else(|| Failure::missing("service ARN"))?;
    let mut a = Attrs::id(s.service_name().required("service name")?).with_arn(arn);
    a.state = Some(deployment_state(s));
    Ok(a)
}

/// The primary deployment's rollout, as `status` shows it: `COMPLETED (3/3 running)`.
fn deployment_state(s: &Service) -> String {
    let primary = s
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"));
    let rollout = primary
        .and_then(|d| d.rollout_state())
        .map(|r| r.as_str().to_string())
        .unwrap_or_else(|| "deploying".into());
    format!(
        "{rollout} ({}/{} running)",
        s.running_count(),
        s.desired_count()
    )
}

/// Ready once the primary deployment has completed and only it remains.
fn service_ready(s: &Service) -> Poll {
    let primary = s
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"));
    match primary.and_then(|d| d.rollout_state()) {
        Some(DeploymentRolloutState::Failed) => Poll::Failed(format!(
            "the deployment failed: {}",
            primary
                .and_then(|d| d.rollout_state_reason())
                .unwrap_or("no reason given")
        )),
        Some(DeploymentRolloutState::Completed)
            if s.deployments().len() == 1 && s.running_count() >= s.desired_count() =>
        {
            Poll::Ready
        }
        _ => Poll::Pending(deployment_state(s)),
    }
}

fn strategy() -> Result<Vec<CapacityProviderStrategyItem>, Failure> {
    STRATEGY
        .iter()
        .map(|(provider, base, weight)| {
            Ok(CapacityProviderStrategyItem::builder()
                .capacity_provider(*provider)
                .base(*base)
                .weight(*weight)
                .build()?)
        })
        .collect()
}

fn strategy_text(items: &[CapacityProviderStrategyItem]) -> Vec<String> {
    let mut all: Vec<String> = items
        .iter()
        .map(|i| {
            format!(
                "{} base {} weight {}",
                i.capacity_provider(),
                i.base(),
                i.weight()
            )
        })
        .collect();
    all.sort();
    all
}

fn deployment_text(d: Option<&DeploymentConfiguration>) -> String {
    let breaker = d.and_then(|d| d.deployment_circuit_breaker());
    format!(
        "min healthy {}%, max {}%, circuit breaker {}, rollback {}",
        d.and_then(|d| d.minimum_healthy_percent()).unwrap_or(100),
        d.and_then(|d| d.maximum_percent()).unwrap_or(200),
        breaker.is_some_and(|b| b.enable()),
        breaker.is_some_and(|b| b.rollback()),
    )
}

fn deployment() -> DeploymentConfiguration {
    DeploymentConfiguration::builder()
        .minimum_healthy_percent(MIN_HEALTHY_PERCENT)
        .maximum_percent(MAX_PERCENT)
        .deployment_circuit_breaker(
            DeploymentCircuitBreaker::builder()
                .enable(true)
                .rollback(true)
                .build(),
        )
        .build()
}

impl EcsService {
    fn ids(&self, inputs: &Inputs<'_>) -> Result<Vec<String>, Failure> {
        let mut ids = self
            .subnets
            .iter()
            .map(|r| Ok(inputs.id(r)?.to_string()))
            .collect::<Result<Vec<_>, Failure>>()?;
        ids.sort();
        Ok(ids)
    }

    fn network(&self, inputs: &Inputs<'_>) -> Result<NetworkConfiguration, Failure> {
        Ok(NetworkConfiguration::builder()
            .awsvpc_configuration(
                AwsVpcConfiguration::builder()
                    .set_subnets(Some(self.ids(inputs)?))
                    .security_groups(inputs.id(&self.security_group)?)
                    .assign_public_ip(AssignPublicIp::Disabled)
                    .build()?,
            )
            .build())
    }

    fn load_balancer(&self, inputs: &Inputs<'_>) -> Result<EcsLb, Failure> {
        Ok(EcsLb::builder()
            .target_group_arn(inputs.arn(&self.target_group)?)
            .container_name(&self.container)
            .container_port(self.container_port)
            .build())
    }

    fn load_balancer_text(&self, inputs: &Inputs<'_>) -> Result<Vec<String>, Failure> {
        Ok(vec![format!(
            "{} -> {}:{}",
            inputs.arn(&self.target_group)?,
            self.container,
            self.container_port
        )])
    }

    /// [`Self::describe`], read with the other services of the cluster that are observed at
    /// the same moment: DescribeServices takes 10. A service the gathered answer says nothing
    /// of, or every service of a gathered read that failed, is read on its own, which fails
    /// on the error.
    async fn describe_gathered(&self, cx: &NodeCx<'_>) -> Result<Option<Service>, Failure> {
        let client = cx.aws().ecs.clone();
        let cluster = cluster_name(cx.env_full());
        let group = cluster.clone();
        let gathered = gathering::ask(
            cx.shared::<Described>().0.clone(),
            &group,
            &self.service,
            10,
            move |names| {
                let (client, cluster) = (client.clone(), cluster.clone());
                async move { describe_services(&client, &cluster, names).await }
            },
        )
        .await;
        match gathered {
            Some(service) => Ok(service),
            None => self.describe(cx).await,
        }
    }

    /// The service, `None` when it (or its cluster) does not exist.
    async fn describe(&self, cx: &NodeCx<'_>) -> Result<Option<Service>, Failure> {
        let cluster = cluster_name(cx.env_full());
        let mut found =
            describe_services(&cx.aws().ecs, &cluster, vec![self.service.clone()]).await?;
        Ok(found.remove(&self.service).flatten())
    }
}

/// What DescribeServices says of `names` in `cluster`: each service it found, `None` for each
/// it says is MISSING (every name when the cluster does not exist). A failure of another
/// reason is an error, never "absent".
async fn describe_services(
    client: &aws_sdk_ecs::Client,
    cluster: &str,
    names: Vec<String>,
) -> Result<HashMap<String, Option<Service>>, Failure> {
    let sent = client
        .describe_services()
        .cluster(cluster)
        .set_services(Some(names.clone()))
        .include(ServiceField::Tags)
        .send()
        .await
        .or_absent()?;
    let Some(out) = sent else {
        return Ok(names.into_iter().map(|n| (n, None)).collect());
    };
    if let Some(f) = out
        .failures()
        .iter()
        .find(|f| f.reason() != Some("MISSING"))
    {
        return Err(Failure::new(
            "DescribeServicesFailure",
            format!(
                "DescribeServices could not read {}: {} {}",
                f.arn().unwrap_or("a service"),
                f.reason().unwrap_or("(no reason)"),
                f.detail().unwrap_or("")
            ),
        ));
    }
    let missing = out
        .failures()
        .iter()
        .filter_map(|f| f.arn()?.rsplit('/').next())
        .map(|name| (name.to_string(), None));
    let found = out
        .services()
        .iter()
        .filter_map(|s| Some((s.service_name()?.to_string(), Some(s.clone()))));
    Ok(missing.chain(found).collect())
}

/// The run's gathered DescribeServices reads, by cluster.
#[derive(Default)]
struct Described(std::sync::Arc<Gathering<Option<Service>>>);

#[async_trait]
impl Resource for EcsService {
    type Observed = Observed;
    const KIND: &'static str = "ecs_service";
    const GRANTS: &'static Grants = &Grants {
        read: &[grant(
            &["ecs:DescribeServices"],
            On::Arns(&["arn:${partition}:ecs:${region}:${account}:service/${env}/*"]),
        )],
        write: &[grant(
            &["ecs:CreateService", "ecs:UpdateService", "ecs:TagResource"],
            On::Arns(&["arn:${partition}:ecs:${region}:${account}:service/${env}/*"]),
        )],
        delete: &[grant(
            &["ecs:DeleteService"],
            On::Arns(&["arn:${partition}:ecs:${region}:${account}:service/${env}/*"]),
        )],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;
    const PUBLISHES: &'static [Attr] = &[Attr::Id, Attr::Arn];

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        // DRAINING is on its way out (a `down` under way) and INACTIVE is gone.
        Ok(self
            .describe_gathered(cx)
            .await?
            .filter(|s| s.status() == Some("ACTIVE"))
            .map(|service| Observed { service }))
    }

    /// Named by config: its alarms and dashboard name it before it exists (or while a
    /// deleted one is made again).
    fn planned_attrs(&self, cx: &NodeCx<'_>) -> Option<Attrs> {
        let arn = cx.arn(
            "ecs",
            &format!("service/{}/{}", cluster_name(cx.env_full()), self.service),
        );
        Some(Attrs::id(&self.service).with_arn(arn))
    }

    fn attrs(&self, _cx: &NodeCx<'_>, have: &Observed) -> Result<Attrs, Failure> {
        attrs_of(&have.service)
    }

    fn is_ready(&self, have: &Observed) -> bool {
        matches!(service_ready(&have.service), Poll::Ready)
    }

    /// A service that has never run a task is still being made; one deploying or scaling
    /// with tasks running is at work, and nothing waits for it.
    fn is_creating(&self, have: &Observed) -> bool {
        let s = &have.service;
        !self.is_ready(have) && s.running_count() == 0 && s.deployments().len() <= 1
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Observed,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        let s = &have.service;
        c.field(
            Field::TaskDefinition,
            Some(inputs.arn(&self.task_definition)?),
            s.task_definition(),
        );
        c.owned_by_aws(
            Field::DesiredCount,
            self.desired_count,
            s.desired_count(),
            DESIRED_COUNT_OWNER,
        );
        c.field(
            Field::CapacityProviderStrategy,
            strategy_text(&strategy()?),
            strategy_text(s.capacity_provider_strategy()),
        );
        c.field(
            Field::Deployment,
            deployment_text(Some(&deployment())),
            deployment_text(s.deployment_configuration()),
        );
        let vpc = s
            .network_configuration()
            .and_then(|n| n.awsvpc_configuration());
        let mut subnets: Vec<String> = vpc.map(|v| v.subnets().to_vec()).unwrap_or_default();
        subnets.sort();
        c.set(Field::Subnets, &self.ids(inputs)?, &subnets);
        let groups: Vec<String> = vpc
            .map(|v| v.security_groups().to_vec())
            .unwrap_or_default();
        c.set(
            Field::SecurityGroups,
            &[inputs.id(&self.security_group)?.to_string()],
            &groups,
        );
        c.field(
            Field::AssignPublicIp,
            Some(&AssignPublicIp::Disabled),
            vpc.and_then(|v| v.assign_public_ip()),
        );
        let lbs: Vec<String> = s
            .load_balancers()
            .iter()
            .map(|l| {
                format!(
                    "{} -> {}:{}",
                    l.target_group_arn().unwrap_or_default(),
                    l.container_name().unwrap_or_default(),
                    l.container_port().unwrap_or_default()
                )
            })
            .collect();
        c.field(Field::LoadBalancers, self.load_balancer_text(inputs)?, lbs);
        c.field(
            Field::HealthCheckGraceSeconds,
            Some(self.health_check_grace_seconds),
            s.health_check_grace_period_seconds(),
        );
        c.field(
            Field::PropagateTags,
            Some(&PropagateTags::Service),
            s.propagate_tags(),
        );
        c.field(Field::EcsManagedTags, true, s.enable_ecs_managed_tags());
        c.tags(cx.tags(), &from_ecs(s.tags()));
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let ecs = &cx.aws().ecs;
        let token = cx.run_token(&[]);
        let out = retry::on(
            &[
                &TARGET_GROUP_NOT_ATTACHED,
                &NEW_ROLE_ECS,
                &SERVICE_NAME_DRAINING,
            ],
            || async {
                Ok(ecs
                    .create_service()
                    .cluster(inputs.id(&self.cluster)?)
                    .service_name(&self.service)
                    .task_definition(inputs.arn(&self.task_definition)?)
                    .desired_count(self.desired_count)
                    .set_capacity_provider_strategy(Some(strategy()?))
                    .deployment_configuration(deployment())
                    .network_configuration(self.network(inputs)?)
                    .load_balancers(self.load_balancer(inputs)?)
                    .health_check_grace_period_seconds(self.health_check_grace_seconds)
                    .propagate_tags(PropagateTags::Service)
                    .enable_ecs_managed_tags(true)
                    .set_tags(Some(tags::ecs(cx.tags())))
                    .client_token(&token)
                    .send()
                    .await?)
            },
        )
        .await?;
        attrs_of(out.service().ok_or_else(|| Failure::missing("service"))?)
    }

    /// Minutes on AWS: tasks start, pass their health checks and register as targets.
    async fn wait_ready(&self, cx: &NodeCx<'_>, attrs: Attrs) -> Result<Attrs, Failure> {
        let last = cx
            .wait_keeping(
                &format!("service {} to finish deploying", self.service),
                ECS_SERVICE_STEADY,
                || async {
                    let found = self.describe(cx).await?;
                    let poll = match &found {
                        Some(s) => service_ready(s),
                        None => Poll::Pending("not yet visible".into()),
                    };
                    Ok((poll, found))
                },
            )
            .await?;
        match last {
            Some(s) => attrs_of(&s),
            None => Ok(attrs),
        }
    }

    /// One UpdateService with what changed (never the desired count), then the tags.
    async fn update(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Observed,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        let ecs = &cx.aws().ecs;
        let mut call = ecs
            .update_service()
            .cluster(inputs.id(&self.cluster)?)
            .service(&self.service);
        let mut any = false;
        if has(changes, Field::TaskDefinition) {
            call = call.task_definition(inputs.arn(&self.task_definition)?);
            any = true;
        }
        if has(changes, Field::CapacityProviderStrategy) {
            // A new strategy applies to new tasks only: replace them.
            call = call
                .set_capacity_provider_strategy(Some(strategy()?))
                .force_new_deployment(true);
            any = true;
        }
        if has(changes, Field::Deployment) {
            call = call.deployment_configuration(deployment());
            any = true;
        }
        if has_any(
            changes,
            &[Field::Subnets, Field::SecurityGroups, Field::AssignPublicIp],
        ) {
            call = call.network_configuration(self.network(inputs)?);
            any = true;
        }
        if has(changes, Field::LoadBalancers) {
            call = call.load_balancers(self.load_balancer(inputs)?);
            any = true;
        }
        if has(changes, Field::HealthCheckGraceSeconds) {
            call = call.health_check_grace_period_seconds(self.health_check_grace_seconds);
            any = true;
        }
        if has(changes, Field::PropagateTags) {
            call = call.propagate_tags(PropagateTags::Service);
            any = true;
        }
        if has(changes, Field::EcsManagedTags) {
            call = call.enable_ecs_managed_tags(true);
            any = true;
        }
        let mut service = have.service.clone();
        if any {
            if let Some(s) = call.send().await?.service() {
                service = s.clone();
            }
        }
        if tags_changed(changes) {
            retag_ecs(
                ecs,
                service.service_arn().required("service ARN")?,
                cx.tags(),
            )
            .await?;
        }
        attrs_of(&service)
    }

    /// ECS stops the tasks (force: no need to scale to 0 first) and drains the service.
    async fn delete(&self, cx: &NodeCx<'_>, _have: &Observed) -> Result<(), Failure> {
        cx.aws()
            .ecs
            .delete_service()
            .cluster(cluster_name(cx.env_full()))
            .service(&self.service)
            .force(true)
            .send()
            .await
            .or_absent()?;
        cx.wait_gone(
            &format!("service {}", self.service),
            ECS_SERVICE_DRAINED,
            || async {
                Ok(self
                    .describe(cx)
                    .await?
                    .and_then(|s| s.status().map(String::from))
                    .filter(|status| status != "INACTIVE"))
            },
        )
        .await
    }
}
