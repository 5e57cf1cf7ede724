//! Differences between what the config wants and what AWS has. Pure.
//!
//! `up` acts on these and `plan`, `drift` and `repair` report the same list: the comparison
//! is written once per resource kind (its `diff`) on top of the helpers here. Values that AWS
//! or its services own are recorded apart ([`Ignored`]), each with its reason, and never
//! acted on.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// One property that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// What differs, e.g. `tags.CostCenter` or `ingress`.
    pub field: String,
    /// What the config wants.
    pub want: String,
    /// What AWS has.
    pub have: String,
    /// True when AWS cannot change it in place: the resource would have to be replaced.
    pub replace: bool,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} -> {}", self.field, self.have, self.want)?;
        if self.replace {
            f.write_str(" (needs replacement)")?;
        }
        Ok(())
    }
}

/// A difference in a value AWS or one of its services owns: shown, never acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ignored {
    pub field: String,
    pub want: String,
    pub have: String,
    /// Who owns the value and why it is left alone.
    pub reason: &'static str,
}

/// Tags AWS and its services add beside ours (`aws:cloudformation:stack-name`,
/// `aws:ecs:clusterName`) and tags people add for their own bookkeeping are not drift: only
/// a missing or changed tag of ours is.
pub const EXTRA_TAGS_ARE_NOT_DRIFT: &str = "tags beside ours belong to AWS or to people";

/// Collects changes for one resource.
#[derive(Debug, Default)]
pub struct Changes {
    pub changes: Vec<Change>,
    pub ignored: Vec<Ignored>,
}

impl Changes {
    /// Records `field` when `want != have`.
    pub fn field<T: PartialEq + fmt::Debug>(&mut self, field: &str, want: T, have: T) {
        if want != have {
            self.changes.push(Change {
                field: field.to_string(),
                want: show(&want),
                have: show(&have),
                replace: false,
            });
        }
    }

    /// Like `field`, for properties AWS cannot change in place.
    pub fn immutable<T: PartialEq + fmt::Debug>(&mut self, field: &str, want: T, have: T) {
        if want != have {
            self.changes.push(Change {
                field: field.to_string(),
                want: show(&want),
                have: show(&have),
                replace: true,
            });
        }
    }

    /// Records a difference in a value AWS owns, with the reason; `up` leaves it alone.
    pub fn owned_by_aws<T: PartialEq + fmt::Debug>(
        &mut self,
        field: &str,
        want: T,
        have: T,
        reason: &'static str,
    ) {
        if want != have {
            self.ignored.push(Ignored {
                field: field.to_string(),
                want: show(&want),
                have: show(&have),
                reason,
            });
        }
    }

    /// Records a whole-document difference (a policy), both documents in full as JSON.
    pub fn document(&mut self, field: &str, want: &serde_json::Value, have: &serde_json::Value) {
        if want != have {
            self.changes.push(Change {
                field: field.to_string(),
                want: want.to_string(),
                have: if have.is_null() {
                    "(absent)".into()
                } else {
                    have.to_string()
                },
                replace: false,
            });
        }
    }

    /// Records every wanted tag that is missing or has another value
    /// ([`EXTRA_TAGS_ARE_NOT_DRIFT`]).
    pub fn tags(&mut self, want: &[(String, String)], have: &BTreeMap<String, String>) {
        for (k, v) in want {
            match have.get(k) {
                Some(h) if h == v => {}
                h => self.changes.push(Change {
                    field: format!("tags.{k}"),
                    want: v.clone(),
                    have: h.cloned().unwrap_or_else(|| "(absent)".into()),
                    replace: false,
                }),
            }
        }
    }

    /// Records a set difference: members to add and members to remove.
    pub fn set<T: Ord + fmt::Display>(&mut self, field: &str, want: &[T], have: &[T]) {
        let missing: Vec<String> = want
            .iter()
            .filter(|w| !have.contains(w))
            .map(ToString::to_string)
            .collect();
        let extra: Vec<String> = have
            .iter()
            .filter(|h| !want.contains(h))
            .map(ToString::to_string)
            .collect();
        if !missing.is_empty() || !extra.is_empty() {
            self.changes.push(Change {
                field: field.to_string(),
                want: if missing.is_empty() {
                    "(no additions)".into()
                } else {
                    format!("add {}", missing.join(", "))
                },
                have: if extra.is_empty() {
                    "(nothing extra)".into()
                } else {
                    format!("extra {}", extra.join(", "))
                },
                replace: false,
            });
        }
    }

    pub fn push(&mut self, change: Change) {
        self.changes.push(change);
    }

    pub fn into_vec(self) -> Vec<Change> {
        self.changes
    }
}

/// True when any change names one of our tags: the kind re-applies its tags.
pub fn tags_changed(changes: &[Change]) -> bool {
    changes.iter().any(|c| c.field.starts_with("tags."))
}

/// True when a change names `field`.
pub fn has(changes: &[Change], field: &str) -> bool {
    changes.iter().any(|c| c.field == field)
}

/// A value as shown in a change: `Some(7)` as `7`, `None` as `(none)`, strings unquoted.
fn show<T: fmt::Debug>(v: &T) -> String {
    let s = format!("{v:?}");
    let s = match s.strip_prefix("Some(").and_then(|r| r.strip_suffix(')')) {
        Some(inner) => inner.to_string(),
        None if s == "None" => "(none)".to_string(),
        None => s,
    };
    s.trim_matches('"').to_string()
}

/// True when `have` names the KMS key `want_arn` (services answer with the ARN or the key id).
pub fn same_key(want_arn: &str, have: Option<&str>) -> bool {
    have.is_some_and(|h| h == want_arn || want_arn.ends_with(&format!("/{h}")))
}

impl Changes {
    /// Records a KMS key that is not `want_arn` (by ARN or id), showing both.
    pub fn key(&mut self, field: &str, want_arn: &str, have: Option<&str>, immutable: bool) {
        if !same_key(want_arn, have) {
            self.changes.push(Change {
                field: field.to_string(),
                want: want_arn.to_string(),
                have: have.unwrap_or("(none)").to_string(),
                replace: immutable,
            });
        }
    }
}

/// True when any change needs the resource replaced.
pub fn needs_replacement(changes: &[Change]) -> bool {
    changes.iter().any(|c| c.replace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_compare_with_arns() {
        let arn = "arn:aws:kms:eu-west-1:123456789012:key/abcd";
        assert!(same_key(arn, Some(arn)));
        assert!(same_key(arn, Some("abcd")));
        assert!(!same_key(arn, Some("other")));
        assert!(!same_key(arn, None));
        let mut c = Changes::default();
        c.key("kms_key_id", arn, Some("abcd"), true);
        c.key("kms_key_id", arn, None, true);
        assert_eq!(c.changes.len(), 1);
        assert_eq!(
            c.changes[0].to_string(),
            format!("kms_key_id: (none) -> {arn} (needs replacement)")
        );
    }

    #[test]
    fn fields_tags_and_sets() {
        let mut c = Changes::default();
        c.field("dns_support", true, true);
        c.field("retention", 30, 7);
        c.field("retention_in_days", Some(30), None);
        c.immutable("cidr", "10.0.0.0/16", "10.1.0.0/16");
        let want = vec![
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
        ];
        let have = BTreeMap::from([
            ("a".to_string(), "1".to_string()),
            ("x".to_string(), "9".to_string()),
        ]);
        c.tags(&want, &have);
        c.set(
            "ingress",
            &["tcp/443 from 0.0.0.0/0"],
            &["tcp/443 from 0.0.0.0/0", "tcp/22 from 0.0.0.0/0"],
        );
        let v = c.into_vec();
        let shown: Vec<String> = v.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            vec![
                "retention: 7 -> 30",
                "retention_in_days: (none) -> 30",
                "cidr: 10.1.0.0/16 -> 10.0.0.0/16 (needs replacement)",
                "tags.b: (absent) -> 2",
                "ingress: extra tcp/22 from 0.0.0.0/0 -> (no additions)",
            ]
        );
        assert!(needs_replacement(&v));
    }
}
