//! Retrying calls that AWS rejects while another resource becomes visible or usable
//! (eventual consistency) or while AWS finishes its own ordering. Each case is a named
//! [`Rule`]: PLATFORM.md's table "When a dependent call may start" names where each comes
//! from. Throttling and 5xx are not here: the SDK's standard retry mode takes them.
//!
//! A rule matches on the service's error code; where AWS gives a generic code for a specific
//! condition (RDS `InvalidParameterValue` for a role it cannot see yet), the rule also looks
//! for the fragment AWS documents for it, so a real parameter error still fails at once.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::Failure;

/// One condition worth retrying, how long, and why.
#[derive(Debug)]
pub struct Rule {
    /// What is going on, for the message when the budget runs out.
    pub name: &'static str,
    pub budget: Duration,
    pub matches: fn(&Failure) -> bool,
}

const TWO_MINUTES: Duration = Duration::from_secs(120);
const FIVE_MINUTES: Duration = Duration::from_secs(300);

fn code_and(f: &Failure, code: &str, fragment: &str) -> bool {
    f.code == code && f.message.contains(fragment)
}

/// A new KMS key is not visible to the service using it yet (PLATFORM.md: "new KMS key ->
/// RDS, Secrets Manager, SNS, Logs"). Logs' `AccessDeniedException` "not allowed to be used
/// with Arn" is a key-policy error and does not match.
pub const NEW_KEY_NOT_VISIBLE: Rule = Rule {
    name: "a new KMS key is not visible to the service yet",
    budget: TWO_MINUTES,
    matches: |f| {
        f.code == "KMSKeyNotAccessibleFault"
            || (f.code == "NotFoundException" && f.message.contains("Key"))
            || code_and(
                f,
                "InvalidParameterException",
                "KMS Key Id could not be found",
            )
    },
};

/// A new IAM role is not usable by RDS yet ("IAM role ARN value is invalid").
pub const NEW_ROLE_RDS: Rule = Rule {
    name: "a new IAM role is not visible to RDS yet",
    budget: TWO_MINUTES,
    matches: |f| code_and(f, "InvalidParameterValue", "IAM role ARN value is invalid"),
};

/// A new IAM role cannot be assumed by VPC flow logs yet ("Unable to assume given IAM role").
pub const NEW_ROLE_EC2: Rule = Rule {
    name: "a new IAM role cannot be assumed by EC2 yet",
    budget: TWO_MINUTES,
    matches: |f| code_and(f, "InvalidParameter", "Unable to assume"),
};

/// A new IAM role cannot be assumed by AWS Backup yet ("cannot be assumed").
pub const NEW_ROLE_BACKUP: Rule = Rule {
    name: "a new IAM role cannot be assumed by AWS Backup yet",
    budget: TWO_MINUTES,
    matches: |f| code_and(f, "InvalidParameterValueException", "cannot be assumed"),
};

/// A new IAM role cannot be assumed by ECS yet ("Unable to assume role").
pub const NEW_ROLE_ECS: Rule = Rule {
    name: "a new IAM role cannot be assumed by ECS yet",
    budget: TWO_MINUTES,
    matches: |f| code_and(f, "InvalidParameterException", "Unable to assume"),
};

/// A fresh account's first ECS cluster with capacity providers: ECS makes its
/// service-linked role on first use, and until it propagates CreateCluster and
/// PutClusterCapacityProviders answer "Unable to assume the service linked role" (the
/// Terraform AWS provider retries it too).
pub const NEW_ECS_SERVICE_LINKED_ROLE: Rule = Rule {
    name: "ECS's service-linked role is not usable yet",
    budget: TWO_MINUTES,
    matches: |f| code_and(f, "InvalidParameterException", "service linked role"),
};

/// A new IAM role cannot be assumed by EventBridge Scheduler yet: CreateSchedule checks
/// the target's role at once ("The execution role you provide must allow AWS EventBridge
/// Scheduler to assume the role").
pub const NEW_ROLE_SCHEDULER: Rule = Rule {
    name: "a new IAM role cannot be assumed by EventBridge Scheduler yet",
    budget: TWO_MINUTES,
    matches: |f| {
        code_and(
            f,
            "ValidationException",
            "must allow AWS EventBridge Scheduler",
        )
    },
};

/// A NAT gateway (or internet gateway) just created is not visible to CreateRoute yet
/// (PLATFORM.md: "NAT gateway pending -> CreateRoute: identifiers only").
pub const NEW_GATEWAY_NOT_VISIBLE: Rule = Rule {
    name: "a new gateway is not visible to EC2 yet",
    budget: TWO_MINUTES,
    matches: |f| f.code == "InvalidNatGatewayID.NotFound" || f.code == "InvalidGatewayID.NotFound",
};

/// Another instance call is in flight on the same Aurora cluster: calls on one cluster go
/// one after another (PLATFORM.md, tpa #50115); also the cluster while instances are being
/// deleted.
pub const DB_CLUSTER_BUSY: Rule = Rule {
    name: "the Aurora cluster is busy with another instance operation",
    budget: FIVE_MINUTES,
    matches: |f| {
        matches!(
            f.code.as_str(),
            "InvalidDBClusterStateFault" | "InvalidDBClusterStateFaultException"
        )
    },
};

/// An instance that is still being created or modified cannot be deleted yet.
pub const DB_INSTANCE_BUSY: Rule = Rule {
    name: "the Aurora instance is busy",
    budget: FIVE_MINUTES,
    matches: |f| f.code == "InvalidDBInstanceState" || f.code == "InvalidDBInstanceStateFault",
};

/// A DB subnet group stays in use for a moment after its cluster is gone.
pub const DB_SUBNET_GROUP_IN_USE: Rule = Rule {
    name: "the DB subnet group is still in use",
    budget: FIVE_MINUTES,
    matches: |f| f.code == "InvalidDBSubnetGroupStateFault",
};

/// ENIs of deleted NAT gateways, load balancers and tasks drain for a minute or two after
/// their owner is gone; until then the subnet, group, gateway or VPC answers
/// `DependencyViolation` (PLATFORM.md, Lifecycle: "ENIs before subnets and groups").
pub const ENIS_DRAINING: Rule = Rule {
    name: "network interfaces are still draining",
    budget: FIVE_MINUTES,
    matches: |f| f.code == "DependencyViolation",
};

/// A deleted NAT gateway keeps its Elastic IP until it is `deleted`.
pub const EIP_STILL_ASSOCIATED: Rule = Rule {
    name: "the Elastic IP is still held by a NAT gateway being deleted",
    budget: FIVE_MINUTES,
    matches: |f| f.code == "InvalidIPAddress.InUse",
};

/// A certificate stays in use for a moment after its listener or distribution is deleted.
pub const CERTIFICATE_IN_USE: Rule = Rule {
    name: "the certificate is still in use",
    budget: FIVE_MINUTES,
    matches: |f| f.code == "ResourceInUseException",
};

/// A target group stays in use for a moment after its rules and services are deleted.
pub const TARGET_GROUP_IN_USE: Rule = Rule {
    name: "the target group is still in use",
    budget: FIVE_MINUTES,
    matches: |f| f.code == "ResourceInUse",
};

/// A target group is not attached to the load balancer until its listener rule exists
/// (PLATFORM.md: "listener rule -> ECS CreateService": retry for 1 min).
pub const TARGET_GROUP_NOT_ATTACHED: Rule = Rule {
    name: "the target group is not attached to the load balancer yet",
    budget: Duration::from_secs(60),
    matches: |f| {
        code_and(
            f,
            "InvalidParameterException",
            "does not have an associated load balancer",
        )
    },
};

/// A service just created is not visible to Application Auto Scaling yet (PLATFORM.md: "ECS
/// service deploying -> RegisterScalableTarget -> PutScalingPolicy": 1-2 min).
pub const NEW_SERVICE_NOT_VISIBLE: Rule = Rule {
    name: "a new ECS service is not visible to Application Auto Scaling yet",
    budget: TWO_MINUTES,
    matches: |f| {
        code_and(f, "ValidationException", "ECS service doesn't exist")
            || f.code == "ObjectNotFoundException"
    },
};

/// ECS refuses a new service under the name of one still draining (deleted by hand, or by a
/// `down` that was interrupted): it lets the name go once its tasks have stopped.
pub const SERVICE_NAME_DRAINING: Rule = Rule {
    name: "a service of this name is still draining",
    budget: FIVE_MINUTES,
    matches: |f| code_and(f, "InvalidParameterException", "still Draining"),
};

/// ECS refuses to delete a cluster while its services drain and their tasks stop.
pub const SERVICES_DRAINING: Rule = Rule {
    name: "the cluster's services are still draining",
    budget: FIVE_MINUTES,
    matches: |f| {
        matches!(
            f.code.as_str(),
            "ClusterContainsServicesException" | "ClusterContainsTasksException"
        )
    },
};

/// IAM refuses to delete a role for a moment after its policies were removed.
pub const ROLE_DELETE_CONFLICT: Rule = Rule {
    name: "IAM still sees the role's policies",
    budget: Duration::from_secs(60),
    matches: |f| f.code == "DeleteConflict",
};

/// Calls `f` until it succeeds, fails with an error no rule in `rules` matches, or the
/// matching rule's budget is spent; backoff doubles from 1 s up to 10 s. The last failure
/// says what was retried and for how long.
pub async fn on<T, F, Fut>(rules: &[&Rule], mut f: F) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let start = Instant::now();
    let mut backoff = Duration::from_secs(1);
    loop {
        let e = match f().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let Some(rule) = rules.iter().find(|r| (r.matches)(&e)) else {
            return Err(e);
        };
        let scaled = crate::timing::scaled(backoff);
        if start.elapsed() + scaled > crate::timing::scaled(rule.budget) {
            let secs = crate::timing::unscaled(start.elapsed()).as_secs();
            return Err(e.context(format!(
                "still failing after retrying for {secs}s ({})",
                rule.name
            )));
        }
        tracing::debug!(code = %e.code, rule = rule.name, "retrying: {}", e.message);
        tokio::time::sleep(scaled).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    const LATER: Rule = Rule {
        name: "later",
        budget: Duration::from_secs(60),
        matches: |f| f.code == "Later",
    };

    #[tokio::test(start_paused = true)]
    async fn retries_only_what_a_rule_names() {
        let n = AtomicU32::new(0);
        let r = on(&[&LATER], || async {
            if n.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(Failure::new("Later", "not yet"))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(n.load(Ordering::SeqCst), 3);

        let r: Result<(), _> = on(&[&LATER], || async {
            Err(Failure::new("Malformed", "bad policy"))
        })
        .await;
        assert_eq!(r.unwrap_err().code, "Malformed");

        let r: Result<(), _> = on(&[&ENIS_DRAINING], || async {
            Err(Failure::new("DependencyViolation", "in use"))
        })
        .await;
        let e = r.unwrap_err();
        assert!(e.message.contains("after retrying"), "{}", e.message);
        assert!(e.message.contains("draining"), "{}", e.message);
    }

    #[test]
    fn rules_tell_propagation_from_configuration_errors() {
        let f = |code: &str, message: &str| Failure::new(code, message);
        assert!((NEW_ROLE_RDS.matches)(&f(
            "InvalidParameterValue",
            "IAM role ARN value is invalid or does not include the required permissions"
        )));
        assert!(!(NEW_ROLE_RDS.matches)(&f(
            "InvalidParameterValue",
            "Invalid DB instance class"
        )));
        assert!((NEW_KEY_NOT_VISIBLE.matches)(&f(
            "InvalidParameterException",
            "The specified KMS Key Id could not be found."
        )));
        // A key policy that refuses the service is configuration: fail.
        assert!(!(NEW_KEY_NOT_VISIBLE.matches)(&f(
            "AccessDeniedException",
            "The specified KMS key is not allowed to be used with Arn"
        )));
        assert!((NEW_GATEWAY_NOT_VISIBLE.matches)(&f(
            "InvalidNatGatewayID.NotFound",
            "The natGateway ID 'nat-1' does not exist"
        )));
        assert!((DB_CLUSTER_BUSY.matches)(&f(
            "InvalidDBClusterStateFault",
            "busy"
        )));
    }
}
