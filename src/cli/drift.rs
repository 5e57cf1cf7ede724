//! `drift`: [`crate::verbs::drift`] on the environment's file.

use super::{EnvArgs, Settings};
use crate::model::RunFlags;

pub async fn run(args: &EnvArgs, only: &[String], settings: &Settings) -> anyhow::Result<i32> {
    let s = super::open_only(
        "drift",
        args,
        only,
        settings,
        RunFlags::default(),
        1,
        |_, _| Ok(()),
    )
    .await?;
    Ok(crate::verbs::drift::run(&s).await?.code)
}
