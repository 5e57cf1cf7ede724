//! Fail closed, on the emulator: what the tool cannot read or explain stops it with nothing
//! written (no lock, no record, no resource), and a resource whose tags were edited is found
//! by what was applied, never made twice.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType, Tag, TagSpecification};
use serde_json::Value;

use crate::common::live::{drifted, set, Live, ENV};
use crate::common::{
    account, bookkeeping, converged, emulator_admin, local, ops, reset_calls, up_ok, writes, Run,
};

const RECORD: &str = "tap-provision/applied.json";
const IDENTITY: [&str; 2] = ["tap:environment", "tap:node"];

/// Nothing was written: no resource, no record, no lock, no run report.
async fn nothing_written(acct: &str, what: &str) {
    let w = writes(acct).await;
    assert!(w.is_empty(), "{what} wrote {w:?}");
    let b = bookkeeping(acct).await;
    assert!(
        b.is_empty(),
        "{what} took the lock or stored a report: {b:?}"
    );
}

fn said(r: &Run, text: &str) -> bool {
    r.stderr.contains(text) || r.stdout.contains(text)
}

async fn record_text(live: &Live) -> String {
    let out = live
        .s3
        .get_object()
        .bucket(live.bucket())
        .key(RECORD)
        .send()
        .await
        .unwrap();
    String::from_utf8(out.body.collect().await.unwrap().to_vec()).unwrap()
}

async fn put_record(live: &Live, body: &str) {
    live.s3
        .put_object()
        .bucket(live.bucket())
        .key(RECORD)
        .body(body.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
}

/// The VPCs of the account that are not moto's default one.
async fn vpcs(live: &Live) -> Vec<String> {
    let out = live.ec2.describe_vpcs().send().await.unwrap();
    out.vpcs()
        .iter()
        .filter(|v| v.is_default() != Some(true))
        .filter_map(|v| v.vpc_id().map(String::from))
        .collect()
}

#[tokio::test]
async fn identity_tags_removed_from_a_resource_of_each_layer_are_found_by_what_was_applied() {
    let acct = converged().await;
    let live = Live::new(&acct).await;
    // The tool's two identity tags deleted by hand (a tag clean-up, a tag policy) from the
    // VPC, a subnet and a security group, the ECS cluster, the load balancer, the
    // distribution, a role and the KMS key (whose alias goes too, so nothing but the
    // record leads to it).
    let ec2_ids = [
        live.id("vpc").await,
        live.id("subnet-private-a").await,
        live.id("sg-ecs").await,
    ];
    let untag = |key: &str| Tag::builder().key(key).build();
    live.ec2
        .delete_tags()
        .set_resources(Some(ec2_ids.to_vec()))
        .tags(untag(IDENTITY[0]))
        .tags(untag(IDENTITY[1]))
        .send()
        .await
        .unwrap();
    let cluster = live
        .ecs
        .describe_clusters()
        .clusters(ENV)
        .send()
        .await
        .unwrap();
    let cluster_arn = cluster.clusters()[0].cluster_arn().unwrap().to_string();
    live.ecs
        .untag_resource()
        .resource_arn(&cluster_arn)
        .set_tag_keys(Some(IDENTITY.map(String::from).to_vec()))
        .send()
        .await
        .unwrap();
    let lbs = live.elb.describe_load_balancers().send().await.unwrap();
    live.elb
        .remove_tags()
        .resource_arns(lbs.load_balancers()[0].load_balancer_arn().unwrap())
        .set_tag_keys(Some(IDENTITY.map(String::from).to_vec()))
        .send()
        .await
        .unwrap();
    let distributions = live.cf.list_distributions().send().await.unwrap();
    let keys = aws_sdk_cloudfront::types::TagKeys::builder()
        .set_items(Some(IDENTITY.map(String::from).to_vec()))
        .build();
    live.cf
        .untag_resource()
        .resource(distributions.distribution_list().unwrap().items()[0].arn())
        .tag_keys(keys)
        .send()
        .await
        .unwrap();
    live.iam
        .untag_role()
        .role_name(format!("{ENV}-ecs-task"))
        .set_tag_keys(Some(IDENTITY.map(String::from).to_vec()))
        .send()
        .await
        .unwrap();
    let key_id = live.key_id().await;
    live.kms
        .untag_resource()
        .key_id(&key_id)
        .set_tag_keys(Some(IDENTITY.map(String::from).to_vec()))
        .send()
        .await
        .unwrap();
    live.kms
        .delete_alias()
        .alias_name(format!("alias/{ENV}"))
        .send()
        .await
        .unwrap();
    reset_calls(&acct).await;

    // Each is found and its tags are drift, nothing else: no "deleted", no replacement.
    let d = local("drift", &[], &acct, None).await;
    assert_eq!(d.code, 2, "drift:\n{}\n{}", d.stdout, d.stderr);
    let expected = set(&[
        "vpc",
        "subnet-private-a",
        "sg-ecs",
        "ecs-cluster",
        "alb",
        "cdn",
        "ecs-task-role",
        "kms-key",
    ]);
    assert_eq!(drifted(&d), expected, "{}", d.stdout);
    for e in d.events_of("drift") {
        let Some(changes) = e["drift"]["changes"].as_array() else {
            panic!("{} is not a change: {e}", e["node"]);
        };
        for c in changes {
            let field = c["field"].as_str().unwrap();
            let key_alias = e["node"] == "kms-key" && field == "alias";
            assert!(
                IDENTITY.iter().any(|t| field == format!("tags.{t}")) || key_alias,
                "{e}"
            );
        }
    }
    nothing_written(&acct, "drift").await;

    // `repair` puts the tags (and the alias) back, on the same resources: no second one.
    let r = local("repair", &[], &acct, None).await;
    assert_eq!(r.code, 0, "repair:\n{}\n{}", r.stdout, r.stderr);
    let w = writes(&acct).await;
    let want: BTreeMap<String, u64> = [
        ("ec2:CreateTags", 3),
        ("ecs:TagResource", 1),
        ("elasticloadbalancing:AddTags", 1),
        ("cloudfront:TagResource", 1),
        ("iam:TagRole", 1),
        ("kms:TagResource", 1),
        ("kms:CreateAlias", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(w, want);
    assert_eq!(
        vpcs(&live).await,
        [ec2_ids[0].clone()],
        "one VPC, the first"
    );
    assert_eq!(live.id("vpc").await, ec2_ids[0]);
    assert_eq!(live.id("sg-ecs").await, ec2_ids[2]);
    assert_eq!(live.key_id().await, key_id, "the alias names the same key");
    let keys = live.kms.list_keys().send().await.unwrap();
    assert_eq!(keys.keys().len(), 1, "no second key");
    let after = local("drift", &[], &acct, None).await;
    assert_eq!(after.code, 0, "drift after repair:\n{}", after.stdout);
}

#[tokio::test]
async fn an_unreadable_record_stops_every_command_with_nothing_written() {
    let acct = converged().await;
    let live = Live::new(&acct).await;
    let good = record_text(&live).await;
    // Someone opened SSH on the ALB's group: drift a command would act on.
    let sg_alb = live.id("sg-alb").await;
    live.ec2
        .authorize_security_group_ingress()
        .group_id(&sg_alb)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let location = format!("s3://{}/{RECORD}", live.bucket());
    let cases = [
        ("not JSON", "this is not a record"),
        (
            "a newer format",
            r#"{"format": 99, "environment": "tap-local", "nodes": {}}"#,
        ),
        (
            "another environment's",
            r#"{"format": 2, "environment": "tap-other", "nodes": {}}"#,
        ),
    ];
    for (what, body) in cases {
        put_record(&live, body).await;
        reset_calls(&acct).await;
        for (verb, extra) in [
            ("drift", vec![]),
            ("plan", vec![]),
            ("repair", vec![]),
            ("up", vec!["--yes"]),
            ("down", vec!["--yes"]),
        ] {
            let r = local(verb, &extra, &acct, None).await;
            assert_eq!(r.code, 1, "{verb} with {what}:\n{}\n{}", r.stdout, r.stderr);
            assert!(said(&r, &location), "{verb} names the record: {}", r.stderr);
            assert!(
                said(&r, "move it aside"),
                "{verb} says what to do: {}",
                r.stderr
            );
            nothing_written(&acct, verb).await;
        }
        assert_eq!(record_text(&live).await, body, "{what}: left as it was");
    }

    // A record this identity may not read: the same, with the permission named.
    put_record(&live, &good).await;
    let faults = format!("/_tap/faults/{acct}");
    emulator_admin("PUT", &faults, r#"{"deny": ["s3:GetObject"]}"#).await;
    reset_calls(&acct).await;
    for verb in ["drift", "repair"] {
        let r = local(verb, &[], &acct, None).await;
        assert_eq!(r.code, 1, "{verb} denied:\n{}\n{}", r.stdout, r.stderr);
        assert!(
            said(&r, "AccessDenied") && said(&r, "s3:GetObject"),
            "{}",
            r.stderr
        );
        nothing_written(&acct, verb).await;
    }
    emulator_admin("DELETE", &faults, "").await;

    // A record of the first format is read and migrated: drift is drift again, and
    // `repair` stores the record in today's format with each node's identifiers.
    let mut v1: Value = serde_json::from_str(&good).unwrap();
    v1["format"] = 1.into();
    for node in v1["nodes"].as_object_mut().unwrap().values_mut() {
        node.as_object_mut().unwrap().remove("ids");
    }
    put_record(&live, &v1.to_string()).await;
    let d = local("drift", &[], &acct, None).await;
    assert_eq!(d.code, 2, "{}\n{}", d.stdout, d.stderr);
    assert_eq!(drifted(&d), set(&["sg-alb"]), "{}", d.stdout);
    let r = local("repair", &[], &acct, None).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let stored: Value = serde_json::from_str(&record_text(&live).await).unwrap();
    assert_eq!(stored["format"], 3);
    assert_eq!(stored["nodes"]["sg-alb"]["ids"]["id"], sg_alb.as_str());
}

#[tokio::test]
async fn a_denied_read_stops_up_repair_and_down_with_nothing_written() {
    let acct = converged().await;
    let live = Live::new(&acct).await;
    let faults = format!("/_tap/faults/{acct}");
    // The KMS key's tags cannot be read and its alias is gone: nothing says which key is
    // the environment's, so `up` stops rather than make a second one.
    live.kms
        .delete_alias()
        .alias_name(format!("alias/{ENV}"))
        .send()
        .await
        .unwrap();
    // ELB's own tag read is the one left when the bulk read (the tagging API) is refused too.
    for (denied, names) in [
        (&["kms:ListResourceTags"][..], "kms:ListResourceTags"),
        (
            &["tagging:GetResources", "elasticloadbalancing:DescribeTags"][..],
            "AccessDenied",
        ),
        (&["ec2:DescribeSecurityGroups"][..], "UnauthorizedOperation"),
        // Target groups are read together; a refusal of that read is an error for each,
        // never "absent".
        (
            &["elasticloadbalancing:DescribeTargetGroups"][..],
            "AccessDenied",
        ),
    ] {
        let deny = serde_json::json!({ "deny": denied }).to_string();
        emulator_admin("PUT", &faults, &deny).await;
        let denied = denied.join(" and ");
        reset_calls(&acct).await;
        for (verb, extra) in [
            ("up", vec!["--yes"]),
            ("repair", vec![]),
            ("drift", vec![]),
            ("down", vec!["--yes"]),
        ] {
            let r = local(verb, &extra, &acct, None).await;
            assert_eq!(
                r.code, 1,
                "{verb}, {denied} denied:\n{}\n{}",
                r.stdout, r.stderr
            );
            assert!(
                said(&r, names),
                "{verb}, {denied}: {}\n{}",
                r.stdout,
                r.stderr
            );
            nothing_written(&acct, verb).await;
        }
    }
    emulator_admin("DELETE", &faults, "").await;
    let keys = live.kms.list_keys().send().await.unwrap();
    assert_eq!(keys.keys().len(), 1, "no second key");
    // Readable again: the alias is put back on the one key, and that is all.
    reset_calls(&acct).await;
    up_ok(&acct).await;
    let w = writes(&acct).await;
    assert_eq!(
        w,
        BTreeMap::from([("kms:CreateAlias".to_string(), 1)]),
        "{w:?}"
    );
}

#[tokio::test]
async fn tags_naming_one_resource_and_the_record_another_stop_naming_both() {
    let acct = converged().await;
    let live = Live::new(&acct).await;
    let first = live.id("vpc").await;
    live.ec2
        .delete_tags()
        .resources(&first)
        .tags(Tag::builder().key(IDENTITY[1]).build())
        .send()
        .await
        .unwrap();
    // A second VPC carrying the node's tags (what a tool that trusts tags alone would make).
    let second = live
        .ec2
        .create_vpc()
        .cidr_block("10.99.0.0/16")
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Vpc)
                .tags(Tag::builder().key(IDENTITY[0]).value(ENV).build())
                .tags(Tag::builder().key(IDENTITY[1]).value("vpc").build())
                .build(),
        )
        .send()
        .await
        .unwrap()
        .vpc()
        .unwrap()
        .vpc_id()
        .unwrap()
        .to_string();
    reset_calls(&acct).await;
    for (verb, extra) in [
        ("drift", vec![]),
        ("repair", vec![]),
        ("up", vec!["--yes"]),
        ("down", vec!["--yes"]),
    ] {
        let r = local(verb, &extra, &acct, None).await;
        assert_eq!(r.code, 1, "{verb}:\n{}\n{}", r.stdout, r.stderr);
        for id in [&first, &second] {
            assert!(
                said(&r, id),
                "{verb} names {id}: {}\n{}",
                r.stdout,
                r.stderr
            );
        }
        nothing_written(&acct, verb).await;
    }
}

#[tokio::test]
async fn repair_leaves_a_replacement_others_stand_on_to_up_which_shows_it_and_asks() {
    let acct = converged().await;
    let live = Live::new(&acct).await;
    // The NAT gateway deleted by hand and another made in the wrong zone, carrying its tags:
    // putting it back means replacing it, and the private route tables stand on it.
    let nat = live.id("nat-a").await;
    live.ec2
        .delete_nat_gateway()
        .nat_gateway_id(&nat)
        .send()
        .await
        .unwrap();
    let eip = live
        .ec2
        .allocate_address()
        .domain(aws_sdk_ec2::types::DomainType::Vpc)
        .send()
        .await
        .unwrap();
    live.ec2
        .create_nat_gateway()
        .subnet_id(live.id("subnet-public-b").await)
        .allocation_id(eip.allocation_id().unwrap())
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Natgateway)
                .tags(Tag::builder().key(IDENTITY[0]).value(ENV).build())
                .tags(Tag::builder().key(IDENTITY[1]).value("nat-a").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    reset_calls(&acct).await;

    let r = local("repair", &[], &acct, None).await;
    assert_eq!(r.code, 3, "repair:\n{}\n{}", r.stdout, r.stderr);
    let done = r.event("repair_finished");
    // The NAT gateway, and the route tables that point at it: left for `up`.
    let remaining: Vec<&str> = done["remaining"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(remaining.contains(&"nat-a"), "{done}");
    assert!(
        remaining
            .iter()
            .all(|n| *n == "nat-a" || n.starts_with("route-table-private-")),
        "{done}"
    );
    assert!(
        said(&r, "needs replacement") && said(&r, "run `tap-provision up"),
        "{}",
        r.stdout
    );
    nothing_written(&acct, "repair").await;

    // `up` without a terminal shows the replacement and what stands on it, and needs --yes.
    let r = local("up", &[], &acct, None).await;
    assert_eq!(r.code, 1, "up:\n{}\n{}", r.stdout, r.stderr);
    for text in ["nat-a (nat_gateway)", "route-table-private-a", "--yes"] {
        assert!(said(&r, text), "{text}: {}", r.stderr);
    }
    nothing_written(&acct, "up without --yes").await;

    let r = local("up", &["--yes"], &acct, None).await;
    assert_eq!(r.code, 0, "up --yes:\n{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.outcome("nat-a"), "replaced");
    // The three private route tables follow the new NAT gateway; the record takes its id.
    assert_eq!(
        writes(&acct).await,
        ops(&[
            ("ec2:DeleteNatGateway", 1),
            ("ec2:CreateNatGateway", 1),
            ("ec2:ReplaceRoute", 3),
            ("s3:PutObject", 1),
        ])
    );
    let d = local("drift", &[], &acct, None).await;
    assert_eq!(d.code, 0, "{}", d.stdout);
}

#[tokio::test]
async fn what_a_resource_is_found_by_edited_out_of_band_is_drift_put_back_in_place() {
    use aws_sdk_elasticloadbalancingv2::types::RulePriorityPair;
    let acct = converged().await;
    let live = Live::new(&acct).await;
    // The HTTP listener moved to 8080, the API rule to priority 15, the origin access
    // control renamed: each is what its node is found by.
    let lbs = live.elb.describe_load_balancers().send().await.unwrap();
    let lb_arn = lbs.load_balancers()[0].load_balancer_arn().unwrap();
    let listeners = live
        .elb
        .describe_listeners()
        .load_balancer_arn(lb_arn)
        .send()
        .await
        .unwrap();
    let port = |p: i32| {
        listeners
            .listeners()
            .iter()
            .find(|l| l.port() == Some(p))
            .unwrap()
            .listener_arn()
            .unwrap()
            .to_string()
    };
    let (http, https) = (port(80), port(443));
    live.elb
        .modify_listener()
        .listener_arn(&http)
        .port(8080)
        .send()
        .await
        .unwrap();
    let rules = live
        .elb
        .describe_rules()
        .listener_arn(&https)
        .send()
        .await
        .unwrap();
    let api = rules
        .rules()
        .iter()
        .find(|r| r.priority() == Some("10"))
        .unwrap()
        .rule_arn()
        .unwrap()
        .to_string();
    live.elb
        .set_rule_priorities()
        .rule_priorities(
            RulePriorityPair::builder()
                .rule_arn(&api)
                .priority(15)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let controls = live.cf.list_origin_access_controls().send().await.unwrap();
    let oac = controls.origin_access_control_list().unwrap().items()[0]
        .id()
        .to_string();
    let got = live
        .cf
        .get_origin_access_control()
        .id(&oac)
        .send()
        .await
        .unwrap();
    let mut config = got
        .origin_access_control()
        .unwrap()
        .origin_access_control_config()
        .unwrap()
        .clone();
    config.name = "renamed-by-hand".into();
    live.cf
        .update_origin_access_control()
        .id(&oac)
        .set_if_match(got.e_tag().map(String::from))
        .origin_access_control_config(config)
        .send()
        .await
        .unwrap();
    reset_calls(&acct).await;

    let d = local("drift", &[], &acct, None).await;
    assert_eq!(d.code, 2, "drift:\n{}\n{}", d.stdout, d.stderr);
    assert_eq!(
        drifted(&d),
        set(&["listener-http", "rule-api", "cdn-origin-access"]),
        "{}",
        d.stdout
    );
    for e in d.events_of("drift") {
        let fields: Vec<&str> = e["drift"]["changes"]
            .as_array()
            .unwrap_or_else(|| panic!("{e}"))
            .iter()
            .map(|c| c["field"].as_str().unwrap())
            .collect();
        assert!(
            matches!(fields[..], ["port"] | ["priority"] | ["name"]),
            "{e}"
        );
    }
    nothing_written(&acct, "drift").await;
    let r = local("repair", &[], &acct, None).await;
    assert_eq!(r.code, 0, "repair:\n{}\n{}", r.stdout, r.stderr);
    let w = writes(&acct).await;
    let want: BTreeMap<String, u64> = [
        ("elasticloadbalancing:ModifyListener", 1),
        ("elasticloadbalancing:SetRulePriorities", 1),
        ("cloudfront:UpdateOriginAccessControl", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(w, want, "put back in place, nothing made again");
    let after = local("drift", &[], &acct, None).await;
    assert_eq!(after.code, 0, "drift after repair:\n{}", after.stdout);
}

#[tokio::test]
async fn an_origin_access_identity_whose_comment_was_edited_is_found_and_put_back() {
    let acct = account();
    let dir = crate::common::config_dir(|t| format!("{t}\n[cdn]\norigin_access = \"oai\"\n"));
    let up = local("up", &["--yes"], &acct, Some(dir.path())).await;
    assert_eq!(up.code, 0, "up:\n{}\n{}", up.stdout, up.stderr);
    let live = Live::new(&acct).await;
    let list = live
        .cf
        .list_cloud_front_origin_access_identities()
        .send()
        .await
        .unwrap();
    let oai = list
        .cloud_front_origin_access_identity_list()
        .unwrap()
        .items()[0]
        .id()
        .to_string();
    let got = live
        .cf
        .get_cloud_front_origin_access_identity_config()
        .id(&oai)
        .send()
        .await
        .unwrap();
    let reference = got
        .cloud_front_origin_access_identity_config()
        .unwrap()
        .caller_reference()
        .to_string();
    live.cf
        .update_cloud_front_origin_access_identity()
        .id(&oai)
        .set_if_match(got.e_tag().map(String::from))
        .cloud_front_origin_access_identity_config(
            aws_sdk_cloudfront::types::CloudFrontOriginAccessIdentityConfig::builder()
                .caller_reference(reference)
                .comment("edited by hand")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    reset_calls(&acct).await;
    let d = local("drift", &[], &acct, Some(dir.path())).await;
    assert_eq!(d.code, 2, "drift:\n{}\n{}", d.stdout, d.stderr);
    assert_eq!(drifted(&d), set(&["cdn-origin-access"]), "{}", d.stdout);
    let r = local("repair", &[], &acct, Some(dir.path())).await;
    assert_eq!(r.code, 0, "repair:\n{}\n{}", r.stdout, r.stderr);
    let w = writes(&acct).await;
    assert_eq!(
        w,
        BTreeMap::from([(
            "cloudfront:UpdateCloudFrontOriginAccessIdentity".to_string(),
            1
        )]),
        "the same identity, its comment back"
    );
    let after = local("drift", &[], &acct, Some(dir.path())).await;
    assert_eq!(after.code, 0, "{}", after.stdout);
}

#[tokio::test]
async fn a_repair_with_no_record_writes_a_whole_one_with_every_identifier() {
    let acct = converged().await;
    let live = Live::new(&acct).await;
    live.s3
        .delete_object()
        .bucket(live.bucket())
        .key(RECORD)
        .send()
        .await
        .unwrap();
    live.ec2
        .delete_tags()
        .resources(live.id("vpc").await)
        .tags(Tag::builder().key("CostCenter").build())
        .send()
        .await
        .unwrap();
    let r = local("repair", &[], &acct, None).await;
    assert_eq!(r.code, 0, "repair:\n{}\n{}", r.stdout, r.stderr);
    let stored: Value = serde_json::from_str(&record_text(&live).await).unwrap();
    let nodes = stored["nodes"].as_object().unwrap();
    let all = crate::common::nodes_of_local();
    let recorded: std::collections::BTreeSet<String> = nodes.keys().cloned().collect();
    assert_eq!(recorded, all, "every node, not only the one put back");
    for (node, entry) in nodes {
        assert!(
            entry["ids"]["id"].as_str().is_some_and(|id| !id.is_empty()),
            "{node}: {entry}"
        );
    }
}
