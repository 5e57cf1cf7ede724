//! `up` and `down`: confirm, connect, run the step graph, report.

use std::io::{BufRead, Write};
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;

use super::{EnvArgs, RunArgs, Settings};
use crate::aws::{Clients, Target};
use crate::config::EnvConfig;
use crate::error::exit;
use crate::executor::{self, Mode};
use crate::output::{self, Reporter};
use crate::resources::aurora_cluster::database_status;
use crate::resources::{Cx, RunFlags};

pub async fn up(args: &EnvArgs, run: &RunArgs, settings: &Settings) -> anyhow::Result<i32> {
    let env = crate::config::load(&args.config_dir, &args.env)?;
    let graph = super::graph::build(&env)?;
    if env.protected && !run.yes {
        if !settings.interactive {
            anyhow::bail!(
                "{} is a protected environment: pass --yes to change it when not on a terminal",
                env.full_name()
            );
        }
        let prompt = format!(
            "{} is protected. `up` will create or converge {} resources in {} (KMS key, network, Aurora cluster and instances, AWS Backup), changing any that differ from {}.\nType the environment name ({}) to continue: ",
            env.full_name(),
            graph.len(),
            env.region,
            env.file.display(),
            env.env
        );
        if !confirm(&prompt, &env.env)? {
            anyhow::bail!("not confirmed: nothing was changed");
        }
    }
    execute(
        "up",
        Mode::Up,
        env,
        graph,
        run,
        RunFlags::default(),
        settings,
    )
    .await
}

pub async fn down(
    args: &EnvArgs,
    run: &RunArgs,
    opts: RunFlags,
    settings: &Settings,
) -> anyhow::Result<i32> {
    let env = crate::config::load(&args.config_dir, &args.env)?;
    let graph = super::graph::build(&env)?;
    if !run.yes {
        if !settings.interactive {
            anyhow::bail!(
                "refusing to remove {} without --yes when not on a terminal",
                env.full_name()
            );
        }
        let data = if opts.destroy_data {
            "and DESTROY its data (no final database snapshot; the backup vault and its recovery points are deleted; the KMS key is scheduled for deletion)"
        } else {
            "keeping its data (a final database snapshot, the backup vault and the KMS key stay)"
        };
        let prompt = format!(
            "This removes every resource of {} in {} {data}.\nType the environment name ({}) to continue: ",
            env.full_name(),
            env.region,
            env.env
        );
        if !confirm(&prompt, &env.env)? {
            anyhow::bail!("not confirmed: nothing was removed");
        }
    }
    execute("down", Mode::Down, env, graph, run, opts, settings).await
}

fn confirm(prompt: &str, expected: &str) -> anyhow::Result<bool> {
    let mut err = std::io::stderr().lock();
    write!(err, "{prompt}")?;
    err.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == expected)
}

async fn execute(
    verb: &str,
    mode: Mode,
    env: EnvConfig,
    graph: crate::stack::StepGraph,
    run: &RunArgs,
    flags: RunFlags,
    settings: &Settings,
) -> anyhow::Result<i32> {
    let target = target(&env, settings);
    let reporter = Arc::new(Reporter::new(settings.format));
    reporter.run_started(
        verb,
        &env.full_name(),
        &env.region,
        target.effective_endpoint.as_deref(),
        graph.len(),
    );
    let Connection {
        clients,
        account,
        partition,
    } = connect(&env, &target).await?;
    let env = Arc::new(env);
    let cx = Arc::new(Cx::new(
        clients.clone(),
        env.clone(),
        account,
        partition,
        reporter.clone(),
        flags,
        usize::from(run.parallelism),
    ));

    // Deletion protection stops `down` before it deletes anything.
    if mode == Mode::Down && !flags.disable_protection {
        let protected = executor::protected(&graph, &cx).await?;
        if !protected.is_empty() {
            anyhow::bail!(
                "{} has deletion protection, so nothing was deleted:\n  - {}\nrerun `down` with --disable-protection to turn it off and remove them",
                env.full_name(),
                protected.join("\n  - ")
            );
        }
    }

    let (cancel_tx, cancel_rx) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = cancel_tx.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(exit::INTERRUPTED);
            }
        }
    });

    let report = executor::run(&graph, mode, cx.clone(), cancel_rx).await;
    let mut outputs = if mode == Mode::Up {
        output::outputs(&cx.published())
    } else {
        Default::default()
    };
    if mode == Mode::Up && report.failed() == 0 {
        // One more read for the endpoints and the secret's ARN (never its value).
        if let Ok(Some(db)) = database_status(&clients.rds, &env.full_name()).await {
            output::database_outputs(&mut outputs, &db);
        }
    }
    reporter.run_finished(
        verb,
        &env.full_name(),
        &report,
        &clients.calls.summary(),
        &outputs,
    );
    Ok(if report.failed() > 0 {
        exit::ERROR
    } else if report.interrupted {
        exit::INTERRUPTED
    } else {
        exit::OK
    })
}

/// Where the clients point: the file's region; its endpoint unless AWS_ENDPOINT_URL is set.
pub fn target(env: &EnvConfig, settings: &Settings) -> Target {
    Target {
        region: env.region.clone(),
        file_endpoint: if settings.endpoint_env.is_some() {
            None
        } else {
            env.endpoint.clone()
        },
        effective_endpoint: settings
            .endpoint_env
            .clone()
            .or_else(|| env.endpoint.clone()),
    }
}

pub struct Connection {
    pub clients: Clients,
    pub account: String,
    pub partition: String,
}

/// Builds the clients and checks the identity once (STS GetCallerIdentity), so a missing
/// credential or an unreachable endpoint is one clear error before any other call.
pub async fn connect(env: &EnvConfig, target: &Target) -> anyhow::Result<Connection> {
    let clients = Clients::load(target).await;
    let who = clients
        .sts
        .get_caller_identity()
        .send()
        .await
        .map_err(crate::error::Failure::from)
        .with_context(|| {
            format!(
                "checking the AWS identity for {} in {}{}",
                env.full_name(),
                env.region,
                target
                    .effective_endpoint
                    .as_deref()
                    .map(|e| format!(" at {e}"))
                    .unwrap_or_default()
            )
        })?;
    let account = who
        .account()
        .context("STS returned no account id")?
        .to_string();
    let partition = who
        .arn()
        .and_then(|a| a.split(':').nth(1))
        .unwrap_or("aws")
        .to_string();
    Ok(Connection {
        clients,
        account,
        partition,
    })
}
