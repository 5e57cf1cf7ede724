//! Reads gathered across the nodes of a run: the first ask of a kind of read waits a few
//! milliseconds for the others, then one call answers them all (tags by ARN in bulk, ECS
//! services, target groups, ELB tags, IAM roles), where each node would make its own. Keys
//! known together ([`ask_at_once`]: the ARNs a look knows before its nodes read) go out at
//! once.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::error::Failure;

/// How long the first ask waits for others before the call goes out.
const GATHER: Duration = Duration::from_millis(60);

type Waiter<V> = oneshot::Sender<Option<V>>;
/// Where one key's answer comes.
pub type Answer<V> = oneshot::Receiver<Option<V>>;
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
    let (_, answer) = ask_within(
        gathering,
        group,
        vec![key.to_string()],
        per_call,
        read,
        GATHER,
    )
    .pop()?;
    answer.await.ok().flatten()
}

/// [`ask`] for `keys` known together (what a look knows before its nodes read): when they
/// open their group's gathering, the read goes out at once rather than after the others'
/// few milliseconds, and asks that come while it is out make the next read. Each key's
/// answer comes on its receiver.
pub fn ask_at_once<V, F, Fut>(
    gathering: Arc<Gathering<V>>,
    group: &str,
    keys: Vec<String>,
    per_call: usize,
    read: F,
) -> Vec<(String, Answer<V>)>
where
    V: Clone + Send + 'static,
    F: Fn(Vec<String>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<HashMap<String, V>, Failure>> + Send,
{
    ask_within(gathering, group, keys, per_call, read, Duration::ZERO)
}

/// Adds `keys` to `group`'s waiting asks and answers their receivers. Keys that open the
/// group send its read after `wait`, in a task of its own (the node that asked first may be
/// cancelled, the others wait), `per_call` keys a read.
fn ask_within<V, F, Fut>(
    gathering: Arc<Gathering<V>>,
    group: &str,
    keys: Vec<String>,
    per_call: usize,
    read: F,
    wait: Duration,
) -> Vec<(String, Answer<V>)>
where
    V: Clone + Send + 'static,
    F: Fn(Vec<String>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<HashMap<String, V>, Failure>> + Send,
{
    if keys.is_empty() {
        return Vec::new();
    }
    let (answers, first) = {
        let mut asks = gathering
            .asks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let waiting = asks.entry(group.to_string()).or_default();
        let first = waiting.is_empty();
        let answers: Vec<_> = keys
            .into_iter()
            .map(|key| {
                let (tx, rx) = oneshot::channel();
                waiting.push((key.clone(), tx));
                (key, rx)
            })
            .collect();
        (answers, first)
    };
    if !first {
        return answers;
    }
    let group = group.to_string();
    tokio::spawn(async move {
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
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
    answers
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::{ask, ask_at_once, Gathering};
    use crate::error::Failure;

    type Reads = Arc<Mutex<Vec<(Duration, Vec<String>)>>>;

    /// A read that notes when it went out and with which keys, and answers each key's length.
    fn read(
        reads: Reads,
        start: tokio::time::Instant,
    ) -> impl Fn(Vec<String>) -> std::future::Ready<Result<HashMap<String, usize>, Failure>>
           + Send
           + Sync
           + 'static {
        move |keys: Vec<String>| {
            reads.lock().unwrap().push((start.elapsed(), keys.clone()));
            std::future::ready(Ok(keys.into_iter().map(|k| (k.clone(), k.len())).collect()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn keys_known_together_go_out_at_once_and_a_later_ask_waits_for_company() {
        let gathering = Arc::new(Gathering::default());
        let reads: Reads = Arc::default();
        let start = tokio::time::Instant::now();
        let keys = vec!["a".to_string(), "bb".to_string()];
        let answers = ask_at_once(
            gathering.clone(),
            "home",
            keys,
            100,
            read(reads.clone(), start),
        );
        let mut got = Vec::new();
        for (key, rx) in answers {
            got.push((key, rx.await.unwrap()));
        }
        assert_eq!(
            got,
            [("a".to_string(), Some(1)), ("bb".to_string(), Some(2))]
        );
        // One read of both, sent without waiting; an ask after it waits the gathering's time
        // for others and makes a read of its own.
        let later = ask(gathering, "home", "ccc", 100, read(reads.clone(), start)).await;
        assert_eq!(later, Some(3));
        let reads = reads.lock().unwrap().clone();
        assert_eq!(reads.len(), 2, "{reads:?}");
        assert_eq!(reads[0], (Duration::ZERO, vec!["a".into(), "bb".into()]));
        assert_eq!(reads[1], (Duration::from_millis(60), vec!["ccc".into()]));
    }
}
