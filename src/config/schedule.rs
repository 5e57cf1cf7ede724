//! EventBridge Scheduler expressions: `rate(...)` and `cron(...)`, parsed and checked offline
//! (AWS validates them only when the schedule is created), and the next time a schedule
//! fires, which Scheduler does not return. Pure.
//!
//! `cron(minutes hours day-of-month month day-of-week year)`, AWS's six fields: `*`, `?`,
//! numbers, ranges `a-b`, lists `a,b`, steps `*/n` and `a-b/n`, month and weekday names
//! (`JAN`, `MON`); day-of-week 1-7 is SUN-SAT; one of day-of-month and day-of-week must be
//! `?`. AWS's `L`, `W` and `#` are refused with a clear message: the next-run computation
//! does not model them.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc};

/// A schedule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expression {
    /// `rate(N unit)`: every `every`, from the schedule's creation.
    Rate {
        every: Duration,
    },
    Cron(Cron),
}

/// The shortest rate accepted: a repair run takes a minute or more, and overlapping runs
/// only skip each other (the lock).
pub const MIN_RATE: Duration = Duration::from_secs(5 * 60);

impl Expression {
    /// Parses `rate(...)` or `cron(...)`, naming what is wrong.
    pub fn parse(text: &str) -> Result<Expression, String> {
        let text = text.trim();
        if let Some(body) = text.strip_prefix("rate(").and_then(|t| t.strip_suffix(')')) {
            let every = parse_rate(body)?;
            if every < MIN_RATE {
                return Err(format!(
                    "`{text}` is more often than every {} minutes, the least a run needs",
                    MIN_RATE.as_secs() / 60
                ));
            }
            return Ok(Expression::Rate { every });
        }
        if let Some(body) = text.strip_prefix("cron(").and_then(|t| t.strip_suffix(')')) {
            return Cron::parse(body).map(Expression::Cron);
        }
        Err(format!(
            "`{text}` is neither `rate(<n> <minutes|hours|days>)` nor `cron(<minutes> <hours> <day-of-month> <month> <day-of-week> <year>)`"
        ))
    }

    /// The interval of a rate; `None` for a cron.
    pub fn interval(&self) -> Option<Duration> {
        match self {
            Expression::Rate { every } => Some(*every),
            Expression::Cron(_) => None,
        }
    }
}

/// `N unit` of a rate, as AWS spells it: `1 hour`, `5 hours` (singular for 1 only).
pub fn parse_rate(body: &str) -> Result<Duration, String> {
    let (n, unit) = body
        .trim()
        .split_once(' ')
        .ok_or_else(|| format!("`{body}`: expected `<n> <unit>`, e.g. `1 hour` or `30 minutes`"))?;
    let n: u64 = n
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{body}`: `{n}` is not a positive whole number"))?;
    let unit = unit.trim();
    let (seconds, singular) = match unit {
        "minute" | "minutes" => (60, "minute"),
        "hour" | "hours" => (3600, "hour"),
        "day" | "days" => (86_400, "day"),
        other => {
            return Err(format!(
                "`{body}`: unknown unit `{other}` (minutes, hours or days)"
            ))
        }
    };
    let want = if n == 1 {
        singular.to_string()
    } else {
        format!("{singular}s")
    };
    if unit != want {
        return Err(format!("`{body}`: AWS wants `{n} {want}`"));
    }
    Ok(Duration::from_secs(n * seconds))
}

/// One cron field's allowed values; `None` for `?` (day-of-month or day-of-week unused).
type Values = Option<BTreeSet<u32>>;

/// A parsed AWS cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: BTreeSet<u32>,
    hours: BTreeSet<u32>,
    days: Values,
    months: BTreeSet<u32>,
    /// 1 = Sunday … 7 = Saturday, as AWS counts.
    weekdays: Values,
    years: BTreeSet<u32>,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Cron {
    pub fn parse(body: &str) -> Result<Cron, String> {
        let parts: Vec<&str> = body.split_whitespace().collect();
        let [minutes, hours, days, months, weekdays, years] = parts[..] else {
            return Err(format!(
                "`cron({body})` has {} fields; AWS's cron has six: minutes hours day-of-month month day-of-week year",
                parts.len()
            ));
        };
        let days = field("day-of-month", days, 1, 31, &[], true)?;
        let weekdays = field("day-of-week", weekdays, 1, 7, &WEEKDAYS, true)?;
        if days.is_some() == weekdays.is_some() {
            return Err(format!(
                "`cron({body})`: one of day-of-month and day-of-week must be `?` (and only one)"
            ));
        }
        let all = |f: Values, what: &str| {
            f.ok_or_else(|| format!("`?` is only for the day fields, not {what}"))
        };
        Ok(Cron {
            minutes: all(field("minutes", minutes, 0, 59, &[], false)?, "minutes")?,
            hours: all(field("hours", hours, 0, 23, &[], false)?, "hours")?,
            days,
            months: all(field("month", months, 1, 12, &MONTHS, false)?, "month")?,
            weekdays,
            years: all(field("year", years, 1970, 2199, &[], false)?, "year")?,
        })
    }

    /// True when the schedule fires at this local date and time (to the minute).
    fn matches_day(&self, d: NaiveDate) -> bool {
        let weekday = d.weekday().num_days_from_sunday() + 1;
        self.years.contains(&(d.year() as u32))
            && self.months.contains(&d.month())
            && self.days.as_ref().is_none_or(|s| s.contains(&d.day()))
            && self.weekdays.as_ref().is_none_or(|s| s.contains(&weekday))
    }

    /// The first local time strictly after `after` at which it fires, within five years.
    pub fn next_local(&self, after: NaiveDateTime) -> Option<NaiveDateTime> {
        let start = after.date();
        for offset in 0..(5 * 366) {
            let day = start.checked_add_days(chrono::Days::new(offset))?;
            if !self.matches_day(day) {
                continue;
            }
            for h in &self.hours {
                for m in &self.minutes {
                    let t = NaiveDateTime::new(day, NaiveTime::from_hms_opt(*h, *m, 0)?);
                    if t > after {
                        return Some(t);
                    }
                }
            }
        }
        None
    }
}

/// One field: `*`, `?` (when allowed), or a list of numbers, names, ranges and steps.
fn field(
    what: &str,
    text: &str,
    min: u32,
    max: u32,
    names: &[&str],
    question: bool,
) -> Result<Values, String> {
    if text == "?" {
        return if question {
            Ok(None)
        } else {
            Err(format!(
                "{what}: `?` is only for day-of-month and day-of-week"
            ))
        };
    }
    if text.contains(['L', 'W', '#']) && !names.iter().any(|n| text.contains(n)) {
        return Err(format!(
            "{what}: `{text}` uses AWS's L, W or #, which tap-provision does not model; use numbers, ranges, lists and steps"
        ));
    }
    let value = |v: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
            return Ok(i as u32 + min);
        }
        v.parse::<u32>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| format!("{what}: `{v}` is not in {min}-{max}"))
    };
    let mut out = BTreeSet::new();
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{what}: step `{s}` is not a positive number"))?,
            ),
            None => (item, 1),
        };
        let (lo, hi) = match range {
            "*" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                None if step > 1 => (value(r)?, max),
                None => {
                    let v = value(r)?;
                    (v, v)
                }
            },
        };
        if lo > hi {
            return Err(format!("{what}: `{item}` runs backwards"));
        }
        out.extend((lo..=hi).step_by(step as usize));
    }
    Ok(Some(out))
}

/// The next time `expression` fires after `now`, in UTC: a cron is evaluated in `timezone`
/// (an IANA name); a rate counts from `created`, the schedule's creation.
pub fn next_run(
    expression: &Expression,
    timezone: &str,
    created: Option<chrono::DateTime<Utc>>,
    now: chrono::DateTime<Utc>,
) -> Option<chrono::DateTime<Utc>> {
    match expression {
        Expression::Rate { every } => {
            let every = chrono::Duration::from_std(*every).ok()?;
            let start = created.unwrap_or(now);
            if start > now {
                return Some(start);
            }
            let periods = (now - start).num_seconds() / every.num_seconds() + 1;
            Some(start + every * periods as i32)
        }
        Expression::Cron(cron) => {
            let tz: chrono_tz::Tz = timezone.parse().ok()?;
            let mut after = now.with_timezone(&tz).naive_local().with_second(0)?;
            // A local time skipped by a clock change does not fire: look for the next one.
            for _ in 0..8 {
                let local = cron.next_local(after)?;
                if let Some(t) = tz.from_local_datetime(&local).earliest() {
                    return Some(t.with_timezone(&Utc));
                }
                after = local;
            }
            None
        }
    }
}

/// True when `name` is an IANA time zone Scheduler accepts.
pub fn is_timezone(name: &str) -> bool {
    name.parse::<chrono_tz::Tz>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> chrono::DateTime<Utc> {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn rates_as_aws_spells_them() {
        for (ok, secs) in [
            ("rate(1 hour)", 3600),
            ("rate(2 hours)", 7200),
            ("rate(30 minutes)", 1800),
            ("rate(1 day)", 86_400),
        ] {
            assert_eq!(
                Expression::parse(ok).unwrap().interval(),
                Some(Duration::from_secs(secs)),
                "{ok}"
            );
        }
        for (bad, why) in [
            ("rate(1 hours)", "AWS wants `1 hour`"),
            ("rate(2 hour)", "AWS wants `2 hours`"),
            ("rate(0 hours)", "not a positive"),
            ("rate(1 minute)", "more often than every 5 minutes"),
            ("rate(3 weeks)", "unknown unit"),
            ("every hour", "neither"),
        ] {
            let e = Expression::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn crons_as_aws_reads_them() {
        for bad in [
            "cron(0 * * * *)",
            "cron(0 * * * * *)",
            "cron(0 * ? * ? *)",
            "cron(0 25 * * ? *)",
            "cron(0 * L * ? *)",
            "cron(0 * ? * 2#1 *)",
            "cron(? * * * ? *)",
            "cron(10-5 * * * ? *)",
        ] {
            assert!(Expression::parse(bad).is_err(), "{bad}");
        }
        assert!(Expression::parse("cron(0/15 9-17 ? * MON-FRI *)").is_ok());
        assert!(Expression::parse("cron(0 3 1,15 JAN-JUN ? 2026-2030)").is_ok());
    }

    #[test]
    fn the_next_run_of_a_cron_in_its_timezone() {
        let weekdays = Expression::parse("cron(30 9 ? * MON-FRI *)").unwrap();
        // Saturday 2026-12-05 10:00 UTC: next is Monday 09:30 UTC.
        assert_eq!(
            next_run(&weekdays, "UTC", None, at("2026-12-05T10:00:00Z")),
            Some(at("2026-12-07T09:30:00Z"))
        );
        // In New York (UTC-5 in December), 09:30 local is 14:30 UTC.
        assert_eq!(
            next_run(
                &weekdays,
                "America/New_York",
                None,
                at("2026-12-07T10:00:00Z")
            ),
            Some(at("2026-12-07T14:30:00Z"))
        );
        let hourly = Expression::parse("cron(0 * * * ? *)").unwrap();
        assert_eq!(
            next_run(&hourly, "UTC", None, at("2026-12-05T10:00:00Z")),
            Some(at("2026-12-05T11:00:00Z")),
            "strictly after"
        );
        // 02:30 on the spring-forward night in Berlin does not exist: the next day's.
        let night = Expression::parse("cron(30 2 * * ? *)").unwrap();
        assert_eq!(
            next_run(&night, "Europe/Berlin", None, at("2026-03-28T12:00:00Z")),
            Some(at("2026-03-30T00:30:00Z"))
        );
    }

    #[test]
    fn the_next_run_of_a_rate_counts_from_its_creation() {
        let hourly = Expression::parse("rate(1 hour)").unwrap();
        let created = at("2026-12-05T08:20:00Z");
        assert_eq!(
            next_run(&hourly, "UTC", Some(created), at("2026-12-05T10:00:00Z")),
            Some(at("2026-12-05T10:20:00Z"))
        );
        assert!(is_timezone("Europe/Dublin") && is_timezone("UTC"));
        assert!(!is_timezone("Mars/Olympus"));
    }
}
