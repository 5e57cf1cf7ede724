//! The reporter: every event of a run goes here and comes out in one of three forms.
//! Human (a terminal): live spinners for running nodes with elapsed time, on stderr.
//! Plain (a pipe, CI): one line per event on stderr. JSON: one object per line on stdout,
//! each with an `event` field. Results go to stdout in every form.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};

use crate::aws::calls::CallSummary;
use crate::executor::RunReport;
use crate::resources::aurora_cluster::DatabaseStatus;
use crate::resources::{Ids, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Plain,
    Json,
}

pub struct Reporter {
    format: Format,
    start: std::time::Instant,
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
    /// Notes, repeated in the summary so where kept data is does not scroll away.
    notes: Mutex<Vec<String>>,
}

/// Writes one line to stdout; a closed pipe is not an error worth failing a run for.
pub fn stdout_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

fn stderr_line(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

impl Reporter {
    pub fn new(format: Format) -> Reporter {
        let multi = (format == Format::Human)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Reporter {
            format,
            start: std::time::Instant::now(),
            multi,
            bars: Mutex::new(HashMap::new()),
            notes: Mutex::new(Vec::new()),
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    fn json(&self, v: Value) {
        stdout_line(&v.to_string());
    }

    fn line(&self, text: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(text);
            }
            None => stderr_line(text),
        }
    }

    fn stamp(&self) -> String {
        format!("[{:>6.1}s]", self.start.elapsed().as_secs_f64())
    }

    pub fn run_started(
        &self,
        verb: &str,
        env_full: &str,
        region: &str,
        endpoint: Option<&str>,
        nodes: usize,
    ) {
        match self.format {
            Format::Json => self.json(json!({"event": "run_started", "verb": verb, "environment": env_full, "region": region, "endpoint": endpoint, "nodes": nodes})),
            _ => self.line(&format!(
                "{verb} {env_full}: {nodes} resources in {region}{}",
                endpoint.map(|e| format!(" via {e}")).unwrap_or_default()
            )),
        }
    }

    pub fn node_started(&self, node: &str, kind: &str) {
        match self.format {
            Format::Json => self.json(json!({"event": "node_started", "node": node, "kind": kind})),
            Format::Plain => {}
            Format::Human => {
                if let Some(m) = &self.multi {
                    let bar = m.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} {prefix:<28} {msg} ({elapsed})")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.set_prefix(node.to_string());
                    bar.set_message(format!("{kind}: finding"));
                    bar.enable_steady_tick(Duration::from_millis(120));
                    if let Ok(mut bars) = self.bars.lock() {
                        bars.insert(node.to_string(), bar);
                    }
                }
            }
        }
    }

    /// What a running node is doing now ("creating", "waiting for available (pending, 12s)").
    pub fn node_progress(&self, node: &str, message: &str) {
        match self.format {
            Format::Json => {
                self.json(json!({"event": "node_progress", "node": node, "message": message}))
            }
            Format::Plain => self.line(&format!("{} {node}: {message}", self.stamp())),
            Format::Human => {
                if let Some(bar) = self.bars.lock().ok().and_then(|b| b.get(node).cloned()) {
                    bar.set_message(message.to_string());
                }
            }
        }
    }

    pub fn node_finished(&self, node: &str, kind: &str, outcome: &Outcome, elapsed: Duration) {
        if let Some(bar) = self.bars.lock().ok().and_then(|mut b| b.remove(node)) {
            bar.finish_and_clear();
            if let Some(m) = &self.multi {
                m.remove(&bar);
            }
        }
        if self.format == Format::Json {
            let mut v = json!({"event": "node_finished", "node": node, "kind": kind, "outcome": outcome.label(), "elapsed_ms": elapsed.as_millis() as u64});
            match outcome {
                Outcome::Created(ids) | Outcome::Unchanged(ids) => v["ids"] = json!(ids),
                Outcome::Updated(ids, changes) => {
                    v["ids"] = json!(ids);
                    v["changes"] = json!(changes);
                }
                Outcome::Failed(e) => {
                    v["error"] = json!({"code": e.code(), "step": e.step, "message": e.to_string()})
                }
                Outcome::Skipped(r) | Outcome::Kept(r) => v["reason"] = json!(r),
                Outcome::Deleted | Outcome::Absent => {}
            }
            self.json(v);
            return;
        }
        let detail = match outcome {
            Outcome::Created(ids) | Outcome::Unchanged(ids) => ids.id.clone(),
            Outcome::Updated(ids, changes) => format!(
                "{}: {}",
                ids.id,
                changes
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Outcome::Failed(e) => e.to_string(),
            Outcome::Skipped(r) | Outcome::Kept(r) => r.clone(),
            Outcome::Deleted | Outcome::Absent => String::new(),
        };
        if self.format == Format::Human
            && matches!(outcome, Outcome::Unchanged(_) | Outcome::Absent)
        {
            return; // The summary counts them; the screen shows what changed.
        }
        self.line(&format!(
            "{} {node} ({kind}) {} in {:.1}s{}{}",
            self.stamp(),
            outcome.label(),
            elapsed.as_secs_f64(),
            if detail.is_empty() { "" } else { ": " },
            detail
        ));
    }

    pub fn warn(&self, message: &str) {
        match self.format {
            Format::Json => self.json(json!({"event": "warning", "message": message})),
            _ => self.line(&format!("warning: {message}")),
        }
    }

    /// Something the user should know after the run (where kept data is, what is scheduled).
    pub fn note(&self, message: &str) {
        if let Ok(mut notes) = self.notes.lock() {
            notes.push(message.to_string());
        }
        match self.format {
            Format::Json => self.json(json!({"event": "note", "message": message})),
            _ => self.line(&format!("note: {message}")),
        }
    }

    /// The result: counts, failures, API calls and outputs; on stdout.
    pub fn run_finished(
        &self,
        verb: &str,
        env_full: &str,
        report: &RunReport,
        calls: &CallSummary,
        outputs: &BTreeMap<String, Value>,
    ) {
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for n in &report.nodes {
            *counts.entry(n.outcome.label()).or_default() += 1;
        }
        if self.format == Format::Json {
            self.json(json!({
                "event": "run_finished",
                "verb": verb,
                "environment": env_full,
                "ok": report.failed() == 0 && !report.interrupted,
                "interrupted": report.interrupted,
                "changed": report.changed(),
                "counts": counts,
                "elapsed_ms": report.elapsed.as_millis() as u64,
                "api_calls": calls,
                "outputs": outputs,
            }));
            return;
        }
        let secs = report.elapsed.as_secs_f64();
        let tally: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
        let headline =
            if report.failed() == 0 && !report.interrupted && report.changed() == 0 && verb == "up"
            {
                format!(
                    "{env_full}: no changes ({}) in {secs:.1}s",
                    tally.join(", ")
                )
            } else {
                format!(
                    "{env_full}: {verb} {} in {secs:.1}s: {}",
                    if report.failed() > 0 {
                        "failed"
                    } else if report.interrupted {
                        "interrupted"
                    } else {
                        "finished"
                    },
                    tally.join(", ")
                )
            };
        stdout_line(&headline);
        for n in &report.nodes {
            match &n.outcome {
                Outcome::Failed(e) => {
                    stdout_line(&format!("  failed   {}: {e}", n.node));
                }
                Outcome::Kept(r) => stdout_line(&format!("  kept     {}: {r}", n.node)),
                Outcome::Skipped(r) if report.failed() > 0 || report.interrupted => {
                    stdout_line(&format!("  skipped  {}: {r}", n.node))
                }
                _ => {}
            }
        }
        for note in self.notes.lock().map(|n| n.clone()).unwrap_or_default() {
            stdout_line(&format!("  note     {note}"));
        }
        stdout_line(&format!(
            "  API calls: {} reads, {} writes",
            calls.reads, calls.writes
        ));
        if !outputs.is_empty() {
            stdout_line("  outputs:");
            for (k, v) in outputs {
                let shown = v
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| v.to_string());
                stdout_line(&format!("    {k:<24} {shown}"));
            }
        }
    }
}

/// The outputs of the layers built so far, from the ids nodes published.
pub fn outputs(published: &BTreeMap<String, Ids>) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    if let Some(ids) = published.get("vpc") {
        out.insert("vpc_id".into(), json!(ids.id));
    }
    if let Some(ids) = published.get("kms-key") {
        out.insert("kms_key_arn".into(), json!(ids.arn));
    }
    let subnets = |tier: &str| -> Vec<String> {
        published
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("subnet-{tier}-")))
            .map(|(_, v)| v.id.clone())
            .collect()
    };
    for tier in ["public", "private", "isolated"] {
        let ids = subnets(tier);
        if !ids.is_empty() {
            out.insert(format!("{tier}_subnet_ids"), json!(ids));
        }
    }
    out
}

/// The database's outputs: endpoints and the master secret's ARN.
pub fn database_outputs(out: &mut BTreeMap<String, Value>, db: &DatabaseStatus) {
    out.insert("db_writer_endpoint".into(), json!(db.writer_endpoint));
    out.insert("db_reader_endpoint".into(), json!(db.reader_endpoint));
    out.insert("db_secret_arn".into(), json!(db.secret_arn));
}
