//! `--only` on the emulator: `up` of an area and what it stands on, `plan`, `drift` and
//! `repair` reading more than they report, `down` of a part with what stands on it, and the
//! applied record keeping what a run did not select. Writes are counted by the emulator.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::live::{drifted, set, Live};
use crate::common::{account, local, ops, reset_calls, writes, Run};

/// The nodes a run finished (created, updated, unchanged, deleted...).
fn finished(r: &Run) -> BTreeSet<String> {
    r.events_of("node_finished")
        .into_iter()
        .map(|e| e["node"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The applied record's header nodes and its entries' node ids.
async fn record(live: &Live) -> (BTreeSet<String>, BTreeSet<String>) {
    let record = live.record().await;
    let header = record["applied"]["nodes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let entries = record["nodes"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    (header, entries)
}

fn services(w: &BTreeMap<String, u64>) -> BTreeSet<String> {
    w.keys()
        .map(|k| k.split(':').next().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn only_acts_on_the_selection_with_what_it_stands_on_and_down_with_what_stands_on_it() {
    let acct = account();
    // `up` of the certificates: the zone they are validated in comes along, and the state
    // bucket (the lock); nothing of the network, the database or compute.
    let up = local("up", &["--yes", "--only", "certificates"], &acct, None).await;
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    assert_eq!(
        finished(&up),
        set(&[
            "certificate",
            "certificate-dns",
            "hosted-zone",
            "state-bucket"
        ]),
        "{}",
        up.stdout
    );
    let made = services(&writes(&acct).await);
    assert_eq!(made, set(&["acm", "route53", "s3"]), "{made:?}");
    // The record's header names what the record holds, not the whole config: a scheduled
    // run rebuilds from it.
    let live = Live::new(&acct).await;
    let (header, entries) = record(&live).await;
    assert_eq!(header, entries, "header and entries agree");
    assert!(!header.contains("vpc"), "{header:?}");

    // `up` of two nodes by id and an area: the security groups stand on the VPC.
    let up = local("up", &["--yes", "--only", "sg-db,encryption"], &acct, None).await;
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    assert_eq!(
        finished(&up),
        set(&[
            "sg-db",
            "sg-ecs",
            "sg-alb",
            "vpc",
            "kms-key",
            "state-bucket"
        ]),
        "{}",
        up.stdout
    );

    // `plan` of the network: what is missing there, and nothing else reported.
    let plan = local("plan", &["--only", "network"], &acct, None).await;
    assert_eq!(plan.code, 2, "{}\n{}", plan.stdout, plan.stderr);
    let planned: BTreeSet<String> = plan
        .events_of("plan")
        .into_iter()
        .map(|p| p["node"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(planned.contains("subnet-private-a") && planned.contains("sg-db"));
    assert!(
        planned
            .iter()
            .all(|n| !n.starts_with("certificate") && n != "kms-key" && n != "hosted-zone"),
        "{planned:?}"
    );
    let plan = local("plan", &["--only", "certificates,sg-db"], &acct, None).await;
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);

    let (header, entries) = record(&live).await;
    assert_eq!(header, entries);
    assert!(
        header.contains("certificate") && header.contains("sg-db"),
        "{header:?}"
    );

    // Out of band: a rule on the DB group and the key's rotation. `drift --only sg-db` sees
    // the rule alone; `repair --only sg-db` puts it back and leaves the key as it is.
    live.ec2
        .authorize_security_group_ingress()
        .group_id(live.id("sg-db").await)
        .ip_protocol("tcp")
        .from_port(5432)
        .to_port(5432)
        .cidr_ip("0.0.0.0/0")
        .send()
        .await
        .unwrap();
    let key = live.key_id().await;
    live.kms
        .disable_key_rotation()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    reset_calls(&acct).await;
    let d = local("drift", &["--only", "sg-db"], &acct, None).await;
    assert_eq!(d.code, 2, "{}\n{}", d.stdout, d.stderr);
    assert_eq!(drifted(&d), set(&["sg-db"]), "{}", d.stdout);
    let d = local("drift", &["--only", "encryption"], &acct, None).await;
    assert_eq!(d.code, 2, "{}\n{}", d.stdout, d.stderr);
    assert_eq!(drifted(&d), set(&["kms-key"]), "{}", d.stdout);
    assert_eq!(writes(&acct).await, BTreeMap::new(), "drift wrote");
    let r = local("repair", &["--only", "sg-db"], &acct, None).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        writes(&acct).await,
        ops(&[("ec2:RevokeSecurityGroupIngress", 1)])
    );
    let d = local("drift", &["--only", "sg-db"], &acct, None).await;
    assert_eq!(d.code, 0, "{}\n{}", d.stdout, d.stderr);
    let d = local("drift", &["--only", "kms-key"], &acct, None).await;
    assert_eq!(d.code, 2, "the key was left alone: {}", d.stdout);

    // `down` of the VPC takes what stands on it (the groups), listed first, and nothing
    // else: the certificates, the zone and the key stay, and so do their records.
    reset_calls(&acct).await;
    let down = local("down", &["--yes", "--only", "vpc"], &acct, None).await;
    assert_eq!(down.code, 0, "{}\n{}", down.stdout, down.stderr);
    let note = down
        .stdout
        .lines()
        .find(|l| l.contains("--only vpc"))
        .unwrap_or("");
    assert!(
        note.contains("removes vpc") && note.contains("sg-db") && note.contains("sg-alb"),
        "{}",
        down.stdout
    );
    let deleted: BTreeSet<String> = down
        .events_of("node_finished")
        .into_iter()
        .filter(|e| e["outcome"] == "deleted")
        .map(|e| e["node"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(deleted, set(&["vpc", "sg-alb", "sg-ecs", "sg-db"]));
    // The deletions, and the applied record without them.
    assert_eq!(
        writes(&acct).await,
        ops(&[
            ("ec2:DeleteSecurityGroup", 3),
            ("ec2:DeleteVpc", 1),
            ("s3:PutObject", 1),
        ])
    );
    let d = local("drift", &["--only", "certificates"], &acct, None).await;
    assert_eq!(d.code, 0, "the record kept the certificates: {}", d.stdout);
    let (header, entries) = record(&live).await;
    assert_eq!(header, entries);
    assert!(
        !header.contains("vpc") && !header.contains("sg-db") && header.contains("kms-key"),
        "{header:?}"
    );

    // `graph --areas` lists each area's nodes, offline.
    let areas = crate::common::run(&["graph", "--env", "local", "--areas"], &acct).await;
    assert_eq!(areas.code, 0, "{}", areas.stderr);
    for line in [
        "encryption: kms-key",
        "certificates: certificate, certificate-dns",
        "dns: hosted-zone, dns-app, dns-cdn",
        "scheduled-repair: (none: [repair] schedule is off)",
        "state: state-bucket",
    ] {
        assert!(
            areas.stdout.lines().any(|l| l == line),
            "{line}:\n{}",
            areas.stdout
        );
    }

    // Names that are neither an area nor a node stop the run before any call.
    let bad = local("plan", &["--only", "netwrk"], &acct, None).await;
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr.contains("--only netwrk") && bad.stderr.contains("graph --areas"),
        "{}",
        bad.stderr
    );
}
