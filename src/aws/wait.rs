//! The one polling helper for readiness that has no SDK waiter. Each resource supplies a
//! pure function from its status to a [`Poll`]; this loop adds the deadline and progress,
//! and polls on a schedule made from what it waits for ([`Expected`], the table below).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::Failure;

/// One observation of a resource's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll {
    /// Not there yet; the text is AWS's state (`pending`).
    Pending(String),
    Ready,
    /// A terminal state that will never become ready (`failed`), with AWS's reason.
    Failed(String),
}

/// The code of a wait ended by its `stop` flag: the run was interrupted (Ctrl-C, or its lock
/// lost) and starts no new step, so what a wait is waiting for (a certificate's validation
/// record, say) may never come. A wait writes nothing: ending it is safe, and the next run
/// resumes it.
pub const STOPPED: &str = "Interrupted";

/// How long AWS usually takes to reach a state: its median and its 95th percentile. A wait's
/// polls come from it ([`Expected::next`]): every second at first (an emulator, a resource
/// that was nearly there), growing to [`Expected::step`], a fortieth of the median (1 to
/// 20 s), so a wait of a minute or more ends within 2.5 % of its usual length after the
/// state is reached, and a 10-minute wait is not polled every second; past the 95th
/// percentile the polls thin out to four steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    pub median: Duration,
    pub slow: Duration,
}

/// The first poll interval of every wait (no step is shorter).
const FIRST_POLL: Duration = Duration::from_secs(1);

const fn expect(median_secs: u64, slow_secs: u64) -> Expected {
    Expected {
        median: Duration::from_secs(median_secs),
        slow: Duration::from_secs(slow_secs),
    }
}

/// The product's table of expected waits, one per state a node waits for. Sources: AWS's
/// documented or observed times for each (NAT gateway: "a few minutes", typically 1-2; Aurora:
/// an instance 6-10 minutes, 15-20 at p95, its cluster sooner; an ALB 2-3 minutes; a
/// CloudFront change 3-5 minutes, up to 10; ACM a few minutes once its DNS record is
/// visible; a Fargate service 2-3 minutes to steady state; a Route 53 change INSYNC in 30-60
/// s), the same figures the test front models (`tests/emulator/model.toml`).
pub mod expected {
    use super::{expect, Expected};

    pub const NAT_GATEWAY_AVAILABLE: Expected = expect(120, 240);
    pub const NAT_GATEWAY_DELETED: Expected = expect(60, 120);
    pub const AURORA_CLUSTER_AVAILABLE: Expected = expect(240, 480);
    pub const AURORA_CLUSTER_DELETED: Expected = expect(300, 600);
    pub const AURORA_INSTANCE_AVAILABLE: Expected = expect(480, 1020);
    pub const AURORA_INSTANCE_DELETED: Expected = expect(300, 600);
    pub const LOAD_BALANCER_ACTIVE: Expected = expect(150, 210);
    pub const LOAD_BALANCER_DELETED: Expected = expect(30, 120);
    pub const DISTRIBUTION_DEPLOYED: Expected = expect(240, 600);
    pub const CERTIFICATE_RECORDS: Expected = expect(10, 60);
    pub const CERTIFICATE_ISSUED: Expected = expect(180, 480);
    pub const ECS_SERVICE_STEADY: Expected = expect(150, 240);
    pub const ECS_SERVICE_DRAINED: Expected = expect(120, 300);
    pub const DNS_CHANGE_INSYNC: Expected = expect(45, 60);
    pub const BACKUP_VAULT_EMPTY: Expected = expect(10, 60);
    pub const SCHEDULE_GROUP_DELETED: Expected = expect(5, 30);
}

impl Expected {
    /// The steady poll interval: a fortieth of the median, from 1 s to 20 s.
    pub fn step(&self) -> Duration {
        (self.median / 40).clamp(Duration::from_secs(1), Duration::from_secs(20))
    }

    /// The interval after `last`, `waited` into the wait (both in AWS's time, unscaled):
    /// growing by half up to the step, and past the 95th percentile up to four steps.
    pub fn next(&self, last: Duration, waited: Duration) -> Duration {
        let cap = if waited > self.slow {
            self.step() * 4
        } else {
            self.step()
        };
        (last * 3 / 2).min(cap).max(last.min(cap))
    }
}

/// Polls until ready, failed or `timeout`. `progress` gets the current state and the time
/// waited so far after each poll. The timeout message says how to resume. Once `stop` is
/// set, the next poll that is not ready ends the wait with [`STOPPED`].
pub async fn until<F, Fut>(
    what: &str,
    timeout: Duration,
    expected: Expected,
    stop: &AtomicBool,
    progress: impl Fn(&str, Duration),
    mut poll: F,
) -> Result<(), Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll, Failure>>,
{
    let start = Instant::now();
    let timeout = crate::timing::scaled(timeout);
    let mut interval = FIRST_POLL;
    loop {
        match poll().await? {
            Poll::Ready => return Ok(()),
            Poll::Failed(reason) => {
                return Err(Failure::new(
                    "Failed",
                    format!("{what} ended in a failed state: {reason}"),
                ))
            }
            Poll::Pending(state) => {
                if stop.load(Ordering::Relaxed) {
                    return Err(Failure::new(
                        STOPPED,
                        format!("{what}: stopped waiting at `{state}`, the run was interrupted; rerun to resume"),
                    ));
                }
                let waited = start.elapsed();
                if waited >= timeout {
                    return Err(Failure::new(
                        "Timeout",
                        format!(
                            "{what}: still `{state}` after {}s (timeouts.wait_seconds); rerun `tap-provision up` to resume",
                            crate::timing::unscaled(waited).as_secs()
                        ),
                    ));
                }
                progress(&state, waited);
                tokio::time::sleep(
                    crate::timing::scaled(interval).min(timeout.saturating_sub(waited)),
                )
                .await;
                interval = expected.next(interval, crate::timing::unscaled(waited));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn ready_failed_and_timeout() {
        let n = AtomicU32::new(0);
        let ok = until(
            "nat",
            Duration::from_secs(60),
            expected::DNS_CHANGE_INSYNC,
            &AtomicBool::new(false),
            |_, _| {},
            || async {
                Ok(if n.fetch_add(1, Ordering::SeqCst) < 3 {
                    Poll::Pending("pending".into())
                } else {
                    Poll::Ready
                })
            },
        )
        .await;
        assert!(ok.is_ok());

        let failed = until(
            "nat",
            Duration::from_secs(60),
            expected::DNS_CHANGE_INSYNC,
            &AtomicBool::new(false),
            |_, _| {},
            || async { Ok(Poll::Failed("Subnet has no internet gateway".into())) },
        )
        .await
        .unwrap_err();
        assert!(failed.message.contains("no internet gateway"));

        let timeout = until(
            "NAT gateway nat-1",
            Duration::from_secs(30),
            expected::DNS_CHANGE_INSYNC,
            &AtomicBool::new(false),
            |_, _| {},
            || async { Ok(Poll::Pending("pending".into())) },
        )
        .await
        .unwrap_err();
        assert_eq!(timeout.code, "Timeout");
        assert!(
            timeout.message.contains("still `pending` after 30s"),
            "{}",
            timeout.message
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopped_run_ends_its_waits_at_the_next_poll_and_keeps_a_ready_answer() {
        let stop = AtomicBool::new(true);
        let start = Instant::now();
        let stopped = until(
            "certificate",
            Duration::from_secs(1200),
            expected::DNS_CHANGE_INSYNC,
            &stop,
            |_, _| {},
            || async { Ok(Poll::Pending("PENDING_VALIDATION".into())) },
        )
        .await
        .unwrap_err();
        assert_eq!(stopped.code, STOPPED);
        assert!(
            stopped.message.contains("PENDING_VALIDATION"),
            "{}",
            stopped.message
        );
        assert_eq!(start.elapsed(), Duration::ZERO, "no sleep once stopped");
        let ready = until(
            "certificate",
            Duration::from_secs(1200),
            expected::DNS_CHANGE_INSYNC,
            &stop,
            |_, _| {},
            || async { Ok(Poll::Ready) },
        )
        .await;
        assert!(ready.is_ok());
    }

    /// The times of the polls of a wait that never ends, up to `until`.
    fn poll_times(e: Expected, until: Duration) -> Vec<Duration> {
        let (mut at, mut interval, mut times) = (Duration::ZERO, FIRST_POLL, vec![]);
        while at < until {
            times.push(at);
            at += interval;
            interval = e.next(interval, at);
        }
        times
    }

    #[test]
    fn each_kind_is_polled_for_its_own_wait() {
        use expected::*;
        let aurora = poll_times(AURORA_INSTANCE_AVAILABLE, Duration::from_secs(600));
        // Quick at first, then every 12 s: a state reached at any moment is seen within
        // 2.5 % of the median, in about 50 polls for 10 minutes, not 600.
        assert_eq!(
            &aurora[..4],
            &[0, 1000, 2500, 4750].map(Duration::from_millis)
        );
        let gaps: Vec<Duration> = aurora.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(gaps.iter().max(), Some(&Duration::from_secs(12)));
        assert!((45..=55).contains(&aurora.len()), "{}", aurora.len());
        // A Route 53 change (30-60 s) is polled about every second.
        let dns = poll_times(DNS_CHANGE_INSYNC, Duration::from_secs(60));
        let most = Duration::from_millis(1125);
        assert!(dns.windows(2).all(|w| w[1] - w[0] <= most));
        // Past the 95th percentile, polls thin out to four steps.
        let late = poll_times(NAT_GATEWAY_AVAILABLE, Duration::from_secs(600));
        let gap = |from: u64| {
            let w = late
                .windows(2)
                .find(|w| w[0] >= Duration::from_secs(from))
                .unwrap();
            w[1] - w[0]
        };
        assert_eq!(gap(200), Duration::from_secs(3));
        assert_eq!(gap(500), Duration::from_secs(12));
        // Every step is within 1 s and 20 s.
        for e in [
            CERTIFICATE_RECORDS,
            SCHEDULE_GROUP_DELETED,
            AURORA_INSTANCE_AVAILABLE,
        ] {
            assert!((Duration::from_secs(1)..=Duration::from_secs(20)).contains(&e.step()));
        }
    }
}
