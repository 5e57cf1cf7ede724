#!/usr/bin/env python3
"""The test emulator: moto server on loopback, with what tap-provision's tests need of AWS
that moto 5.2 does not do by itself.

- Account isolation: a 12-digit access key id is the account id, so tests sharing one
  server never see each other's resources (moto 5.2.5's server mode puts every unknown key
  in 123456789012).
- Readiness that takes time: a NAT gateway is `pending` for TAP_EMULATOR_NAT_SECONDS
  (default 2) before `available`, and `deleting` as long before `deleted`, so the
  product's waiters are exercised; on deletion it releases its Elastic IP association and
  network interface, as AWS does.

Usage: launch.py [--host 127.0.0.1] [--port 0]
Prints `READY <port>` on stdout once it serves. With --parent-watch it exits when its
standard input closes (the test process that started it has ended).
"""

import argparse
import os
import re
import sys
import threading
import time

NAT_SECONDS = float(os.environ.get("TAP_EMULATOR_NAT_SECONDS", "2"))


def patch_accounts():
    from moto.core.responses import BaseResponse

    original = BaseResponse.get_current_account
    # moto only recognises 20-character access keys in the Authorization header.
    credential = re.compile(r"Credential=(\d{12})/")

    def get_current_account(self):
        match = credential.search(self.headers.get("Authorization", "") or "")
        if match:
            return match.group(1)
        return original(self)

    BaseResponse.get_current_account = get_current_account


def patch_nat_gateways():
    from moto.ec2.models.nat_gateways import NatGateway

    def get_state(self):
        now = time.monotonic()
        deleted_at = getattr(self, "_tap_deleted_at", None)
        if deleted_at is not None:
            return "deleting" if now - deleted_at < NAT_SECONDS else "deleted"
        created_at = getattr(self, "_tap_created_at", now)
        return "pending" if now - created_at < NAT_SECONDS else "available"

    def set_state(self, value):
        if value == "deleted":
            self._tap_deleted_at = time.monotonic()
            backend = self.ec2_backend
            for address in list(self.address_set):
                association = address.get("associationId")
                if association:
                    try:
                        backend.disassociate_address(association_id=association)
                    except Exception:  # already gone
                        pass
            eni = getattr(self, "_eni", None)
            if eni is not None:
                try:
                    backend.delete_network_interface(eni.id)
                except Exception:
                    pass
        else:
            self._tap_created_at = time.monotonic()

    NatGateway.state = property(get_state, set_state)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--parent-watch", action="store_true")
    args = parser.parse_args()
    if not args.host.startswith("127.") and args.host not in ("localhost", "::1"):
        sys.exit("launch.py serves on loopback only")

    patch_accounts()
    patch_nat_gateways()

    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    port = server._server.server_port if server._server else args.port
    print(f"READY {port}", flush=True)

    if args.parent_watch:
        sys.stdin.read()  # returns at EOF: the parent is gone
        os._exit(0)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    server.stop()


if __name__ == "__main__":
    main()
