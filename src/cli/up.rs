//! `up`: observe everything, stop if a resource the environment only looks up is missing,
//! converge, record what was applied, report.

use super::{EnvArgs, RunArgs, Settings};
use crate::error::exit;
use crate::model::{Action, Events, RunFlags};
use crate::stack::STATE_BUCKET;

pub async fn run(args: &EnvArgs, run: &RunArgs, settings: &Settings) -> anyhow::Result<i32> {
    let s = super::open(
        "up",
        args,
        settings,
        RunFlags::default(),
        usize::from(run.parallelism),
        |env, nodes| {
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
    let (mut observations, mut loaded) = s.observe().await;

    // A lookup-only resource (the hosted zone) that is missing stops `up` before it creates
    // anything: everything after it would fail or be half-built.
    let preview = s.preview(&observations);
    let missing: Vec<String> = preview
        .iter()
        .zip(s.graph.nodes())
        .filter_map(|(p, node)| match p {
            Some(Ok(p)) => match &p.action {
                Action::Missing { message } => Some(format!("{}: {message}", node.id)),
                _ => None,
            },
            _ => None,
        })
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "{} cannot be built, nothing was changed:\n  - {}",
            s.env.full_name(),
            missing.join("\n  - ")
        );
    }

    // Something to do: one run at a time; a run that waited for another looks again.
    let to_do = preview.iter().any(|p| {
        !matches!(
            p,
            Some(Ok(crate::model::NodePlan {
                action: Action::Unchanged,
                ..
            }))
        )
    });
    let bucket_was_absent = s
        .graph
        .index_of(STATE_BUCKET)
        .is_some_and(|ix| matches!(observations[ix], Ok(None)));
    let held = if to_do {
        let held = s.lock("up", run.lock.timeout(), true).await?;
        let made_only_the_bucket = held.created_bucket
            && bucket_was_absent
            && !held.waited
            && s.observe_node_again(&mut observations, STATE_BUCKET).await;
        if (held.waited || held.created_bucket) && !made_only_the_bucket {
            (observations, loaded) = s.observe_again().await;
        }
        Some(held)
    } else {
        None
    };

    let n = s.graph.len();
    let cancel = match &held {
        Some(h) => h.cancel.clone(),
        None => super::cancel_on_ctrl_c(),
    };
    let mut report = s
        .apply(s.graph.clone(), observations, vec![true; n], cancel)
        .await;
    if held.as_ref().is_some_and(|h| h.created_bucket) {
        s.made_state_bucket(&mut report);
    }
    s.store_record(&report, &loaded).await;
    if let Some(held) = held {
        s.finish(held, &report).await;
    }
    let outputs = s.outputs_of(&report);
    if loaded.note.is_some() && report.failed() == 0 {
        s.reporter.note(&format!(
            "the applied record s3://{}/{} now holds this run's specs",
            crate::record::location(&s.cx.scope).0,
            crate::record::KEY
        ));
    }
    s.reporter.run_finished(
        "up",
        &s.env.full_name(),
        &report,
        &s.cx.aws.calls.summary(),
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
