//! Alerting: the encrypted alerts topic with the config's email subscriptions, the alarms
//! (ECS CPU per service, Aurora connections as a share of max_connections per instance,
//! unhealthy targets per target group, target 5XX) and the dashboard. Every metric dimension
//! is filled from the node that owns the resource, so each alarm watches a live resource.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::compute::ECS_CLUSTER;
use super::database::db_instance_id;
use super::edge::LOAD_BALANCER;
use super::network::Network;
use super::Stack;
use crate::config::EnvConfig;
use crate::resources::dashboard::Dashboard;
use crate::resources::metric_alarm::{MetricAlarm, Query, Watch, Watched};
use crate::resources::sns_topic::SnsTopic;
use crate::resources::template::Template;

pub const ALERTS_TOPIC: &str = "alerts-topic";
const SERVICES: [&str; 2] = ["frontend", "backend"];
/// ECS CPU (PLATFORM.md): above 80 % on average over two 5-minute periods.
const CPU_THRESHOLD: f64 = 80.0;
/// Aurora connections: above 90 % of the class's max_connections for 3 minutes.
const CONNECTIONS_PERCENT: f64 = 90.0;
/// Target 5XX answers in 5 minutes above which someone should look.
const TARGET_5XX_THRESHOLD: f64 = 10.0;

fn dims(pairs: &[(&str, String)]) -> BTreeMap<String, Template> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Template::from(v.as_str())))
        .collect()
}

fn attr(node: &str, attr: &str) -> String {
    format!("${{{node}.{attr}}}")
}

pub fn build(s: &mut Stack<'_>, env: &EnvConfig, net: &Network) {
    let topic = s.add(
        ALERTS_TOPIC,
        SnsTopic {
            suffix: "alerts".into(),
            key: net.key.clone(),
            emails: env.alert_emails.clone(),
        },
    );
    let alarm = |s: &mut Stack<'_>, node: &str, spec: MetricAlarm| s.add(node, spec);

    for service in SERVICES {
        let node = format!("service-{service}");
        alarm(
            s,
            &format!("alarm-cpu-{service}"),
            MetricAlarm {
                suffix: format!("ecs-cpu-{service}"),
                description: format!(
                    "The {service} service's tasks average over {CPU_THRESHOLD} % CPU for 10 minutes. Check first: the service's running count against its auto scaling maximum (scaling may be capped), then a recent deployment (`up` output, ECS events)."
                ),
                watch: Watch::Metric(Watched {
                    namespace: "AWS/ECS".into(),
                    metric_name: "CPUUtilization".into(),
                    dimensions: dims(&[
                        ("ClusterName", attr(ECS_CLUSTER, "id")),
                        ("ServiceName", attr(&node, "id")),
                    ]),
                    stat: "Average".into(),
                    period: 300,
                }),
                comparison: "GreaterThanThreshold".into(),
                threshold: CPU_THRESHOLD,
                evaluation_periods: 2,
                datapoints_to_alarm: 2,
                // Utilisation: no data (no tasks reporting) is not high CPU.
                treat_missing_data: "notBreaching".into(),
                topic: topic.clone(),
            },
        );
    }

    // PLATFORM.md (fix): a share of max_connections, not a count of 90.
    // Validation refuses a class whose max_connections is unknown; 5000 (AWS's cap) is only
    // a guard, never a number that would make the alarm fire early.
    let max_connections =
        crate::config::aurora::max_connections(&env.database.instance_class).unwrap_or(5000);
    for number in 1..=env.database.readers + 1 {
        let instance = db_instance_id(number);
        alarm(
            s,
            &format!("alarm-db-connections-{number}"),
            MetricAlarm {
                suffix: format!("db-connections-{number}"),
                description: format!(
                    "Aurora instance {number} holds over {CONNECTIONS_PERCENT} % of its {max_connections} connections (max_connections of {}) for 3 minutes; new connections will soon be refused. Check first: the backend's task count and connection pool size, then idle sessions in pg_stat_activity.",
                    env.database.instance_class
                ),
                watch: Watch::Math(vec![
                    Query {
                        id: "m1".into(),
                        metric: Some(Watched {
                            namespace: "AWS/RDS".into(),
                            metric_name: "DatabaseConnections".into(),
                            dimensions: dims(&[("DBInstanceIdentifier", attr(&instance, "id"))]),
                            stat: "Maximum".into(),
                            period: 60,
                        }),
                        expression: None,
                        label: None,
                        return_data: false,
                    },
                    Query {
                        id: "e1".into(),
                        metric: None,
                        expression: Some(format!("100 * m1 / {max_connections}")),
                        label: Some(format!("connections, % of max_connections ({max_connections})")),
                        return_data: true,
                    },
                ]),
                comparison: "GreaterThanThreshold".into(),
                threshold: CONNECTIONS_PERCENT,
                evaluation_periods: 3,
                datapoints_to_alarm: 3,
                treat_missing_data: "notBreaching".into(),
                topic: topic.clone(),
            },
        );
    }

    for service in SERVICES {
        let tg = format!("tg-{service}");
        alarm(
            s,
            &format!("alarm-unhealthy-{service}"),
            MetricAlarm {
                suffix: format!("alb-unhealthy-{service}"),
                description: format!(
                    "At least one {service} target has failed its load balancer health check for 2 minutes. Check first: the target group's health check reasons (`aws elbv2 describe-target-health`), then the tasks' container health checks and logs."
                ),
                watch: Watch::Metric(Watched {
                    namespace: "AWS/ApplicationELB".into(),
                    metric_name: "UnHealthyHostCount".into(),
                    dimensions: dims(&[
                        ("LoadBalancer", attr(LOAD_BALANCER, "arn_suffix")),
                        ("TargetGroup", attr(&tg, "arn_suffix")),
                    ]),
                    stat: "Maximum".into(),
                    period: 60,
                }),
                comparison: "GreaterThanOrEqualToThreshold".into(),
                threshold: 1.0,
                evaluation_periods: 2,
                datapoints_to_alarm: 2,
                // Health: silence from the load balancer is itself a problem.
                treat_missing_data: "breaching".into(),
                topic: topic.clone(),
            },
        );
    }

    alarm(
        s,
        "alarm-target-5xx",
        MetricAlarm {
            suffix: "alb-target-5xx".into(),
            description: format!(
                "The application's targets answered more than {TARGET_5XX_THRESHOLD} 5XX responses in 5 minutes. Check first: the backend's logs (log group /{}/{}/ecs/backend) and X-Ray traces, then the database's health.",
                env.project,
                env.full_name()
            ),
            watch: Watch::Metric(Watched {
                namespace: "AWS/ApplicationELB".into(),
                metric_name: "HTTPCode_Target_5XX_Count".into(),
                dimensions: dims(&[("LoadBalancer", attr(LOAD_BALANCER, "arn_suffix"))]),
                stat: "Sum".into(),
                period: 300,
            }),
            comparison: "GreaterThanThreshold".into(),
            threshold: TARGET_5XX_THRESHOLD,
            evaluation_periods: 1,
            datapoints_to_alarm: 1,
            // No requests, no errors.
            treat_missing_data: "notBreaching".into(),
            topic,
        },
    );

    dashboard(s, env, max_connections);
}

/// ECS CPU and memory per service; ALB requests, latency and 5XX; DB connections (count and
/// share of max_connections) and CPU per instance.
fn dashboard(s: &mut Stack<'_>, env: &EnvConfig, max_connections: u64) {
    let instances: Vec<String> = (1..=env.database.readers + 1).map(db_instance_id).collect();
    let ecs = |metric: &str| -> Vec<Value> {
        SERVICES
            .iter()
            .map(|svc| {
                json!([
                    "AWS/ECS",
                    metric,
                    "ClusterName",
                    attr(ECS_CLUSTER, "id"),
                    "ServiceName",
                    attr(&format!("service-{svc}"), "id")
                ])
            })
            .collect()
    };
    let alb = |metric: &str| {
        json!([
            "AWS/ApplicationELB",
            metric,
            "LoadBalancer",
            attr(LOAD_BALANCER, "arn_suffix")
        ])
    };
    let rds = |metric: &str, options: &dyn Fn(usize) -> Value| -> Vec<Value> {
        instances
            .iter()
            .enumerate()
            .map(|(i, node)| {
                json!([
                    "AWS/RDS",
                    metric,
                    "DBInstanceIdentifier",
                    attr(node, "id"),
                    options(i)
                ])
            })
            .collect()
    };
    let mut connections_percent: Vec<Value> = rds(
        "DatabaseConnections",
        &|i| json!({"id": format!("m{}", i + 1), "visible": false}),
    );
    connections_percent.extend((0..instances.len()).map(|i| {
        json!([{"expression": format!("100 * m{} / {max_connections}", i + 1),
                "label": format!("{} % of max_connections", instances[i]),
                "id": format!("e{}", i + 1)}])
    }));
    let widget = |i: usize, title: &str, stat: &str, metrics: Vec<Value>| {
        json!({
            "type": "metric",
            "x": (i % 2) * 12, "y": (i / 2) * 6, "width": 12, "height": 6,
            "properties": {
                "title": title, "region": "${region}", "view": "timeSeries",
                "stat": stat, "period": 60, "metrics": metrics
            }
        })
    };
    let widgets = vec![
        widget(
            0,
            "ECS CPU utilization (%)",
            "Average",
            ecs("CPUUtilization"),
        ),
        widget(
            1,
            "ECS memory utilization (%)",
            "Average",
            ecs("MemoryUtilization"),
        ),
        widget(2, "ALB requests", "Sum", vec![alb("RequestCount")]),
        widget(
            3,
            "ALB target response time (s)",
            "p99",
            vec![alb("TargetResponseTime")],
        ),
        widget(
            4,
            "ALB 5XX",
            "Sum",
            vec![
                alb("HTTPCode_Target_5XX_Count"),
                alb("HTTPCode_ELB_5XX_Count"),
            ],
        ),
        widget(
            5,
            "DB connections",
            "Maximum",
            rds("DatabaseConnections", &|_| json!({})),
        ),
        widget(
            6,
            &format!("DB connections, % of max_connections ({max_connections})"),
            "Maximum",
            connections_percent,
        ),
        widget(
            7,
            "DB CPU utilization (%)",
            "Average",
            rds("CPUUtilization", &|_| json!({})),
        ),
    ];
    s.add(
        "dashboard",
        Dashboard {
            body: Template(json!({ "widgets": widgets })),
        },
    );
}
