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
use crate::drift::{Drifted, NodeDrift};
use crate::error::NodeError;
use crate::model::{Action, Events, NodePlan, Outcome, RunReport};

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

    /// A command's result: `event` as one JSON line, or `lines` on stdout.
    pub fn result(&self, event: Value, lines: &[String]) {
        if self.format == Format::Json {
            self.json(event);
        } else {
            for l in lines {
                stdout_line(l);
            }
        }
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

    /// The outputs, on stdout, after a run's headline.
    fn print_outputs(&self, outputs: &BTreeMap<String, Value>) {
        if outputs.is_empty() {
            return;
        }
        stdout_line("  outputs:");
        let show = |v: &Value| match (v.as_str(), v["name"].as_str(), v["state"].as_str()) {
            (Some(s), _, _) => s.to_string(),
            // An alarm: its name and state.
            (None, Some(name), Some(state)) => format!("{name}  {state}"),
            _ => v.to_string(),
        };
        for (k, v) in outputs {
            match v.as_array() {
                // One item a line, under the key.
                Some(items) if !items.is_empty() => {
                    for (i, item) in items.iter().enumerate() {
                        let key = if i == 0 { k.as_str() } else { "" };
                        stdout_line(&format!("    {key:<24} {}", show(item)));
                    }
                }
                _ => stdout_line(&format!("    {k:<24} {}", show(v))),
            }
        }
    }
}

/// A run's events as they happen.
impl Events for Reporter {
    fn node_started(&self, node: &str, kind: &str) {
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

    fn node_progress(&self, node: &str, message: &str) {
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

    fn node_finished(&self, node: &str, kind: &str, outcome: &Outcome, elapsed: Duration) {
        if let Some(bar) = self.bars.lock().ok().and_then(|mut b| b.remove(node)) {
            bar.finish_and_clear();
            if let Some(m) = &self.multi {
                m.remove(&bar);
            }
        }
        if self.format == Format::Json {
            let mut v = json!({"event": "node_finished", "node": node, "kind": kind, "outcome": outcome.label(), "elapsed_ms": elapsed.as_millis() as u64});
            match outcome {
                Outcome::Created(attrs) | Outcome::Unchanged(attrs) => v["attrs"] = json!(attrs),
                Outcome::Updated(attrs, changes) | Outcome::Replaced(attrs, changes) => {
                    v["attrs"] = json!(attrs);
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
            Outcome::Created(attrs) | Outcome::Unchanged(attrs) => attrs.id.clone(),
            Outcome::Updated(attrs, changes) | Outcome::Replaced(attrs, changes) => format!(
                "{}: {}",
                attrs.id,
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
        if matches!(outcome, Outcome::Unchanged(_) | Outcome::Absent) {
            return; // The summary counts them (JSON lists them); the lines show what changed.
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

    fn warn(&self, message: &str) {
        match self.format {
            Format::Json => self.json(json!({"event": "warning", "message": message})),
            _ => self.line(&format!("warning: {message}")),
        }
    }

    fn note(&self, message: &str) {
        if let Ok(mut notes) = self.notes.lock() {
            notes.push(message.to_string());
        }
        match self.format {
            Format::Json => self.json(json!({"event": "note", "message": message})),
            _ => self.line(&format!("note: {message}")),
        }
    }
}

impl Reporter {
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
                "elapsed_ms": self.start.elapsed().as_millis() as u64,
                "api_calls": calls,
                "outputs": outputs,
            }));
            return;
        }
        // The whole command, reads and confirmation included.
        let secs = self.start.elapsed().as_secs_f64();
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
        stdout_line(&format!("  API calls: {calls}"));
        self.print_outputs(outputs);
    }
}

fn changes_text(changes: &[crate::diff::Change]) -> String {
    changes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn error_json(e: &NodeError) -> Value {
    json!({"code": e.code(), "step": e.step, "message": e.to_string()})
}

/// How `status` shows a resource it could not read.
pub const UNREADABLE: &str = "unreadable";

/// `plan`, `drift`, `repair` and `status` results.
impl Reporter {
    /// One node of a plan: every node in JSON, changes only otherwise.
    pub fn plan_node(&self, node: &str, kind: &str, plan: &Result<NodePlan, NodeError>) {
        if self.format == Format::Json {
            let v = match plan {
                Ok(p) => {
                    let mut v = json!({"event": "plan", "node": node, "kind": kind, "action": p.action.label()});
                    match &p.action {
                        Action::Update { changes }
                        | Action::Replace { changes }
                        | Action::Blocked { changes } => v["changes"] = json!(changes),
                        Action::Missing { message } => v["message"] = json!(message),
                        _ => {}
                    }
                    if !p.ignored.is_empty() {
                        v["ignored"] = json!(p.ignored);
                    }
                    v
                }
                Err(e) => {
                    json!({"event": "plan", "node": node, "kind": kind, "action": "error", "error": error_json(e)})
                }
            };
            self.json(v);
            return;
        }
        let line = match plan {
            Ok(p) => match &p.action {
                Action::Unchanged => None,
                Action::Create => Some(format!("  + create   {node} ({kind})")),
                Action::Update { changes } => Some(format!(
                    "  ~ change   {node} ({kind}): {}",
                    changes_text(changes)
                )),
                Action::Replace { changes } => Some(format!(
                    "  ± replace  {node} ({kind}): {}",
                    changes_text(changes)
                )),
                Action::Missing { message } => {
                    Some(format!("  ! missing  {node} ({kind}): {message}"))
                }
                Action::Blocked { changes } => Some(format!(
                    "  ✗ blocked  {node} ({kind}): {}: AWS cannot change this in place and `up` does not replace a {kind}; restore the config value",
                    changes_text(changes)
                )),
            },
            Err(e) => Some(format!("  ✗ error    {node} ({kind}): {e}")),
        };
        if let Some(line) = line {
            stdout_line(&line);
        }
        if let Ok(p) = plan {
            for i in &p.ignored {
                stdout_line(&format!(
                    "    ignored  {node}: {}: {} -> {} ({})",
                    i.field, i.have, i.want, i.reason
                ));
            }
        }
    }

    /// Nodes in the last applied record that the config no longer has.
    pub fn orphans(&self, orphans: &[(String, String)]) {
        for (node, kind) in orphans {
            if self.format == Format::Json {
                self.json(json!({"event": "orphan", "node": node, "kind": kind}));
            } else {
                stdout_line(&format!(
                    "  ? orphan   {node} ({kind}): applied before, no longer in the config; `up` leaves it as it is (remove it by hand if it is not wanted)"
                ));
            }
        }
    }

    /// The summary line of `plan` (stdout).
    pub fn plan_finished(
        &self,
        env_full: &str,
        counts: &BTreeMap<&'static str, usize>,
        calls: &CallSummary,
        exit_code: i32,
    ) {
        if self.format == Format::Json {
            self.json(json!({"event": "plan_finished", "environment": env_full, "counts": counts, "exit_code": exit_code, "api_calls": calls}));
            return;
        }
        let n = |k: &str| counts.get(k).copied().unwrap_or(0);
        stdout_line(&format!(
            "{env_full}: plan: {} to create, {} to change, {} to replace, {} unchanged{}{}{} (API calls: {})",
            n("create"),
            n("change"),
            n("replace"),
            n("unchanged"),
            if n("delete") > 0 { format!(", {} to delete", n("delete")) } else { String::new() },
            if n("missing") > 0 { format!(", {} missing", n("missing")) } else { String::new() },
            if n("error") + n("blocked") > 0 { format!(", {} errors", n("error") + n("blocked")) } else { String::new() },
            calls
        ));
    }

    /// One node's drift findings (nodes without any are left out).
    pub fn drift_node(&self, d: &NodeDrift) {
        let quiet =
            d.drift.is_none() && d.pending.is_none() && d.error.is_none() && d.ignored.is_empty();
        if quiet {
            return;
        }
        if self.format == Format::Json {
            let mut v = json!(d);
            v["event"] = json!("drift");
            if let Some(e) = &d.error {
                v["error"] = error_json(e);
            }
            self.json(v);
            return;
        }
        let (node, kind) = (&d.node, d.kind);
        match &d.drift {
            Some(Drifted::Deleted) => stdout_line(&format!(
                "  drifted  {node} ({kind}): deleted outside tap-provision"
            )),
            Some(Drifted::Changed { changes }) => stdout_line(&format!(
                "  drifted  {node} ({kind}): {}",
                changes_text(changes)
            )),
            None => {}
        }
        match &d.pending {
            Some(Action::Create) => stdout_line(&format!(
                "  pending  {node} ({kind}): to create (new in the config)"
            )),
            Some(Action::Missing { message }) => {
                stdout_line(&format!("  missing  {node} ({kind}): {message}"))
            }
            Some(a) => stdout_line(&format!(
                "  pending  {node} ({kind}): {} (config edit not applied yet)",
                changes_text(a.changes())
            )),
            None => {}
        }
        if let Some(e) = &d.error {
            stdout_line(&format!("  error    {node} ({kind}): {e}"));
        }
        for i in &d.ignored {
            stdout_line(&format!(
                "  ignored  {node}: {}: {} -> {} ({})",
                i.field, i.have, i.want, i.reason
            ));
        }
    }

    /// The summary of `drift` (stdout).
    #[allow(clippy::too_many_arguments)]
    pub fn drift_finished(
        &self,
        env_full: &str,
        env: &str,
        checked: usize,
        drifted: usize,
        pending: usize,
        errors: usize,
        record: Option<&str>,
        calls: &CallSummary,
        exit_code: i32,
    ) {
        if self.format == Format::Json {
            self.json(json!({"event": "drift_finished", "environment": env_full, "checked": checked, "drifted": drifted, "pending": pending, "errors": errors, "record_note": record, "exit_code": exit_code, "api_calls": calls}));
            return;
        }
        if let Some(note) = record {
            stdout_line(&format!(
                "  note     {note}: every difference counts as drift"
            ));
        }
        let headline = if drifted == 0 {
            format!("{env_full}: no drift in {checked} resources")
        } else {
            format!("{env_full}: {drifted} of {checked} resources drifted (`tap-provision repair --env {env}` puts them back)")
        };
        let pending = if pending > 0 {
            format!("; {pending} pending config change(s), left to `up`")
        } else {
            String::new()
        };
        let errors = if errors > 0 {
            format!("; {errors} could not be read")
        } else {
            String::new()
        };
        stdout_line(&format!("{headline}{pending}{errors} (API calls: {calls})"));
    }

    /// The summary of `repair` (stdout).
    pub fn repair_finished(
        &self,
        env_full: &str,
        report: &RunReport,
        before: usize,
        remaining: &[String],
        calls: &CallSummary,
        exit_code: i32,
    ) {
        let changed: Vec<Value> = report
            .nodes
            .iter()
            .filter(|n| n.outcome.is_change())
            .map(|n| json!({"node": n.node, "kind": n.kind, "outcome": n.outcome.label(), "changes": match &n.outcome { Outcome::Updated(_, c) | Outcome::Replaced(_, c) => json!(c), _ => json!([]) }}))
            .collect();
        if self.format == Format::Json {
            self.json(json!({"event": "repair_finished", "environment": env_full, "drifted": before, "repaired": changed, "failed": report.failed(), "remaining": remaining, "exit_code": exit_code, "elapsed_ms": self.start.elapsed().as_millis() as u64, "api_calls": calls}));
            return;
        }
        stdout_line(&format!(
            "{env_full}: repair: {before} drifted, {} put back, {} failed, {} still drifted in {:.1}s (API calls: {})",
            changed.len(),
            report.failed(),
            remaining.len(),
            self.start.elapsed().as_secs_f64(),
            calls
        ));
        for n in &report.nodes {
            if let Outcome::Failed(e) = &n.outcome {
                stdout_line(&format!("  failed   {}: {e}", n.node));
            }
        }
        for r in remaining {
            stdout_line(&format!("  drifted  {r}"));
        }
    }

    /// `status`: the outputs and each resource's state.
    pub fn status(
        &self,
        env_full: &str,
        region: &str,
        outputs: &BTreeMap<String, Value>,
        nodes: &[(String, &'static str, Option<String>)],
    ) {
        if self.format == Format::Json {
            let nodes: Vec<Value> = nodes
                .iter()
                .map(|(n, k, state)| json!({"node": n, "kind": k, "present": state.is_some(), "state": state}))
                .collect();
            self.json(json!({"event": "status", "environment": env_full, "region": region, "outputs": outputs, "nodes": nodes}));
            return;
        }
        let present = nodes
            .iter()
            .filter(|(_, _, s)| s.as_deref().is_some_and(|s| !s.starts_with(UNREADABLE)))
            .count();
        stdout_line(&format!(
            "{env_full} in {region}: {present} of {} resources present",
            nodes.len()
        ));
        self.print_outputs(outputs);
        stdout_line("  resources:");
        for (node, kind, state) in nodes {
            stdout_line(&format!(
                "    {node:<28} {kind:<18} {}",
                state.as_deref().unwrap_or("absent")
            ));
        }
    }
}
