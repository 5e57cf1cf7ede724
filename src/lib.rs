//! tap-provision: builds, checks and repairs the TAP payment platform's AWS infrastructure
//! by calling the AWS APIs directly, with live AWS (found by tags) as the only state.

pub mod aws;
pub mod cli;
pub mod config;
pub mod diff;
pub mod drift;
pub mod error;
pub mod executor;
pub mod graph;
pub mod history;
pub mod lock;
pub mod model;
pub mod output;
pub mod policy;
pub mod record;
pub mod repair;
pub mod resources;
pub mod session;
pub mod stack;
pub mod tell;
pub mod timing;
pub mod verbs;
