//! One service's pace once AWS throttles it ([`Pacer`]): the rate its calls are spaced at,
//! adapted to the answers, and the line of calls waiting for a slot, the most urgent first
//! ([`PRIORITY`]). The connector that uses it, and why, is [`super::pace`].

use std::collections::{BinaryHeap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// The slowest pace: one call every 4 s.
const MIN_RATE: f64 = 0.25;
/// A cut keeps this share of the rate.
const CUT: f64 = 0.7;
/// Each success while calls wait for their slot adds this much to the rate (calls/s): at
/// rate r that is r successes a second, so the pace rises by a tenth each second whatever r,
/// from a cut back to the limit in about 4 s.
const GROW: f64 = 0.1;
/// The first pace when few calls went through in the last second.
const FIRST_RATE: f64 = 1.0;
/// From this share of the pace last found too fast ([`State::ceiling`]) to as much above
/// it, the pace grows a tenth as fast and a lone throttle counts: a bucket of one token
/// (R = 1) answers every other attempt at any pace between R and 2R, so the pace should
/// reach the limit slowly and step back as soon as it crosses it, not after [`EVIDENCE`]
/// answers.
const NEAR: f64 = 0.9;
/// Near the ceiling, a throttle after this many successes in a row is the limit crossed, not
/// one of the throttles a busy account scatters at random (a fifth of the answers throttled
/// at random: 8 successes then a throttle is 3 % of the answers).
const QUIET: u32 = 8;
/// A step back keeps this share of the pace.
const STEP_BACK: f64 = 0.9;
/// When at least this share of the answers that paced a service were throttled, what went
/// through is taken for the limit ([`State::ceiling`]).
const LIMIT_SHOWN: f64 = 0.75;
/// A pace cut with at least this share of its answers throttled was above the limit since
/// its start (a one-token bucket refuses half at any pace between R and 2R); with fewer, the
/// throttles may be a busy account's, scattered at random, and no limit is assumed.
const LIMIT_CROSSED: f64 = 0.5;
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

tokio::task_local! {
    /// How urgent the calls of the running task are: the length of the longest chain of
    /// nodes waiting on the node it runs (see `DependencyQueue`). A paced service sends the
    /// most urgent waiting call in each slot; calls made outside any node's task (the lock,
    /// the record, gathered reads) count as the most urgent.
    pub static PRIORITY: usize;
}

/// Now, on tokio's clock (the same as the system's, but paused in tests).
pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The urgency of a call made now ([`PRIORITY`]).
pub fn priority() -> usize {
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
    go: oneshot::Sender<u64>,
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
    /// Times of the successful answers of the last second, while unpaced: the first rate.
    passed: VecDeque<Instant>,
    /// Whether each of the last [`WINDOW`] answers was throttled, while unpaced.
    answers: VecDeque<bool>,
    /// How many times the pace was set or cut; the answers to attempts sent at the current
    /// pace are counted apart, as only they say whether it is still too fast.
    epoch: u64,
    /// Answers, and throttled answers, to attempts sent at the current pace.
    seen: u32,
    throttled: u32,
    /// Successes in a row at the current pace.
    clean: u32,
    /// The last pace found too fast: the limit is below it.
    ceiling: Option<f64>,
    /// The pace the current epoch started at.
    epoch_rate: f64,
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
        s.reserve(now)
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
                if !throttled {
                    s.passed.push_back(now);
                }
                while s
                    .passed
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(1))
                {
                    s.passed.pop_front();
                }
                let n = s.answers.len() as u32;
                let t = s.answers.iter().filter(|a| **a).count() as u32;
                if n >= EVIDENCE && f64::from(t) >= ENGAGE * f64::from(n) {
                    // What the bucket let through in the last second (its burst and its
                    // refill), not what was sent: a burst of a dozen calls against a bucket
                    // of one token a second would otherwise start the pace at 6 a second,
                    // and each cut to come down needs its own evidence.
                    let passed = s.passed.len() as f64;
                    s.rate = Some(passed.max(FIRST_RATE));
                    // Nearly every call refused: a bucket emptied, its limit about what went
                    // through (grown past slowly, stepped back from at once). Half refused
                    // may be a busy account's scattered throttles: no limit is assumed.
                    if f64::from(t) >= LIMIT_SHOWN * f64::from(n) {
                        s.ceiling = s.rate;
                    }
                    s.passed.clear();
                    s.answers.clear();
                    s.start_epoch(now);
                }
            }
            Some(rate) => {
                s.seen += 1;
                // About the pace last found too fast (a tenth either side); well above it,
                // the limit is higher.
                let near = s
                    .ceiling
                    .is_some_and(|c| rate >= NEAR * c && rate <= c / NEAR);
                if throttled {
                    s.throttled += 1;
                    let crossed = near && s.clean >= QUIET;
                    s.clean = 0;
                    if heavy(s.throttled, s.seen) {
                        // The limit is below the pace this epoch started at.
                        if f64::from(s.throttled) >= LIMIT_CROSSED * f64::from(s.seen) {
                            s.ceiling = Some(s.epoch_rate.min(rate));
                        }
                        s.rate = Some((rate * CUT).max(MIN_RATE));
                        s.start_epoch(now);
                    } else if crossed {
                        // Just past the limit: back under it at once.
                        s.ceiling = Some(rate);
                        s.rate = Some((rate * STEP_BACK).max(MIN_RATE));
                        s.start_epoch(now);
                    }
                } else {
                    s.clean += 1;
                    if s.next.is_some_and(|next| next > now) {
                        // Calls queue for slots and this one went through: a little faster,
                        // up to near the pace last found too fast, and slowly from there.
                        s.rate = Some(match s.ceiling {
                            Some(_) if near => rate + GROW / 10.0,
                            Some(c) if rate < NEAR * c => (rate + GROW).min(NEAR * c),
                            _ => rate + GROW,
                        });
                    }
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
    /// A call that waited half the longest wait behind more urgent ones takes the next slot.
    pub async fn slot(self: &Arc<Self>, priority: usize) -> u64 {
        let half = MAX_WAIT / 2;
        for priority in [priority, usize::MAX] {
            let rx = match self.enqueue(priority) {
                Ok(epoch) => return epoch,
                Err(rx) => rx,
            };
            if let Ok(Ok(epoch)) = tokio::time::timeout(half, rx).await {
                return epoch;
            }
        }
        // Waited its longest (a queue longer than that): sent now, at the current pace.
        self.state.lock().map(|s| s.epoch).unwrap_or(0)
    }

    /// Unpaced: the pace of an attempt sent at once. Paced: the attempt waits in line, told
    /// its pace when its slot comes.
    fn enqueue(self: &Arc<Self>, priority: usize) -> Result<u64, oneshot::Receiver<u64>> {
        let Ok(mut s) = self.state.lock() else {
            return Ok(0);
        };
        if s.rate.is_none() {
            return Ok(s.reserve(now()).1);
        }
        let (go, rx) = oneshot::channel();
        let seq = s.arrivals;
        s.arrivals += 1;
        s.waiting.push(Waiter { priority, seq, go });
        if !s.dispatching {
            s.dispatching = true;
            tokio::spawn(self.clone().dispatch());
        }
        Err(rx)
    }

    /// Hands each slot of the pace to the most urgent waiting call, until none waits.
    async fn dispatch(self: Arc<Self>) {
        // Should this task end another way (a poisoned lock, the runtime going down), the
        // next waiter starts another.
        let mut running = Dispatching(Some(self.clone()));
        loop {
            let (wait, epoch) = self.reserve(now());
            let slot = now() + wait;
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            let Ok(mut s) = self.state.lock() else {
                return;
            };
            if s.epoch != epoch {
                // The pace was cut while this slot came: it is void, the next is at the new
                // pace.
                continue;
            }
            loop {
                let Some(w) = s.waiting.pop() else {
                    // Nobody took this slot: the next call may have it.
                    s.next = Some(slot);
                    s.dispatching = false;
                    running.0 = None;
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

/// Clears [`State::dispatching`] if a dispatcher ends without saying so.
struct Dispatching(Option<Arc<Pacer>>);

impl Drop for Dispatching {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let mut s = p.state.lock().unwrap_or_else(|e| e.into_inner());
            s.dispatching = false;
        }
    }
}

impl State {
    /// The slot of an attempt sent at `now` ([`Pacer::reserve`]).
    fn reserve(&mut self, now: Instant) -> (Duration, u64) {
        let Some(rate) = self.rate else {
            return (Duration::ZERO, self.epoch);
        };
        // A queue longer than the longest wait sends at the cap, not all at once later.
        let slot = self.next.map_or(now, |n| n.max(now)).min(now + MAX_WAIT);
        self.next = Some(slot + Duration::from_secs_f64(1.0 / rate));
        (slot.duration_since(now).min(MAX_WAIT), self.epoch)
    }

    /// A new pace from `now`: its answers counted afresh, its first slot one interval on (the
    /// bucket is empty). That replaces the slot the old pace had due: keeping it, and then
    /// the void slot the dispatcher woke for, cost a whole interval more per cut.
    fn start_epoch(&mut self, now: Instant) {
        self.epoch += 1;
        self.seen = 0;
        self.throttled = 0;
        self.clean = 0;
        let rate = self.rate.unwrap_or(MIN_RATE);
        self.epoch_rate = rate;
        self.next = Some(now + Duration::from_secs_f64(1.0 / rate));
    }
}

fn heavy(throttled: u32, seen: u32) -> bool {
    seen >= EVIDENCE && f64::from(throttled) >= HEAVY * f64::from(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Sends `n` attempts at `now` and answers them, the first `throttled` of them throttled.
    fn burst(p: &Pacer, now: Instant, n: u32, throttled: u32) {
        let epochs: Vec<u64> = (0..n).map(|_| p.reserve(now).1).collect();
        for (i, e) in epochs.into_iter().enumerate() {
            p.answered(now, e, (i as u32) < throttled);
        }
    }

    #[test]
    fn heavy_throttling_paces_at_what_the_bucket_let_through() {
        let p = Pacer::default();
        let t0 = Instant::now();
        burst(&p, t0, 8, 4);
        // 4 of the 8 calls of the last second went through: 4/s, the first slot 250 ms on.
        assert_eq!(p.rate(), Some(4.0));
        assert_eq!(p.reserve(t0).0, ms(250));
        assert_eq!(p.reserve(t0).0, ms(500));
        assert_eq!(p.reserve(t0 + ms(600)).0, ms(150));
        // None went through: the slowest first pace, one a second (a burst of 8 sent would
        // have made it 4 a second against a bucket that lets one through).
        let q = Pacer::default();
        burst(&q, t0, 8, 8);
        assert_eq!(q.rate(), Some(FIRST_RATE));
    }

    /// Successes at `now` with calls queued behind them.
    fn queued_successes(p: &Pacer, now: Instant, n: u32) {
        for _ in 0..n {
            p.reserve(now);
            let e = p.reserve(now).1;
            p.answered(now, e, false);
        }
    }

    #[test]
    fn near_the_limit_the_pace_creeps_and_steps_back_at_the_first_throttle_after_a_quiet_run() {
        let p = Pacer::default();
        let t0 = Instant::now();
        // Six of eight refused: the two that went through are taken for the limit.
        burst(&p, t0, 8, 6);
        assert_eq!(p.rate(), Some(2.0));
        // Near it, each success adds a hundredth of a call a second.
        let now = t0 + Duration::from_secs(2);
        queued_successes(&p, now, 3);
        assert!((p.rate().unwrap() - 2.03).abs() < 1e-9);
        // A throttle after 3 successes is not a crossing (stray throttles come that way).
        let e = p.reserve(now).1;
        p.answered(now, e, true);
        assert!((p.rate().unwrap() - 2.03).abs() < 1e-9);
        // After 8 in a row, one is: a tenth back, and that pace is the new ceiling.
        queued_successes(&p, now, QUIET);
        let crossed = p.rate().unwrap();
        assert!((crossed - 2.11).abs() < 1e-9, "{crossed}");
        let e = p.reserve(now).1;
        p.answered(now, e, true);
        assert!((p.rate().unwrap() - crossed * STEP_BACK).abs() < 1e-9);
        // Heavy throttling cuts 30 %; the pace then grows fast only up to near the pace the
        // cut epoch started at.
        let later = now + Duration::from_secs(5);
        let started = p.rate().unwrap();
        burst(&p, later, 8, 8);
        assert!((p.rate().unwrap() - started * CUT).abs() < 1e-9);
        queued_successes(&p, later + Duration::from_secs(1), 20);
        let near = NEAR * started;
        let grown = p.rate().unwrap();
        assert!(grown > near && grown < near + 0.2, "{grown} against {near}");
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
        for (i, e) in early[..8].iter().enumerate() {
            p.answered(t0, *e, i < 4);
        }
        assert_eq!(p.rate(), Some(4.0));
        // The rest of the burst answers throttled too: sent before the pace, they cut nothing.
        for e in &early[8..] {
            p.answered(t0 + ms(300), *e, true);
        }
        assert_eq!(p.rate(), Some(4.0));
        // At the pace: two throttles in eight answers are not heavy (the six successes, with
        // calls queued, raise it a little: half refused set no limit to creep to); three in
        // nine are.
        let now = t0 + Duration::from_secs(3);
        burst(&p, now, 8, 2);
        let raised = p.rate().unwrap();
        assert!((raised - 4.6).abs() < 1e-9, "{raised}");
        let e = p.reserve(now).1;
        p.answered(now, e, true);
        assert!((p.rate().unwrap() - raised * CUT).abs() < 1e-9);
    }

    #[test]
    fn never_below_the_floor_and_grows_only_while_calls_queue() {
        let p = Pacer::default();
        let t0 = Instant::now();
        burst(&p, t0, 8, 4);
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
        burst(&p, now(), 8, 4);
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

    #[tokio::test(start_paused = true)]
    async fn a_cut_while_a_slot_comes_voids_it_and_a_drained_line_starts_again() {
        let p = Arc::new(Pacer::default());
        let t0 = now();
        burst(&p, t0, 8, 4);
        assert_eq!(p.rate(), Some(4.0));
        let waiting = {
            let p = p.clone();
            tokio::spawn(async move {
                p.slot(0).await;
                tokio::time::Instant::now()
            })
        };
        // Its slot would come 250 ms on; at 100 ms the pace proves too fast and is cut.
        tokio::time::sleep(ms(100)).await;
        let epoch = p.state.lock().unwrap().epoch;
        for _ in 0..8 {
            p.answered(now(), epoch, true);
        }
        assert!((p.rate().unwrap() - 4.0 * CUT).abs() < 1e-9);
        // It goes one interval of the new pace after the cut (100 + 357 ms), not after the
        // old pace's next slot (500 ms).
        let went = waiting.await.unwrap().into_std() - t0;
        assert!((ms(450)..=ms(460)).contains(&went), "{went:?}");
        // Nobody waits now; a call long after goes at once.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let before = tokio::time::Instant::now();
        p.slot(0).await;
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
