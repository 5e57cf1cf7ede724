//! Alerting and outputs on the emulator: the encrypted topic and its subscriptions, alarms
//! whose dimensions name live resources, the dashboard, `status --json`; drift put back; an
//! address added or removed in config changes exactly that subscription.

use std::collections::BTreeMap;

use aws_sdk_cloudwatch::types::MetricAlarm;
use serde_json::Value;

use crate::common::live::{drift_then_repair, set, Live};
use crate::common::{account, config_dir, converged, local, ops, reset_calls, sdk, up_ok, writes};

const ENV: &str = "tap-local";

fn topic_arn(acct: &str) -> String {
    format!("arn:aws:sns:us-east-1:{acct}:{ENV}-alerts")
}

async fn alarms(cw: &aws_sdk_cloudwatch::Client) -> BTreeMap<String, MetricAlarm> {
    let out = cw
        .describe_alarms()
        .alarm_name_prefix(format!("{ENV}-"))
        .send()
        .await
        .unwrap();
    out.metric_alarms()
        .iter()
        .map(|a| (a.alarm_name().unwrap().to_string(), a.clone()))
        .collect()
}

async fn emails(sns: &aws_sdk_sns::Client, acct: &str) -> Vec<String> {
    let subs = sns
        .list_subscriptions_by_topic()
        .topic_arn(topic_arn(acct))
        .send()
        .await
        .unwrap();
    let mut all: Vec<String> = subs
        .subscriptions()
        .iter()
        .map(|s| s.endpoint().unwrap().to_string())
        .collect();
    all.sort();
    all
}

fn dims(a: &MetricAlarm) -> BTreeMap<String, String> {
    a.dimensions()
        .iter()
        .map(|d| (d.name().unwrap().into(), d.value().unwrap().into()))
        .collect()
}

fn suffix(arn: &str) -> String {
    match arn.split_once(":loadbalancer/") {
        Some((_, rest)) => rest.to_string(),
        None => arn.rsplit(':').next().unwrap().to_string(),
    }
}

#[tokio::test]
async fn alarms_watch_live_resources_and_status_reports_them() {
    let acct = account();
    let up = up_ok(&acct).await;
    let conf = sdk(&acct).await;
    let live = Live::new(&acct).await;
    let sns = aws_sdk_sns::Client::new(&conf);
    let cw = aws_sdk_cloudwatch::Client::new(&conf);

    // The topic: under the environment's key, with the config's address.
    let attributes = sns
        .get_topic_attributes()
        .topic_arn(topic_arn(&acct))
        .send()
        .await
        .unwrap();
    let key = attributes.attributes().unwrap()["KmsMasterKeyId"].clone();
    assert!(key.ends_with(&live.key_id().await), "{key}");
    assert_eq!(emails(&sns, &acct).await, ["dev@example.com"]);
    // ... whose policy lets CloudWatch publish to it (moto does not enforce key policies).
    let policy = live
        .kms
        .get_key_policy()
        .key_id(live.key_id().await)
        .policy_name("default")
        .send()
        .await
        .unwrap();
    let policy: Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    let grant = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Principal"]["Service"] == "cloudwatch.amazonaws.com")
        .expect("a statement for CloudWatch");
    assert_eq!(grant["Effect"], "Allow");
    assert_eq!(
        grant["Action"],
        serde_json::json!(["kms:Decrypt", "kms:GenerateDataKey*"])
    );

    // The live resources the alarms must name.
    let lbs = live.elb.describe_load_balancers().send().await.unwrap();
    let lb = suffix(lbs.load_balancers()[0].load_balancer_arn().unwrap());
    let tgs = live.elb.describe_target_groups().send().await.unwrap();
    let tg_suffix: BTreeMap<String, String> = tgs
        .target_groups()
        .iter()
        .map(|t| {
            (
                t.target_group_name().unwrap().to_string(),
                suffix(t.target_group_arn().unwrap()),
            )
        })
        .collect();
    let instances = live.rds.describe_db_instances().send().await.unwrap();
    let instance_ids: Vec<String> = instances
        .db_instances()
        .iter()
        .map(|i| i.db_instance_identifier().unwrap().to_string())
        .collect();
    let services = live.ecs.list_services().cluster(ENV).send().await.unwrap();
    let service_names: Vec<String> = services
        .service_arns()
        .iter()
        .map(|a| a.rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(service_names.len(), 2);

    let all = alarms(&cw).await;
    assert_eq!(all.len(), 7, "{:?}", all.keys());
    let topic = topic_arn(&acct);
    for (name, a) in &all {
        assert_eq!(a.alarm_actions(), std::slice::from_ref(&topic), "{name}");
        assert_eq!(a.ok_actions(), std::slice::from_ref(&topic), "{name}");
        assert!(
            a.alarm_description()
                .is_some_and(|d| d.contains("Check first")),
            "{name} tells what to check first"
        );
    }
    for service in ["frontend", "backend"] {
        let a = &all[&format!("{ENV}-ecs-cpu-{service}")];
        assert_eq!(
            (a.namespace(), a.metric_name(), a.threshold()),
            (Some("AWS/ECS"), Some("CPUUtilization"), Some(80.0))
        );
        assert_eq!((a.period(), a.evaluation_periods()), (Some(300), Some(2)));
        assert_eq!(a.statistic().map(|s| s.as_str()), Some("Average"));
        assert_eq!(a.treat_missing_data(), Some("notBreaching"));
        let d = dims(a);
        assert_eq!(d.len(), 2);
        let clusters = live
            .ecs
            .describe_clusters()
            .clusters(&d["ClusterName"])
            .send()
            .await
            .unwrap();
        assert_eq!(
            clusters.clusters()[0].status(),
            Some("ACTIVE"),
            "the cluster is live: {d:?}"
        );
        assert!(service_names.contains(&d["ServiceName"]), "{d:?}");
        assert_eq!(d["ServiceName"], service);

        let a = &all[&format!("{ENV}-alb-unhealthy-{service}")];
        assert_eq!(a.metric_name(), Some("UnHealthyHostCount"));
        assert_eq!(
            a.comparison_operator().map(|c| c.as_str()),
            Some("GreaterThanOrEqualToThreshold")
        );
        assert_eq!((a.threshold(), a.period()), (Some(1.0), Some(60)));
        assert_eq!(a.evaluation_periods(), Some(2));
        assert_eq!(a.treat_missing_data(), Some("breaching"));
        assert_eq!(
            dims(a),
            BTreeMap::from([
                ("LoadBalancer".to_string(), lb.clone()),
                (
                    "TargetGroup".to_string(),
                    tg_suffix[&format!("{ENV}-{service}")].clone()
                ),
            ])
        );
    }
    let a = &all[&format!("{ENV}-alb-target-5xx")];
    assert_eq!(a.metric_name(), Some("HTTPCode_Target_5XX_Count"));
    assert_eq!(
        a.treat_missing_data(),
        Some("notBreaching"),
        "no requests, no errors"
    );
    assert_eq!(
        dims(a),
        BTreeMap::from([("LoadBalancer".to_string(), lb.clone())])
    );
    // Connections: a share of max_connections (db.t4g.medium: 420), threshold 90 percent.
    let mut watched = Vec::new();
    for number in [1, 2] {
        let a = &all[&format!("{ENV}-db-connections-{number}")];
        assert_eq!(a.threshold(), Some(90.0));
        assert_eq!(a.treat_missing_data(), Some("notBreaching"));
        let metrics = a.metrics();
        let expression = metrics
            .iter()
            .find_map(|m| m.expression())
            .expect("an expression");
        assert_eq!(expression, "100 * m1 / 420");
        let m1 = metrics
            .iter()
            .find(|m| m.id() == Some("m1"))
            .unwrap()
            .metric_stat()
            .unwrap()
            .metric()
            .unwrap();
        assert_eq!(m1.metric_name(), Some("DatabaseConnections"));
        watched.push(m1.dimensions()[0].value().unwrap().to_string());
    }
    watched.sort();
    let mut ids = instance_ids.clone();
    ids.sort();
    assert_eq!(watched, ids, "one alarm per live instance");

    // The dashboard references every metric PLATFORM.md names.
    let dashboard = cw.get_dashboard().dashboard_name(ENV).send().await.unwrap();
    let body = dashboard.dashboard_body().unwrap();
    for metric in [
        "\"AWS/ECS\",\"CPUUtilization\"",
        "\"AWS/ECS\",\"MemoryUtilization\"",
        "RequestCount",
        "TargetResponseTime",
        "HTTPCode_Target_5XX_Count",
        "\"AWS/RDS\",\"DatabaseConnections\"",
        "100 * m1 / 420",
        "\"AWS/RDS\",\"CPUUtilization\"",
    ] {
        assert!(body.contains(metric), "{metric} in {body}");
    }
    assert!(!body.contains("${"), "every placeholder filled: {body}");
    for name in [
        &lb,
        &instance_ids[0],
        &instance_ids[1],
        &service_names[0],
        &service_names[1],
    ] {
        assert!(body.contains(name.as_str()), "{name} in {body}");
    }

    // `status --json`: every output, and each alarm's state (one forced to ALARM).
    cw.set_alarm_state()
        .alarm_name(format!("{ENV}-alb-target-5xx"))
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .state_reason("test")
        .send()
        .await
        .unwrap();
    let status = local("status", &[], &acct, None).await;
    assert_eq!(status.code, 0, "{}\n{}", status.stdout, status.stderr);
    let event = status.event("status");
    let outputs = &event["outputs"];
    for key in [
        "application_url",
        "cdn_url",
        "alb_dns_name",
        "db_writer_endpoint",
        "db_reader_endpoint",
        "db_secret_arn",
        "dashboard_url",
    ] {
        assert!(
            outputs[key].as_str().is_some_and(|v| !v.is_empty()),
            "{key} in {outputs}"
        );
    }
    assert!(outputs["dashboard_url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("#dashboards/dashboard/{ENV}")));
    assert_eq!(outputs["application_url"], "https://tap.local.example.com");
    assert_eq!(outputs["cdn_url"], "https://cdn.tap.local.example.com");
    assert_eq!(
        outputs["alb_dns_name"],
        lbs.load_balancers()[0].dns_name().unwrap()
    );
    let cluster = live.rds.describe_db_clusters().send().await.unwrap();
    let cluster = &cluster.db_clusters()[0];
    assert_eq!(outputs["db_writer_endpoint"], cluster.endpoint().unwrap());
    assert_eq!(
        outputs["db_reader_endpoint"],
        cluster.reader_endpoint().unwrap()
    );
    assert_eq!(
        outputs["db_secret_arn"],
        cluster.master_user_secret().unwrap().secret_arn().unwrap()
    );
    let states: BTreeMap<String, String> = outputs["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(states.len(), 7, "{outputs}");
    assert_eq!(states[&format!("{ENV}-alb-target-5xx")], "ALARM");
    for (name, a) in alarms(&cw).await {
        assert_eq!(
            Some(states[&name].as_str()),
            a.state_value().map(|s| s.as_str()),
            "{name}"
        );
    }
    // The same outputs end `up`.
    let at_up = &up.finished()["outputs"];
    for key in [
        "application_url",
        "cdn_url",
        "alb_dns_name",
        "db_writer_endpoint",
        "db_reader_endpoint",
        "db_secret_arn",
        "dashboard_url",
    ] {
        assert_eq!(at_up[key], outputs[key], "{key}");
    }
    assert_eq!(at_up["alarms"].as_array().map(Vec::len), Some(7));
}

#[tokio::test]
async fn a_changed_threshold_and_deleted_alarm_and_dashboard_are_put_back() {
    let acct = converged().await;
    let conf = sdk(&acct).await;
    let cw = aws_sdk_cloudwatch::Client::new(&conf);
    let sns = aws_sdk_sns::Client::new(&conf);
    // By hand: the frontend's CPU threshold raised to 99, the 5XX alarm and the dashboard
    // deleted, the address unsubscribed, the topic's encryption turned off.
    let all = alarms(&cw).await;
    let cpu = &all[&format!("{ENV}-ecs-cpu-frontend")];
    cw.put_metric_alarm()
        .alarm_name(cpu.alarm_name().unwrap())
        .alarm_description(cpu.alarm_description().unwrap())
        .set_alarm_actions(Some(cpu.alarm_actions().to_vec()))
        .set_ok_actions(Some(cpu.ok_actions().to_vec()))
        .namespace(cpu.namespace().unwrap())
        .metric_name(cpu.metric_name().unwrap())
        .set_dimensions(Some(cpu.dimensions().to_vec()))
        .statistic(cpu.statistic().unwrap().clone())
        .period(300)
        .evaluation_periods(2)
        .datapoints_to_alarm(2)
        .threshold(99.0)
        .comparison_operator(cpu.comparison_operator().unwrap().clone())
        .treat_missing_data("notBreaching")
        .send()
        .await
        .unwrap();
    cw.delete_alarms()
        .alarm_names(format!("{ENV}-alb-target-5xx"))
        .send()
        .await
        .unwrap();
    cw.delete_dashboards()
        .dashboard_names(ENV)
        .send()
        .await
        .unwrap();
    let subs = sns
        .list_subscriptions_by_topic()
        .topic_arn(topic_arn(&acct))
        .send()
        .await
        .unwrap();
    sns.unsubscribe()
        .subscription_arn(subs.subscriptions()[0].subscription_arn().unwrap())
        .send()
        .await
        .unwrap();
    // ... and the topic's encryption turned off.
    sns.set_topic_attributes()
        .topic_arn(topic_arn(&acct))
        .attribute_name("KmsMasterKeyId")
        .attribute_value("")
        .send()
        .await
        .unwrap();

    drift_then_repair(
        &acct,
        set(&[
            "alarm-cpu-frontend",
            "alarm-target-5xx",
            "dashboard",
            "alerts-topic",
        ]),
    )
    .await;
    assert_eq!(
        writes(&acct).await,
        BTreeMap::from([
            ("monitoring:PutMetricAlarm".to_string(), 2),
            ("monitoring:PutDashboard".to_string(), 1),
            ("sns:Subscribe".to_string(), 1),
            ("sns:SetTopicAttributes".to_string(), 1),
        ])
    );
    let attributes = sns
        .get_topic_attributes()
        .topic_arn(topic_arn(&acct))
        .send()
        .await
        .unwrap();
    assert!(attributes.attributes().unwrap()["KmsMasterKeyId"].contains(":key/"));
    let all = alarms(&cw).await;
    assert_eq!(
        all[&format!("{ENV}-ecs-cpu-frontend")].threshold(),
        Some(80.0)
    );
    assert!(all.contains_key(&format!("{ENV}-alb-target-5xx")));
    assert_eq!(emails(&sns, &acct).await, ["dev@example.com"]);
}

#[tokio::test]
async fn an_address_added_or_removed_in_config_changes_exactly_that_subscription() {
    let acct = converged().await;
    let sns = aws_sdk_sns::Client::new(&sdk(&acct).await);
    let two = config_dir(|t| {
        t.replace(
            r#"alert_emails = ["dev@example.com"]"#,
            r#"alert_emails = ["dev@example.com", "oncall@example.com"]"#,
        )
    });
    reset_calls(&acct).await;
    let r = local("up", &["--yes"], &acct, Some(two.path())).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    // The subscription, and the applied record (the topic's addresses are in its spec).
    assert_eq!(
        writes(&acct).await,
        ops(&[("sns:Subscribe", 1), ("s3:PutObject", 1)])
    );
    assert_eq!(
        emails(&sns, &acct).await,
        ["dev@example.com", "oncall@example.com"]
    );

    let other = config_dir(|t| {
        t.replace(
            r#"alert_emails = ["dev@example.com"]"#,
            r#"alert_emails = ["oncall@example.com"]"#,
        )
    });
    reset_calls(&acct).await;
    let r = local("up", &["--yes"], &acct, Some(other.path())).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        writes(&acct).await,
        ops(&[("sns:Unsubscribe", 1), ("s3:PutObject", 1)])
    );
    assert_eq!(emails(&sns, &acct).await, ["oncall@example.com"]);
}

#[tokio::test]
async fn a_deleted_topic_and_an_edited_dashboard_are_put_back() {
    let acct = converged().await;
    let conf = sdk(&acct).await;
    let cw = aws_sdk_cloudwatch::Client::new(&conf);
    let sns = aws_sdk_sns::Client::new(&conf);
    sns.delete_topic()
        .topic_arn(topic_arn(&acct))
        .send()
        .await
        .unwrap();
    cw.put_dashboard()
        .dashboard_name(ENV)
        .dashboard_body(r#"{"widgets":[]}"#)
        .send()
        .await
        .unwrap();
    // The alarms name the topic by its ARN, which a new topic of the same name keeps.
    drift_then_repair(&acct, set(&["alerts-topic", "dashboard"])).await;
    assert_eq!(
        writes(&acct).await,
        BTreeMap::from([
            ("sns:CreateTopic".to_string(), 1),
            ("sns:Subscribe".to_string(), 1),
            ("monitoring:PutDashboard".to_string(), 1),
        ])
    );
    assert_eq!(emails(&sns, &acct).await, ["dev@example.com"]);
    let body = cw.get_dashboard().dashboard_name(ENV).send().await.unwrap();
    assert!(body
        .dashboard_body()
        .unwrap()
        .contains("DatabaseConnections"));
}
