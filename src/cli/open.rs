//! Opening a command's session: the environment file loaded and validated, its graph built
//! (and, with `--only`, limited) before the first AWS call, the confirmation asked, then the
//! connection, the zones and the announcement.

use std::sync::Arc;

use super::{EnvArgs, Settings};
use crate::aws::Target;
use crate::config::EnvConfig;
use crate::model::{Events, RunFlags};
use crate::output::Reporter;
use crate::session::Session;
use crate::stack;
use crate::stack::select::{select, Reach};

/// Where the clients point: the file's region; its endpoint unless AWS_ENDPOINT_URL is set.
pub(super) fn target(env: &EnvConfig, settings: &Settings) -> Target {
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

/// What a run is about to act on, for a confirmation.
pub struct Acting {
    /// Nodes in the run's graph.
    pub nodes: usize,
    /// With `--only`: those nodes' ids (the selection and what it reaches).
    pub only: Option<Vec<String>>,
}

/// Loads and validates the environment (no AWS call yet), builds its graph, announces the
/// run and connects.
pub(super) async fn open(
    verb: &str,
    args: &EnvArgs,
    settings: &Settings,
    flags: RunFlags,
    parallelism: usize,
    confirm_first: impl FnOnce(&EnvConfig, &Acting) -> anyhow::Result<()>,
) -> anyhow::Result<Session> {
    open_only(verb, args, &[], settings, flags, parallelism, confirm_first).await
}

/// [`open`], limited to the `--only` selection `only` (all of it when empty).
pub(super) async fn open_only(
    verb: &str,
    args: &EnvArgs,
    only: &[String],
    settings: &Settings,
    flags: RunFlags,
    parallelism: usize,
    confirm_first: impl FnOnce(&EnvConfig, &Acting) -> anyhow::Result<()>,
) -> anyhow::Result<Session> {
    let mut env = crate::config::load(&args.config_dir, &args.env)?;
    let reach = if verb == "down" {
        Reach::Dependents
    } else {
        Reach::Dependencies
    };
    // Everything that can refuse the run does so before the first AWS call: the graph is
    // built (and refused) with the zones' provisional names, then again once they are known.
    let build = |env: &EnvConfig| -> anyhow::Result<_> {
        // `down` removes the scheduled repair whatever the config says now; the other verbs
        // look at it, when the config has none, only to let `up` delete it.
        let graph = if verb == "down" {
            stack::checked(env, stack::build_for_down)?
        } else {
            stack::checked(env, stack::build)?
        };
        let retired = (verb != "down")
            .then(|| stack::retired(env).map(Arc::new))
            .flatten();
        let selection = if only.is_empty() {
            None
        } else {
            Some(select(&graph, only, reach).map_err(|e| anyhow::anyhow!("{e}"))?)
        };
        Ok((graph, retired, selection))
    };
    let (mut graph, mut retired, mut selection) = build(&env)?;
    let acting = Acting {
        nodes: selection.as_ref().map_or(graph.len(), |s| s.reach.len()),
        only: selection.as_ref().map(|s| {
            graph
                .nodes()
                .iter()
                .filter(|n| s.reach.contains(&n.id))
                .map(|n| n.id.clone())
                .collect()
        }),
    };
    confirm_first(&env, &acting)?;
    let target = target(&env, settings);
    let connected = Session::connect(&crate::session::Environment::of(&env), &target).await?;
    // Zones the file does not name: the ones it was built in, else looked up. `down` deletes
    // by tags whatever the zones are: a lookup that fails (too few zones in the region, a
    // denied read) leaves it the provisional names, with a warning, never stops it.
    // `history`, `status` and `unlock` need no zones at all.
    let preloaded = match verb {
        "history" | "status" | "unlock" => None,
        _ => match crate::session::zones::resolve(&mut env, &connected.0, &connected.2).await {
            Err(e) if verb == "down" => {
                eprintln!("warning: {e:#}; down deletes by tags and goes on");
                None
            }
            other => other?,
        },
    };
    if preloaded.is_some() {
        (graph, retired, selection) = build(&env)?;
    }
    let reporter = Arc::new(Reporter::new(settings.format));
    reporter.run_started(
        verb,
        &env.full_name(),
        &env.region,
        target.effective_endpoint.as_deref(),
        selection.as_ref().map_or(graph.len(), |s| s.reach.len()),
    );
    let mut session = Session::assemble(
        connected,
        crate::session::Environment::of(&env),
        graph,
        flags,
        parallelism,
        reporter.clone(),
    );
    session.retired = retired;
    session.preloaded = std::sync::Mutex::new(preloaded);
    if let Some(selection) = selection {
        let reached: Vec<String> = session
            .graph
            .nodes()
            .iter()
            .filter(|n| selection.reach.contains(&n.id) && !selection.chosen.contains(&n.id))
            .map(|n| n.id.clone())
            .collect();
        let chosen: Vec<&str> = session
            .graph
            .nodes()
            .iter()
            .filter(|n| selection.chosen.contains(&n.id))
            .map(|n| n.id.as_str())
            .collect();
        let how = match (verb, reached.is_empty()) {
            (_, true) => String::new(),
            ("down", false) => format!("; and what stands on it: {}", reached.join(", ")),
            ("up", false) => format!("; and what it stands on: {}", reached.join(", ")),
            (_, false) => format!("; reading what it stands on: {}", reached.join(", ")),
        };
        reporter.note(&format!(
            "--only {}: {verb} {} {}{how}",
            only.join(","),
            if verb == "down" { "removes" } else { "covers" },
            chosen.join(", ")
        ));
        session.restrict(selection);
    }
    Ok(session)
}
