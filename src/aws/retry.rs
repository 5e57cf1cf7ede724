//! Retrying calls that AWS rejects while another resource becomes visible (eventual
//! consistency): PLATFORM.md's "When a dependent call may start" names each case.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::Failure;

/// Calls `f` until it succeeds, fails with an error `retry_if` does not accept, or `budget`
/// is spent; backoff doubles from 1 s up to 10 s. The last failure says how long it retried.
pub async fn eventually<T, F, Fut>(
    budget: Duration,
    retry_if: impl Fn(&Failure) -> bool,
    mut f: F,
) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let start = Instant::now();
    let mut backoff = Duration::from_secs(1);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if retry_if(&e) && start.elapsed() + backoff <= budget => {
                tracing::debug!(code = %e.code, "retrying: {}", e.message);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
            Err(e) if retry_if(&e) => {
                let secs = start.elapsed().as_secs();
                return Err(e.context(format!("still failing after retrying for {secs}s")));
            }
            Err(e) => return Err(e),
        }
    }
}

/// True when the failure has `code` and its message contains `fragment`.
pub fn is(f: &Failure, code: &str, fragment: &str) -> bool {
    f.code == code && f.message.contains(fragment)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn retries_only_what_it_is_told() {
        let n = AtomicU32::new(0);
        let r = eventually(
            Duration::from_secs(60),
            |f| f.code == "Later",
            || async {
                if n.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(Failure::new("Later", "not yet"))
                } else {
                    Ok(7)
                }
            },
        )
        .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(n.load(Ordering::SeqCst), 3);

        let r: Result<(), _> = eventually(
            Duration::from_secs(60),
            |f| f.code == "Later",
            || async { Err(Failure::new("Malformed", "bad policy")) },
        )
        .await;
        assert_eq!(r.unwrap_err().code, "Malformed");

        let r: Result<(), _> = eventually(
            Duration::from_secs(5),
            |f| f.code == "Later",
            || async { Err(Failure::new("Later", "not yet")) },
        )
        .await;
        assert!(r.unwrap_err().message.contains("after retrying"));
    }
}
