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
    /// Kept out of the run history (a secret's value: the state bucket keeps versions).
    #[serde(skip)]
    pub confidential: bool,
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

/// A kind's fields, as an enum ([`fields!`]): changes are made and matched through it, so a
/// diff and the update that acts on it cannot disagree on a spelling. [`Field::name`] is the
/// user-facing word (`node.field` in `plan`, `drift`, `history`).
pub trait Field: Copy + 'static {
    fn name(self) -> &'static str;

    /// One member of a keyed field: `attributes.idle_timeout.timeout_seconds`,
    /// `containers.backend.image`.
    fn key(self, key: &str) -> FieldName {
        FieldName(format!("{}.{key}", self.name()))
    }
}

/// A change's field as shown: a [`Field`], or one member of a keyed one ([`Field::key`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldName(String);

impl<F: Field> From<F> for FieldName {
    fn from(f: F) -> Self {
        FieldName(f.name().to_string())
    }
}

/// Declares a kind's fields: an enum, each variant with its user-facing name.
macro_rules! fields {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum $name {
            $($(#[$vmeta])* $variant),*
        }

        impl $crate::diff::Field for $name {
            fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text),*
                }
            }
        }

        #[allow(dead_code)]
        impl $name {
            /// Every field's name.
            pub const NAMES: &'static [&'static str] = &[$($text),*];
        }
    };
}
pub(crate) use fields;

/// Why a field listed in `[repair] ignore` is neither drift nor put back.
pub const OPERATOR_ACCEPTS: &str = "listed in [repair] ignore: the operator accepts it drifting";

/// Collects changes for one resource.
#[derive(Debug, Default)]
pub struct Changes {
    pub changes: Vec<Change>,
    pub ignored: Vec<Ignored>,
}

impl Changes {
    /// Records `field` when `want != have`.
    pub fn field<T: PartialEq + fmt::Debug>(
        &mut self,
        field: impl Into<FieldName>,
        want: T,
        have: T,
    ) {
        if want != have {
            self.changes.push(Change {
                field: field.into().0,
                want: show(&want),
                have: show(&have),
                replace: false,
                confidential: false,
            });
        }
    }

    /// Like `field`, for properties AWS cannot change in place.
    pub fn immutable<T: PartialEq + fmt::Debug>(
        &mut self,
        field: impl Into<FieldName>,
        want: T,
        have: T,
    ) {
        if want != have {
            self.changes.push(Change {
                field: field.into().0,
                want: show(&want),
                have: show(&have),
                replace: true,
                confidential: false,
            });
        }
    }

    /// Records a difference in a value AWS owns, with the reason; `up` leaves it alone.
    pub fn owned_by_aws<T: PartialEq + fmt::Debug>(
        &mut self,
        field: impl Into<FieldName>,
        want: T,
        have: T,
        reason: &'static str,
    ) {
        if want != have {
            self.ignored.push(Ignored {
                field: field.into().0,
                want: show(&want),
                have: show(&have),
                reason,
            });
        }
    }

    /// Like `field`, for a value shown in `plan` and `drift` but kept out of the run history
    /// (see [`Change::confidential`]).
    pub fn confidential<T: PartialEq + fmt::Debug>(
        &mut self,
        field: impl Into<FieldName>,
        want: T,
        have: T,
    ) {
        let before = self.changes.len();
        self.field(field, want, have);
        for c in &mut self.changes[before..] {
            c.confidential = true;
        }
    }

    /// Records a whole-document difference (a policy), both documents in full as JSON.
    pub fn document(
        &mut self,
        field: impl Into<FieldName>,
        want: &serde_json::Value,
        have: &serde_json::Value,
    ) {
        if want != have {
            self.changes.push(Change {
                field: field.into().0,
                want: want.to_string(),
                have: if have.is_null() {
                    "(absent)".into()
                } else {
                    have.to_string()
                },
                replace: false,
                confidential: false,
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
                    confidential: false,
                }),
            }
        }
    }

    /// Records a set difference: members to add and members to remove.
    pub fn set<T: Ord + fmt::Display>(
        &mut self,
        field: impl Into<FieldName>,
        want: &[T],
        have: &[T],
    ) {
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
                field: field.into().0,
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
                confidential: false,
            });
        }
    }

    /// Moves the changes of `fields` (each a field or a keyed field's prefix, as
    /// `[repair] ignore` lists them) to the ignored ones ([`OPERATOR_ACCEPTS`]).
    pub fn operator_accepts<'a>(&mut self, fields: impl Iterator<Item = &'a str>) {
        let fields: Vec<&str> = fields.collect();
        if fields.is_empty() {
            return;
        }
        let listed = |c: &Change| {
            fields.iter().any(|f| {
                c.field
                    .strip_prefix(f)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
            })
        };
        let (accepted, kept): (Vec<Change>, Vec<Change>) = std::mem::take(&mut self.changes)
            .into_iter()
            .partition(listed);
        self.changes = kept;
        self.ignored.extend(accepted.into_iter().map(|c| Ignored {
            field: c.field,
            want: c.want,
            have: c.have,
            reason: OPERATOR_ACCEPTS,
        }));
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
    changes.iter().any(Change::is_tag)
}

/// True when some change is not a tag's.
pub fn beyond_tags(changes: &[Change]) -> bool {
    changes.iter().any(|c| !c.is_tag())
}

/// True when some change is neither a tag's nor one of `fields`.
pub fn beyond<F: Field>(changes: &[Change], fields: &[F]) -> bool {
    changes
        .iter()
        .any(|c| !c.is_tag() && !fields.iter().any(|f| c.field == f.name()))
}

/// True when a change names `field`.
pub fn has<F: Field>(changes: &[Change], field: F) -> bool {
    changes.iter().any(|c| c.field == field.name())
}

/// True when a change names any of `fields`.
pub fn has_any<F: Field>(changes: &[Change], fields: &[F]) -> bool {
    fields.iter().any(|f| has(changes, *f))
}

/// True when a change names member `key` of `field` ([`Field::key`]).
pub fn has_member<F: Field>(changes: &[Change], field: F, key: &str) -> bool {
    let name = field.key(key);
    changes.iter().any(|c| c.field == name.0)
}

/// True when a change names `field` or one of its members ([`Field::key`]).
pub fn under<F: Field>(changes: &[Change], field: F) -> bool {
    let name = field.name();
    changes.iter().any(|c| {
        c.field
            .strip_prefix(name)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    })
}

impl Change {
    /// A change of one of our tags ([`Changes::tags`]).
    pub fn is_tag(&self) -> bool {
        self.field.starts_with("tags.")
    }

    /// True when both name the same field (two comparisons of one node).
    pub fn same_field(&self, other: &Change) -> bool {
        self.field == other.field
    }
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
    pub fn key(
        &mut self,
        field: impl Into<FieldName>,
        want_arn: &str,
        have: Option<&str>,
        immutable: bool,
    ) {
        if !same_key(want_arn, have) {
            self.changes.push(Change {
                field: field.into().0,
                want: want_arn.to_string(),
                have: have.unwrap_or("(none)").to_string(),
                replace: immutable,
                confidential: false,
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
        c.key(Test::Key, arn, Some("abcd"), true);
        c.key(Test::Key, arn, None, true);
        assert_eq!(c.changes.len(), 1);
        assert_eq!(
            c.changes[0].to_string(),
            format!("kms_key_id: (none) -> {arn} (needs replacement)")
        );
    }

    fields! {
        enum Test {
            DnsSupport = "dns_support",
            Retention = "retention",
            RetentionInDays = "retention_in_days",
            Cidr = "cidr",
            Ingress = "ingress",
            Attributes = "attributes",
            Key = "kms_key_id",
        }
    }

    #[test]
    fn typed_fields_match_their_own_changes_only() {
        let mut c = Changes::default();
        c.field(Test::Retention, 30, 7);
        c.field(Test::Attributes.key("idle_timeout"), "60", "30");
        let v = c.into_vec();
        assert!(has(&v, Test::Retention));
        assert!(!has(&v, Test::RetentionInDays), "no prefix match");
        assert!(under(&v, Test::Attributes));
        assert!(!has(&v, Test::Attributes), "a member is not the field");
        assert!(!under(&v, Test::Cidr));
        assert!(has_any(&v, &[Test::Cidr, Test::Retention]));
        assert_eq!(v[1].field, "attributes.idle_timeout");
        assert!(beyond_tags(&v) && !tags_changed(&v));
    }

    #[test]
    fn fields_tags_and_sets() {
        let mut c = Changes::default();
        c.field(Test::DnsSupport, true, true);
        c.field(Test::Retention, 30, 7);
        c.field(Test::RetentionInDays, Some(30), None);
        c.immutable(Test::Cidr, "10.0.0.0/16", "10.1.0.0/16");
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
            Test::Ingress,
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
