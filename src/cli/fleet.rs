//! `status --all`: every environment in the account and region, from any directory and
//! without env files: found by their state buckets (`<project>-<env>-state-<account>`),
//! each read from its applied record (the schedule, its mode and time zone) and its newest
//! run report. The next run is computed here from the expression and time zone (Scheduler
//! does not return it; a `rate()` counts from the schedule's creation, one GetSchedule).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::Settings;
use crate::aws::errors::{OrAbsent, Required};
use crate::aws::{Clients, Target};
use crate::config::schedule::{next_run, Expression};
use crate::error::exit;
use crate::output::{stdout_line, Format};
use crate::resources::schedule_group::group_name;

/// One environment as the fleet view shows it.
struct Row {
    environment: String,
    region: Option<String>,
    schedule: Option<String>,
    timezone: String,
    mode: Option<String>,
    next_run: Option<DateTime<Utc>>,
    last: Option<crate::history::RunEntry>,
    /// Why it could not be read, when it could not.
    problem: Option<String>,
}

pub async fn run(region: Option<String>, settings: &Settings) -> anyhow::Result<i32> {
    let region = region
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| anyhow::anyhow!("status --all needs a region: --region, or AWS_REGION"))?;
    if !crate::config::valid_region(&region) {
        anyhow::bail!("--region `{region}`: not an AWS region name (e.g. `eu-west-1`)");
    }
    let target = Target {
        region: region.clone(),
        file_endpoint: None,
        effective_endpoint: settings.endpoint_env.clone(),
    };
    let aws = Clients::load(&target).await;
    let who = aws
        .sts
        .get_caller_identity()
        .send()
        .await
        .map_err(crate::error::Failure::from)?;
    let account = who.account().required("account id")?.to_string();
    let suffix = format!("-{}-{account}", crate::stack::STATE_BUCKET_SUFFIX);
    let buckets = aws
        .s3
        .list_buckets()
        .bucket_region(&region)
        .send()
        .await
        .map_err(crate::error::Failure::from)?;
    let now = Utc::now();
    let mut rows = Vec::new();
    for name in buckets.buckets().iter().filter_map(|b| b.name()) {
        let Some(env_full) = name.strip_suffix(&suffix) else {
            continue;
        };
        let row = environment(&aws, name, env_full, &account, now).await;
        // Another region's environments are not this region's fleet.
        if row.region.as_deref().is_some_and(|r| r != region) {
            continue;
        }
        rows.push(row);
    }
    rows.sort_by(|a, b| a.environment.cmp(&b.environment));
    show(&rows, &account, &region, settings.format);
    Ok(if rows.iter().any(|r| r.problem.is_some()) {
        exit::ERROR
    } else {
        exit::OK
    })
}

async fn environment(
    aws: &Clients,
    bucket: &str,
    env_full: &str,
    account: &str,
    now: DateTime<Utc>,
) -> Row {
    let mut row = Row {
        environment: env_full.to_string(),
        region: None,
        schedule: None,
        timezone: "UTC".into(),
        mode: None,
        next_run: None,
        last: None,
        problem: None,
    };
    let record = crate::record::read_object(
        &aws.s3,
        bucket,
        crate::record::KEY,
        Some(account),
        "the applied record",
    )
    .await;
    match record {
        Ok(Some((bytes, _))) => match crate::record::parse(&bytes, env_full) {
            Ok(record) => {
                if let Some(applied) = record.applied {
                    row.region = Some(applied.region.clone());
                    row.schedule = applied.repair.schedule.clone();
                    row.timezone = applied.repair.timezone.clone();
                    row.mode = Some(applied.repair.mode.verb().to_string());
                }
            }
            Err(e) => row.problem = Some(format!("s3://{bucket}/{}: {e}", crate::record::KEY)),
        },
        Ok(None) => {}
        Err(e) => row.problem = Some(e.to_string()),
    }
    match crate::history::latest(&aws.s3, bucket, 1).await {
        Ok(mut runs) => row.last = runs.pop(),
        Err(e) => row.problem = row.problem.or(Some(e.to_string())),
    }
    if let Some(expr) = row
        .schedule
        .as_deref()
        .and_then(|s| Expression::parse(s).ok())
    {
        let created = match expr {
            Expression::Rate { .. } => created(aws, env_full).await,
            Expression::Cron(_) => None,
        };
        row.next_run = next_run(&expr, &row.timezone, created, now);
    }
    row
}

/// When the environment's schedule was made (a `rate()` counts from it).
async fn created(aws: &Clients, env_full: &str) -> Option<DateTime<Utc>> {
    let out = aws
        .scheduler
        .get_schedule()
        .group_name(group_name(env_full, crate::stack::SCHEDULE_GROUP_SUFFIX))
        .name(format!("{env_full}-{}", crate::stack::SCHEDULE_SUFFIX))
        .send()
        .await
        .or_absent()
        .ok()
        .flatten()?;
    DateTime::from_timestamp(out.creation_date()?.secs(), 0)
}

fn last_json(r: &crate::history::RunEntry) -> Value {
    json!({
        "command": r.command,
        "finished": r.finished,
        "result": r.result,
        "changed": r.changed(),
        "scheduled": r.scheduled,
    })
}

fn show(rows: &[Row], account: &str, region: &str, format: Format) {
    if format == Format::Json {
        let envs: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "environment": r.environment,
                    "region": r.region,
                    "schedule": r.schedule,
                    "timezone": r.timezone,
                    "mode": r.mode,
                    "next_run": r.next_run.map(|t| t.to_rfc3339()),
                    "last_run": r.last.as_ref().map(last_json),
                    "problem": r.problem,
                })
            })
            .collect();
        stdout_line(
            &json!({"event": "fleet", "account": account, "region": region, "environments": envs})
                .to_string(),
        );
        return;
    }
    stdout_line(&format!(
        "{} environment(s) in {account} {region}",
        rows.len()
    ));
    for r in rows {
        let last = match &r.last {
            None => "no run recorded".to_string(),
            Some(l) => {
                let what = match &l.scheduled {
                    Some(s) => format!(
                        "{}: {} drifted, {} put back",
                        s.verdict,
                        s.drifted.len(),
                        s.put_back.len()
                    ),
                    None => format!("{} changed", l.changed()),
                };
                format!("{} {} at {} ({what})", l.command, l.result, l.finished)
            }
        };
        let schedule = match (&r.schedule, &r.mode) {
            (Some(s), Some(m)) => format!(
                "{m} {s} {}, next {}",
                r.timezone,
                r.next_run
                    .map(|t| t.format("%Y-%m-%dT%H:%MZ").to_string())
                    .unwrap_or_else(|| "unknown".into())
            ),
            _ => "no schedule".into(),
        };
        stdout_line(&format!("  {:<24} last: {last}; {schedule}", r.environment));
        if let Some(p) = &r.problem {
            stdout_line(&format!("  {:<24} could not be read: {p}", ""));
        }
    }
}
