#!/usr/bin/env python3
"""LocalStack behind a counting front, for the suite's second emulator.

Starts LocalStack (tests/localstack/launch.py, in the venv `--localstack-python` names) on a
free loopback port, waits until it is healthy, then serves a proxy on another one that
passes every request through and counts it per account and operation, as the moto launcher
does: GET /_tap/calls/<account> answers {"service:Operation": n}, DELETE resets it. Prints
`READY <port>` (the proxy's) once it serves; with --parent-watch it stops LocalStack and
exits when its standard input closes (the test process that started it has ended).

Runs with the moto venv's Python: the operation names come from tests/emulator/launch.py,
which reads them from the services' models.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "emulator"))

import launch  # noqa: E402  (the moto launcher: operation names, the account in a request)

RPC_V2 = re.compile(r"^/service/[^/]+/operation/([^/]+)$")

# Hop-by-hop headers, and the framing the proxy redoes.
DROPPED = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_localstack(python, port, root):
    env = {
        **os.environ,
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "GATEWAY_SERVER": "hypercorn",  # the default binds 0.0.0.0 whatever the host
        "LOCALSTACK_HOST": f"127.0.0.1:{port}",
        "DNS_ADDRESS": "0",  # else it serves DNS on port 53
        "DISABLE_EVENTS": "1",  # no analytics
        "SKIP_SSL_CERT_DOWNLOAD": "1",  # never reaches api.localstack.cloud
        "OVERRIDE_IN_DOCKER": "0",  # its files under FILESYSTEM_ROOT, not /var/lib/localstack
        "FILESYSTEM_ROOT": root,
        "SERVICES": "ec2,kms,iam,s3,logs,sns,cloudwatch,route53,acm,secretsmanager,sts,scheduler,resourcegroupstaggingapi",
    }
    log = open(os.path.join(root, "localstack.log"), "w")
    proc = subprocess.Popen(
        [python, os.path.join(HERE, "launch.py")], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"LocalStack exited at start; see {log.name}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_localstack/health", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        time.sleep(0.2)
    proc.terminate()
    sys.exit(f"LocalStack was not healthy within 60 s; see {log.name}")


def proxy_app(target_host, target_port):
    from werkzeug.wsgi import get_input_stream

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_tap/calls/"):
            account = path.rsplit("/", 1)[-1]
            with launch.CALLS_LOCK:
                if environ.get("REQUEST_METHOD") == "DELETE":
                    launch.CALLS.pop(account, None)
                body = json.dumps(launch.CALLS.get(account, {})).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        body = get_input_stream(environ).read()  # by Content-Length, or de-chunked
        match = launch.CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        if match:
            # Smithy RPC v2 CBOR (CloudWatch) names the operation in the path.
            rpc = RPC_V2.match(path)
            operation = rpc.group(1) if rpc else launch.operation_of(environ, body)
            key = f"{match.group(2)}:{operation}"
            with launch.CALLS_LOCK:
                counts = launch.CALLS.setdefault(match.group(1), {})
                counts[key] = counts.get(key, 0) + 1
        headers = {}
        for name, value in environ.items():
            if name.startswith("HTTP_"):
                headers[name[5:].replace("_", "-").title()] = value
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        headers = {k: v for k, v in headers.items() if k.lower() not in DROPPED}
        headers["Content-Length"] = str(len(body))
        url = path + (f"?{environ['QUERY_STRING']}" if environ.get("QUERY_STRING") else "")
        conn = http.client.HTTPConnection(target_host, target_port, timeout=300)
        try:
            conn.request(environ["REQUEST_METHOD"], url, body=body, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            out = [(k, v) for k, v in answer.getheaders() if k.lower() not in DROPPED]
            out.append(("Content-Length", str(len(data))))
            start_response(f"{answer.status} {answer.reason}", out)
            return [data]
        finally:
            conn.close()

    return app


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--localstack-python", help="start LocalStack with this Python")
    parser.add_argument("--target", help="count in front of a LocalStack already running there")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--parent-watch", action="store_true")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="tap-localstack-")
    if args.target:
        url = urllib.parse.urlsplit(args.target if "//" in args.target else f"http://{args.target}")
        target_host, target = url.hostname or "127.0.0.1", url.port or 4566
        localstack = None
    elif args.localstack_python:
        target_host, target = "127.0.0.1", free_port()
        localstack = start_localstack(args.localstack_python, target, root)
    else:
        sys.exit("front.py: --localstack-python or --target")
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", args.port, proxy_app(target_host, target), threaded=True)
    print(f"READY {server.server_port}", flush=True)

    def stop(*_):
        if localstack is not None:
            localstack.terminate()
            try:
                localstack.wait(10)
            except subprocess.TimeoutExpired:
                localstack.kill()
        shutil.rmtree(root, ignore_errors=True)
        os._exit(0)

    if args.parent_watch:

        def watch():
            sys.stdin.read()
            stop()

        threading.Thread(target=watch, daemon=True).start()
    try:
        server.serve_forever()
    finally:
        stop()


if __name__ == "__main__":
    main()
