//! `iam-policy`: the IAM policy a verb needs on one environment, derived from its graph
//! ([`crate::policy`]): printed as JSON, filled in for an account (given, or the caller's).

use std::sync::Arc;

use serde_json::{json, Value};

use super::{EnvArgs, Settings};
use crate::model::Inputs;
use crate::output::stdout_line;
use crate::policy::{self, Verb};
use crate::resources::template::{render, Template};
use crate::resources::Scope;
use crate::stack;

/// What `iam-policy` was asked.
pub struct PolicyArgs {
    pub verb: Verb,
    /// The account to fill in; `None`: the caller's (one STS call).
    pub account: Option<String>,
    pub partition: String,
}

pub async fn run(args: &EnvArgs, p: &PolicyArgs, settings: &Settings) -> anyhow::Result<i32> {
    let env = crate::config::load(&args.config_dir, &args.env)?;
    // `up` may delete the scheduled repair (`schedule = "off"`) and `down` always removes
    // it: their policies cover its nodes whatever the config says now.
    let graph = match p.verb {
        Verb::Up | Verb::Down => stack::checked(&env, stack::build_for_down)?,
        _ => stack::checked(&env, stack::build)?,
    };
    let (account, partition) = match &p.account {
        Some(a) => (a.clone(), p.partition.clone()),
        None => {
            let target = super::target(&env, settings);
            let (_, _, scope) =
                crate::session::Session::connect(&crate::session::Environment::of(&env), &target)
                    .await?;
            (scope.account, scope.partition)
        }
    };
    let scope = Scope {
        project: env.project.clone(),
        env: env.env.clone(),
        env_full: env.full_name(),
        region: env.region.clone(),
        account,
        partition,
    };
    let nodes = policy::nodes_of(&graph);
    let template = Template(policy::document(p.verb, nodes.iter().copied()));
    let doc = render(&template, &scope, &Inputs::new("iam-policy", &[], true))
        .map_err(|f| anyhow::anyhow!("filling in the policy: {f}"))?;
    let documents = policy::split(&doc, policy::MANAGED_POLICY_LIMIT);
    let unscoped: serde_json::Map<String, Value> = policy::unscoped(p.verb, nodes.iter().copied())
        .into_iter()
        .map(|(action, why)| (action.to_string(), Value::from(why)))
        .collect();
    if settings.format == crate::output::Format::Json {
        let named: Vec<Value> = documents
            .iter()
            .enumerate()
            .map(|(i, d)| {
                json!({
                    "name": format!("{}-{}-{}", scope.env_full, p.verb.name(), i + 1),
                    "size": policy::size(d),
                    "document": d,
                })
            })
            .collect();
        stdout_line(
            &json!({
                "event": "iam_policy",
                "environment": scope.env_full,
                "verb": p.verb.name(),
                "policies": named,
                "unscoped": unscoped,
            })
            .to_string(),
        );
    } else {
        // One document when it fits in a managed policy; else a list, one per policy.
        let out = if documents.len() == 1 {
            documents[0].clone()
        } else {
            Value::Array(documents.clone())
        };
        stdout_line(&serde_json::to_string_pretty(&out)?);
        let reporter = Arc::new(crate::output::Reporter::new(settings.format));
        if documents.len() > 1 {
            crate::model::Events::note(
                &*reporter,
                &format!(
                    "over IAM's {} characters for one managed policy: {} documents, attach each",
                    policy::MANAGED_POLICY_LIMIT,
                    documents.len()
                ),
            );
        }
    }
    Ok(crate::error::exit::OK)
}
