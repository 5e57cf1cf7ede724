"""Eventual consistency on purpose, per account (test-side only): PUT /_tap/consistency/
<account> with {"seconds": 3} makes each case of PLATFORM.md's table answer as AWS does while
it propagates, for that long after the call that starts it:

- a new IAM role cannot be assumed yet: CreateFlowLogs answers InvalidParameter "Unable to
  assume given IAM role" after CreateRole, CreateSchedule ValidationException "The
  execution role you provide must allow AWS EventBridge Scheduler to assume the role",
  CreateDBInstance with a monitoring role InvalidParameterValue "IAM role ARN value is
  invalid", CreateBackupSelection InvalidParameterValueException "cannot be assumed" (each
  for the window after the CreateRole of the role whose ARN the refused call passes);
- a fresh account's ECS service-linked role is not usable yet: CreateCluster with capacity
  providers answers InvalidParameterException "Unable to assume the service linked role"
  (started by GetCallerIdentity, the first call of every run);
- a new KMS key is not visible yet: CreateLogGroup with a kmsKeyId answers
  InvalidParameterException "The specified KMS Key Id could not be found" after CreateKey;
- a new NAT gateway is not describable yet: CreateRoute to it answers
  InvalidNatGatewayID.NotFound after CreateNatGateway;
- ENIs drain during `down`: DeleteSecurityGroup answers DependencyViolation after
  DeleteLoadBalancer;
- the tagging API lags a new key: GetResources for KMS keys answers an empty list after
  CreateKey (no error: the key is simply not there yet).

{"cases": ["tags-lag"]} limits the account to the cases named. The benchmarks' front
(launch.py --model) sets a default for every account without settings of its own: the IAM
role cases for the modeled propagation time, without the "at least once" rule below.

Each case is also produced at least once after the call that starts it, even when the machine
is so loaded that the next call comes after the window. GET answers how many times each case
was produced; DELETE turns them off.
"""

import json
import os
import threading
import time

import faults

# (case, the call that starts it, the call refused meanwhile, a text the refused call's
# request must hold, the error code, its message)
CASES = [
    ("new-role", "iam:CreateRole", "ec2:CreateFlowLogs", b"", "InvalidParameter",
     "Unable to assume given IAM role, or role does not exist."),
    ("new-role-scheduler", "iam:CreateRole", "scheduler:CreateSchedule", b"", "ValidationException",
     "The execution role you provide must allow AWS EventBridge Scheduler to assume the role."),
    ("new-role-rds", "iam:CreateRole", "rds:CreateDBInstance", b"MonitoringRoleArn", "InvalidParameterValue",
     "IAM role ARN value is invalid or does not include the required permissions for: ENHANCED_MONITORING"),
    ("new-role-backup", "iam:CreateRole", "backup:CreateBackupSelection", b"IamRoleArn",
     "InvalidParameterValueException", "IAM Role cannot be assumed by AWS Backup."),
    ("ecs-service-linked-role", "sts:GetCallerIdentity", "ecs:CreateCluster", b"capacityProviders",
     "InvalidParameterException",
     "Unable to assume the service linked role. Please verify that the ECS service linked role exists."),
    ("new-key", "kms:CreateKey", "logs:CreateLogGroup", b"kmsKeyId", "InvalidParameterException",
     "The specified KMS Key Id could not be found."),
    ("new-nat", "ec2:CreateNatGateway", "ec2:CreateRoute", b"NatGatewayId", "InvalidNatGatewayID.NotFound",
     "The natGateway ID does not exist"),
    ("enis-draining", "elasticloadbalancing:DeleteLoadBalancer", "ec2:DeleteSecurityGroup", b"",
     "DependencyViolation", "resource has a dependent object"),
    # No code: the call succeeds with an empty list.
    ("tags-lag", "kms:CreateKey", "tagging:GetResources", b"kms:key", None, None),
]

# Windows are in the caller's seconds, divided by TAP_TIME_SCALE as launch.py divides every
# modeled duration.
TIME_SCALE = float(os.environ.get("TAP_TIME_SCALE", "1") or "1")
SETTINGS = {}
# Settings for every account that has none (launch.py --model); None: off.
DEFAULT = None
STARTED = {}
# When each role was created, by account and name: a role's cases refuse the calls that pass
# that role, for the window after its own creation.
ROLES = {}
PENDING = {}
PRODUCED = {}
LOCK = threading.Lock()


def admin(environ, start_response):
    account, method, sent = faults.request(environ)
    with LOCK:
        if method == "PUT":
            SETTINGS[account] = sent
            PRODUCED[account] = {}
            STARTED.pop(account, None)
            ROLES.pop(account, None)
            PENDING.pop(account, None)
        elif method == "DELETE":
            SETTINGS.pop(account, None)
        body = json.dumps({"settings": SETTINGS.get(account, {}), "produced": PRODUCED.get(account, {})}).encode()
    return faults.answer(start_response, body)


def passes_role(body, name):
    """Whether a request body holds the ARN of role `name` (JSON, or query-encoded)."""
    import re
    from urllib.parse import quote

    pattern = rb"role(?:/|%2F)" + re.escape(quote(name, safe="-_.").encode()) + rb"(?![\w+=,.@%-])"
    return re.search(pattern, body) is not None


def role_name(body):
    """The RoleName of an IAM CreateRole (query protocol) request body."""
    from urllib.parse import parse_qs

    names = parse_qs(body.decode("utf-8", "replace")).get("RoleName")
    return names[0] if names else None


def maybe_fail(environ, start_response, account, key, body):
    """Records a starting call; refuses a call inside its case's window. None: let it through."""
    with LOCK:
        settings = SETTINGS.get(account) or DEFAULT
        if not settings:
            return None
        once = settings.get("at_least_once", True)
        now = time.monotonic()
        window = float(settings.get("seconds", 3)) / TIME_SCALE
        started = STARTED.setdefault(account, {})
        pending = PENDING.setdefault(account, set())
        hit = None
        only = settings.get("cases")
        roles = ROLES.setdefault(account, {})
        if key == "iam:CreateRole":
            name = role_name(body)
            if name:
                roles[name] = now
        for case, trigger, target, needle, code, message in CASES:
            if only is not None and case not in only:
                continue
            if key == trigger:
                started[case] = now
                pending.add(case)
            elif key == target and needle in body and case in started:
                # Within the window (of the role the call passes, for a role's cases); or,
                # on a slow (loaded) machine whose next call came later than that, once:
                # each case happens at least once after its start.
                if trigger == "iam:CreateRole":
                    fresh = any(
                        now - at < window and passes_role(body, name) for name, at in roles.items()
                    )
                else:
                    fresh = now - started[case] < window
                if fresh or (once and case in pending):
                    hit = (case, code, message)
                    pending.discard(case)
        if hit is None:
            return None
        case, code, message = hit
        counts = PRODUCED.setdefault(account, {})
        counts[case] = counts.get(case, 0) + 1
    if code is None:
        data = json.dumps({"PaginationToken": "", "ResourceTagMappingList": []}).encode()
        start_response("200 OK", [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(data)))])
        return [data]
    service = key.split(":")[0]
    text, content_type, extra = faults._shape(environ, service, code, "400 Bad Request", message)
    data = text.encode()
    start_response("400 Bad Request", [("Content-Type", content_type), ("Content-Length", str(len(data)))] + extra)
    return [data]
