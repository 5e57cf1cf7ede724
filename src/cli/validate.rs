//! `validate`: the environment file and the step graph, offline.

use serde_json::json;

use super::{EnvArgs, Settings};
use crate::error::exit;
use crate::output::{stdout_line, Format};

pub fn run(args: &EnvArgs, settings: &Settings) -> anyhow::Result<i32> {
    let env = crate::config::load(&args.config_dir, &args.env)?;
    let graph = crate::stack::checked(&env, crate::stack::build)?;
    if settings.format == Format::Json {
        stdout_line(&json!({"event": "validated", "ok": true, "file": env.file, "environment": env.full_name(), "nodes": graph.len(), "zones_looked_up": !env.network.zones_named}).to_string());
    } else {
        stdout_line(&format!(
            "{}: valid ({} in {}, {} zones, {} NAT gateway(s), {} resources in the step graph)",
            env.file.display(),
            env.full_name(),
            env.region,
            env.network.zones.len(),
            env.network.nat_gateways,
            graph.len()
        ));
        if !env.network.zones_named {
            stdout_line(&super::graph::zones_note(&env));
        }
    }
    Ok(exit::OK)
}
