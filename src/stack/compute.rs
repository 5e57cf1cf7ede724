//! The compute tier: the ECS cluster, the tasks' roles and log groups, a task definition,
//! service and auto scaling per service.

use std::collections::BTreeMap;

use serde_json::json;

use super::database::DB_CLUSTER;
use super::edge::Edge;
use super::network::Network;
use super::Stack;
use crate::config::{EnvConfig, Service};
use crate::model::Ref;
use crate::resources::ecs_cluster::EcsCluster;
use crate::resources::ecs_service::EcsService;
use crate::resources::iam_role::IamRole;
use crate::resources::log_group::LogGroup;
use crate::resources::secret::Secret;
use crate::resources::service_scaling::ServiceScaling;
use crate::resources::task_definition::{Container, TaskDefinition};
use crate::resources::template::Template;

pub const ECS_CLUSTER: &str = "ecs-cluster";
pub const DB_CONNECTION: &str = "db-connection";
/// Container log groups keep 30 days (PLATFORM.md).
const LOG_RETENTION_DAYS: i32 = 30;
/// Auto scaling (PLATFORM.md): CPU 70 %, memory 75 %, in after 300 s, out after 60 s.
const CPU_TARGET: f64 = 70.0;
const MEMORY_TARGET: f64 = 75.0;
const SCALE_IN_COOLDOWN: i32 = 300;
const SCALE_OUT_COOLDOWN: i32 = 60;
const HEALTH_CHECK_GRACE_SECONDS: i32 = 60;
/// The X-Ray daemon's share of the backend task, and its UDP port.
const XRAY_CPU: i32 = 32;
const XRAY_MEMORY: i32 = 256;
const XRAY_PORT: i32 = 2000;

pub fn build(s: &mut Stack<'_>, env: &EnvConfig, net: &Network, edge: &Edge) {
    let log_group = |s: &mut Stack<'_>, container: &str| {
        s.add(
            &format!("logs-{container}"),
            LogGroup {
                suffix: format!("ecs/{container}"),
                retention_days: LOG_RETENTION_DAYS,
                key: net.key.clone(),
            },
        )
    };
    let frontend_logs = log_group(s, "frontend");
    let backend_logs = log_group(s, "backend");
    let xray_logs = log_group(s, "xray");
    // PLATFORM.md: the backend gets host, port, user and password as separate values. The
    // RDS-managed secret holds only the user and password; this one holds where to connect,
    // so all four (and the database's name) arrive as container secrets.
    s.add(
        DB_CONNECTION,
        Secret {
            suffix: "db-connection".into(),
            description: "Where the backend connects: the Aurora writer endpoint, port and database (tap-provision)".into(),
            value: Template(json!({
                "host": format!("${{{DB_CLUSTER}.endpoint}}"),
                "port": format!("${{{DB_CLUSTER}.port}}"),
                "dbname": env.database.database_name,
            })),
            key: net.key.clone(),
        },
    );
    let path = format!("/{}/{}/", env.project, env.env);

    // Pulls images, writes the containers' logs, reads this environment's DB secret.
    let execution_role = s.add(
        "ecs-execution-role",
        IamRole {
            suffix: "ecs-execution".into(),
            service: "ecs-tasks.amazonaws.com".into(),
            description: "ECS task execution: image pull, container logs, the DB secret (tap-provision)".into(),
            policy: Template(json!({
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
                    {"Effect": "Allow",
                     "Action": ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
                     "Resource": "arn:${partition}:ecr:${region}:${account}:repository/*"},
                    {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                     "Resource": ["${logs-frontend.arn}:log-stream:*", "${logs-backend.arn}:log-stream:*",
                                  "${logs-xray.arn}:log-stream:*"]},
                    {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                     "Resource": ["${db-cluster.secret_arn}", "${db-connection.arn}"]},
                    {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "${kms-key.arn}",
                     "Condition": {"StringEquals": {"kms:ViaService": "secretsmanager.${region}.amazonaws.com"}}}
                ]
            })),
            path: Some(path.clone()),
            source_arn: None,
            managed: Vec::new(),
        },
    );
    // The application's own calls: X-Ray only (it has no resource-level permissions).
    let task_role = s.add(
        "ecs-task-role",
        IamRole {
            suffix: "ecs-task".into(),
            service: "ecs-tasks.amazonaws.com".into(),
            description: "ECS tasks: X-Ray traces (tap-provision)".into(),
            policy: Template(json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords",
                               "xray:GetSamplingRules", "xray:GetSamplingTargets",
                               "xray:GetSamplingStatisticSummaries"],
                    "Resource": "*"
                }]
            })),
            path: Some(path),
            source_arn: None,
            managed: Vec::new(),
        },
    );
    let cluster = s.add(
        ECS_CLUSTER,
        EcsCluster {
            container_insights: true,
        },
    );

    let container = |name: &str, image: &str, port: i32, health: &str, logs: &Ref| Container {
        name: name.into(),
        image: image.into(),
        port: Some(port),
        protocol: "tcp".into(),
        essential: true,
        health_command: Some(health.into()),
        cpu: 0,
        memory_reservation: None,
        environment: BTreeMap::new(),
        secrets: BTreeMap::new(),
        log_group: logs.clone(),
        command: Vec::new(),
    };
    let frontend = container(
        "frontend",
        &env.services.frontend.image,
        80,
        "curl -fsS http://localhost/ > /dev/null || exit 1",
        &frontend_logs,
    );
    // Node.js images need not have curl: the check is a one-line Node script.
    let mut backend = container(
        "backend",
        &env.services.backend.image,
        3000,
        "node -e \"require('http').get('http://localhost:3000/health', r => process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1))\"",
        &backend_logs,
    );
    backend.environment = BTreeMap::from([(
        "AWS_XRAY_DAEMON_ADDRESS".into(),
        format!("localhost:{XRAY_PORT}").into(),
    )]);
    // Each value separately (PLATFORM.md): `<secret ARN>:<JSON key>::`.
    let from = |secret: &str, attr: &str, key: &str| {
        Template::from(format!("${{{secret}.{attr}}}:{key}::"))
    };
    backend.secrets = BTreeMap::from([
        ("DB_HOST".into(), from(DB_CONNECTION, "arn", "host")),
        ("DB_PORT".into(), from(DB_CONNECTION, "arn", "port")),
        ("DB_NAME".into(), from(DB_CONNECTION, "arn", "dbname")),
        ("DB_USER".into(), from(DB_CLUSTER, "secret_arn", "username")),
        (
            "DB_PASSWORD".into(),
            from(DB_CLUSTER, "secret_arn", "password"),
        ),
    ]);
    let xray = Container {
        name: "xray-daemon".into(),
        image: env.services.xray_image.clone(),
        port: Some(XRAY_PORT),
        protocol: "udp".into(),
        essential: false,
        health_command: None,
        cpu: XRAY_CPU,
        memory_reservation: Some(XRAY_MEMORY),
        environment: BTreeMap::new(),
        secrets: BTreeMap::new(),
        log_group: xray_logs,
        command: Vec::new(),
    };

    let tasks = [
        (
            "frontend",
            &env.services.frontend,
            vec![frontend],
            &edge.frontend_target_group,
            &edge.frontend_rule,
            80,
        ),
        (
            "backend",
            &env.services.backend,
            vec![backend, xray],
            &edge.backend_target_group,
            &edge.backend_rule,
            3000,
        ),
    ];
    for (name, config, containers, target_group, rule, port) in tasks {
        service(
            s,
            name,
            config,
            TaskDefinition {
                service: name.into(),
                cpu: config.cpu,
                memory: config.memory,
                execution_role: execution_role.clone(),
                task_role: task_role.clone(),
                containers,
            },
            (&cluster, net, target_group, rule, port),
        );
    }
}

/// A service's task definition, the service and its auto scaling.
fn service(
    s: &mut Stack<'_>,
    name: &str,
    config: &Service,
    task: TaskDefinition,
    (cluster, net, target_group, rule, port): (&Ref, &Network, &Ref, &Ref, i32),
) {
    let task_definition = s.add(&format!("task-{name}"), task);
    // PLATFORM.md: CreateService needs only the listener rule's identifiers (a retry covers
    // the moment the target group is not attached yet) and the role's (a retry covers IAM).
    let service = s.add(
        &format!("service-{name}"),
        EcsService {
            service: name.into(),
            cluster: cluster.clone(),
            task_definition,
            subnets: net.private_subnets.clone(),
            security_group: net.ecs_security_group.clone(),
            target_group: target_group.clone(),
            listener_rule: rule.clone(),
            container: name.into(),
            container_port: port,
            desired_count: config.desired_tasks as i32,
            health_check_grace_seconds: HEALTH_CHECK_GRACE_SECONDS,
        },
    );
    // PLATFORM.md: RegisterScalableTarget may start while the service deploys.
    s.add(
        &format!("scaling-{name}"),
        ServiceScaling {
            service_name: name.into(),
            service,
            min_tasks: config.min_tasks as i32,
            max_tasks: config.max_tasks as i32,
            cpu_target: CPU_TARGET,
            memory_target: MEMORY_TARGET,
            scale_in_cooldown: SCALE_IN_COOLDOWN,
            scale_out_cooldown: SCALE_OUT_COOLDOWN,
        },
    );
}
