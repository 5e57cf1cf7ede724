//! The scheduled repair taken away: `schedule = "off"` then `up`, `down` whatever the file
//! says, and `up` killed while it builds the schedule (nothing made twice, nothing left).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::common::live::{Live, ENV};
use crate::common::{account, calls, config_dir, converged, emulator_admin, reset_calls, sdk};
use crate::crash::{crash, Point};
use crate::schedule::{
    assert_group_gone, converged_with_schedule, in_dir, ok, repair_nodes, scheduler, with_schedule,
    GROUP,
};

#[tokio::test]
async fn off_deletes_exactly_the_scheduled_repair_and_down_removes_it_whatever_the_config() {
    let acct = converged_with_schedule().await;
    let on = with_schedule();
    let off = config_dir(|t| t);
    let sch = scheduler(&sdk(&acct).await);
    let live = Live::new(&acct).await;

    // `plan` names what `up` will delete; `up` deletes exactly those. Its look finds the
    // policy parts with one listing of the environment's path: a GetPolicy for each part
    // there is, none for the parts an earlier version could have made and this one did not.
    let parts = live
        .iam
        .list_policies()
        .scope(aws_sdk_iam::types::PolicyScopeType::Local)
        .path_prefix("/tap/local/")
        .send()
        .await
        .unwrap()
        .policies()
        .len() as u64;
    assert!(parts >= 1);
    reset_calls(&acct).await;
    let p = in_dir("plan", &[], &acct, off.path()).await;
    assert_eq!(p.code, 2, "{}\n{}", p.stdout, p.stderr);
    let read = calls(&acct).await;
    assert_eq!(read.get("iam:ListPolicies"), Some(&1), "{read:?}");
    assert_eq!(read.get("iam:GetPolicy"), Some(&parts), "{read:?}");
    assert_eq!(
        p.event("plan_finished")["counts"]["delete"],
        repair_nodes().len()
    );
    let r = ok("up", &["--yes"], &acct, off.path()).await;
    let deleted: BTreeSet<String> = r
        .events_of("node_finished")
        .into_iter()
        .filter(|e| e["outcome"] == "deleted")
        .map(|e| e["node"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(deleted, repair_nodes());
    assert_group_gone(&sch, "after up with the schedule off").await;
    let roles = live.iam.list_roles().send().await.unwrap();
    assert!(
        !roles
            .roles()
            .iter()
            .any(|r| r.role_name().contains("repair")),
        "{roles:?}"
    );
    let policies = live.iam.list_policies().send().await.unwrap();
    assert!(
        !policies
            .policies()
            .iter()
            .any(|p| p.policy_name().unwrap_or("").contains("repair")),
        "{policies:?}"
    );
    // Everything else as it was: converged, and nothing left to do.
    let d = in_dir("drift", &[], &acct, off.path()).await;
    assert_eq!(d.code, 0, "{}\n{}", d.stdout, d.stderr);
    let p = in_dir("plan", &[], &acct, off.path()).await;
    assert_eq!(p.code, 0, "{}\n{}", p.stdout, p.stderr);

    // Built again, the new scheduler role not assumable by Scheduler for a moment (as on
    // AWS): CreateSchedule is retried (NEW_ROLE_SCHEDULER) until it is.
    let path = format!("/_tap/consistency/{acct}");
    emulator_admin("PUT", &path, r#"{"seconds": 3}"#).await;
    ok("up", &["--yes"], &acct, on.path()).await;
    let produced = emulator_admin("DELETE", &path, "").await["produced"].clone();
    assert!(
        produced["new-role-scheduler"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{produced}"
    );
    sch.get_schedule_group()
        .name(GROUP)
        .send()
        .await
        .expect("the schedule group is there");
    // A part of the task role's policy that an earlier version needed and this config does
    // not (the policy was split into more parts then).
    let extra = live
        .iam
        .create_policy()
        .policy_name(format!("{ENV}-repair-task-9"))
        .path("/tap/local/")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:GetCallerIdentity","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    live.iam
        .attach_role_policy()
        .role_name(format!("{ENV}-repair-task"))
        .policy_arn(extra.policy().unwrap().arn().unwrap())
        .send()
        .await
        .unwrap();
    // Then `down` with the schedule off in the file removes it too, that part included.
    ok("down", &["--yes"], &acct, off.path()).await;
    assert_group_gone(&sch, "after down with the schedule off").await;
    let roles = live.iam.list_roles().send().await.unwrap();
    assert!(roles.roles().is_empty(), "{roles:?}");
    let policies = live
        .iam
        .list_policies()
        .scope(aws_sdk_iam::types::PolicyScopeType::Local)
        .send()
        .await
        .unwrap();
    assert!(
        !policies
            .policies()
            .iter()
            .any(|p| p.policy_name().unwrap_or("").contains("repair")),
        "{policies:?}"
    );
}

#[tokio::test]
async fn killed_inside_the_schedules_creation_up_again_makes_each_once() {
    for (op, n) in [
        ("scheduler:CreateScheduleGroup", 1),
        ("iam:CreatePolicy", 2),
        ("scheduler:CreateSchedule", 1),
    ] {
        let acct = account();
        let dir = with_schedule();
        let config = dir.path().to_string_lossy().into_owned();
        let args = [
            "up",
            "--env",
            "local",
            "--yes",
            "--json",
            "--config-dir",
            config.as_str(),
        ];
        let hit = crash(&args, &acct, Point::Call(op, n)).await;
        assert!(hit.is_some(), "up ended before {op} #{n}");
        ok("up", &["--yes"], &acct, dir.path()).await;
        let conf = sdk(&acct).await;
        let sch = scheduler(&conf);
        let groups = sch.list_schedule_groups().send().await.unwrap();
        let ours: Vec<_> = groups
            .schedule_groups()
            .iter()
            .filter(|g| g.name() == Some(GROUP))
            .collect();
        assert_eq!(ours.len(), 1, "after {op}: {groups:?}");
        let schedules = sch.list_schedules().send().await.unwrap();
        assert_eq!(schedules.schedules().len(), 1, "after {op}: {schedules:?}");
        let policies = aws_sdk_iam::Client::new(&conf)
            .list_policies()
            .scope(aws_sdk_iam::types::PolicyScopeType::Local)
            .send()
            .await
            .unwrap();
        let want = repair_nodes()
            .iter()
            .filter(|n| n.starts_with("repair-task-policy-"))
            .count();
        assert_eq!(policies.policies().len(), want, "after {op}: {policies:?}");
        let d = in_dir("drift", &[], &acct, dir.path()).await;
        assert_eq!(d.code, 0, "after {op}:\n{}\n{}", d.stdout, d.stderr);
    }
}

#[tokio::test]
async fn killed_while_the_schedule_is_first_built_then_turned_off_leaves_nothing() {
    let acct = converged().await;
    let on = with_schedule();
    let off = config_dir(|t| t);
    // An environment with its record, then the schedule added and that `up` killed after
    // it made some of it (and before it stored the record).
    let config = on.path().to_string_lossy().into_owned();
    let args = [
        "up",
        "--env",
        "local",
        "--yes",
        "--json",
        "--config-dir",
        config.as_str(),
    ];
    let hit = crash(&args, &acct, Point::Call("iam:CreatePolicy", 2)).await;
    assert!(hit.is_some(), "up ended before its second CreatePolicy");
    let live = Live::new(&acct).await;
    let record = |live: &Live| {
        let s3 = live.s3.clone();
        let bucket = format!("{ENV}-state-{acct}");
        async move {
            let o = s3
                .get_object()
                .bucket(bucket)
                .key("tap-provision/applied.json")
                .send()
                .await
                .unwrap();
            let bytes = o.body.collect().await.unwrap().into_bytes();
            serde_json::from_slice::<Value>(&bytes).unwrap()
        }
    };
    // What it set out to make is named in the record before it made any of it.
    let started = record(&live).await["started"].clone();
    assert!(
        started
            .as_array()
            .is_some_and(|s| s.iter().any(|n| n == "repair-task-policy-1")),
        "{started}"
    );
    // Turned off again: `up` finds what the killed run made and deletes it.
    ok("up", &["--yes"], &acct, off.path()).await;
    // Settled: nothing left started, so later runs do not look for the schedule again.
    assert!(record(&live).await.get("started").is_none());
    let policies = live
        .iam
        .list_policies()
        .scope(aws_sdk_iam::types::PolicyScopeType::Local)
        .send()
        .await
        .unwrap();
    assert!(policies.policies().is_empty(), "{policies:?}");
    let roles = live.iam.list_roles().send().await.unwrap();
    assert!(
        !roles
            .roles()
            .iter()
            .any(|r| r.role_name().contains("repair")),
        "{roles:?}"
    );
    let sch = scheduler(&sdk(&acct).await);
    assert_group_gone(&sch, "after the killed run was run again").await;
    let p = in_dir("plan", &[], &acct, off.path()).await;
    assert_eq!(p.code, 0, "{}\n{}", p.stdout, p.stderr);
}
