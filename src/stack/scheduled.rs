//! Scheduled repair, built by `up` as ordinary nodes (all named `repair-…`): an EventBridge
//! Scheduler schedule group tagged with the environment, one schedule that runs the tool's
//! task on the environment's own ECS cluster (Fargate, private subnets, no public IP, its own
//! security group allowing only HTTPS out), the task definition, its KMS-encrypted log
//! group, an execution role, a task role with the least privilege its verb needs (derived
//! from the graph: [`crate::policy`]), a scheduler role allowed only to run that task, and
//! the alarms on what the runs tell (drift remained, a run failed, no successful run within
//! `expect_every`).
//!
//! A scheduled run never changes these nodes (`stack::from_record` leaves them out), so its
//! role cannot widen itself.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use super::alerting::ALERTS_TOPIC;
use super::compute::ECS_CLUSTER;
use super::network::Network;
use super::{Stack, SCHEDULED_REPAIR};
use crate::config::{EnvConfig, RepairMode};
use crate::model::Inputs;
use crate::model::Ref;
use crate::policy::{self, Verb};
use crate::resources::iam_role::IamRole;
use crate::resources::log_group::LogGroup;
use crate::resources::managed_policy::ManagedPolicy;
use crate::resources::metric_alarm::{MetricAlarm, Watch, Watched};
use crate::resources::schedule::Schedule;
use crate::resources::schedule_group::ScheduleGroup;
use crate::resources::security_group::{Peer, Rule, SecurityGroup};
use crate::resources::task_definition::{family, Container, TaskDefinition};
use crate::resources::template::{render, Template};
use crate::resources::Scope;
use crate::tell;

pub const GROUP: &str = "repair-group";
/// IAM's default quota of managed policies attached to one role: the most parts the task
/// role's policy can have been split into.
pub const TASK_POLICIES_MAX: usize = 10;
pub const SCHEDULE: &str = "repair-schedule";
pub const TASK: &str = "repair-task";
pub const TASK_ROLE: &str = "repair-task-role";
pub const EXECUTION_ROLE: &str = "repair-execution-role";
pub const SCHEDULER_ROLE: &str = "repair-scheduler-role";
/// The schedule group's and the schedule's name suffix: both `<project>-<env>-repair`.
pub const GROUP_SUFFIX: &str = "repair";
pub const SCHEDULE_SUFFIX: &str = "repair";
/// The tool's task: it reads and writes AWS APIs only, so the smallest Fargate size does.
const TASK_CPU: u32 = 256;
const TASK_MEMORY: u32 = 512;
const LOG_RETENTION_DAYS: i32 = 90;
/// Scheduler retries a RunTask that AWS refused (capacity, throttling) twice, within an hour.
const RETRY_ATTEMPTS: i32 = 2;
const MAX_EVENT_AGE_SECONDS: i32 = 3600;
/// CloudWatch looks back at most this far with one alarm (periods × evaluation periods).
pub const LONGEST_SILENCE: Duration = Duration::from_secs(7 * 24 * 3600);

/// The container's command: the scheduled verb for this environment, from its record alone.
pub fn command(env: &EnvConfig) -> Vec<String> {
    [
        env.repair.mode.verb(),
        "--scheduled",
        "--project",
        &env.project,
        "--region",
        &env.region,
        "--env",
        &env.env,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The verb whose policy the task role gets.
fn task_verb(mode: RepairMode) -> Verb {
    match mode {
        RepairMode::Repair => Verb::ScheduledRepair,
        RepairMode::Detect => Verb::ScheduledDrift,
    }
}

/// The dead man's switch's period and evaluation periods covering `expect_every`.
fn silence_window(expect_every: Duration) -> (i32, i32) {
    let seconds = expect_every.as_secs().clamp(60, LONGEST_SILENCE.as_secs());
    let minutes = seconds.div_ceil(60);
    if minutes * 60 <= 86_400 {
        ((minutes * 60) as i32, 1)
    } else {
        (86_400, seconds.div_ceil(86_400) as i32)
    }
}

pub fn build(s: &mut Stack<'_>, env: &EnvConfig, net: &Network) {
    let (Some(expression), Some(image)) = (&env.repair.schedule, &env.repair.image) else {
        return;
    };
    let env_full = env.full_name();
    let path = format!("/{}/{}/", env.project, env.env);
    let group = s.add(
        GROUP,
        ScheduleGroup {
            suffix: GROUP_SUFFIX.into(),
        },
    );
    let logs = s.add(
        "repair-logs",
        LogGroup {
            suffix: "ecs/repair".into(),
            retention_days: LOG_RETENTION_DAYS,
            key: net.key.clone(),
        },
    );
    let security_group = s.add(
        "repair-sg",
        SecurityGroup {
            vpc: net.vpc.clone(),
            name: "repair".into(),
            description: "Scheduled repair task: HTTPS out to AWS APIs only, nothing in".into(),
            ingress: Vec::new(),
            egress: Some(vec![Rule {
                protocol: "tcp".into(),
                port: 443,
                peer: Peer::Cidr("0.0.0.0/0".into()),
                description: "HTTPS to AWS APIs".into(),
            }]),
        },
    );
    let execution_role = s.add(
        EXECUTION_ROLE,
        IamRole {
            suffix: "repair-execution".into(),
            service: "ecs-tasks.amazonaws.com".into(),
            description: "Scheduled repair, task execution: image pull, its log group (tap-provision)".into(),
            policy: Template(json!({
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
                    {"Effect": "Allow",
                     "Action": ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
                     "Resource": "arn:${partition}:ecr:${region}:${account}:repository/*"},
                    {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                     "Resource": "${repair-logs.arn}:log-stream:*"}
                ]
            })),
            path: Some(path.clone()),
            source_arn: None,
            managed: Vec::new(),
        },
    );
    // What the verb needs on every other node of the graph, and nothing of these: larger
    // than a role may hold inline, so as managed policies, each within IAM's size.
    let verb = task_verb(env.repair.mode);
    // Measured as filled in, with the longest account id and partition name.
    let sizing = Scope {
        project: env.project.clone(),
        env: env.env.clone(),
        env_full: env_full.clone(),
        region: env.region.clone(),
        account: "123456789012".into(),
        partition: "aws-us-gov".into(),
    };
    let filled = |doc: &serde_json::Value| {
        // Only scope placeholders are in a policy: a failure cannot happen, and would put
        // each statement in a policy of its own.
        render(
            &Template(doc.clone()),
            &sizing,
            &Inputs::new(TASK_ROLE, &[], true),
        )
        .map(|v| policy::size(&v))
        .unwrap_or(usize::MAX)
    };
    let mut parts = policy::split_by(&s.policy(verb), policy::MANAGED_POLICY_LIMIT, filled);
    if parts.len() > TASK_POLICIES_MAX {
        s.builder.reject(crate::graph::GraphError::Spec {
            node: TASK_ROLE.into(),
            message: format!(
                "the scheduled {} needs {} managed policies, more than the {TASK_POLICIES_MAX} \
                 IAM attaches to one role by default",
                verb.name(),
                parts.len()
            ),
        });
    }
    if s.removal {
        // An earlier `up` (another version, another graph) may have needed more parts than
        // this config does: each one it could have made is looked for, and deleted after the
        // role lets it go. Absent, each costs one read.
        parts.resize(TASK_POLICIES_MAX.max(parts.len()), json!({}));
    }
    let managed: Vec<Ref> = parts
        .into_iter()
        .enumerate()
        .map(|(i, document)| {
            s.add(
                &format!("repair-task-policy-{}", i + 1),
                ManagedPolicy {
                    suffix: format!("repair-task-{}", i + 1),
                    description: format!(
                        "Scheduled {}: part {} of what `tap-provision {}` needs (tap-provision)",
                        verb.name(),
                        i + 1,
                        verb.name()
                    ),
                    document: Template(document),
                    path: path.clone(),
                    listed: s.removal,
                },
            )
        })
        .collect();
    let task_role = s.add(
        TASK_ROLE,
        IamRole {
            suffix: "repair-task".into(),
            service: "ecs-tasks.amazonaws.com".into(),
            description: format!(
                "Scheduled {}: what `tap-provision {}` needs on this environment (tap-provision)",
                env.repair.mode.verb(),
                env.repair.mode.verb()
            ),
            // Who it is: the rest is in its managed policies.
            policy: Template(json!({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"}]
            })),
            path: Some(path.clone()),
            source_arn: None,
            managed,
        },
    );
    let task_family = family(&env_full, "repair");
    let task = s.add(
        TASK,
        TaskDefinition {
            service: "repair".into(),
            cpu: TASK_CPU,
            memory: TASK_MEMORY,
            execution_role: execution_role.clone(),
            task_role: task_role.clone(),
            containers: vec![Container {
                name: "tap-provision".into(),
                image: image.clone(),
                port: None,
                protocol: "tcp".into(),
                essential: true,
                health_command: None,
                cpu: 0,
                memory_reservation: None,
                environment: BTreeMap::new(),
                secrets: BTreeMap::new(),
                log_group: logs,
                command: command(env),
            }],
        },
    );
    // Allowed only to run this task family on this cluster, hand it its two roles, and tag
    // the tasks it runs; assumable only by Scheduler, for this account's group.
    let scheduler_role = s.add(
        SCHEDULER_ROLE,
        IamRole {
            suffix: "repair-scheduler".into(),
            service: "scheduler.amazonaws.com".into(),
            description: "Scheduled repair: EventBridge Scheduler runs the repair task (tap-provision)".into(),
            policy: Template(json!({
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "ecs:RunTask",
                     "Resource": format!("arn:${{partition}}:ecs:${{region}}:${{account}}:task-definition/{task_family}:*"),
                     "Condition": {"ArnEquals": {"ecs:cluster": format!("${{{ECS_CLUSTER}.arn}}")}}},
                    {"Effect": "Allow", "Action": "iam:PassRole",
                     "Resource": [format!("${{{EXECUTION_ROLE}.arn}}"), format!("${{{TASK_ROLE}.arn}}")],
                     "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}},
                    {"Effect": "Allow", "Action": "ecs:TagResource",
                     "Resource": format!("arn:${{partition}}:ecs:${{region}}:${{account}}:task/${{{ECS_CLUSTER}.id}}/*"),
                     "Condition": {"StringEquals": {"ecs:CreateAction": "RunTask"}}}
                ]
            })),
            path: Some(path),
            source_arn: Some(Template::from(format!("${{{GROUP}.arn}}"))),
            managed: Vec::new(),
        },
    );
    s.add(
        SCHEDULE,
        Schedule {
            suffix: SCHEDULE_SUFFIX.into(),
            group,
            group_suffix: GROUP_SUFFIX.into(),
            expression: expression.clone(),
            timezone: env.repair.timezone.clone(),
            description: format!(
                "tap-provision {} of {env_full} from its applied record",
                env.repair.mode.verb()
            ),
            cluster: Ref::id(ECS_CLUSTER),
            task_definition: task,
            subnets: net.private_subnets.clone(),
            security_group,
            role: scheduler_role,
            retry_attempts: RETRY_ATTEMPTS,
            max_event_age_seconds: MAX_EVENT_AGE_SECONDS,
        },
    );
    alarms(s, env, &env_full);
}

/// Drift remained, a run failed, and the dead man's switch.
fn alarms(s: &mut Stack<'_>, env: &EnvConfig, env_full: &str) {
    let metric = |name: &str, stat: &str, period: i32| {
        Watch::Metric(Watched {
            namespace: tell::NAMESPACE.into(),
            metric_name: name.into(),
            dimensions: BTreeMap::from([(tell::DIMENSION.to_string(), Template::from(env_full))]),
            stat: stat.into(),
            period,
        })
    };
    let topic = Ref::id(ALERTS_TOPIC);
    let verb = env.repair.mode.verb();
    s.add(
        &format!("{SCHEDULED_REPAIR}alarm-remaining"),
        MetricAlarm {
            suffix: "repair-drift-remaining".into(),
            description: format!("A scheduled {verb} left drift in place. Check first: its message on the alerts topic (what remains and why), then `tap-provision drift --env {}`; a replacement is left to `up`.", env.env),
            watch: metric("Remaining", "Maximum", 300),
            comparison: "GreaterThanThreshold".into(),
            threshold: 0.0,
            evaluation_periods: 1,
            datapoints_to_alarm: 1,
            treat_missing_data: "notBreaching".into(),
            topic: topic.clone(),
        },
    );
    s.add(
        &format!("{SCHEDULED_REPAIR}alarm-failed"),
        MetricAlarm {
            suffix: "repair-run-failed".into(),
            description: format!("A scheduled {verb} failed. Check first: its message on the alerts topic, then `tap-provision history --env {}` and the task's log group.", env.env),
            watch: metric("Failed", "Maximum", 300),
            comparison: "GreaterThanThreshold".into(),
            threshold: 0.0,
            evaluation_periods: 1,
            datapoints_to_alarm: 1,
            treat_missing_data: "notBreaching".into(),
            topic: topic.clone(),
        },
    );
    let expect = env
        .repair
        .expect_every
        .unwrap_or(Duration::from_secs(86_400));
    let (period, periods) = silence_window(expect);
    s.add(
        &format!("{SCHEDULED_REPAIR}alarm-silent"),
        MetricAlarm {
            suffix: "repair-silent".into(),
            description: format!("No scheduled {verb} succeeded within {} (the dead man's switch). Check first: the schedule ({}) and its ECS task's stopped reason, then the task's log group.", humantime(expect), env.repair.schedule.as_deref().unwrap_or("off")),
            watch: metric("Succeeded", "Sum", period),
            comparison: "LessThanThreshold".into(),
            threshold: 1.0,
            evaluation_periods: periods,
            datapoints_to_alarm: periods,
            // No data at all is exactly what this alarm is for.
            treat_missing_data: "breaching".into(),
            topic,
        },
    );
}

fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 86_400 == 0 => format!("{} day(s)", s / 86_400),
        s if s % 3600 == 0 => format!("{} hour(s)", s / 3600),
        s => format!("{} minute(s)", s.div_ceil(60)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_silence_window_covers_expect_every_within_cloudwatch_limits() {
        assert_eq!(silence_window(Duration::from_secs(7200)), (7200, 1));
        assert_eq!(silence_window(Duration::from_secs(90)), (120, 1));
        assert_eq!(silence_window(Duration::from_secs(86_400)), (86_400, 1));
        assert_eq!(silence_window(Duration::from_secs(2 * 86_400)), (86_400, 2));
        // Longer than CloudWatch can look back: capped (validation refuses it anyway).
        assert_eq!(
            silence_window(Duration::from_secs(30 * 86_400)),
            (86_400, 7)
        );
    }
}
