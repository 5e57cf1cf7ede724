"""Crash points on purpose, per account (test-side only; the product never sees this switch).

PUT /_tap/crash/<account> with {"after_writes": N} lets the account's calls through until its
Nth mutating call (with "operation": "ec2:CreateNatGateway", its Nth call of that one
operation); moto serves that one, then its answer is held, and so is every later call
of the account, before moto sees it. The process is frozen just after AWS acted on its Nth
write and before it learnt the answer: the worst moment to die. GET answers
{"tripped": bool, "operation": "service:Operation", "writes": n} (n: the account's writes
so far, the held one included); the test then kills the
process with SIGKILL and DELETEs, which answers every held call with a dropped connection
(moto never serves them) and disarms the account.
"""

import json
import threading

import faults

READ_PREFIXES = ("Describe", "List", "Get", "Head", "GET ", "HEAD ")

ARMED = {}
LOCK = threading.Lock()


def is_write(key):
    return not key.rsplit(":", 1)[-1].startswith(READ_PREFIXES)


def admin(environ, start_response):
    account, method, sent = faults.request(environ)
    with LOCK:
        if method == "PUT":
            settings = sent
            ARMED[account] = {
                "after_writes": int(settings["after_writes"]),
                "only": settings.get("operation"),
                "counted": 0,
                "writes": 0,
                "holding": False,
                "tripped": False,
                "operation": None,
                "release": threading.Event(),
            }
        state = ARMED.get(account, {})
        body = json.dumps(
            {k: state.get(k) for k in ("after_writes", "writes", "tripped", "operation")}
        ).encode()
        if method == "DELETE" and state:
            state["release"].set()
            ARMED.pop(account, None)
    return faults.answer(start_response, body)


def around(environ, account, key, serve):
    """Serves the call through `serve` unless the account's crash point holds it.

    Calls are served one at a time, under LOCK, and so answered in the order they came.
    Serving them at once was tried: under Python's global lock every read of a look then
    finished late together (an `up`'s first write 0.9 s later under the latency model)."""
    with LOCK:
        state = ARMED.get(account)
        if state is None:
            return serve()
        release = state["release"]
        held = state["holding"]
        last = False
        if not held and is_write(key):
            state["writes"] += 1
            if state["only"] in (None, key):
                state["counted"] += 1
                last = state["counted"] == state["after_writes"]
                # From here on every call of the account waits, the Nth's answer included.
                state["holding"] = last
    if not held and not last:
        return serve()
    if last:
        answer = serve()  # AWS acts on the Nth write...
        close = getattr(answer, "close", None)
        if close:
            close()
        with LOCK:
            state["tripped"] = True
            state["operation"] = key
    release.wait(300)  # ...and the process dies before it hears back.
    return faults.dropped(environ)
