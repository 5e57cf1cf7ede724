//! The roles a look observes, read together: one GetAccountAuthorizationDetails (roles only,
//! every page) gives each role's trust policy, inline policies with their documents,
//! attached policies and tags, what [`super::IamRole::observe_one`] reads in four calls a
//! role. It lists every role in the account (the action takes no resource and no path):
//! one call up to a thousand roles, whatever the number of environments.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_iam::types::{EntityType, RoleDetail};

use super::{Observed, POLICY_NAME};
use crate::aws::gathering::{self, Gathering};
use crate::error::Failure;
use crate::resources::NodeCx;

/// The run's gathered reads of the account's roles: each name's role, `None` when absent.
#[derive(Default)]
struct Described(Arc<Gathering<Option<RoleDetail>>>);

/// The role named `name`, read with the other roles asked for in the next few milliseconds:
/// `Some(Ok(None))` when the account has no such role; `None` when the read failed (logged),
/// and the role is left to its own reads, which report the error.
pub(super) async fn role(cx: &NodeCx<'_>, name: &str) -> Option<Result<Option<Observed>, Failure>> {
    let iam = cx.aws().iam.clone();
    let found = gathering::ask(
        cx.shared::<Described>().0.clone(),
        "roles",
        name,
        usize::MAX,
        move |names| {
            let iam = iam.clone();
            async move { account_roles(&iam, names).await }
        },
    )
    .await?;
    Some(found.map(|r| observed_of(&r)).transpose())
}

/// What GetAccountAuthorizationDetails says of the roles `names` ([`pick`], every page read).
async fn account_roles(
    iam: &aws_sdk_iam::Client,
    names: Vec<String>,
) -> Result<HashMap<String, Option<RoleDetail>>, Failure> {
    let pages = iam
        .get_account_authorization_details()
        .filter(EntityType::Role)
        .max_items(1000)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| Failure::from(e).context("GetAccountAuthorizationDetails"))?;
    pick(pages.iter().flat_map(|p| p.role_detail_list()), names)
}

/// Each of `names` with its details among `listed` (the account's every role), `None` for
/// each not listed: the role does not exist. Names compare as IAM compares them, case aside.
/// A role listed without its name could be one asked for: the whole answer is then
/// unreadable (an error: each role is read on its own), never "absent".
fn pick<'a>(
    listed: impl Iterator<Item = &'a RoleDetail>,
    names: Vec<String>,
) -> Result<HashMap<String, Option<RoleDetail>>, Failure> {
    let asked: HashMap<String, String> = names
        .iter()
        .map(|n| (n.to_lowercase(), n.clone()))
        .collect();
    let mut found: HashMap<String, Option<RoleDetail>> =
        names.into_iter().map(|n| (n, None)).collect();
    for role in listed {
        let name = role
            .role_name()
            .ok_or_else(|| Failure::missing("role name"))?
            .to_lowercase();
        if let Some(asked) = asked.get(&name) {
            found.insert(asked.clone(), Some(role.clone()));
        }
    }
    Ok(found)
}

/// The role as its own reads would see it, from its details in the account's.
fn observed_of(role: &RoleDetail) -> Result<Observed, Failure> {
    let named = |name: Option<&str>| {
        name.map(String::from)
            .ok_or_else(|| Failure::missing("inline policy name"))
    };
    let inline = role
        .role_policy_list()
        .iter()
        .map(|p| named(p.policy_name()))
        .collect::<Result<Vec<_>, _>>()?;
    let policy = match role
        .role_policy_list()
        .iter()
        .find(|p| p.policy_name() == Some(POLICY_NAME))
    {
        Some(ours) => Some(
            ours.policy_document()
                .ok_or_else(|| Failure::missing("inline policy document"))?,
        ),
        None => None,
    };
    Observed::read(
        role.arn().ok_or_else(|| Failure::missing("role ARN"))?,
        role.path().unwrap_or("/"),
        role.assume_role_policy_document(),
        policy,
        inline,
        role.attached_managed_policies(),
        role.tags(),
    )
}

#[cfg(test)]
mod tests {
    use aws_sdk_iam::types::{AttachedPolicy, PolicyDetail, Tag};

    use super::*;

    /// A role's details in the account's read give what its own reads give: our policy by
    /// its name, every inline policy's name and every attached policy, sorted, documents
    /// decoded, and its tags.
    #[test]
    fn a_roles_details_read_as_its_own_reads() {
        let doc = |action: &str| format!("%7B%22Action%22%3A%22{action}%22%7D");
        let role = RoleDetail::builder()
            .role_name("tap-prod-backup")
            .arn("arn:aws:iam::111122223333:role/tap/prod/tap-prod-backup")
            .path("/tap/prod/")
            .assume_role_policy_document(doc("sts%3AAssumeRole"))
            .role_policy_list(
                PolicyDetail::builder()
                    .policy_name("z-by-hand")
                    .policy_document(doc("s3%3A*"))
                    .build(),
            )
            .role_policy_list(
                PolicyDetail::builder()
                    .policy_name(POLICY_NAME)
                    .policy_document(doc("backup%3AStartBackupJob"))
                    .build(),
            )
            .attached_managed_policies(
                AttachedPolicy::builder()
                    .policy_arn("arn:aws:iam::aws:policy/b")
                    .build(),
            )
            .attached_managed_policies(
                AttachedPolicy::builder()
                    .policy_arn("arn:aws:iam::aws:policy/a")
                    .build(),
            )
            .tags(
                Tag::builder()
                    .key("tap:node")
                    .value("backup-role")
                    .build()
                    .unwrap(),
            )
            .build();
        let seen = observed_of(&role).unwrap();
        assert_eq!(
            seen.arn,
            "arn:aws:iam::111122223333:role/tap/prod/tap-prod-backup"
        );
        assert_eq!(seen.path, "/tap/prod/");
        assert_eq!(seen.trust["Action"], "sts:AssumeRole");
        assert_eq!(seen.policy.unwrap()["Action"], "backup:StartBackupJob");
        assert_eq!(seen.inline, [POLICY_NAME, "z-by-hand"]);
        assert_eq!(
            seen.attached,
            ["arn:aws:iam::aws:policy/a", "arn:aws:iam::aws:policy/b"]
        );
        assert_eq!(
            seen.tags.get("tap:node").map(String::as_str),
            Some("backup-role")
        );

        let bare = RoleDetail::builder()
            .role_name("tap-prod-backup")
            .arn("arn:aws:iam::111122223333:role/tap-prod-backup")
            .build();
        let seen = observed_of(&bare).unwrap();
        assert_eq!((seen.path.as_str(), seen.policy), ("/", None));
        assert!(seen.inline.is_empty() && seen.attached.is_empty());
    }

    /// Our policy listed without its document is an answer the tool cannot read, never
    /// "no policy".
    #[test]
    fn our_policy_without_its_document_is_an_error() {
        let role = RoleDetail::builder()
            .role_name("tap-prod-backup")
            .arn("arn:aws:iam::111122223333:role/tap-prod-backup")
            .role_policy_list(PolicyDetail::builder().policy_name(POLICY_NAME).build())
            .build();
        assert!(observed_of(&role).is_err());
    }

    /// An attached policy listed without its ARN is an error, never one policy fewer.
    #[test]
    fn an_attached_policy_without_its_arn_is_an_error() {
        let role = RoleDetail::builder()
            .role_name("tap-prod-backup")
            .arn("arn:aws:iam::111122223333:role/tap-prod-backup")
            .attached_managed_policies(AttachedPolicy::builder().policy_name("by-hand").build())
            .build();
        assert!(observed_of(&role).is_err());
    }

    /// Each name asked for is found whatever its case, or absent when not listed; a role
    /// listed without its name makes the whole answer an error.
    #[test]
    fn names_are_picked_case_aside_and_a_nameless_role_is_an_error() {
        let role = |name: &str| RoleDetail::builder().role_name(name).build();
        let listed = [role("TAP-prod-backup"), role("other-role")];
        let names = vec!["tap-prod-backup".to_string(), "tap-prod-gone".to_string()];
        let found = pick(listed.iter(), names.clone()).unwrap();
        assert_eq!(
            found["tap-prod-backup"]
                .as_ref()
                .and_then(|r| r.role_name()),
            Some("TAP-prod-backup")
        );
        assert!(found["tap-prod-gone"].is_none());
        assert_eq!(found.len(), 2);

        let nameless = [role("tap-prod-backup"), RoleDetail::builder().build()];
        assert!(pick(nameless.iter(), names).is_err());
    }
}
