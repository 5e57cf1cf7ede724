#!/usr/bin/env python3
"""The test emulator: moto server on loopback, with what tap-provision's tests need of AWS
that moto 5.2 does not do by itself.

- Account isolation: a 12-digit access key id is the account id, so tests sharing one
  server never see each other's resources (moto 5.2.5's server mode puts every unknown key
  in 123456789012).
- Readiness that takes time: a NAT gateway is `pending` for TAP_EMULATOR_NAT_SECONDS
  (default 2) before `available`, and `deleting` as long before `deleted`, so the
  product's waiters are exercised; on deletion it releases its Elastic IP association and
  network interface, as AWS does. An Aurora cluster is `creating` for
  TAP_EMULATOR_DB_CLUSTER_SECONDS (default 1), an instance for TAP_EMULATOR_DB_SECONDS
  (default 3). A cluster is busy for TAP_EMULATOR_DB_BUSY_SECONDS (default 0.5) after each
  CreateDBInstance: another instance call on it then fails InvalidDBClusterStateFault, as
  parallel calls do on AWS (Terraform AWS provider #50115).
- AWS Backup selections (moto 5.2 answers 500) and recovery points: Create/Get/List/
  DeleteBackupSelection, StartBackupJob (makes a recovery point at once),
  ListRecoveryPointsByBackupVault, DeleteRecoveryPoint; DeleteBackupVault refuses a vault
  that still holds recovery points, as AWS does.

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
DB_CLUSTER_SECONDS = float(os.environ.get("TAP_EMULATOR_DB_CLUSTER_SECONDS", "1"))
DB_SECONDS = float(os.environ.get("TAP_EMULATOR_DB_SECONDS", "3"))
DB_BUSY_SECONDS = float(os.environ.get("TAP_EMULATOR_DB_BUSY_SECONDS", "0.5"))


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


def patch_rds():
    from moto.rds.models import DBCluster, DBInstance

    def cluster_status(self):
        since = self.__dict__.setdefault("_tap_since", time.monotonic())
        if self._status == "creating" and time.monotonic() - since >= DB_CLUSTER_SECONDS:
            self._status = "available"
        return self._status

    def set_cluster_status(self, value):
        self._status = value
        self.__dict__["_tap_since"] = time.monotonic()

    DBCluster.status = property(cluster_status, set_cluster_status)

    def instance_status(self):
        value = self.__dict__.get("_tap_status", "available")
        created = self.__dict__.get("_tap_created", 0.0)
        if value == "available" and time.monotonic() - created < DB_SECONDS:
            return "creating"
        return value

    def set_instance_status(self, value):
        self.__dict__.setdefault("_tap_created", time.monotonic())
        self.__dict__["_tap_status"] = value

    DBInstance.status = property(instance_status, set_instance_status)

    # moto 5.2 drops Performance Insights settings; keep them as AWS does.
    from moto.rds.models import RDSBackend

    def keep_insights(database, kwargs):
        if kwargs.get("enable_performance_insights") is not None:
            database.performance_insights_enabled = kwargs["enable_performance_insights"] in (True, "true")
        if kwargs.get("performance_insights_kms_key_id"):
            database.performance_insights_kms_key_id = kwargs["performance_insights_kms_key_id"]
        return database

    original_create = RDSBackend.create_db_instance
    original_modify = RDSBackend.modify_db_instance

    from moto.rds.exceptions import InvalidDBClusterStateFault

    def create_db_instance(self, db_kwargs):
        cluster = db_kwargs.get("db_cluster_identifier")
        if cluster:
            busy = self.__dict__.setdefault("_tap_cluster_busy", {})
            now = time.monotonic()
            if now - busy.get(cluster, -1e9) < DB_BUSY_SECONDS:
                raise InvalidDBClusterStateFault(
                    f"Cannot create an instance in DB cluster {cluster}: another instance operation is in progress."
                )
            busy[cluster] = now
        return keep_insights(original_create(self, db_kwargs), db_kwargs)

    def modify_db_instance(self, db_instance_identifier, db_kwargs):
        return keep_insights(original_modify(self, db_instance_identifier, db_kwargs), db_kwargs)

    RDSBackend.create_db_instance = create_db_instance
    RDSBackend.modify_db_instance = modify_db_instance

    # moto names automated cluster snapshots by the minute: a cluster re-created within the
    # same minute (down, then up) collided with the old one's. Make the name unique.
    original_auto = RDSBackend.create_auto_cluster_snapshot

    def create_auto_cluster_snapshot(self, db_cluster_identifier, db_snapshot_identifier):
        name, n = db_snapshot_identifier, 1
        while name in self.cluster_snapshots:
            n += 1
            name = f"{db_snapshot_identifier}-{n}"
        return original_auto(self, db_cluster_identifier, name)

    RDSBackend.create_auto_cluster_snapshot = create_auto_cluster_snapshot


def patch_backup():
    import json
    import uuid
    from urllib.parse import unquote

    from moto.backup import urls
    from moto.backup.models import BackupBackend
    from moto.backup.responses import BackupResponse
    from moto.core.exceptions import JsonRESTError
    from moto.core.utils import unix_time

    urls.url_paths.update(
        {
            "{0}/backup-vaults/(?P<name>[^/]+)/recovery-points/?$": BackupResponse.dispatch,
            "{0}/backup-vaults/(?P<name>[^/]+)/recovery-points/(?P<arn>.+)$": BackupResponse.dispatch,
            "{0}/backup-jobs/?$": BackupResponse.dispatch,
        }
    )

    def selections(backend):
        return backend.__dict__.setdefault("_tap_selections", {})

    def points(backend):
        return backend.__dict__.setdefault("_tap_points", {})

    def not_found(what):
        return JsonRESTError("ResourceNotFoundException", f"{what} not found")

    def plan_and_selection(path):
        rest = path.split("/plans/", 1)[1].strip("/").split("/")
        return rest[0], (rest[2] if len(rest) > 2 else None)

    def create_backup_selection(self):
        plan_id, _ = plan_and_selection(self.path)
        if plan_id not in self.backup_backend.plans:
            raise not_found(f"Backup plan {plan_id}")
        body = json.loads(self.body)
        request = body.get("CreatorRequestId")
        store = selections(self.backup_backend)
        for sel in store.values():
            if request and sel["CreatorRequestId"] == request and sel["BackupPlanId"] == plan_id:
                return json.dumps({k: sel[k] for k in ("SelectionId", "BackupPlanId", "CreationDate")})
        sel = {
            "SelectionId": str(uuid.uuid4()),
            "BackupPlanId": plan_id,
            "CreationDate": unix_time(),
            "CreatorRequestId": request,
            "BackupSelection": body["BackupSelection"],
        }
        store[sel["SelectionId"]] = sel
        return json.dumps({k: sel[k] for k in ("SelectionId", "BackupPlanId", "CreationDate")})

    def get_backup_selection(self):
        plan_id, selection_id = plan_and_selection(self.path)
        sel = selections(self.backup_backend).get(selection_id)
        if sel is None or sel["BackupPlanId"] != plan_id:
            raise not_found(f"Backup selection {selection_id}")
        return json.dumps(sel)

    def list_backup_selections(self):
        plan_id, _ = plan_and_selection(self.path)
        listed = [
            {
                "SelectionId": sel["SelectionId"],
                "SelectionName": sel["BackupSelection"].get("SelectionName"),
                "BackupPlanId": plan_id,
                "CreationDate": sel["CreationDate"],
                "IamRoleArn": sel["BackupSelection"].get("IamRoleArn"),
            }
            for sel in selections(self.backup_backend).values()
            if sel["BackupPlanId"] == plan_id
        ]
        return json.dumps({"BackupSelectionsList": listed})

    def delete_backup_selection(self):
        _, selection_id = plan_and_selection(self.path)
        if selections(self.backup_backend).pop(selection_id, None) is None:
            raise not_found(f"Backup selection {selection_id}")
        return "{}"

    def start_backup_job(self):
        body = json.loads(self.body)
        vault = body["BackupVaultName"]
        if vault not in self.backup_backend.vaults:
            raise not_found(f"Backup vault {vault}")
        backend = self.backup_backend
        arn = f"arn:aws:backup:{backend.region_name}:{backend.account_id}:recovery-point:{uuid.uuid4()}"
        points(backend).setdefault(vault, {})[arn] = {
            "RecoveryPointArn": arn,
            "BackupVaultName": vault,
            "ResourceArn": body.get("ResourceArn"),
            "IamRoleArn": body.get("IamRoleArn"),
            "Status": "COMPLETED",
            "CreationDate": unix_time(),
        }
        return json.dumps({"BackupJobId": str(uuid.uuid4()), "RecoveryPointArn": arn, "CreationDate": unix_time()})

    def vault_from_path(path):
        return unquote(path.split("/backup-vaults/", 1)[1].split("/")[0])

    def list_recovery_points_by_backup_vault(self):
        vault = vault_from_path(self.path)
        if vault not in self.backup_backend.vaults:
            raise not_found(f"Backup vault {vault}")
        listed = list(points(self.backup_backend).get(vault, {}).values())
        return json.dumps({"RecoveryPoints": listed})

    def delete_recovery_point(self):
        vault = vault_from_path(self.path)
        arn = unquote(self.path.split("/recovery-points/", 1)[1].strip("/"))
        if points(self.backup_backend).get(vault, {}).pop(arn, None) is None:
            raise not_found(f"Recovery point {arn}")
        return "{}"

    def list_tags(self):
        # moto takes the ARN from a trailing-slash path only (boto3's); the Rust SDK sends none.
        arn = unquote(self.path.split("/tags/", 1)[1].split("?")[0].strip("/"))
        return json.dumps({"Tags": self.backup_backend.list_tags(resource_arn=arn)})

    for f in (
        list_tags,
        create_backup_selection,
        get_backup_selection,
        list_backup_selections,
        delete_backup_selection,
        start_backup_job,
        list_recovery_points_by_backup_vault,
        delete_recovery_point,
    ):
        setattr(BackupResponse, f.__name__, f)

    original_delete_vault = BackupBackend.delete_backup_vault

    def delete_backup_vault(self, *args, **kwargs):
        name = kwargs.get("backup_vault_name", args[0] if args else None)
        left = len(points(self).get(name, {}))
        if left:
            raise JsonRESTError(
                "InvalidRequestException",
                f"Backup vault {name} cannot be deleted because it contains {left} recovery points",
            )
        return original_delete_vault(self, *args, **kwargs)

    BackupBackend.delete_backup_vault = delete_backup_vault

    # moto keeps deleted plans in its name check; AWS lets a deleted plan's name be reused.
    original_create_plan = BackupBackend.create_backup_plan

    def create_backup_plan(self, *args, **kwargs):
        deleted = {k: p for k, p in self.plans.items() if getattr(p, "deletion_date", None)}
        for k in deleted:
            del self.plans[k]
        try:
            return original_create_plan(self, *args, **kwargs)
        finally:
            self.plans.update(deleted)

    BackupBackend.create_backup_plan = create_backup_plan


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
    patch_rds()
    patch_backup()

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
