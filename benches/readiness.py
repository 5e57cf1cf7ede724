#!/usr/bin/env python3
"""`up` against a scaled model of AWS, beside the bound the model and the graph allow.

Starts the test emulator as a front (tests/emulator/launch.py --model tests/emulator/model.toml
--percentile p50|p95) at TAP_TIME_SCALE (30: an AWS minute lasts 2 s), runs an untimed `up`
in another account to warm the emulator process up (`--no-warm-up` skips it), and in a fresh
account runs, timing each and counting its calls on the emulator's side:

  1. `up --env prod` from empty (the zone made out of band first, as prod expects);
  2. `up` again after only the backend image changed (a copy of config/ with a new tag);
  3. a converged `drift`;
  4. `down` (with the data kept: the database as a final snapshot, key and vault kept).

Beside the measured makespan of (1) it prints, computed here from the model file and the
graph's own edges (`tap-provision graph --format dot`: solid edges need identifiers, dashed
ones readiness), never from the tool's report:

  - the readiness bound: every node starts as soon as its prerequisites hold (an identifier
    edge once the other's create call has answered, a readiness edge once it is ready), its
    create costs one write, a modeled kind is then ready after its modeled time; plus the
    fixed costs (identity, the state bucket and lock, one round of reads to find what
    exists; the record and the lock's release at the end);
  - the makespan under CloudFormation's rule: every reference waits for full readiness;
  - the sequential sum: one node after another;
  - the critical path of the bound, node by node.

Usage (from the repository's root, with the build and the emulator's venv in place):

  .venv-emulator/bin/python benches/readiness.py [--percentile p50|p95] [--scale 30]
      [--model FILE] [--bin PATH] [--json] [--no-warm-up]

`--bound-only` prints the bound without running anything (no emulator, no tool run).
"""

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "emulator"))
import launch  # noqa: E402 (the front's own read/write split)
MODEL = os.path.join(ROOT, "tests", "emulator", "model.toml")
DEFAULT_BIN = os.path.expanduser("~/.cache/tap-provision/target/debug/tap-provision")

# The calls an `up` from empty makes besides its nodes' creates, one after another (kind of
# call, what): its fixed costs. A first run in an account makes the state bucket before it
# can take the lock (its look found none, so it makes it before the first attempt): the
# bucket and its tags only. Its settings come with the run, beside the other nodes (S3
# refuses concurrent configuration writes on one bucket, OperationAborted,
# terraform-provider-aws #7628 and #33552, so they go in turn, off the critical path).
FIXED_BEFORE = [
    ("read", "identity: sts GetCallerIdentity"),
    ("read", "the applied record: s3 GetObject"),
    ("read", "the zones (prod names none): ec2 DescribeSubnets by tag, DescribeAvailabilityZones beside it"),
    ("read", "what exists: one round of batched describes"),
    ("write", "the state bucket: s3 CreateBucket"),
    ("write", "the state bucket: s3 PutBucketTagging"),
    ("write", "the lock: s3 PutObject If-None-Match"),
    ("write", "the run's start in the record: s3 PutObject"),
]
FIXED_AFTER = [
    ("write", "the record: s3 PutObject"),
    ("write", "the run's history: s3 PutObject"),
    ("write", "the lock's release: s3 DeleteObject If-Match"),
]


def load_model(path, percentile, scale):
    with open(path, "rb") as f:
        model = tomllib.load(f)
    latency = {"read": model["calls"]["read_ms"] / 1000, "write": model["calls"]["write_ms"] / 1000}
    ready, after, propagation = {}, {}, {}
    for name, state in model["ready"].items():
        for kind in state.get("kinds", []):
            ready[kind] = state[percentile] * 60 / scale
            if "after" in state:
                after[kind] = state["after"]
        for kind in state.get("propagates", []):
            propagation[kind] = (state[percentile] * 60 / scale, set(state["consumers"]))
    return latency, ready, after, propagation


def parse_dot(text):
    """Nodes (id -> kind) and edges (dependency, dependent, 'id' | 'ready') of the DOT graph."""
    nodes, edges = {}, []
    for m in re.finditer(r'^\s*"([^"]+)" \[label="[^"\\]*\\n([a-z0-9_]+)"\];', text, re.M):
        nodes[m.group(1)] = m.group(2)
    for m in re.finditer(r'^\s*"([^"]+)" -> "([^"]+)" \[label="(id|ready)"', text, re.M):
        edges.append((m.group(1), m.group(2), m.group(3)))
    return nodes, edges


def schedule(nodes, edges, latency, ready, after, propagation, rule):
    """Each node's start, create answered (identifiers) and ready time, with the predecessor
    that set its start. `rule`: 'bound' (edges as declared) or 'cloudformation' (every edge
    waits for readiness)."""
    deps = {n: [] for n in nodes}
    for dep, node, needs in edges:
        deps[node].append((dep, needs))
    # Nodes whose write starts a kind's readiness clock (a certificate's validation record).
    starters = {n: [] for n in nodes}
    for dep, node, _ in edges:
        if after.get(nodes[dep]) == nodes[node]:
            starters[dep].append(node)
    start0 = sum(latency[k] for k, _ in FIXED_BEFORE)
    times, memo = {}, {}

    def visit(n):
        if n in times:
            return times[n]
        if n in memo:
            raise SystemExit(f"cycle at {n}")
        memo[n] = True
        start, why = start0, None
        for dep, needs in deps[n]:
            if rule == "cloudformation" and after.get(nodes[dep]) == nodes[n]:
                # CloudFormation's certificate writes its own validation record.
                at = visit(dep)["created"]
            elif needs == "ready" or rule == "cloudformation":
                at = ready_time(dep)
            else:
                at = visit(dep)["created"]
            wait, consumers = propagation.get(nodes[dep], (0.0, set()))
            if nodes[n] in consumers:
                # A new role this node passes to a service: usable once it has propagated,
                # from the role's create answered; this node's create may be sent so as to
                # arrive then (the front checks a call after its latency).
                at = max(at, visit(dep)["created"] + wait - latency["write"])
            if at > start:
                start, why = at, dep
        created = start + latency["write"]
        times[n] = {"start": start, "created": created, "why": why}
        return times[n]

    def ready_time(n):
        t = visit(n)
        if "ready" in t:
            return t["ready"]
        clock, why = t["created"], None
        for s in starters[n]:
            if rule == "cloudformation":
                at = t["created"] + latency["write"]  # the record, written by the certificate
            else:
                at = visit(s)["created"]
            if at > clock:
                clock, why = at, s
        t["ready"] = clock + ready.get(nodes[n], 0.0)
        t["clock_from"] = why
        return t["ready"]

    for n in nodes:
        ready_time(n)
    end = max(t["ready"] for t in times.values())
    return times, end + sum(latency[k] for k, _ in FIXED_AFTER)


def critical_path(times, nodes):
    """Back from the node ready last: at each node, what set the time that mattered (its
    readiness clock's starter when that set its ready time, else what its start waited for)."""
    last = max(times, key=lambda n: times[n]["ready"])
    path, n, seen = [], last, set()
    while n is not None and n not in seen:
        seen.add(n)
        path.append(n)
        t = times[n]
        n = t.get("clock_from") or t["why"]
    return list(reversed(path))


def bound_report(dot, latency, ready, after, propagation):
    nodes, edges = parse_dot(dot)
    times, bound = schedule(nodes, edges, latency, ready, after, propagation, "bound")
    _, cfn = schedule(nodes, edges, latency, ready, after, propagation, "cloudformation")
    fixed = sum(latency[k] for k, _ in FIXED_BEFORE + FIXED_AFTER)
    sequential = fixed + sum(latency["write"] + ready.get(k, 0.0) for k in nodes.values())
    path = critical_path(times, nodes)
    return {
        "nodes": len(nodes),
        "edges": len(edges),
        "readiness_edges": sum(1 for e in edges if e[2] == "ready"),
        "bound_s": round(bound, 2),
        "cloudformation_rule_s": round(cfn, 2),
        "sequential_s": round(sequential, 2),
        "fixed_s": round(fixed, 2),
        "critical_path": [
            {"node": n, "kind": nodes[n], "created_s": round(times[n]["created"], 2),
             "ready_s": round(times[n]["ready"], 2)} for n in path
        ],
        "bound_ready": {n: t["ready"] for n, t in times.items()},
    }


class Emulator:
    def __init__(self, model, percentile, scale):
        env = dict(os.environ, TAP_TIME_SCALE=str(scale))
        python = os.path.join(ROOT, ".venv-emulator", "bin", "python")
        self.proc = subprocess.Popen(
            [python, os.path.join(ROOT, "tests", "emulator", "launch.py"), "--port", "0",
             "--model", model, "--percentile", percentile, "--parent-watch"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True,
        )
        line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            raise SystemExit(f"the emulator did not start: {line!r}")
        self.url = f"http://127.0.0.1:{line.split()[1]}"

    def calls(self, account):
        with urllib.request.urlopen(f"{self.url}/_tap/calls/{account}") as r:
            return json.load(r)

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def diff(after, before):
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def is_read(key):
    """Whether a counted call (`service:Operation[note]`) reads, as the front tells them."""
    return launch.is_read(key.split(":", 1)[1].split("[", 1)[0])


def run(bin_, args, env, timeout=900):
    """Runs the tool with --json, timestamping each event as it arrives."""
    start = time.monotonic()
    proc = subprocess.Popen([bin_, *args, "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, text=True, cwd=ROOT)
    events = []

    def read():
        for line in proc.stdout:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            e["_at"] = time.monotonic() - start
            events.append(e)

    err = []
    reader = threading.Thread(target=read)
    errors = threading.Thread(target=lambda: err.append(proc.stderr.read()))
    reader.start()
    errors.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    finally:
        reader.join()
        errors.join()
    wall = time.monotonic() - start
    return proc.returncode, wall, events, "".join(err)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--percentile", choices=["p50", "p95"], default="p50")
    p.add_argument("--scale", type=float, default=30.0)
    p.add_argument("--model", default=MODEL,
                   help="another latency model (a copy of tests/emulator/model.toml with other times)")
    p.add_argument("--bin", default=DEFAULT_BIN)
    p.add_argument("--env", default="prod")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--bound-only", action="store_true")
    p.add_argument("--up-only", action="store_true", help="only `up` from empty")
    p.add_argument("--up-args", default="", help="more arguments for `up` (--parallelism 16)")
    p.add_argument("--no-warm-up", action="store_true",
                   help="no untimed `up` in another account first (a cold emulator process)")
    a = p.parse_args()

    latency, ready, after, propagation = load_model(a.model, a.percentile, a.scale)
    dot = subprocess.run([a.bin, "graph", "--env", a.env, "--format", "dot"], cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout
    bound = bound_report(dot, latency, ready, after, propagation)
    out = {"percentile": a.percentile, "scale": a.scale, "aws_minute_s": 60 / a.scale,
           **{k: v for k, v in bound.items() if k != "bound_ready"}}
    if a.bound_only:
        return report(out, a.json)

    emu = Emulator(a.model, a.percentile, a.scale)
    account = f"{random.randrange(10**11, 10**12):012d}"
    env = dict(os.environ, AWS_ACCESS_KEY_ID=account, AWS_SECRET_ACCESS_KEY="test",
               AWS_ENDPOINT_URL=emu.url, TAP_TIME_SCALE=str(a.scale), NO_COLOR="1")
    config = tempfile.mkdtemp(prefix="tap-bench-")
    try:
        shutil.copytree(os.path.join(ROOT, "config"), config, dirs_exist_ok=True)
        with open(os.path.join(config, f"{a.env}.toml"), "rb") as f:
            domain = tomllib.load(f).get("domain")
        common = ["--env", a.env, "--config-dir", config]
        if not a.no_warm_up:
            # The same `up`, untimed, in another account first: the emulator process's
            # first use of each call (moto's imports, its response templates, its first key
            # pair) costs tens of milliseconds of CPU each, during which it serves no other call.
            other = f"{random.randrange(10**11, 10**12):012d}"
            prepare(emu.url, other, domain)
            rc, _, _, err = run(a.bin, ["up", *common, "--yes"], dict(env, AWS_ACCESS_KEY_ID=other))
            if rc != 0:
                raise SystemExit(f"the warm-up `up` failed:\n{err[-2000:]}")
        prepare(emu.url, account, domain)

        before = emu.calls(account)
        rc, wall, events, err = run(a.bin, ["up", *common, "--yes", *a.up_args.split()], env)
        up_calls = diff(emu.calls(account), before)
        out["up"] = {"exit": rc, "makespan_s": round(wall, 2),
                     "vs_bound": round(wall / bound["bound_s"], 3),
                     "calls": sum(up_calls.values()),
                     "writes": sum(v for k, v in up_calls.items() if not is_read(k))}
        out["up"]["critical_path_measured"] = measured_path(events, bound)
        if rc != 0:
            out["up"]["stderr"] = err[-2000:]
        if a.up_only:
            return report(out, a.json)

        bump_image(os.path.join(config, f"{a.env}.toml"))
        before = emu.calls(account)
        rc, wall, _, err = run(a.bin, ["up", *common, "--yes"], env)
        bumped = diff(emu.calls(account), before)
        out["image_change"] = {"exit": rc, "wall_s": round(wall, 2),
                               "writes": {k: v for k, v in bumped.items() if not is_read(k)}}

        before = emu.calls(account)
        rc, wall, _, _ = run(a.bin, ["drift", *common], env)
        drift_calls = diff(emu.calls(account), before)
        out["drift"] = {"exit": rc, "wall_s": round(wall, 2), "calls": sum(drift_calls.values()),
                        "rounds_of_read_latency_at_most": round(wall / latency["read"], 1)}

        unprotect(os.path.join(config, f"{a.env}.toml"))
        rc, wall, _, err = run(a.bin, ["up", *common, "--yes"], env)
        out["unprotect"] = {"exit": rc}
        if rc != 0:
            out["unprotect"]["stderr"] = err[-2000:]
        before = emu.calls(account)
        rc, wall, _, err = run(a.bin, ["down", *common, "--yes"], env)
        gone = diff(emu.calls(account), before)
        out["down"] = {"exit": rc, "wall_s": round(wall, 2), "calls": sum(gone.values())}
        if rc != 0:
            out["down"]["stderr"] = err[-2000:]
    finally:
        emu.stop()
        shutil.rmtree(config, ignore_errors=True)
    return report(out, a.json)


def measured_path(events, bound):
    """When each node of the bound's critical path finished in the run, beside the bound."""
    finished = {e["node"]: e["_at"] for e in events if e.get("event") == "node_finished"}
    started = {e["node"]: e["_at"] for e in events if e.get("event") == "node_started"}
    return [{"node": s["node"], "bound_ready_s": s["ready_s"],
             "started_s": round(started.get(s["node"], -1), 2),
             "finished_s": round(finished.get(s["node"], -1), 2)}
            for s in bound["critical_path"]]


def make_zone(url, account, domain):
    import boto3

    boto3.client("route53", endpoint_url=url, aws_access_key_id=account,
                 aws_secret_access_key="test", region_name="us-east-1").create_hosted_zone(
        Name=domain, CallerReference=f"bench-{account}")


# One read per service the tool calls, made before the timed run: moto builds an account's
# backend of a service on its first request (IAM's loads every AWS managed policy, EC2 makes
# the default VPC), seconds of emulator CPU that AWS never spends.
WARM = [
    ("sts", "get_caller_identity", {}), ("s3", "list_buckets", {}), ("ec2", "describe_vpcs", {}),
    ("iam", "list_roles", {}), ("rds", "describe_db_clusters", {}), ("kms", "list_keys", {}),
    ("elbv2", "describe_load_balancers", {}), ("ecs", "list_clusters", {}),
    ("logs", "describe_log_groups", {}), ("cloudwatch", "describe_alarms", {}),
    ("sns", "list_topics", {}), ("secretsmanager", "list_secrets", {}),
    ("acm", "list_certificates", {}), ("backup", "list_backup_vaults", {}),
    ("cloudfront", "list_distributions", {}), ("application-autoscaling",
     "describe_scalable_targets", {"ServiceNamespace": "ecs"}),
    ("resourcegroupstaggingapi", "get_resources", {}), ("scheduler", "list_schedule_groups", {}),
    ("route53", "list_hosted_zones", {}),
]


def prepare(url, account, domain):
    """A fresh account as a run expects it: the env's zone made out of band, when it looks
    one up, and each service's backend built (`warm`)."""
    if domain:
        make_zone(url, account, domain)
    warm(url, account)


def warm(url, account):
    import boto3

    session = boto3.session.Session(aws_access_key_id=account, aws_secret_access_key="test")
    for region in ("eu-west-1", "us-east-1"):
        for service, call, kwargs in WARM:
            client = session.client(service, endpoint_url=url, region_name=region)
            getattr(client, call)(**kwargs)


def bump_image(path):
    """The backend's image tag, and nothing else, changed in the copy of the env file."""
    text = open(path).read()
    new, n = re.subn(r'(\[services\.backend\]\s*\nimage = "[^"]*:)([^"]*)"', r'\g<1>\2-bench"', text)
    if n != 1:
        raise SystemExit(f"{path}: no [services.backend] image to change")
    open(path, "w").write(new)


def unprotect(path):
    """A copy of the env file `down` may remove (prod is protected, its database too)."""
    text = open(path).read()
    text = re.sub(r"^protected = true", "protected = false", text, flags=re.M)
    text = re.sub(r"^deletion_protection = true", "deletion_protection = false", text, flags=re.M)
    open(path, "w").write(text)


def report(out, as_json):
    """Prints the figures; answers 1 when a run failed (its figures mean nothing)."""
    failed = [k for k, v in out.items() if isinstance(v, dict) and v.get("exit", 0) != 0]
    if failed:
        print(f"FAILED: {', '.join(failed)} exited non-zero", file=sys.stderr)
    code = 1 if failed else 0
    if as_json:
        print(json.dumps(out, indent=2))
        return code
    print(f"model {out['percentile']} at TAP_TIME_SCALE {out['scale']:g} "
          f"(an AWS minute = {out['aws_minute_s']:.1f} s); graph {out['nodes']} nodes, "
          f"{out['edges']} edges ({out['readiness_edges']} readiness)")
    print(f"  readiness bound       {out['bound_s']:7.2f} s  (fixed costs {out['fixed_s']:.2f} s)")
    print(f"  CloudFormation's rule {out['cloudformation_rule_s']:7.2f} s")
    print(f"  sequential sum        {out['sequential_s']:7.2f} s")
    print("  critical path (identifiers at, ready at):")
    for s in out["critical_path"]:
        print(f"    {s['node']:<24} {s['kind']:<16} {s['created_s']:6.2f} {s['ready_s']:6.2f}")
    if "up" in out:
        u = out["up"]
        print(f"  up from empty         {u['makespan_s']:7.2f} s  exit {u['exit']}, "
              f"{u['vs_bound']:.3f} x the bound, {u['calls']} calls ({u['writes']} writes)")
        for s in u["critical_path_measured"]:
            print(f"    {s['node']:<24} bound ready {s['bound_ready_s']:6.2f}  "
                  f"started {s['started_s']:6.2f}  finished {s['finished_s']:6.2f}")
        if u.get("stderr"):
            print(u["stderr"])
        if "image_change" not in out:
            return code
        i = out["image_change"]
        print(f"  up, backend image changed {i['wall_s']:.2f} s exit {i['exit']}; writes {i['writes']}")
        d = out["drift"]
        print(f"  converged drift       {d['wall_s']:7.2f} s  exit {d['exit']}, {d['calls']} calls")
        d = out["down"]
        print(f"  down                  {d['wall_s']:7.2f} s  exit {d['exit']}, {d['calls']} calls")
        if d.get("stderr"):
            print(d["stderr"])
    return code


if __name__ == "__main__":
    sys.exit(main())
