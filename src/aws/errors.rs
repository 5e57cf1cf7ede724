//! SDK errors -> [`Failure`]: the AWS error code and message when the service answered,
//! a transport message naming the endpoint when it did not.

use std::error::Error as StdError;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::error::Failure;

impl<E> From<SdkError<E, HttpResponse>> for Failure
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    fn from(err: SdkError<E, HttpResponse>) -> Self {
        let lost = lost_answer(&err);
        let (code, message) = match &err {
            SdkError::ServiceError(se) => {
                let e = se.err();
                // A response without an error body (HEAD, some S3 errors): name the status.
                let status = se.raw().status().as_u16();
                let code = e
                    .code()
                    .map(String::from)
                    .unwrap_or_else(|| format!("Http{status}"));
                let mut message = format!(
                    "{code}: {}",
                    e.message().unwrap_or(&format!("HTTP status {status}"))
                );
                if REJECTED_CREDENTIALS.contains(&code.as_str()) {
                    message.push_str(
                        "; check the AWS credentials (AWS_PROFILE and `aws sso login`, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) and that they belong to the intended account",
                    );
                }
                (code, message)
            }
            _ if let Some(lost) = lost => (super::calls::ANSWER_LOST.to_string(), lost),
            SdkError::DispatchFailure(_) if chain(&err).contains("loading credentials") => (
                "Credentials".to_string(),
                format!(
                    "no usable AWS credentials ({}); set AWS_PROFILE (and `aws sso login`), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                    chain(&err)
                ),
            ),
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => (
                "Transport".to_string(),
                format!(
                    "could not reach AWS ({}); check the endpoint, the network and AWS_ENDPOINT_URL",
                    chain(&err)
                ),
            ),
            SdkError::ConstructionFailure(_) => (
                "Credentials".to_string(),
                format!(
                    "could not sign or build the request ({}); check the AWS credentials (AWS_PROFILE, `aws sso login`, AWS_ACCESS_KEY_ID)",
                    chain(&err)
                ),
            ),
            _ => ("Sdk".to_string(), chain(&err)),
        };
        Failure {
            code,
            message,
            source: Some(Box::new(err)),
        }
    }
}

/// Codes AWS answers for credentials it does not accept.
const REJECTED_CREDENTIALS: &[&str] = &[
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "UnrecognizedClientException",
    "AuthFailure",
];

/// The message of a [`super::calls::LostAnswer`] somewhere in `err`'s causes.
fn lost_answer(err: &(dyn StdError + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(lost) = e.downcast_ref::<super::calls::LostAnswer>() {
            return Some(lost.to_string());
        }
        cur = e.source();
    }
    None
}

/// The error and its causes on one line.
pub fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = e.source();
    }
    parts.join(": ")
}

/// A request the SDK would not build (a required field left out): a bug in tap-provision.
impl From<aws_smithy_types::error::operation::BuildError> for Failure {
    fn from(e: aws_smithy_types::error::operation::BuildError) -> Self {
        Failure::new(
            "InvalidRequest",
            format!("the request could not be built ({e}): a bug in tap-provision"),
        )
    }
}

/// An identifier AWS should have returned: an empty or missing one is a named error, never
/// an empty string sent on to the next call or published to dependents.
pub trait Required<'a> {
    fn required(self, what: &str) -> Result<&'a str, Failure>;
}

impl<'a> Required<'a> for Option<&'a str> {
    fn required(self, what: &str) -> Result<&'a str, Failure> {
        self.filter(|s| !s.is_empty())
            .ok_or_else(|| Failure::missing(what))
    }
}

/// Codes meaning "it is not there", across the services used here (S3 says `NoSuchBucket`,
/// `NoSuchBucketPolicy`, `ServerSideEncryptionConfigurationNotFoundError`).
pub fn is_not_found(f: &Failure) -> bool {
    f.code.ends_with("NotFound")
        || f.code.ends_with("NotFoundException")
        || f.code.ends_with("NotFoundFault")
        || f.code.ends_with("NotFoundError")
        || f.code.starts_with("NoSuch")
        || matches!(
            f.code.as_str(),
            "NotFoundException" | "NoSuchEntity" | "ResourceNotFoundException"
        )
}

/// "Not there" as a value: `Ok(None)` when AWS answers with a not-found code, so finds and
/// deletes (where absent means done) need no match of their own.
pub trait OrAbsent<T> {
    fn or_absent(self) -> Result<Option<T>, Failure>;
}

impl<T, E> OrAbsent<T> for Result<T, E>
where
    Failure: From<E>,
{
    fn or_absent(self) -> Result<Option<T>, Failure> {
        match self.map_err(Failure::from) {
            Ok(v) => Ok(Some(v)),
            Err(f) if is_not_found(&f) => Ok(None),
            Err(f) => Err(f),
        }
    }
}

/// Codes a create answers when what it makes is there already, across the services used
/// here: the create's own earlier attempt made it (its answer was lost and the SDK tried
/// again), or a killed run did. The node then looks for it before it fails.
pub const ALREADY_EXISTS: &[&str] = &[
    "AlreadyExistsException",
    "BucketAlreadyOwnedByYou",
    "ConflictException",
    "DBClusterAlreadyExistsFault",
    "DBInstanceAlreadyExists",
    "DBSubnetGroupAlreadyExists",
    "DistributionAlreadyExists",
    "DuplicateListener",
    "DuplicateLoadBalancerName",
    "DuplicateTargetGroupName",
    "EntityAlreadyExists",
    "HostedZoneAlreadyExists",
    "InvalidGroup.Duplicate",
    "InvalidSubnet.Conflict",
    "OriginAccessControlAlreadyExists",
    "PriorityInUse",
    "ResourceAlreadyExistsException",
    "ResourceExistsException",
    "Resource.AlreadyAssociated",
    "RouteAlreadyExists",
];

/// A service whose creates may answer "it is there already" (an interrupted run made it):
/// the ones that find by name and create by name. The other creates used here are idempotent
/// by name or token (SNS CreateTopic, ECS CreateCluster, ACM, CloudWatch), or find first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreatedBy {
    Backup,
    Iam,
    Kms,
    Logs,
    Route53,
    S3,
    Scheduler,
    SecretsManager,
}

impl CreatedBy {
    /// The codes AWS documents for it on the creates used here. S3's `BucketAlreadyExists`
    /// is not one: that bucket name belongs to another account.
    pub fn already_exists(self) -> &'static [&'static str] {
        match self {
            // CreateBackupVault
            CreatedBy::Backup => &["AlreadyExistsException"],
            // CreatePolicy
            CreatedBy::Iam => &["EntityAlreadyExists"],
            // CreateAlias
            CreatedBy::Kms => &["AlreadyExistsException"],
            // CreateLogGroup
            CreatedBy::Logs => &["ResourceAlreadyExistsException"],
            // CreateHostedZone
            CreatedBy::Route53 => &["HostedZoneAlreadyExists"],
            // CreateBucket, in this account
            CreatedBy::S3 => &["BucketAlreadyOwnedByYou"],
            // CreateScheduleGroup, CreateSchedule
            CreatedBy::Scheduler => &["ConflictException"],
            // CreateSecret
            CreatedBy::SecretsManager => &["ResourceExistsException"],
        }
    }
}

/// "Already there" as a value: `Ok(None)` when AWS answers that the resource exists, in
/// `service`'s own words, for creates whose earlier attempt (an interrupted run) may have
/// succeeded. Any other answer, however it is spelled, is an error.
pub trait OrExists<T> {
    fn or_exists(self, service: CreatedBy) -> Result<Option<T>, Failure>;
}

impl<T, E> OrExists<T> for Result<T, E>
where
    Failure: From<E>,
{
    fn or_exists(self, service: CreatedBy) -> Result<Option<T>, Failure> {
        match self.map_err(Failure::from) {
            Ok(v) => Ok(Some(v)),
            Err(f) if service.already_exists().contains(&f.code.as_str()) => Ok(None),
            Err(f) => Err(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn already_exists_codes_become_none_in_their_service_only() {
        for (service, code) in [
            (CreatedBy::Logs, "ResourceAlreadyExistsException"),
            (CreatedBy::Kms, "AlreadyExistsException"),
            (CreatedBy::Backup, "AlreadyExistsException"),
            (CreatedBy::S3, "BucketAlreadyOwnedByYou"),
            // Secrets Manager's own word, which a suffix rule missed.
            (CreatedBy::SecretsManager, "ResourceExistsException"),
            (CreatedBy::Route53, "HostedZoneAlreadyExists"),
        ] {
            let r: Result<(), Failure> = Err(Failure::new(code, "there"));
            assert_eq!(r.or_exists(service).unwrap(), None, "{code}");
        }
        // Another service's word is an error here.
        let r: Result<(), Failure> = Err(Failure::new("AlreadyExistsException", "?"));
        assert!(r.or_exists(CreatedBy::SecretsManager).is_err());
        // Someone else's bucket of that name is not ours: an error.
        let r: Result<(), Failure> = Err(Failure::new("BucketAlreadyExists", "taken"));
        assert!(r.or_exists(CreatedBy::S3).is_err());
        let r: Result<(), Failure> = Err(Failure::new("SomethingAlreadyExistsElsewhere", "?"));
        assert!(r.or_exists(CreatedBy::Logs).is_err());
    }

    #[test]
    fn not_found_codes_become_none() {
        for code in [
            "InvalidVpcID.NotFound",
            "NatGatewayNotFound",
            "NoSuchEntity",
            "NotFoundException",
            "ResourceNotFoundException",
        ] {
            let r: Result<(), Failure> = Err(Failure::new(code, "gone"));
            assert_eq!(r.or_absent().unwrap(), None, "{code}");
        }
        let r: Result<(), Failure> = Err(Failure::new("DependencyViolation", "in use"));
        assert_eq!(r.or_absent().unwrap_err().code, "DependencyViolation");
        assert_eq!(Ok::<_, Failure>(3).or_absent().unwrap(), Some(3));
    }
}
