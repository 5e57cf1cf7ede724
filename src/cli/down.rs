//! `down`: the confirmation it needs, then [`crate::verbs::down`].

use super::{EnvArgs, RunArgs, Settings};
use crate::model::RunFlags;

pub async fn run(
    args: &EnvArgs,
    run: &RunArgs,
    only: &[String],
    flags: RunFlags,
    confirm: Option<&str>,
    settings: &Settings,
) -> anyhow::Result<i32> {
    let s = super::open_only(
        "down",
        args,
        only,
        settings,
        flags,
        usize::from(run.parallelism),
        |env, acting| {
            // Destroying a protected environment's data takes its name, --yes or not.
            let named = match confirm {
                Some(name) if name == env.env => true,
                Some(name) => anyhow::bail!(
                    "--confirm {name} does not name this environment ({}): nothing was removed",
                    env.env
                ),
                None => false,
            };
            if flags.destroy_data && env.protected && !named {
                if !settings.interactive {
                    anyhow::bail!(
                        "{} is protected: `down --destroy-data` needs --confirm {} (or the name typed on a terminal); nothing was removed",
                        env.full_name(),
                        env.env
                    );
                }
            } else if run.yes || named {
                return Ok(());
            }
            if !settings.interactive {
                anyhow::bail!(
                    "refusing to remove {} without --yes when not on a terminal",
                    env.full_name()
                );
            }
            let data = if acting.only.is_some() {
                if flags.destroy_data {
                    "and DESTROY the data of those among them that hold it"
                } else {
                    "keeping the data of those among them that hold it"
                }
            } else if flags.destroy_data {
                "and DESTROY its data (no final database snapshot; the backup vault, its recovery points and the state bucket are deleted; the KMS key is scheduled for deletion)"
            } else {
                "keeping its data (a final database snapshot, the backup vault, the state bucket and the KMS key stay)"
            };
            let what = match &acting.only {
                Some(nodes) => format!(
                    "these {} resources of {} ({})",
                    nodes.len(),
                    env.full_name(),
                    nodes.join(", ")
                ),
                None => format!("every resource of {}", env.full_name()),
            };
            let prompt = format!(
                "This removes {what} in {} {data}.\nType the environment name ({}) to continue: ",
                env.region, env.env
            );
            if !super::confirm(&prompt, &env.env)? {
                anyhow::bail!("not confirmed: nothing was removed");
            }
            Ok(())
        },
    )
    .await?;
    crate::verbs::down::run(&s, flags, run.lock.timeout()).await
}
