//! The tool against the second emulator, LocalStack (community 4.13.1, started by
//! tests/it/common/localstack.rs), on every area its free edition serves, with `--only`:
//! `up`, a second `up` with no write (counted by the front in tests/localstack), `plan` and
//! `drift` clean, out-of-band changes seen by `drift` and put back by `repair`, then `down`
//! of what stands on nothing LocalStack lacks.
//! ECS, RDS, ELBv2, CloudFront, Backup and Application Auto Scaling answer 501 there.

use std::collections::BTreeMap;

use crate::common::live::{drifted, set};
use crate::common::localstack::{self, reset_calls, writes};
use crate::common::{account, ops, repo, run_with, Run};

/// The areas LocalStack serves: the key, the network, the certificates with the zone they
/// are validated in and their records, the alerts topic; the state bucket comes along.
const SERVED: &str = "encryption,network,certificates,alerts-topic";

async fn ls(verb: &str, extra: &[&str], acct: &str) -> Run {
    let mut args = vec![verb, "--env", "local", "--json"];
    args.extend_from_slice(extra);
    run_with(&args, acct, localstack::endpoint(), &repo()).await
}

fn ok(r: &Run, what: &str) {
    assert_eq!(r.code, 0, "{what}:\n{}\n{}", r.stdout, r.stderr);
}

#[tokio::test]
async fn on_localstack_the_served_areas_come_up_converge_and_are_put_back_and_removed() {
    let acct = account();
    let only = ["--only", SERVED];
    let up = ls("up", &["--yes", only[0], only[1]], &acct).await;
    ok(&up, "up");
    let made: Vec<String> = up
        .events_of("node_finished")
        .into_iter()
        .filter(|e| e["outcome"] == "created")
        .map(|e| e["node"].as_str().unwrap_or_default().to_string())
        .collect();
    for node in [
        "kms-key",
        "vpc",
        "nat-a",
        "flow-logs",
        "sg-db",
        "hosted-zone",
        "certificate",
        "certificate-dns",
        "alerts-topic",
    ] {
        assert!(made.iter().any(|n| n == node), "{node} not made: {made:?}");
    }

    // Converged: a second `up` writes nothing, `plan` and `drift` find nothing.
    reset_calls(&acct).await;
    ok(
        &ls("up", &["--yes", only[0], only[1]], &acct).await,
        "second up",
    );
    assert_eq!(writes(&acct).await, BTreeMap::new(), "a converged up wrote");
    ok(&ls("plan", &only, &acct).await, "plan");
    ok(&ls("drift", &only, &acct).await, "drift");

    // Out of band: the key's rotation off, a rule opening the DB group, the flow logs'
    // retention shortened.
    let conf = localstack::sdk(&acct).await;
    let ec2 = aws_sdk_ec2::Client::new(&conf);
    let kms = aws_sdk_kms::Client::new(&conf);
    let logs = aws_sdk_cloudwatchlogs::Client::new(&conf);
    let key = kms
        .describe_key()
        .key_id("alias/tap-local")
        .send()
        .await
        .unwrap()
        .key_metadata()
        .map(|m| m.key_id().to_string())
        .unwrap();
    kms.disable_key_rotation()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    let groups = ec2
        .describe_security_groups()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:tap:node")
                .values("sg-db")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let group = groups.security_groups()[0].group_id().unwrap().to_string();
    ec2.authorize_security_group_ingress()
        .group_id(&group)
        .ip_protocol("tcp")
        .from_port(5432)
        .to_port(5432)
        .cidr_ip("0.0.0.0/0")
        .send()
        .await
        .unwrap();
    logs.put_retention_policy()
        .log_group_name("/tap/tap-local/vpc-flow-logs")
        .retention_in_days(1)
        .send()
        .await
        .unwrap();
    reset_calls(&acct).await;
    let d = ls("drift", &only, &acct).await;
    assert_eq!(d.code, 2, "{}\n{}", d.stdout, d.stderr);
    assert_eq!(
        drifted(&d),
        set(&["kms-key", "sg-db", "flow-logs-group"]),
        "{}",
        d.stdout
    );
    assert_eq!(writes(&acct).await, BTreeMap::new(), "drift wrote");
    ok(&ls("repair", &only, &acct).await, "repair");
    assert_eq!(
        writes(&acct).await,
        ops(&[
            ("kms:EnableKeyRotation", 1),
            ("ec2:RevokeSecurityGroupIngress", 1),
            ("logs:PutRetentionPolicy", 1),
        ])
    );
    ok(&ls("drift", &only, &acct).await, "drift after repair");

    // `down` of the network reaches what stands on it, RDS's subnet group and ECS's
    // services among them, which LocalStack cannot read (501): it refuses, writing nothing,
    // as it would on AWS with those reads denied. (LocalStack also answers a missing
    // dashboard InvalidParameterValue where AWS says ResourceNotFound: unreadable too.)
    reset_calls(&acct).await;
    let refused = ls("down", &["--yes", "--only", "network"], &acct).await;
    assert_eq!(refused.code, 1, "{}\n{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("could not be read") && refused.stderr.contains("db_subnet_group"),
        "{}",
        refused.stderr
    );
    assert_eq!(writes(&acct).await, BTreeMap::new(), "a refused down wrote");
    // What stands on nothing LocalStack lacks goes: the flow logs and their group, the zone
    // with its records, the topic; the rest of the network stays, and so does the key.
    let down = ls(
        "down",
        &[
            "--yes",
            "--only",
            "flow-logs-group,hosted-zone,alerts-topic",
        ],
        &acct,
    )
    .await;
    ok(&down, "down");
    let deleted: std::collections::BTreeSet<String> = down
        .events_of("node_finished")
        .into_iter()
        .filter(|e| e["outcome"] == "deleted")
        .map(|e| e["node"].as_str().unwrap_or_default().to_string())
        .collect();
    for node in [
        "flow-logs",
        "flow-logs-group",
        "hosted-zone",
        "certificate-dns",
        "alerts-topic",
    ] {
        assert!(deleted.contains(node), "{node}: {deleted:?}");
    }
    let groups = logs
        .describe_log_groups()
        .log_group_name_prefix("/tap/tap-local/vpc-flow-logs")
        .send()
        .await
        .unwrap();
    assert!(groups.log_groups().is_empty(), "{groups:?}");
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
    assert_eq!(vpcs.vpcs().len(), 1, "the VPC was not selected: {vpcs:?}");
    ok(
        &ls("drift", &["--only", "vpc,encryption"], &acct).await,
        "drift of what stayed",
    );
}
