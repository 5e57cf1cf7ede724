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
