//! The second emulator: LocalStack (community 4.13.1) as a plain process, behind a counting
//! front (tests/localstack/front.py) that answers `/_tap/calls/<account>` as the moto launcher
//! does. Installed into `.venv-localstack/` on first use (uv, its dependencies held to its
//! release date), started once per test binary, stopped when it ends. Set
//! `TAP_TEST_LOCALSTACK_ENDPOINT` to count in front of a LocalStack started by other means.

use super::{admin_at, is_read, python, repo, start_ready};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// The release and the day its dependencies are held to (newer ones break its start).
const LOCALSTACK: &str = "localstack-core[runtime]==4.13.1";
const EXCLUDE_NEWER: &str = "2026-02-03";

struct Front {
    endpoint: String,
    _process: Mutex<(Child, ChildStdin)>,
}

fn ok(cmd: &mut Command) -> bool {
    cmd.status().map(|s| s.success()).unwrap_or(false)
}

/// LocalStack's Python, installed on first use.
fn localstack_python() -> PathBuf {
    let venv = repo().join(".venv-localstack");
    let py = venv.join("bin/python");
    if !py.exists() {
        assert!(
            ok(Command::new("python3").args(["-m", "venv"]).arg(&venv)),
            "could not create {}",
            venv.display()
        );
    }
    if !ok(Command::new(&py)
        .args(["-c", "import localstack.runtime.main"])
        .stderr(Stdio::null()))
    {
        assert!(
            ok(Command::new(&py)
                .args(["-m", "pip", "install", "--quiet", "-r"])
                .arg(repo().join("tests/localstack/requirements.txt"))),
            "could not install uv (tests/localstack/requirements.txt)"
        );
        assert!(
            ok(Command::new(venv.join("bin/uv"))
                .args(["pip", "install", "--quiet", "--python"])
                .arg(&py)
                .args(["--exclude-newer", EXCLUDE_NEWER, LOCALSTACK])),
            "could not install {LOCALSTACK} into {}",
            venv.display()
        );
    }
    py
}

fn front() -> &'static Front {
    static FRONT: OnceLock<Front> = OnceLock::new();
    FRONT.get_or_init(|| {
        let mut cmd = Command::new(python());
        cmd.arg(repo().join("tests/localstack/front.py"))
            .args(["--port", "0", "--parent-watch"]);
        match std::env::var("TAP_TEST_LOCALSTACK_ENDPOINT") {
            Ok(target) => cmd.args(["--target", &target]),
            Err(_) => cmd.arg("--localstack-python").arg(localstack_python()),
        };
        let (endpoint, process) = start_ready(cmd, "LocalStack (tests/localstack/front.py)", 120);
        Front {
            endpoint,
            _process: Mutex::new(process),
        }
    })
}

pub fn endpoint() -> &'static str {
    &front().endpoint
}

/// Every call LocalStack was asked for `account` since the last reset, by operation.
pub async fn calls(account: &str) -> BTreeMap<String, u64> {
    let v = admin_at(endpoint(), "GET", &format!("/_tap/calls/{account}"), "").await;
    serde_json::from_value(v).unwrap_or_default()
}

pub async fn reset_calls(account: &str) {
    admin_at(endpoint(), "DELETE", &format!("/_tap/calls/{account}"), "").await;
}

/// The mutating calls, the tool's lock and run reports aside.
pub async fn writes(account: &str) -> BTreeMap<String, u64> {
    calls(account)
        .await
        .into_iter()
        .filter(|(op, _)| !is_read(op) && !op.contains('['))
        .collect()
}

/// An SDK configuration for inspecting LocalStack as `account`.
pub async fn sdk(account: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(aws_config::Region::new(super::REGION))
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            account, "test", None, None, "tests",
        ))
        .load()
        .await
}
