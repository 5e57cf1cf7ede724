//! Reads gathered across the nodes of a run: the first ask of a kind of read waits a few
//! milliseconds for the others, then one call answers them all (tags by ARN in bulk, ECS
//! services, target groups, ELB tags), where each node would make its own.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::error::Failure;

/// How long the first ask waits for others before the call goes out.
const GATHER: Duration = Duration::from_millis(60);

type Waiter<V> = oneshot::Sender<Option<V>>;
/// The asks of one group: each key with who waits for it.
type Asks<V> = Vec<(String, Waiter<V>)>;

/// Asks for one value per key, gathered for a few milliseconds and answered by one read per
/// `per_call` keys; kept in the run's [`super::Shared`] (one per kind of read).
pub struct Gathering<V> {
    asks: Mutex<HashMap<String, Asks<V>>>,
}

impl<V> Default for Gathering<V> {
    fn default() -> Self {
        Gathering {
            asks: Mutex::new(HashMap::new()),
        }
    }
}

/// The value of `key` from the read of its `group` (a region, a client), gathered with the
/// other asks of the next few milliseconds; `None` when the read left it out or failed (the
/// failure logged here: whoever asked reads its key on its own, which reports the error).
/// `read` takes at most `per_call` distinct keys and answers a value per key it found.
pub async fn ask<V, F, Fut>(
    gathering: Arc<Gathering<V>>,
    group: &str,
    key: &str,
    per_call: usize,
    read: F,
) -> Option<V>
where
    V: Clone + Send + 'static,
    F: Fn(Vec<String>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<HashMap<String, V>, Failure>> + Send,
{
    let (tx, rx) = oneshot::channel();
    let first = {
        let mut asks = gathering
            .asks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let waiting = asks.entry(group.to_string()).or_default();
        waiting.push((key.to_string(), tx));
        waiting.len() == 1
    };
    if first {
        // A task of its own: the node that asked first may be cancelled, the others wait.
        let group = group.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(GATHER).await;
            let mut asks = gathering
                .asks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&group)
                .unwrap_or_default();
            while !asks.is_empty() {
                let rest = asks.split_off(asks.len().min(per_call));
                let chunk = std::mem::replace(&mut asks, rest);
                let mut keys: Vec<String> = chunk.iter().map(|(k, _)| k.clone()).collect();
                keys.sort();
                keys.dedup();
                let found = read(keys)
                    .await
                    .map_err(|e| {
                        tracing::debug!(error = %e, "a gathered read failed; each of its keys is read on its own")
                    })
                    .ok();
                for (key, waiter) in chunk {
                    let _ = waiter.send(found.as_ref().and_then(|f| f.get(&key).cloned()));
                }
            }
        });
    }
    rx.await.ok().flatten()
}
