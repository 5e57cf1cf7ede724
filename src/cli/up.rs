//! `up`: a protected environment's confirmation, then [`crate::verbs::up`].

use super::{EnvArgs, RunArgs, Settings};
use crate::model::RunFlags;
use crate::verbs::up::{self, UpOptions};

pub async fn run(
    args: &EnvArgs,
    run: &RunArgs,
    only: &[String],
    settings: &Settings,
) -> anyhow::Result<i32> {
    let s = super::open_only(
        "up",
        args,
        only,
        settings,
        RunFlags::default(),
        usize::from(run.parallelism),
        |env, acting| {
            let nodes = acting.nodes;
            if !env.protected || run.yes {
                return Ok(());
            }
            if !settings.interactive {
                anyhow::bail!(
                    "{} is a protected environment: pass --yes to change it when not on a terminal",
                    env.full_name()
                );
            }
            let prompt = format!(
                "{} is protected. `up` will create or converge {nodes} resources in {}, changing any that differ from {} (`tap-provision plan --env {}` shows what).\nType the environment name ({}) to continue: ",
                env.full_name(),
                env.region,
                env.file.display(),
                env.env,
                env.env
            );
            if !super::confirm(&prompt, &env.env)? {
                anyhow::bail!("not confirmed: nothing was changed");
            }
            Ok(())
        },
    )
    .await?;
    up::run(
        &s,
        UpOptions {
            yes: run.yes,
            interactive: settings.interactive,
            lock_timeout: run.lock.timeout(),
            confirm: &super::confirm,
        },
    )
    .await
}
