//! EC2's request buckets, kept ahead of time: a call waits for its token here rather than be
//! throttled there.
//!
//! EC2 throttles each API action of an account and region with its own token bucket
//! ("Request throttling for the Amazon EC2 API", EC2 developer guide: "Limits are applied to
//! individual API actions, not API action categories"). The guide's figures, capacity and
//! refill per second: mutating actions 50 and 5, `CreateNatGateway` and `DeleteNatGateway` 10
//! and 1, `CreateTags` and `DeleteTags` 100 and 10, non-mutating actions 100 and 20. AWS may
//! raise them for an account, never lowers them.
//!
//! A run of this platform stays well inside them (9 `CreateSubnet` at most against 50, 3 NAT
//! gateways against 10), so it never waits here in an idle account; a larger config does, at
//! 5 calls a second per action, without slowing any other action. What the account's other
//! clients spend is invisible: their throttles are paced after the fact ([`super::pace`]).
//! Not modeled: the smaller bucket of an unfiltered, unpaginated describe (every describe
//! here is filtered), and the home region's clients and us-east-1's keeping apart buckets
//! when the home region is us-east-1.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Capacity and refill (tokens per second) of `action`'s bucket.
fn limits(action: &str) -> (f64, f64) {
    match action {
        "CreateNatGateway" | "DeleteNatGateway" => (10.0, 1.0),
        "CreateTags" | "DeleteTags" => (100.0, 10.0),
        read if ["Describe", "Get", "List", "Search"]
            .iter()
            .any(|p| read.starts_with(p)) =>
        {
            (100.0, 20.0)
        }
        _ => (50.0, 5.0),
    }
}

/// One region's EC2 buckets, as this process has spent them.
#[derive(Debug, Default)]
pub struct Buckets {
    by_action: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    /// Tokens left at `at`; below zero, calls already promised a later token.
    tokens: f64,
    at: Instant,
}

impl Buckets {
    /// Takes a token of `action` for a call at `now`: how long the call waits for it (zero
    /// while the bucket holds one).
    pub fn take(&self, action: &str, now: Instant) -> Duration {
        let (capacity, refill) = limits(action);
        let mut all = self.by_action.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = all.entry(action.to_string()).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * refill).min(capacity) - 1.0;
        bucket.at = bucket.at.max(now);
        if bucket.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-bucket.tokens / refill)
        }
    }

    /// Gives back a token taken for a call that was not sent after all (dropped while it
    /// waited for it): the calls behind it need not wait for it.
    pub fn give_back(&self, action: &str) {
        let (capacity, _) = limits(action);
        let mut all = self.by_action.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = all.get_mut(action) {
            bucket.tokens = (bucket.tokens + 1.0).min(capacity);
        }
    }
}

/// The action of an EC2 request (its Query body: `Action=CreateVpc&Version=...`).
pub fn action_of(body: &[u8]) -> Option<&str> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waits(b: &Buckets, action: &str, at: Instant, n: usize) -> Vec<u128> {
        (0..n).map(|_| b.take(action, at).as_millis()).collect()
    }

    #[test]
    fn a_mutating_action_goes_at_once_up_to_its_capacity_then_at_five_a_second() {
        let b = Buckets::default();
        let t = Instant::now();
        assert!(waits(&b, "CreateSubnet", t, 50).iter().all(|w| *w == 0));
        assert_eq!(waits(&b, "CreateSubnet", t, 3), vec![200, 400, 600]);
        // Another action has its own bucket: nothing it waits for slows this one.
        assert_eq!(waits(&b, "CreateVpc", t, 1), vec![0]);
    }

    #[test]
    fn nat_gateways_have_ten_then_one_a_second() {
        let b = Buckets::default();
        let t = Instant::now();
        assert!(waits(&b, "CreateNatGateway", t, 10).iter().all(|w| *w == 0));
        assert_eq!(waits(&b, "CreateNatGateway", t, 2), vec![1000, 2000]);
        // The two promised tokens and one more come within 3 s.
        let later = t + Duration::from_secs(3);
        assert_eq!(waits(&b, "CreateNatGateway", later, 2), vec![0, 1000]);
    }

    #[test]
    fn an_idle_bucket_refills_to_its_capacity_and_no_more() {
        let b = Buckets::default();
        let t = Instant::now();
        waits(&b, "AllocateAddress", t, 50);
        let later = t + Duration::from_secs(3600);
        assert!(waits(&b, "AllocateAddress", later, 50)
            .iter()
            .all(|w| *w == 0));
        assert_eq!(waits(&b, "AllocateAddress", later, 1), vec![200]);
    }

    #[test]
    fn reads_and_tags_have_their_own_figures() {
        let b = Buckets::default();
        let t = Instant::now();
        assert_eq!(waits(&b, "DescribeSubnets", t, 101)[100], 50);
        assert_eq!(waits(&b, "ListImagesInRecycleBin", t, 101)[100], 50);
        assert_eq!(waits(&b, "CreateTags", t, 101)[100], 100);
    }

    #[test]
    fn a_token_given_back_is_the_next_call_s() {
        let b = Buckets::default();
        let t = Instant::now();
        waits(&b, "CreateRoute", t, 51);
        b.give_back("CreateRoute");
        assert_eq!(waits(&b, "CreateRoute", t, 1), vec![200]);
    }

    #[test]
    fn the_action_is_read_from_the_query_body() {
        assert_eq!(
            action_of(b"Action=CreateVpc&Version=2016-11-15&CidrBlock=10.0.0.0%2F16"),
            Some("CreateVpc")
        );
        assert_eq!(
            action_of(b"Version=2016-11-15&Action=DescribeVpcs"),
            Some("DescribeVpcs")
        );
        assert_eq!(action_of(b"{}"), None);
    }
}
