//! One acting run at a time per environment: the lock in the state bucket (S3 conditional
//! writes), waiting for it, taking over a dead holder's, `unlock --force`, and the run
//! history each acting run leaves.

use aws_sdk_s3::primitives::ByteStream;
use serde_json::{json, Value};

use crate::common::live::Live;
use crate::common::{
    account, arm_barrier, bookkeeping, converged, emulator_admin, held_at, local, ops, reset_calls,
    run, writes, Run,
};

const FLOW_LOGS: &str = "/tap/tap-local/vpc-flow-logs";
const LOCK: &str = "tap-provision/lock.json";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Drift that one write puts back: the flow logs' retention shortened by hand.
async fn shorten_retention(live: &Live) {
    live.logs
        .put_retention_policy()
        .log_group_name(FLOW_LOGS)
        .retention_in_days(1)
        .send()
        .await
        .expect("PutRetentionPolicy");
}

/// Another run's lock, written as the tool writes it.
async fn plant_lock(live: &Live, host: &str, pid: u32, expires: u64) {
    let holder = json!({
        "owner": format!("ops@{host}"), "host": host, "pid": pid,
        "identity": "arn:aws:iam::000000000000:user/ops", "command": "repair",
        "run_id": "1", "since": now() - 30, "expires": expires,
    });
    live.s3
        .put_object()
        .bucket(live.bucket())
        .key(LOCK)
        .body(ByteStream::from(holder.to_string().into_bytes()))
        .send()
        .await
        .expect("planting a lock");
}

/// Whether the lock object is there: gone is S3's NoSuchKey (with `bucket_too`, NoSuchBucket
/// as well, before `up` has made the state bucket), and any other error fails.
async fn lock_in(live: &Live, bucket_too: bool) -> bool {
    match live
        .s3
        .get_object()
        .bucket(live.bucket())
        .key(LOCK)
        .send()
        .await
    {
        Ok(_) => true,
        Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => false,
        Err(e) if bucket_too && e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
            false
        }
        Err(e) => panic!("reading the lock: {e:?}"),
    }
}

async fn lock_exists(live: &Live) -> bool {
    lock_in(live, false).await
}

/// The lock as stored (its holder's JSON), `None` once released (NoSuchKey).
async fn stored_lock(live: &Live) -> Option<Value> {
    match live
        .s3
        .get_object()
        .bucket(live.bucket())
        .key(LOCK)
        .send()
        .await
    {
        Ok(stored) => {
            let bytes = stored.body.collect().await.unwrap().into_bytes();
            Some(serde_json::from_slice(&bytes).expect("the lock's JSON"))
        }
        Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => None,
        Err(e) => panic!("reading the lock: {e:?}"),
    }
}

fn said(r: &Run, text: &str) -> bool {
    r.stdout.contains(text) || r.stderr.contains(text)
}

#[tokio::test]
async fn two_repairs_started_together_put_back_the_drift_once() {
    let acct = converged().await;
    let live = Live::new(&acct).await;
    shorten_retention(&live).await;
    reset_calls(&acct).await;

    // Both meet at the lock's conditional write itself (the emulator holds the first of each
    // until the other has come): exactly one is refused, and its run waits for the lock.
    let barrier = arm_barrier(
        &acct,
        r#"{"operation": "s3:PutObject[lock]", "parties": 2}"#,
    )
    .await;
    let (a, b) = tokio::join!(
        local("repair", &[], &acct, None),
        local("repair", &[], &acct, None)
    );
    let met = emulator_admin("DELETE", &barrier, "").await;
    assert_eq!(met["arrived"], 2, "{met}");
    let mut statuses: Vec<u64> = met["statuses"]
        .as_array()
        .expect("statuses")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    statuses.sort();
    assert_eq!(statuses, [200, 412], "one conditional write refused: {met}");
    let waited = [&a, &b]
        .iter()
        .filter(|r| said(r, "waiting up to") || r.code == 4)
        .count();
    assert_eq!(
        waited, 1,
        "{}\n{}\n---\n{}\n{}",
        a.stdout, a.stderr, b.stdout, b.stderr
    );
    for r in [&a, &b] {
        assert!(r.code == 0 || r.code == 4, "{}\n{}", r.stdout, r.stderr);
    }
    // Counted by the emulator: one put-back and one report. Each run that found drift took
    // the lock and let it go (a refused attempt counts as a PutObject too); the other may
    // have looked after the first had finished.
    let w = writes(&acct).await;
    assert_eq!(
        w,
        ops(&[("logs:PutRetentionPolicy", 1)]),
        "one put-back, nothing else"
    );
    let tool = bookkeeping(&acct).await;
    assert_eq!(tool.get("s3:PutObject[history]"), Some(&1), "{tool:?}");
    // Each run that took the lock released it with one DeleteObject, with its newest ETag:
    // at this scale the lease is 30 s, so a short run seldom renews it, and a release lets
    // a renewal in flight finish.
    let released = tool.get("s3:DeleteObject[lock]").copied().unwrap_or(0);
    assert!((1..=2).contains(&released), "{tool:?}");
    let repaired: Vec<u64> = [&a, &b]
        .iter()
        .map(|r| r.event("repair_finished")["drifted"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(repaired.iter().sum::<u64>(), 1, "{repaired:?}");
    assert!(!lock_exists(&live).await, "the lock is released");

    // `history` lists the repair, with who ran it and the property it put back, then `up`.
    let h = local("history", &[], &acct, None).await;
    assert_eq!(h.code, 0, "{}", h.stderr);
    let runs = h.event("history")["runs"].clone();
    let runs = runs.as_array().expect("runs");
    assert_eq!(runs.len(), 2, "{runs:?}");
    let (repair, up) = (&runs[0], &runs[1]);
    assert_eq!(repair["command"], "repair");
    assert_eq!(up["command"], "up");
    assert_eq!(up["counts"]["created"], 73, "{up}");
    assert_eq!(repair["result"], "ok");
    assert!(
        repair["owner"].as_str().unwrap_or("").contains('@'),
        "{repair}"
    );
    assert!(
        repair["identity"].as_str().unwrap_or("").contains(&acct),
        "{repair}"
    );
    assert!(
        repair["started"].as_str() <= repair["finished"].as_str(),
        "{repair}"
    );
    let changed: Vec<&Value> = repair["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["outcome"] == "updated")
        .collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0]["changes"][0]["want"], "7", "{changed:?}");
    assert_eq!(changed[0]["changes"][0]["had"], "1", "{changed:?}");
    let plain = run(&["history", "--env", "local", "--plain"], &acct).await;
    assert!(
        plain.stdout.contains("repair") && plain.stdout.contains("-> 7"),
        "{}",
        plain.stdout
    );
}

#[tokio::test]
async fn a_held_lock_stops_acting_runs_with_its_holder_named_until_unlock_force() {
    let acct = converged().await;
    let live = Live::new(&acct).await;
    plant_lock(&live, "build-7.example.net", 4242, now() + 600).await;
    shorten_retention(&live).await;
    reset_calls(&acct).await;

    // Reads go on without the lock.
    let drift = local("drift", &[], &acct, None).await;
    assert_eq!(drift.code, 2, "{}\n{}", drift.stdout, drift.stderr);
    let plan = local("plan", &[], &acct, None).await;
    assert_eq!(plan.code, 2, "{}\n{}", plan.stdout, plan.stderr);

    // An acting run waits --lock-timeout, then exits 4 naming the holder, changing nothing.
    let started = std::time::Instant::now();
    let r = local("repair", &["--lock-timeout", "3"], &acct, None).await;
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    assert!(started.elapsed().as_secs() >= 3, "it waited");
    assert!(
        r.stderr
            .contains("locked by `repair` by ops@build-7.example.net (pid 4242"),
        "{}",
        r.stderr
    );
    assert!(said(&r, "waiting up to 3s for the lock"), "{}", r.stdout);
    let down = local("down", &["--yes", "--lock-timeout", "0"], &acct, None).await;
    assert_eq!(down.code, 4, "{}\n{}", down.stdout, down.stderr);
    assert!(writes(&acct).await.is_empty(), "{:?}", writes(&acct).await);

    // `unlock` without --force only names the holder; with it, removes the lock.
    let unlock = local("unlock", &[], &acct, None).await;
    assert_eq!(unlock.code, 1, "{}", unlock.stderr);
    assert!(
        unlock.stderr.contains("ops@build-7.example.net"),
        "{}",
        unlock.stderr
    );
    assert!(lock_exists(&live).await);
    let unlock = local("unlock", &["--force"], &acct, None).await;
    assert_eq!(unlock.code, 0, "{}", unlock.stderr);
    assert_eq!(
        unlock.event("unlock")["holder"]["owner"],
        "ops@build-7.example.net"
    );
    assert!(!lock_exists(&live).await);

    let r = local("repair", &[], &acct, None).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(writes(&acct).await, ops(&[("logs:PutRetentionPolicy", 1)]));
}

#[tokio::test]
async fn an_expired_lease_or_a_dead_local_holder_is_taken_over() {
    let acct = converged().await;
    let live = Live::new(&acct).await;

    // A lease that ran out, from another host.
    plant_lock(&live, "build-7.example.net", 4242, now() - 5).await;
    shorten_retention(&live).await;
    let r = local("repair", &["--lock-timeout", "0"], &acct, None).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        said(
            &r,
            "took over the lock of `repair` by ops@build-7.example.net"
        ),
        "{}",
        r.stdout
    );
    assert!(said(&r, "its lease ran out"), "{}", r.stdout);

    // A live lease held by a process of this host that no longer exists (killed).
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    plant_lock(&live, &host, u32::MAX, now() + 600).await;
    shorten_retention(&live).await;
    let r = local("repair", &["--lock-timeout", "0"], &acct, None).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(said(&r, "its process on this host is gone"), "{}", r.stdout);
    assert!(!lock_exists(&live).await, "released after the run");
}

/// A lock released between the waiting run's read and its take-over: S3 answers the
/// conditional write (If-Match) 404, and the run takes the lock anew rather than failing.
#[tokio::test]
async fn a_lock_released_just_before_its_take_over_is_taken_anew() {
    let acct = converged().await;
    let live = Live::new(&acct).await;
    plant_lock(&live, "build-7.example.net", 4242, now() - 5).await;
    shorten_retention(&live).await;
    reset_calls(&acct).await;

    // The run's first lock write (If-None-Match, refused) goes through; its take-over is held
    // while the lock is removed, then let on with the test's own conditional write.
    let barrier = arm_barrier(
        &acct,
        r#"{"operation": "s3:PutObject[lock]", "parties": 2, "after": 1}"#,
    )
    .await;
    let release = async {
        held_at(&barrier, 1, "take-over").await;
        live.s3
            .delete_object()
            .bucket(live.bucket())
            .key(LOCK)
            .send()
            .await
            .expect("releasing the lock");
        let _ = live
            .s3
            .put_object()
            .bucket(live.bucket())
            .key(LOCK)
            .if_match("\"released\"")
            .body(ByteStream::from_static(b"{}"))
            .send()
            .await;
    };
    let (r, ()) = tokio::join!(
        local("repair", &["--lock-timeout", "0"], &acct, None),
        release
    );
    let met = emulator_admin("DELETE", &barrier, "").await;
    assert_eq!(met["statuses"], json!([404, 404]), "{met}");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(!said(&r, "took over"), "{}", r.stdout);
    assert_eq!(writes(&acct).await, ops(&[("logs:PutRetentionPolicy", 1)]));
    assert!(!lock_exists(&live).await, "released after the run");
}

/// `up --env local` from empty on a 3 s lease, renewed every second (at scale 1, waits and
/// the lease at their real length: the run outlasts a renewal), once it holds the lock.
async fn up_holding_a_short_lease(acct: &str) -> (tokio::process::Child, Live) {
    let args = ["up", "--env", "local", "--yes", "--json"];
    let mut cmd = crate::common::command(
        &args,
        acct,
        crate::common::endpoint(acct),
        &crate::common::repo(),
    );
    cmd.env("TAP_LOCK_LEASE_SECONDS", "3");
    cmd.env("TAP_TIME_SCALE", "1");
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("up");
    let live = Live::new(acct).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !lock_in(&live, true).await {
        assert!(
            std::time::Instant::now() < deadline,
            "up never took the lock"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    (child, live)
}

/// The lock removed under a running run (`unlock --force`): its next renewal finds nothing to
/// renew, and it starts no new step, saying so, rather than writing a lock nobody expects.
#[tokio::test]
async fn a_run_whose_lock_is_removed_starts_no_new_step() {
    let acct = account();
    let (child, live) = up_holding_a_short_lease(&acct).await;
    live.s3
        .delete_object()
        .bucket(live.bucket())
        .key(LOCK)
        .send()
        .await
        .expect("removing the lock");
    let out = child.wait_with_output().await.expect("up's output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    assert!(stdout.contains("lost the lock"), "{stdout}");
    assert!(stdout.contains("to nobody: it was removed"), "{stdout}");
    assert!(!lock_exists(&live).await, "no lock written again");
}

#[tokio::test]
async fn a_run_whose_lock_is_taken_over_starts_no_new_step_and_leaves_the_lock_alone() {
    let acct = account();
    let (child, live) = up_holding_a_short_lease(&acct).await;
    // Someone takes it over (as `unlock --force` and another run would).
    plant_lock(&live, "build-7.example.net", 4242, now() + 600).await;
    let out = child.wait_with_output().await.expect("up's output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    assert!(stdout.contains("lost the lock"), "{stdout}");
    assert!(stdout.contains("ops@build-7.example.net"), "{stdout}");
    // The other run's lock is not released by this one.
    let held = stored_lock(&live).await.expect("the lock is still there");
    assert!(held.to_string().contains("build-7.example.net"));

    // Once it is let go, `up` finishes what the stopped run left.
    let unlock = local("unlock", &["--force"], &acct, None).await;
    assert_eq!(unlock.code, 0, "{}", unlock.stderr);
    let up = local("up", &["--yes"], &acct, None).await;
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    assert!(up.finished()["counts"]["created"].as_u64().unwrap_or(0) > 0);
}

/// The lock rests on S3's conditional writes being atomic: two writers with
/// `If-None-Match: *` started at one barrier, round after round, and exactly one of each pair
/// wins while the other is refused 412 (the emulator serialises them, as S3 does).
#[tokio::test]
async fn two_conditional_creates_at_once_exactly_one_wins() {
    let acct = account();
    let live = Live::new(&acct).await;
    let bucket = format!("race-{acct}");
    live.s3
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("CreateBucket");
    for round in 0..20 {
        let key = format!("lock-{round}");
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        let mut both = tokio::task::JoinSet::new();
        for who in 0..2 {
            let (s3, bucket, key, barrier) = (
                live.s3.clone(),
                bucket.clone(),
                key.clone(),
                barrier.clone(),
            );
            both.spawn(async move {
                barrier.wait().await;
                s3.put_object()
                    .bucket(bucket)
                    .key(key)
                    .if_none_match("*")
                    .body(ByteStream::from(format!("writer {who}").into_bytes()))
                    .send()
                    .await
                    .map_err(|e| e.raw_response().map(|r| r.status().as_u16()))
            });
        }
        let results = both.join_all().await;
        let won = results.iter().filter(|r| r.is_ok()).count();
        let refused = results
            .iter()
            .filter(|r| matches!(r, Err(Some(412 | 409))))
            .count();
        assert_eq!((won, refused), (1, 1), "round {round}: {results:?}");
    }
}

/// A new environment's lock step makes the state bucket and its tags only; the run puts its
/// settings. Settings that cannot be put fail that node, not the record: the record is
/// stored (the bucket is there), `drift` shows what is missing, the next `up` puts it.
#[tokio::test]
async fn the_state_buckets_settings_come_with_the_run_and_a_failed_one_keeps_the_record() {
    let acct = account();
    let live = Live::new(&acct).await;
    let faults = format!("/_tap/faults/{acct}");
    emulator_admin(
        "PUT",
        &faults,
        r#"{"deny": ["s3:PutBucketLifecycleConfiguration"]}"#,
    )
    .await;
    let up = local("up", &["--yes"], &acct, None).await;
    emulator_admin("DELETE", &faults, "").await;
    assert_eq!(up.code, 1, "{}\n{}", up.stdout, up.stderr);
    let outcome = |r: &Run, node: &str| {
        r.events_of("node_finished")
            .into_iter()
            .find(|e| e["node"] == node)
            .map(|e| e["outcome"].as_str().unwrap_or_default().to_string())
    };
    assert_eq!(outcome(&up, "state-bucket").as_deref(), Some("failed"));
    assert!(
        said(&up, "updating s3_bucket tap-local/state-bucket"),
        "{}",
        up.stderr
    );
    assert_eq!(outcome(&up, "vpc").as_deref(), Some("created"));
    // The record names what the run made, and the lock is let go.
    let record = live.record().await;
    assert!(record["nodes"]["vpc"].is_object(), "{record}");
    assert!(!lock_exists(&live).await);
    // Everything else of the bucket is in; the lifecycle is drift until `up` puts it.
    let versioning = live
        .s3
        .get_bucket_versioning()
        .bucket(live.bucket())
        .send()
        .await
        .unwrap();
    assert_eq!(versioning.status().map(|s| s.as_str()), Some("Enabled"));
    let d = local("drift", &[], &acct, None).await;
    assert_eq!(d.code, 2, "{}", d.stdout);
    assert!(
        crate::common::live::drifted(&d).contains("state-bucket"),
        "{}",
        d.stdout
    );
    reset_calls(&acct).await;
    let again = local("up", &["--yes"], &acct, None).await;
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    assert_eq!(outcome(&again, "state-bucket").as_deref(), Some("updated"));
    live.s3
        .get_bucket_lifecycle_configuration()
        .bucket(live.bucket())
        .send()
        .await
        .expect("the lifecycle, put by the second up");
    let d = local("drift", &[], &acct, None).await;
    assert_eq!(d.code, 0, "{}", d.stdout);
}

/// The state bucket the look saw, gone before the lock's first attempt (NoSuchBucket): the
/// lock step makes it, and the run looks again before it acts, as what it saw is stale.
#[tokio::test]
async fn a_state_bucket_gone_between_the_look_and_the_lock_is_made_again() {
    let acct = account();
    let live = Live::new(&acct).await;
    // An empty bucket of the state bucket's name: the look finds it, with no record in it.
    live.s3
        .create_bucket()
        .bucket(live.bucket())
        .send()
        .await
        .expect("CreateBucket");
    // The lock's first attempt is held (3 s, no second party comes) while the bucket goes.
    let barrier = arm_barrier(
        &acct,
        r#"{"operation": "s3:PutObject[lock]", "parties": 2, "seconds": 3}"#,
    )
    .await;
    let delete = async {
        held_at(&barrier, 1, "lock attempt").await;
        live.s3
            .delete_bucket()
            .bucket(live.bucket())
            .send()
            .await
            .expect("DeleteBucket");
    };
    let (r, ()) = tokio::join!(local("up", &["--yes"], &acct, None), delete);
    let met = emulator_admin("DELETE", &barrier, "").await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(said(&r, "creating the state bucket"), "{}", r.stderr);
    // Refused for want of the bucket, then taken in the bucket made for it.
    assert_eq!(met["statuses"], json!([404, 200]), "{met}");
    assert!(live.record().await["nodes"]["vpc"]["ids"]["id"].is_string());
    let d = local("drift", &[], &acct, None).await;
    assert_eq!(d.code, 0, "{}\n{}", d.stdout, d.stderr);
}

/// What a `repair` under a lease of `lease` s did while its history write was held `hold` s at
/// the emulator (its steps done, only its report and the release left): the lock's writes
/// in that time, as the emulator counted them, and every moment the stored lease had run out
/// (expires, now). With `deny_once`, the first renewal in that time is refused (AccessDenied),
/// and the next goes through.
struct Finish {
    out: std::process::Output,
    renewals: u64,
    lapsed: Vec<(u64, u64)>,
}

async fn finish_held(acct: &str, lease: u64, hold: u64, deny_once: bool) -> Finish {
    let live = Live::new(acct).await;
    shorten_retention(&live).await;
    let barrier = arm_barrier(
        acct,
        &json!({"operation": "s3:PutObject[history]", "parties": 2, "seconds": hold}).to_string(),
    )
    .await;
    let faults = format!("/_tap/faults/{acct}");
    let mut cmd = crate::common::command(
        &["repair", "--env", "local", "--json"],
        acct,
        crate::common::endpoint(acct),
        &crate::common::repo(),
    );
    cmd.env("TAP_LOCK_LEASE_SECONDS", lease.to_string());
    cmd.env("TAP_TIME_SCALE", "1");
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("repair");
    let lock_writes = |calls: std::collections::BTreeMap<String, u64>| {
        calls.get("s3:PutObject[lock]").copied().unwrap_or(0)
    };
    let held = async {
        held_at(&barrier, 1, "history write").await;
        let before = lock_writes(crate::common::calls(acct).await);
        if deny_once {
            emulator_admin("PUT", &faults, r#"{"deny": ["s3:PutObject[lock]"]}"#).await;
        }
        // Until the held write gives up waiting for a second party: the lease as stored.
        let (mut lapsed, mut denied) = (Vec::new(), false);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(hold + 30);
        while emulator_admin("GET", &barrier, "").await["broken"] != true {
            assert!(
                std::time::Instant::now() < deadline,
                "the held write never went"
            );
            if deny_once && !denied {
                let injected = &emulator_admin("GET", &faults, "").await["injected"];
                denied = injected["deny"].as_u64().unwrap_or(0) >= 1;
                if denied {
                    emulator_admin("DELETE", &faults, "").await;
                }
            }
            // Released: the held write went between the two reads.
            let Some(holder) = stored_lock(&live).await else {
                break;
            };
            let (expires, at) = (holder["expires"].as_u64().unwrap_or(0), now());
            if expires < at {
                lapsed.push((expires, at));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(denied, deny_once, "the renewal to refuse never came");
        (
            lock_writes(crate::common::calls(acct).await) - before,
            lapsed,
        )
    };
    let (out, (renewals, lapsed)) = tokio::join!(
        tokio::time::timeout(
            std::time::Duration::from_secs(hold + 90),
            child.wait_with_output()
        ),
        held
    );
    let out = out.expect("repair ended").expect("repair's output");
    emulator_admin("DELETE", &barrier, "").await;
    emulator_admin("DELETE", &faults, "").await;
    assert!(!lock_exists(&live).await, "released after the run");
    Finish {
        out,
        renewals,
        lapsed,
    }
}

/// A run whose last writes drag on keeps its lock, renewed less often than while it acts:
/// under a 3 s lease (renewed every second while the run acts), `repair`'s history write is
/// held 9 s, and the lock is renewed every 1.5 s or so in that time, not every second, and
/// its lease never runs out.
#[tokio::test]
async fn a_finishing_run_renews_its_lock_less_often_and_never_lets_it_run_out() {
    let acct = converged().await;
    let f = finish_held(&acct, 3, 9, false).await;
    let stdout = String::from_utf8_lossy(&f.out.stdout);
    let stderr = String::from_utf8_lossy(&f.out.stderr);
    assert_eq!(f.out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        f.lapsed.is_empty(),
        "the lease ran out (expires, now): {:?}",
        f.lapsed
    );
    // Every second would be 8 or more; every 1.5 s and a call, 5 or 6.
    assert!(
        (3..=6).contains(&f.renewals),
        "{} renewals in the 9 s the history write was held",
        f.renewals
    );
}

/// A finishing run's renewal that fails is tried again before the lease runs out, as while
/// the run acts: under a 6 s lease the first renewal while the history write is held is
/// refused, the next goes through, and the run keeps its lock to the end.
#[tokio::test]
async fn a_finishing_runs_failed_renewal_is_tried_again_and_the_lock_kept() {
    let acct = converged().await;
    let f = finish_held(&acct, 6, 8, true).await;
    let stdout = String::from_utf8_lossy(&f.out.stdout);
    let stderr = String::from_utf8_lossy(&f.out.stderr);
    let all = format!("{stdout}\n{stderr}");
    assert_eq!(f.out.status.code(), Some(0), "{all}");
    assert!(all.contains("renewing the lock"), "{all}");
    assert!(!all.contains("lost the lock"), "{all}");
    assert!(
        f.lapsed.is_empty(),
        "the lease ran out (expires, now): {:?}",
        f.lapsed
    );
    // The refused one and the one that went through (the emulator counts both).
    assert!(f.renewals >= 2, "{} renewals\n{all}", f.renewals);
}
