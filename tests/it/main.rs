//! The one integration-test binary (the AWS SDK is linked once). A module per area:
//! `cargo test --test it network::` runs one.

mod alerting;
mod cdn;
mod common;
mod compute;
mod config;
mod crash;
mod database;
mod drift;
mod edge;
mod fail_closed;
mod localstack;
mod lock;
mod network;
mod only;
mod reliability;
mod repair;
mod schedule;
mod schedule_removal;
mod scheduled;
