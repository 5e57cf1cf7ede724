#!/usr/bin/env python3
"""LocalStack (community, 4.13.1) as a plain process on loopback, for the second emulator.

Python 3.11 fix: LocalStack >= 4.11 passes a bytes name to `uuid.uuid5` (KMS CreateKey),
which only 3.12 accepts; 3.12's uuid5 is put in its place. Then `localstack.runtime.main` runs with
the environment tests/localstack/front.py sets (loopback only, no DNS server, no downloads, no
analytics, its files under a temporary directory).
"""

import hashlib
import runpy
import sys
import uuid

_uuid5 = uuid.uuid5


def uuid5(namespace, name):
    """Python 3.12's uuid5, which takes the name as bytes too."""
    if isinstance(name, bytes):
        digest = hashlib.sha1(namespace.bytes + name, usedforsecurity=False).digest()
        return uuid.UUID(bytes=digest[:16], version=5)
    return _uuid5(namespace, name)


uuid.uuid5 = uuid5
sys.argv = ["localstack"]
runpy.run_module("localstack.runtime.main", run_name="__main__")
