//! The scheduled run as the task runs it: `repair --scheduled` (or `drift` in detect mode)
//! from an empty directory, no env file, no HOME: it repairs to the applied record, tells
//! (CloudWatch metrics, one SNS message when something happened), stores a report of every
//! run, skips at once when the lock is held, and writes nothing it cannot explain.

use std::collections::BTreeMap;
use std::path::Path;

use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use aws_sdk_s3::primitives::ByteStream;
use serde_json::{json, Value};

use crate::common::live::{Live, ENV};
use crate::common::{
    account, bookkeeping, calls, config_dir, converged, endpoint, local, reset_calls, writes, Run,
    REGION,
};

const FLOW_LOGS: &str = "/tap/tap-local/vpc-flow-logs";
const RECORD: &str = "tap-provision/applied.json";
/// What telling costs, and is not a write: the metrics and the message.
const TELLING: [&str; 2] = ["monitoring:PutMetricData", "sns:Publish"];

/// `<verb> --scheduled` exactly as the task definition runs it: from an empty directory,
/// without HOME or USER, with only the credentials and the endpoint.
async fn scheduled(verb: &str, acct: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = crate::common::command(
        &[
            verb,
            "--scheduled",
            "--project",
            "tap",
            "--env",
            "local",
            "--region",
            REGION,
            "--json",
        ],
        acct,
        endpoint(acct),
        dir.path(),
    );
    cmd.env_remove("HOME").env_remove("USER");
    assert!(!Path::new(&dir.path().join("config")).exists());
    let out = tokio::time::timeout(std::time::Duration::from_secs(180), cmd.output())
        .await
        .expect("the scheduled run ended")
        .expect("running tap-provision");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The writes beside telling.
async fn writes_beside_telling(acct: &str) -> BTreeMap<String, u64> {
    let mut w = writes(acct).await;
    for t in TELLING {
        w.remove(t);
    }
    w
}

async fn shorten_retention(live: &Live) {
    live.logs
        .put_retention_policy()
        .log_group_name(FLOW_LOGS)
        .retention_in_days(1)
        .send()
        .await
        .unwrap();
}

/// The sum of one of the environment's scheduled-run metrics, as CloudWatch has it.
async fn metric(acct: &str, name: &str) -> f64 {
    let cw = aws_sdk_cloudwatch::Client::new(&crate::common::sdk(acct).await);
    let now = aws_smithy_types::DateTime::from_secs(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
    );
    let hour_ago = aws_smithy_types::DateTime::from_secs(now.secs() - 3600);
    let out = cw
        .get_metric_statistics()
        .namespace("TapProvision")
        .metric_name(name)
        .dimensions(Dimension::builder().name("Environment").value(ENV).build())
        .start_time(hour_ago)
        .end_time(aws_smithy_types::DateTime::from_secs(now.secs() + 60))
        .period(3600)
        .statistics(Statistic::Sum)
        .send()
        .await
        .unwrap();
    out.datapoints().iter().filter_map(|d| d.sum()).sum()
}

fn finished(r: &Run) -> Value {
    r.event("scheduled_finished")
}

#[tokio::test]
async fn it_repairs_to_the_record_alone_tells_once_and_a_clean_run_tells_nobody() {
    let acct = converged().await;
    let live = Live::new(&acct).await;
    shorten_retention(&live).await;
    reset_calls(&acct).await;

    let r = scheduled("repair", &acct).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let done = finished(&r);
    assert_eq!(done["verdict"], "put back", "{done}");
    assert_eq!(done["put_back"], json!(["flow-logs-group"]), "{done}");
    assert!(
        done["report"].as_str().unwrap().starts_with("s3://"),
        "{done}"
    );
    assert_eq!(
        writes_beside_telling(&acct).await,
        BTreeMap::from([("logs:PutRetentionPolicy".to_string(), 1)])
    );
    let c = calls(&acct).await;
    assert_eq!(c.get("sns:Publish"), Some(&1), "one message: {c:?}");
    assert_eq!(c.get("monitoring:PutMetricData"), Some(&1), "{c:?}");
    assert_eq!(metric(&acct, "Repaired").await, 1.0);
    assert_eq!(metric(&acct, "Drifted").await, 1.0);
    assert_eq!(metric(&acct, "Succeeded").await, 1.0);

    // Clean now: metrics (a heartbeat, a success), a report, no message.
    reset_calls(&acct).await;
    let r = scheduled("repair", &acct).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(finished(&r)["verdict"], "clean");
    let c = calls(&acct).await;
    assert_eq!(
        c.get("sns:Publish"),
        None,
        "a clean run tells nobody: {c:?}"
    );
    assert_eq!(c.get("monitoring:PutMetricData"), Some(&1), "{c:?}");
    assert!(writes_beside_telling(&acct).await.is_empty());
    assert_eq!(
        bookkeeping(&acct).await.get("s3:PutObject[history]"),
        Some(&1),
        "every scheduled run leaves its report"
    );
    assert_eq!(metric(&acct, "Heartbeat").await, 2.0);

    // `history` shows both, newest first, as scheduled runs.
    let h = local("history", &[], &acct, None).await;
    assert_eq!(h.code, 0, "{}", h.stderr);
    let runs = h.event("history")["runs"].clone();
    assert_eq!(runs[0]["scheduled"]["verdict"], "clean", "{runs}");
    assert_eq!(runs[1]["scheduled"]["verdict"], "put back", "{runs}");
    assert_eq!(runs[1]["command"], "repair-scheduled", "{runs}");
}

#[tokio::test]
async fn no_record_or_an_unreadable_one_fails_tells_and_writes_nothing() {
    // Nothing there at all.
    let acct = account();
    let r = scheduled("repair", &acct).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let done = finished(&r);
    assert_eq!(done["verdict"], "failed");
    assert!(
        done["why"].as_str().unwrap().contains("no applied record"),
        "{done}"
    );
    assert!(writes_beside_telling(&acct).await.is_empty());
    assert_eq!(metric(&acct, "Failed").await, 1.0);

    // An environment whose record is not JSON: nothing is put back, people are told.
    let acct = converged().await;
    let live = Live::new(&acct).await;
    shorten_retention(&live).await;
    live.s3
        .put_object()
        .bucket(live.bucket())
        .key(RECORD)
        .body(ByteStream::from_static(b"not a record"))
        .send()
        .await
        .unwrap();
    reset_calls(&acct).await;
    let r = scheduled("repair", &acct).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(finished(&r)["why"]
        .as_str()
        .unwrap()
        .contains("is not JSON"));
    assert!(writes_beside_telling(&acct).await.is_empty());
    let c = calls(&acct).await;
    assert_eq!(c.get("sns:Publish"), Some(&1), "a failure is told: {c:?}");
    assert!(
        !bookkeeping(&acct).await.contains_key("s3:PutObject[lock]"),
        "no lock taken"
    );
}

#[tokio::test]
async fn a_held_lock_makes_it_skip_at_once() {
    let acct = converged().await;
    let live = Live::new(&acct).await;
    shorten_retention(&live).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let holder = json!({
        "owner": "ops@build-7", "host": "build-7", "pid": 4242,
        "identity": "arn:aws:iam::000000000000:user/ops", "command": "up",
        "run_id": "1", "since": now - 30, "expires": now + 600,
    });
    live.s3
        .put_object()
        .bucket(live.bucket())
        .key("tap-provision/lock.json")
        .body(ByteStream::from(holder.to_string().into_bytes()))
        .send()
        .await
        .unwrap();
    reset_calls(&acct).await;
    let began = std::time::Instant::now();
    let r = scheduled("repair", &acct).await;
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    assert!(
        began.elapsed() < std::time::Duration::from_secs(20),
        "at once"
    );
    let done = finished(&r);
    assert_eq!(done["verdict"], "skipped", "{done}");
    assert!(
        done["why"].as_str().unwrap().contains("ops@build-7"),
        "{done}"
    );
    assert!(writes_beside_telling(&acct).await.is_empty());
    assert_eq!(
        calls(&acct).await.get("sns:Publish"),
        None,
        "skipped is not news: the dead man's switch watches for it"
    );
    assert_eq!(metric(&acct, "Succeeded").await, 0.0);
}

#[tokio::test]
async fn detect_mode_reports_and_writes_nothing_and_an_ignored_field_is_never_put_back() {
    let acct = account();
    let dir = config_dir(|t| {
        format!(
            "{t}\n[repair]\nmode = \"detect\"\nignore = [\"logs-frontend.retention_in_days\"]\n"
        )
    });
    let up = local("up", &["--yes"], &acct, Some(dir.path())).await;
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    let live = Live::new(&acct).await;
    shorten_retention(&live).await;
    live.logs
        .put_retention_policy()
        .log_group_name(format!("/tap/{ENV}/ecs/frontend"))
        .retention_in_days(1)
        .send()
        .await
        .unwrap();
    reset_calls(&acct).await;

    // The accepted field is listed apart by `drift`, never as drift.
    let d = local("drift", &[], &acct, Some(dir.path())).await;
    assert_eq!(d.code, 2, "{}\n{}", d.stdout, d.stderr);
    let drifted = crate::common::live::drifted(&d);
    assert_eq!(drifted, crate::common::live::set(&["flow-logs-group"]));
    let frontend = d
        .events_of("drift")
        .into_iter()
        .find(|e| e["node"] == "logs-frontend")
        .expect("logs-frontend listed apart");
    assert!(frontend["drift"].is_null(), "{frontend}");
    assert_eq!(
        frontend["ignored"][0]["field"], "retention_in_days",
        "{frontend}"
    );

    // Detect mode (the record's): found, told, nothing written.
    let r = scheduled("drift", &acct).await;
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    let done = finished(&r);
    assert_eq!(done["verdict"], "drift detected", "{done}");
    assert_eq!(done["mode"], "drift");
    assert!(writes_beside_telling(&acct).await.is_empty());
    assert_eq!(calls(&acct).await.get("sns:Publish"), Some(&1));

    // Repair of the same environment, mode switched in its file: the ignored field stays.
    let dir =
        config_dir(|t| format!("{t}\n[repair]\nignore = [\"logs-frontend.retention_in_days\"]\n"));
    let up = local("up", &["--yes"], &acct, Some(dir.path())).await;
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    shorten_retention(&live).await;
    reset_calls(&acct).await;
    let r = scheduled("repair", &acct).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        writes_beside_telling(&acct).await,
        BTreeMap::from([("logs:PutRetentionPolicy".to_string(), 1)]),
        "the flow logs' retention, not the frontend's"
    );
    let groups = live
        .logs
        .describe_log_groups()
        .log_group_name_prefix(format!("/tap/{ENV}/ecs/frontend"))
        .send()
        .await
        .unwrap();
    assert_eq!(groups.log_groups()[0].retention_in_days(), Some(1));
}
