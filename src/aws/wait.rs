//! The one polling helper for readiness that has no SDK waiter. Each resource supplies a
//! pure function from its status to a [`Poll`]; this loop adds the deadline and progress.

use std::future::Future;
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

/// Polls until ready, failed or `timeout`. `progress` gets the current state and the time
/// waited so far after each poll. The timeout message says how to resume.
pub async fn until<F, Fut>(
    what: &str,
    timeout: Duration,
    interval: Duration,
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
                let waited = start.elapsed();
                if waited >= timeout {
                    return Err(Failure::new(
                        "Timeout",
                        format!(
                            "{what}: still `{state}` after {}s (timeouts.wait_seconds); rerun `tap-provision up` to resume",
                            waited.mul_f64(crate::timing::scale()).as_secs()
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
}
