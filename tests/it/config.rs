//! Bad input: validated before the first AWS call, every error naming file and key.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::{config_dir, repo, run_with};

/// A loopback listener that counts connections: the endpoint for runs that must not call AWS.
fn counting_endpoint() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if conn.is_ok() {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    (format!("http://{addr}"), count)
}

#[tokio::test]
async fn shipped_configs_validate() {
    let (endpoint, calls) = counting_endpoint();
    for env in ["local", "staging", "prod"] {
        let r = run_with(
            &["validate", "--env", env],
            "000000000001",
            &endpoint,
            &repo(),
        )
        .await;
        assert_eq!(r.code, 0, "{env}: {}", r.stderr);
        assert!(r.stdout.contains("valid"), "{}", r.stdout);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "validate is offline");
}

#[tokio::test]
async fn latest_image_fails_validate_naming_the_key() {
    let dir = config_dir(|t| t.replace("tap/backend:0.1.0", "tap/backend:latest"));
    let r = run_with(
        &[
            "validate",
            "--env",
            "local",
            "--config-dir",
            dir.path().to_str().unwrap(),
        ],
        "000000000001",
        "http://127.0.0.1:9",
        &repo(),
    )
    .await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("local.toml"), "{}", r.stderr);
    assert!(r.stderr.contains("services.backend.image"), "{}", r.stderr);
    assert!(r.stderr.contains("mutable tag `latest`"), "{}", r.stderr);
}

#[tokio::test]
async fn every_problem_is_reported_and_up_makes_no_call() {
    let dir = config_dir(|t| {
        t.replace(
            "\"public.ecr.aws/nginx/nginx:1.27.3\"\n",
            "\"nginx\"\nmin_tasks = 5\nmax_tasks = 2\n",
        )
        .replace("vpc_cidr = \"10.42.0.0/16\"", "vpc_cidr = \"10.42.0.1/16\"")
        .replace("availability_zones = 3", "availability_zones = 7")
        .replace("dev@example.com", "not-an-email")
    });
    let (endpoint, calls) = counting_endpoint();
    let r = run_with(
        &[
            "up",
            "--env",
            "local",
            "--yes",
            "--config-dir",
            dir.path().to_str().unwrap(),
        ],
        "000000000001",
        &endpoint,
        &repo(),
    )
    .await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    for key in [
        "services.frontend.image",
        "network.vpc_cidr",
        "network.availability_zones",
        "services.frontend.min_tasks",
        "alert_emails[0]",
    ] {
        assert!(r.stderr.contains(key), "missing {key} in:\n{}", r.stderr);
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "no AWS call before the config is valid"
    );
}

#[tokio::test]
async fn unknown_key_is_rejected() {
    let dir = config_dir(|t| t.replace("[network]", "[network]\nnat_gatways = 1"));
    let r = run_with(
        &[
            "validate",
            "--env",
            "local",
            "--config-dir",
            dir.path().to_str().unwrap(),
        ],
        "000000000001",
        "http://127.0.0.1:9",
        &repo(),
    )
    .await;
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("unknown field `nat_gatways`"),
        "{}",
        r.stderr
    );
}

#[tokio::test]
async fn down_and_protected_up_need_yes_without_a_terminal_and_call_nothing() {
    let (endpoint, calls) = counting_endpoint();
    let r = run_with(
        &["down", "--env", "local"],
        "000000000001",
        &endpoint,
        &repo(),
    )
    .await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("without --yes"), "{}", r.stderr);
    let r = run_with(&["up", "--env", "prod"], "000000000001", &endpoint, &repo()).await;
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("protected environment") && r.stderr.contains("--yes"),
        "{}",
        r.stderr
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "no AWS call before confirmation"
    );
}

#[tokio::test]
async fn graph_prints_dot_and_mermaid() {
    let r = run_with(
        &["graph", "--env", "prod"],
        "000000000001",
        "http://127.0.0.1:9",
        &repo(),
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("digraph \"tap-prod\""));
    assert!(r.stdout.contains("\"nat-c\" -> \"route-table-private-c\""));
    let r = run_with(
        &["graph", "--env", "prod", "--format", "mermaid"],
        "000000000001",
        "http://127.0.0.1:9",
        &repo(),
    )
    .await;
    assert!(r.stdout.starts_with("flowchart LR"));
}

/// One malformed or dangerous environment file: what to change in `config/local.toml`, and
/// what the error must name.
struct Bad {
    what: &'static str,
    edit: fn(String) -> String,
    names: &'static str,
}

fn set_in(text: String, section: &str, line: &str) -> String {
    text.replacen(
        &format!("[{section}]\n"),
        &format!("[{section}]\n{line}\n"),
        1,
    )
}

const BAD: &[Bad] = &[
    Bad {
        what: "wrong type",
        edit: |t| t.replace("availability_zones = 3", "availability_zones = \"three\""),
        names: "availability_zones",
    },
    Bad {
        what: "unknown top-level key",
        edit: |t| format!("colour = \"blue\"\n{t}"),
        names: "colour",
    },
    Bad {
        what: "unknown key in a section",
        edit: |t| set_in(t, "database", "read_replicas = 2"),
        names: "read_replicas",
    },
    Bad {
        what: "overlapping subnets",
        edit: |t| {
            set_in(
                t,
                "network",
                "public_subnets = [\"10.42.0.0/24\", \"10.42.0.128/25\", \"10.42.2.0/24\"]",
            )
        },
        names: "network.public_subnets",
    },
    Bad {
        what: "subnet outside the VPC",
        edit: |t| {
            set_in(
                t,
                "network",
                "private_subnets = [\"10.43.6.0/24\", \"10.42.7.0/24\", \"10.42.8.0/24\"]",
            )
        },
        names: "network.private_subnets",
    },
    Bad {
        what: "VPC too small",
        edit: |t| t.replace("10.42.0.0/16", "10.42.0.0/26"),
        names: "network.vpc_cidr",
    },
    Bad {
        what: "host bits in the VPC",
        edit: |t| t.replace("10.42.0.0/16", "10.42.0.1/16"),
        names: "network.vpc_cidr",
    },
    Bad {
        what: ":latest image",
        edit: |t| t.replace("tap/backend:0.1.0", "tap/backend:latest"),
        names: "services.backend.image",
    },
    Bad {
        what: "untagged image",
        edit: |t| t.replace("public.ecr.aws/nginx/nginx:1.27.3", "nginx"),
        names: "services.frontend.image",
    },
    Bad {
        what: "moving tag",
        edit: |t| t.replace("tap/backend:0.1.0", "tap/backend:stable"),
        names: "services.backend.image",
    },
    Bad {
        what: "mutable X-Ray image",
        edit: |t| {
            t.replace(
                "[services.frontend]",
                "[services]\nxray_image = \"amazon/aws-xray-daemon\"\n\n[services.frontend]",
            )
        },
        names: "services.xray_image",
    },
    Bad {
        what: "min above max",
        edit: |t| set_in(t, "services.backend", "min_tasks = 9\nmax_tasks = 4"),
        names: "services.backend.min_tasks",
    },
    Bad {
        what: "absurd task count",
        edit: |t| set_in(t, "services.frontend", "max_tasks = 100000"),
        names: "services.frontend.max_tasks",
    },
    Bad {
        what: "absurd CPU",
        edit: |t| set_in(t, "services.backend", "cpu = 3"),
        names: "services.backend.cpu",
    },
    Bad {
        what: "memory Fargate does not offer",
        edit: |t| set_in(t, "services.backend", "cpu = 256\nmemory = 8192"),
        names: "services.backend.memory",
    },
    Bad {
        what: "0 zones",
        edit: |t| t.replace("availability_zones = 3", "availability_zones = 0"),
        names: "network.availability_zones",
    },
    Bad {
        what: "7 zones",
        edit: |t| t.replace("availability_zones = 3", "availability_zones = 7"),
        names: "network.availability_zones",
    },
    Bad {
        what: "more readers than sensible",
        edit: |t| t.replace("readers = 1", "readers = 16"),
        names: "database.readers",
    },
    Bad {
        what: "negative readers",
        edit: |t| t.replace("readers = 1", "readers = -1"),
        names: "database.readers",
    },
    Bad {
        what: "invalid domain",
        edit: |t| t.replace("tap.local.example.com", "tap..example"),
        names: "domain",
    },
    Bad {
        what: "cron that is a rate",
        edit: |t| set_in(t, "backup", "schedule = \"rate(6 hours)\""),
        names: "backup.schedule",
    },
    Bad {
        what: "cron with too few fields",
        edit: |t| set_in(t, "backup", "schedule = \"cron(0 */6 * *)\""),
        names: "backup.schedule",
    },
    Bad {
        what: "backup windows too short",
        edit: |t| set_in(t, "backup", "start_window_minutes = 30"),
        names: "backup.start_window_minutes",
    },
    Bad {
        what: "RDS retention beyond 35 days",
        edit: |t| t.replace("backup_retention_days = 30", "backup_retention_days = 36"),
        names: "database.backup_retention_days",
    },
    Bad {
        what: "key deletion window under 7 days",
        edit: |t| {
            t.replace(
                "key_deletion_window_days = 7",
                "key_deletion_window_days = 3",
            )
        },
        names: "encryption.key_deletion_window_days",
    },
    Bad {
        what: "retention CloudWatch does not offer",
        edit: |t| {
            t.replace(
                "flow_logs_retention_days = 7",
                "flow_logs_retention_days = 8",
            )
        },
        names: "network.flow_logs_retention_days",
    },
    Bad {
        what: "bad email",
        edit: |t| t.replace("dev@example.com", "dev-at-example"),
        names: "alert_emails[0]",
    },
    Bad {
        what: "project with capitals",
        edit: |t| t.replace("project = \"tap\"", "project = \"TAP\""),
        names: "project",
    },
    Bad {
        what: "unknown region",
        edit: |t| t.replace("region = \"us-east-1\"", "region = \"mars-1\""),
        names: "region",
    },
    Bad {
        what: "two NAT gateways for three zones",
        edit: |t| t.replace("nat_gateways = 1", "nat_gateways = 2"),
        names: "network.nat_gateways",
    },
    Bad {
        what: "protected with one NAT",
        edit: |t| t.replace("protected = false", "protected = true"),
        names: "network.nat_gateways",
    },
    Bad {
        what: "instance class of unknown memory",
        edit: |t| t.replace("db.t4g.medium", "db.m5.large"),
        names: "database.instance_class",
    },
    Bad {
        what: "unsupported engine",
        edit: |t| t.replace("engine_version = \"16.6\"", "engine_version = \"12.4\""),
        names: "database.engine_version",
    },
    Bad {
        what: "reserved master user",
        edit: |t| set_in(t, "database", "master_username = \"rdsadmin\""),
        names: "database.master_username",
    },
    Bad {
        what: "wait too short",
        edit: |t| t.replace("wait_seconds = 120", "wait_seconds = 5"),
        names: "timeouts.wait_seconds",
    },
    Bad {
        what: "unknown origin access",
        edit: |t| format!("{t}\n[cdn]\norigin_access = \"public\"\n"),
        names: "cdn.origin_access",
    },
    Bad {
        what: "zone id with create_zone",
        edit: |t| {
            t.replace(
                "create_zone = true",
                "create_zone = true\nhosted_zone = \"Z0123456789ABCDEFGHIJ\"",
            )
        },
        names: "dns.create_zone",
    },
    Bad {
        what: "a rate AWS would refuse",
        edit: |t| {
            format!(
                "{t}\n[repair]\nschedule = \"rate(1 hours)\"\nimage = \"tap/provision:0.2.0\"\n"
            )
        },
        names: "repair.schedule",
    },
    Bad {
        what: "a cron with five fields",
        edit: |t| {
            format!("{t}\n[repair]\nschedule = \"cron(0 * * * *)\"\nimage = \"tap/provision:0.2.0\"\nexpect_every = \"1 day\"\n")
        },
        names: "repair.schedule",
    },
    Bad {
        what: "a cron without how often a run must succeed",
        edit: |t| {
            format!("{t}\n[repair]\nschedule = \"cron(0 3 * * ? *)\"\nimage = \"tap/provision:0.2.0\"\n")
        },
        names: "repair.expect_every",
    },
    Bad {
        what: "a schedule without the tool's image",
        edit: |t| format!("{t}\n[repair]\nschedule = \"rate(1 hour)\"\n"),
        names: "repair.image",
    },
    Bad {
        what: "the tool's image unversioned",
        edit: |t| {
            format!(
                "{t}\n[repair]\nschedule = \"rate(1 hour)\"\nimage = \"tap/provision:latest\"\n"
            )
        },
        names: "repair.image",
    },
    Bad {
        what: "an unknown time zone",
        edit: |t| format!("{t}\n[repair]\ntimezone = \"Mars/Olympus\"\n"),
        names: "repair.timezone",
    },
    Bad {
        what: "an unknown mode",
        edit: |t| format!("{t}\n[repair]\nmode = \"fix\"\n"),
        names: "repair.mode",
    },
    Bad {
        what: "a dead man's switch shorter than the schedule",
        edit: |t| {
            format!("{t}\n[repair]\nschedule = \"rate(2 hours)\"\nimage = \"tap/provision:0.2.0\"\nexpect_every = \"1 hour\"\n")
        },
        names: "repair.expect_every",
    },
    Bad {
        what: "a dead man's switch longer than CloudWatch looks back",
        edit: |t| {
            format!("{t}\n[repair]\nschedule = \"rate(1 day)\"\nimage = \"tap/provision:0.2.0\"\nexpect_every = \"8 days\"\n")
        },
        names: "repair.expect_every",
    },
    Bad {
        what: "an ignore entry naming no node",
        edit: |t| format!("{t}\n[repair]\nignore = [\"nowhere.tags.x\"]\n"),
        names: "repair.ignore: `nowhere.tags.x`",
    },
    Bad {
        what: "an ignore entry naming no field of its node",
        edit: |t| format!("{t}\n[repair]\nignore = [\"alb.colour\"]\n"),
        names: "a load_balancer has no field `colour`",
    },
    Bad {
        what: "an ignore entry without a field",
        edit: |t| format!("{t}\n[repair]\nignore = [\"alb\"]\n"),
        names: "repair.ignore[0]",
    },
    Bad {
        what: "not TOML",
        edit: |_| "project = = \"tap\"\n[network\n".to_string(),
        names: "local.toml",
    },
];

#[tokio::test]
async fn each_malformed_env_file_is_refused_naming_its_key_before_any_aws_call() {
    let (endpoint, calls) = counting_endpoint();
    let mut failures = Vec::new();
    for bad in BAD {
        let dir = config_dir(bad.edit);
        let r = run_with(
            &[
                "up",
                "--env",
                "local",
                "--yes",
                "--config-dir",
                dir.path().to_str().unwrap(),
            ],
            "000000000001",
            &endpoint,
            &repo(),
        )
        .await;
        if r.code != 1 || !r.stderr.contains(bad.names) || !r.stderr.contains("local.toml") {
            failures.push(format!(
                "{} (exit {}, wants `{}` named):\n{}",
                bad.what, r.code, bad.names, r.stderr
            ));
        }
        if r.stderr.contains("panicked") {
            failures.push(format!("{} panicked:\n{}", bad.what, r.stderr));
        }
    }
    // And a file that does not exist, and names that would leave the config directory.
    for (env, names) in [
        ("staging-eu", "staging-eu.toml"),
        ("../local", "`../local` is not valid"),
        ("local/../../etc/passwd", "is not valid"),
    ] {
        let r = run_with(
            &["up", "--env", env, "--yes"],
            "000000000001",
            &endpoint,
            &repo(),
        )
        .await;
        if r.code != 1 || !r.stderr.contains(names) {
            failures.push(format!("--env {env} (exit {}):\n{}", r.code, r.stderr));
        }
    }
    assert!(
        BAD.len() >= 30,
        "at least 30 malformed files: {}",
        BAD.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no AWS call for bad input");
}

#[tokio::test]
async fn wrong_credentials_and_an_unreachable_endpoint_stop_up_before_it_creates_anything() {
    // Nothing listens on port 9 of loopback.
    let r = run_with(
        &["up", "--env", "local", "--yes"],
        "000000000001",
        "http://127.0.0.1:9",
        &repo(),
    )
    .await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("could not reach AWS") && r.stderr.contains("endpoint"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    // The emulator refuses this key as AWS refuses one it does not know.
    let r = run_with(
        &["up", "--env", "local", "--yes"],
        "999999999403",
        crate::common::endpoint("999999999403"),
        &repo(),
    )
    .await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("InvalidClientTokenId"), "{}", r.stderr);
    assert!(
        r.stderr.contains("credentials"),
        "says what to check: {}",
        r.stderr
    );
    assert!(!r.stdout.contains("created"), "{}", r.stdout);
}
