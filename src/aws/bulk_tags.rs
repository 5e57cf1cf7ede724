//! Tags read in bulk for the ARNs a run already knows.
//!
//! Most services read tags one resource per call (CloudWatch, CloudWatch Logs, SNS, ACM,
//! Backup, ELB one ARN at a time as the tool used it). A converged `drift` then spends a third
//! of its calls on tags. The Resource Groups Tagging API's `GetResources` takes a list of up
//! to 100 ARNs: the nodes of a run that ask for tags within a few milliseconds of each other
//! share one call per region ([`of`]); the ARNs a look knows from names alone are asked for
//! as it starts, and those the applied record keeps as soon as it is read ([`prefetch`]).
//!
//! The list is of ARNs, never a tag filter: a resource whose identity tags were removed is
//! still asked for, and the answer says so. An ARN the answer leaves out (the tagging API
//! can lag a new resource; it omits a resource never tagged, and types it does not cover) is
//! `None`, and the node reads it with the service's own call, as before; so is every ARN of a
//! bulk read that failed. The tagging API itself can lag a tag edit by a short while: a
//! converged run that misses one sees it on the next run, and tags put back a moment ago
//! (by hand, or by a repair) can read as still missing, drift that the next run no longer
//! sees. Where an answer decides whether a resource is this environment's (the KMS key by
//! its alias), only an answer that says so is taken; any other is read again from the
//! resource itself.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use super::gathering::{ask, ask_at_once, Answer, Gathering};
use super::GLOBAL_REGION;
use crate::error::Failure;

/// GetResources' limit of ARNs per call.
const PER_CALL: usize = 100;
/// The action a kind that reads its tags in bulk is granted.
pub const ACTION: &str = "tag:GetResources";

type Tags = BTreeMap<String, String>;
/// The run's bulk tag reads by the tagging API: the asks being gathered, the ARNs read
/// ahead ([`prefetch`]), each answer kept for the first node that asks for it, and every ARN
/// read ahead or asked for so far (not read ahead again).
#[derive(Default)]
pub struct BulkTags {
    gathering: Arc<Gathering<Tags>>,
    ahead: Mutex<Ahead>,
}

/// The answers read ahead, not yet taken, and every ARN asked for so far: one lock, so an
/// ARN is either read ahead for the first node that asks, or asked by that node itself.
#[derive(Default)]
struct Ahead {
    answers: HashMap<String, Answer<Tags>>,
    asked: HashSet<String>,
}

impl BulkTags {
    fn ahead(&self) -> std::sync::MutexGuard<'_, Ahead> {
        self.ahead
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Asks now for the tags of `arns`, ARNs a look at the environment knows before its nodes
/// find them (those its names give, as it starts; those the applied record keeps, once read):
/// one GetResources per region (per 100 ARNs), sent at once when they open its gathering
/// (all of them are known now: no waiting for others' asks), where nodes asking as their own
/// reads answer would spread over one a level.
/// Each answer is kept for the first [`of`] of its ARN, and only for it: a
/// later ask reads again. An ARN already read ahead or asked for is left out. An ARN the
/// answer leaves out (no such resource, or not yet) is left to the node's own read, as in
/// [`of`]; a resource replaced since the record was written has another ARN, asked for anew.
pub fn prefetch(bulk: &Arc<BulkTags>, clients: &super::Clients, arns: Vec<String>) {
    // Under the one lock, so that no node's ask finds an ARN asked for and no answer yet.
    let mut ahead = bulk.ahead();
    let mut groups: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for arn in arns {
        if ahead.asked.insert(arn.clone()) {
            groups.entry(group_of(clients, &arn)).or_default().push(arn);
        }
    }
    for (group, arns) in groups {
        let client = region_client(clients, group);
        let answers = ask_at_once(bulk.gathering.clone(), group, arns, PER_CALL, move |arns| {
            let client = client.clone();
            async move { get_resources(&client, arns).await }
        });
        ahead.answers.extend(answers);
    }
}

/// The gathering group of `arn`'s tagging API: the home region's, or us-east-1's.
fn group_of(clients: &super::Clients, arn: &str) -> &'static str {
    // Always set: `Clients::load` gives every client the environment's region. Only the
    // client an ARN is asked of depends on it; a read that fails answers none of its ARNs,
    // and each node then reads its own tags, where the error stops the run.
    let home = clients.tagging.config().region().map_or("", |r| r.as_ref());
    if is_global(arn, home) {
        GLOBAL_REGION
    } else {
        "home"
    }
}

/// The tagging client that answers for `group` ([`group_of`]).
fn region_client(clients: &super::Clients, group: &str) -> aws_sdk_resourcegroupstagging::Client {
    if group == GLOBAL_REGION {
        clients.us_east_1.tagging.clone()
    } else {
        clients.tagging.clone()
    }
}

/// Whether the tagging API of us-east-1, rather than the environment's region (`home`),
/// answers for `arn`: CloudFront's and Route53's, whose ARNs name no region, and what lives
/// in us-east-1.
/// An S3 bucket's ARN names no region either; the API answers for it in the bucket's own
/// region, the environment's.
fn is_global(arn: &str, home: &str) -> bool {
    let mut parts = arn.splitn(5, ':');
    let service = parts.nth(2).unwrap_or_default();
    let region = parts.next().unwrap_or_default();
    home != GLOBAL_REGION
        && (service == "cloudfront" || service == "route53" || region == GLOBAL_REGION)
}

/// The tags of `arn` from the run's bulk read (read ahead, or gathered with the asks of the
/// next few milliseconds); `None` when the answer leaves it out or the read failed (read
/// them with the service's own call).
pub async fn of(bulk: Arc<BulkTags>, clients: &super::Clients, arn: &str) -> Option<Tags> {
    let ahead = {
        let mut ahead = bulk.ahead();
        ahead.asked.insert(arn.to_string());
        ahead.answers.remove(arn)
    };
    match ahead {
        Some(answer) => answer.await.ok().flatten(),
        None => gathered(bulk, clients, arn).await,
    }
}

/// The tags of `arn` from a read gathered with the other asks of the next few milliseconds.
async fn gathered(bulk: Arc<BulkTags>, clients: &super::Clients, arn: &str) -> Option<Tags> {
    let group = group_of(clients, arn);
    let client = region_client(clients, group);
    ask(bulk.gathering.clone(), group, arn, PER_CALL, move |arns| {
        let client = client.clone();
        async move { get_resources(&client, arns).await }
    })
    .await
}

/// One GetResources for these ARNs: the tags of each it answers for.
async fn get_resources(
    client: &aws_sdk_resourcegroupstagging::Client,
    arns: Vec<String>,
) -> Result<HashMap<String, Tags>, Failure> {
    tracing::debug!(?arns, "tags read in bulk");
    // One page: the API takes no paging parameters with an ARN list of up to 100.
    let out = client
        .get_resources()
        .set_resource_arn_list(Some(arns))
        .send()
        .await
        .map_err(|e| {
            let f = Failure::from(e);
            tracing::warn!(error = %f, "a bulk tag read failed; each of its resources reads its own tags");
            f
        })?;
    Ok(out
        .resource_tag_mapping_list()
        .iter()
        .filter_map(|m| {
            let tags = m
                .tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect();
            Some((m.resource_arn()?.to_string(), tags))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn cloudfront_route53_and_us_east_1_ask_the_global_region() {
        use super::is_global;
        let home = "eu-west-1";
        assert!(is_global(
            "arn:aws:cloudfront::123456789012:distribution/E1",
            home
        ));
        assert!(is_global("arn:aws:route53:::hostedzone/Z1", home));
        assert!(!is_global("arn:aws:route53:::hostedzone/Z1", "us-east-1"));
        assert!(is_global(
            "arn:aws:acm:us-east-1:123456789012:certificate/x",
            home
        ));
        assert!(!is_global("arn:aws:s3:::tap-prod-static", home));
        assert!(!is_global(
            "arn:aws:logs:eu-west-1:123456789012:log-group:/tap/x",
            home
        ));
        // At home in us-east-1, one region answers for all.
        assert!(!is_global(
            "arn:aws:cloudfront::123456789012:distribution/E1",
            "us-east-1"
        ));
    }
}
