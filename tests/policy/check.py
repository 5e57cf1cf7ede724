#!/usr/bin/env python3
"""Checks the policies `tap-provision iam-policy` prints, as the suite runs it
(tests/it/schedule.rs): parliament must find nothing of MEDIUM severity or above, and
cloudsplaining (every risky action flagged, scoped or not) no privilege-escalation path,
except the findings named below, each with why it stays.

Usage: check.py POLICY.json [...]; prints {"findings": [...]} (what remains) on stdout.
"""

import json
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
# own roles and policies (role/<project>/<env>/<project>-<env>-*, role/<project>-<env>-*):
# `up` creates those roles and writes their policies, and `repair` puts them back.
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


def main():
    findings = []
    for path in sys.argv[1:]:
        text = open(path).read()
        for f in parliament_findings(text) + escalation_findings(json.loads(text)):
            f["file"] = path
            findings.append(f)
    print(json.dumps({"findings": findings}))


if __name__ == "__main__":
    main()
