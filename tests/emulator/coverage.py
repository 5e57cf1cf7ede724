#!/usr/bin/env python3
"""Checks that every AWS operation the product calls was served by the emulator during the
test run: each `.<operation>()` of an SDK client used in src/ must appear in the totals the
launcher wrote to $TAP_EMULATOR_CALLS_LOG. Those count only calls the tap-provision binary
made (its user agent names it) and moto served (not the ones a fault answered): a test's own
out-of-band call of the same operation does not count.

Usage: coverage.py CALLS_LOG   (exit 1, listing them, when an operation was never served)
"""

import glob
import json
import os
import re
import sys

# Client field in src/aws/mod.rs -> (SDK crate, the service's signing name in the counts).
SERVICES = {
    "acm": ("acm", "acm"),
    "autoscaling": ("applicationautoscaling", "application-autoscaling"),
    "backup": ("backup", "backup"),
    "cloudfront": ("cloudfront", "cloudfront"),
    "cloudwatch": ("cloudwatch", "monitoring"),
    "ec2": ("ec2", "ec2"),
    "ecs": ("ecs", "ecs"),
    "elb": ("elasticloadbalancingv2", "elasticloadbalancing"),
    "iam": ("iam", "iam"),
    "kms": ("kms", "kms"),
    "logs": ("cloudwatchlogs", "logs"),
    "rds": ("rds", "rds"),
    "route53": ("route53", "route53"),
    "s3": ("s3", "s3"),
    "scheduler": ("scheduler", "scheduler"),
    "secretsmanager": ("secretsmanager", "secretsmanager"),
    "sns": ("sns", "sns"),
    "sts": ("sts", "sts"),
    "tagging": ("resourcegroupstagging", "tagging"),
}


def camel(snake):
    return "".join(part[:1].upper() + part[1:] for part in snake.split("_"))


def operations(crate):
    """The operation modules of the newest copy of an SDK crate in the cargo registry."""
    home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    dirs = sorted(glob.glob(f"{home}/registry/src/*/aws-sdk-{crate}-[0-9]*/src/operation"))
    if not dirs:
        sys.exit(f"coverage.py: aws-sdk-{crate} is not in {home}/registry (build first)")
    return [os.path.basename(d) for d in glob.glob(f"{dirs[-1]}/*") if os.path.isdir(d)]


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    source = ""
    for path in glob.glob(f"{root}/src/**/*.rs", recursive=True):
        if not path.endswith("src/aws/mod.rs"):
            source += open(path).read()
    served = {}
    for line in open(sys.argv[1]):
        for op, n in json.loads(line).items():
            op = op.split("[")[0]  # `s3:PutObject[lock]`: the tool's lock, still a PutObject
            served[op] = served.get(op, 0) + n
    if not served:
        sys.exit("coverage.py: no call carried app/tap-provision: does src/aws/mod.rs still set the app name?")
    served_lower = {op.lower() for op in served}
    # Which used services have each operation the source calls. A name several of them have
    # (`tag_resource`) cannot be pinned on one by reading the source: any of them serving it
    # counts; a name only one service has must be served by that one.
    called = {}
    for field, (crate, signing) in SERVICES.items():
        if not re.search(rf"\.{field}\b", source):
            continue  # the product does not use this client
        for op in operations(crate):
            if re.search(rf"\.{op}\(\)", source):
                called.setdefault(op, []).append(signing)
    missing = []
    for op, signings in sorted(called.items()):
        # Case aside: the SDK's modules say `create_db_cluster`, AWS `CreateDBCluster`.
        wanted = [f"{signing}:{camel(op)}" for signing in signings]
        if not any(w.lower() in served_lower for w in wanted):
            missing.append(" or ".join(wanted))
    if missing:
        print("operations the product calls that no emulator test exercised:")
        for m in sorted(missing):
            print(f"  {m}")
        sys.exit(1)
    print(f"every AWS operation the product calls was served in the tests ({len(served)} operations served)")


if __name__ == "__main__":
    main()
