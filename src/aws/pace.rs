//! Pacing per service under AWS's rate limits, so a run slows down instead of failing.
//!
//! AWS limits each service's calls per account and region with a token bucket. The SDK's
//! standard retries back off one call at a time, spend a client-wide retry quota and give up
//! after a number of attempts; with dozens of calls in flight against a small bucket the quota
//! runs dry, and every throttled call after that fails at once. So each service client's HTTP
//! connector ([`PacedClient`]) does two things:
//!
//! - **It resends a throttled request itself**, after a slot of the service's pace, for as
//!   long as the request's signature holds ([`RESEND_WITHIN`]). A throttle then spends none of
//!   the SDK's attempts, which stay for server errors and dropped connections (each client's
//!   retry quota is unlimited, see `Clients::load`); a run fails for throttling only when AWS
//!   refuses one call for minutes.
//! - **It paces the service once the throttling is heavy** ([`Pacer`]): half of its last
//!   answers throttled. The calls are then spaced at a rate that is cut by 30 % while a
//!   third of the answers at that rate are still throttled, and raised a little on each
//!   success while calls queue; so it settles just above the limit and the bucket is seldom
//!   empty. Scattered throttles (a busy account) seldom pace a service. Services that were
//!   not throttled are never slowed.
//! - **It hands a paced service's slots to the most urgent call first**: the one whose node
//!   has the longest chain of work waiting on it ([`PRIORITY`], set by the executor), so a
//!   security group that a database waits on is not sent after route-table associations
//!   nothing waits on. Calls outside a node (the lock, the record) go first.

use std::collections::{BinaryHeap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;

use super::calls::ApiCalls;

/// Whether `code` is AWS's answer to a throttled call: the SDK's own list
/// (`THROTTLING_ERRORS`) without `LimitExceededException`, which CloudWatch Logs, ACM, Backup,
/// Secrets Manager and Application Auto Scaling answer for a quota reached (resending would
/// not help; the SDK still retries it).
fn is_throttling(code: &str) -> bool {
    code != "LimitExceededException"
        && aws_runtime::retries::classifiers::THROTTLING_ERRORS.contains(&code)
}

/// The slowest pace: one call every 4 s.
const MIN_RATE: f64 = 0.25;
/// A cut keeps this share of the rate.
const CUT: f64 = 0.7;
/// Each success while calls wait for their slot adds this much to the rate (calls/s): at
/// rate r that is r successes a second, so the pace rises by a tenth each second whatever r,
/// from a cut back to the limit in about 4 s.
const GROW: f64 = 0.1;
/// The first pace when few calls went out in the last second.
const FIRST_RATE: f64 = 1.0;
/// An unpaced service is paced when at least this share of its last answers (at least
/// [`EVIDENCE`] of them) are throttled: a bucket emptied by a burst. Stray throttles seldom
/// reach it (a fifth of the answers throttled at random: 6 of 12 about 2 % of the time, 4 of
/// 8 about 6 %), and a pace started by them is soon raised by the successes.
const ENGAGE: f64 = 0.5;
/// A pace is too fast when at least this share of the answers at it (at least [`EVIDENCE`]
/// of them) are throttled. At a bucket's limit R that is a pace of 1.5 R.
const HEAVY: f64 = 1.0 / 3.0;
/// Answers needed before a share is believed.
const EVIDENCE: u32 = 8;
/// The answers the unpaced service's share is taken over.
const WINDOW: usize = 12;
/// The longest a call waits for its slot.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// A throttled request is resent only while less than this much time has passed since its
/// first send; with its wait for a slot it goes out within 160 s of signing, well inside
/// SigV4's 5 minutes. After that the SDK retries it, signed anew.
pub const RESEND_WITHIN: Duration = Duration::from_secs(100);
/// The longest a connector call lasts: its resends and their waits, and one more answer.
pub const LONGEST_CALL: Duration =
    Duration::from_secs(RESEND_WITHIN.as_secs() + MAX_WAIT.as_secs() + 60);

tokio::task_local! {
    /// How urgent the calls of the running task are: the length of the longest chain of
    /// nodes waiting on the node it runs (see `DependencyQueue`). A paced service sends the
    /// most urgent waiting call in each slot; calls made outside any node's task (the lock,
    /// the record, gathered reads) count as the most urgent.
    pub static PRIORITY: usize;
}

/// Now, on tokio's clock (the same as the system's, but paused in tests).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The urgency of a call made now ([`PRIORITY`]).
fn priority() -> usize {
    PRIORITY.try_with(|p| *p).unwrap_or(usize::MAX)
}

/// One service client's pace.
#[derive(Debug, Default)]
pub struct Pacer {
    state: Mutex<State>,
}

/// A call waiting for a slot of a paced service.
#[derive(Debug)]
struct Waiter {
    priority: usize,
    /// Arrival order: among equals, the first to come goes first.
    seq: u64,
    /// Told the pace's epoch when its slot comes.
    go: tokio::sync::oneshot::Sender<u64>,
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        (self.priority, self.seq) == (other.priority, other.seq)
    }
}

impl Eq for Waiter {}

impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Waiter {
    /// The heap's greatest is the most urgent, then the earliest.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

#[derive(Debug, Default)]
struct State {
    /// Calls per second once paced; `None` until then (no wait at all).
    rate: Option<f64>,
    /// The next free slot.
    next: Option<Instant>,
    /// Send times of the last second, while unpaced: the first rate is half of them.
    recent: VecDeque<Instant>,
    /// Whether each of the last [`WINDOW`] answers was throttled, while unpaced.
    answers: VecDeque<bool>,
    /// How many times the pace was set or cut; the answers to attempts sent at the current
    /// pace are counted apart, as only they say whether it is still too fast.
    epoch: u64,
    /// Answers, and throttled answers, to attempts sent at the current pace.
    seen: u32,
    throttled: u32,
    /// Calls waiting for a slot once paced, the most urgent on top.
    waiting: BinaryHeap<Waiter>,
    /// The next waiter's arrival number.
    arrivals: u64,
    /// Whether a task is handing out slots to `waiting`.
    dispatching: bool,
}

impl Pacer {
    /// The slot of an attempt sent at `now`: how long it waits (zero while unpaced), and the
    /// pace it was sent at, to hand back with its answer.
    pub fn reserve(&self, now: Instant) -> (Duration, u64) {
        let Ok(mut s) = self.state.lock() else {
            return (Duration::ZERO, 0);
        };
        let Some(rate) = s.rate else {
            s.recent.push_back(now);
            while s
                .recent
                .front()
                .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(1))
            {
                s.recent.pop_front();
            }
            return (Duration::ZERO, s.epoch);
        };
        // A queue longer than the longest wait sends at the cap, not all at once later.
        let slot = s.next.map_or(now, |n| n.max(now)).min(now + MAX_WAIT);
        s.next = Some(slot + Duration::from_secs_f64(1.0 / rate));
        (slot.duration_since(now).min(MAX_WAIT), s.epoch)
    }

    /// The answer at `now` to an attempt sent at pace `epoch`: throttled or not.
    pub fn answered(&self, now: Instant, epoch: u64, throttled: bool) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        if epoch != s.epoch {
            // Sent at an earlier pace, already cut for.
            return;
        }
        match s.rate {
            None => {
                s.answers.push_back(throttled);
                if s.answers.len() > WINDOW {
                    s.answers.pop_front();
                }
                let n = s.answers.len() as u32;
                let t = s.answers.iter().filter(|a| **a).count() as u32;
                if n >= EVIDENCE && f64::from(t) >= ENGAGE * f64::from(n) {
                    let sent = s.recent.len() as f64;
                    s.rate = Some((sent * 0.5).max(FIRST_RATE));
                    s.recent.clear();
                    s.answers.clear();
                    s.start_epoch(now);
                }
            }
            Some(rate) => {
                s.seen += 1;
                if throttled {
                    s.throttled += 1;
                    if heavy(s.throttled, s.seen) {
                        s.rate = Some((rate * CUT).max(MIN_RATE));
                        s.start_epoch(now);
                    }
                } else if s.next.is_some_and(|next| next > now) {
                    // Calls queue for slots and this one went through: a little faster.
                    s.rate = Some(rate + GROW);
                }
            }
        }
    }

    /// The current pace, `None` while unpaced.
    pub fn rate(&self) -> Option<f64> {
        self.state.lock().ok().and_then(|s| s.rate)
    }

    /// Waits for the slot of an attempt at `priority` ([`PRIORITY`]), at most [`MAX_WAIT`];
    /// returns the pace it is sent at, to hand back with its answer. Unpaced, it goes at once.
    pub async fn slot(self: &Arc<Self>, priority: usize) -> u64 {
        let rx = {
            let Ok(mut s) = self.state.lock() else {
                return 0;
            };
            if s.rate.is_none() {
                drop(s);
                return self.reserve(now()).1;
            }
            let (go, rx) = tokio::sync::oneshot::channel();
            let seq = s.arrivals;
            s.arrivals += 1;
            s.waiting.push(Waiter { priority, seq, go });
            if !s.dispatching {
                s.dispatching = true;
                tokio::spawn(self.clone().dispatch());
            }
            rx
        };
        match tokio::time::timeout(MAX_WAIT, rx).await {
            Ok(Ok(epoch)) => epoch,
            // A queue longer than the longest wait: sent now, at the current pace.
            _ => self.state.lock().map(|s| s.epoch).unwrap_or(0),
        }
    }

    /// Hands each slot of the pace to the most urgent waiting call, until none waits.
    async fn dispatch(self: Arc<Self>) {
        loop {
            let (wait, _) = self.reserve(now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            let Ok(mut s) = self.state.lock() else {
                return;
            };
            let epoch = s.epoch;
            loop {
                let Some(w) = s.waiting.pop() else {
                    // Nobody took this slot: the next call may have it.
                    s.next = Some(now());
                    s.dispatching = false;
                    return;
                };
                // A waiter gone (it waited its longest) leaves the slot to the next.
                if w.go.send(epoch).is_ok() {
                    break;
                }
            }
        }
    }
}

impl State {
    /// A new pace from `now`: its answers counted afresh, its first slot one interval on (the
    /// bucket is empty).
    fn start_epoch(&mut self, now: Instant) {
        self.epoch += 1;
        self.seen = 0;
        self.throttled = 0;
        let rate = self.rate.unwrap_or(MIN_RATE);
        let after = now + Duration::from_secs_f64(1.0 / rate);
        self.next = Some(self.next.map_or(after, |n| n.max(after)));
    }
}

fn heavy(throttled: u32, seen: u32) -> bool {
    seen >= EVIDENCE && f64::from(throttled) >= HEAVY * f64::from(seen)
}

/// The HTTP client of one service: the shared connection pool, each attempt sent in a slot
/// of the service's [`Pacer`] and resent when throttled.
#[derive(Debug, Clone)]
pub struct PacedClient {
    inner: SharedHttpClient,
    pacer: Arc<Pacer>,
    service: &'static str,
    calls: ApiCalls,
}

impl PacedClient {
    /// `service`: the name the run report gives the service's retries.
    pub fn new(inner: SharedHttpClient, service: &'static str, calls: ApiCalls) -> PacedClient {
        PacedClient {
            inner,
            pacer: Arc::default(),
            service,
            calls,
        }
    }
}

impl HttpClient for PacedClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(PacedConnector {
            inner: self.inner.http_connector(settings, components),
            client: self.clone(),
        })
    }
}

#[derive(Debug)]
struct PacedConnector {
    inner: SharedHttpConnector,
    client: PacedClient,
}

impl HttpConnector for PacedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let inner = self.inner.clone();
        let client = self.client.clone();
        // Read here, in the calling node's task: the future may run elsewhere.
        let priority = priority();
        HttpConnectorFuture::new(async move {
            let first = now();
            let mut request = request;
            let mut resends = 0u32;
            loop {
                let wait = backoff(resends);
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                let epoch = client.pacer.slot(priority).await;
                let again = request.try_clone();
                let response = inner.call(request).await?;
                let (response, throttled) = classify(response).await?;
                client.pacer.answered(now(), epoch, throttled);
                if !throttled {
                    return Ok(response);
                }
                client.calls.throttled(client.service);
                match again {
                    Some(next) if first.elapsed() < RESEND_WITHIN => {
                        tracing::debug!(
                            service = client.service,
                            rate = client.pacer.rate(),
                            "throttled; resending at the service's pace"
                        );
                        client.calls.resent(client.service);
                        resends += 1;
                        request = next;
                    }
                    _ => return Ok(response),
                }
            }
        })
    }
}

/// The least a resend waits, pace or not: 50 ms doubled per resend up to 2 s (a tenth of
/// that under `TAP_TIME_SCALE=10`), with half of it as jitter so calls refused together do
/// not come back together.
fn backoff(resends: u32) -> Duration {
    if resends == 0 {
        return Duration::ZERO;
    }
    let full = Duration::from_millis(50 << (resends - 1).min(6)).min(Duration::from_secs(2));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let jitter = f64::from(nanos % 1000) / 1000.0;
    crate::timing::scaled(full.mul_f64(0.5 + 0.5 * jitter))
}

/// Whether an answer is AWS's throttling, reading an error answer's body to tell (error
/// bodies are small; the answer is handed on with the body read).
async fn classify(mut response: HttpResponse) -> Result<(HttpResponse, bool), ConnectorError> {
    let status = response.status().as_u16();
    if status < 400 {
        return Ok((response, false));
    }
    let body = ByteStream::new(response.take_body())
        .collect()
        .await
        .map_err(|e| ConnectorError::io(Box::new(e)))?
        .into_bytes();
    let throttled = match error_code(response.headers().get("x-amzn-ErrorType"), &body) {
        Some(code) => is_throttling(code),
        // 429 is "too many requests"; a 503 without a body is S3's SlowDown to a HEAD.
        None => status == 429 || status == 503,
    };
    *response.body_mut() = SdkBody::from(body);
    Ok((response, throttled))
}

/// The error code of an AWS error answer: the `x-amzn-ErrorType` header (REST-JSON), the
/// body's `__type` (JSON), or its `<Code>` (XML protocols).
pub fn error_code<'a>(header: Option<&'a str>, body: &'a [u8]) -> Option<&'a str> {
    let bare = |s: &'a str| {
        let s = s.split(':').next().unwrap_or(s);
        s.rsplit('#').next().unwrap_or(s).trim()
    };
    if let Some(h) = header.filter(|h| !h.is_empty()) {
        return Some(bare(h));
    }
    let text = std::str::from_utf8(&body[..body.len().min(4096)]).ok()?;
    if let Some(start) = text.find("<Code>") {
        let rest = &text[start + 6..];
        return rest.find("</Code>").map(|end| rest[..end].trim());
    }
    let at = text.find("\"__type\"")?;
    let rest = &text[at + 8..];
    let open = rest.find('"')?;
    let rest = &rest[open + 1..];
    rest.find('"').map(|end| bare(&rest[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn codes_of_each_protocol() {
        let ec2 = b"<Response><Errors><Error><Code>RequestLimitExceeded</Code></Error></Errors></Response>";
        assert_eq!(error_code(None, ec2), Some("RequestLimitExceeded"));
        let query = b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code></Error></ErrorResponse>";
        assert_eq!(error_code(None, query), Some("Throttling"));
        let json =
            br#"{"__type":"com.amazonaws.ecs#ThrottlingException","message":"Rate exceeded"}"#;
        assert_eq!(error_code(None, json), Some("ThrottlingException"));
        assert_eq!(
            error_code(
                Some("ThrottlingException:http://internal.amazon.com/"),
                b"{}"
            ),
            Some("ThrottlingException")
        );
        assert_eq!(error_code(None, b"not an error"), None);
    }

    /// Sends `n` attempts at `now` and answers them, the first `throttled` of them throttled.
    fn burst(p: &Pacer, now: Instant, n: u32, throttled: u32) {
        let epochs: Vec<u64> = (0..n).map(|_| p.reserve(now).1).collect();
        for (i, e) in epochs.into_iter().enumerate() {
            p.answered(now, e, (i as u32) < throttled);
        }
    }

    #[test]
    fn heavy_throttling_paces_at_half_the_burst() {
        let p = Pacer::default();
        let t0 = Instant::now();
        burst(&p, t0, 8, 6);
        // Half of the 8 calls of the last second: 4/s, the first slot 250 ms on (the
        // throttle that made half of 8 answers came last).
        assert_eq!(p.rate(), Some(4.0));
        assert_eq!(p.reserve(t0).0, ms(250));
        assert_eq!(p.reserve(t0).0, ms(500));
        assert_eq!(p.reserve(t0 + ms(600)).0, ms(150));
    }

    #[test]
    fn stray_throttles_pace_nothing() {
        let p = Pacer::default();
        let t0 = Instant::now();
        // One in five throttled, as on a busy account: never a third of the last answers.
        for i in 0..40 {
            let (wait, e) = p.reserve(t0 + ms(i * 10));
            assert_eq!(wait, Duration::ZERO);
            p.answered(t0 + ms(i * 10), e, i % 5 == 0);
        }
        assert_eq!(p.rate(), None);
    }

    #[test]
    fn a_pace_still_too_fast_is_cut_and_answers_of_an_earlier_pace_cut_nothing() {
        let p = Pacer::default();
        let t0 = Instant::now();
        let early: Vec<u64> = (0..20).map(|_| p.reserve(t0).1).collect();
        for e in &early[..8] {
            p.answered(t0, *e, true);
        }
        assert_eq!(p.rate(), Some(10.0));
        // The rest of the burst answers throttled too: sent before the pace, they cut nothing.
        for e in &early[8..] {
            p.answered(t0 + ms(300), *e, true);
        }
        assert_eq!(p.rate(), Some(10.0));
        // At the pace: two throttles in eight answers are not heavy (the six successes, with
        // calls queued, raise it a little); three in nine are.
        let now = t0 + Duration::from_secs(3);
        burst(&p, now, 8, 2);
        let raised = p.rate().unwrap();
        assert!((raised - 10.6).abs() < 1e-9, "{raised}");
        let e = p.reserve(now).1;
        p.answered(now, e, true);
        assert!((p.rate().unwrap() - raised * CUT).abs() < 1e-9);
    }

    #[test]
    fn never_below_the_floor_and_grows_only_while_calls_queue() {
        let p = Pacer::default();
        let t0 = Instant::now();
        burst(&p, t0, 8, 8);
        assert_eq!(p.rate(), Some(4.0));
        for i in 1..20 {
            burst(&p, t0 + Duration::from_secs(10 * i), 8, 8);
        }
        assert_eq!(p.rate(), Some(MIN_RATE));
        // No queue: a success leaves the pace alone.
        let later = t0 + Duration::from_secs(1000);
        let e = p.reserve(later).1;
        p.answered(later + Duration::from_secs(30), e, false);
        assert_eq!(p.rate(), Some(MIN_RATE));
        // A queue: it rises.
        let now = later + Duration::from_secs(60);
        p.reserve(now);
        let e = p.reserve(now).1;
        p.answered(now, e, false);
        assert!(p.rate().unwrap() > MIN_RATE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_paced_slot_goes_to_the_most_urgent_call_then_the_earliest() {
        let p = Arc::new(Pacer::default());
        burst(&p, now(), 8, 8);
        assert_eq!(p.rate(), Some(4.0));
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut calls = tokio::task::JoinSet::new();
        for (name, priority) in [("leaf", 0), ("chain", 5), ("leaf 2", 0), ("mid", 3)] {
            let (p, order) = (p.clone(), order.clone());
            calls.spawn(async move {
                p.slot(priority).await;
                order
                    .lock()
                    .unwrap()
                    .push((name, tokio::time::Instant::now()));
            });
            // Each has come before the first slot (250 ms on).
            tokio::time::sleep(ms(10)).await;
        }
        while calls.join_next().await.is_some() {}
        let order = order.lock().unwrap().clone();
        let names: Vec<&str> = order.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["chain", "mid", "leaf", "leaf 2"]);
        // One slot each, a quarter of a second apart.
        let gaps: Vec<u128> = order
            .windows(2)
            .map(|w| (w[1].1 - w[0].1).as_millis())
            .collect();
        assert!(gaps.iter().all(|g| (240..=260).contains(g)), "{gaps:?}");
        // Unpaced, a slot is at once, whatever the priority.
        let unpaced = Arc::new(Pacer::default());
        let before = tokio::time::Instant::now();
        unpaced.slot(0).await;
        assert_eq!(tokio::time::Instant::now(), before);
    }

    #[test]
    fn a_wait_is_capped() {
        let p = Pacer::default();
        let t0 = Instant::now();
        burst(&p, t0, 8, 8);
        for _ in 0..1000 {
            assert!(p.reserve(t0).0 <= MAX_WAIT);
        }
    }
}
