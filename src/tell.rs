//! What a scheduled run tells people: CloudWatch metrics for its environment on every run
//! (the alarms `up` builds watch them), and one message to the environment's alerts topic
//! when it found drift, put something back, left drift or failed. A clean run sends no
//! message. Telling is not a write: it changes no resource and no record.

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};

use crate::aws::Clients;
use crate::config::RepairMode;
use crate::error::Failure;
use crate::resources::Scope;

/// The metrics' namespace.
pub const NAMESPACE: &str = "TapProvision";
/// The one dimension: the environment's full name.
pub const DIMENSION: &str = "Environment";
/// The alerts topic's name suffix (`<project>-<env>-alerts`), as the alerting layer names it.
pub const ALERTS_TOPIC_SUFFIX: &str = "alerts";

/// How a scheduled run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing drifted.
    Clean,
    /// Everything that drifted was put back.
    PutBack,
    /// Some drift remained (left to `up`, or not put back).
    DriftRemains,
    /// Detect mode found drift; nothing was written.
    Detected,
    /// Another run held the lock: nothing was done.
    Skipped(String),
    /// It could not run or finish: why, and what to do.
    Failed(String),
}

impl Verdict {
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Clean => "clean",
            Verdict::PutBack => "put back",
            Verdict::DriftRemains => "drift remains",
            Verdict::Detected => "drift detected",
            Verdict::Skipped(_) => "skipped",
            Verdict::Failed(_) => "failed",
        }
    }
}

/// One scheduled run, as told.
#[derive(Debug, Clone)]
pub struct Told {
    pub mode: RepairMode,
    pub verdict: Verdict,
    /// Each drifted node and what drifted on it (no secret value).
    pub drifted: Vec<(String, String)>,
    pub put_back: Vec<String>,
    pub remaining: Vec<String>,
    /// Where its run report is (`s3://…`), when it was stored.
    pub report: Option<String>,
}

impl Told {
    /// True when people should hear of it (anything but a clean or skipped run).
    pub fn worth_a_message(&self) -> bool {
        !matches!(self.verdict, Verdict::Clean | Verdict::Skipped(_))
            || !self.drifted.is_empty()
            || !self.remaining.is_empty()
    }

    /// The message's subject (SNS: at most 100 printable ASCII characters).
    pub fn subject(&self, env_full: &str) -> String {
        let what = match &self.verdict {
            Verdict::Failed(_) => "failed".to_string(),
            Verdict::Detected => format!("{} drifted (detect mode)", self.drifted.len()),
            _ => format!(
                "{} drifted, {} put back, {} remain",
                self.drifted.len(),
                self.put_back.len(),
                self.remaining.len()
            ),
        };
        let mut s: String = format!("{env_full}: scheduled {}: {what}", self.mode.verb())
            .chars()
            .filter(|c| c.is_ascii() && !c.is_ascii_control())
            .collect();
        s.truncate(100);
        s
    }

    /// The message's body.
    pub fn body(&self, env_full: &str, region: &str) -> String {
        let mut out = vec![format!(
            "{env_full} ({region}): scheduled {} run: {}.",
            self.mode.verb(),
            self.verdict.label()
        )];
        if let Verdict::Failed(why) | Verdict::Skipped(why) = &self.verdict {
            out.push(why.clone());
        }
        let list = |title: &str, items: Vec<String>| -> Vec<String> {
            if items.is_empty() {
                return Vec::new();
            }
            let mut v = vec![format!("{title}:")];
            v.extend(items.into_iter().map(|i| format!("  - {i}")));
            v
        };
        out.extend(list(
            "Drifted",
            self.drifted
                .iter()
                .map(|(n, what)| format!("{n}: {what}"))
                .collect(),
        ));
        out.extend(list("Put back", self.put_back.clone()));
        out.extend(list("Remaining", self.remaining.clone()));
        if let Some(report) = &self.report {
            out.push(format!("Run report: {report}"));
        }
        out.join("\n")
    }

    /// The metrics: counts, a failure flag, a heartbeat, and a success for the dead man's
    /// switch (a skipped or failed run is not one).
    pub fn metrics(&self) -> [(&'static str, f64); 6] {
        let failed = matches!(self.verdict, Verdict::Failed(_));
        let succeeded = !failed && !matches!(self.verdict, Verdict::Skipped(_));
        [
            ("Drifted", self.drifted.len() as f64),
            ("Repaired", self.put_back.len() as f64),
            ("Remaining", self.remaining.len() as f64),
            ("Failed", f64::from(u8::from(failed))),
            ("Succeeded", f64::from(u8::from(succeeded))),
            ("Heartbeat", 1.0),
        ]
    }
}

/// The alerts topic's ARN, from its name.
pub fn topic_arn(scope: &Scope) -> String {
    scope.arn("sns", &format!("{}-{ALERTS_TOPIC_SUFFIX}", scope.env_full))
}

/// Sends the metrics and, when worth it, the message. Returns what could not be told (the
/// run's exit code stays the run's own: a missing heartbeat is what the alarm watches).
pub async fn tell(aws: &Clients, scope: &Scope, told: &Told) -> Vec<String> {
    let mut problems = Vec::new();
    let env = &scope.env_full;
    let dimension = Dimension::builder().name(DIMENSION).value(env).build();
    let data: Vec<MetricDatum> = told
        .metrics()
        .into_iter()
        .map(|(name, value)| {
            MetricDatum::builder()
                .metric_name(name)
                .dimensions(dimension.clone())
                .value(value)
                .unit(StandardUnit::Count)
                .build()
        })
        .collect();
    if let Err(e) = aws
        .cloudwatch
        .put_metric_data()
        .namespace(NAMESPACE)
        .set_metric_data(Some(data))
        .send()
        .await
    {
        problems.push(format!(
            "{}; the run's metrics were not sent",
            Failure::from(e).context("sending the run's metrics to CloudWatch")
        ));
    }
    if told.worth_a_message() {
        let topic = topic_arn(scope);
        if let Err(e) = aws
            .sns
            .publish()
            .topic_arn(&topic)
            .subject(told.subject(env))
            .message(told.body(env, &scope.region))
            .send()
            .await
        {
            problems.push(format!(
                "{}; nobody was told of this run by message",
                Failure::from(e).context(format!("publishing to {topic}"))
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn told(verdict: Verdict, drifted: usize, put_back: usize, remaining: usize) -> Told {
        Told {
            mode: RepairMode::Repair,
            verdict,
            drifted: (0..drifted)
                .map(|i| (format!("n{i}"), "ingress: extra tcp/22".into()))
                .collect(),
            put_back: (0..put_back).map(|i| format!("n{i}")).collect(),
            remaining: (0..remaining).map(|i| format!("r{i}")).collect(),
            report: Some("s3://b/tap-provision/runs/x.json".into()),
        }
    }

    #[test]
    fn a_clean_or_skipped_run_sends_no_message_every_other_does() {
        assert!(!told(Verdict::Clean, 0, 0, 0).worth_a_message());
        assert!(!told(Verdict::Skipped("held".into()), 0, 0, 0).worth_a_message());
        assert!(told(Verdict::PutBack, 2, 2, 0).worth_a_message());
        assert!(told(Verdict::DriftRemains, 2, 1, 1).worth_a_message());
        assert!(told(Verdict::Failed("denied".into()), 0, 0, 0).worth_a_message());
        let t = told(Verdict::PutBack, 2, 2, 0);
        assert_eq!(
            t.subject("tap-prod"),
            "tap-prod: scheduled repair: 2 drifted, 2 put back, 0 remain"
        );
        let body = t.body("tap-prod", "eu-west-1");
        assert!(body.contains("  - n0: ingress: extra tcp/22"), "{body}");
        assert!(body.contains("Run report: s3://b/"), "{body}");
    }

    #[test]
    fn only_a_run_that_did_its_job_counts_as_a_success() {
        let value = |t: &Told, name: &str| t.metrics().iter().find(|(n, _)| *n == name).unwrap().1;
        for (verdict, succeeded, failed) in [
            (Verdict::Clean, 1.0, 0.0),
            (Verdict::DriftRemains, 1.0, 0.0),
            (Verdict::Skipped("held".into()), 0.0, 0.0),
            (Verdict::Failed("x".into()), 0.0, 1.0),
        ] {
            let t = told(verdict, 0, 0, 0);
            assert_eq!(value(&t, "Succeeded"), succeeded, "{:?}", t.verdict);
            assert_eq!(value(&t, "Failed"), failed, "{:?}", t.verdict);
            assert_eq!(value(&t, "Heartbeat"), 1.0);
        }
    }
}
