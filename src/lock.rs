//! One acting run (`up`, `repair`, `down`) at a time per environment: a lock object in the
//! environment's state bucket, taken and kept with S3 conditional writes only.
//!
//! - Taking it: PutObject with `If-None-Match: *`, which S3 refuses (412) when the object
//!   exists, so of two runs that start together exactly one gets it.
//! - Keeping it: the holder renews its lease (60 s, or `TAP_LOCK_LEASE_SECONDS`; divided by
//!   `TAP_TIME_SCALE`, but to no less than 30 s) every third of it with `If-Match: <its ETag>`;
//!   a refused renewal means someone else took it over or removed it (S3 answers `If-Match`
//!   on a missing key 404), and the run stops starting steps.
//!   Once the run is finishing (its steps done; its record, `repair`'s confirming look and
//!   its report left), it renews only from half the lease on ([`Lock::finishing`]).
//! - A held lock is waited for up to `--lock-timeout`, then the run exits naming the holder.
//!   It is taken over (`If-Match` on the holder's ETag, so only one waiter wins) when its lease
//!   has run out, or at once when its holder was on this host and that process is gone; one
//!   released in between (404) is taken anew with `If-None-Match`.
//! - Releasing it: DeleteObject with `If-Match`, so a run never deletes a lock taken over
//!   from it. `unlock --force` deletes it unconditionally, for people.
//!
//! `plan`, `drift` and `status` never take it: they only read.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::primitives::ByteStream;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Mutex};

use crate::aws::errors::OrAbsent;
use crate::error::Failure;
use crate::model::Events;

/// The lock object's key in the state bucket.
pub const KEY: &str = "tap-provision/lock.json";
/// How long a holder that stopped renewing keeps the lock: 60 s, or
/// `TAP_LOCK_LEASE_SECONDS`, divided by `TAP_TIME_SCALE` but to no less than
/// [`SCALED_LEASE_FLOOR`] (or the lease itself, when shorter), in whole seconds and at least 3
/// (it is stored as a time others compare with their clocks). Renewed every third of it.
pub fn lease() -> Duration {
    let secs = std::env::var("TAP_LOCK_LEASE_SECONDS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(60);
    lease_at(secs, crate::timing::scale())
}

/// The shortest a time scale makes a lease. The renewal's own call is not scaled: its
/// latency and, on a throttled service, its slot in the pace are real seconds, and at one S3
/// call a second they outlast a lease of a few seconds (the run would stop itself, its lock
/// "lost to nobody").
const SCALED_LEASE_FLOOR: u64 = 30;

fn lease_at(secs: u64, scale: f64) -> Duration {
    let scaled = (secs as f64 / scale).ceil() as u64;
    Duration::from_secs(scaled.max(secs.min(SCALED_LEASE_FLOOR)).max(3))
}

/// Whether a renewal that falls due goes out, with `left` of `lease` left: always while the
/// run acts (every third of the lease); once it is finishing, only when half the lease or
/// less is left, so its release does not wait for a renewal it is about to make useless. The
/// finishing renewer looks every sixth of the lease ([`nap`]), so a finish that drags on (S3
/// slow, throttled, `repair`'s confirming look) renews from half the lease left on, and a
/// failed renewal is tried again a sixth later while a sixth is still ahead ([`retries`]).
fn renews(finishing: bool, left: Duration, lease: Duration) -> bool {
    !finishing || left <= lease / 2
}

/// How long the renewer waits before it looks again: a third of `lease` while the run acts,
/// a sixth once it is finishing ([`renews`]).
fn nap(finishing: bool, lease: Duration) -> Duration {
    if finishing {
        lease / 6
    } else {
        lease / 3
    }
}

/// Whether a renewal that failed `elapsed` after the last one that went through is tried
/// again at the renewer's next look: only when that look still comes before the lease runs
/// out; past that, another run may take it over, so this one stops.
fn retries(finishing: bool, elapsed: Duration, lease: Duration) -> bool {
    elapsed + nap(finishing, lease) < lease
}
const POLL: Duration = Duration::from_secs(2);

/// Who holds the lock, as stored in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    /// `user@host`.
    pub owner: String,
    pub host: String,
    pub pid: u32,
    /// The AWS identity the run acts as.
    pub identity: String,
    pub command: String,
    pub run_id: String,
    /// Unix seconds.
    pub since: u64,
    /// Unix seconds: the lease's end unless renewed.
    pub expires: u64,
}

impl Holder {
    /// This process, about to run `command`.
    pub fn me(command: &str, identity: &str, run_id: &str) -> Holder {
        let host = host_name();
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        let now = unix_now();
        Holder {
            owner: format!("{user}@{host}"),
            host,
            pid: std::process::id(),
            identity: identity.to_string(),
            command: command.to_string(),
            run_id: run_id.to_string(),
            since: now,
            expires: now + lease().as_secs(),
        }
    }

    /// For messages: "`repair` by ops@host1 (pid 4242, arn:...) since 2026-12-01T03:00:00Z".
    pub fn describe(&self) -> String {
        format!(
            "`{}` by {} (pid {}, {}) since {}",
            self.command,
            self.owner,
            self.pid,
            self.identity,
            timestamp(self.since)
        )
    }

    /// The same run: a write of ours whose answer was lost and whose retry S3 refused.
    fn is(&self, other: &Holder) -> bool {
        self.run_id == other.run_id && self.pid == other.pid && self.host == other.host
    }

    fn expired(&self, now: u64) -> bool {
        self.expires < now
    }

    /// True when the holder ran on this host and that process no longer exists.
    fn gone_from_this_host(&self) -> bool {
        self.host == host_name()
            && std::path::Path::new("/proc/self").exists()
            && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// `2026-12-01T03:00:00Z`.
pub fn timestamp(unix: u64) -> String {
    aws_smithy_types::DateTime::from_secs(unix as i64)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_else(|_| unix.to_string())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// Why a run did not get the lock.
#[derive(Debug)]
pub enum LockError {
    /// Still held by someone else after the timeout.
    Held(Holder),
    /// Ctrl-C while waiting.
    Interrupted,
    Aws(Failure),
}

/// The lock, held; renewed in the background until [`Lock::release`].
pub struct Lock {
    /// Another run held it first: what that run changed may not be observed yet.
    pub waited: bool,
    me: Holder,
    s3: aws_sdk_s3::Client,
    bucket: String,
    etag: Arc<Mutex<String>>,
    renewer: tokio::task::JoinHandle<()>,
    /// Tells the renewer to stop once no renewal is in flight.
    stop: Arc<tokio::sync::Notify>,
    /// Set once the run is finishing ([`Lock::finishing`]).
    finishing: Arc<AtomicBool>,
}

enum Put {
    Done(String),
    /// Refused: the object exists (If-None-Match), or changed or is gone (If-Match).
    Refused,
}

async fn put(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    holder: &Holder,
    if_match: Option<&str>,
) -> Result<Put, Failure> {
    let body = serde_json::to_vec_pretty(holder)
        .map_err(|e| Failure::new("Internal", format!("encoding the lock: {e}")))?;
    let mut call = s3
        .put_object()
        .bucket(bucket)
        .key(KEY)
        .content_type("application/json")
        .body(ByteStream::from(body));
    call = match if_match {
        Some(etag) => call.if_match(etag),
        None => call.if_none_match("*"),
    };
    match call.send().await {
        Ok(out) => Ok(Put::Done(out.e_tag().unwrap_or_default().to_string())),
        Err(e) => {
            let f = Failure::from(e);
            // 412 when the condition fails; 409 when another conditional write raced it; 404
            // when If-Match finds no object (the lock released since it was read).
            if matches!(
                f.code.as_str(),
                "PreconditionFailed" | "ConditionalRequestConflict"
            ) || (if_match.is_some() && f.code == "NoSuchKey")
            {
                Ok(Put::Refused)
            } else {
                Err(f.context(format!("writing the lock s3://{bucket}/{KEY}")))
            }
        }
    }
}

/// The lock as stored, with its ETag; `None` when nobody holds it.
pub async fn read(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<Option<(Holder, String)>, Failure> {
    let Some((bytes, etag)) = crate::record::read_object(s3, bucket, KEY, None, "the lock").await?
    else {
        return Ok(None);
    };
    let holder = serde_json::from_slice::<Holder>(&bytes).map_err(|e| {
        Failure::new(
            "BadLock",
            format!(
                "s3://{bucket}/{KEY} is not a tap-provision lock ({e}); if no run is going on, \
                 remove it with `tap-provision unlock --force`"
            ),
        )
    })?;
    Ok(Some((holder, etag)))
}

/// Takes the lock for `me`, waiting up to `timeout` while someone else holds it. When the
/// lease cannot be renewed later (taken over or removed), `lost` is set so the run stops.
pub async fn acquire(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    me: Holder,
    timeout: Duration,
    events: Arc<dyn Events>,
    lost: Arc<watch::Sender<bool>>,
) -> Result<Lock, LockError> {
    let started = Instant::now();
    let mut cancel = lost.subscribe();
    let mut said = None;
    let mut contended = false;
    let etag = loop {
        let mut fresh = me.clone();
        fresh.expires = unix_now() + lease().as_secs();
        if let Put::Done(etag) = put(s3, bucket, &fresh, None)
            .await
            .map_err(LockError::Aws)?
        {
            break etag;
        }
        contended = true;
        let Some((holder, their_etag)) = read(s3, bucket).await.map_err(LockError::Aws)? else {
            continue; // released in between: try again at once
        };
        if holder.is(&me) {
            break their_etag; // our own write, answered after all
        }
        let why = if holder.expired(unix_now()) {
            Some("its lease ran out")
        } else if holder.gone_from_this_host() {
            Some("its process on this host is gone")
        } else {
            None
        };
        if let Some(why) = why {
            if let Put::Done(etag) = put(s3, bucket, &fresh, Some(&their_etag))
                .await
                .map_err(LockError::Aws)?
            {
                events.warn(&format!(
                    "took over the lock of {} ({why})",
                    holder.describe()
                ));
                break etag;
            }
            continue; // another waiter took it first
        }
        if started.elapsed() >= timeout {
            return Err(LockError::Held(holder));
        }
        if said.as_ref() != Some(&holder) {
            events.note(&format!(
                "waiting up to {}s for the lock held by {}",
                timeout.as_secs(),
                holder.describe()
            ));
            said = Some(holder);
        }
        tokio::select! {
            _ = tokio::time::sleep(
                crate::timing::scaled(POLL).min(timeout.saturating_sub(started.elapsed()))
            ) => {}
            _ = cancel.changed() => return Err(LockError::Interrupted),
        }
    };
    let etag = Arc::new(Mutex::new(etag));
    let stop = Arc::new(tokio::sync::Notify::new());
    let finishing = Arc::new(AtomicBool::new(false));
    let renewer = tokio::spawn(renew(
        s3.clone(),
        bucket.to_string(),
        me.clone(),
        etag.clone(),
        events,
        (lost, stop.clone(), finishing.clone()),
    ));
    Ok(Lock {
        waited: contended,
        me,
        s3: s3.clone(),
        bucket: bucket.to_string(),
        etag,
        renewer,
        stop,
        finishing,
    })
}

async fn renew(
    s3: aws_sdk_s3::Client,
    bucket: String,
    mut me: Holder,
    etag: Arc<Mutex<String>>,
    events: Arc<dyn Events>,
    (lost, stop, finishing): (
        Arc<watch::Sender<bool>>,
        Arc<tokio::sync::Notify>,
        Arc<AtomicBool>,
    ),
) {
    let mut renewed = Instant::now();
    loop {
        // A release stops it between renewals, not inside one: a renewal S3 stored but
        // whose answer was dropped would leave the release the old ETag (refused, then a
        // read and a second delete: two more round trips at the end of the run).
        tokio::select! {
            _ = tokio::time::sleep(nap(finishing.load(Ordering::Relaxed), lease())) => {}
            _ = stop.notified() => return,
        }
        // Read once per look: this renewal's going out and its retry follow one rule.
        let finishing_now = finishing.load(Ordering::Relaxed);
        let left = lease().saturating_sub(renewed.elapsed());
        if !renews(finishing_now, left, lease()) {
            continue;
        }
        me.expires = unix_now() + lease().as_secs();
        let current = etag.lock().await.clone();
        // A renewal still unanswered when the lease runs out counts as failed: another run
        // may take the lock from then on (throttle resends and network timeouts are longer
        // than a scaled lease).
        let answer = tokio::time::timeout(left, put(&s3, &bucket, &me, Some(&current)))
            .await
            .unwrap_or_else(|_| {
                Err(Failure::new(
                    "Timeout",
                    format!("no answer within the {}s left of the lease", left.as_secs()),
                ))
            });
        let lost_to = match answer {
            Ok(Put::Done(new)) => {
                *etag.lock().await = new;
                renewed = Instant::now();
                None
            }
            Ok(Put::Refused) => match read(&s3, &bucket).await {
                // Our renewal went through and only its answer was lost.
                Ok(Some((h, stored))) if h.is(&me) => {
                    *etag.lock().await = stored;
                    renewed = Instant::now();
                    None
                }
                Ok(Some((h, _))) => Some(h.describe()),
                // Removed (`unlock --force`): the next run to come may take it.
                Ok(None) => Some("nobody: it was removed".into()),
                // Unknown, so given up as lost all the same: the run stops starting steps.
                Err(f) => Some(format!(
                    "someone else, perhaps (reading it after the refusal failed: {f})"
                )),
            },
            Err(f) if retries(finishing_now, renewed.elapsed(), lease()) => {
                events.warn(&format!("renewing the lock: {f}"));
                None
            }
            Err(f) => Some(format!("nobody, but its lease could not be renewed ({f})")),
        };
        if let Some(by) = lost_to {
            events.warn(&format!(
                "lost the lock of s3://{bucket}/{KEY} to {by}: starting no new step"
            ));
            let _ = lost.send(true);
            return;
        }
    }
}

impl Lock {
    /// The run's steps are done and what is left is storing its record (`repair` looks again)
    /// and its report, then the release: from now on the lease is renewed only from half of
    /// it on ([`renews`]).
    pub fn finishing(&self) {
        self.finishing.store(true, Ordering::Relaxed);
    }

    /// Stops renewing (a renewal in flight is let finish, for up to a third of the lease)
    /// and deletes the lock if it is still this run's.
    pub async fn release(mut self, events: &dyn Events) {
        self.stop.notify_one();
        if tokio::time::timeout(nap(false, lease()), &mut self.renewer)
            .await
            .is_err()
        {
            self.renewer.abort();
            let _ = (&mut self.renewer).await;
        }
        let mut etag = self.etag.lock().await.clone();
        let mut out = self.delete(&etag).await;
        if matches!(&out, Err(f) if f.code == "PreconditionFailed") {
            // A renewal that timed out or was cut short may have stored a newer version:
            // still ours?
            if let Ok(Some((h, stored))) = read(&self.s3, &self.bucket).await {
                if h.is(&self.me) {
                    etag = stored;
                    out = self.delete(&etag).await;
                }
            }
        }
        if let Err(f) = out {
            if !matches!(f.code.as_str(), "PreconditionFailed" | "NoSuchBucket") {
                events.warn(&format!(
                    "releasing the lock s3://{}/{KEY}: {f}; it expires within {}s",
                    self.bucket,
                    lease().as_secs()
                ));
            }
        }
    }
}

impl Lock {
    async fn delete(&self, etag: &str) -> Result<Option<()>, Failure> {
        self.s3
            .delete_object()
            .bucket(&self.bucket)
            .key(KEY)
            .if_match(etag)
            .send()
            .await
            .map(|_| ())
            .or_absent()
    }
}

/// Deletes the lock as read (If-Match: a run that took it meanwhile keeps it); what it held.
pub async fn force_unlock(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<Option<Holder>, Failure> {
    let Some((holder, etag)) = read(s3, bucket).await? else {
        return Ok(None);
    };
    s3.delete_object()
        .bucket(bucket)
        .key(KEY)
        .if_match(etag)
        .send()
        .await
        .or_absent()
        .map_err(|f| {
            f.context(format!(
                "deleting the lock s3://{bucket}/{KEY} (a run may have taken it meanwhile: run `unlock` again)"
            ))
        })?;
    Ok(Some(holder))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_is_divided_by_the_time_scale_down_to_30_s_and_never_below_3_s() {
        assert_eq!(lease_at(60, 1.0), Duration::from_secs(60));
        assert_eq!(lease_at(120, 2.0), Duration::from_secs(60));
        assert_eq!(lease_at(120, 7.0), Duration::from_secs(30));
        assert_eq!(lease_at(60, 1.5), Duration::from_secs(40));
        assert_eq!(lease_at(60, 10.0), Duration::from_secs(30));
        assert_eq!(lease_at(60, 30.0), Duration::from_secs(30));
        // A lease set shorter than the floor is kept as set (tests of take-overs).
        assert_eq!(lease_at(20, 10.0), Duration::from_secs(20));
        assert_eq!(lease_at(3, 10.0), Duration::from_secs(3));
        assert_eq!(lease_at(1, 1.0), Duration::from_secs(3));
    }

    /// The renewer's looks over one lease from its last renewal that went through, every
    /// renewal failing: when it tries (elapsed), and whether it then goes on.
    fn tries(finishing: bool, lease: Duration) -> Vec<Duration> {
        let (mut elapsed, mut tried) = (Duration::ZERO, Vec::new());
        loop {
            elapsed += nap(finishing, lease);
            if elapsed >= lease {
                return tried;
            }
            if renews(finishing, lease - elapsed, lease) {
                tried.push(elapsed);
                if !retries(finishing, elapsed, lease) {
                    return tried; // the lock given up as lost
                }
            }
        }
    }

    #[test]
    fn a_finishing_run_renews_from_half_the_lease_on_and_still_tries_again() {
        let lease = Duration::from_secs(60);
        // Acting: every renewal that falls due goes out.
        assert!(renews(false, Duration::from_secs(40), lease));
        assert!(renews(false, Duration::from_secs(5), lease));
        // Finishing: not while more than half is left.
        assert!(!renews(true, Duration::from_secs(40), lease));
        assert!(!renews(true, Duration::from_millis(30_001), lease));
        assert!(renews(true, Duration::from_secs(30), lease));
        assert!(renews(true, Duration::ZERO, lease));
        // Every renewal failing: acting tries at a third and two thirds of the lease;
        // finishing from half on, a sixth apart, the last with a sixth still ahead.
        let secs = |v: &[u64]| {
            v.iter()
                .map(|s| Duration::from_secs(*s))
                .collect::<Vec<_>>()
        };
        assert_eq!(tries(false, lease), secs(&[20, 40]));
        assert_eq!(tries(true, lease), secs(&[30, 40, 50]));
        assert_eq!(tries(true, Duration::from_secs(30)).len(), 3);
    }

    #[test]
    fn a_lease_expires_and_a_timestamp_reads_as_utc() {
        let mut h = Holder::me("repair", "arn:aws:iam::1:user/ops", "1");
        assert!(!h.expired(h.since));
        h.expires = h.since - 1;
        assert!(h.expired(h.since));
        assert_eq!(timestamp(1_796_092_093), "2026-12-01T02:28:13Z");
        assert!(h.describe().starts_with("`repair` by "), "{}", h.describe());
    }

    #[test]
    fn a_holder_on_this_host_whose_process_is_gone_is_stale() {
        let mut h = Holder::me("up", "arn", "1");
        assert!(!h.gone_from_this_host(), "this process is alive");
        h.pid = u32::MAX; // no such process
        assert_eq!(
            h.gone_from_this_host(),
            std::path::Path::new("/proc/self").exists()
        );
        h.host = "another-host".into();
        assert!(
            !h.gone_from_this_host(),
            "another host's process is not ours to judge"
        );
    }
}
