//! `plan` and `drift` on the emulator: an empty account, a pending config edit (not drift),
//! a missing hosted zone, a lost applied record, prod with its external zone. Write counts
//! come from the emulator (the launcher counts requests), never from the tool's own report.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::common::live::{deleted, drifted, set, Live};
use crate::common::{
    account, arm_barrier, bookkeeping, calls, config_dir, converged, emulator_admin, held_at,
    local, ops, reset_calls, run, writes, Run,
};

#[tokio::test]
async fn an_empty_account_plans_every_node_as_a_create_without_a_write() {
    let acct = account();
    let r = local("plan", &[], &acct, None).await;
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    let plans = r.events_of("plan");
    let nodes = crate::common::nodes_of_local().len();
    assert_eq!(plans.len(), nodes);
    assert!(
        plans.iter().all(|p| p["action"] == "create"),
        "{}",
        r.stdout
    );
    assert_eq!(r.event("plan_finished")["counts"]["create"], nodes);
    assert!(writes(&acct).await.is_empty(), "{:?}", writes(&acct).await);
}

#[tokio::test]
async fn a_config_edit_is_pending_not_drift_and_repair_leaves_it_to_up() {
    let acct = converged().await;
    let dir = config_dir(|t| {
        t.replace(
            "flow_logs_retention_days = 7",
            "flow_logs_retention_days = 14",
        )
    });
    reset_calls(&acct).await;
    let plan = local("plan", &[], &acct, Some(dir.path())).await;
    assert_eq!(plan.code, 2, "{}\n{}", plan.stdout, plan.stderr);
    let changed: Vec<Value> = plan
        .events_of("plan")
        .into_iter()
        .filter(|p| p["action"] != "unchanged")
        .collect();
    assert_eq!(changed.len(), 1, "{}", plan.stdout);
    assert_eq!(changed[0]["node"], "flow-logs-group");
    assert_eq!(changed[0]["changes"][0]["field"], "retention_in_days");
    assert_eq!(changed[0]["changes"][0]["have"], "7");
    assert_eq!(changed[0]["changes"][0]["want"], "14");

    let drift = local("drift", &[], &acct, Some(dir.path())).await;
    assert_eq!(drift.code, 0, "pending is not drift:\n{}", drift.stdout);
    let finished = drift.event("drift_finished");
    assert_eq!(finished["drifted"], 0);
    assert_eq!(finished["pending"], 1);
    let repair = local("repair", &[], &acct, Some(dir.path())).await;
    assert_eq!(repair.code, 0, "{}", repair.stderr);
    assert!(
        writes(&acct).await.is_empty(),
        "plan, drift and repair wrote: {:?}",
        writes(&acct).await
    );

    let up = local("up", &["--yes"], &acct, Some(dir.path())).await;
    assert_eq!(up.code, 0, "{}", up.stderr);
    // The edit, and the applied record.
    assert_eq!(
        writes(&acct).await,
        ops(&[("logs:PutRetentionPolicy", 1), ("s3:PutObject", 1)])
    );
    let plan = local("plan", &[], &acct, Some(dir.path())).await;
    assert_eq!(plan.code, 0, "{}", plan.stdout);

    // A reader removed from the config: `up` would leave it and its alarm; plan names both,
    // and the dashboard loses its widgets' second instance.
    let fewer = config_dir(|t| {
        t.replace(
            "flow_logs_retention_days = 7",
            "flow_logs_retention_days = 14",
        )
        .replace("readers = 1", "readers = 0")
    });
    let plan = local("plan", &[], &acct, Some(fewer.path())).await;
    assert_eq!(plan.code, 2, "{}", plan.stdout);
    let changed: Vec<Value> = plan
        .events_of("plan")
        .into_iter()
        .filter(|e| e["action"] != "unchanged")
        .collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0]["node"], "dashboard");
    let orphans: std::collections::BTreeSet<String> = plan
        .events_of("orphan")
        .iter()
        .map(|o| o["node"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        orphans,
        crate::common::live::set(&["db-instance-2", "alarm-db-connections-2"]),
        "{}",
        plan.stdout
    );
}

/// The zone the environment uses must be public and able to hold its domain, found by name
/// or given by id; what is not stops `plan` (exit 1) naming why, with nothing written.
#[tokio::test]
async fn the_hosted_zone_by_name_or_id_must_be_public_and_hold_the_domain() {
    use aws_sdk_route53::types::{HostedZoneConfig, Vpc, VpcRegion};
    let acct = account();
    let live = Live::new(&acct).await;
    let plan = |extra: String| {
        let dir = config_dir(move |t| {
            t.replace(
                "create_zone = true",
                &format!("create_zone = false\n{extra}"),
            )
        });
        let acct = acct.clone();
        async move { local("plan", &[], &acct, Some(dir.path())).await }
    };
    let zone_of = |r: &Run| {
        r.events_of("plan")
            .into_iter()
            .find(|p| p["node"] == "hosted-zone")
            .map(|p| p.to_string())
            .unwrap_or_default()
    };
    let short = |id: &str| id.rsplit('/').next().unwrap_or(id).to_string();
    let vpc = live
        .ec2
        .create_vpc()
        .cidr_block("10.9.0.0/16")
        .send()
        .await
        .unwrap();
    let vpc = vpc.vpc().and_then(|v| v.vpc_id()).unwrap().to_string();
    // Only a private zone of the domain's name: by name, not found.
    let private = live
        .r53
        .create_hosted_zone()
        .name("tap.local.example.com")
        .caller_reference("private")
        .vpc(
            Vpc::builder()
                .vpc_region(VpcRegion::UsEast1)
                .vpc_id(&vpc)
                .build(),
        )
        .hosted_zone_config(HostedZoneConfig::builder().private_zone(true).build())
        .send()
        .await
        .unwrap();
    let private = short(private.hosted_zone().unwrap().id());
    let r = plan(String::new()).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(zone_of(&r).contains("\"missing\""), "{}", r.stdout);
    // The private zone given by id: refused, named private.
    let r = plan(format!("hosted_zone = \"{private}\"")).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(zone_of(&r).contains("is private"), "{}", r.stdout);
    // Another domain's public zone given by id: refused, naming it.
    let other = live
        .r53
        .create_hosted_zone()
        .name("other.org")
        .caller_reference("other")
        .send()
        .await
        .unwrap();
    let other = short(other.hosted_zone().unwrap().id());
    let r = plan(format!("hosted_zone = \"{other}\"")).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        zone_of(&r).contains("is other.org, which cannot hold records for tap.local.example.com"),
        "{}",
        r.stdout
    );
    // An id that is no zone: missing, naming the id.
    let r = plan("hosted_zone = \"Z000000000000NOTHERE\"".into()).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(zone_of(&r).contains("Z000000000000NOTHERE"), "{}", r.stdout);
    // A public parent zone, by name and by id: used.
    let parent = live
        .r53
        .create_hosted_zone()
        .name("example.com")
        .caller_reference("parent")
        .send()
        .await
        .unwrap();
    let parent = short(parent.hosted_zone().unwrap().id());
    for extra in [
        "hosted_zone = \"example.com\"".to_string(),
        format!("hosted_zone = \"{parent}\""),
    ] {
        let r = plan(extra.clone()).await;
        assert_eq!(r.code, 2, "{extra}: {}\n{}", r.stdout, r.stderr);
        assert!(
            zone_of(&r).contains("\"unchanged\""),
            "{extra}: {}",
            r.stdout
        );
    }
    // Two public zones of the domain's name: the first, and the others named.
    for reference in ["public-1", "public-2"] {
        live.r53
            .create_hosted_zone()
            .name("tap.local.example.com")
            .caller_reference(reference)
            .send()
            .await
            .unwrap();
    }
    let r = plan(String::new()).await;
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        format!("{}{}", r.stdout, r.stderr).contains("2 public hosted zones are named"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    // Only the test wrote: the zones and the VPC made by hand above.
    assert_eq!(
        writes(&acct).await,
        ops(&[("ec2:CreateVpc", 1), ("route53:CreateHostedZone", 5)])
    );
}

#[tokio::test]
async fn a_missing_hosted_zone_stops_up_before_anything_is_created() {
    let acct = account();
    let dir = config_dir(|t| t.replace("create_zone = true", "create_zone = false"));
    let r = local("up", &["--yes"], &acct, Some(dir.path())).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("hosted zone tap.local.example.com was not found")
            && r.stderr.contains("dns.hosted_zone"),
        "{}",
        r.stderr
    );
    assert!(writes(&acct).await.is_empty(), "{:?}", writes(&acct).await);
    let plan = local("plan", &[], &acct, Some(dir.path())).await;
    assert_eq!(
        plan.code, 1,
        "a missing lookup is an error: {}",
        plan.stdout
    );

    // Once the zone exists (made by someone else), `up` uses it and never owns it.
    let live = Live::new(&acct).await;
    live.r53
        .create_hosted_zone()
        .name("tap.local.example.com")
        .caller_reference("someone-else")
        .send()
        .await
        .unwrap();
    let plan = local("plan", &[], &acct, Some(dir.path())).await;
    assert_eq!(plan.code, 2);
    let zone = plan
        .events_of("plan")
        .into_iter()
        .find(|p| p["node"] == "hosted-zone")
        .unwrap();
    assert_eq!(zone["action"], "unchanged");
    // Given by id, it is found by id.
    let id = live.zone_id().await;
    let by_id = config_dir(|t| {
        t.replace(
            "create_zone = true",
            &format!("create_zone = false\nhosted_zone = \"{id}\""),
        )
    });
    let plan = local("plan", &[], &acct, Some(by_id.path())).await;
    assert_eq!(plan.code, 2, "{}", plan.stdout);
    let zone = plan
        .events_of("plan")
        .into_iter()
        .find(|p| p["node"] == "hosted-zone")
        .unwrap();
    assert_eq!(zone["action"], "unchanged");
    assert_eq!(
        writes(&acct).await,
        ops(&[("route53:CreateHostedZone", 1)]),
        "made by hand above; the tool wrote nothing"
    );
}

#[tokio::test]
async fn losing_the_record_breaks_neither_up_nor_drift() {
    let acct = converged().await;
    let live = Live::new(&acct).await;
    // Empty and delete the state bucket, record included.
    let versions = live
        .s3
        .list_object_versions()
        .bucket(live.bucket())
        .send()
        .await
        .unwrap();
    // Every version, and the delete markers the lock's releases left.
    let all = versions
        .versions()
        .iter()
        .map(|v| (v.key(), v.version_id()))
        .chain(
            versions
                .delete_markers()
                .iter()
                .map(|m| (m.key(), m.version_id())),
        );
    for (key, version) in all {
        live.s3
            .delete_object()
            .bucket(live.bucket())
            .key(key.unwrap())
            .set_version_id(version.map(String::from))
            .send()
            .await
            .unwrap();
    }
    live.s3
        .delete_bucket()
        .bucket(live.bucket())
        .send()
        .await
        .unwrap();

    reset_calls(&acct).await;
    let d = local("drift", &[], &acct, None).await;
    assert_eq!(d.code, 2, "{}", d.stdout);
    assert_eq!(drifted(&d), set(&["state-bucket"]));
    assert_eq!(writes(&acct).await, BTreeMap::new(), "drift wrote");
    assert_eq!(
        bookkeeping(&acct).await,
        BTreeMap::new(),
        "drift took the lock"
    );
    assert!(d.event("drift_finished")["record_note"]
        .as_str()
        .unwrap()
        .contains("no applied record"));
    // repair makes the bucket again (private, versioned, encrypted) and, finding no record,
    // stores one.
    reset_calls(&acct).await;
    let r = local("repair", &[], &acct, None).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        writes(&acct).await,
        ops(&[
            ("s3:CreateBucket", 1),
            ("s3:PutBucketTagging", 1),
            ("s3:PutPublicAccessBlock", 1),
            // The ownership goes with CreateBucket.
            ("s3:PutBucketEncryption", 1),
            ("s3:PutBucketVersioning", 1),
            ("s3:PutBucketPolicy", 1),
            ("s3:PutBucketLifecycleConfiguration", 1),
            ("s3:PutObject", 1),
        ])
    );
    let bucket = live.bucket();
    let pab = live
        .s3
        .get_public_access_block()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let pab = pab.public_access_block_configuration().unwrap();
    assert_eq!(
        (
            pab.block_public_acls(),
            pab.ignore_public_acls(),
            pab.block_public_policy(),
            pab.restrict_public_buckets()
        ),
        (Some(true), Some(true), Some(true), Some(true))
    );
    let versioning = live
        .s3
        .get_bucket_versioning()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(versioning.status().map(|s| s.as_str()), Some("Enabled"));
    let policy = live
        .s3
        .get_bucket_policy()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(
        policy.policy().unwrap().contains("aws:SecureTransport"),
        "TLS only"
    );
    let d = local("drift", &[], &acct, None).await;
    assert_eq!(d.code, 0, "the record is back:\n{}", d.stdout);
    assert!(d.event("drift_finished")["record_note"].is_null());
}

#[tokio::test]
async fn prod_converges_and_plan_drift_and_repair_then_write_nothing() {
    let acct = account();
    // prod's hosted zone exists outside the environment, as in a real account.
    let live = Live::new(&acct).await;
    live.r53
        .create_hosted_zone()
        .name("pay.example.com")
        .caller_reference("company-dns")
        .send()
        .await
        .unwrap();
    let up = run(&["up", "--env", "prod", "--yes", "--json"], &acct).await;
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    assert_eq!(up.finished()["counts"]["created"], 77, "{}", up.finished());
    assert_eq!(
        up.outcome("hosted-zone"),
        "unchanged",
        "looked up, never made"
    );
    reset_calls(&acct).await;
    for verb in ["plan", "drift", "repair", "up"] {
        let mut args = vec![verb, "--env", "prod", "--json"];
        if verb == "up" {
            args.push("--yes");
        }
        let r = run(&args, &acct).await;
        assert_eq!(r.code, 0, "{verb}:\n{}\n{}", r.stdout, r.stderr);
    }
    assert!(writes(&acct).await.is_empty(), "{:?}", writes(&acct).await);
    // The state bucket lives in the environment's region.
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(crate::common::endpoint(&acct))
        .region(aws_config::Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            &acct, "test", None, None, "tests",
        ))
        .load()
        .await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    );
    let location = s3
        .get_bucket_location()
        .bucket(format!("tap-prod-state-{acct}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        location.location_constraint().map(|l| l.as_str()),
        Some("eu-west-1")
    );
    // The certificate in the region, and CloudFront's in us-east-1: both ISSUED, for the
    // domain and its wildcard, validated through the zone.
    for region in ["eu-west-1", "us-east-1"] {
        let acm = aws_sdk_acm::Client::from_conf(
            aws_sdk_acm::config::Builder::from(&conf)
                .region(aws_config::Region::new(region))
                .build(),
        );
        let certs = acm.list_certificates().send().await.unwrap();
        assert_eq!(certs.certificate_summary_list().len(), 1, "{region}");
        let arn = certs.certificate_summary_list()[0]
            .certificate_arn()
            .unwrap();
        let cert = acm
            .describe_certificate()
            .certificate_arn(arn)
            .send()
            .await
            .unwrap();
        let cert = cert.certificate().unwrap();
        assert_eq!(
            cert.status().map(|s| s.as_str()),
            Some("ISSUED"),
            "{region}"
        );
        let mut names = cert.subject_alternative_names().to_vec();
        names.sort();
        assert_eq!(names, ["*.pay.example.com", "pay.example.com"], "{region}");
    }
}

/// The services' own tag reads that the bulk read stands in for.
const OWN_TAG_READS: [&str; 11] = [
    "acm:ListTagsForCertificate",
    "monitoring:ListTagsForResource",
    "logs:ListTagsForResource",
    "sns:ListTagsForResource",
    "s3:GetBucketTagging",
    "application-autoscaling:ListTagsForResource",
    "backup:ListTags",
    "elasticloadbalancing:DescribeTags",
    "kms:ListResourceTags",
    "rds:ListTagsForResource",
    "route53:ListTagsForResource",
];

/// Tags are read in bulk by ARN (the tagging API); where that read is refused, each node
/// reads its own tags with its service's call, and a converged environment still shows no
/// drift, at the cost of those calls.
#[tokio::test]
async fn without_the_bulk_tag_read_each_node_reads_its_own_tags_and_sees_no_drift() {
    let acct = converged().await;
    reset_calls(&acct).await;
    let bulk = local("drift", &[], &acct, None).await;
    assert_eq!(bulk.code, 0, "{}\n{}", bulk.stdout, bulk.stderr);
    let with_bulk = calls(&acct).await;
    // What the names give (alarms, log groups, buckets, the topic, the vault, the subnet
    // group) is asked for in one call as the look starts; what the applied record names (the
    // load balancer, listeners and rules, the certificate, the backup plan...) as soon as the
    // record is read, in the same call when that is within the gathering's 60 ms; what a
    // read finds that neither gave joins the calls of the next few milliseconds. How many
    // depends on timing (2 alone, more on a busy machine): a figure for BENCHMARKS.md, not a
    // bound for a test. What a test can hold: the services' own tag reads are not made, and
    // the whole drift costs fewer calls than with them (below).
    let bulk_calls = with_bulk.get("tagging:GetResources").copied().unwrap_or(0);
    assert!(bulk_calls >= 1, "{with_bulk:?}");
    for op in OWN_TAG_READS {
        assert_eq!(with_bulk.get(op), None, "{op}: {with_bulk:?}");
    }

    let faults = format!("/_tap/faults/{acct}");
    emulator_admin("PUT", &faults, r#"{"deny": ["tagging:GetResources"]}"#).await;
    reset_calls(&acct).await;
    let own = local("drift", &[], &acct, None).await;
    emulator_admin("DELETE", &faults, "").await;
    assert_eq!(own.code, 0, "{}\n{}", own.stdout, own.stderr);
    assert_eq!(own.event("drift_finished")["drifted"], 0, "{}", own.stdout);
    let each = calls(&acct).await;
    for op in OWN_TAG_READS {
        assert!(each.contains_key(op), "{op} not called: {each:?}");
    }
    let total = |m: &BTreeMap<String, u64>| m.values().sum::<u64>();
    assert!(
        total(&with_bulk) < total(&each),
        "bulk {} calls, one by one {}",
        total(&with_bulk),
        total(&each)
    );
}

/// IAM's reads of one role: what one GetAccountAuthorizationDetails answers for all of them.
const ROLE_READS: [&str; 4] = [
    "iam:GetRole",
    "iam:GetRolePolicy",
    "iam:ListRolePolicies",
    "iam:ListAttachedRolePolicies",
];

/// The roles a converged look observes are read together, in one call; where that call is
/// refused, each role reads its own (four reads each) and the environment still shows no
/// drift.
#[tokio::test]
async fn the_roles_are_read_in_one_call_and_each_on_its_own_where_that_is_refused() {
    let acct = converged().await;
    reset_calls(&acct).await;
    let together = local("drift", &[], &acct, None).await;
    assert_eq!(together.code, 0, "{}\n{}", together.stdout, together.stderr);
    assert_eq!(together.event("drift_finished")["drifted"], 0);
    let gathered = calls(&acct).await;
    assert_eq!(
        gathered.get("iam:GetAccountAuthorizationDetails"),
        Some(&1),
        "{gathered:?}"
    );
    for op in ROLE_READS {
        assert_eq!(gathered.get(op), None, "{op}: {gathered:?}");
    }

    let faults = format!("/_tap/faults/{acct}");
    emulator_admin(
        "PUT",
        &faults,
        r#"{"deny": ["iam:GetAccountAuthorizationDetails"]}"#,
    )
    .await;
    reset_calls(&acct).await;
    let alone = local("drift", &[], &acct, None).await;
    emulator_admin("DELETE", &faults, "").await;
    assert_eq!(alone.code, 0, "{}\n{}", alone.stdout, alone.stderr);
    assert_eq!(
        alone.event("drift_finished")["drifted"],
        0,
        "{}",
        alone.stdout
    );
    let each = calls(&acct).await;
    // The local environment's five roles, four reads each.
    for op in ROLE_READS {
        assert_eq!(each.get(op), Some(&5), "{op}: {each:?}");
    }
}

/// A resource replaced by hand since the record was written has another ARN. The tags a look
/// reads ahead for the ARN the record names are not taken for it: its own are read (in bulk),
/// so a faithful copy is no drift, and the same copy with one tag value changed is.
#[tokio::test]
async fn a_backup_plan_replaced_by_hand_is_judged_by_its_own_tags() {
    use aws_sdk_backup::types::{BackupPlanInput, BackupRuleInput};
    let acct = converged().await;
    let live = Live::new(&acct).await;
    let b = &live.backup;
    let old_id = live.plan_id().await;
    let got = b
        .get_backup_plan()
        .backup_plan_id(&old_id)
        .send()
        .await
        .unwrap();
    let (old_arn, plan) = (got.backup_plan_arn().unwrap(), got.backup_plan().unwrap());
    let tags = b.list_tags().resource_arn(old_arn).send().await.unwrap();
    let tags = tags.tags().cloned().unwrap_or_default();
    let sel = b
        .list_backup_selections()
        .backup_plan_id(&old_id)
        .send()
        .await
        .unwrap();
    let selection = b
        .get_backup_selection()
        .backup_plan_id(&old_id)
        .selection_id(sel.backup_selections_list()[0].selection_id().unwrap())
        .send()
        .await
        .unwrap();
    let selection = selection.backup_selection().unwrap().clone();
    live.delete_plan(&old_id).await;
    let rules = plan.rules().iter().map(|r| {
        BackupRuleInput::builder()
            .rule_name(r.rule_name())
            .target_backup_vault_name(r.target_backup_vault_name())
            .set_schedule_expression(r.schedule_expression().map(str::to_string))
            .set_start_window_minutes(r.start_window_minutes())
            .set_completion_window_minutes(r.completion_window_minutes())
            .set_lifecycle(r.lifecycle().cloned())
            .set_recovery_point_tags(r.recovery_point_tags().cloned())
            .build()
            .unwrap()
    });
    let input = BackupPlanInput::builder()
        .backup_plan_name(plan.backup_plan_name())
        .set_rules(Some(rules.collect()))
        .build()
        .unwrap();
    let copy = b
        .create_backup_plan()
        .backup_plan(input)
        .set_backup_plan_tags(Some(tags))
        .send()
        .await
        .unwrap();
    let (new_id, new_arn) = (
        copy.backup_plan_id().unwrap(),
        copy.backup_plan_arn().unwrap(),
    );
    assert_ne!(new_arn, old_arn);
    b.create_backup_selection()
        .backup_plan_id(new_id)
        .backup_selection(selection)
        .send()
        .await
        .unwrap();

    reset_calls(&acct).await;
    let same = local("drift", &[], &acct, None).await;
    assert_eq!(same.code, 0, "{}\n{}", same.stdout, same.stderr);
    let read = calls(&acct).await;
    assert_eq!(
        read.get("backup:ListTags"),
        None,
        "tags read in bulk: {read:?}"
    );

    b.tag_resource()
        .resource_arn(new_arn)
        .tags("CostCenter", "edited-by-hand")
        .send()
        .await
        .unwrap();
    let edited = local("drift", &[], &acct, None).await;
    assert_eq!(edited.code, 2, "{}\n{}", edited.stdout, edited.stderr);
    assert_eq!(drifted(&edited), set(&["backup-plan"]), "{}", edited.stdout);
}

/// A scalable target deregistered between the describe that found it and the read of its own
/// tags (the bulk read refused) is gone, as AWS's not-found says: never a target without
/// tags, whose identity tags a repair would then try to put back on nothing.
#[tokio::test]
async fn a_scalable_target_gone_before_its_tag_read_is_deleted_not_untagged() {
    use aws_sdk_applicationautoscaling::types::ServiceNamespace;
    let acct = converged().await;
    let aas = Live::new(&acct).await.aas;
    let faults = format!("/_tap/faults/{acct}");
    emulator_admin("PUT", &faults, r#"{"deny": ["tagging:GetResources"]}"#).await;
    // The two targets' tag reads wait there; the test's own read, third, lets them on.
    let hold = r#"{"operation": "application-autoscaling:ListTagsForResource", "parties": 3}"#;
    let barrier = arm_barrier(&acct, hold).await;
    let deregister = async {
        held_at(&barrier, 2, "both tag reads").await;
        let targets = aas
            .describe_scalable_targets()
            .service_namespace(ServiceNamespace::Ecs)
            .send()
            .await
            .unwrap();
        for t in targets.scalable_targets() {
            aas.deregister_scalable_target()
                .service_namespace(ServiceNamespace::Ecs)
                .resource_id(t.resource_id())
                .scalable_dimension(t.scalable_dimension().clone())
                .send()
                .await
                .unwrap();
        }
        let gone = targets.scalable_targets()[0].scalable_target_arn().unwrap();
        let third = aas.list_tags_for_resource().resource_arn(gone).send().await;
        assert!(third.is_err(), "its target is gone");
    };
    let (d, ()) = tokio::join!(local("drift", &[], &acct, None), deregister);
    emulator_admin("DELETE", &barrier, "").await;
    emulator_admin("DELETE", &faults, "").await;
    assert_eq!(d.code, 2, "{}\n{}", d.stdout, d.stderr);
    let scaling = set(&["scaling-backend", "scaling-frontend"]);
    assert_eq!(drifted(&d), scaling, "{}", d.stdout);
    assert_eq!(deleted(&d), scaling, "{}", d.stdout);
}
