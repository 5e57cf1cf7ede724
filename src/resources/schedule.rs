//! EventBridge Scheduler schedules: one per environment, in its schedule group, whose target
//! runs the tool's task (`ecs:RunTask`) on the environment's own ECS cluster: Fargate,
//! private subnets, no public IP, its own security group, flexible window off, a retry
//! policy. Schedules take no tags: the schedule is found by its name in the environment's
//! tagged group. Every field is compared, the target as one document.

use async_trait::async_trait;
use aws_sdk_scheduler::types::{
    AssignPublicIp, AwsVpcConfiguration, EcsParameters, FlexibleTimeWindow, FlexibleTimeWindowMode,
    LaunchType, NetworkConfiguration, PropagateTags, RetryPolicy, ScheduleState, Target,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::schedule_group::group_name;
use super::{NodeCx, Resource};
use crate::aws::errors::{CreatedBy, OrAbsent, OrExists, Required};
use crate::aws::retry::{self, NEW_ROLE_SCHEDULER};
use crate::diff::{fields, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, Ref};
use crate::policy::{grant, Grants, On};
use crate::resources::template::Attr;

fields! {
    /// The fields a schedule is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        Expression = "expression",
        Timezone = "timezone",
        State = "state",
        FlexibleWindow = "flexible_window",
        Description = "description",
        /// Start and end dates, the KMS key and what happens after the last run: none of
        /// them is set, so any is drift (an end date silently stops the repairs).
        Lifetime = "lifetime",
        Target = "target",
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Schedule {
    /// Name suffix: the schedule is `<project>-<env>-<suffix>`, in the group.
    pub suffix: String,
    /// The group it lives in (its node), and the group's name suffix, to find it by name.
    pub group: Ref,
    pub group_suffix: String,
    /// `rate(...)` or `cron(...)`, as EventBridge Scheduler reads it.
    pub expression: String,
    /// The IANA time zone a `cron()` is read in.
    pub timezone: String,
    pub description: String,
    /// The ECS cluster the task runs on (the target's ARN).
    pub cluster: Ref,
    pub task_definition: Ref,
    pub subnets: Vec<Ref>,
    pub security_group: Ref,
    /// The role Scheduler assumes to run the task.
    pub role: Ref,
    pub retry_attempts: i32,
    pub max_event_age_seconds: i32,
}

pub struct Observed {
    arn: String,
    expression: String,
    timezone: String,
    state: String,
    flexible_window: String,
    description: String,
    lifetime: Value,
    target: Value,
}

/// What the tool sets of a schedule's lifetime: nothing (no start, no end, AWS's own key,
/// kept after its last run).
fn lifetime_document(
    start: Option<String>,
    end: Option<String>,
    kms_key: Option<&str>,
    after_completion: Option<&str>,
) -> Value {
    json!({
        "start_date": start,
        "end_date": end,
        "kms_key": kms_key,
        // Rate and cron schedules answer NONE when none was given.
        "action_after_completion": after_completion.filter(|a| *a != "NONE"),
    })
}

/// The target as compared: what Scheduler keeps of it, in one JSON shape for both sides.
fn target_document(t: &Target) -> Value {
    let ecs = t.ecs_parameters().map(|e| {
        let vpc = e
            .network_configuration()
            .and_then(|n| n.awsvpc_configuration());
        let mut subnets: Vec<&str> = vpc
            .map(|v| v.subnets().iter().map(String::as_str).collect())
            .unwrap_or_default();
        subnets.sort_unstable();
        let mut groups: Vec<&str> = vpc
            .map(|v| v.security_groups().iter().map(String::as_str).collect())
            .unwrap_or_default();
        groups.sort_unstable();
        json!({
            "task_definition": e.task_definition_arn(),
            "task_count": e.task_count(),
            "launch_type": e.launch_type().map(|l| l.as_str()),
            "platform_version": e.platform_version(),
            "subnets": subnets,
            "security_groups": groups,
            "assign_public_ip": vpc.and_then(|v| v.assign_public_ip()).map(|a| a.as_str()),
            "propagate_tags": e.propagate_tags().map(|p| p.as_str()),
            "ecs_managed_tags": e.enable_ecs_managed_tags(),
            // Unset and false are one: AWS answers false for what was never sent.
            "execute_command": e.enable_execute_command().unwrap_or(false),
            "capacity_providers": e
                .capacity_provider_strategy()
                .iter()
                .map(|c| json!([c.capacity_provider(), c.weight(), c.base()]))
                .collect::<Vec<_>>(),
            "tags": e
                .tags()
                .iter()
                .map(|m| m.iter().collect::<std::collections::BTreeMap<_, _>>())
                .collect::<Vec<_>>(),
            "placement_constraints": e.placement_constraints().len(),
            "placement_strategy": e.placement_strategy().len(),
            "group": e.group(),
            "reference_id": e.reference_id(),
        })
    });
    json!({
        "arn": t.arn(),
        "role": t.role_arn(),
        "ecs": ecs,
        // The task's input: container overrides here would run another command with the
        // task role's permissions.
        "input": t.input(),
        "dead_letter": t.dead_letter_config().and_then(|d| d.arn()),
        "retry": t.retry_policy().map(|r| json!({
            "attempts": r.maximum_retry_attempts(),
            "max_event_age_seconds": r.maximum_event_age_in_seconds(),
        })),
    })
}

fn built<T>(r: Result<T, aws_smithy_types::error::operation::BuildError>) -> Result<T, Failure> {
    r.map_err(|e| Failure::new("InvalidSpec", format!("schedule target: {e}")))
}

impl Schedule {
    fn name(&self, cx: &NodeCx<'_>) -> String {
        format!("{}-{}", cx.env_full(), self.suffix)
    }

    fn group_name(&self, cx: &NodeCx<'_>) -> String {
        group_name(cx.env_full(), &self.group_suffix)
    }

    fn arn(&self, cx: &NodeCx<'_>) -> String {
        cx.arn(
            "scheduler",
            &format!("schedule/{}/{}", self.group_name(cx), self.name(cx)),
        )
    }

    fn target(&self, inputs: &Inputs<'_>) -> Result<Target, Failure> {
        let subnets = self
            .subnets
            .iter()
            .map(|s| inputs.id(s).map(String::from))
            .collect::<Result<Vec<_>, _>>()?;
        let vpc = built(
            AwsVpcConfiguration::builder()
                .set_subnets(Some(subnets))
                .security_groups(inputs.id(&self.security_group)?)
                .assign_public_ip(AssignPublicIp::Disabled)
                .build(),
        )?;
        let ecs = built(
            EcsParameters::builder()
                .task_definition_arn(inputs.arn(&self.task_definition)?)
                .task_count(1)
                .launch_type(LaunchType::Fargate)
                .platform_version("LATEST")
                .network_configuration(
                    NetworkConfiguration::builder()
                        .awsvpc_configuration(vpc)
                        .build(),
                )
                // The run task carries the task definition's tags (the environment's):
                // the scheduler role may tag run tasks, nothing else.
                .propagate_tags(PropagateTags::TaskDefinition)
                .enable_ecs_managed_tags(true)
                .build(),
        )?;
        built(
            Target::builder()
                .arn(inputs.arn(&self.cluster)?)
                .role_arn(inputs.arn(&self.role)?)
                .ecs_parameters(ecs)
                .retry_policy(
                    RetryPolicy::builder()
                        .maximum_retry_attempts(self.retry_attempts)
                        .maximum_event_age_in_seconds(self.max_event_age_seconds)
                        .build(),
                )
                .build(),
        )
    }

    fn window() -> Result<FlexibleTimeWindow, Failure> {
        built(
            FlexibleTimeWindow::builder()
                .mode(FlexibleTimeWindowMode::Off)
                .build(),
        )
    }

    fn attrs_of(&self, cx: &NodeCx<'_>, arn: &str) -> Attrs {
        Attrs::id(self.name(cx)).with_arn(arn)
    }
}

#[async_trait]
impl Resource for Schedule {
    type Observed = Observed;
    const KIND: &'static str = "schedule";
    const GRANTS: &'static Grants = &Grants {
        read: &[grant(
            &["scheduler:GetSchedule"],
            On::Arns(&["arn:${partition}:scheduler:${region}:${account}:schedule/${env}-${suffix}/*"]),
        )],
        write: &[
            grant(
                &["scheduler:CreateSchedule", "scheduler:UpdateSchedule"],
                On::Arns(&["arn:${partition}:scheduler:${region}:${account}:schedule/${env}-${suffix}/*"]),
            ),
            grant(
                &["iam:PassRole"],
                On::Arns(&[
                    "arn:${partition}:iam::${account}:role/${project}/${env_name}/${env}-repair-scheduler",
                ]),
            ),
        ],
        delete: &[grant(
            &["scheduler:DeleteSchedule"],
            On::Arns(&["arn:${partition}:scheduler:${region}:${account}:schedule/${env}-${suffix}/*"]),
        )],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;

    fn name_part(&self) -> Option<&str> {
        Some(&self.group_suffix)
    }
    const PUBLISHES: &'static [Attr] = &[Attr::Id, Attr::Arn];

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        let Some(s) = cx
            .aws()
            .scheduler
            .get_schedule()
            .group_name(self.group_name(cx))
            .name(self.name(cx))
            .send()
            .await
            .or_absent()?
        else {
            return Ok(None);
        };
        Ok(Some(Observed {
            arn: s.arn().map(String::from).unwrap_or_else(|| self.arn(cx)),
            expression: s
                .schedule_expression()
                .required("schedule expression")?
                .to_string(),
            timezone: s
                .schedule_expression_timezone()
                .unwrap_or("UTC")
                .to_string(),
            // Missing state or window: compared as a change (put back), never as absent.
            state: s.state().map(|s| s.as_str()).unwrap_or("").to_string(),
            flexible_window: s
                .flexible_time_window()
                .map(|w| w.mode().as_str())
                .unwrap_or("")
                .to_string(),
            description: s.description().unwrap_or_default().to_string(),
            lifetime: lifetime_document(
                s.start_date().map(|d| d.to_string()),
                s.end_date().map(|d| d.to_string()),
                s.kms_key_arn(),
                s.action_after_completion().map(|a| a.as_str()),
            ),
            target: s.target().map(target_document).unwrap_or(Value::Null),
        }))
    }

    fn planned_attrs(&self, cx: &NodeCx<'_>) -> Option<Attrs> {
        Some(self.attrs_of(cx, &self.arn(cx)))
    }

    fn attrs(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<Attrs, Failure> {
        Ok(self.attrs_of(cx, &have.arn))
    }

    fn diff(
        &self,
        _cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Observed,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        c.field(
            Field::Expression,
            self.expression.as_str(),
            &have.expression,
        );
        c.field(Field::Timezone, self.timezone.as_str(), &have.timezone);
        c.field(Field::State, "ENABLED", &have.state);
        c.field(Field::FlexibleWindow, "OFF", &have.flexible_window);
        c.field(
            Field::Description,
            self.description.as_str(),
            &have.description,
        );
        c.document(
            Field::Lifetime,
            &lifetime_document(None, None, None, None),
            &have.lifetime,
        );
        c.document(
            Field::Target,
            &target_document(&self.target(inputs)?),
            &have.target,
        );
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let scheduler = &cx.aws().scheduler;
        // Made by a killed run: `ConflictException`; the next `observe` compares it. The
        // scheduler role made a moment ago may not be assumable yet: retried.
        let made = retry::on(&[&NEW_ROLE_SCHEDULER], || async {
            scheduler
                .create_schedule()
                .name(self.name(cx))
                .group_name(inputs.id(&self.group)?)
                .schedule_expression(&self.expression)
                .schedule_expression_timezone(&self.timezone)
                .description(&self.description)
                .state(ScheduleState::Enabled)
                .flexible_time_window(Self::window()?)
                .target(self.target(inputs)?)
                // Unique to this run: a schedule deleted since is never answered from an
                // old token.
                .client_token(cx.run_token(&[]))
                .send()
                .await
                .or_exists(CreatedBy::Scheduler)
        })
        .await?;
        let arn = made
            .map(|out| out.schedule_arn().to_string())
            .unwrap_or_else(|| self.arn(cx));
        Ok(self.attrs_of(cx, &arn))
    }

    /// UpdateSchedule replaces the whole schedule: every field is sent.
    async fn update(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Observed,
        _changes: &[Change],
    ) -> Result<Attrs, Failure> {
        // The scheduler role may have just been made again (deleted out of band).
        retry::on(&[&NEW_ROLE_SCHEDULER], || async {
            cx.aws()
                .scheduler
                .update_schedule()
                .name(self.name(cx))
                .group_name(inputs.id(&self.group)?)
                .schedule_expression(&self.expression)
                .schedule_expression_timezone(&self.timezone)
                .description(&self.description)
                .state(ScheduleState::Enabled)
                .flexible_time_window(Self::window()?)
                .target(self.target(inputs)?)
                .client_token(cx.run_token(&["update"]))
                .send()
                .await?;
            Ok(())
        })
        .await?;
        Ok(self.attrs_of(cx, &have.arn))
    }

    async fn delete(&self, cx: &NodeCx<'_>, _have: &Observed) -> Result<(), Failure> {
        cx.aws()
            .scheduler
            .delete_schedule()
            .group_name(self.group_name(cx))
            .name(self.name(cx))
            .client_token(cx.run_token(&["delete"]))
            .send()
            .await
            .or_absent()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_reads_the_same_whatever_the_order_of_its_subnets() {
        let target = |subnets: &[&str]| {
            let vpc = AwsVpcConfiguration::builder()
                .set_subnets(Some(subnets.iter().map(|s| s.to_string()).collect()))
                .security_groups("sg-1")
                .assign_public_ip(AssignPublicIp::Disabled)
                .build()
                .unwrap();
            let ecs = EcsParameters::builder()
                .task_definition_arn("arn:td:1")
                .network_configuration(
                    NetworkConfiguration::builder()
                        .awsvpc_configuration(vpc)
                        .build(),
                )
                .build()
                .unwrap();
            Target::builder()
                .arn("arn:cluster")
                .role_arn("arn:role")
                .ecs_parameters(ecs)
                .build()
                .unwrap()
        };
        let a = target_document(&target(&["subnet-b", "subnet-a"]));
        assert_eq!(a, target_document(&target(&["subnet-a", "subnet-b"])));
        assert_eq!(a["ecs"]["assign_public_ip"], "DISABLED");
        assert_ne!(a, target_document(&target(&["subnet-a"])));
    }
}
