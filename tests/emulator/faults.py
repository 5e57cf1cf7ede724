"""Faults on purpose, per account (test-side only; the product never sees this switch):
PUT /_tap/faults/<account> with {"deny": ["kms:ListResourceTags"]} answers every call of
those operations (`service:Operation`, as the call counts name them) with access denied in
the service's own shape (`UnauthorizedOperation` for EC2, `AccessDenied` for S3 and the
query and REST-XML services, `AccessDeniedException` for JSON ones), as a policy that
lacks a permission would. With {"throttle": 0.2, "error": 0.05, "drop": 0.02} it makes that
share of the account's calls fail before moto sees them: throttling in each protocol's own
shape (`RequestLimitExceeded` for EC2, `Throttling` for the other query and REST-XML services,
`ThrottlingException` for JSON ones, `SlowDown` for S3), a 500/503, or a dropped connection
(closed with no answer) moto never saw. With {"lost": 0.05, "seed": 7} that share of the
account's writes is carried out and its answer lost: moto serves it, then the connection
closes with no answer, the moment AWS acted and the caller never heard (the SDK retries it,
as it would on AWS). The seed makes a run's draws repeatable; {"lose": ["kms:CreateKey"]}
loses the answer of the first call of each operation named. With {"rate": 2} each service
takes at most that many of the tool's calls a second, as AWS's per-service token bucket
does (a bucket of `rate` calls refilled at `rate` a second; the rest are throttled in the
protocol's own shape); the GET answer's "rate_throttled" counts them per service. With
{"db_busy_seconds": 6} the account's Aurora cluster stays busy that long after each
instance create (TAP_EMULATOR_DB_BUSY_SECONDS for every account), so a test can make the
second instance's call land inside the window however loaded the machine is; with
{"db_delete_seconds": 5} its deleted Aurora clusters and instances stay `deleting`, their
names taken, that long in real seconds (TAP_EMULATOR_DB_DELETE_SECONDS, divided by the time
scale, for every account), so a test can start a repair inside the window; with
{"db_delete_ends_when_refused": 1} as well, such a deletion ends just after the create it
refused (the caller's next look finds the name free). DELETE
clears them;
GET answers how many of each were injected. A refused call never reached moto, so a create
retried after it makes nothing twice.
"""

import json
import random
import threading

FAULTS = {}
INJECTED = {}
LOCK = threading.Lock()
RNG = random.Random(20261201)


def request(environ):
    """A test-side switch's request (`/_tap/<switch>/<account>`): the account, the method and
    the JSON body sent (PUT), else None."""
    account = environ.get("PATH_INFO", "").rsplit("/", 1)[-1]
    method = environ.get("REQUEST_METHOD")
    sent = None
    if method == "PUT":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        sent = json.loads(environ["wsgi.input"].read(length) or b"{}")
    return account, method, sent


def answer(start_response, body, status="200 OK"):
    """A switch's JSON answer (`body`: encoded JSON)."""
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


RNGS = {}


def admin(environ, start_response):
    """/_tap/faults/<account>: PUT sets, DELETE clears, GET reports."""
    account, method, sent = request(environ)
    with LOCK:
        if method == "PUT":
            FAULTS[account] = sent
            INJECTED[account] = {}
            if "seed" in sent:
                RNGS[account] = random.Random(int(sent["seed"]))
        elif method == "DELETE":
            FAULTS.pop(account, None)
        for bucket in [b for b in BUCKETS if b[0] == account]:
            del BUCKETS[bucket]
        body = json.dumps({"faults": FAULTS.get(account, {}), "injected": INJECTED.get(account, {})}).encode()
    return answer(start_response, body)


def _shape(environ, service, code, status, message):
    """The error body and headers of `service`'s protocol."""
    content_type = environ.get("CONTENT_TYPE", "")
    if service == "ec2":
        body = (
            f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error>"
            "</Errors><RequestID>tap-fault</RequestID></Response>"
        )
        return body, "text/xml", []
    if environ.get("HTTP_X_AMZ_TARGET") or content_type.startswith("application/x-amz-json"):
        body = json.dumps({"__type": code, "message": message})
        return body, "application/x-amz-json-1.1", [("x-amzn-ErrorType", code)]
    if service == "s3":
        body = f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>tap-fault</RequestId></Error>"
        return body, "application/xml", []
    if content_type.startswith("application/x-www-form-urlencoded") or "Action=" in environ.get("QUERY_STRING", ""):
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message>"
            "</Error><RequestId>tap-fault</RequestId></ErrorResponse>"
        )
        return body, "text/xml", []
    if service in ("route53", "cloudfront"):
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message>"
            "</Error><RequestId>tap-fault</RequestId></ErrorResponse>"
        )
        return body, "text/xml", []
    # REST-JSON (AWS Backup).
    body = json.dumps({"message": message})
    return body, "application/json", [("x-amzn-ErrorType", code)]


BUCKETS = {}


def setting(account, key, default):
    """The account's number `key` set with PUT (a window in seconds), else `default`."""
    with LOCK:
        return float((FAULTS.get(account) or {}).get(key, default))


def over_rate(account, service):
    """True when the account's per-service bucket has no token left for this call."""
    import time

    with LOCK:
        rate = float((FAULTS.get(account) or {}).get("rate", 0))
        if rate <= 0:
            return False
        now = time.monotonic()
        tokens, last = BUCKETS.get((account, service), (rate, now))
        tokens = min(rate, tokens + (now - last) * rate)
        if tokens >= 1:
            BUCKETS[(account, service)] = (tokens - 1, now)
            return False
        BUCKETS[(account, service)] = (tokens, now)
        by_service = INJECTED.setdefault(account, {}).setdefault("rate_throttled", {})
        by_service[service] = by_service.get(service, 0) + 1
        return True


def throttle(environ, start_response, service):
    """AWS's throttling answer in the service's protocol."""
    code = {"ec2": "RequestLimitExceeded", "s3": "SlowDown"}.get(service, "Throttling")
    if environ.get("HTTP_X_AMZ_TARGET") and service not in ("ec2", "s3"):
        code = "ThrottlingException"
    status = "503 Slow Down" if service == "s3" else "400 Bad Request"
    body, content_type, extra = _shape(environ, service, code, status, "Rate exceeded")
    data = body.encode()
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data)))] + extra)
    return [data]


def maybe_fail(environ, start_response, account, service, key, product=True):
    """A fault's response for this call (`key`: its `service:Operation`), or None to let it
    through."""
    with LOCK:
        faults = FAULTS.get(account)
        if not faults:
            return None
        if key in faults.get("deny", []):
            counts = INJECTED.setdefault(account, {})
            counts["deny"] = counts.get("deny", 0) + 1
            denied = True
        else:
            denied = False
    if denied:
        return access_denied(environ, start_response, service, key)
    if product and over_rate(account, service):
        return throttle(environ, start_response, service)
    with LOCK:
        draw = RNGS.get(account, RNG).random()
        throttled = float(faults.get("throttle", 0))
        error = float(faults.get("error", 0))
        if draw < throttled:
            kind = "throttle"
        elif draw < throttled + error:
            kind = "error"
        elif draw < throttled + error + float(faults.get("drop", 0)):
            kind = "drop"
        else:
            return None
        counts = INJECTED.setdefault(account, {})
        counts[kind] = counts.get(kind, 0) + 1
        if kind == "drop":
            by_op = counts.setdefault("dropped_operations", {})
            by_op[key] = by_op.get(key, 0) + 1
    if kind == "drop":
        return dropped(environ)
    if kind == "throttle":
        return throttle(environ, start_response, service)
    else:
        status = RNG.choice(["500 Internal Server Error", "503 Service Unavailable"])
        code = "InternalError" if status.startswith("500") else "ServiceUnavailable"
        body, content_type, extra = _shape(environ, service, code, status, "injected server error")
    data = body.encode()
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data)))] + extra)
    return [data]


def access_denied(environ, start_response, service, key):
    """AWS's answer to a call the caller's policy does not allow."""
    operation = key.split(":", 1)[-1]
    if service == "ec2":
        code = "UnauthorizedOperation"
    elif environ.get("HTTP_X_AMZ_TARGET") and service not in ("s3",):
        code = "AccessDeniedException"
    else:
        code = "AccessDenied"
    message = f"User: arn:aws:iam::000000000000:user/tests is not authorized to perform: {service}:{operation}"
    body, content_type, extra = _shape(environ, service, code, "403 Forbidden", message)
    data = body.encode()
    start_response("403 Forbidden", [("Content-Type", content_type), ("Content-Length", str(len(data)))] + extra)
    return [data]


def dropped(environ):
    """Closes the client's connection without an answer, as a dead network would; moto never
    sees the call."""
    import socket

    sock = environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    return []


def is_write(key):
    return not key.rsplit(":", 1)[-1].startswith(("Describe", "List", "Get", "Head", "GET ", "HEAD "))


def loses_answer(account, key):
    """True when this write's answer is to be lost after moto carried it out: a share of all
    writes ("lost"), or the first call of each operation named in "lose"."""
    with LOCK:
        faults = FAULTS.get(account)
        named = (faults or {}).get("lose", [])
        if key in named:
            done = faults.setdefault("_lost_once", [])
            if key not in done:
                done.append(key)
                counts = INJECTED.setdefault(account, {})
                counts["lost"] = counts.get("lost", 0) + 1
                by_op = counts.setdefault("lost_operations", {})
                by_op[key] = by_op.get(key, 0) + 1
                return True
        share = float((faults or {}).get("lost", 0))
        if not share or not is_write(key):
            return False
        if RNGS.get(account, RNG).random() >= share:
            return False
        counts = INJECTED.setdefault(account, {})
        counts["lost"] = counts.get("lost", 0) + 1
        by_op = counts.setdefault("lost_operations", {})
        by_op[key] = by_op.get(key, 0) + 1
        return True


def serve_and_lose(environ, serve):
    """Lets moto carry out the call, then closes the connection without its answer."""
    answer = serve()
    close = getattr(answer, "close", None)
    if close:
        close()
    return dropped(environ)


def serve_captured(serve):
    """Serves through `serve(start_response)` and answers (status, headers without
    Content-Length, body bytes), for a switch that rewrites or keeps the answer."""
    seen = {}

    def capture(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, list(headers)
        return lambda _chunk: None

    answer = serve(capture)
    data = b"".join(answer)
    close = getattr(answer, "close", None)
    if close:
        close()
    headers = [(k, v) for k, v in seen.get("headers", []) if k.lower() != "content-length"]
    return seen.get("status", "500 Internal Server Error"), headers, data
