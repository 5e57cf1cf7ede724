//! The compute tier on the emulator: the cluster, task definitions, services and their auto
//! scaling with PLATFORM.md's properties; an image change; drift put back, and the desired
//! count left to auto scaling.

use std::collections::BTreeMap;

use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
use aws_sdk_ecs::types::{
    CapacityProviderStrategyItem, ClusterField, ClusterSetting, ClusterSettingName, ServiceField,
    TaskDefinitionField,
};

use crate::common::live::{drift_then_repair, set, Live};
use crate::common::{config_dir, converged, local, ops, reset_calls, writes};

const CLUSTER: &str = "tap-local";

async fn service(live: &Live, name: &str) -> aws_sdk_ecs::types::Service {
    live.ecs
        .describe_services()
        .cluster(CLUSTER)
        .services(name)
        .include(ServiceField::Tags)
        .send()
        .await
        .unwrap()
        .services()[0]
        .clone()
}

async fn scaling_policies(
    live: &Live,
) -> Vec<aws_sdk_applicationautoscaling::types::ScalingPolicy> {
    live.aas
        .describe_scaling_policies()
        .service_namespace(ServiceNamespace::Ecs)
        .send()
        .await
        .unwrap()
        .scaling_policies()
        .to_vec()
}

#[tokio::test]
async fn the_services_run_as_platform_md_says() {
    let acct = converged().await;
    let live = Live::new(&acct).await;

    // The cluster: Container Insights, FARGATE and FARGATE_SPOT.
    let clusters = live
        .ecs
        .describe_clusters()
        .clusters(CLUSTER)
        .include(ClusterField::Settings)
        .send()
        .await
        .unwrap();
    let cluster = &clusters.clusters()[0];
    assert_eq!(
        cluster.settings()[0].value(),
        Some("enabled"),
        "{cluster:?}"
    );
    let mut providers = cluster.capacity_providers().to_vec();
    providers.sort();
    assert_eq!(providers, ["FARGATE", "FARGATE_SPOT"]);

    let mut private = Vec::new();
    for z in ['a', 'b', 'c'] {
        private.push(live.id(&format!("subnet-private-{z}")).await);
    }
    private.sort();
    let sg_ecs = live.id("sg-ecs").await;
    let tgs = live.elb.describe_target_groups().send().await.unwrap();
    let tg_arn = |name: &str| {
        tgs.target_groups()
            .iter()
            .find(|t| t.target_group_name() == Some(name))
            .and_then(|t| t.target_group_arn())
            .unwrap()
            .to_string()
    };
    for (name, port) in [("frontend", 80), ("backend", 3000)] {
        let s = service(&live, name).await;
        // Desired 3 and running once deployed; private subnets, no public IP, ECS group.
        assert_eq!(s.desired_count(), 3, "{name}");
        assert_eq!(s.running_count(), 3, "{name}: deployed");
        let vpc = s
            .network_configuration()
            .unwrap()
            .awsvpc_configuration()
            .unwrap();
        let mut subnets = vpc.subnets().to_vec();
        subnets.sort();
        assert_eq!(subnets, private, "{name}");
        assert_eq!(vpc.security_groups(), std::slice::from_ref(&sg_ecs));
        assert_eq!(vpc.assign_public_ip().map(|a| a.as_str()), Some("DISABLED"));
        // FARGATE base 3 weight 1 + FARGATE_SPOT weight 2.
        let strategy: Vec<(String, i32, i32)> = s
            .capacity_provider_strategy()
            .iter()
            .map(|i: &CapacityProviderStrategyItem| {
                (i.capacity_provider().to_string(), i.base(), i.weight())
            })
            .collect();
        assert_eq!(
            strategy,
            [("FARGATE".into(), 3, 1), ("FARGATE_SPOT".into(), 0, 2)]
        );
        let d = s.deployment_configuration().unwrap();
        assert_eq!(
            (d.minimum_healthy_percent(), d.maximum_percent()),
            (Some(100), Some(200))
        );
        let breaker = d.deployment_circuit_breaker().unwrap();
        assert!(breaker.enable() && breaker.rollback());
        assert_eq!(s.health_check_grace_period_seconds(), Some(60));
        assert_eq!(s.propagate_tags().map(|p| p.as_str()), Some("SERVICE"));
        assert!(s.enable_ecs_managed_tags());
        let lb = &s.load_balancers()[0];
        assert_eq!(
            (
                lb.target_group_arn(),
                lb.container_name(),
                lb.container_port()
            ),
            (
                Some(tg_arn(&format!("tap-local-{name}")).as_str()),
                Some(name),
                Some(port)
            )
        );
    }

    // Task definitions: Fargate sizes, health checks every 30 s with 3 retries, logs to
    // their own group, the backend's X-Ray sidecar and its DB credentials as secrets.
    let secret = live
        .rds
        .describe_db_clusters()
        .db_cluster_identifier("tap-local-db")
        .send()
        .await
        .unwrap()
        .db_clusters()[0]
        .master_user_secret()
        .unwrap()
        .secret_arn()
        .unwrap()
        .to_string();
    for (family, cpu, memory) in [
        ("tap-local-frontend", "512", "1024"),
        ("tap-local-backend", "1024", "2048"),
    ] {
        let out = live
            .ecs
            .describe_task_definition()
            .task_definition(family)
            .include(TaskDefinitionField::Tags)
            .send()
            .await
            .unwrap();
        let td = out.task_definition().unwrap();
        assert_eq!((td.cpu(), td.memory()), (Some(cpu), Some(memory)));
        assert_eq!(td.network_mode().map(|n| n.as_str()), Some("awsvpc"));
        assert!(td
            .execution_role_arn()
            .unwrap()
            .contains(":role/tap/local/"));
        assert!(td.task_role_arn().unwrap().ends_with("/tap-local-ecs-task"));
        let main = &td.container_definitions()[0];
        let health = main.health_check().unwrap();
        assert_eq!((health.interval(), health.retries()), (Some(30), Some(3)));
        let logs = main.log_configuration().unwrap().options().unwrap();
        assert_eq!(
            logs.get("awslogs-group").map(String::as_str),
            Some(format!("/tap/tap-local/ecs/{}", main.name().unwrap()).as_str())
        );
        assert!(out.tags().iter().any(|t| t.key() == Some("tap:node")));
    }
    let backend = live
        .ecs
        .describe_task_definition()
        .task_definition("tap-local-backend")
        .send()
        .await
        .unwrap();
    let containers = backend.task_definition().unwrap().container_definitions();
    let app = containers
        .iter()
        .find(|c| c.name() == Some("backend"))
        .unwrap();
    assert_eq!(app.port_mappings()[0].container_port(), Some(3000));
    let secrets: BTreeMap<&str, &str> = app
        .secrets()
        .iter()
        .map(|s| (s.name(), s.value_from()))
        .collect();
    // Host, port, database, user and password: each a separate secret (PLATFORM.md), the
    // first three from the connection secret, the credentials from the RDS-managed one.
    let connection = live
        .sm
        .describe_secret()
        .secret_id("tap-local/db-connection")
        .send()
        .await
        .unwrap();
    let conn_arn = connection.arn().unwrap();
    assert!(connection
        .kms_key_id()
        .unwrap()
        .ends_with(&live.key_id().await));
    assert!(connection
        .tags()
        .iter()
        .any(|t| t.key() == Some("tap:node")));
    assert_eq!(
        secrets,
        BTreeMap::from([
            ("DB_HOST", format!("{conn_arn}:host::").as_str()),
            ("DB_NAME", format!("{conn_arn}:dbname::").as_str()),
            ("DB_PASSWORD", format!("{secret}:password::").as_str()),
            ("DB_PORT", format!("{conn_arn}:port::").as_str()),
            ("DB_USER", format!("{secret}:username::").as_str()),
        ])
    );
    let value = live
        .sm
        .get_secret_value()
        .secret_id(conn_arn)
        .send()
        .await
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(value.secret_string().unwrap()).unwrap();
    assert_eq!(
        (&value["port"], &value["dbname"]),
        (&"5432".into(), &"tap".into())
    );
    assert!(value["host"]
        .as_str()
        .unwrap()
        .starts_with("tap-local-db.cluster-"));
    assert!(value.get("password").is_none());
    assert!(
        app.environment()
            .iter()
            .all(|e| !e.name().unwrap_or_default().starts_with("DB_")),
        "no DB setting in the plain environment: {:?}",
        app.environment()
    );
    let xray = containers
        .iter()
        .find(|c| c.name() == Some("xray-daemon"))
        .unwrap();
    assert!(xray.image().unwrap().contains("aws-xray-daemon"));
    let port = &xray.port_mappings()[0];
    assert_eq!(
        (port.container_port(), port.protocol().map(|p| p.as_str())),
        (Some(2000), Some("udp"))
    );

    // Log groups: one per container, 30 days, under the environment's key.
    let key = live.key_id().await;
    for c in ["frontend", "backend", "xray"] {
        let name = format!("/tap/tap-local/ecs/{c}");
        let groups = live
            .logs
            .describe_log_groups()
            .log_group_name_prefix(&name)
            .send()
            .await
            .unwrap();
        let g = &groups.log_groups()[0];
        assert_eq!(g.retention_in_days(), Some(30), "{name}");
        assert!(g.kms_key_id().unwrap().ends_with(&key), "{name}");
    }

    // Least privilege: the execution role reads only this environment's two DB secrets and
    // decrypts only with its key through Secrets Manager; only the ECR token is on "*".
    let doc = role_policy(&live, "tap-local-ecs-execution").await;
    let statements = doc["Statement"].as_array().unwrap();
    let by_action = |action: &str| {
        statements
            .iter()
            .find(|s| s["Action"] == action)
            .unwrap_or_else(|| panic!("no {action} statement in {doc}"))
    };
    assert_eq!(
        by_action("secretsmanager:GetSecretValue")["Resource"],
        serde_json::json!([secret, conn_arn])
    );
    let decrypt = by_action("kms:Decrypt");
    assert!(decrypt["Resource"]
        .as_str()
        .unwrap()
        .ends_with(&format!(":key/{}", live.key_id().await)));
    assert_eq!(
        decrypt["Condition"]["StringEquals"]["kms:ViaService"],
        "secretsmanager.us-east-1.amazonaws.com"
    );
    for s in statements {
        if s["Action"] != "ecr:GetAuthorizationToken" {
            assert_ne!(s["Resource"], "*", "{s}");
        }
    }
    // The task role: X-Ray only.
    let doc = role_policy(&live, "tap-local-ecs-task").await;
    for s in doc["Statement"].as_array().unwrap() {
        for action in s["Action"].as_array().unwrap() {
            assert!(action.as_str().unwrap().starts_with("xray:"), "{action}");
        }
    }

    // Auto scaling: 3..20, CPU 70 and memory 75, cooldowns in 300 s and out 60 s.
    let targets = live
        .aas
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Ecs)
        .send()
        .await
        .unwrap();
    assert_eq!(targets.scalable_targets().len(), 2);
    for t in targets.scalable_targets() {
        assert_eq!(
            t.scalable_dimension(),
            &ScalableDimension::EcsServiceDesiredCount
        );
        assert_eq!((t.min_capacity(), t.max_capacity()), (3, 20));
    }
    let mut policies: Vec<(String, f64, Option<i32>, Option<i32>)> = scaling_policies(&live)
        .await
        .iter()
        .map(|p| {
            let c = p.target_tracking_scaling_policy_configuration().unwrap();
            (
                p.policy_name().to_string(),
                c.target_value(),
                c.scale_in_cooldown(),
                c.scale_out_cooldown(),
            )
        })
        .collect();
    policies.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        policies,
        [
            ("tap-local-backend-cpu".into(), 70.0, Some(300), Some(60)),
            ("tap-local-backend-memory".into(), 75.0, Some(300), Some(60)),
            ("tap-local-frontend-cpu".into(), 70.0, Some(300), Some(60)),
            (
                "tap-local-frontend-memory".into(),
                75.0,
                Some(300),
                Some(60)
            ),
        ]
    );
}

fn url_decode(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() + 1 {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn a_new_image_registers_one_revision_and_updates_only_its_service() {
    let acct = converged().await;
    let dir = config_dir(|t| t.replace("tap/backend:0.1.0", "tap/backend:0.2.0"));
    reset_calls(&acct).await;
    let up = local("up", &["--yes"], &acct, Some(dir.path())).await;
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    let w = writes(&acct).await;
    assert_eq!(
        w,
        BTreeMap::from([
            ("ecs:RegisterTaskDefinition".to_string(), 1),
            ("ecs:UpdateService".to_string(), 1),
            // The applied record, in the state bucket.
            ("s3:PutObject".to_string(), 1),
        ])
    );
    let live = Live::new(&acct).await;
    let backend = service(&live, "backend").await;
    assert!(
        backend
            .task_definition()
            .unwrap()
            .ends_with("/tap-local-backend:2"),
        "{backend:?}"
    );
    assert_eq!(backend.running_count(), 3, "up waited for the deployment");
    let frontend = service(&live, "frontend").await;
    assert!(frontend
        .task_definition()
        .unwrap()
        .ends_with("/tap-local-frontend:1"));
    // The same config again registers nothing.
    reset_calls(&acct).await;
    let again = local("up", &["--yes"], &acct, Some(dir.path())).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(writes(&acct).await.is_empty(), "{:?}", writes(&acct).await);
}

#[tokio::test]
async fn compute_drift_is_put_back_and_the_desired_count_is_left_to_auto_scaling() {
    let acct = converged().await;
    let live = Live::new(&acct).await;
    // By hand: the backend's maximum lowered and its CPU policy deleted; the frontend's
    // grace period and deployment settings changed; Container Insights off and FARGATE_SPOT
    // removed from the cluster; a log group's retention shortened.
    live.aas
        .register_scalable_target()
        .service_namespace(ServiceNamespace::Ecs)
        .resource_id("service/tap-local/backend")
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .max_capacity(5)
        .send()
        .await
        .unwrap();
    live.aas
        .delete_scaling_policy()
        .service_namespace(ServiceNamespace::Ecs)
        .resource_id("service/tap-local/backend")
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .policy_name("tap-local-backend-cpu")
        .send()
        .await
        .unwrap();
    live.ecs
        .update_service()
        .cluster(CLUSTER)
        .service("frontend")
        .health_check_grace_period_seconds(5)
        .deployment_configuration(
            aws_sdk_ecs::types::DeploymentConfiguration::builder()
                .minimum_healthy_percent(50)
                .maximum_percent(200)
                .build(),
        )
        .send()
        .await
        .unwrap();
    live.ecs
        .update_cluster()
        .cluster(CLUSTER)
        .settings(
            ClusterSetting::builder()
                .name(ClusterSettingName::ContainerInsights)
                .value("disabled")
                .build(),
        )
        .send()
        .await
        .unwrap();
    live.ecs
        .put_cluster_capacity_providers()
        .cluster(CLUSTER)
        .capacity_providers("FARGATE")
        .set_default_capacity_provider_strategy(Some(vec![]))
        .send()
        .await
        .unwrap();
    live.logs
        .put_retention_policy()
        .log_group_name("/tap/tap-local/ecs/backend")
        .retention_in_days(1)
        .send()
        .await
        .unwrap();
    // Auto scaling moves the backend to 7 tasks: AWS's value, not drift.
    live.ecs
        .update_service()
        .cluster(CLUSTER)
        .service("backend")
        .desired_count(7)
        .send()
        .await
        .unwrap();

    let (d, _) = drift_then_repair(
        &acct,
        set(&[
            "scaling-backend",
            "service-frontend",
            "ecs-cluster",
            "logs-backend",
        ]),
    )
    .await;
    // Auto scaling's count is shown as AWS's, not reported as drift.
    let backend = d
        .events_of("drift")
        .into_iter()
        .find(|e| e["node"] == "service-backend")
        .unwrap();
    assert!(backend.get("drift").is_none(), "{backend}");
    assert_eq!(backend["ignored"][0]["field"], "desired_count");
    assert_eq!(backend["ignored"][0]["have"], "7");
    assert_eq!(
        writes(&acct).await,
        ops(&[
            ("application-autoscaling:RegisterScalableTarget", 1),
            ("application-autoscaling:PutScalingPolicy", 1),
            ("ecs:UpdateService", 1),
            ("ecs:UpdateCluster", 1),
            ("ecs:PutClusterCapacityProviders", 1),
            ("logs:PutRetentionPolicy", 1),
        ])
    );
    assert_eq!(service(&live, "backend").await.desired_count(), 7);
    let frontend = service(&live, "frontend").await;
    assert_eq!(frontend.health_check_grace_period_seconds(), Some(60));
    assert_eq!(
        frontend
            .deployment_configuration()
            .and_then(|d| d.minimum_healthy_percent()),
        Some(100)
    );
    assert_eq!(scaling_policies(&live).await.len(), 4);
}

#[tokio::test]
async fn services_and_task_definitions_deleted_out_of_band_are_put_back() {
    let acct = converged().await;
    let live = Live::new(&acct).await;
    live.ecs
        .delete_service()
        .cluster(CLUSTER)
        .service("frontend")
        .force(true)
        .send()
        .await
        .unwrap();
    live.ecs
        .deregister_task_definition()
        .task_definition("tap-local-backend:1")
        .send()
        .await
        .unwrap();
    live.logs
        .delete_log_group()
        .log_group_name("/tap/tap-local/ecs/xray")
        .send()
        .await
        .unwrap();
    // The backend's service would move to the new revision: it drifts with its definition.
    drift_then_repair(
        &acct,
        set(&[
            "logs-xray",
            "service-frontend",
            "task-backend",
            "service-backend",
        ]),
    )
    .await;
    let mut w = writes(&acct).await;
    // Refused once more when the old service still drains (the emulator's 4 s, minutes on
    // AWS): the rule SERVICE_NAME_DRAINING retries it.
    let creates = w.remove("ecs:CreateService");
    assert!(matches!(creates, Some(1..=3)), "{creates:?}");
    assert_eq!(
        w,
        BTreeMap::from([
            ("ecs:RegisterTaskDefinition".to_string(), 1),
            ("ecs:UpdateService".to_string(), 1),
            ("logs:CreateLogGroup".to_string(), 1),
            ("logs:PutRetentionPolicy".to_string(), 1),
            // The applied record, with the identifiers of what was made again.
            ("s3:PutObject".to_string(), 1),
        ])
    );
    let backend = service(&live, "backend").await;
    assert!(backend
        .task_definition()
        .unwrap()
        .ends_with("/tap-local-backend:2"));
    let frontend = service(&live, "frontend").await;
    assert_eq!(frontend.status(), Some("ACTIVE"));
    assert_eq!(frontend.running_count(), 3);
}

#[tokio::test]
async fn a_cluster_deleted_with_its_services_is_put_back() {
    let acct = converged().await;
    let live = Live::new(&acct).await;
    // AWS refuses DeleteCluster while services exist, draining ones included: delete both,
    // wait for them to be INACTIVE, then the cluster, as an operator would have to.
    for name in ["frontend", "backend"] {
        live.ecs
            .delete_service()
            .cluster(CLUSTER)
            .service(name)
            .force(true)
            .send()
            .await
            .unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = live
            .ecs
            .describe_services()
            .cluster(CLUSTER)
            .services("frontend")
            .services("backend")
            .send()
            .await
            .unwrap();
        if out
            .services()
            .iter()
            .all(|s| s.status() == Some("INACTIVE"))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "services still draining"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    live.ecs
        .delete_cluster()
        .cluster(CLUSTER)
        .send()
        .await
        .unwrap();

    drift_then_repair(
        &acct,
        set(&["ecs-cluster", "service-frontend", "service-backend"]),
    )
    .await;
    // The cluster's and services' ARNs are made of their names: the record stays as it is.
    assert_eq!(
        writes(&acct).await,
        ops(&[("ecs:CreateCluster", 1), ("ecs:CreateService", 2)])
    );
    let cluster = live
        .ecs
        .describe_clusters()
        .clusters(CLUSTER)
        .send()
        .await
        .unwrap();
    assert_eq!(cluster.clusters()[0].status(), Some("ACTIVE"));
    for name in ["frontend", "backend"] {
        assert_eq!(service(&live, name).await.status(), Some("ACTIVE"));
    }
}

/// The inline policy the tool gives a role, parsed.
async fn role_policy(live: &Live, role: &str) -> serde_json::Value {
    let policy = live
        .iam
        .get_role_policy()
        .role_name(role)
        .policy_name("tap-provision")
        .send()
        .await
        .unwrap();
    let doc = policy.policy_document();
    let doc = if doc.starts_with('{') {
        doc.to_string()
    } else {
        url_decode(doc)
    };
    serde_json::from_str(&doc).unwrap()
}

#[tokio::test]
async fn the_connection_secret_and_a_scalable_target_deleted_or_changed_are_put_back() {
    let acct = converged().await;
    let live = Live::new(&acct).await;
    // By hand: the connection secret scheduled for deletion (restorable for 7 days), and
    // the frontend's scalable target deregistered (its policies go with it).
    live.sm
        .delete_secret()
        .secret_id("tap-local/db-connection")
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    live.aas
        .deregister_scalable_target()
        .service_namespace(ServiceNamespace::Ecs)
        .resource_id(format!("service/{CLUSTER}/frontend"))
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .send()
        .await
        .unwrap();
    drift_then_repair(&acct, set(&["db-connection", "scaling-frontend"])).await;
    let w = writes(&acct).await;
    assert_eq!(
        w,
        BTreeMap::from([
            ("secretsmanager:RestoreSecret".to_string(), 1),
            (
                "application-autoscaling:RegisterScalableTarget".to_string(),
                1
            ),
            ("application-autoscaling:PutScalingPolicy".to_string(), 2),
            // The applied record, with the identifiers of what was made again.
            ("s3:PutObject".to_string(), 1),
        ])
    );
    let targets = live
        .aas
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Ecs)
        .send()
        .await
        .unwrap();
    assert_eq!(targets.scalable_targets().len(), 2);

    // Then its value pointed elsewhere and its description changed: drift, and repair
    // writes both back.
    live.sm
        .update_secret()
        .secret_id("tap-local/db-connection")
        .description("edited by hand")
        .send()
        .await
        .unwrap();
    live.sm
        .put_secret_value()
        .secret_id("tap-local/db-connection")
        .secret_string(r#"{"host":"db.attacker.example","port":"5432","dbname":"tap"}"#)
        .send()
        .await
        .unwrap();
    drift_then_repair(&acct, set(&["db-connection"])).await;
    assert_eq!(
        writes(&acct).await,
        BTreeMap::from([
            ("secretsmanager:PutSecretValue".to_string(), 1),
            ("secretsmanager:UpdateSecret".to_string(), 1),
        ])
    );
    let value = live
        .sm
        .get_secret_value()
        .secret_id("tap-local/db-connection")
        .send()
        .await
        .unwrap();
    assert!(value
        .secret_string()
        .unwrap()
        .contains("tap-local-db.cluster-"));
}

/// A revision registered by hand (a hot-fixed image) and set on the service: `drift` names
/// the image and the service, writing nothing; `repair` registers the applied definition
/// again and moves the service back to it.
#[tokio::test]
async fn a_revision_registered_and_deployed_by_hand_is_drift_and_repair_moves_the_service_back() {
    let acct = converged().await;
    let live = Live::new(&acct).await;
    let cur = live
        .ecs
        .describe_task_definition()
        .task_definition("tap-local-backend")
        .include(TaskDefinitionField::Tags)
        .send()
        .await
        .unwrap();
    let td = cur.task_definition().unwrap();
    let mut containers = td.container_definitions().to_vec();
    for c in &mut containers {
        if c.name() == Some("backend") {
            c.image = Some("tap/backend:0.1.0-hotfix".into());
        }
    }
    let hand = live
        .ecs
        .register_task_definition()
        .family("tap-local-backend")
        .set_requires_compatibilities(Some(td.requires_compatibilities().to_vec()))
        .set_network_mode(td.network_mode().cloned())
        .set_cpu(td.cpu().map(String::from))
        .set_memory(td.memory().map(String::from))
        .set_execution_role_arn(td.execution_role_arn().map(String::from))
        .set_task_role_arn(td.task_role_arn().map(String::from))
        .set_container_definitions(Some(containers))
        .set_tags(Some(cur.tags().to_vec()))
        .send()
        .await
        .unwrap();
    let hand_arn = hand
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .unwrap()
        .to_string();
    assert!(hand_arn.ends_with("/tap-local-backend:2"), "{hand_arn}");
    live.ecs
        .update_service()
        .cluster(CLUSTER)
        .service("backend")
        .task_definition(&hand_arn)
        .send()
        .await
        .unwrap();

    let (d, _) = drift_then_repair(&acct, set(&["task-backend", "service-backend"])).await;
    let t = d
        .events_of("drift")
        .into_iter()
        .find(|e| e["node"] == "task-backend")
        .unwrap();
    let changes = t["drift"]["changes"].to_string();
    assert!(
        changes.contains("containers.backend.image") && changes.contains("0.1.0-hotfix"),
        "{t}"
    );
    assert_eq!(
        writes(&acct).await,
        ops(&[
            ("ecs:RegisterTaskDefinition", 1),
            ("ecs:UpdateService", 1),
            // the applied record: a new revision's ARN
            ("s3:PutObject", 1),
        ])
    );
    let backend = service(&live, "backend").await;
    assert!(
        backend
            .task_definition()
            .is_some_and(|t| t.ends_with("/tap-local-backend:3")),
        "{backend:?}"
    );
    assert_eq!(
        backend.running_count(),
        3,
        "repair waited for the deployment"
    );
}
