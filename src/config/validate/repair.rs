//! `[repair]`: the schedule, its time zone and mode, the tool's image, the ignore list and
//! the dead man's switch, checked offline. Whether each `ignore` entry names a node and one of
//! its fields is checked when the graph is built (the nodes are known then).

use super::{check_image, Collector};
use crate::config::raw::RawRepair;
use crate::config::schedule::{is_timezone, parse_rate, Expression};
use crate::config::{Repair, RepairMode};

pub(super) fn validate(p: &mut Collector, raw: &RawRepair) -> Repair {
    let schedule = match raw.schedule.trim() {
        "off" => None,
        text => match Expression::parse(text) {
            Ok(e) => Some((text.to_string(), e)),
            Err(e) => {
                p.add("repair.schedule", format!("{e}; or `off`"));
                None
            }
        },
    };
    if !is_timezone(&raw.timezone) {
        p.add(
            "repair.timezone",
            format!(
                "`{}` is not an IANA time zone: expected a name like `UTC` or `Europe/Dublin`",
                raw.timezone
            ),
        );
    }
    let mode = match raw.mode.as_str() {
        "repair" => RepairMode::Repair,
        "detect" => RepairMode::Detect,
        other => {
            p.add(
                "repair.mode",
                format!(
                    "`{other}` is not a mode: `repair` (put drift back) or `detect` (report only)"
                ),
            );
            RepairMode::Repair
        }
    };
    let on = raw.schedule.trim() != "off";
    match &raw.image {
        Some(image) => {
            if let Err(e) = check_image(image) {
                p.add("repair.image", e);
            }
        }
        None if on => p.add(
            "repair.image",
            "a schedule runs the tool's own container image: give it, versioned (e.g. `ghcr.io/acme/tap-provision:0.2.0`)",
        ),
        None => {}
    }
    for (i, entry) in raw.ignore.iter().enumerate() {
        if !looks_like_node_field(entry) {
            p.add(
                &format!("repair.ignore[{i}]"),
                format!("`{entry}` is not `node.field` (e.g. `alb.attributes.idle_timeout.timeout_seconds`; `tap-provision plan --json` names each field)"),
            );
        }
    }
    let interval = schedule.as_ref().and_then(|(_, e)| e.interval());
    let expect_every = match (&raw.expect_every, &schedule) {
        (Some(text), _) => match parse_rate(text) {
            Ok(d) if interval.is_some_and(|i| d < i) => {
                p.add(
                    "repair.expect_every",
                    format!(
                        "`{text}` is shorter than the schedule's interval: no run could meet it"
                    ),
                );
                None
            }
            Ok(d) if d > std::time::Duration::from_secs(7 * 24 * 3600) => {
                p.add(
                    "repair.expect_every",
                    format!("`{text}`: a CloudWatch alarm looks back at most 7 days; say `7 days` or less"),
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                p.add("repair.expect_every", format!("{e} (e.g. `2 hours`)"));
                None
            }
        },
        (None, Some((text, Expression::Cron(_)))) => {
            p.add(
                "repair.expect_every",
                format!("`{text}` fires at irregular times: say how often a successful run must happen (e.g. `expect_every = \"1 day\"`)"),
            );
            None
        }
        (None, _) => interval.map(|i| i * 2),
    };
    Repair {
        schedule: schedule.map(|(text, _)| text),
        timezone: raw.timezone.clone(),
        mode,
        image: raw.image.clone(),
        ignore: raw.ignore.clone(),
        expect_every,
    }
}

/// `<node>.<field>`: a node id (lowercase letters, digits, `-`), a dot, a field.
fn looks_like_node_field(entry: &str) -> bool {
    match entry.split_once('.') {
        Some((node, field)) => {
            !node.is_empty()
                && node
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !field.is_empty()
                && !field.contains(char::is_whitespace)
        }
        None => false,
    }
}
