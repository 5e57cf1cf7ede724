//! The certificate, the load balancer and the application's DNS name on the emulator:
//! created with PLATFORM.md's properties; changed, deleted out of band and put back.

use std::collections::BTreeSet;

use aws_sdk_elasticloadbalancingv2::types::{ActionTypeEnum, LoadBalancerAttribute};

use crate::common::live::{drift_then_repair, set, Live};
use crate::common::{converged, ops, writes};

const DOMAIN: &str = "tap.local.example.com";

#[tokio::test]
async fn the_load_balancer_listeners_rules_and_names_are_as_platform_md_says() {
    let acct = converged().await;
    let live = Live::new(&acct).await;
    let elb = &live.elb;

    // Internet-facing, in the three public subnets, with the ALB group.
    let lbs = elb.describe_load_balancers().send().await.unwrap();
    assert_eq!(lbs.load_balancers().len(), 1);
    let lb = &lbs.load_balancers()[0];
    assert_eq!(lb.scheme().map(|s| s.as_str()), Some("internet-facing"));
    let mut subnets: Vec<String> = lb
        .availability_zones()
        .iter()
        .map(|z| z.subnet_id().unwrap().to_string())
        .collect();
    subnets.sort();
    let mut public = Vec::new();
    for z in ['a', 'b', 'c'] {
        public.push(live.id(&format!("subnet-public-{z}")).await);
    }
    public.sort();
    assert_eq!(subnets, public);
    assert_eq!(lb.security_groups(), [live.id("sg-alb").await]);
    let attrs = elb
        .describe_load_balancer_attributes()
        .load_balancer_arn(lb.load_balancer_arn().unwrap())
        .send()
        .await
        .unwrap();
    let attr = |k: &str| {
        attrs
            .attributes()
            .iter()
            .find(|a| a.key() == Some(k))
            .and_then(|a| a.value())
            .map(String::from)
    };
    assert_eq!(
        attr("routing.http.drop_invalid_header_fields.enabled").as_deref(),
        Some("true")
    );
    assert_eq!(
        attr("deletion_protection.enabled").as_deref(),
        Some("false")
    );

    // 80 redirects permanently to 443; 443 is HTTPS with the issued certificate, TLS 1.2+,
    // a fixed 404 by default, `/api/*` to the backend (10) and `/*` to the frontend (20).
    let listeners = elb
        .describe_listeners()
        .load_balancer_arn(lb.load_balancer_arn().unwrap())
        .send()
        .await
        .unwrap();
    let by_port = |p: i32| {
        listeners
            .listeners()
            .iter()
            .find(|l| l.port() == Some(p))
            .unwrap()
            .clone()
    };
    let http = by_port(80);
    let redirect = http.default_actions()[0].redirect_config().unwrap();
    assert_eq!(
        (
            redirect.protocol(),
            redirect.port(),
            redirect.status_code().map(|s| s.as_str())
        ),
        (Some("HTTPS"), Some("443"), Some("HTTP_301"))
    );
    let https = by_port(443);
    assert_eq!(https.protocol().map(|p| p.as_str()), Some("HTTPS"));
    assert_eq!(
        https.ssl_policy(),
        Some("ELBSecurityPolicy-TLS13-1-2-2021-06")
    );
    let acm = aws_sdk_acm::Client::new(&crate::common::sdk(&acct).await);
    let certs = acm.list_certificates().send().await.unwrap();
    let cert_arn = certs.certificate_summary_list()[0]
        .certificate_arn()
        .unwrap();
    assert_eq!(https.certificates()[0].certificate_arn(), Some(cert_arn));
    let cert = acm
        .describe_certificate()
        .certificate_arn(cert_arn)
        .send()
        .await
        .unwrap();
    let cert = cert.certificate().unwrap();
    assert_eq!(cert.status().map(|s| s.as_str()), Some("ISSUED"));
    let mut names = cert.subject_alternative_names().to_vec();
    names.sort();
    assert_eq!(names, [format!("*.{DOMAIN}"), DOMAIN.to_string()]);
    assert_eq!(
        https.default_actions()[0]
            .fixed_response_config()
            .and_then(|f| f.status_code()),
        Some("404")
    );
    let tgs = elb.describe_target_groups().send().await.unwrap();
    let tg = |name: &str| {
        tgs.target_groups()
            .iter()
            .find(|t| t.target_group_name() == Some(name))
            .unwrap()
            .clone()
    };
    let (frontend, backend) = (tg("tap-local-frontend"), tg("tap-local-backend"));
    let rules = elb
        .describe_rules()
        .listener_arn(https.listener_arn().unwrap())
        .send()
        .await
        .unwrap();
    let mut routes: Vec<(String, String, String)> = rules
        .rules()
        .iter()
        .filter(|r| r.priority() != Some("default"))
        .map(|r| {
            let path = r.conditions()[0].path_pattern_config().unwrap().values()[0].clone();
            let action = &r.actions()[0];
            assert_eq!(action.r#type(), Some(&ActionTypeEnum::Forward));
            (
                r.priority().unwrap().to_string(),
                path,
                action.target_group_arn().unwrap().to_string(),
            )
        })
        .collect();
    routes.sort();
    assert_eq!(
        routes,
        [
            (
                "10".into(),
                "/api/*".into(),
                backend.target_group_arn().unwrap().into()
            ),
            (
                "20".into(),
                "/*".into(),
                frontend.target_group_arn().unwrap().into()
            ),
        ]
    );

    // Target groups: IP targets, health checks every 30 s, 3 to fail, 2 to pass, 10 s
    // timeout, deregistration 30 s, lb_cookie stickiness for an hour.
    for (group, port, path) in [(&frontend, 80, "/"), (&backend, 3000, "/health")] {
        assert_eq!(group.target_type().map(|t| t.as_str()), Some("ip"));
        assert_eq!(group.port(), Some(port));
        assert_eq!(group.health_check_path(), Some(path));
        assert_eq!(group.health_check_interval_seconds(), Some(30));
        assert_eq!(group.unhealthy_threshold_count(), Some(3));
        assert_eq!(group.healthy_threshold_count(), Some(2));
        assert_eq!(group.health_check_timeout_seconds(), Some(10));
        let attrs = elb
            .describe_target_group_attributes()
            .target_group_arn(group.target_group_arn().unwrap())
            .send()
            .await
            .unwrap();
        let get = |k: &str| {
            attrs
                .attributes()
                .iter()
                .find(|a| a.key() == Some(k))
                .and_then(|a| a.value())
                .map(String::from)
        };
        assert_eq!(
            get("deregistration_delay.timeout_seconds").as_deref(),
            Some("30")
        );
        assert_eq!(get("stickiness.enabled").as_deref(), Some("true"));
        assert_eq!(get("stickiness.type").as_deref(), Some("lb_cookie"));
        assert_eq!(
            get("stickiness.lb_cookie.duration_seconds").as_deref(),
            Some("3600")
        );
    }

    // The domain is an alias of the load balancer.
    let zone = live.zone_id().await;
    let records = live
        .r53
        .list_resource_record_sets()
        .hosted_zone_id(&zone)
        .send()
        .await
        .unwrap();
    let app = records
        .resource_record_sets()
        .iter()
        .find(|r| r.name() == format!("{DOMAIN}.") && r.r#type().as_str() == "A")
        .unwrap();
    let alias = app.alias_target().unwrap();
    assert_eq!(
        alias.dns_name().trim_end_matches('.'),
        lb.dns_name().unwrap()
    );
    assert!(records
        .resource_record_sets()
        .iter()
        .any(|r| r.name().starts_with('_') && r.r#type().as_str() == "CNAME"));
}

#[tokio::test]
async fn load_balancer_drift_is_put_back() {
    let acct = converged().await;
    let live = Live::new(&acct).await;
    let elb = &live.elb;
    let lbs = elb.describe_load_balancers().send().await.unwrap();
    let lb_arn = lbs.load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_string();
    // By hand: invalid headers let through; a target group's health check loosened; the
    // `/api/*` rule and the HTTP listener deleted; the domain's record removed.
    elb.modify_load_balancer_attributes()
        .load_balancer_arn(&lb_arn)
        .attributes(
            LoadBalancerAttribute::builder()
                .key("routing.http.drop_invalid_header_fields.enabled")
                .value("false")
                .build(),
        )
        .send()
        .await
        .unwrap();
    // ... and moved to two subnets with the ECS group.
    elb.set_subnets()
        .load_balancer_arn(&lb_arn)
        .subnets(live.id("subnet-public-a").await)
        .subnets(live.id("subnet-public-b").await)
        .send()
        .await
        .unwrap();
    elb.set_security_groups()
        .load_balancer_arn(&lb_arn)
        .security_groups(live.id("sg-ecs").await)
        .send()
        .await
        .unwrap();
    let tgs = elb
        .describe_target_groups()
        .names("tap-local-backend")
        .send()
        .await
        .unwrap();
    elb.modify_target_group()
        .target_group_arn(tgs.target_groups()[0].target_group_arn().unwrap())
        .health_check_interval_seconds(120)
        .unhealthy_threshold_count(10)
        .send()
        .await
        .unwrap();
    let listeners = elb
        .describe_listeners()
        .load_balancer_arn(&lb_arn)
        .send()
        .await
        .unwrap();
    for l in listeners.listeners() {
        if l.port() == Some(80) {
            elb.delete_listener()
                .listener_arn(l.listener_arn().unwrap())
                .send()
                .await
                .unwrap();
        } else {
            let rules = elb
                .describe_rules()
                .listener_arn(l.listener_arn().unwrap())
                .send()
                .await
                .unwrap();
            let api = rules
                .rules()
                .iter()
                .find(|r| r.priority() == Some("10"))
                .unwrap();
            elb.delete_rule()
                .rule_arn(api.rule_arn().unwrap())
                .send()
                .await
                .unwrap();
            // The default rule narrowed to one path.
            let default = rules
                .rules()
                .iter()
                .find(|r| r.priority() == Some("20"))
                .unwrap();
            elb.modify_rule()
                .rule_arn(default.rule_arn().unwrap())
                .conditions(
                    aws_sdk_elasticloadbalancingv2::types::RuleCondition::builder()
                        .field("path-pattern")
                        .path_pattern_config(
                            aws_sdk_elasticloadbalancingv2::types::PathPatternConditionConfig::builder()
                                .values("/index.html")
                                .build(),
                        )
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
    }
    // The HTTPS listener's TLS policy downgraded.
    let https = listeners
        .listeners()
        .iter()
        .find(|l| l.port() == Some(443))
        .unwrap();
    elb.modify_listener()
        .listener_arn(https.listener_arn().unwrap())
        .ssl_policy("ELBSecurityPolicy-2016-08")
        .send()
        .await
        .unwrap();
    let zone = live.zone_id().await;
    let records = live
        .r53
        .list_resource_record_sets()
        .hosted_zone_id(&zone)
        .send()
        .await
        .unwrap();
    let app = records
        .resource_record_sets()
        .iter()
        .find(|r| r.name() == format!("{DOMAIN}.") && r.r#type().as_str() == "A")
        .unwrap()
        .clone();
    live.change_record(aws_sdk_route53::types::ChangeAction::Delete, app)
        .await;

    let expected: BTreeSet<String> = set(&[
        "alb",
        "tg-backend",
        "listener-http",
        "listener-https",
        "rule-api",
        "rule-default",
        "dns-app",
    ]);
    drift_then_repair(&acct, expected).await;
    assert_eq!(
        writes(&acct).await,
        ops(&[
            ("elasticloadbalancing:ModifyLoadBalancerAttributes", 1),
            ("elasticloadbalancing:ModifyTargetGroup", 1),
            ("elasticloadbalancing:CreateListener", 1),
            ("elasticloadbalancing:CreateRule", 1),
            ("route53:ChangeResourceRecordSets", 1),
            ("elasticloadbalancing:SetSubnets", 1),
            ("elasticloadbalancing:SetSecurityGroups", 1),
            ("elasticloadbalancing:ModifyRule", 1),
            ("elasticloadbalancing:ModifyListener", 1),
            // The applied record, with the identifiers of what was made again.
            ("s3:PutObject", 1),
        ])
    );
}

#[tokio::test]
async fn a_load_balancer_deleted_out_of_band_comes_back_with_its_listeners_and_name() {
    let acct = converged().await;
    let live = Live::new(&acct).await;
    let elb = &live.elb;
    // The ALB goes with its listeners and rules, as on AWS; then the frontend's target
    // group, which nothing routes to any more.
    let lbs = elb.describe_load_balancers().send().await.unwrap();
    elb.delete_load_balancer()
        .load_balancer_arn(lbs.load_balancers()[0].load_balancer_arn().unwrap())
        .send()
        .await
        .unwrap();
    let tgs = elb
        .describe_target_groups()
        .names("tap-local-frontend")
        .send()
        .await
        .unwrap();
    elb.delete_target_group()
        .target_group_arn(tgs.target_groups()[0].target_group_arn().unwrap())
        .send()
        .await
        .unwrap();

    let (drift, _) = drift_then_repair(
        &acct,
        set(&[
            "alb",
            "tg-frontend",
            "listener-http",
            "listener-https",
            "rule-api",
            "rule-default",
            // Its alias names the old ALB; the service the old target group; the alarms
            // and the dashboard their ARN suffixes.
            "dns-app",
            "service-frontend",
            "alarm-unhealthy-frontend",
            "alarm-unhealthy-backend",
            "alarm-target-5xx",
            "dashboard",
        ]),
    )
    .await;
    let deleted: BTreeSet<String> = drift
        .events_of("drift")
        .iter()
        .filter(|e| e["drift"]["status"] == "deleted")
        .map(|e| e["node"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        deleted,
        set(&[
            "alb",
            "tg-frontend",
            "listener-http",
            "listener-https",
            "rule-api",
            "rule-default"
        ])
    );
    // The alias: AWS names a new ALB anew; moto gives it the old DNS name back, so the
    // record is already right once the ALB is made again (no Route53 write here). The alarms
    // and the dashboard name the new ARNs' suffixes.
    assert_eq!(
        writes(&acct).await,
        ops(&[
            ("elasticloadbalancing:CreateLoadBalancer", 1),
            ("elasticloadbalancing:ModifyLoadBalancerAttributes", 1),
            ("elasticloadbalancing:CreateTargetGroup", 1),
            ("elasticloadbalancing:ModifyTargetGroupAttributes", 1),
            ("elasticloadbalancing:CreateListener", 2),
            ("elasticloadbalancing:CreateRule", 2),
            ("ecs:UpdateService", 1),
            ("monitoring:PutMetricAlarm", 3),
            ("monitoring:PutDashboard", 1),
            ("s3:PutObject", 1),
        ])
    );
}
