//! Differences between what the config wants and what AWS has. Pure.
//!
//! `up` acts on these, and `plan` / `drift` will report the same list, so the comparison is
//! written once per resource kind (its `diff`) on top of the helpers here.

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

/// Collects changes for one resource.
#[derive(Debug, Default)]
pub struct Changes(pub Vec<Change>);

impl Changes {
    /// Records `field` when `want != have`.
    pub fn field<T: PartialEq + fmt::Debug>(&mut self, field: &str, want: T, have: T) {
        if want != have {
            self.0.push(Change {
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
            self.0.push(Change {
                field: field.to_string(),
                want: show(&want),
                have: show(&have),
                replace: true,
            });
        }
    }

    /// Records every wanted tag that is missing or has another value. Tags AWS or people
    /// added beside ours are not drift.
    pub fn tags(&mut self, want: &[(String, String)], have: &BTreeMap<String, String>) {
        for (k, v) in want {
            match have.get(k) {
                Some(h) if h == v => {}
                h => self.0.push(Change {
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
            self.0.push(Change {
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

    pub fn into_vec(self) -> Vec<Change> {
        self.0
    }
}

fn show<T: fmt::Debug>(v: &T) -> String {
    let s = format!("{v:?}");
    s.trim_matches('"').to_string()
}

/// True when any change needs the resource replaced.
pub fn needs_replacement(changes: &[Change]) -> bool {
    changes.iter().any(|c| c.replace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_tags_and_sets() {
        let mut c = Changes::default();
        c.field("dns_support", true, true);
        c.field("retention", 30, 7);
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
                "cidr: 10.1.0.0/16 -> 10.0.0.0/16 (needs replacement)",
                "tags.b: (absent) -> 2",
                "ingress: extra tcp/22 from 0.0.0.0/0 -> (no additions)",
            ]
        );
        assert!(needs_replacement(&v));
    }
}
