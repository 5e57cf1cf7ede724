//! Error types shared by the executor and the resources, and the exit-code table.

use std::fmt;

use serde::Serialize;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Exit codes, as in Terraform: 0 ok or no changes, 1 error, 2 changes present.
pub mod exit {
    pub const OK: i32 = 0;
    pub const ERROR: i32 = 1;
    /// `plan` / `drift`: changes or drift present.
    pub const CHANGES: i32 = 2;
    /// `repair`: drift remained after the repair.
    pub const DRIFT_REMAINS: i32 = 3;
    /// Another run holds the environment's lock (`up`, `repair`, `down`).
    pub const LOCKED: i32 = 4;
    /// Interrupted by Ctrl-C before the run finished.
    pub const INTERRUPTED: i32 = 130;
}

/// Another run held the environment's lock for longer than `--lock-timeout`: exit 4.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Locked(pub String);

/// What went wrong inside one step of one resource, before the executor names the node.
#[derive(Debug)]
pub struct Failure {
    /// Stable machine code: the AWS error code when there is one (`InvalidSubnet`), else
    /// one of ours (`Timeout`, `MissingField`, `Transport`).
    pub code: String,
    /// What happened and, where we know it, what to do.
    pub message: String,
    pub source: Option<BoxError>,
}

impl Failure {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Failure {
            code: code.into(),
            message: message.into(),
            source: None,
        }
    }

    /// A field AWS should have returned is missing.
    pub fn missing(what: &str) -> Self {
        Failure::new("MissingField", format!("AWS returned no {what}"))
    }

    /// Prefixes the message with what was being done ("creating route 0.0.0.0/0").
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The step of a node's life a failure happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Find,
    Create,
    Wait,
    Update,
    Delete,
}

impl Step {
    fn verb(self) -> &'static str {
        match self {
            Step::Find => "finding",
            Step::Create => "creating",
            Step::Wait => "waiting for",
            Step::Update => "updating",
            Step::Delete => "deleting",
        }
    }
}

/// A failure attributed to a node: "creating nat_gateway tap-prod/nat-a: cause".
#[derive(Debug, thiserror::Error)]
#[error("{} {} {}/{}: {}", .step.verb(), .kind, .env, .node, .failure)]
pub struct NodeError {
    pub env: String,
    pub node: String,
    pub kind: &'static str,
    pub step: Step,
    #[source]
    pub failure: Box<Failure>,
}

impl NodeError {
    /// The same error without its source chain (which cannot be cloned), for a second report.
    pub fn summary(&self) -> NodeError {
        NodeError {
            env: self.env.clone(),
            node: self.node.clone(),
            kind: self.kind,
            step: self.step,
            failure: Box::new(Failure::new(
                self.failure.code.clone(),
                self.failure.message.clone(),
            )),
        }
    }

    /// Stable code for JSON output.
    pub fn code(&self) -> &str {
        &self.failure.code
    }
}
