#!/usr/bin/env python3
"""Checks the policies `tap-provision iam-policy` prints, as the suite runs it
(tests/it/schedule.rs): parliament must find nothing of MEDIUM severity or above, and
cloudsplaining (every risky action flagged, scoped or not) no privilege-escalation path,
except the findings named below, each with why it stays.

Usage: check.py POLICY.json [...]; prints {"findings": [...]} (what remains) on stdout.
"""

import json
import re
import sys

# parliament: (issue, action) -> why it is not a mistake.
PARLIAMENT_ACCEPTED = {
    # AWS checks the alias and the key: the alias is named by ARN in one statement, the key
    # by its tap:environment tag in another. parliament judges one statement at a time.
    ("RESOURCE_MISMATCH", "kms:CreateAlias"): "alias and key in two statements",
    ("RESOURCE_MISMATCH", "kms:UpdateAlias"): "alias and key in two statements",
    ("RESOURCE_MISMATCH", "kms:DeleteAlias"): "alias and key in two statements",
    # The Service Authorization Reference lists hosted zones for ChangeTagsForResource;
    # parliament's data lists health checks only.
    ("RESOURCE_MISMATCH", "route53:ChangeTagsForResource"): "parliament's data lacks hostedzone",
    # Managing the environment's own buckets' policies, ACL (CloudFront's log delivery) and
    # lifecycle is what `up` and `repair` do; the statement names only those buckets.
    ("RESOURCE_POLICY_PRIVILEGE_ESCALATION", "s3:PutBucketPolicy"): "the environment's buckets",
    ("RESOURCE_POLICY_PRIVILEGE_ESCALATION", "s3:PutBucketAcl"): "the CDN logs bucket",
    ("RESOURCE_POLICY_PRIVILEGE_ESCALATION", "s3:PutLifecycleConfiguration"): "the environment's buckets",
}
PARLIAMENT_SEVERE = {"MEDIUM", "HIGH", "CRITICAL"}

# cloudsplaining's privilege-escalation methods that stay, each only on the environment's
# own roles and policies: `up` creates those roles and writes their policies, and `repair`
# puts them back. cloudsplaining looks at actions only; `own_only` checks the resources
# and conditions that make them the environment's own (a finding when they do not).
ESCALATION_ACCEPTED = {
    "PutRolePolicy": "writes the environment's own roles' inline policies",
    "AttachRolePolicy": "attaches the environment's own managed policies to its roles",
    "UpdateRolePolicyToAssumeIt": "writes the environment's own roles' trust policies",
    "CreateNewPolicyVersion": "writes the environment's own managed policies",
    "AttachRolePolicyThenUpdateAssumeRolePolicy": "the environment's own roles and policies",
    "PutRolePolicyThenUpdateAssumeRolePolicy": "the environment's own roles",
    "CreatePolicyVersionThenUpdateAssumeRolePolicy": "the environment's own roles and policies",
}


def parliament_findings(text):
    from parliament import analyze_policy_string, config

    out = []
    for f in analyze_policy_string(text).findings:
        severity = config.get(f.issue, {}).get("severity", "")
        if severity not in PARLIAMENT_SEVERE:
            continue
        detail = f.detail
        actions = []
        if isinstance(detail, list):
            actions = [d.get("action") for d in detail if isinstance(d, dict)]
        elif isinstance(detail, str) and " allow " in detail:
            actions = [detail.rsplit(" allow ", 1)[1].strip()]
        remaining = [a for a in actions if (f.issue, a) not in PARLIAMENT_ACCEPTED] or (
            [] if actions else [None]
        )
        for a in remaining:
            out.append({"tool": "parliament", "issue": f.issue, "severity": severity, "action": a, "detail": str(detail)[:300]})
    return out


def escalation_findings(doc):
    from cloudsplaining.scan.policy_document import PolicyDocument

    policy = PolicyDocument(doc, flag_resource_arn_statements=True)
    out = []
    for method in policy.allows_privilege_escalation:
        if method.get("type") in ESCALATION_ACCEPTED:
            continue
        out.append({"tool": "cloudsplaining", "issue": "privilege escalation", "method": method})
    return out


# The IAM actions that could widen a role: allowed on the environment's own roles and
# policies only, AttachRolePolicy only of the environment's own policies.
IAM_WRITES = {
    "iam:passrole", "iam:putrolepolicy", "iam:attachrolepolicy", "iam:updateassumerolepolicy",
    "iam:createpolicyversion", "iam:createpolicy", "iam:createrole", "iam:setdefaultpolicyversion",
}


def environment(doc):
    """The environment's full name, from its state bucket (every policy has it)."""
    for s in doc["Statement"]:
        for r in as_list(s.get("Resource", [])):
            m = re.match(r"^arn:[^:]+:s3:::(.+)-state-\d+$", r)
            if m:
                return m.group(1)
    return None


def as_list(v):
    return v if isinstance(v, list) else [v]


def own(arn, env):
    """The environment's own role or policy: its exact name, or any name of its own path
    (`/<project>/<name>/`, whose two parts joined are the environment's full name)."""
    m = re.match(r"^arn:[^:]+:iam::\d+:(role|policy)/(.*)$", arn)
    if not m:
        return False
    rest = m.group(2)
    if re.fullmatch(re.escape(env) + r"-[A-Za-z0-9+=,.@_-]+", rest):
        return True
    p = re.fullmatch(r"([^/*]+)/([^/*]+)/" + re.escape(env) + r"-[A-Za-z0-9+=,.@_*-]+", rest)
    return bool(p) and f"{p.group(1)}-{p.group(2)}" == env


def own_only(doc, env):
    out = []
    for s in doc["Statement"]:
        if s.get("Effect") != "Allow":
            continue
        actions = [a for a in as_list(s["Action"]) if a.lower() in IAM_WRITES]
        if not actions:
            continue
        foreign = [r for r in as_list(s["Resource"]) if not (env and own(r, env))]
        if foreign:
            out.append({"tool": "own_only", "issue": "IAM write beyond the environment's own",
                        "actions": actions, "resources": foreign})
        if "iam:attachrolepolicy" in [a.lower() for a in actions]:
            attachable = as_list(s.get("Condition", {}).get("ArnLike", {}).get("iam:PolicyARN", []))
            if not attachable or not all(env and own(p, env) for p in attachable):
                out.append({"tool": "own_only", "issue": "AttachRolePolicy of any policy",
                            "condition": s.get("Condition")})
    return out


def main():
    findings = []
    docs = [(path, open(path).read()) for path in sys.argv[1:]]
    # The parts of one verb's policy: the state bucket is in one of them.
    env = next(filter(None, (environment(json.loads(t)) for _, t in docs)), None)
    for path, text in docs:
        doc = json.loads(text)
        for f in parliament_findings(text) + escalation_findings(doc) + own_only(doc, env):
            f["file"] = path
            findings.append(f)
    print(json.dumps({"findings": findings}))


if __name__ == "__main__":
    main()
