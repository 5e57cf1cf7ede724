//! `unlock --force`: removes the environment's lock, for a person who knows the run that
//! holds it is gone (its lease also runs out by itself within a minute of its last renewal).

use serde_json::json;

use super::{EnvArgs, Settings};
use crate::error::exit;
use crate::model::RunFlags;

pub async fn run(args: &EnvArgs, force: bool, settings: &Settings) -> anyhow::Result<i32> {
    let s = super::open("unlock", args, settings, RunFlags::default(), 1, |_, _| {
        Ok(())
    })
    .await?;
    let bucket = s.state_bucket();
    let s3 = &s.cx.aws.s3;
    let held = if force {
        crate::lock::force_unlock(s3, &bucket).await
    } else {
        crate::lock::read(s3, &bucket)
            .await
            .map(|h| h.map(|(h, _)| h))
    }
    .map_err(anyhow::Error::new)?;
    let Some(holder) = held else {
        s.reporter.result(
            json!({"event": "unlock", "environment": s.env.full_name(), "held": false}),
            &[format!("{}: not locked", s.env.full_name())],
        );
        return Ok(exit::OK);
    };
    if !force {
        anyhow::bail!(
            "{} is locked by {} (lease until {}): if that run is gone, rerun with --force",
            s.env.full_name(),
            holder.describe(),
            crate::lock::timestamp(holder.expires)
        );
    }
    s.reporter.result(
        json!({"event": "unlock", "environment": s.env.full_name(), "held": true, "holder": holder}),
        &[format!(
            "{}: removed the lock of {}",
            s.env.full_name(),
            holder.describe()
        )],
    );
    Ok(exit::OK)
}
