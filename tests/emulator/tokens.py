"""Client tokens and caller references honoured as AWS honours them, where moto ignores
them (test-side only): a create repeated with the token of an earlier one that succeeded is
answered with that earlier answer, and nothing is made twice; the same token with other
parameters is refused (`IdempotentParameterMismatch`), as AWS refuses it. This is what makes
the SDK's retry of a create whose answer was lost (faults.py's "lost") safe on AWS.
"""

import hashlib
import re
import threading

import faults

# service:Operation -> the token in its request (query form, JSON or XML).
TOKEN_OF = {
    "ec2:CreateNatGateway": re.compile(rb"(?:^|&)ClientToken=([^&]+)"),
    "ec2:CreateFlowLogs": re.compile(rb"(?:^|&)ClientToken=([^&]+)"),
    "ec2:CreateRouteTable": re.compile(rb"(?:^|&)ClientToken=([^&]+)"),
    "ecs:CreateService": re.compile(rb'"clientToken"\s*:\s*"([^"]+)"'),
    "route53:CreateHostedZone": re.compile(rb"<CallerReference>([^<]+)</CallerReference>"),
}

ANSWERS = {}
LOCK = threading.Lock()


def token(key, body):
    pattern = TOKEN_OF.get(key)
    if pattern is None:
        return None
    found = pattern.search(body or b"")
    return found.group(1) if found else None


def _params(body, tok):
    """The request's parameters, the token left out (retries are signed anew)."""
    return hashlib.sha256((body or b"").replace(tok, b"")).hexdigest()


def around(environ, start_response, account, key, body, serve):
    """Answers a repeated token from memory; otherwise serves through `serve(start_response)`
    and remembers a successful answer."""
    tok = token(key, body)
    if tok is None:
        return serve(start_response)
    slot = (account, key, tok)
    with LOCK:
        earlier = ANSWERS.get(slot)
    if earlier is not None:
        params, status, headers, data = earlier
        if params != _params(body, tok):
            service = key.split(":")[0]
            text, content_type, extra = faults._shape(
                environ, service, "IdempotentParameterMismatch", "400 Bad Request",
                "the client token was used before with other parameters")
            out = text.encode()
            start_response("400 Bad Request", [("Content-Type", content_type), ("Content-Length", str(len(out)))] + extra)
            return [out]
        start_response(status, headers)
        return [data]
    status, headers, data = faults.serve_captured(serve)
    headers.append(("Content-Length", str(len(data))))
    if status.startswith("2"):
        with LOCK:
            ANSWERS[slot] = (_params(body, tok), status, headers, data)
    start_response(status, headers)
    return [data]
