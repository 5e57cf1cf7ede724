//! Pacing per service under AWS's rate limits, so a run slows down instead of failing.
//!
//! AWS limits each service's calls per account and region with a token bucket. The SDK's
//! standard retries back off one call at a time, spend a client-wide retry quota and give up
//! after a number of attempts; with dozens of calls in flight against a small bucket the quota
//! runs dry, and every throttled call after that fails at once. So each service client's HTTP
//! connector ([`PacedClient`]) does these things:
//!
//! - **It resends a throttled request itself**, after a slot of the service's pace, for as
//!   long as the request's signature holds ([`RESEND_WITHIN`]). A throttle then spends none of
//!   the SDK's attempts, which stay for server errors and dropped connections (each client's
//!   retry quota is unlimited, see `Clients::load`); a run fails for throttling only when AWS
//!   refuses one call for minutes.
//! - **It paces the service once the throttling is heavy** ([`Pacer`], in `pacer.rs`): half
//!   of its last answers throttled. The calls are then spaced at the rate that went through
//!   in the last second, cut by 30 % while a third of the answers at a rate are still
//!   throttled, and raised a little on each success while calls queue: fast up to near the
//!   pace last found too fast, slowly from there, and a tenth back at the first throttle after
//!   a run of successes there. So it settles just under the limit: against a bucket of one
//!   token, any pace between R and 2R gets only every other attempt through. Scattered
//!   throttles (a busy account) seldom pace a service. Services that were not throttled are
//!   never slowed.
//! - **It hands a paced service's slots to the most urgent call first**: the one whose node
//!   has the longest chain of work waiting on it ([`super::pacer::PRIORITY`], set by the
//!   executor), so a security group that a database waits on is not sent after route-table
//!   associations nothing waits on. Calls outside a node (the lock, the record) go first.
//! - **It keeps EC2's documented buckets ahead of time** ([`super::ec2_buckets`]): an EC2
//!   call waits for its action's token (at most [`TOKEN_WAIT`]) before its first send.

use std::sync::Arc;
use std::time::Duration;

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
use super::ec2_buckets::{action_of, Buckets};
use super::pacer::{now, priority, Pacer, MAX_WAIT};

/// Whether `code` is AWS's answer to a throttled call: the SDK's own list
/// (`THROTTLING_ERRORS`) without `LimitExceededException`, which CloudWatch Logs, ACM, Backup,
/// Secrets Manager and Application Auto Scaling answer for a quota reached (resending would
/// not help; the SDK still retries it).
fn is_throttling(code: &str) -> bool {
    code != "LimitExceededException"
        && aws_runtime::retries::classifiers::THROTTLING_ERRORS.contains(&code)
}

/// A throttled request is resent only while less than this much time has passed since its
/// first send; with its backoff and its wait for a slot it goes out within 165 s of that, and
/// 255 s of signing (the first send waited for its token and its slot too), inside SigV4's 5
/// minutes.
/// After that the SDK retries it, signed anew.
pub const RESEND_WITHIN: Duration = Duration::from_secs(100);
/// The longest an EC2 call waits for its action's token ([`Buckets`]).
pub const TOKEN_WAIT: Duration = Duration::from_secs(30);
/// The longest a connector call lasts: its resends and their waits, and one more answer.
pub const LONGEST_CALL: Duration =
    Duration::from_secs(RESEND_WITHIN.as_secs() + MAX_WAIT.as_secs() + 60);

/// The HTTP client of one service: the shared connection pool, each attempt sent in a slot
/// of the service's [`Pacer`] and resent when throttled.
#[derive(Debug, Clone)]
pub struct PacedClient {
    inner: SharedHttpClient,
    pacer: Arc<Pacer>,
    /// EC2's buckets as this client spent them (EC2's client only).
    ec2_buckets: Option<Arc<Buckets>>,
    service: &'static str,
    calls: ApiCalls,
}

impl PacedClient {
    /// `service`: the name the run report gives the service's retries.
    pub fn new(inner: SharedHttpClient, service: &'static str, calls: ApiCalls) -> PacedClient {
        PacedClient {
            inner,
            pacer: Arc::default(),
            ec2_buckets: (service == "ec2").then(Arc::default),
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
        // The body is in memory (the upload's stalled-stream check is off, see `Clients::load`).
        let action = client.ec2_buckets.as_ref().and_then(|_| {
            let body = request.body().bytes()?;
            action_of(body).map(str::to_string)
        });
        HttpConnectorFuture::new(async move {
            let first = now();
            let mut request = request;
            let mut resends = 0u32;
            loop {
                let wait = backoff(resends);
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                if let (Some(buckets), Some(action), 0) = (&client.ec2_buckets, &action, resends) {
                    let wait = buckets.take(action, now()).min(TOKEN_WAIT);
                    if !wait.is_zero() {
                        tracing::debug!(action, ?wait, "EC2's bucket of the action is empty");
                        let unsent = Unsent(buckets, action);
                        tokio::time::sleep(wait).await;
                        std::mem::forget(unsent);
                    }
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
                    Some(next) if now().duration_since(first) < RESEND_WITHIN => {
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

/// A token taken for a call still waiting to be sent: given back if the call is dropped.
struct Unsent<'a>(&'a Buckets, &'a str);

impl Drop for Unsent<'_> {
    fn drop(&mut self) {
        self.0.give_back(self.1);
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

    /// A connector that answers every request with an empty 200.
    #[derive(Debug, Clone)]
    struct Answers;

    impl HttpConnector for Answers {
        fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
            let answer = HttpResponse::new(
                200.try_into().expect("a status"),
                SdkBody::from("<CreateVpcResponse/>"),
            );
            HttpConnectorFuture::ready(Ok(answer))
        }
    }

    impl HttpClient for Answers {
        fn http_connector(
            &self,
            _settings: &HttpConnectorSettings,
            _components: &RuntimeComponents,
        ) -> SharedHttpConnector {
            SharedHttpConnector::new(self.clone())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_ec2_call_sent_through_the_sdk_takes_a_token_of_its_action() {
        let paced = PacedClient::new(SharedHttpClient::new(Answers), "ec2", ApiCalls::default());
        let buckets = paced
            .ec2_buckets
            .clone()
            .expect("EC2's client keeps buckets");
        let ec2 = aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::Config::builder()
                .behavior_version_latest()
                .region(aws_sdk_ec2::config::Region::new("eu-west-1"))
                .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                    "AKID", "secret", None, None, "test",
                ))
                .http_client(paced)
                .build(),
        );
        let _ = ec2.create_vpc().cidr_block("10.0.0.0/16").send().await;
        // The call took one of CreateVpc's 50: 49 more go at once, the next waits 200 ms.
        let at = now();
        let waits: Vec<Duration> = (0..50).map(|_| buckets.take("CreateVpc", at)).collect();
        assert!(waits[..49].iter().all(Duration::is_zero), "{waits:?}");
        assert_eq!(waits[49], Duration::from_millis(200));
        // Another service's client keeps none.
        let s3 = PacedClient::new(SharedHttpClient::new(Answers), "s3", ApiCalls::default());
        assert!(s3.ec2_buckets.is_none());
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
}
