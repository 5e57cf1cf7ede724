"""Copies of an account, for tests that start from the same converged environment.

PUT /_tap/clone/<account> {"from": "<source account>"} gives <account> a copy of every
resource of the source account (every moto service, every region), as if the same `up` had
built it there: each backend is pickled, the source's 12-digit id is rewritten to the new
one wherever it occurs (ARNs, policies, names, the tool's record in its state bucket: the two
ids have the same length, so the pickle stays whole), and the copy is unpickled under the
new id. Identifiers that do not hold the account (vpc-..., key ids) are the same in both
accounts, which moto keeps apart. The target must be new (409 otherwise). Copying costs
milliseconds where the `up` it replaces costs seconds of emulator time. The answer says
what was copied: {"services": n, "buckets": n}.

Launcher state that is per account (calls counted, faults, crash points, the answers kept
for client tokens and caller references) is not copied: the new account starts with none,
so a token the source's `up` sent is new to the copy.
"""

import io
import json
import pickle
import threading
import uuid

import faults

# Objects pickle cannot copy, shared between the accounts instead: keys held by KMS and ACM
# (immutable) and the locks some backends keep.
SHARED_TYPES = (type(threading.Lock()), type(threading.RLock()), threading.Condition, threading.Event)


def shared(obj):
    return isinstance(obj, SHARED_TYPES) or type(obj).__module__.startswith("cryptography.")


def copy_of(value, old, new):
    """`value` copied through pickle with the account id `old` rewritten to `new`."""
    kept = []

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if shared(obj):
                kept.append(obj)
                return len(kept) - 1
            return None

    class Unpickler(pickle.Unpickler):
        def persistent_load(self, pid):
            return kept[pid]

    out = io.BytesIO()
    Pickler(out, pickle.HIGHEST_PROTOCOL).dump(value)
    return Unpickler(io.BytesIO(out.getvalue().replace(old, new))).load()


def rehash_objects(s3, new):
    """An object whose content held the account id has new content: its ETag and checksum
    are computed again (the SDK checks the checksum of what it reads)."""
    from moto.s3.utils import compute_checksum

    for backend in s3.values():
        for bucket in backend.buckets.values():
            for _, versions in bucket.keys._iterlists():
                for key in versions:
                    value = getattr(key, "value", b"")
                    if not isinstance(value, bytes) or new not in value:
                        continue
                    key._etag = None
                    if key.checksum_algorithm and key.checksum_value:
                        key.checksum_value = compute_checksum(value, key.checksum_algorithm).decode()


def clone(source, target):
    from moto.core.base_backend import BackendDict, backend_lock
    from moto.s3.models import s3_backends

    old, new = source.encode(), target.encode()
    with backend_lock:
        dicts = list(BackendDict._instances)
        if any(dict.__contains__(d, target) for d in dicts):
            return None
        # Every service in one pickle: a backend that holds another's (Application Auto
        # Scaling holds ECS's) holds the copy of it, not a second, frozen one. Every copy
        # first, then all at once: a copy that fails leaves nothing behind.
        held = [backends for backends in dicts if dict.__contains__(backends, source)]
        copied = copy_of([dict.__getitem__(backends, source) for backends in held], old, new)
        copies = list(zip(held, copied))
        for backends, copy in copies:
            # Backends are compared by this id: the copy is another account's.
            copy._id = str(uuid.uuid4())
            copy.account_id = target
            if backends.service_name == "s3":
                rehash_objects(copy, new)
        for backends, copy in copies:
            dict.__setitem__(backends, target, copy)
        services = len(copies)
        buckets = 0
        for name, (partition, account) in list(s3_backends.bucket_accounts.items()):
            # A bucket whose name does not hold the account id stays the source's alone.
            if account == source and source in name:
                s3_backends.bucket_accounts[name.replace(source, target)] = (partition, target)
                buckets += 1
    return {"services": services, "buckets": buckets}


def admin(environ, start_response):
    target, method, sent = faults.request(environ)
    source = str((sent or {}).get("from", ""))
    if method != "PUT" or not (target.isdigit() and source.isdigit()) or len(target) != 12 or len(source) != 12:
        body = json.dumps({"error": 'PUT /_tap/clone/<account> {"from": "<account>"}'})
        return faults.answer(start_response, body.encode(), "400 Bad Request")
    done = clone(source, target)
    if done is None:
        body = b'{"error": "the target account already exists"}'
        return faults.answer(start_response, body, "409 Conflict")
    return faults.answer(start_response, json.dumps(done).encode())
