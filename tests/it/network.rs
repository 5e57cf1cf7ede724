//! The KMS + network layer on the emulator: what `up` builds matches PLATFORM.md, a second
//! `up` makes no write, drift is put back, `down` leaves nothing but the kept key.

use aws_sdk_ec2::types::{Filter, NatGatewayState, VpcAttributeName};
use aws_sdk_ec2::Client as Ec2;

use crate::common::{
    account, config_dir, converged, endpoint, ops, reset_calls, run, run_with, sdk, writes,
};

const ENV_TAG: &str = "tap:environment";

fn env_filter() -> Filter {
    Filter::builder()
        .name(format!("tag:{ENV_TAG}"))
        .values("tap-local")
        .build()
}

fn tag<'a>(tags: &'a [aws_sdk_ec2::types::Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// A rule as a whole tuple: protocol, ports, peer (IPv4, IPv6, group or prefix list).
type RuleTuple = (String, Option<i32>, Option<i32>, String);

fn rules(perms: &[aws_sdk_ec2::types::IpPermission]) -> Vec<RuleTuple> {
    let mut out: Vec<RuleTuple> = Vec::new();
    for p in perms {
        let proto = p.ip_protocol().unwrap_or("").to_string();
        let (from, to) = if proto == "-1" {
            (None, None)
        } else {
            (p.from_port(), p.to_port())
        };
        let peers = p
            .ip_ranges()
            .iter()
            .filter_map(|r| r.cidr_ip())
            .chain(p.ipv6_ranges().iter().filter_map(|r| r.cidr_ipv6()))
            .chain(p.user_id_group_pairs().iter().filter_map(|g| g.group_id()))
            .chain(
                p.prefix_list_ids()
                    .iter()
                    .filter_map(|l| l.prefix_list_id()),
            );
        out.extend(peers.map(|peer| (proto.clone(), from, to, peer.to_string())));
    }
    out.sort();
    out
}

fn tcp(port: i32, peer: &str) -> RuleTuple {
    ("tcp".into(), Some(port), Some(port), peer.into())
}

async fn up_ok(acct: &str) -> crate::common::Run {
    let r = run(&["up", "--env", "local", "--yes", "--json"], acct).await;
    assert_eq!(r.code, 0, "up failed:\n{}\n{}", r.stdout, r.stderr);
    r
}

/// Live NAT gateways of the environment (the emulator keeps deleted ones listed).
async fn live_nats(ec2: &Ec2) -> Vec<aws_sdk_ec2::types::NatGateway> {
    let out = ec2.describe_nat_gateways().send().await.unwrap();
    out.nat_gateways()
        .iter()
        .filter(|n| tag(n.tags(), ENV_TAG) == Some("tap-local"))
        .filter(|n| {
            !matches!(
                n.state(),
                Some(NatGatewayState::Deleted) | Some(NatGatewayState::Deleting)
            )
        })
        .cloned()
        .collect()
}

#[tokio::test]
async fn up_builds_the_layer_and_a_second_up_changes_nothing() {
    let acct = account();
    // A node's dependents that need only its id start once its create call answers: the
    // emulator holds the ALB group's first rule call until the ECS group (which needs the
    // ALB group's id) makes its own. Published only after its rules, it would never come.
    let barrier = crate::common::arm_barrier(
        &acct,
        r#"{"operation": "ec2:AuthorizeSecurityGroupIngress", "parties": 2, "seconds": 20}"#,
    )
    .await;
    let first = up_ok(&acct).await;
    let met = crate::common::emulator_admin("DELETE", &barrier, "").await;
    assert_eq!(met["arrived"], 2, "{met}");
    assert_eq!(
        met["broken"], false,
        "the ECS group waited for the ALB group's rules: {met}"
    );
    let done = first.finished();
    let nodes = crate::common::nodes_of_local().len();
    assert_eq!(done["counts"]["created"], nodes, "{done}");
    assert!(
        first.stdout.contains("node_progress") && first.stdout.contains("to be available"),
        "the NAT wait is shown"
    );

    let conf = sdk(&acct).await;
    let ec2 = Ec2::new(&conf);

    // VPC: CIDR, DNS support and hostnames, tags.
    let vpcs = ec2
        .describe_vpcs()
        .filters(env_filter())
        .send()
        .await
        .unwrap();
    assert_eq!(vpcs.vpcs().len(), 1);
    let vpc = &vpcs.vpcs()[0];
    let vpc_id = vpc.vpc_id().unwrap();
    assert_eq!(vpc.cidr_block(), Some("10.42.0.0/16"));
    for (k, v) in [
        ("Environment", "local"),
        ("Project", "tap"),
        ("CostCenter", "local-dev"),
        (ENV_TAG, "tap-local"),
        ("tap:node", "vpc"),
    ] {
        assert_eq!(tag(vpc.tags(), k), Some(v), "VPC tag {k}");
    }
    for attr in [
        VpcAttributeName::EnableDnsSupport,
        VpcAttributeName::EnableDnsHostnames,
    ] {
        let a = ec2
            .describe_vpc_attribute()
            .vpc_id(vpc_id)
            .attribute(attr.clone())
            .send()
            .await
            .unwrap();
        let on = a
            .enable_dns_support()
            .or(a.enable_dns_hostnames())
            .and_then(|v| v.value());
        assert_eq!(on, Some(true), "{attr:?}");
    }

    // Nine subnets: per zone a public /24, a private /24, an isolated /26.
    let subnets = ec2
        .describe_subnets()
        .filters(env_filter())
        .send()
        .await
        .unwrap();
    let subnets = subnets.subnets();
    assert_eq!(subnets.len(), 9);
    for (tier, suffix) in [("public", "/24"), ("private", "/24"), ("isolated", "/26")] {
        let of_tier: Vec<_> = subnets
            .iter()
            .filter(|s| {
                tag(s.tags(), "tap:node").is_some_and(|n| n.starts_with(&format!("subnet-{tier}-")))
            })
            .collect();
        assert_eq!(of_tier.len(), 3, "{tier}");
        let mut zones: Vec<_> = of_tier
            .iter()
            .map(|s| s.availability_zone().unwrap())
            .collect();
        zones.sort();
        zones.dedup();
        assert_eq!(zones.len(), 3, "{tier} subnets spread over three zones");
        assert!(
            of_tier
                .iter()
                .all(|s| s.cidr_block().unwrap().ends_with(suffix)),
            "{tier} subnets are {suffix}"
        );
    }
    let subnet = |node: &str| {
        subnets
            .iter()
            .find(|s| tag(s.tags(), "tap:node") == Some(node))
            .unwrap()
            .subnet_id()
            .unwrap()
            .to_string()
    };

    // One NAT gateway (local config), available, in the first public subnet, with an EIP.
    let nats = live_nats(&ec2).await;
    assert_eq!(nats.len(), 1);
    assert_eq!(nats[0].state(), Some(&NatGatewayState::Available));
    assert_eq!(
        nats[0].subnet_id(),
        Some(subnet("subnet-public-a").as_str())
    );
    let nat_id = nats[0].nat_gateway_id().unwrap();
    let eips = ec2
        .describe_addresses()
        .filters(env_filter())
        .send()
        .await
        .unwrap();
    assert_eq!(eips.addresses().len(), 1);

    // Routes: public -> IGW, private -> the NAT, isolated -> nothing beyond the VPC.
    let igws = ec2
        .describe_internet_gateways()
        .filters(env_filter())
        .send()
        .await
        .unwrap();
    let igw = &igws.internet_gateways()[0];
    assert_eq!(igw.attachments()[0].vpc_id(), Some(vpc_id));
    let tables = ec2
        .describe_route_tables()
        .filters(env_filter())
        .send()
        .await
        .unwrap();
    let tables = tables.route_tables();
    assert_eq!(tables.len(), 5);
    for t in tables {
        let node = tag(t.tags(), "tap:node").unwrap();
        let default_route = t
            .routes()
            .iter()
            .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"));
        let associated: Vec<&str> = t
            .associations()
            .iter()
            .filter_map(|a| a.subnet_id())
            .collect();
        match node {
            "route-table-public" => {
                assert_eq!(
                    default_route.and_then(|r| r.gateway_id()),
                    igw.internet_gateway_id()
                );
                assert_eq!(associated.len(), 3);
            }
            "route-table-isolated" => {
                assert!(
                    default_route.is_none(),
                    "isolated subnets have no internet route"
                );
                assert_eq!(associated.len(), 3);
            }
            private => {
                assert!(private.starts_with("route-table-private-"));
                assert_eq!(default_route.and_then(|r| r.nat_gateway_id()), Some(nat_id));
                let zone = private.rsplit('-').next().unwrap();
                assert_eq!(
                    associated,
                    vec![subnet(&format!("subnet-private-{zone}")).as_str()]
                );
            }
        }
    }

    // Flow logs: ALL traffic to the KMS-encrypted log group with retention.
    let flows = ec2
        .describe_flow_logs()
        .filter(env_filter())
        .send()
        .await
        .unwrap();
    assert_eq!(flows.flow_logs().len(), 1);
    let flow = &flows.flow_logs()[0];
    assert_eq!(flow.resource_id(), Some(vpc_id));
    assert_eq!(flow.traffic_type().map(|t| t.as_str()), Some("ALL"));
    assert_eq!(
        flow.log_group_name(),
        Some("/tap/tap-local/vpc-flow-logs"),
        "delivered to the environment's group"
    );
    assert!(
        flow.deliver_logs_permission_arn()
            .is_some_and(|a| a.ends_with(":role/tap-local-vpc-flow-logs")),
        "with its delivery role: {:?}",
        flow.deliver_logs_permission_arn()
    );
    let logs = aws_sdk_cloudwatchlogs::Client::new(&conf);
    let groups = logs
        .describe_log_groups()
        .log_group_name_prefix("/tap/tap-local/vpc-flow-logs")
        .send()
        .await
        .unwrap();
    let group = &groups.log_groups()[0];
    assert_eq!(group.retention_in_days(), Some(7));
    let kms = aws_sdk_kms::Client::new(&conf);
    let key = kms
        .describe_key()
        .key_id("alias/tap-local")
        .send()
        .await
        .unwrap();
    let key = key.key_metadata().unwrap();
    assert_eq!(group.kms_key_id(), key.arn());
    assert!(kms
        .get_key_rotation_status()
        .key_id(key.key_id())
        .send()
        .await
        .unwrap()
        .key_rotation_enabled());

    // Security groups: least privilege.
    let sgs = ec2
        .describe_security_groups()
        .filters(env_filter())
        .send()
        .await
        .unwrap();
    let sg = |node: &str| {
        sgs.security_groups()
            .iter()
            .find(|g| tag(g.tags(), "tap:node") == Some(node))
            .unwrap()
            .clone()
    };
    let (alb, ecs, db) = (sg("sg-alb"), sg("sg-ecs"), sg("sg-db"));
    let (alb_id, ecs_id) = (
        alb.group_id().unwrap().to_string(),
        ecs.group_id().unwrap().to_string(),
    );
    let anywhere = "0.0.0.0/0".to_string();
    assert_eq!(
        rules(alb.ip_permissions()),
        vec![tcp(80, &anywhere), tcp(443, &anywhere)]
    );
    assert_eq!(
        rules(alb.ip_permissions_egress()),
        vec![("-1".into(), None, None, anywhere.clone())],
        "AWS's default egress on the ALB group"
    );
    assert_eq!(
        rules(ecs.ip_permissions()),
        vec![tcp(80, &alb_id), tcp(3000, &alb_id)],
        "the container ports from the ALB group only"
    );
    assert_eq!(rules(db.ip_permissions()), vec![tcp(5432, &ecs_id)]);
    assert!(
        rules(db.ip_permissions_egress()).is_empty(),
        "the DB group has no egress"
    );

    // A second up: every node unchanged, no mutating call at all (counted by the emulator).
    reset_calls(&acct).await;
    let second = up_ok(&acct).await;
    let done = second.finished();
    assert_eq!(done["changed"], 0, "{done}");
    assert_eq!(
        done["counts"]["unchanged"],
        crate::common::nodes_of_local().len(),
        "{done}"
    );
    assert!(writes(&acct).await.is_empty(), "{:?}", writes(&acct).await);
    // One batched read per EC2 type, a few per other resource (BENCHMARKS.md lists them);
    // the count does not grow with zones, subnets or route tables. DNS records are read by
    // name, one read per node (3: the validation records, two aliases), never by listing
    // the zone. The backup vault's access policy is one read (135).
    let calls = crate::common::calls(&acct).await;
    let reads: u64 = calls.values().sum();
    assert!(reads <= 135, "converged run reads little: {reads}");
    assert_eq!(
        calls.get("route53:ListResourceRecordSets"),
        Some(&3),
        "{calls:?}"
    );
    // The zones it was built in come from the record it reads anyway: no lookup, no
    // second read of the record.
    assert_eq!(
        calls.get("ec2:DescribeAvailabilityZones"),
        None,
        "{calls:?}"
    );
    assert_eq!(calls.get("s3:GetObject"), Some(&1), "{calls:?}");
}

#[tokio::test]
async fn zones_are_looked_up_and_too_few_stop_up_before_any_write() {
    // us-west-1 has two zones (the emulator's, as AWS's): three asked for.
    let acct = account();
    let dir = crate::common::config_dir(|t| {
        t.replace(r#"region = "us-east-1""#, r#"region = "us-west-1""#)
    });
    let path = dir.path().to_string_lossy().into_owned();
    for verb in ["plan", "up"] {
        let mut args = vec![verb, "--env", "local", "--config-dir", path.as_str()];
        if verb == "up" {
            args.push("--yes");
        }
        let r = crate::common::run(&args, &acct).await;
        assert_eq!(r.code, 1, "{verb}: {}\n{}", r.stdout, r.stderr);
        for needle in [
            "network.availability_zones = 3",
            "us-west-1a, us-west-1b",
            "local.toml",
        ] {
            assert!(r.stderr.contains(needle), "{verb}: {needle}: {}", r.stderr);
        }
    }
    assert!(writes(&acct).await.is_empty(), "{:?}", writes(&acct).await);
    let calls = crate::common::calls(&acct).await;
    assert!(
        calls.contains_key("ec2:DescribeAvailabilityZones"),
        "{calls:?}"
    );
    // `down` deletes by tags whatever the zones: it warns and goes on.
    let d = crate::common::run(
        &[
            "down",
            "--env",
            "local",
            "--yes",
            "--config-dir",
            path.as_str(),
        ],
        &acct,
    )
    .await;
    assert_eq!(d.code, 0, "down: {}\n{}", d.stdout, d.stderr);
    assert!(d.stderr.contains("down deletes by tags"), "{}", d.stderr);
    // Two zones: built in the zones the region has.
    let two = crate::common::config_dir(|t| {
        t.replace(r#"region = "us-east-1""#, r#"region = "us-west-1""#)
            .replace("availability_zones = 3", "availability_zones = 2")
    });
    let p = crate::common::run(
        &[
            "plan",
            "--env",
            "local",
            "--json",
            "--config-dir",
            two.path().to_str().unwrap(),
        ],
        &acct,
    )
    .await;
    assert_eq!(p.code, 2, "{}\n{}", p.stdout, p.stderr);
    assert!(writes(&acct).await.is_empty(), "{:?}", writes(&acct).await);
}

#[tokio::test]
async fn drift_is_put_back_by_up() {
    let acct = converged().await;
    let conf = sdk(&acct).await;
    let ec2 = Ec2::new(&conf);
    let kms = aws_sdk_kms::Client::new(&conf);
    let sgs = ec2
        .describe_security_groups()
        .filters(env_filter())
        .send()
        .await
        .unwrap();
    let db = sgs
        .security_groups()
        .iter()
        .find(|g| tag(g.tags(), "tap:node") == Some("sg-db"))
        .unwrap();
    let db_id = db.group_id().unwrap();
    // By hand: SSH from anywhere on the database group, a tag removed, rotation off.
    ec2.authorize_security_group_ingress()
        .group_id(db_id)
        .ip_protocol("tcp")
        .from_port(22)
        .to_port(22)
        .cidr_ip("0.0.0.0/0")
        .send()
        .await
        .unwrap();
    ec2.delete_tags()
        .resources(db_id)
        .tags(aws_sdk_ec2::types::Tag::builder().key("CostCenter").build())
        .send()
        .await
        .unwrap();
    let key = kms
        .describe_key()
        .key_id("alias/tap-local")
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();
    kms.disable_key_rotation()
        .key_id(&key)
        .send()
        .await
        .unwrap();

    reset_calls(&acct).await;
    let r = up_ok(&acct).await;
    assert_eq!(r.outcome("sg-db"), "updated");
    assert_eq!(r.outcome("kms-key"), "updated");
    assert_eq!(r.finished()["changed"], 2);
    // Exactly the writes the drift needs, counted by the emulator.
    assert_eq!(
        writes(&acct).await,
        ops(&[
            ("ec2:RevokeSecurityGroupIngress", 1),
            ("ec2:CreateTags", 1),
            ("kms:EnableKeyRotation", 1),
        ])
    );

    let db = ec2
        .describe_security_groups()
        .group_ids(db_id)
        .send()
        .await
        .unwrap();
    let db = &db.security_groups()[0];
    assert!(
        db.ip_permissions()
            .iter()
            .all(|p| p.from_port() != Some(22)),
        "hand-added rule revoked"
    );
    assert_eq!(tag(db.tags(), "CostCenter"), Some("local-dev"));
    assert!(kms
        .get_key_rotation_status()
        .key_id(&key)
        .send()
        .await
        .unwrap()
        .key_rotation_enabled());
}

#[tokio::test]
async fn down_leaves_nothing_but_the_kept_key_and_state() {
    let acct = converged().await;
    let r = run(&["down", "--env", "local", "--yes", "--json"], &acct).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.outcome("kms-key"), "kept");
    assert_eq!(r.outcome("state-bucket"), "kept");
    assert_eq!(r.outcome("static-bucket"), "kept");
    assert_eq!(r.outcome("cdn-log-bucket"), "kept");
    for gone in [
        "cdn",
        "cdn-origin-access",
        "service-backend",
        "ecs-cluster",
        "alb",
    ] {
        assert_eq!(r.outcome(gone), "deleted", "{gone}");
    }
    assert_eq!(
        r.outcome("hosted-zone"),
        "deleted",
        "made by this environment (local)"
    );
    // Each service is gone (drained) before its target group's delete starts, the ALB's
    // listeners before the ALB, the distribution before its origin access.
    let events = r.events();
    let at = |event: &str, node: &str| {
        events
            .iter()
            .position(|e| e["event"] == event && e["node"] == node)
            .unwrap_or_else(|| panic!("no {event} of {node}"))
    };
    for (first, then) in [
        ("service-frontend", "tg-frontend"),
        ("service-backend", "tg-backend"),
        ("listener-https", "alb"),
        ("cdn", "cdn-origin-access"),
        ("service-backend", "ecs-cluster"),
    ] {
        assert!(
            at("node_finished", first) < at("node_started", then),
            "{first} before {then}"
        );
    }

    let conf = sdk(&acct).await;
    let ec2 = Ec2::new(&conf);
    assert!(ec2
        .describe_vpcs()
        .filters(env_filter())
        .send()
        .await
        .unwrap()
        .vpcs()
        .is_empty());
    assert!(ec2
        .describe_subnets()
        .filters(env_filter())
        .send()
        .await
        .unwrap()
        .subnets()
        .is_empty());
    assert!(live_nats(&ec2).await.is_empty());
    assert!(ec2
        .describe_addresses()
        .filters(env_filter())
        .send()
        .await
        .unwrap()
        .addresses()
        .is_empty());
    assert!(ec2
        .describe_security_groups()
        .filters(env_filter())
        .send()
        .await
        .unwrap()
        .security_groups()
        .is_empty());
    assert!(ec2
        .describe_route_tables()
        .filters(env_filter())
        .send()
        .await
        .unwrap()
        .route_tables()
        .is_empty());
    assert!(ec2
        .describe_internet_gateways()
        .filters(env_filter())
        .send()
        .await
        .unwrap()
        .internet_gateways()
        .is_empty());
    let iam = aws_sdk_iam::Client::new(&conf);
    let gone = iam
        .get_role()
        .role_name("tap-local-vpc-flow-logs")
        .send()
        .await
        .unwrap_err();
    assert!(
        gone.as_service_error()
            .is_some_and(|e| e.is_no_such_entity_exception()),
        "the role is not found: {gone:?}"
    );
    // The compute and edge tier, asked of the emulator rather than of the tool's report.
    let live = crate::common::live::Live::new(&acct).await;
    assert!(live
        .elb
        .describe_load_balancers()
        .send()
        .await
        .unwrap()
        .load_balancers()
        .is_empty());
    assert!(live
        .elb
        .describe_target_groups()
        .send()
        .await
        .unwrap()
        .target_groups()
        .is_empty());
    let active = live
        .ecs
        .list_task_definitions()
        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
        .send()
        .await
        .unwrap();
    assert!(active.task_definition_arns().is_empty(), "{active:?}");
    assert!(live
        .aas
        .describe_scalable_targets()
        .service_namespace(aws_sdk_applicationautoscaling::types::ServiceNamespace::Ecs)
        .send()
        .await
        .unwrap()
        .scalable_targets()
        .is_empty());
    let acm = aws_sdk_acm::Client::new(&conf);
    assert!(acm
        .list_certificates()
        .send()
        .await
        .unwrap()
        .certificate_summary_list()
        .is_empty());
    let distributions = live.cf.list_distributions().send().await.unwrap();
    assert!(distributions
        .distribution_list()
        .is_none_or(|l| l.items().is_empty()));
    let oacs = live.cf.list_origin_access_controls().send().await.unwrap();
    assert!(oacs
        .origin_access_control_list()
        .is_none_or(|l| l.items().is_empty()));
    let secret = live
        .sm
        .describe_secret()
        .secret_id("tap-local/db-connection")
        .send()
        .await;
    assert!(
        secret.as_ref().is_err_and(|e| e
            .as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception())),
        "the connection secret is gone (ResourceNotFoundException): {secret:?}"
    );
    let topics = aws_sdk_sns::Client::new(&conf)
        .list_topics()
        .send()
        .await
        .unwrap();
    assert!(topics.topics().is_empty(), "{topics:?}");
    let cw = aws_sdk_cloudwatch::Client::new(&conf);
    let alarms = cw
        .describe_alarms()
        .alarm_name_prefix("tap-local-")
        .send()
        .await
        .unwrap();
    assert!(alarms.metric_alarms().is_empty());
    let dashboards = cw.list_dashboards().send().await.unwrap();
    assert!(dashboards.dashboard_entries().is_empty());
    let groups = live
        .logs
        .describe_log_groups()
        .log_group_name_prefix("/tap/tap-local/ecs/")
        .send()
        .await
        .unwrap();
    assert!(groups.log_groups().is_empty());
    let kms = aws_sdk_kms::Client::new(&conf);
    let key = kms
        .describe_key()
        .key_id("alias/tap-local")
        .send()
        .await
        .unwrap();
    assert_eq!(
        key.key_metadata().unwrap().key_state().map(|s| s.as_str()),
        Some("Enabled")
    );

    // A second down finds nothing left to delete; --destroy-data schedules the key's deletion.
    let r = run(
        &[
            "down",
            "--env",
            "local",
            "--yes",
            "--json",
            "--destroy-data",
        ],
        &acct,
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.outcome("vpc"), "absent");
    assert_eq!(r.outcome("kms-key"), "deleted");
    assert_eq!(r.outcome("state-bucket"), "deleted");
    let keys = kms.list_keys().send().await.unwrap();
    let id = keys.keys()[0].key_id().unwrap();
    let meta = kms.describe_key().key_id(id).send().await.unwrap();
    assert_eq!(
        meta.key_metadata().unwrap().key_state().map(|s| s.as_str()),
        Some("PendingDeletion")
    );
}

#[tokio::test]
async fn one_nat_per_zone_routes_each_zone_to_its_own() {
    let acct = account();
    let dir = config_dir(|t| t.replace("nat_gateways = 1", "nat_gateways = 3"));
    let r = run_with(
        &[
            "up",
            "--env",
            "local",
            "--yes",
            "--json",
            "--config-dir",
            dir.path().to_str().unwrap(),
        ],
        &acct,
        endpoint(&acct),
        &crate::common::repo(),
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let ec2 = Ec2::new(&sdk(&acct).await);
    let nats = live_nats(&ec2).await;
    assert_eq!(nats.len(), 3);
    let tables = ec2
        .describe_route_tables()
        .filters(env_filter())
        .send()
        .await
        .unwrap();
    let subnets = ec2
        .describe_subnets()
        .filters(env_filter())
        .send()
        .await
        .unwrap();
    for zone in ['a', 'b', 'c'] {
        let nat = nats
            .iter()
            .find(|n| tag(n.tags(), "tap:node") == Some(&format!("nat-{zone}")))
            .unwrap();
        let public = subnets
            .subnets()
            .iter()
            .find(|s| tag(s.tags(), "tap:node") == Some(&format!("subnet-public-{zone}")))
            .unwrap();
        assert_eq!(
            nat.subnet_id(),
            public.subnet_id(),
            "nat-{zone} in its own zone's public subnet"
        );
        let table = tables
            .route_tables()
            .iter()
            .find(|t| tag(t.tags(), "tap:node") == Some(&format!("route-table-private-{zone}")))
            .unwrap();
        let target = table
            .routes()
            .iter()
            .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
            .and_then(|r| r.nat_gateway_id());
        assert_eq!(
            target,
            nat.nat_gateway_id(),
            "zone {zone} routes to its own NAT"
        );
    }
}
