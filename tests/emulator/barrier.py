"""A barrier on purpose, per account (test-side only; the product never sees this switch).

PUT /_tap/barrier/<account> with {"operation": "s3:PutObject[lock]", "parties": 2} holds the
account's first calls of that operation until `parties` of them have arrived (at most
"seconds", default 30), then lets them all through at once: two runs started together meet
at the lock's conditional write itself, not somewhere before it. GET answers {"arrived": n,
"statuses": [...], "broken": bool}: how many met there, the HTTP status moto answered each
(S3 answers a refused conditional write 412), and whether a held call gave up waiting for
the others ("seconds" passed). With "after": n, the first n calls of the operation go
through untouched and the barrier holds those after them (a run's second lock write, not its
first). DELETE disarms.
"""

import json
import threading

import faults

ARMED = {}
LOCK = threading.Lock()


def admin(environ, start_response):
    account, method, sent = faults.request(environ)
    with LOCK:
        if method == "PUT":
            ARMED[account] = {
                "operation": sent["operation"],
                "parties": int(sent.get("parties", 2)),
                "after": int(sent.get("after", 0)),
                "passed": 0,
                "barrier": threading.Barrier(int(sent.get("parties", 2)), timeout=float(sent.get("seconds", 30))),
                "arrived": 0,
                "statuses": [],
                "broken": False,
            }
        state = ARMED.get(account, {})
        body = json.dumps(
            {
                "arrived": state.get("arrived", 0),
                "statuses": state.get("statuses", []),
                "broken": state.get("broken", False),
            }
        ).encode()
        if method == "DELETE":
            ARMED.pop(account, None)
    return faults.answer(start_response, body)


def enter(account, key, start_response):
    """Waits at the account's barrier when this call is one it holds; answers the
    `start_response` to serve it with, which notes the status of a call that met there."""
    with LOCK:
        state = ARMED.get(account)
        if state is None or state["operation"] != key:
            return start_response
        if state["passed"] < state["after"]:
            state["passed"] += 1
            return start_response
        if state["arrived"] >= state["parties"]:
            return start_response
        state["arrived"] += 1
        barrier = state["barrier"]
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        # The others never came in time: served alone, and the test sees `broken`.
        with LOCK:
            state["broken"] = True

    def noting(status, headers, exc_info=None):
        with LOCK:
            state["statuses"].append(int(status.split(" ", 1)[0]))
        return start_response(status, headers, exc_info)

    return noting
