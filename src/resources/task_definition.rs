//! ECS task definitions, one family per service (`<project>-<env>-<service>`): Fargate,
//! awsvpc, the sizes from config, containers with health checks, awslogs logging to their
//! own log group, and DB credentials as secrets read from the DB secret at container start.
//!
//! The node is the family's latest ACTIVE revision. A change (an image, a size) registers a
//! new revision and gives the node a new ARN, which its service then picks up; an unchanged
//! one registers nothing. Earlier revisions stay ACTIVE: the deployment circuit breaker rolls
//! a failed deployment back to them.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ecs::types::{
    Compatibility, ContainerDefinition, HealthCheck, KeyValuePair, LogConfiguration, LogDriver,
    NetworkMode, PortMapping, Secret, TaskDefinition as AwsTaskDefinition, TaskDefinitionField,
    TaskDefinitionStatus, TransportProtocol,
};
use serde::{Deserialize, Serialize};

use super::template::{render, Attr, Template};
use super::{NodeCx, Resource};
use crate::aws::errors::{OrAbsent, Required};
use crate::aws::tags::{self, from_ecs, retag_ecs};
use crate::diff::{beyond_tags, fields, Change, Changes, Field as _};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, Ref};
use crate::policy::{grant, Grants, On};

fields! {
    /// The fields a task definition is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        Cpu = "cpu",
        Memory = "memory",
        NetworkMode = "network_mode",
        RequiresCompatibilities = "requires_compatibilities",
        ExecutionRole = "execution_role",
        TaskRole = "task_role",
        Containers = "containers",
    }
}

fields! {
    /// What each container of a task definition is compared on, under
    /// `containers.<name>.`.
    enum ContainerField {
        Image = "image",
        Port = "port",
        Essential = "essential",
        HealthCheck = "health_check",
        Cpu = "cpu",
        MemoryReservation = "memory_reservation",
        Environment = "environment",
        Secrets = "secrets",
        Logs = "logs",
        Command = "command",
    }
}

/// Container health checks: every 30 s, unhealthy after 3 failures (PLATFORM.md).
pub const HEALTH_INTERVAL: i32 = 30;
pub const HEALTH_RETRIES: i32 = 3;
pub const HEALTH_TIMEOUT: i32 = 5;
pub const HEALTH_START_PERIOD: i32 = 60;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Container {
    pub name: String,
    /// A versioned image (config validation refuses `latest` and untagged ones).
    pub image: String,
    /// The port it listens on, if any.
    pub port: Option<i32>,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The task stops when an essential container stops.
    pub essential: bool,
    /// The shell command of its health check, if it has one.
    pub health_command: Option<String>,
    /// CPU units reserved for it inside the task (0: none reserved).
    pub cpu: i32,
    /// Memory (MiB) reserved for it inside the task.
    pub memory_reservation: Option<i32>,
    /// Environment, each value a template ([`super::template`]).
    pub environment: BTreeMap<String, Template>,
    /// Secrets: each variable's `valueFrom`, a template (`${db-cluster.secret_arn}:password::`).
    pub secrets: BTreeMap<String, Template>,
    /// Its log group.
    pub log_group: Ref,
    /// The arguments given to the image's entrypoint; empty: the image's own command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TaskDefinition {
    /// `frontend`, `backend`: the family is `<project>-<env>-<service>`.
    pub service: String,
    /// Fargate CPU units and memory (MiB) of the task.
    pub cpu: u32,
    pub memory: u32,
    pub execution_role: Ref,
    pub task_role: Ref,
    pub containers: Vec<Container>,
}

pub struct Observed {
    definition: AwsTaskDefinition,
    tags: BTreeMap<String, String>,
}

/// One container as compared: what the spec asks for and what AWS describes, in one shape.
#[derive(Debug, PartialEq)]
struct View {
    image: String,
    port: Option<(i32, String)>,
    essential: bool,
    health: Option<String>,
    cpu: i32,
    memory_reservation: Option<i32>,
    environment: BTreeMap<String, String>,
    secrets: BTreeMap<String, String>,
    logs: BTreeMap<String, String>,
    command: Vec<String>,
}

/// The family, `<project>-<env>-<service>`.
pub fn family(env_full: &str, service: &str) -> String {
    format!("{env_full}-{service}")
}

fn health_text(command: &str, interval: i32, retries: i32, timeout: i32, start: i32) -> String {
    format!("{command} (every {interval}s, {retries} retries, timeout {timeout}s, start period {start}s)")
}

fn attrs_of(d: &AwsTaskDefinition) -> Result<Attrs, Failure> {
    let arn = d
        .task_definition_arn()
        .ok_or_else(|| Failure::missing("task definition ARN"))?;
    let mut a = Attrs::id(arn).with_arn(arn);
    a.name = d.family().map(String::from);
    a.state = d.status().map(|s| s.as_str().to_string());
    Ok(a)
}

impl TaskDefinition {
    fn family(&self, cx: &NodeCx<'_>) -> String {
        family(cx.env_full(), &self.service)
    }

    /// Every value of `map` filled; each must be text.
    fn fill_all(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        map: &BTreeMap<String, Template>,
    ) -> Result<BTreeMap<String, String>, Failure> {
        map.iter()
            .map(|(k, v)| match render(v, cx.scope(), inputs)? {
                serde_json::Value::String(text) => Ok((k.clone(), text)),
                other => Err(Failure::new(
                    "BadTemplate",
                    format!(
                        "`{k}` of task definition {} is not text: {other}",
                        self.service
                    ),
                )),
            })
            .collect()
    }

    fn log_options(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        c: &Container,
    ) -> Result<BTreeMap<String, String>, Failure> {
        Ok(BTreeMap::from([
            ("awslogs-group".into(), inputs.id(&c.log_group)?.to_string()),
            ("awslogs-region".into(), cx.scope().region.clone()),
            ("awslogs-stream-prefix".into(), c.name.clone()),
        ]))
    }

    fn want_view(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        c: &Container,
    ) -> Result<View, Failure> {
        Ok(View {
            image: c.image.clone(),
            port: c.port.map(|p| (p, c.protocol.clone())),
            essential: c.essential,
            health: c.health_command.as_deref().map(|cmd| {
                health_text(
                    cmd,
                    HEALTH_INTERVAL,
                    HEALTH_RETRIES,
                    HEALTH_TIMEOUT,
                    HEALTH_START_PERIOD,
                )
            }),
            cpu: c.cpu,
            memory_reservation: c.memory_reservation,
            environment: self.fill_all(cx, inputs, &c.environment)?,
            secrets: self.fill_all(cx, inputs, &c.secrets)?,
            logs: self.log_options(cx, inputs, c)?,
            command: c.command.clone(),
        })
    }

    fn container_definition(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        c: &Container,
    ) -> Result<ContainerDefinition, Failure> {
        let v = self.want_view(cx, inputs, c)?;
        let mut d = ContainerDefinition::builder()
            .name(&c.name)
            .image(&v.image)
            .essential(v.essential)
            .cpu(v.cpu)
            .set_memory_reservation(v.memory_reservation)
            .set_command((!v.command.is_empty()).then(|| v.command.clone()))
            .set_environment(Some(
                v.environment
                    .iter()
                    .map(|(k, v)| KeyValuePair::builder().name(k).value(v).build())
                    .collect(),
            ))
            .set_secrets(Some(
                v.secrets
                    .iter()
                    .map(|(k, v)| Secret::builder().name(k).value_from(v).build())
                    .collect::<Result<_, _>>()?,
            ))
            .log_configuration(
                LogConfiguration::builder()
                    .log_driver(LogDriver::Awslogs)
                    .set_options(Some(v.logs.into_iter().collect()))
                    .build()?,
            );
        if let Some(port) = c.port {
            d = d.port_mappings(
                PortMapping::builder()
                    .container_port(port)
                    .protocol(TransportProtocol::from(c.protocol.as_str()))
                    .build(),
            );
        }
        if let Some(cmd) = &c.health_command {
            d = d.health_check(
                HealthCheck::builder()
                    .command("CMD-SHELL")
                    .command(cmd)
                    .interval(HEALTH_INTERVAL)
                    .retries(HEALTH_RETRIES)
                    .timeout(HEALTH_TIMEOUT)
                    .start_period(HEALTH_START_PERIOD)
                    .build()?,
            );
        }
        Ok(d.build())
    }

    async fn register(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let containers = self
            .containers
            .iter()
            .map(|c| self.container_definition(cx, inputs, c))
            .collect::<Result<Vec<_>, _>>()?;
        // PLATFORM.md: RegisterTaskDefinition does not check the roles, and the secret is
        // read at container start: identifiers are enough.
        let out = cx
            .aws()
            .ecs
            .register_task_definition()
            .family(self.family(cx))
            .requires_compatibilities(Compatibility::Fargate)
            .network_mode(NetworkMode::Awsvpc)
            .cpu(self.cpu.to_string())
            .memory(self.memory.to_string())
            .execution_role_arn(inputs.arn(&self.execution_role)?)
            .task_role_arn(inputs.arn(&self.task_role)?)
            .set_container_definitions(Some(containers))
            .set_tags(Some(tags::ecs(cx.tags())))
            .send()
            .await?;
        attrs_of(
            out.task_definition()
                .ok_or_else(|| Failure::missing("task definition"))?,
        )
    }
}

/// What AWS describes of a container, in the compared shape.
fn have_view(d: &ContainerDefinition) -> View {
    let pairs = |items: Vec<(String, String)>| items.into_iter().collect::<BTreeMap<_, _>>();
    View {
        image: d.image().unwrap_or_default().to_string(),
        port: d.port_mappings().first().and_then(|p| {
            Some((
                p.container_port()?,
                p.protocol()
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_else(|| "tcp".into()),
            ))
        }),
        essential: d.essential().unwrap_or(true),
        health: d.health_check().map(|h| {
            let cmd = h.command();
            let cmd = match cmd.first().map(String::as_str) {
                Some("CMD-SHELL") => cmd[1..].join(" "),
                _ => cmd.join(" "),
            };
            health_text(
                &cmd,
                h.interval().unwrap_or(30),
                h.retries().unwrap_or(3),
                h.timeout().unwrap_or(5),
                h.start_period().unwrap_or(0),
            )
        }),
        cpu: d.cpu(),
        memory_reservation: d.memory_reservation(),
        command: d.command().to_vec(),
        environment: pairs(
            d.environment()
                .iter()
                .map(|kv| {
                    (
                        kv.name().unwrap_or_default().to_string(),
                        kv.value().unwrap_or_default().to_string(),
                    )
                })
                .collect(),
        ),
        secrets: pairs(
            d.secrets()
                .iter()
                .map(|s| (s.name().to_string(), s.value_from().to_string()))
                .collect(),
        ),
        logs: d
            .log_configuration()
            .and_then(|l| l.options())
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
    }
}

/// Tags are the one thing a revision can change without a new one.
fn tags_only(changes: &[Change]) -> bool {
    !beyond_tags(changes)
}

/// "Unable to describe task definition": the family has no ACTIVE revision.
fn no_active_revision(f: &Failure) -> bool {
    f.code == "ClientException" && f.message.contains("Unable to describe task definition")
}

#[async_trait]
impl Resource for TaskDefinition {
    type Observed = Observed;
    const KIND: &'static str = "task_definition";
    const GRANTS: &'static Grants = &Grants {
        read: &[grant(&["ecs:DescribeTaskDefinition"], On::Any("ECS task definitions: DescribeTaskDefinition, RegisterTaskDefinition, ListTaskDefinitions and DeregisterTaskDefinition have no resource-level permission"))],
        write: &[
            grant(&["ecs:RegisterTaskDefinition"], On::Any("ECS task definitions: DescribeTaskDefinition, RegisterTaskDefinition, ListTaskDefinitions and DeregisterTaskDefinition have no resource-level permission")),
            grant(
                &["ecs:TagResource"],
                On::Arns(&["arn:${partition}:ecs:${region}:${account}:task-definition/${env}-${suffix}:*"]),
            ),
            grant(
                &["iam:PassRole"],
                On::Arns(&["arn:${partition}:iam::${account}:role/${project}/${env_name}/${env}-*"]),
            ),
        ],
        delete: &[grant(&["ecs:ListTaskDefinitions", "ecs:DeregisterTaskDefinition"], On::Any("ECS task definitions: DescribeTaskDefinition, RegisterTaskDefinition, ListTaskDefinitions and DeregisterTaskDefinition have no resource-level permission"))],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;
    const PUBLISHES: &'static [Attr] = &[Attr::Id, Attr::Arn];

    fn name_part(&self) -> Option<&str> {
        Some(&self.service)
    }

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        let found = cx
            .aws()
            .ecs
            .describe_task_definition()
            .task_definition(self.family(cx))
            .include(TaskDefinitionField::Tags)
            .send()
            .await
            .map_err(Failure::from);
        let out = match found {
            Err(f) if no_active_revision(&f) => return Ok(None),
            other => other.or_absent()?,
        };
        Ok(out.and_then(|o| {
            let definition = o.task_definition()?.clone();
            (definition.status() == Some(&TaskDefinitionStatus::Active)).then(|| Observed {
                definition,
                tags: from_ecs(o.tags()),
            })
        }))
    }

    fn attrs(&self, _cx: &NodeCx<'_>, have: &Observed) -> Result<Attrs, Failure> {
        attrs_of(&have.definition)
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Observed,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        let d = &have.definition;
        c.field(Field::Cpu, Some(self.cpu.to_string()).as_deref(), d.cpu());
        c.field(
            Field::Memory,
            Some(self.memory.to_string()).as_deref(),
            d.memory(),
        );
        c.field(
            Field::NetworkMode,
            Some(&NetworkMode::Awsvpc),
            d.network_mode(),
        );
        c.field(
            Field::RequiresCompatibilities,
            &[Compatibility::Fargate][..],
            d.requires_compatibilities(),
        );
        c.field(
            Field::ExecutionRole,
            Some(inputs.arn(&self.execution_role)?),
            d.execution_role_arn(),
        );
        c.field(
            Field::TaskRole,
            Some(inputs.arn(&self.task_role)?),
            d.task_role_arn(),
        );
        let mut want_names: Vec<&str> = self.containers.iter().map(|c| c.name.as_str()).collect();
        let mut have_names: Vec<&str> = d
            .container_definitions()
            .iter()
            .filter_map(|c| c.name())
            .collect();
        want_names.sort();
        have_names.sort();
        c.set(Field::Containers, &want_names, &have_names);
        for spec in &self.containers {
            let Some(live) = d
                .container_definitions()
                .iter()
                .find(|l| l.name() == Some(spec.name.as_str()))
            else {
                continue;
            };
            let (want, have) = (self.want_view(cx, inputs, spec)?, have_view(live));
            // `containers.<name>.<field>`.
            let field =
                |f: ContainerField| Field::Containers.key(&format!("{}.{}", spec.name, f.name()));
            c.field(field(ContainerField::Image), &want.image, &have.image);
            c.field(field(ContainerField::Port), &want.port, &have.port);
            c.field(
                field(ContainerField::Essential),
                want.essential,
                have.essential,
            );
            c.field(
                field(ContainerField::HealthCheck),
                &want.health,
                &have.health,
            );
            c.field(field(ContainerField::Cpu), want.cpu, have.cpu);
            c.field(
                field(ContainerField::MemoryReservation),
                want.memory_reservation,
                have.memory_reservation,
            );
            c.field(
                field(ContainerField::Environment),
                &want.environment,
                &have.environment,
            );
            c.field(field(ContainerField::Secrets), &want.secrets, &have.secrets);
            c.field(field(ContainerField::Logs), &want.logs, &have.logs);
            c.field(field(ContainerField::Command), &want.command, &have.command);
        }
        c.tags(cx.tags(), &have.tags);
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        self.register(cx, inputs).await
    }

    /// A revision cannot change: anything but tags registers the next one.
    async fn update(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Observed,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        if tags_only(changes) {
            let arn = have
                .definition
                .task_definition_arn()
                .required("task definition ARN")?;
            retag_ecs(&cx.aws().ecs, arn, cx.tags()).await?;
            return attrs_of(&have.definition);
        }
        self.register(cx, inputs).await
    }

    fn update_changes_attrs(&self, changes: &[Change]) -> bool {
        !tags_only(changes)
    }

    /// Deregisters every ACTIVE revision of the family (ECS keeps them INACTIVE).
    async fn delete(&self, cx: &NodeCx<'_>, _have: &Observed) -> Result<(), Failure> {
        let ecs = &cx.aws().ecs;
        let family = self.family(cx);
        // The prefix also matches longer family names: keep this family's.
        let arns: Vec<String> = ecs
            .list_task_definitions()
            .family_prefix(&family)
            .status(TaskDefinitionStatus::Active)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(Failure::from)?
            .into_iter()
            .filter(|a| {
                a.rsplit_once('/')
                    .and_then(|(_, r)| r.rsplit_once(':'))
                    .is_some_and(|(f, _)| f == family)
            })
            .collect();
        for arn in arns {
            ecs.deregister_task_definition()
                .task_definition(&arn)
                .send()
                .await
                .or_absent()?;
        }
        Ok(())
    }
}
