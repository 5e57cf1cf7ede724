//! The one polling helper for readiness that has no SDK waiter. Each resource supplies a
//! pure function from its status to a [`Poll`]; this loop adds the deadline and progress.

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

/// Polls until ready, failed or `timeout`. `progress` gets the current state and the time
/// waited so far after each poll. The timeout message says how to resume. Once `stop` is
/// set, the next poll that is not ready ends the wait with [`STOPPED`].
pub async fn until<F, Fut>(
    what: &str,
    timeout: Duration,
    interval: Duration,
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
    let mut interval = interval;
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
                // Poll quickly at first (emulators, fast resources), then back off to 15 s.
                interval = (interval * 3 / 2).min(Duration::from_secs(15));
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
            Duration::from_secs(1),
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
            Duration::from_secs(1),
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
            Duration::from_secs(1),
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
            Duration::from_secs(1),
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
            Duration::from_secs(1),
            &stop,
            |_, _| {},
            || async { Ok(Poll::Ready) },
        )
        .await;
        assert!(ready.is_ok());
    }
}
