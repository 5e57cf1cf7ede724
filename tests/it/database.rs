//! The data tier on the emulator: what `up` builds matches PLATFORM.md's database and
//! backups rows, the password never appears in any output, `down` keeps data unless told.

use aws_sdk_rds::Client as Rds;

use crate::common::{
    account, calls, config_dir, converged, emulator_admin, endpoint, repo, run, run_with, sdk,
    writes, Run,
};

const CLUSTER: &str = "tap-local-db";

/// The vault is not found (not merely unreadable).
async fn assert_vault_gone(backup: &aws_sdk_backup::Client) {
    let e = backup
        .describe_backup_vault()
        .backup_vault_name("tap-local")
        .send()
        .await
        .unwrap_err();
    assert!(
        e.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "the vault is gone: {e:?}"
    );
}

async fn up_ok(acct: &str) -> Run {
    let r = run(&["up", "--env", "local", "--yes", "--json"], acct).await;
    assert_eq!(r.code, 0, "up failed:\n{}\n{}", r.stdout, r.stderr);
    r
}

#[tokio::test]
async fn up_builds_the_data_tier_and_never_shows_the_password() {
    let acct = account();
    // The cluster stays busy 6 s after the first instance's create (1.5 s for other
    // accounts), so the second's call lands inside it also on a machine busy building the
    // unit tests beside the suite (1.5 s was missed there).
    let faults = format!("/_tap/faults/{acct}");
    emulator_admin("PUT", &faults, r#"{"db_busy_seconds": 6}"#).await;
    let first = up_ok(&acct).await;
    emulator_admin("DELETE", &faults, "").await;
    // The second instance call lands while the emulator's cluster is busy with the first
    // (InvalidDBClusterStateFault): it is retried, never reported.
    let served = calls(&acct).await;
    assert!(
        served["rds:CreateDBInstance"] >= 3,
        "the second instance call was refused and retried: {served:?}"
    );
    assert_eq!(first.outcome("db-instance-1"), "created");
    assert_eq!(first.outcome("db-instance-2"), "created");
    let conf = sdk(&acct).await;
    let rds = Rds::new(&conf);
    let kms = aws_sdk_kms::Client::new(&conf);
    let key = kms
        .describe_key()
        .key_id("alias/tap-local")
        .send()
        .await
        .unwrap();
    let key_arn = key.key_metadata().unwrap().arn().unwrap().to_string();

    // The cluster.
    let clusters = rds
        .describe_db_clusters()
        .db_cluster_identifier(CLUSTER)
        .send()
        .await
        .unwrap();
    let c = &clusters.db_clusters()[0];
    assert_eq!(c.engine(), Some("aurora-postgresql"));
    assert!(c.engine_version().unwrap().starts_with("16."));
    assert_eq!(c.storage_encrypted(), Some(true));
    assert!(
        c.kms_key_id()
            .is_some_and(|k| key_arn.ends_with(k.rsplit('/').next().unwrap())),
        "storage under the CMK"
    );
    assert_eq!(c.backup_retention_period(), Some(30));
    assert_eq!(c.preferred_backup_window(), Some("03:00-04:00"));
    assert_eq!(
        c.preferred_maintenance_window(),
        Some("sun:04:00-sun:05:00")
    );
    assert_eq!(c.deletion_protection(), Some(false), "local config: off");
    assert_eq!(
        c.enabled_cloudwatch_logs_exports(),
        &["postgresql".to_string()]
    );
    assert_eq!(c.copy_tags_to_snapshot(), Some(true));

    // The subnet group holds exactly the isolated subnets.
    let ec2 = aws_sdk_ec2::Client::new(&conf);
    let subnets = ec2.describe_subnets().send().await.unwrap();
    let mut isolated: Vec<String> = subnets
        .subnets()
        .iter()
        .filter(|s| {
            s.tags().iter().any(|t| {
                t.key() == Some("tap:node")
                    && t.value().is_some_and(|v| v.starts_with("subnet-isolated-"))
            })
        })
        .map(|s| s.subnet_id().unwrap().to_string())
        .collect();
    isolated.sort();
    let group = rds
        .describe_db_subnet_groups()
        .db_subnet_group_name(c.db_subnet_group().unwrap())
        .send()
        .await
        .unwrap();
    let mut grouped: Vec<String> = group.db_subnet_groups()[0]
        .subnets()
        .iter()
        .map(|s| s.subnet_identifier().unwrap().to_string())
        .collect();
    grouped.sort();
    assert_eq!(grouped, isolated);

    // Writer + reader in different zones with Performance Insights and monitoring.
    let instances = rds.describe_db_instances().send().await.unwrap();
    let instances = instances.db_instances();
    assert_eq!(instances.len(), 2, "exactly the writer and one reader");
    let mut zones: Vec<&str> = instances
        .iter()
        .map(|i| i.availability_zone().unwrap())
        .collect();
    zones.dedup();
    assert_eq!(zones.len(), instances.len(), "instances in different zones");
    for i in instances {
        assert_eq!(i.db_cluster_identifier(), Some(CLUSTER));
        assert_eq!(i.performance_insights_enabled(), Some(true));
        assert_eq!(i.performance_insights_kms_key_id(), Some(key_arn.as_str()));
        assert_eq!(i.monitoring_interval(), Some(60));
        assert!(i
            .monitoring_role_arn()
            .unwrap()
            .ends_with("role/tap-local-rds-monitoring"));
    }

    // The master secret: RDS-managed, under the CMK.
    let secret_arn = c
        .master_user_secret()
        .unwrap()
        .secret_arn()
        .unwrap()
        .to_string();
    let sm = aws_sdk_secretsmanager::Client::new(&conf);
    let secret = sm
        .describe_secret()
        .secret_id(&secret_arn)
        .send()
        .await
        .unwrap();
    assert!(
        secret
            .kms_key_id()
            .is_some_and(|k| key_arn.ends_with(k.rsplit('/').next().unwrap())),
        "secret under the CMK"
    );
    let value = sm
        .get_secret_value()
        .secret_id(&secret_arn)
        .send()
        .await
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(value.secret_string().unwrap()).unwrap();
    let password = value["password"].as_str().unwrap().to_string();
    assert!(password.len() >= 8);

    // AWS Backup: 6-hourly cron, windows, retention, a selection of the cluster.
    let backup = aws_sdk_backup::Client::new(&conf);
    let plans = backup.list_backup_plans().send().await.unwrap();
    let plan_id = plans.backup_plans_list()[0]
        .backup_plan_id()
        .unwrap()
        .to_string();
    let plan = backup
        .get_backup_plan()
        .backup_plan_id(&plan_id)
        .send()
        .await
        .unwrap();
    let rule = &plan.backup_plan().unwrap().rules()[0];
    assert_eq!(rule.schedule_expression(), Some("cron(0 */6 * * ? *)"));
    assert_eq!(rule.start_window_minutes(), Some(60));
    assert_eq!(rule.completion_window_minutes(), Some(120));
    assert_eq!(
        rule.lifecycle().and_then(|l| l.delete_after_days()),
        Some(7)
    );
    let vault = backup
        .describe_backup_vault()
        .backup_vault_name(rule.target_backup_vault_name())
        .send()
        .await
        .unwrap();
    assert_eq!(vault.encryption_key_arn(), Some(key_arn.as_str()));
    let selections = backup
        .list_backup_selections()
        .backup_plan_id(&plan_id)
        .send()
        .await
        .unwrap();
    let selection_id = selections.backup_selections_list()[0]
        .selection_id()
        .unwrap();
    let selection = backup
        .get_backup_selection()
        .backup_plan_id(&plan_id)
        .selection_id(selection_id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        selection.backup_selection().unwrap().resources(),
        &[c.db_cluster_arn().unwrap().to_string()]
    );

    // A second up changes nothing; status shows endpoints and the secret ARN.
    crate::common::reset_calls(&acct).await;
    let second = up_ok(&acct).await;
    assert!(writes(&acct).await.is_empty(), "{:?}", writes(&acct).await);
    let status = run(&["status", "--env", "local"], &acct).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(
        status.stdout.contains(c.endpoint().unwrap()),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains(c.reader_endpoint().unwrap()));
    assert!(status.stdout.contains(&secret_arn));
    let status_json = run(&["status", "--env", "local", "--json"], &acct).await;
    assert_eq!(status_json.code, 0);
    let outputs = &status_json.event("status")["outputs"];
    assert_eq!(outputs["db_writer_endpoint"], c.endpoint().unwrap());
    assert_eq!(outputs["db_secret_arn"], secret_arn.as_str());
    for drift in ["plan", "drift"] {
        let r = run(&[drift, "--env", "local", "--json"], &acct).await;
        assert_eq!(r.code, 0, "{drift}: {}", r.stdout);
    }
    // Every command, plain and JSON, with debug logs.
    let mut runs: Vec<(String, Run)> = Vec::new();
    for verb in [
        "up", "plan", "drift", "repair", "status", "validate", "graph", "history", "unlock",
    ] {
        for format in ["--json", "--plain"] {
            let mut args = vec![verb, "--env", "local", format, "-vv"];
            if verb == "up" {
                args.push("--yes");
            }
            let r = run(&args, &acct).await;
            assert!(r.code == 0 || r.code == 2, "{verb} {format}: {}", r.stderr);
            assert!(
                r.stderr.contains("DEBUG") || verb == "validate" || verb == "graph",
                "{verb} {format} -vv logs"
            );
            runs.push((format!("{verb} {format} -vv"), r));
        }
    }
    // ... and the record the tool stores of what it applied.
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    );
    let record = s3
        .get_object()
        .bucket(format!("tap-local-state-{acct}"))
        .key("tap-provision/applied.json")
        .send()
        .await
        .unwrap();
    let record = record.body.collect().await.unwrap().into_bytes();
    let record = String::from_utf8_lossy(&record).to_string();
    assert!(record.contains("db-cluster"), "the record holds the specs");
    assert!(
        !record.contains(&password),
        "the stored record holds the password"
    );
    let down = run(&["down", "--env", "local", "--yes", "--json", "-vv"], &acct).await;
    assert_eq!(down.code, 0, "{}", down.stderr);
    // ... nor any run report in the history (up's and down's at least).
    let bucket = format!("tap-local-state-{acct}");
    let listed = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("tap-provision/runs/")
        .send()
        .await
        .unwrap();
    assert!(listed.contents().len() >= 2, "{listed:?}");
    for object in listed.contents() {
        let key = object.key().unwrap();
        let body = s3
            .get_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        let body = body.body.collect().await.unwrap().into_bytes();
        let body = String::from_utf8_lossy(&body).to_string();
        assert!(body.contains("\"nodes\""), "{key} is a run report");
        assert!(!body.contains(&password), "{key} holds the password");
    }

    // The password appears in no output of any command.
    for (what, r) in [
        ("up", &first),
        ("second up", &second),
        ("status", &status),
        ("status --json", &status_json),
        ("down --json -vv", &down),
    ]
    .into_iter()
    .chain(runs.iter().map(|(w, r)| (w.as_str(), r)))
    {
        assert!(
            !r.stdout.contains(&password) && !r.stderr.contains(&password),
            "{what} printed the password"
        );
    }
}

#[tokio::test]
async fn down_keeps_a_final_snapshot_the_key_and_the_vault_unless_told() {
    let acct = converged().await;
    let conf = sdk(&acct).await;
    let rds = Rds::new(&conf);
    let backup = aws_sdk_backup::Client::new(&conf);
    let cluster_arn = rds
        .describe_db_clusters()
        .send()
        .await
        .unwrap()
        .db_clusters()[0]
        .db_cluster_arn()
        .unwrap()
        .to_string();
    backup
        .start_backup_job()
        .backup_vault_name("tap-local")
        .resource_arn(&cluster_arn)
        .iam_role_arn("arn:aws:iam::000000000000:role/x")
        .send()
        .await
        .unwrap();

    let r = run(&["down", "--env", "local", "--yes", "--json"], &acct).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.outcome("backup-vault"), "kept");
    assert_eq!(r.outcome("kms-key"), "kept");
    assert!(rds
        .describe_db_clusters()
        .send()
        .await
        .unwrap()
        .db_clusters()
        .is_empty());
    assert!(rds
        .describe_db_instances()
        .send()
        .await
        .unwrap()
        .db_instances()
        .is_empty());
    // Manual snapshots only: the emulator, like AWS, also keeps automated ones.
    let snapshots = rds
        .describe_db_cluster_snapshots()
        .db_cluster_identifier(CLUSTER)
        .snapshot_type("manual")
        .send()
        .await
        .unwrap();
    let snapshot = snapshots.db_cluster_snapshots()[0]
        .db_cluster_snapshot_identifier()
        .unwrap()
        .to_string();
    assert!(snapshot.starts_with("tap-local-db-final-"));
    assert!(
        r.stdout.contains(&snapshot),
        "down names the final snapshot"
    );
    let points = backup
        .list_recovery_points_by_backup_vault()
        .backup_vault_name("tap-local")
        .send()
        .await
        .unwrap();
    assert_eq!(points.recovery_points().len(), 1, "recovery points kept");
    let ec2 = aws_sdk_ec2::Client::new(&conf);
    let vpcs = ec2
        .describe_vpcs()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:tap:environment")
                .values("tap-local")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(
        vpcs.vpcs().is_empty(),
        "nothing left in the VPC: the VPC is gone"
    );

    // With --destroy-data: the vault and its recovery points go, the key is scheduled.
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
    assert_vault_gone(&backup).await;
    let kms = aws_sdk_kms::Client::new(&conf);
    let keys = kms.list_keys().send().await.unwrap();
    let meta = kms
        .describe_key()
        .key_id(keys.keys()[0].key_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        meta.key_metadata().unwrap().key_state().map(|s| s.as_str()),
        Some("PendingDeletion")
    );
}

#[tokio::test]
async fn destroy_data_takes_no_final_snapshot_and_up_builds_again() {
    let acct = converged().await;
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
    let conf = sdk(&acct).await;
    let rds = Rds::new(&conf);
    let manual = rds
        .describe_db_cluster_snapshots()
        .snapshot_type("manual")
        .send()
        .await
        .unwrap();
    assert!(
        manual.db_cluster_snapshots().is_empty(),
        "no final snapshot with --destroy-data"
    );
    assert!(rds
        .describe_db_subnet_groups()
        .send()
        .await
        .map(|g| g
            .db_subnet_groups()
            .iter()
            .all(|g| g.db_subnet_group_name() != Some("tap-local")))
        .unwrap_or(true));
    let backup = aws_sdk_backup::Client::new(&conf);
    assert!(backup
        .list_backup_plans()
        .send()
        .await
        .unwrap()
        .backup_plans_list()
        .is_empty());
    assert_vault_gone(&backup).await;

    // The environment can be built again at once: a new key, cluster, vault and plan.
    let again = up_ok(&acct).await;
    assert_eq!(
        again.finished()["counts"]["created"],
        crate::common::nodes_of_local().len(),
        "{}",
        again.finished()
    );
}

#[tokio::test]
async fn deletion_protection_stops_down_before_anything_is_deleted() {
    let acct = account();
    let dir = config_dir(|t| {
        t.replace("deletion_protection = false", "deletion_protection = true")
            + "\n[load_balancer]\ndeletion_protection = true\n"
    });
    let dir_arg = dir.path().to_str().unwrap();
    let r = run_with(
        &[
            "up",
            "--env",
            "local",
            "--yes",
            "--json",
            "--config-dir",
            dir_arg,
        ],
        &acct,
        endpoint(&acct),
        &repo(),
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run_with(
        &["down", "--env", "local", "--yes", "--config-dir", dir_arg],
        &acct,
        endpoint(&acct),
        &repo(),
    )
    .await;
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("db-cluster")
            && r.stderr.contains("alb (load balancer")
            && r.stderr.contains("deletion protection"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--disable-protection"), "{}", r.stderr);
    let conf = sdk(&acct).await;
    let rds = Rds::new(&conf);
    assert_eq!(
        rds.describe_db_instances()
            .send()
            .await
            .unwrap()
            .db_instances()
            .len(),
        2,
        "nothing deleted"
    );
    let r = run_with(
        &[
            "down",
            "--env",
            "local",
            "--yes",
            "--json",
            "--disable-protection",
            "--config-dir",
            dir_arg,
        ],
        &acct,
        endpoint(&acct),
        &repo(),
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(rds
        .describe_db_clusters()
        .send()
        .await
        .unwrap()
        .db_clusters()
        .is_empty());
}

#[tokio::test]
async fn destroying_a_protected_environments_data_takes_its_name() {
    let acct = account();
    // A protected copy of local: one NAT per zone and a hosted zone made outside it, as
    // protection requires.
    let dir = config_dir(|t| {
        t.replace("protected = false", "protected = true")
            .replace("nat_gateways = 1", "nat_gateways = 3")
            .replace("create_zone = true", "create_zone = false")
    });
    aws_sdk_route53::Client::new(&sdk(&acct).await)
        .create_hosted_zone()
        .name("tap.local.example.com")
        .caller_reference(format!("test-{acct}"))
        .send()
        .await
        .unwrap();
    let d = dir.path().to_str().unwrap();
    let r = run_with(
        &["up", "--env", "local", "--yes", "--json", "--config-dir", d],
        &acct,
        endpoint(&acct),
        &repo(),
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);

    // --yes is not enough, nor another environment's name: refused before any call.
    crate::common::reset_calls(&acct).await;
    let base = [
        "down",
        "--env",
        "local",
        "--yes",
        "--destroy-data",
        "--disable-protection",
        "--config-dir",
        d,
    ];
    let r = run_with(&base, &acct, endpoint(&acct), &repo()).await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("needs --confirm local"), "{}", r.stderr);
    let mut wrong = base.to_vec();
    wrong.extend(["--confirm", "prod"]);
    let r = run_with(&wrong, &acct, endpoint(&acct), &repo()).await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("does not name this environment"),
        "{}",
        r.stderr
    );
    assert!(
        calls(&acct).await.is_empty(),
        "no AWS call: {:?}",
        calls(&acct).await
    );

    // Named: the data goes, the key is scheduled for deletion.
    let mut named = base.to_vec();
    named.extend(["--confirm", "local", "--json"]);
    let r = run_with(&named, &acct, endpoint(&acct), &repo()).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.outcome("kms-key"), "deleted");
    let kms = aws_sdk_kms::Client::new(&sdk(&acct).await);
    let keys = kms.list_keys().send().await.unwrap();
    let key = kms
        .describe_key()
        .key_id(keys.keys()[0].key_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        key.key_metadata().unwrap().key_state().map(|s| s.as_str()),
        Some("PendingDeletion")
    );
}

/// The cluster deleted out of band (local: deletion protection off; its instances first, as
/// AWS requires): `drift` reports the three deleted and what reads the cluster's endpoint or
/// master secret, writing nothing; `repair` makes them again, an empty cluster (restoring a
/// snapshot is a person's call), with the backend moved to the new secret.
#[tokio::test]
async fn a_cluster_deleted_out_of_band_comes_back_with_its_instances_and_what_reads_it() {
    use crate::common::live::{deleted, drift_then_repair, set, Live};
    let acct = converged().await;
    let live = Live::new(&acct).await;
    let cluster = || async {
        live.rds
            .describe_db_clusters()
            .db_cluster_identifier(CLUSTER)
            .send()
            .await
            .unwrap()
            .db_clusters()[0]
            .clone()
    };
    let before = cluster().await;
    assert_eq!(before.deletion_protection(), Some(false), "local: off");
    let old_secret = before
        .master_user_secret()
        .and_then(|s| s.secret_arn())
        .unwrap()
        .to_string();
    for n in [1, 2] {
        live.rds
            .delete_db_instance()
            .db_instance_identifier(format!("{CLUSTER}-{n}"))
            .send()
            .await
            .unwrap();
    }
    live.rds
        .delete_db_cluster()
        .db_cluster_identifier(CLUSTER)
        .skip_final_snapshot(true)
        .send()
        .await
        .unwrap();
    let (d, _) = drift_then_repair(
        &acct,
        set(&[
            "db-cluster",
            "db-instance-1",
            "db-instance-2",
            // they read the cluster's endpoint or master secret, known again once it is made
            "db-connection",
            "ecs-execution-role",
            "task-backend",
            "service-backend",
        ]),
    )
    .await;
    assert_eq!(
        deleted(&d),
        set(&["db-cluster", "db-instance-1", "db-instance-2"])
    );
    let mut w = writes(&acct).await;
    // Refused and repeated while the cluster is busy with the other instance.
    let instances = w.remove("rds:CreateDBInstance");
    assert!(matches!(instances, Some(2..)), "{instances:?}");
    assert_eq!(w.remove("rds:CreateDBCluster"), Some(1), "{w:?}");
    assert!(
        !w.contains_key("rds:CreateDBSubnetGroup") && !w.contains_key("kms:CreateKey"),
        "{w:?}"
    );
    let after = cluster().await;
    assert_eq!(after.status(), Some("available"));
    assert_eq!(after.deletion_protection(), Some(false));
    let new_secret = after
        .master_user_secret()
        .and_then(|s| s.secret_arn())
        .unwrap()
        .to_string();
    assert_ne!(new_secret, old_secret);
    let td = live
        .ecs
        .describe_task_definition()
        .task_definition("tap-local-backend")
        .send()
        .await
        .unwrap();
    let secrets: Vec<String> = td
        .task_definition()
        .unwrap()
        .container_definitions()
        .iter()
        .flat_map(|c| c.secrets())
        .map(|s| s.value_from().to_string())
        .filter(|v| v.contains("rds!cluster"))
        .collect();
    assert!(
        !secrets.is_empty() && secrets.iter().all(|v| v.starts_with(&new_secret)),
        "the backend reads the new master secret: {secrets:?}"
    );
}

/// An instance deleted out of band stays `deleting` for minutes on AWS, its name taken:
/// repair's create is refused (`DBInstanceAlreadyExists`), waits the deletion out and makes
/// it again. Nothing reads the instance before its create: that call is on the chain the
/// whole run waits for.
#[tokio::test]
async fn repair_waits_out_an_instance_still_deleting_and_makes_it_again() {
    repair_after_an_out_of_band_delete(r#"{"db_delete_seconds": 10}"#).await;
}

/// The same, with the deletion ending just after the refusal: the name is found free, and
/// the create is made again at once.
#[tokio::test]
async fn a_create_refused_by_a_deletion_that_ends_at_once_is_made_on_the_next_try() {
    repair_after_an_out_of_band_delete(
        r#"{"db_delete_seconds": 10, "db_delete_ends_when_refused": 1}"#,
    )
    .await;
}

/// Deletes the second instance of a converged environment out of band under the emulator's
/// `faults` (how its deletion lasts), repairs at once: made again with one refused create.
async fn repair_after_an_out_of_band_delete(faults: &str) {
    use crate::common::{local, reset_calls};
    let acct = converged().await;
    // 10 s: repair reads everything twice before its create (drift, then its own look),
    // about 3 s on a busy machine; the default window (1 s over the time scale) is over by
    // then.
    let switch = format!("/_tap/faults/{acct}");
    emulator_admin("PUT", &switch, faults).await;
    let rds = Rds::new(&sdk(&acct).await);
    let name = format!("{CLUSTER}-2");
    rds.delete_db_instance()
        .db_instance_identifier(&name)
        .send()
        .await
        .unwrap();
    reset_calls(&acct).await;
    let r = local("repair", &[], &acct, None).await;
    emulator_admin("DELETE", &switch, "").await;
    assert_eq!(r.code, 0, "repair:\n{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.outcome("db-instance-2"), "created", "{}", r.stdout);
    let served = calls(&acct).await;
    assert_eq!(
        served.get("rds:CreateDBInstance"),
        Some(&2),
        "refused while the old one was deleting, then made: {served:?}"
    );
    let now = rds
        .describe_db_instances()
        .db_instance_identifier(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        now.db_instances()[0].db_instance_status(),
        Some("available")
    );
}
