//! `status`: the database's endpoints, instances and secret ARN (never the secret's value).

use serde_json::json;

use super::{EnvArgs, Settings};
use crate::error::exit;
use crate::output::{stdout_line, Format};
use crate::resources::aurora_cluster::database_status;

pub async fn run(args: &EnvArgs, settings: &Settings) -> anyhow::Result<i32> {
    let env = crate::config::load(&args.config_dir, &args.env)?;
    let target = super::apply::target(&env, settings);
    let conn = super::apply::connect(&env, &target).await?;
    let db = database_status(&conn.clients.rds, &env.full_name())
        .await
        .map_err(|e| anyhow::anyhow!("reading the database of {}: {e}", env.full_name()))?;
    if settings.format == Format::Json {
        stdout_line(&json!({"event": "status", "environment": env.full_name(), "region": env.region, "database": db}).to_string());
        return Ok(exit::OK);
    }
    let Some(db) = db else {
        stdout_line(&format!(
            "{}: no database (run `tap-provision up --env {}`)",
            env.full_name(),
            env.env
        ));
        return Ok(exit::OK);
    };
    let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none yet)".into());
    stdout_line(&format!("{} in {}", env.full_name(), env.region));
    stdout_line(&format!(
        "  database         {} ({}, aurora-postgresql {})",
        db.cluster,
        db.status,
        db.engine_version.clone().unwrap_or_default()
    ));
    stdout_line(&format!(
        "  writer endpoint  {}",
        or_none(&db.writer_endpoint)
    ));
    stdout_line(&format!(
        "  reader endpoint  {}",
        or_none(&db.reader_endpoint)
    ));
    stdout_line(&format!(
        "  port             {}",
        db.port.map(|p| p.to_string()).unwrap_or_default()
    ));
    stdout_line(&format!("  master secret    {}", or_none(&db.secret_arn)));
    stdout_line(&format!(
        "  protection       {}",
        if db.deletion_protection { "on" } else { "off" }
    ));
    for i in &db.instances {
        stdout_line(&format!(
            "  {:<7} {:<22} {:<10} {:<12} {}",
            i.role,
            i.id,
            i.status,
            i.zone.clone().unwrap_or_default(),
            i.class.clone().unwrap_or_default()
        ));
    }
    Ok(exit::OK)
}
