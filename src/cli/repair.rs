//! `repair`: [`crate::verbs::repair`] on the environment's file.

use super::{EnvArgs, LockArgs, Settings};
use crate::model::RunFlags;

pub async fn run(
    args: &EnvArgs,
    only: &[String],
    parallelism: usize,
    lock: LockArgs,
    settings: &Settings,
) -> anyhow::Result<i32> {
    let s = super::open_only(
        "repair",
        args,
        only,
        settings,
        RunFlags::default(),
        parallelism,
        |_, _| Ok(()),
    )
    .await?;
    Ok(crate::verbs::repair::run(&s, lock.timeout()).await?.code)
}
