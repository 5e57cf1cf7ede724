//! The scheduled repair's own resources, built by `up` as ordinary nodes: read back with
//! another client; the task definition's command run exactly as stated; the policies each
//! verb's runs needed, checked against what the emulator served and by parliament and
//! cloudsplaining; drift and repair of the schedule like any resource, never by a scheduled
//! run; the binary as the task runs it; `status --all`. Taking it away: `schedule_removal`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use crate::common::live::{drifted, set, Live, ENV};
use crate::common::{
    account, calls, command, config_dir, endpoint, local, ops, python, repo, reset_calls, run, sdk,
    writes, Run, REGION,
};

pub(crate) const GROUP: &str = "tap-local-repair";
pub(crate) const SCHEDULE: &str = "tap-local-repair";
const IMAGE: &str = "ghcr.io/acme/tap-provision:0.2.0";

pub(crate) fn with_schedule() -> tempfile::TempDir {
    config_dir(|text| {
        format!("{text}\n[repair]\nschedule = \"rate(1 hour)\"\nimage = \"{IMAGE}\"\n")
    })
}

/// A fresh account holding the local environment converged with the schedule on
/// ([`with_schedule`]): a copy of one built once per emulator, as
/// [`crate::common::converged`] makes of the shipped config.
pub(crate) async fn converged_with_schedule() -> String {
    static SOURCE: crate::common::Sources = crate::common::Sources::new();
    crate::common::copy_of_built(&SOURCE, |acct| async move {
        ok("up", &["--yes"], &acct, with_schedule().path()).await;
    })
    .await
}

/// `verb --env local --json --config-dir <dir>`.
pub(crate) async fn in_dir(verb: &str, extra: &[&str], acct: &str, dir: &Path) -> Run {
    local(verb, extra, acct, Some(dir)).await
}

pub(crate) async fn ok(verb: &str, extra: &[&str], acct: &str, dir: &Path) -> Run {
    let r = in_dir(verb, extra, acct, dir).await;
    assert_eq!(r.code, 0, "{verb}:\n{}\n{}", r.stdout, r.stderr);
    r
}

/// The schedule group is gone: Scheduler answers ResourceNotFoundException, not another error.
pub(crate) async fn assert_group_gone(sch: &aws_sdk_scheduler::Client, when: &str) {
    match sch.get_schedule_group().name(GROUP).send().await {
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) => {}
        other => panic!("{when}: the schedule group is not gone: {other:?}"),
    }
}

pub(crate) fn scheduler(conf: &aws_config::SdkConfig) -> aws_sdk_scheduler::Client {
    aws_sdk_scheduler::Client::new(conf)
}

/// The scheduled repair's node ids in the schedule's graph.
pub(crate) fn repair_nodes() -> BTreeSet<String> {
    let dir = with_schedule();
    let env = tap_provision::config::load(dir.path(), "local").unwrap();
    tap_provision::stack::build(&env)
        .unwrap()
        .nodes()
        .iter()
        .map(|n| n.id.clone())
        .filter(|n| n.starts_with("repair-"))
        .collect()
}

/// A policy document as IAM returns it (URL-encoded), read as the tool reads it.
fn url_decoded(doc: &str) -> Value {
    tap_provision::resources::iam_role::decode_policy(doc).expect("a policy document")
}

/// The IAM action an emulator-counted call needs (`monitoring:PutMetricAlarm` is
/// `cloudwatch:PutMetricAlarm`; S3's operations have IAM names of their own).
fn iam_action(op: &str) -> String {
    let op = op.split('[').next().unwrap_or(op);
    let (service, name) = op.split_once(':').unwrap();
    let service = match service {
        "monitoring" => "cloudwatch",
        "tagging" => "tag",
        other => other,
    };
    let name = match (service, name) {
        ("s3", "HeadBucket" | "ListObjectsV2") => "ListBucket",
        ("s3", "HeadObject") => "GetObject",
        ("s3", "GetBucketEncryption") => "GetEncryptionConfiguration",
        ("s3", "PutBucketEncryption") => "PutEncryptionConfiguration",
        ("s3", "GetBucketLifecycleConfiguration") => "GetLifecycleConfiguration",
        ("s3", "PutBucketLifecycleConfiguration") => "PutLifecycleConfiguration",
        ("s3", "GetPublicAccessBlock") => "GetBucketPublicAccessBlock",
        ("s3", "PutPublicAccessBlock") => "PutBucketPublicAccessBlock",
        ("s3", "ListObjectVersions") => "ListBucketVersions",
        ("s3", "DeleteObjects") => "DeleteObject",
        ("cloudfront", "CreateDistributionWithTags") => "CreateDistribution",
        (_, n) => n,
    };
    format!("{service}:{name}")
}

/// `pattern` (`kms:GenerateDataKey*`) matches `action`, as IAM compares them.
fn matches(pattern: &str, action: &str) -> bool {
    let (p, a) = (pattern.to_ascii_lowercase(), action.to_ascii_lowercase());
    match p.strip_suffix('*') {
        Some(prefix) => a.starts_with(prefix),
        None => p == a,
    }
}

/// What `iam-policy --for verb` prints (`scheduled-repair`: `--for repair --scheduled`),
/// as its documents.
async fn policies(verb: &str, acct: &str, dir: &Path) -> Vec<Value> {
    let mut args = vec![
        "--for",
        verb.trim_start_matches("scheduled-"),
        "--account",
        acct,
    ];
    if verb.starts_with("scheduled-") {
        args.push("--scheduled");
    }
    let r = ok("iam-policy", &args, acct, dir).await;
    let e = r.event("iam_policy");
    e["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert!(p["size"].as_u64().unwrap() <= 6144, "{p}");
            p["document"].clone()
        })
        .collect()
}

/// The calls the emulator served since the last reset that `docs` do not allow.
async fn not_allowed(acct: &str, docs: &[Value]) -> Vec<String> {
    let allowed: Vec<String> = docs
        .iter()
        .flat_map(|d| d["Statement"].as_array().unwrap().clone())
        .filter(|s| s["Effect"] == "Allow")
        .flat_map(|s| match &s["Action"] {
            Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        })
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    calls(acct)
        .await
        .keys()
        .map(|op| iam_action(op))
        .filter(|a| !allowed.iter().any(|p| matches(p, a)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// `tests/policy/check.py` on every document: what parliament and cloudsplaining found
/// beyond the findings named there.
fn lint(docs: &[(String, Value)]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<String> = docs
        .iter()
        .enumerate()
        .map(|(i, (verb, d))| {
            let path = dir.path().join(format!("{verb}-{i}.json"));
            std::fs::write(&path, d.to_string()).unwrap();
            path.to_string_lossy().into_owned()
        })
        .collect();
    let out = std::process::Command::new(python())
        .arg(repo().join("tests/policy/check.py"))
        .args(&files)
        .output()
        .expect("running tests/policy/check.py");
    assert!(
        out.status.success(),
        "check.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["findings"].as_array().unwrap().clone()
}

/// The task definition's command, run exactly as stated: from an empty directory, no HOME,
/// no env file, the task's environment only (credentials and, here, the endpoint).
async fn as_the_task_runs(acct: &str, args: &[String]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = command(&args, acct, endpoint(acct), dir.path());
    cmd.env_remove("HOME").env_remove("USER");
    let out = cmd.output().await.expect("running the task's command");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn up_builds_the_schedule_the_task_runs_its_command_and_each_verb_needs_only_its_policy() {
    let acct = account();
    let dir = with_schedule();
    let conf = sdk(&acct).await;
    let live = Live::new(&acct).await;
    let mut lint_docs = Vec::new();

    reset_calls(&acct).await;
    ok("up", &["--yes"], &acct, dir.path()).await;
    let up = policies("up", &acct, dir.path()).await;
    assert_eq!(not_allowed(&acct, &up).await, Vec::<String>::new(), "up");
    lint_docs.extend(up.into_iter().map(|d| ("up".to_string(), d)));

    // The group, tagged; the schedule, read back with another client.
    let sch = scheduler(&conf);
    let group = sch.get_schedule_group().name(GROUP).send().await.unwrap();
    let group_arn = group.arn().unwrap().to_string();
    let tags = sch
        .list_tags_for_resource()
        .resource_arn(&group_arn)
        .send()
        .await
        .unwrap();
    assert!(
        tags.tags()
            .iter()
            .any(|t| t.key() == "tap:environment" && t.value() == ENV),
        "{tags:?}"
    );
    let s = sch
        .get_schedule()
        .group_name(GROUP)
        .name(SCHEDULE)
        .send()
        .await
        .unwrap();
    assert_eq!(s.schedule_expression(), Some("rate(1 hour)"));
    assert_eq!(s.schedule_expression_timezone(), Some("UTC"));
    assert_eq!(
        s.flexible_time_window().unwrap().mode().as_str(),
        "OFF",
        "flexible window off"
    );
    let target = s.target().unwrap();
    let cluster = live
        .ecs
        .describe_clusters()
        .clusters(ENV)
        .send()
        .await
        .unwrap();
    assert_eq!(
        Some(target.arn()),
        cluster.clusters()[0].cluster_arn(),
        "the environment's own cluster"
    );
    assert!(target.role_arn().ends_with("/tap-local-repair-scheduler"));
    let retry = target.retry_policy().unwrap();
    assert_eq!(retry.maximum_retry_attempts(), Some(2));
    let ecs = target.ecs_parameters().unwrap();
    assert_eq!(ecs.launch_type().unwrap().as_str(), "FARGATE");
    let vpc = ecs
        .network_configuration()
        .unwrap()
        .awsvpc_configuration()
        .unwrap();
    assert_eq!(vpc.assign_public_ip().unwrap().as_str(), "DISABLED");
    let mut private: Vec<String> = Vec::new();
    for z in ["a", "b", "c"] {
        private.push(live.id(&format!("subnet-private-{z}")).await);
    }
    let mut subnets = vpc.subnets().to_vec();
    subnets.sort();
    private.sort();
    assert_eq!(subnets, private, "private subnets");
    // Its own security group: nothing in, HTTPS out only.
    let sg = vpc.security_groups()[0].clone();
    let g = live
        .ec2
        .describe_security_groups()
        .group_ids(&sg)
        .send()
        .await
        .unwrap();
    let g = &g.security_groups()[0];
    assert_eq!(g.group_name(), Some("tap-local-repair"));
    assert!(g.ip_permissions().is_empty(), "{g:?}");
    let out: Vec<(Option<i32>, Option<&str>)> = g
        .ip_permissions_egress()
        .iter()
        .map(|p| (p.from_port(), p.ip_protocol()))
        .collect();
    assert_eq!(out, [(Some(443), Some("tcp"))]);

    // The scheduler role: Scheduler only, for this account and group; RunTask of the
    // family, PassRole of the two task roles, TagResource of run tasks; nothing else.
    let role = live
        .iam
        .get_role()
        .role_name("tap-local-repair-scheduler")
        .send()
        .await
        .unwrap();
    let trust = url_decoded(role.role().unwrap().assume_role_policy_document().unwrap());
    let st = &trust["Statement"][0];
    assert_eq!(st["Principal"]["Service"], "scheduler.amazonaws.com");
    assert_eq!(st["Condition"]["StringEquals"]["aws:SourceAccount"], acct);
    assert_eq!(st["Condition"]["StringEquals"]["aws:SourceArn"], group_arn);
    let policy = live
        .iam
        .get_role_policy()
        .role_name("tap-local-repair-scheduler")
        .policy_name("tap-provision")
        .send()
        .await
        .unwrap();
    let policy = url_decoded(policy.policy_document());
    let actions: Vec<&str> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["ecs:RunTask", "iam:PassRole", "ecs:TagResource"]);
    let run_task = &policy["Statement"][0]["Resource"];
    assert!(
        run_task
            .as_str()
            .unwrap()
            .ends_with(":task-definition/tap-local-repair:*"),
        "{run_task}"
    );
    let passed = policy["Statement"][1]["Resource"].to_string();
    assert!(
        passed.contains("tap-local-repair-execution") && passed.contains("tap-local-repair-task"),
        "{passed}"
    );

    // The task role: its verb's policy, as managed policies within IAM's size.
    let attached = live
        .iam
        .list_attached_role_policies()
        .role_name("tap-local-repair-task")
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = attached
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_name())
        .collect();
    assert!(
        !names.is_empty()
            && names
                .iter()
                .all(|n| n.starts_with("tap-local-repair-task-"))
    );

    // The task: the tool's image and command, logging to its KMS-encrypted group.
    let td = live
        .ecs
        .describe_task_definition()
        .task_definition(ecs.task_definition_arn())
        .send()
        .await
        .unwrap();
    let container = &td.task_definition().unwrap().container_definitions()[0];
    assert_eq!(container.image(), Some(IMAGE));
    let command = container.command().to_vec();
    assert_eq!(
        command,
        [
            "repair",
            "--scheduled",
            "--project",
            "tap",
            "--region",
            REGION,
            "--env",
            "local"
        ]
    );
    let logs = live
        .logs
        .describe_log_groups()
        .log_group_name_prefix("/tap/tap-local/ecs/repair")
        .send()
        .await
        .unwrap();
    assert!(logs.log_groups()[0].kms_key_id().is_some());

    // Converged: nothing drifted, and a second `up` writes nothing.
    let d = in_dir("drift", &[], &acct, dir.path()).await;
    assert_eq!(d.code, 0, "{}\n{}", d.stdout, d.stderr);
    reset_calls(&acct).await;
    ok("up", &["--yes"], &acct, dir.path()).await;
    assert_eq!(crate::common::writes(&acct).await, BTreeMap::new());

    // The command run as the task runs it, after a change nobody described: put back.
    live.logs
        .put_retention_policy()
        .log_group_name("/tap/tap-local/vpc-flow-logs")
        .retention_in_days(1)
        .send()
        .await
        .unwrap();
    reset_calls(&acct).await;
    let r = as_the_task_runs(&acct, &command).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let g = live
        .logs
        .describe_log_groups()
        .log_group_name_prefix("/tap/tap-local/vpc-flow-logs")
        .send()
        .await
        .unwrap();
    assert_eq!(g.log_groups()[0].retention_in_days(), Some(7), "put back");
    // What the task role has: the scheduled run's policy, which named nothing more.
    let task = policies("scheduled-repair", &acct, dir.path()).await;
    assert_eq!(
        not_allowed(&acct, &task).await,
        Vec::<String>::new(),
        "scheduled repair"
    );
    lint_docs.extend(
        task.into_iter()
            .map(|d| ("scheduled-repair".to_string(), d)),
    );

    // `repair` by hand, after the same change.
    live.logs
        .put_retention_policy()
        .log_group_name("/tap/tap-local/vpc-flow-logs")
        .retention_in_days(1)
        .send()
        .await
        .unwrap();
    reset_calls(&acct).await;
    ok("repair", &[], &acct, dir.path()).await;
    let repair = policies("repair", &acct, dir.path()).await;
    assert_eq!(
        not_allowed(&acct, &repair).await,
        Vec::<String>::new(),
        "repair"
    );
    lint_docs.extend(repair.into_iter().map(|d| ("repair".to_string(), d)));
    let detect = policies("scheduled-drift", &acct, dir.path()).await;
    lint_docs.extend(
        detect
            .into_iter()
            .map(|d| ("scheduled-drift".to_string(), d)),
    );

    reset_calls(&acct).await;
    ok("drift", &[], &acct, dir.path()).await;
    let drift = policies("drift", &acct, dir.path()).await;
    assert_eq!(
        not_allowed(&acct, &drift).await,
        Vec::<String>::new(),
        "drift"
    );
    lint_docs.extend(drift.into_iter().map(|d| ("drift".to_string(), d)));

    reset_calls(&acct).await;
    ok("down", &["--yes"], &acct, dir.path()).await;
    let down = policies("down", &acct, dir.path()).await;
    assert_eq!(
        not_allowed(&acct, &down).await,
        Vec::<String>::new(),
        "down"
    );
    lint_docs.extend(down.into_iter().map(|d| ("down".to_string(), d)));
    assert_group_gone(&sch, "after down").await;

    let findings = lint(&lint_docs);
    assert!(findings.is_empty(), "{findings:#?}");
}

#[tokio::test]
async fn the_schedule_drifts_like_any_resource_and_no_scheduled_run_touches_it() {
    let acct = converged_with_schedule().await;
    let dir = with_schedule();
    let sch = scheduler(&sdk(&acct).await);
    let s = sch
        .get_schedule()
        .group_name(GROUP)
        .name(SCHEDULE)
        .send()
        .await
        .unwrap();
    // Every 5 minutes, by hand; and the group's tags removed.
    sch.update_schedule()
        .group_name(GROUP)
        .name(SCHEDULE)
        .schedule_expression("rate(5 minutes)")
        .flexible_time_window(s.flexible_time_window().unwrap().clone())
        .target(s.target().unwrap().clone())
        .send()
        .await
        .unwrap();
    let arn = sch
        .get_schedule_group()
        .name(GROUP)
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    sch.untag_resource()
        .resource_arn(&arn)
        .tag_keys("CostCenter")
        .send()
        .await
        .unwrap();

    // A scheduled run leaves its own schedule alone, whatever it finds there.
    let r = run(
        &[
            "repair",
            "--scheduled",
            "--project",
            "tap",
            "--region",
            REGION,
            "--env",
            "local",
            "--json",
        ],
        &acct,
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.event("scheduled_finished")["verdict"], "clean");
    let expression = |sch: aws_sdk_scheduler::Client| async move {
        sch.get_schedule()
            .group_name(GROUP)
            .name(SCHEDULE)
            .send()
            .await
            .unwrap()
            .schedule_expression()
            .unwrap()
            .to_string()
    };
    assert_eq!(expression(sch.clone()).await, "rate(5 minutes)");

    // `drift` sees both; `repair` puts both back.
    reset_calls(&acct).await;
    let d = in_dir("drift", &[], &acct, dir.path()).await;
    assert_eq!(d.code, 2, "{}\n{}", d.stdout, d.stderr);
    assert_eq!(drifted(&d), set(&["repair-group", "repair-schedule"]));
    assert_eq!(writes(&acct).await, BTreeMap::new(), "drift wrote");
    ok("repair", &[], &acct, dir.path()).await;
    assert_eq!(
        writes(&acct).await,
        ops(&[
            ("scheduler:TagResource", 1),
            ("scheduler:UpdateSchedule", 1)
        ])
    );
    assert_eq!(expression(sch.clone()).await, "rate(1 hour)");
    let d = in_dir("drift", &[], &acct, dir.path()).await;
    assert_eq!(d.code, 0, "{}\n{}", d.stdout, d.stderr);

    // By hand: the task given another command (container overrides in the target's input,
    // run with the task role's rights), a dead-letter queue, and an end date that would
    // silently stop the repairs. Seen; put back.
    let t = s.target().unwrap();
    sch.update_schedule()
        .group_name(GROUP)
        .name(SCHEDULE)
        .schedule_expression("rate(1 hour)")
        .flexible_time_window(s.flexible_time_window().unwrap().clone())
        .end_date(aws_sdk_scheduler::primitives::DateTime::from_secs(4_102_444_800))
        .target(
            aws_sdk_scheduler::types::Target::builder()
                .arn(t.arn())
                .role_arn(t.role_arn())
                .set_ecs_parameters(t.ecs_parameters().cloned())
                .set_retry_policy(t.retry_policy().cloned())
                .input(r#"{"containerOverrides":[{"name":"tap-provision","command":["down","--yes"]}]}"#)
                .dead_letter_config(
                    aws_sdk_scheduler::types::DeadLetterConfig::builder()
                        .arn(format!("arn:aws:sqs:{REGION}:{acct}:elsewhere"))
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let d = in_dir("drift", &[], &acct, dir.path()).await;
    assert_eq!(d.code, 2, "{}\n{}", d.stdout, d.stderr);
    assert_eq!(drifted(&d), set(&["repair-schedule"]));
    let fields: Vec<String> = d
        .events_of("drift")
        .into_iter()
        .flat_map(|e| {
            e["drift"]["changes"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|c| c["field"].as_str().unwrap_or_default().to_string())
        .collect();
    for wanted in ["lifetime", "target"] {
        assert!(fields.iter().any(|f| f == wanted), "{wanted}: {fields:?}");
    }
    for wanted in ["containerOverrides", "elsewhere", "end_date"] {
        assert!(d.stdout.contains(wanted), "{wanted}: {}", d.stdout);
    }
    ok("repair", &[], &acct, dir.path()).await;
    let d = in_dir("drift", &[], &acct, dir.path()).await;
    assert_eq!(d.code, 0, "{}\n{}", d.stdout, d.stderr);

    // The task role's first policy widened by hand, four times (IAM keeps five versions),
    // and its tags removed: seen; put back as a new default version, the oldest pruned.
    let iam = aws_sdk_iam::Client::new(&sdk(&acct).await);
    let policy_arn = format!("arn:aws:iam::{acct}:policy/tap/local/tap-local-repair-task-1");
    for i in 0..4 {
        iam.create_policy_version()
            .policy_arn(&policy_arn)
            .policy_document(format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"iam:*","Resource":"*","Sid":"wide{i}"}}]}}"#
            ))
            .set_as_default(true)
            .send()
            .await
            .unwrap();
    }
    iam.untag_policy()
        .policy_arn(&policy_arn)
        .tag_keys("CostCenter")
        .send()
        .await
        .unwrap();
    let d = in_dir("drift", &[], &acct, dir.path()).await;
    assert_eq!(d.code, 2, "{}\n{}", d.stdout, d.stderr);
    assert_eq!(drifted(&d), set(&["repair-task-policy-1"]));
    ok("repair", &[], &acct, dir.path()).await;
    let versions = iam
        .list_policy_versions()
        .policy_arn(&policy_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(versions.versions().len(), 5, "{versions:?}");
    let d = in_dir("drift", &[], &acct, dir.path()).await;
    assert_eq!(d.code, 0, "{}\n{}", d.stdout, d.stderr);

    // Deleted out of band: seen, and made again.
    sch.delete_schedule()
        .group_name(GROUP)
        .name(SCHEDULE)
        .send()
        .await
        .unwrap();
    reset_calls(&acct).await;
    let d = in_dir("drift", &[], &acct, dir.path()).await;
    assert_eq!(d.code, 2);
    assert_eq!(drifted(&d), set(&["repair-schedule"]));
    assert_eq!(writes(&acct).await, BTreeMap::new(), "drift wrote");
    ok("repair", &[], &acct, dir.path()).await;
    assert_eq!(writes(&acct).await, ops(&[("scheduler:CreateSchedule", 1)]));
    assert_eq!(expression(sch.clone()).await, "rate(1 hour)");

    // The group deleted out of band takes its schedule with it: both seen, both made again.
    sch.delete_schedule_group()
        .name(GROUP)
        .send()
        .await
        .unwrap();
    reset_calls(&acct).await;
    let d = in_dir("drift", &[], &acct, dir.path()).await;
    assert_eq!(d.code, 2, "{}\n{}", d.stdout, d.stderr);
    assert_eq!(drifted(&d), set(&["repair-group", "repair-schedule"]));
    assert_eq!(writes(&acct).await, BTreeMap::new(), "drift wrote");
    ok("repair", &[], &acct, dir.path()).await;
    assert_eq!(
        writes(&acct).await,
        ops(&[
            ("scheduler:CreateScheduleGroup", 1),
            ("scheduler:CreateSchedule", 1)
        ])
    );
    assert_eq!(expression(sch.clone()).await, "rate(1 hour)");
    let tags = sch
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert!(
        tags.tags()
            .iter()
            .any(|t| t.key() == "tap:environment" && t.value() == ENV),
        "{tags:?}"
    );

    // A managed policy deleted out of band (detached first, as IAM requires): the policy
    // and the role's attachment are seen; repair makes the policy again and attaches it.
    iam.detach_role_policy()
        .role_name("tap-local-repair-task")
        .policy_arn(&policy_arn)
        .send()
        .await
        .unwrap();
    let versions = iam
        .list_policy_versions()
        .policy_arn(&policy_arn)
        .send()
        .await
        .unwrap();
    for v in versions
        .versions()
        .iter()
        .filter(|v| !v.is_default_version())
    {
        iam.delete_policy_version()
            .policy_arn(&policy_arn)
            .version_id(v.version_id().unwrap())
            .send()
            .await
            .unwrap();
    }
    iam.delete_policy()
        .policy_arn(&policy_arn)
        .send()
        .await
        .unwrap();
    reset_calls(&acct).await;
    let d = in_dir("drift", &[], &acct, dir.path()).await;
    assert_eq!(d.code, 2, "{}\n{}", d.stdout, d.stderr);
    assert_eq!(
        drifted(&d),
        set(&["repair-task-policy-1", "repair-task-role"])
    );
    assert_eq!(writes(&acct).await, BTreeMap::new(), "drift wrote");
    ok("repair", &[], &acct, dir.path()).await;
    assert_eq!(
        writes(&acct).await,
        ops(&[("iam:CreatePolicy", 1), ("iam:AttachRolePolicy", 1)])
    );
    let attached = iam
        .list_attached_role_policies()
        .role_name("tap-local-repair-task")
        .send()
        .await
        .unwrap();
    assert!(
        attached
            .attached_policies()
            .iter()
            .any(|p| p.policy_arn() == Some(policy_arn.as_str())),
        "{attached:?}"
    );
    let d = in_dir("drift", &[], &acct, dir.path()).await;
    assert_eq!(d.code, 0, "{}\n{}", d.stdout, d.stderr);
}

/// The binary the image copies, run as the task runs it: a non-root user, no HOME, no env
/// file, nothing but the task's environment (credentials and, here, the endpoint).
#[tokio::test]
async fn the_binary_runs_as_a_non_root_user_with_only_the_tasks_environment() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("tap-provision");
    std::fs::copy(env!("CARGO_BIN_EXE_tap-provision"), &bin).unwrap();
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let acct = account();
    let task = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(&bin);
        cmd.args(args)
            .current_dir(dir.path())
            .env_clear()
            .env("AWS_ACCESS_KEY_ID", &acct)
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_ENDPOINT_URL", endpoint(&acct))
            .env("AWS_EC2_METADATA_DISABLED", "true");
        if root {
            // As the image's `USER`: not root.
            cmd.uid(65534).gid(65534);
        }
        cmd
    };
    let out = task(&["--version"]).output().await.unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("tap-provision "));
    // The scheduled command with no record: it runs, says so, and exits 1.
    let out = task(&[
        "repair",
        "--scheduled",
        "--project",
        "tap",
        "--region",
        REGION,
        "--env",
        "local",
        "--json",
    ])
    .output()
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{out:?}");
    assert!(stdout.contains("no applied record"), "{stdout}");
    // Its policy, offline.
    let config = repo().join("config");
    let out = task(&[
        "--json",
        "iam-policy",
        "--env",
        "prod",
        "--config-dir",
        config.to_str().unwrap(),
        "--for",
        "repair",
        "--scheduled",
        "--account",
        "123456789012",
    ])
    .output()
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verb"], "scheduled-repair");
}

/// `status --all` from an empty directory, no env file: both environments of the account,
/// each with its last run, schedule and next run.
#[tokio::test]
async fn status_all_lists_every_environment_with_its_last_run_and_next_run() {
    let dir = with_schedule();
    let local = std::fs::read_to_string(dir.path().join("local.toml")).unwrap();
    let qa = local
        .replace("local.example.com", "qa.example.com")
        .split("\n[repair]")
        .next()
        .unwrap()
        .to_string();
    std::fs::write(dir.path().join("qa.toml"), qa).unwrap();
    let acct = converged_with_schedule().await;
    let config = dir.path().to_string_lossy().into_owned();
    let r = run(
        &[
            "up",
            "--env",
            "qa",
            "--yes",
            "--json",
            "--config-dir",
            &config,
        ],
        &acct,
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let r = run(
        &[
            "repair",
            "--scheduled",
            "--project",
            "tap",
            "--region",
            REGION,
            "--env",
            "local",
            "--json",
        ],
        &acct,
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);

    let empty = tempfile::tempdir().unwrap();
    let mut cmd = command(
        &["status", "--all", "--region", REGION, "--json"],
        &acct,
        endpoint(&acct),
        empty.path(),
    );
    cmd.env_remove("HOME");
    let out = cmd.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{out:?}");
    let fleet: Value = serde_json::from_str(stdout.trim()).unwrap();
    let envs = fleet["environments"].as_array().unwrap();
    let names: Vec<&str> = envs
        .iter()
        .map(|e| e["environment"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["tap-local", "tap-qa"], "{fleet:#}");
    let local = &envs[0];
    assert_eq!(local["schedule"], "rate(1 hour)");
    assert_eq!(local["mode"], "repair");
    assert_eq!(local["last_run"]["command"], "repair-scheduled", "{local}");
    assert_eq!(
        local["last_run"]["scheduled"]["verdict"], "clean",
        "{local}"
    );
    let next = chrono::DateTime::parse_from_rfc3339(local["next_run"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let now = chrono::Utc::now();
    assert!(
        next > now && next <= now + chrono::Duration::minutes(61),
        "an hour from the schedule's creation: {next}"
    );
    let qa = &envs[1];
    assert_eq!(qa["schedule"], Value::Null);
    assert_eq!(qa["last_run"]["command"], "up", "{qa}");
    assert_eq!(qa["last_run"]["result"], "ok", "{qa}");
}
