//! Command-line parsing and the thin subcommands. Raw arguments and the process
//! environment are read here, once, into settings.

mod down;
mod drift;
mod fleet;
mod graph;
mod history;
mod iam_policy;
mod open;
mod plan;
mod repair;
mod status;
mod unlock;
mod up;
mod validate;

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::aws::Target;
use crate::model::RunFlags;
use crate::output::{Format, Reporter};
use open::{open, open_only, target};

#[derive(Debug, Parser)]
#[command(
    name = "tap-provision",
    version,
    about = "Builds, checks and repairs the AWS infrastructure of the TAP payment platform",
    long_about = "Builds, checks and repairs the AWS infrastructure of the TAP payment platform by calling \
the AWS APIs directly. Live AWS is the only state: resources are found again by their tags.\n\n\
Exit codes: 0 success or no changes, 1 error, 2 changes or drift present (plan, drift), \
3 drift remained after repair, 4 another run holds the environment's lock, 130 interrupted."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Print one JSON object per line on stdout (events and the result), nothing else there
    #[arg(long, global = true)]
    pub json: bool,

    /// Print progress as plain lines even on a terminal (no live view, no colour)
    #[arg(long, global = true)]
    pub plain: bool,

    /// More log detail on stderr (-v: info, -vv: debug); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Args, Clone)]
pub struct EnvArgs {
    /// Environment name: reads <config-dir>/<env>.toml
    #[arg(short, long, value_name = "NAME")]
    pub env: String,

    /// Directory holding the environment files
    #[arg(long, value_name = "DIR", default_value = "config")]
    pub config_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Most nodes issuing AWS calls at once (readiness waits do not count)
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallelism: u16,

    /// Do not ask for confirmation
    #[arg(short, long)]
    pub yes: bool,

    #[command(flatten)]
    pub lock: LockArgs,
}

#[derive(Debug, Args, Clone, Copy)]
pub struct LockArgs {
    /// Seconds to wait for the environment's lock while another up, repair or down holds
    /// it, before exiting 4 with the holder named
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub lock_timeout: u64,
}

impl LockArgs {
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.lock_timeout)
    }
}

/// `--only`: part of the environment.
#[derive(Debug, Args, Clone, Default)]
pub struct OnlyArgs {
    /// Only these areas (encryption, network, certificates, database, backups, compute,
    /// load-balancing, static-assets, dns, alerting, scheduled-repair, state) or node ids,
    /// comma-separated (`graph --areas` lists each area's nodes). `up` takes what they stand
    /// on too, `down` what stands on them; `plan`, `drift` and `repair` read what they need
    /// and report and act on them alone. The state bucket (the lock) always comes along
    #[arg(long, value_name = "NAME[,NAME]", value_delimiter = ',')]
    pub only: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build or converge the environment; a converged environment is left untouched
    Up {
        #[command(flatten)]
        env: EnvArgs,
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        only: OnlyArgs,
    },
    /// Remove the environment in reverse dependency order, keeping data unless told otherwise
    Down {
        #[command(flatten)]
        env: EnvArgs,
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        only: OnlyArgs,
        /// Also destroy data: no final DB snapshot, delete the backup vault and its recovery
        /// points, schedule the KMS key's deletion (after encryption.key_deletion_window_days)
        #[arg(long)]
        destroy_data: bool,
        /// Turn off deletion protection (the Aurora cluster) before deleting; without it a
        /// protected resource stops `down` before anything is deleted
        #[arg(long)]
        disable_protection: bool,
        /// The environment's name, which --destroy-data on a `protected` environment needs
        /// (or typed at the prompt), --yes or not
        #[arg(long, value_name = "NAME")]
        confirm: Option<String>,
    },
    /// Show what `up` would do to each resource, without changing anything; exit 2 when
    /// there is something to do
    Plan {
        #[command(flatten)]
        env: EnvArgs,
        #[command(flatten)]
        only: OnlyArgs,
    },
    /// Report what changed in AWS outside tap-provision since it last applied (config edits
    /// not applied yet are listed apart, as pending); exit 2 when something drifted
    Drift {
        #[command(flatten)]
        env: EnvArgs,
        #[command(flatten)]
        scheduled: ScheduledArgs,
        #[command(flatten)]
        only: OnlyArgs,
    },
    /// Put back exactly what drifted (never a pending config edit), then check again; exit 3
    /// when drift remains. Never prompts
    Repair {
        #[command(flatten)]
        env: EnvArgs,
        /// Most nodes issuing AWS calls at once (readiness waits do not count)
        #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=64))]
        parallelism: u16,
        #[command(flatten)]
        lock: LockArgs,
        #[command(flatten)]
        scheduled: ScheduledArgs,
        #[command(flatten)]
        only: OnlyArgs,
    },
    /// List the latest runs that changed the environment (up, repair, down), from the run
    /// history in its state bucket
    History {
        #[command(flatten)]
        env: EnvArgs,
        /// How many runs, newest first
        #[arg(long, value_name = "N", default_value_t = 10)]
        limit: usize,
    },
    /// Remove the environment's lock left by a run that is gone (needs --force); prints who
    /// held it
    Unlock {
        #[command(flatten)]
        env: EnvArgs,
        /// Remove it even though a run may still hold it
        #[arg(long)]
        force: bool,
    },
    /// Print the IAM policy a verb needs on this environment, derived from its graph: each
    /// action scoped to the environment's names or its `tap:environment` tag (`*` only where
    /// AWS has no resource-level permission; --json lists why). Split into several documents
    /// when over IAM's managed policy size
    IamPolicy {
        #[command(flatten)]
        env: EnvArgs,
        /// The verb: drift, repair, up or down
        #[arg(long = "for", value_name = "VERB", value_parser = ["drift", "repair", "up", "down"])]
        verb: String,
        /// The account to fill in (no AWS call); default: the caller's, from STS
        #[arg(long, value_name = "ID")]
        account: Option<String>,
        /// The partition with --account (`aws`, `aws-cn`, `aws-us-gov`)
        #[arg(long, value_name = "NAME", default_value = "aws")]
        partition: String,
        /// The policy of the scheduled run (drift or repair): its task role's, without the
        /// scheduled repair's own resources, with the metrics and the alerts topic
        #[arg(long)]
        scheduled: bool,
    },
    /// Show the outputs (URLs, endpoints, the DB secret's ARN, never its value) and the state
    /// of each resource
    /// With --all: every environment in the account and region (no env file), its last run,
    /// schedule and next run
    Status {
        /// Environment name: reads <config-dir>/<env>.toml
        #[arg(short, long, value_name = "NAME", required_unless_present = "all")]
        env: Option<String>,
        /// Directory holding the environment files
        #[arg(long, value_name = "DIR", default_value = "config")]
        config_dir: PathBuf,
        /// Every environment in the account and region, found by their state buckets:
        /// last run (command, when, result, what drifted and was put back), schedule, mode
        /// and next run
        #[arg(long, conflicts_with = "env")]
        all: bool,
        /// The region with --all (default: AWS_REGION)
        #[arg(long, value_name = "REGION", requires = "all")]
        region: Option<String>,
    },
    /// Check the environment file offline; makes no AWS call
    Validate {
        #[command(flatten)]
        env: EnvArgs,
    },
    /// Print the step graph: solid edges need identifiers, dashed edges readiness
    Graph {
        #[command(flatten)]
        env: EnvArgs,
        /// Output format
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
        /// Each area (what `--only` takes) with its nodes, in place of the graph
        #[arg(long, conflicts_with = "only")]
        areas: bool,
        #[command(flatten)]
        only: OnlyArgs,
    },
}

/// How the schedule runs `repair` (or `drift` in detect mode): from the applied record.
#[derive(Debug, Args, Clone)]
pub struct ScheduledArgs {
    /// Run as the schedule does, unattended: from what `up` last applied (the applied
    /// record), with no env file; skip at once when another run holds the lock (exit 4);
    /// store a report of every run, send CloudWatch metrics, and tell the alerts topic when
    /// something drifted, was put back, remained or failed. The record's mode decides
    /// between repair and detect. Needs --project and --region
    #[arg(long)]
    pub scheduled: bool,
    /// The environment's project (with --scheduled)
    #[arg(long, value_name = "NAME")]
    pub project: Option<String>,
    /// The environment's region (with --scheduled)
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
}

impl ScheduledArgs {
    /// `--project` and `--region` mean nothing without `--scheduled`.
    fn refuse_alone(&self) -> anyhow::Result<()> {
        if self.project.is_some() || self.region.is_some() {
            anyhow::bail!(
                "--project and --region go with --scheduled (a run from the applied record); without it the env file gives them"
            );
        }
        Ok(())
    }
}

/// The scheduled command: checks its arguments before any AWS call, then
/// [`crate::verbs::scheduled`].
async fn run_scheduled(
    args: &EnvArgs,
    scheduled: &ScheduledArgs,
    parallelism: usize,
    settings: &Settings,
) -> anyhow::Result<i32> {
    let (Some(project), Some(region)) = (&scheduled.project, &scheduled.region) else {
        anyhow::bail!("--scheduled needs --project and --region: it reads no env file");
    };
    let mut problems = Vec::new();
    if !crate::config::valid_project(project) {
        problems.push(format!(
            "--project `{project}`: use 1-12 lowercase letters, digits or `-`"
        ));
    }
    if !crate::config::valid_region(region) {
        problems.push(format!(
            "--region `{region}`: not an AWS region name (e.g. `eu-west-1`)"
        ));
    }
    if !crate::config::valid_env_name(&args.env) {
        problems.push(format!(
            "--env `{}`: use 1-20 lowercase letters, digits or `-`",
            args.env
        ));
    }
    if !problems.is_empty() {
        anyhow::bail!("nothing was run:\n  - {}", problems.join("\n  - "));
    }
    let target = Target {
        region: region.clone(),
        file_endpoint: None,
        effective_endpoint: settings.endpoint_env.clone(),
    };
    let reporter = Arc::new(Reporter::new(settings.format));
    let env_full = format!("{project}-{}", args.env);
    reporter.run_started(
        "scheduled",
        &env_full,
        region,
        target.effective_endpoint.as_deref(),
        0,
    );
    crate::verbs::scheduled::run(
        crate::verbs::scheduled::Scheduled {
            project: project.clone(),
            env: args.env.clone(),
            region: region.clone(),
        },
        &target,
        parallelism,
        reporter,
    )
    .await
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

/// Everything resolved from arguments and the process environment.
pub struct Settings {
    pub format: Format,
    /// Standard input and standard error are a terminal: prompts and live progress allowed.
    pub interactive: bool,
    /// `AWS_ENDPOINT_URL`, which wins over the environment file's `endpoint`.
    pub endpoint_env: Option<String>,
}

impl Settings {
    fn resolve(cli: &Cli) -> Settings {
        let stderr_tty = std::io::stderr().is_terminal();
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        let format = if cli.json {
            Format::Json
        } else if cli.plain || !stderr_tty || dumb {
            Format::Plain
        } else {
            Format::Human
        };
        Settings {
            format,
            interactive: stderr_tty && std::io::stdin().is_terminal(),
            endpoint_env: std::env::var("AWS_ENDPOINT_URL")
                .ok()
                .filter(|s| !s.is_empty()),
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "tap_provision=info",
        _ => "tap_provision=debug,aws_smithy_runtime=debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Parses the arguments, runs the command and returns the exit code.
pub fn main() -> anyhow::Result<i32> {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    crate::timing::from_env().map_err(anyhow::Error::msg)?;
    let settings = Settings::resolve(&cli);
    let result = dispatch(cli.command, &settings);
    // A script reading `--json` sees why the command stopped, on stdout with the rest.
    if let (Err(e), Format::Json) = (&result, settings.format) {
        let locked = e.downcast_ref::<crate::error::Locked>().is_some();
        let code = if locked {
            crate::error::exit::LOCKED
        } else {
            crate::error::exit::ERROR
        };
        crate::output::stdout_line(
            &serde_json::json!({"event": "error", "message": format!("{e:#}"), "exit_code": code})
                .to_string(),
        );
    }
    result
}

fn dispatch(command: Command, settings: &Settings) -> anyhow::Result<i32> {
    match command {
        Command::Validate { env } => validate::run(&env, settings),
        Command::Graph {
            env,
            format,
            areas,
            only,
        } => graph::run(&env, format, areas, &only.only),
        Command::Plan { env, only } => runtime()?.block_on(plan::run(&env, &only.only, settings)),
        Command::Drift {
            env,
            scheduled,
            only,
        } if scheduled.scheduled => {
            refuse_only_scheduled(&only)?;
            runtime()?.block_on(run_scheduled(&env, &scheduled, 1, settings))
        }
        Command::Drift {
            env,
            scheduled,
            only,
        } => {
            scheduled.refuse_alone()?;
            runtime()?.block_on(drift::run(&env, &only.only, settings))
        }
        Command::Repair {
            env,
            parallelism,
            scheduled,
            only,
            ..
        } if scheduled.scheduled => {
            refuse_only_scheduled(&only)?;
            runtime()?.block_on(run_scheduled(
                &env,
                &scheduled,
                usize::from(parallelism),
                settings,
            ))
        }
        Command::Repair {
            env,
            parallelism,
            lock,
            scheduled,
            only,
        } => {
            scheduled.refuse_alone()?;
            runtime()?.block_on(repair::run(
                &env,
                &only.only,
                usize::from(parallelism),
                lock,
                settings,
            ))
        }
        Command::History { env, limit } => runtime()?.block_on(history::run(&env, limit, settings)),
        Command::Unlock { env, force } => runtime()?.block_on(unlock::run(&env, force, settings)),
        Command::Status {
            env,
            config_dir,
            all,
            region,
        } => match env {
            Some(env) if !all => {
                runtime()?.block_on(status::run(&EnvArgs { env, config_dir }, settings))
            }
            _ => runtime()?.block_on(fleet::run(region, settings)),
        },
        Command::IamPolicy {
            env,
            verb,
            account,
            partition,
            scheduled,
        } => {
            if let Some(a) = &account {
                if a.len() != 12 || !a.chars().all(|c| c.is_ascii_digit()) {
                    anyhow::bail!("--account `{a}`: an AWS account id is 12 digits");
                }
            }
            let verb = crate::policy::Verb::parse(&verb).unwrap_or(crate::policy::Verb::Drift);
            if scheduled
                && !matches!(
                    verb,
                    crate::policy::Verb::Drift | crate::policy::Verb::Repair
                )
            {
                anyhow::bail!("--scheduled goes with --for drift or --for repair: a schedule runs nothing else");
            }
            let p = iam_policy::PolicyArgs {
                verb: if scheduled {
                    verb.scheduled_run()
                } else {
                    verb
                },
                account,
                partition,
            };
            runtime()?.block_on(iam_policy::run(&env, &p, settings))
        }
        Command::Up { env, run, only } => {
            runtime()?.block_on(up::run(&env, &run, &only.only, settings))
        }
        Command::Down {
            env,
            run,
            only,
            destroy_data,
            disable_protection,
            confirm,
        } => runtime()?.block_on(down::run(
            &env,
            &run,
            &only.only,
            RunFlags {
                destroy_data,
                disable_protection,
            },
            confirm.as_deref(),
            settings,
        )),
    }
}

/// A scheduled run covers the whole environment, as recorded: `--only` is for people.
fn refuse_only_scheduled(only: &OnlyArgs) -> anyhow::Result<()> {
    if only.only.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "--only {} with --scheduled: a scheduled run covers the whole environment as last applied; run `drift` or `repair --only` without --scheduled",
        only.only.join(",")
    )
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Asks for the environment's name on a terminal; true when it was typed.
fn confirm(prompt: &str, expected: &str) -> anyhow::Result<bool> {
    let mut err = std::io::stderr().lock();
    write!(err, "{prompt}")?;
    err.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == expected)
}
