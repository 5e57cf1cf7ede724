//! The emulator the suite runs against, and helpers to run the binary and inspect AWS.
//!
//! By default two test emulators (tests/emulator/launch.py: moto server plus the handlers
//! the product needs; `TAP_TEST_EMULATORS=n` for another number, up to 4) are started per
//! test binary on free loopback ports; they are installed into `.venv-emulator/` when missing
//! and exit when this process ends (they watch their standard input). moto serves on one
//! core, so one process held the suite back whenever several tests called at once. Each test
//! uses its own 12-digit access key, hence its own account, and each account lives on one
//! emulator, picked by its number ([`endpoint`]): tests share the servers and never see each
//! other's resources. Set `TAP_TEST_ENDPOINT=http://127.0.0.1:4566` to use one emulator that
//! is already running instead.

pub mod inventory;
pub mod live;
pub mod localstack;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;

pub const REGION: &str = "us-east-1";
/// Cap on one CLI run in tests (the local config waits at most 120 s for anything).
const RUN_CAP: Duration = Duration::from_secs(180);

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Emulator {
    endpoint: String,
    _process: Option<Mutex<(Child, ChildStdin)>>,
}

pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("TAP_EMULATOR_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = repo().join(".venv-emulator");
    let py = venv.join("bin/python");
    if !py.exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "could not create {}: is python3 (with venv) installed?",
            venv.display()
        );
    }
    let has_moto = Command::new(&py)
        .args([
            "-c",
            "import moto.server, cbor2, parliament, cloudsplaining",
        ])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !has_moto {
        let ok = Command::new(&py)
            .args(["-m", "pip", "install", "--quiet", "-r"])
            .arg(repo().join("tests/emulator/requirements.txt"))
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "could not install the emulator (pip install -r tests/emulator/requirements.txt)"
        );
    }
    py
}

/// The most emulator processes the suite starts (`TAP_TEST_EMULATORS`).
pub const MAX_EMULATORS: usize = 4;

static EMULATORS: OnceLock<Vec<Emulator>> = OnceLock::new();

fn emulators() -> &'static [Emulator] {
    EMULATORS.get_or_init(|| {
        if let Ok(endpoint) = std::env::var("TAP_TEST_ENDPOINT") {
            return vec![Emulator {
                endpoint,
                _process: None,
            }];
        }
        let n = std::env::var("TAP_TEST_EMULATORS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(2)
            .clamp(1, MAX_EMULATORS);
        let python = python();
        // Started side by side: each takes a few seconds to import moto.
        std::thread::scope(|s| {
            let started: Vec<_> = (0..n).map(|_| s.spawn(|| launch(&python))).collect();
            started
                .into_iter()
                .map(|h| h.join().expect("starting an emulator"))
                .collect()
        })
    })
}

/// One test launcher on a free loopback port, its modeled readiness times on the same scale
/// as the tool's waits.
fn launch(python: &Path) -> Emulator {
    let mut cmd = Command::new(python);
    cmd.arg(repo().join("tests/emulator/launch.py")).args([
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--parent-watch",
    ]);
    cmd.env(TIME_SCALE.0, TIME_SCALE.1);
    let (endpoint, process) = start_ready(cmd, "tests/emulator/launch.py", 60);
    Emulator {
        endpoint,
        _process: Some(Mutex::new(process)),
    }
}

/// Which emulator holds `account`: by its number, so consecutive accounts alternate.
fn emulator_index(account: &str) -> usize {
    let n = emulators().len();
    account
        .get(account.len().saturating_sub(6)..)
        .and_then(|tail| tail.parse::<usize>().ok())
        .map_or(0, |k| k % n)
}

/// Starts a test-side server that prints `READY <port>` once it serves and exits when its
/// standard input closes (`--parent-watch`): its endpoint, and the process with the pipe
/// that keeps it alive.
pub fn start_ready(mut cmd: Command, what: &str, secs: u64) -> (String, (Child, ChildStdin)) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {what}: {e}"));
    let stdout = child.stdout.take().expect("its stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{what} did not start within {secs} s"));
    let port = line
        .trim()
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("unexpected output of {what}: {line:?}"))
        .to_string();
    let stdin = child.stdin.take().expect("its stdin");
    (format!("http://127.0.0.1:{port}"), (child, stdin))
}

/// The endpoint of the emulator that holds `account`.
pub fn endpoint(account: &str) -> &'static str {
    &emulators()[emulator_index(account)].endpoint
}

/// A fresh 12-digit account for one test.
pub fn account() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    format!("{:06}{:06}", std::process::id() % 1_000_000, n)
}

/// A fresh account on the emulator that holds `beside` (a copy must be made where its source
/// lives).
fn account_beside(beside: &str) -> String {
    let want = emulator_index(beside);
    loop {
        let acct = account();
        if emulator_index(&acct) == want {
            return acct;
        }
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// JSON lines of stdout.
    pub fn events(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn finished(&self) -> Value {
        self.events()
            .into_iter()
            .find(|e| e["event"] == "run_finished")
            .unwrap_or_else(|| {
                panic!(
                    "no run_finished event\nstdout:\n{}\nstderr:\n{}",
                    self.stdout, self.stderr
                )
            })
    }

    /// Events of one kind (`plan`, `drift`, `node_finished`, …).
    pub fn events_of(&self, event: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["event"] == event)
            .collect()
    }

    /// The one event of a kind, or a panic that shows the run.
    pub fn event(&self, event: &str) -> Value {
        self.events_of(event).pop().unwrap_or_else(|| {
            panic!(
                "no {event} event\nstdout:\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    pub fn outcome(&self, node: &str) -> String {
        self.events()
            .into_iter()
            .find(|e| e["event"] == "node_finished" && e["node"] == node)
            .map(|e| e["outcome"].as_str().unwrap_or("").to_string())
            .unwrap_or_else(|| panic!("no outcome for {node}"))
    }
}

/// What every run of the binary in the tests sets: `TAP_TIME_SCALE`.
pub const TIME_SCALE: (&str, &str) = ("TAP_TIME_SCALE", "10");

/// The binary with `args`, credentials of `account` and `endpoint` as AWS_ENDPOINT_URL.
pub fn command(
    args: &[&str],
    account: &str,
    endpoint: &str,
    dir: &Path,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_tap-provision"));
    cmd.args(args)
        .current_dir(dir)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", account)
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_REGION")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    // Against the launcher these tests started: its modeled readiness times and the tool's
    // waits, polls and backoffs, both a tenth of their real length (the same proportions, a
    // tenth of the waiting). Elsewhere (LocalStack, an emulator started by other means) the
    // delays are real, and so are the tool's waits.
    if EMULATORS.get().is_some_and(|all| {
        all.iter()
            .any(|e| e._process.is_some() && e.endpoint == endpoint)
    }) {
        cmd.env(TIME_SCALE.0, TIME_SCALE.1);
    } else {
        cmd.env_remove(TIME_SCALE.0);
    }
    cmd
}

/// Runs the binary with `args`, credentials of `account` and `endpoint` as AWS_ENDPOINT_URL.
pub async fn run_with(args: &[&str], account: &str, endpoint: &str, dir: &Path) -> Run {
    let mut cmd = command(args, account, endpoint, dir);
    let out = tokio::time::timeout(RUN_CAP, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("tap-provision {args:?} ran longer than {RUN_CAP:?}"))
        .expect("running tap-provision");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the binary against the test emulator from the repository root.
pub async fn run(args: &[&str], account: &str) -> Run {
    run_with(args, account, endpoint(account), &repo()).await
}

/// An SDK configuration for inspecting the emulator as `account`.
pub async fn sdk(account: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint(account))
        .region(aws_config::Region::new(REGION))
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            account, "test", None, None, "tests",
        ))
        .load()
        .await
}

/// A config directory holding `local.toml` with `edit` applied, for variant configs.
pub fn config_dir(edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let text =
        std::fs::read_to_string(repo().join("config/local.toml")).expect("config/local.toml");
    std::fs::write(dir.path().join("local.toml"), edit(text)).expect("writing config");
    dir
}

/// What the emulator served for `account` since the last reset, by `service:Operation`
/// (counted by the launcher, not by the tool).
pub async fn calls(account: &str) -> BTreeMap<String, u64> {
    let answer = emulator_admin("GET", &format!("/_tap/calls/{account}"), "").await;
    serde_json::from_value(answer.clone()).unwrap_or_else(|e| {
        panic!("the emulator's counts are not JSON counts ({e}); is TAP_TEST_ENDPOINT the test launcher?\n{answer}")
    })
}

/// Forgets the emulator's counts for `account`.
pub async fn reset_calls(account: &str) {
    emulator_admin("DELETE", &format!("/_tap/calls/{account}"), "").await;
}

/// True for operations that only read.
pub fn is_read(operation: &str) -> bool {
    let op = operation.rsplit(':').next().unwrap_or(operation);
    ["Describe", "List", "Get", "Head", "GET ", "HEAD "]
        .iter()
        .any(|p| op.starts_with(p))
}

/// The mutating calls the emulator served for `account` since the last reset, the tool's
/// own lock and run reports aside (see [`bookkeeping`]).
pub async fn writes(account: &str) -> BTreeMap<String, u64> {
    calls(account)
        .await
        .into_iter()
        .filter(|(op, _)| !is_read(op) && !op.contains('['))
        .collect()
}

/// An exact map of writes, for `assert_eq!(writes(acct).await, ops(&[...]))`.
pub fn ops(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// The writes of the tool's lock and run history (`s3:PutObject[lock]`,
/// `s3:PutObject[history]`, `s3:DeleteObject[lock]`) since the last reset.
pub async fn bookkeeping(account: &str) -> BTreeMap<String, u64> {
    calls(account)
        .await
        .into_iter()
        .filter(|(op, _)| !is_read(op) && op.contains('['))
        .collect()
}

/// Runs `up --env local --yes --json` and asserts it succeeded.
pub async fn up_ok(acct: &str) -> Run {
    let r = run(&["up", "--env", "local", "--yes", "--json"], acct).await;
    assert_eq!(r.code, 0, "up failed:\n{}\n{}", r.stdout, r.stderr);
    r
}

/// The whole suite (`scripts/test --all`, what CI runs: TAP_TEST_ALL=1) rather than the
/// default tier, which runs every test but only a rotating share of the crash test's kill
/// points and of the lost-answer seeds.
pub fn whole_suite() -> bool {
    std::env::var("TAP_TEST_ALL").is_ok_and(|v| v == "1")
}

/// `items` under `--all`; else `n` of them, a different `n` each day (by the day's number,
/// or TAP_TEST_ROTATION to replay one), so that a week of default runs covers them all.
/// Which ones ran goes to stderr with the rotation that picks them again.
pub fn rotating_share<T: Clone + std::fmt::Debug>(items: &[T], n: usize, what: &str) -> Vec<T> {
    if whole_suite() || n >= items.len() {
        return items.to_vec();
    }
    let rotation: usize = std::env::var("TAP_TEST_ROTATION")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            (secs / 86_400) as usize
        });
    let picked: Vec<T> = (0..n)
        .map(|i| items[(rotation * n + i) % items.len()].clone())
        .collect();
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "{what}: {n} of {} in this tier (TAP_TEST_ROTATION={rotation}; all with TAP_TEST_ALL=1): {picked:?}",
        items.len()
    );
    picked
}

/// A fresh account holding the converged local environment (`up --env local` of the shipped
/// config), for tests that start from it. One real `up` per emulator builds it in an
/// account of its own; each caller gets a copy the emulator makes in milliseconds
/// (`/_tap/clone`, tests/emulator/clone.py), with the account id rewritten wherever it is
/// held. Against an emulator without that switch (TAP_TEST_ENDPOINT), each caller gets its
/// own `up`. The copy's calls start at zero.
pub async fn converged() -> String {
    static SOURCE: Sources = Sources::new();
    copy_of_built(&SOURCE, |acct| async move {
        up_ok(&acct).await;
    })
    .await
}

/// The accounts a build to copy was made in: one on each emulator, made by the first test
/// there that asks for a copy.
pub struct Sources([tokio::sync::OnceCell<String>; MAX_EMULATORS]);

impl Sources {
    /// None built yet (for a `static`).
    pub const fn new() -> Self {
        Sources([const { tokio::sync::OnceCell::const_new() }; MAX_EMULATORS])
    }
}

/// A fresh account holding a copy of what `build` made in the source account on the fresh
/// account's emulator (the first caller there builds it); against an emulator that cannot
/// copy, `build` runs in the fresh account instead.
pub async fn copy_of_built<F, Fut>(sources: &Sources, build: F) -> String
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let acct = account();
    let from = sources.0[emulator_index(&acct)]
        .get_or_init(|| async {
            build(acct.clone()).await;
            acct.clone()
        })
        .await;
    match copy_of(from).await {
        Ok(acct) => acct,
        Err(acct) => {
            build(acct.clone()).await;
            acct
        }
    }
}

/// A fresh account holding a copy of everything in `source`: `Ok`, or `Err` with the fresh
/// account, still empty, against an emulator that cannot copy (TAP_TEST_ENDPOINT).
async fn copy_of(source: &str) -> Result<String, String> {
    let acct = account_beside(source);
    let copied = emulator_admin(
        "PUT",
        &format!("/_tap/clone/{acct}"),
        &format!(r#"{{"from": "{source}"}}"#),
    )
    .await;
    if copied["services"].as_u64().unwrap_or(0) == 0 {
        assert!(
            std::env::var("TAP_TEST_ENDPOINT").is_ok(),
            "the test emulator did not copy {source}: {copied}"
        );
        return Err(acct);
    }
    Ok(acct)
}

/// Runs a command with `--env local --json` (and `--config-dir` when given).
pub async fn local(verb: &str, extra: &[&str], acct: &str, dir: Option<&Path>) -> Run {
    let mut args = vec![verb, "--env", "local", "--json"];
    args.extend_from_slice(extra);
    let dir_arg;
    if let Some(d) = dir {
        dir_arg = d.to_string_lossy().into_owned();
        args.extend(["--config-dir", dir_arg.as_str()]);
    }
    run(&args, acct).await
}

/// The node ids of `config/local.toml`'s step graph, from the library itself.
pub fn nodes_of_local() -> std::collections::BTreeSet<String> {
    let env =
        tap_provision::config::load(&repo().join("config"), "local").expect("config/local.toml");
    let graph = tap_provision::stack::build(&env).expect("the local graph");
    graph.nodes().iter().map(|n| n.id.clone()).collect()
}

/// Arms the account's barrier (tests/emulator/barrier.py) with `settings` (its JSON); the
/// barrier's path, to read (`GET`: who arrived, their statuses) and disarm (`DELETE`).
pub async fn arm_barrier(acct: &str, settings: &str) -> String {
    let barrier = format!("/_tap/barrier/{acct}");
    emulator_admin("PUT", &barrier, settings).await;
    barrier
}

/// Waits (up to a minute) until `arrived` calls are held at the account's `barrier`;
/// `what` names them in the failure.
pub async fn held_at(barrier: &str, arrived: u64, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while emulator_admin("GET", barrier, "").await["arrived"] != arrived {
        assert!(std::time::Instant::now() < deadline, "no {what} came");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// One raw HTTP/1.0 request to the emulator's test-side switches; the JSON answer.
pub async fn emulator_admin(method: &str, path: &str, body: &str) -> Value {
    // Every switch is per account (`/_tap/<switch>/<account>`): the emulator holding it.
    let account = path
        .split('/')
        .find(|part| part.len() == 12 && part.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no account in the emulator switch {path}"));
    admin_at(endpoint(account), method, path, body).await
}

/// [`emulator_admin`] of the emulator at `endpoint` (LocalStack's counting front too).
pub async fn admin_at(endpoint: &str, method: &str, path: &str, body: &str) -> Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = endpoint.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .expect("connecting to the emulator");
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("asking the emulator");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    let json = answer.split("\r\n\r\n").nth(1).unwrap_or("{}");
    serde_json::from_str(json).unwrap_or(Value::Null)
}
