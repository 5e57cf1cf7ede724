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
  (default 3). A cluster is busy for TAP_EMULATOR_DB_BUSY_SECONDS (default 1.5) after each
  CreateDBInstance: another instance call on it then fails InvalidDBClusterStateFault, as
  parallel calls do on AWS (Terraform AWS provider #50115).
- TAP_TIME_SCALE (the tool's testing knob, default 1) divides these modeled times, except
  the two windows a test must hit from outside (the cluster busy, the NAT gateway deleting),
  and the consistency windows (/_tap/consistency) too.
- A NAT gateway deleted keeps its Elastic IP associated until it is `deleted`
  (TAP_EMULATOR_NAT_DELETE_SECONDS, default 8), as AWS does for about a
  minute: a new NAT gateway for that address meets `Resource.AlreadyAssociated` until then.
- RDS between a call and its result (patch_rds_lifecycle): deleted clusters and instances
  stay `deleting` for TAP_EMULATOR_DB_DELETE_SECONDS (default 1; an account's fault
  {"db_delete_seconds": N} sets a window in real seconds a test can start a repair inside,
  and {"db_delete_ends_when_refused": 1} ends it right after a create it refused), listed,
  their names taken and their subnet group in use; a modification makes them `modifying` for
  TAP_EMULATOR_DB_MODIFY_SECONDS (default 1), a new class or engine version pending
  (PendingModifiedValues) until then, another modification or a deletion refused meanwhile.
- ModifyDBSubnetGroup keeps the group (moto 5.2 loses it).
- AWS Backup selections (moto 5.2 answers 500) and recovery points: Create/Get/List/
  DeleteBackupSelection, StartBackupJob (makes a recovery point at once),
  ListRecoveryPointsByBackupVault, DeleteRecoveryPoint, and UpdateBackupPlan;
  Put/Get/DeleteBackupVaultAccessPolicy (a vault without one answers ResourceNotFound);
  DeleteBackupVault refuses a vault that still holds recovery points and DeleteBackupPlan a
  plan that still has selections, as AWS does.
- IAM policy conditions as AWS evaluates them where moto does not: a statement whose
  condition does not hold does not apply (moto denies), `Bool` conditions are evaluated, and
  every request counts as made over TLS (`aws:SecureTransport`), as it is on AWS. So an S3
  bucket policy that denies plain HTTP does not lock the bucket's owner out.
- CloudWatch Logs AssociateKmsKey and DisassociateKmsKey (moto 5.2 answers 500).
- EventBridge Scheduler: an existing group's name is refused (ConflictException), a schedule
  in a missing group and a missing group's deletion are ResourceNotFound, a deleted group
  takes its schedules and tags with it.
- RevokeSecurityGroupEgress removes IPv6 rules in a VPC without an IPv6 block, as AWS does
  (moto drops them from the request and leaves the rule).
- S3 GetBucketVersioning answered with AWS's root element (moto's is one strict clients reject).
- TAP_EMULATOR_LATENCY_MS (default 0) delays every answer, for benchmarks that count rounds
  of call latency.
- --model FILE [--percentile p50|p95] (tests/emulator/model.toml): the benchmarks' front. Every
  modeled time above comes from the model at that percentile (divided by TAP_TIME_SCALE, the
  two unscaled windows too), and each answer waits the model's read or write latency.
- ACM: a certificate is ISSUED once its validation records are in a hosted zone of its
  account and TAP_EMULATOR_ACM_SECONDS (default 2) have passed (moto issues after a fixed
  wait, records or not).
- Route53: a change is PENDING for TAP_EMULATOR_DNS_SECONDS (default 1), then INSYNC, each
  with its own id (moto: INSYNC at once, one id for all).
- ELBv2: a load balancer is `provisioning` for TAP_EMULATOR_ALB_SECONDS (default 2); a
  listener refuses a certificate not yet ISSUED (UnsupportedCertificate); deletion protection
  stops DeleteLoadBalancer (OperationNotPermitted).
- ECS: a service deploys for TAP_EMULATOR_ECS_SECONDS (default 2) before its tasks run
  (moto: never), drains for TAP_EMULATOR_ECS_DRAIN_SECONDS (4) when deleted, refusing a new
  service of its name meanwhile; DeleteCluster refuses a cluster with services.
- Application Auto Scaling tags (moto 5.2 lacks them), and policies deleted with their target
  (their target tracking alarms with them).
- CloudFront: a distribution is `InProgress` for TAP_EMULATOR_CF_SECONDS (default 2) after
  each change; a certificate not ISSUED is refused (InvalidViewerCertificate); ETags are
  checked; only a disabled, deployed distribution can be deleted; origins keep their origin
  access settings; origin access identities are served (moto 5.2 answers 404).
- CloudWatch over Smithy RPC v2 CBOR, the only protocol of current SDKs (moto 5.2 serves it
  over JSON 1.0 only): cbor_bridge.py translates both ways.
- Faults on purpose, per account (faults.py): PUT /_tap/faults/<account> {"throttle": 0.2,
  "error": 0.05, "drop": 0.02} fails that share of its calls with throttling in each
  protocol's shape, a 500/503, or a connection closed unanswered, before moto sees them;
  {"deny": ["kms:ListResourceTags"]} answers those operations with access denied;
  {"lost": 0.05, "seed": 7} carries out that share of its writes and loses their answers.
- Pages of one item, per account (pages.py): PUT /_tap/pages/<account> {"size": 1} answers
  every paginated call the product makes a page at a time.
- Client tokens honoured where moto ignores them (tokens.py): CreateNatGateway,
  CreateFlowLogs, ECS CreateService and Route53 CreateHostedZone answer a repeated token with
  the earlier answer.
- Crash points, per account (crash.py): PUT /_tap/crash/<account> {"after_writes": N} (and
  optionally "operation") serves the Nth write, then holds its answer and every later call
  until the test has killed the process; GET says whether it tripped and on what.
- A barrier, per account (barrier.py): PUT /_tap/barrier/<account> {"operation":
  "s3:PutObject[lock]", "parties": 2} holds the first calls of that operation until both have
  come, then serves them at once; GET tells the status each was answered.
- Eventual consistency on purpose, per account (consistency.py): PUT
  /_tap/consistency/<account> {"seconds": 3} makes a new role, a new key and a new NAT
  gateway unusable, and ENIs drain after a load balancer's deletion, for that long.
- Copies of an account (clone.py): PUT /_tap/clone/<account> {"from": "<account>"} copies
  every resource of one account to a new one, the account id rewritten, in milliseconds.
- Wrong credentials: the access key id 999999999403 is refused on every call with
  InvalidClientTokenId (403), as AWS refuses an unknown key.
- Requests counted per account and operation, for tests to assert how many writes a command
  made from the emulator's side: GET /_tap/calls/<account> answers {"Service:Operation": n};
  DELETE /_tap/calls/<account> resets the account's counts. With TAP_EMULATOR_CALLS_LOG set,
  the totals are appended to that file when the tests end (tests/emulator/coverage.py).
  With TAP_EMULATOR_TIMELINE set, each call is appended to that file as it comes:
  `<unix time> <account> <service:Operation> <T if a fault answered it, else ->` (how
  BENCHMARKS.md sees what a throttled run waited for).

Usage: launch.py [--host 127.0.0.1] [--port 0]
Prints `READY <port>` on stdout once it serves. With --parent-watch it exits when its
standard input closes (the test process that started it has ended).
"""

import argparse
import functools
import gc
import os
import re
import sys
import threading
import time

# TAP_TIME_SCALE (as the tool reads it) divides the modeled durations below (all but two)
# and the consistency windows: a run scaled on both sides keeps AWS's proportions in a tenth
# of the time.
TIME_SCALE = float(os.environ.get("TAP_TIME_SCALE", "1") or "1")


def modeled(name, default):
    """Seconds from $name (or `default`), divided by TAP_TIME_SCALE."""
    return float(os.environ.get(name, default)) / TIME_SCALE


NAT_SECONDS = modeled("TAP_EMULATOR_NAT_SECONDS", "2")
# AWS keeps a deleted NAT gateway `deleting` for about a minute; 8 s leaves a test time to
# start a repair while it is, on a busy machine.
# Not scaled: a window tests must hit from outside (a repair started while it lasts).
NAT_DELETE_SECONDS = float(os.environ.get("TAP_EMULATOR_NAT_DELETE_SECONDS", "8"))
DB_CLUSTER_SECONDS = modeled("TAP_EMULATOR_DB_CLUSTER_SECONDS", "1")
DB_SECONDS = modeled("TAP_EMULATOR_DB_SECONDS", "3")
# Not scaled: the second instance's create must land inside it (tests/it/database.rs), also
# on a machine busy compiling beside the suite (0.5 s was missed there).
DB_BUSY_SECONDS = float(os.environ.get("TAP_EMULATOR_DB_BUSY_SECONDS", "1.5"))
DB_DELETE_SECONDS = modeled("TAP_EMULATOR_DB_DELETE_SECONDS", "1")
DB_MODIFY_SECONDS = modeled("TAP_EMULATOR_DB_MODIFY_SECONDS", "1")
# Every request answered this much later (benchmarks: rounds of call latency).
LATENCY_SECONDS = float(os.environ.get("TAP_EMULATOR_LATENCY_MS", "0")) / 1000


def patch_speed():
    """Two lookups moto repeats on every request, answered once: a response class's method
    names (inspect.getmembers) and the list of its service modules (a directory walk).
    Together about a sixth of the emulator's CPU, which bounds the suite."""
    import moto.backends
    import moto.core.responses

    names = functools.lru_cache(maxsize=None)(moto.core.responses.method_names_from_class)
    moto.core.responses.method_names_from_class = names
    modules = list(moto.backends.list_of_moto_modules())
    moto.backends.list_of_moto_modules = lambda: modules

    # moto makes an RSA-2048 key pair for every KMS key (symmetric ones too) and every ACM
    # certificate: 50-100 ms of CPU each, during which no other call is served. One pair per
    # size serves them all; nothing here reads a key's material.
    from cryptography.hazmat.primitives.asymmetric import rsa

    made = {}
    generate = rsa.generate_private_key

    def generate_private_key(public_exponent, key_size, backend=None):
        if (public_exponent, key_size) not in made:
            made[(public_exponent, key_size)] = generate(public_exponent, key_size)
        return made[(public_exponent, key_size)]

    rsa.generate_private_key = generate_private_key

    # Python's full collections walked every object moto had loaded (service models, IAM's
    # managed policies) and stopped every call for 100-280 ms at a time. What survives a
    # full collection is frozen out of the next ones: each object is walked by one at most.
    # A frozen cycle is never freed (the emulator's memory only grows: fine for a test run).
    def freeze_after_full(phase, info):
        if phase == "stop" and info["generation"] == 2:
            gc.freeze()

    gc.callbacks.append(freeze_after_full)


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
    from moto.ec2.models import EC2Backend
    from moto.ec2.models.nat_gateways import NatGateway

    def release(nat):
        """What AWS does once a NAT gateway is `deleted`: free its address and interface."""
        if nat.__dict__.get("_tap_released"):
            return
        nat.__dict__["_tap_released"] = True
        backend = nat.ec2_backend
        for address in list(nat.address_set):
            association = address.get("associationId")
            if association:
                try:
                    backend.disassociate_address(association_id=association)
                except Exception:  # already gone
                    pass
        eni = getattr(nat, "_eni", None)
        if eni is not None:
            try:
                backend.delete_network_interface(eni.id)
            except Exception:
                pass

    def get_state(self):
        now = time.monotonic()
        deleted_at = self.__dict__.get("_tap_deleted_at")
        if deleted_at is not None:
            if now - deleted_at < NAT_DELETE_SECONDS:
                return "deleting"
            release(self)
            return "deleted"
        created_at = self.__dict__.get("_tap_created_at", now)
        return "pending" if now - created_at < NAT_SECONDS else "available"

    def set_state(self, value):
        if value == "deleted":
            self.__dict__["_tap_deleted_at"] = time.monotonic()
        else:
            self.__dict__["_tap_created_at"] = time.monotonic()

    NatGateway.state = property(get_state, set_state)

    def sweep(backend):
        # Reading each state releases the addresses of gateways whose deletion finished.
        for nat in list(getattr(backend, "nat_gateways", {}).values()):
            _ = nat.state

    for name in ("associate_address", "describe_addresses", "release_address", "disassociate_address"):
        original = getattr(EC2Backend, name)

        def wrapped(self, *args, __original=original, **kwargs):
            sweep(self)
            return __original(self, *args, **kwargs)

        setattr(EC2Backend, name, wrapped)

    # AWS refuses to detach a VPC's internet gateway while public addresses are mapped in it
    # (a NAT gateway's Elastic IP until that gateway is `deleted`); moto detaches.
    from moto.ec2.exceptions import DependencyViolationError

    original_detach = EC2Backend.detach_internet_gateway

    def detach_internet_gateway(self, internet_gateway_id, vpc_id):
        sweep(self)
        mapped = [
            nat.id
            for nat in getattr(self, "nat_gateways", {}).values()
            if nat.vpc_id == vpc_id and nat.state != "deleted" and nat.address_set
        ]
        if mapped:
            raise DependencyViolationError(
                f"Network {vpc_id} has some mapped public address(es). Please unmap those "
                f"public address(es) before detaching the gateway."
            )
        return original_detach(self, internet_gateway_id, vpc_id)

    EC2Backend.detach_internet_gateway = detach_internet_gateway


def patch_security_groups():
    """moto drops the IPv6 ranges of a RevokeSecurityGroupEgress in a VPC without an IPv6
    block, though it accepted them in the authorize: AWS revokes them. The VPC looks as if it
    had an IPv6 block during that call only (thread-local: the server is threaded)."""
    from moto.ec2.models.security_groups import SecurityGroupBackend
    from moto.ec2.models.vpcs import VPC

    local = threading.local()
    original_set = VPC.get_cidr_block_association_set

    def get_cidr_block_association_set(self, *args, **kwargs):
        found = original_set(self, *args, **kwargs)
        if getattr(local, "revoking", False) and kwargs.get("ipv6") and not found:
            return [{"ipv6CidrBlock": "::/56"}]
        return found

    VPC.get_cidr_block_association_set = get_cidr_block_association_set
    original_revoke = SecurityGroupBackend.revoke_security_group_egress

    def revoke_security_group_egress(self, *args, **kwargs):
        local.revoking = True
        try:
            return original_revoke(self, *args, **kwargs)
        finally:
            local.revoking = False

    SecurityGroupBackend.revoke_security_group_egress = revoke_security_group_egress


def patch_logs():
    """CloudWatch Logs AssociateKmsKey and DisassociateKmsKey (moto 5.2 answers 500)."""
    from moto.logs.exceptions import ResourceNotFoundException
    from moto.logs.responses import LogsResponse

    def group(self):
        name = self._get_param("logGroupName")
        found = self.logs_backend.groups.get(name)
        if found is None:
            raise ResourceNotFoundException()
        return found

    def associate_kms_key(self):
        group(self).kms_key_id = self._get_param("kmsKeyId")
        return ""

    def disassociate_kms_key(self):
        group(self).kms_key_id = None
        return ""

    LogsResponse.associate_kms_key = associate_kms_key
    LogsResponse.disassociate_kms_key = disassociate_kms_key


def patch_tagging():
    """GetResources with a ResourceARNList answered as AWS answers it: every listed resource in
    one answer (up to 100 ARNs), and a pagination parameter or a filter beside the list
    refused with InvalidParameterException. moto 5.2 pages it by TagsPerPage (100 tags: about 16 of the
    tool's resources), which left the rest to each node's own tag read."""
    from moto.core.responses import ActionResult
    from moto.resourcegroupstaggingapi.exceptions import ResourceGroupsTaggingAPIError
    from moto.resourcegroupstaggingapi.responses import ResourceGroupsTaggingAPIResponse

    original = ResourceGroupsTaggingAPIResponse.get_resources

    def get_resources(self):
        if not self._get_param("ResourceARNList"):
            return original(self)
        others = ("PaginationToken", "ResourcesPerPage", "TagsPerPage", "TagFilters", "ResourceTypeFilters")
        if any(self._get_param(p) is not None for p in others):
            raise ResourceGroupsTaggingAPIError(
                "InvalidParameterException",
                "ResourceARNList cannot be used with " + ", ".join(others),
            )
        if len(self._get_param("ResourceARNList")) > 100:
            raise ResourceGroupsTaggingAPIError(
                "InvalidParameterException", "ResourceARNList holds at most 100 ARNs"
            )
        _, found = self.backend.get_resources(
            resource_arn_list=self._get_param("ResourceARNList"),
            resources_per_page=10**9,
            tags_per_page=10**9,
        )
        tagged = {r.arn: r.tags for r in found}
        for arn in self._get_param("ResourceARNList"):
            if arn not in tagged:
                tags = tags_moto_leaves_out(self.current_account, self.region, arn)
                if tags:
                    tagged[arn] = tags
        mappings = [
            {
                "ResourceARN": arn,
                "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
            }
            for arn, tags in tagged.items()
        ]
        return ActionResult({"ResourceTagMappingList": mappings})

    ResourceGroupsTaggingAPIResponse.get_resources = get_resources


def tags_moto_leaves_out(account, region, arn):
    """The tags of a resource of a type AWS's GetResources answers for and moto 5.2's does not
    (ELB listeners and rules, Application Auto Scaling targets, Route53 hosted zones, RDS
    subnet groups, Backup plans), read from the backend that holds them; `None` for any other
    ARN or one that does not exist. Route53 is global: AWS answers for it in us-east-1."""
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return None
    service, resource = parts[2], parts[5]
    if service == "elasticloadbalancing" and resource.startswith(("listener/", "listener-rule/")):
        from moto.elbv2.models import elbv2_backends

        backend = elbv2_backends[account][region]
        for lb in backend.load_balancers.values():
            for listener in lb.listeners.values():
                if listener.arn == arn or arn in {r.arn for r in listener.rules.values()}:
                    return backend.tagging_service.get_tag_dict_for_resource(arn)
        return None
    if service == "application-autoscaling":
        from moto.applicationautoscaling.models import applicationautoscaling_backends

        backend = applicationautoscaling_backends[account][region]
        if any(t.arn == arn for targets in backend.targets.values() for t in targets.values()):
            return dict(backend.__dict__.get("_tap_tags", {}).get(arn, {}))
        return None
    if service == "route53" and resource.startswith("hostedzone/") and region == "us-east-1":
        from moto.route53.models import route53_backends

        backend = route53_backends[account]["aws"]
        zone = resource.split("/", 1)[1]
        return backend.list_tags_for_resource(zone) if zone in backend.zones else None
    if service == "rds" and resource.startswith("subgrp:"):
        from moto.rds.models import rds_backends

        backend = rds_backends[account][region]
        if resource.split(":", 1)[1] not in backend.subnet_groups:
            return None
        return {t["Key"]: t["Value"] for t in backend.list_tags_for_resource(arn)}
    if service == "backup" and resource.startswith("backup-plan:"):
        from moto.backup.models import backup_backends

        backend = backup_backends[account][region]
        if resource.split(":", 1)[1] not in backend.plans:
            return None
        return backend.tagger.get_tag_dict_for_resource(arn)
    return None


def patch_scheduler():
    """EventBridge Scheduler as strict as AWS where moto 5.2 is not: a group of a name that
    exists is refused (ConflictException; moto replaces it, losing its schedules), a
    schedule in a missing group and the deletion of a missing group are ResourceNotFound
    (moto answers 500), and a group's deletion takes its schedules and tags with it."""
    from moto.core.exceptions import JsonRESTError
    from moto.scheduler.exceptions import ScheduleGroupNotFound
    from moto.scheduler.models import EventBridgeSchedulerBackend as Backend

    create_group = Backend.create_schedule_group
    create_schedule = Backend.create_schedule

    def create_schedule_group(self, name, tags):
        if name in self.schedule_groups:
            raise JsonRESTError("ConflictException", f"Schedule group {name} already exists.")
        return create_group(self, name, tags)

    def create_schedule_in_group(self, *args, **kwargs):
        group = kwargs.get("group_name") or "default"
        if group not in self.schedule_groups:
            raise ScheduleGroupNotFound(group)
        return create_schedule(self, *args, **kwargs)

    def delete_schedule_group(self, name):
        group = self.schedule_groups.get(name or "default")
        if group is None:
            raise ScheduleGroupNotFound(name or "default")
        self.tagger.delete_all_tags_for_resource(group.arn)
        self.schedule_groups.pop(group.name)

    Backend.create_schedule_group = create_schedule_group
    Backend.create_schedule = create_schedule_in_group
    Backend.delete_schedule_group = delete_schedule_group


ACM_SECONDS = modeled("TAP_EMULATOR_ACM_SECONDS", "2")
DNS_SECONDS = modeled("TAP_EMULATOR_DNS_SECONDS", "1")


def patch_acm():
    """A certificate is ISSUED only once its validation records are in a hosted zone of its
    account and TAP_EMULATOR_ACM_SECONDS have passed since they were seen (moto issues any
    certificate after a fixed wait, records or not). DeleteCertificate refuses one a load
    balancer's listener or a distribution uses (ResourceInUseException, as AWS; moto deletes
    it)."""
    from moto.acm.exceptions import AWSError
    from moto.acm.models import AWSCertificateManagerBackend, CertBundle
    from moto.route53.models import route53_backends

    class InUse(AWSError):
        TYPE = "ResourceInUseException"

    def users(backend, arn):
        from moto.cloudfront.models import cloudfront_backends
        from moto.elbv2.models import elbv2_backends

        found = []
        lbs = elbv2_backends[backend.account_id][backend.region_name]
        for lb in lbs.load_balancers.values():
            for listener in lb.listeners.values():
                if arn in (listener.certificates or []):
                    found.append(listener.arn)
        if backend.region_name == "us-east-1":
            cf = cloudfront_backends[backend.account_id]["aws"]
            for dist in cf.distributions.values():
                viewer = dist.distribution_config.__dict__.get("ViewerCertificate")
                cert = viewer.get("ACMCertificateArn") if isinstance(viewer, dict) else getattr(viewer, "acm_certificate_arn", "")
                if cert == arn:
                    found.append(dist.distribution_id)
        return found

    original_delete_certificate = AWSCertificateManagerBackend.delete_certificate

    def delete_certificate(self, arn):
        used = users(self, arn)
        if used:
            raise InUse(f"Certificate {arn} is in use by {', '.join(used)}")
        return original_delete_certificate(self, arn)

    AWSCertificateManagerBackend.delete_certificate = delete_certificate

    original_check = CertBundle.check

    def record_names(cert):
        names = set(cert.sans + ([cert.common_name] if cert.common_name else []))
        # The names moto's describe gives (one per domain, `*.` stripped).
        return {
            f"_d930b28be6c5927595552b219965053e.{n[2:] if n.startswith('*.') else n}.".lower()
            for n in names
        }

    def in_zones(account, names):
        backend = route53_backends[account]["aws"]
        present = set()
        for zone in backend.zones.values():
            for rrset in zone.rrsets:
                name = rrset.name.lower().rstrip(".") + "."
                if name in names and rrset.type == "CNAME":
                    present.add(name)
        return present == names

    def check(self):
        original_check(self)
        if self.type != "AMAZON_ISSUED" or self.status != "PENDING_VALIDATION":
            return
        account = self.arn.split(":")[4]
        if not in_zones(account, record_names(self)):
            self.__dict__.pop("_tap_seen", None)
            return
        seen = self.__dict__.setdefault("_tap_seen", time.monotonic())
        if time.monotonic() - seen >= ACM_SECONDS:
            self.status = "ISSUED"

    CertBundle.check = check


def patch_route53_changes():
    """A change is PENDING for TAP_EMULATOR_DNS_SECONDS, then INSYNC, each with its own id
    (moto answers INSYNC at once, always with the same id)."""
    import uuid

    from moto.core.responses import ActionResult
    from moto.route53.responses import Route53

    changes = {}
    original_change = Route53.change_resource_record_sets

    def change_resource_record_sets(self):
        result = original_change(self)
        if isinstance(result, ActionResult):
            info = result.result["ChangeInfo"]
            change_id = f"C{uuid.uuid4().hex[:12].upper()}"
            changes[change_id] = time.monotonic()
            info["Id"] = f"/change/{change_id}"
            info["Status"] = "PENDING"
        return result

    original_get = Route53.get_change

    def get_change(self):
        result = original_get(self)
        if isinstance(result, ActionResult):
            info = result.result["ChangeInfo"]
            change_id = str(info["Id"]).rsplit("/", 1)[-1]
            at = changes.get(change_id)
            info["Id"] = f"/change/{change_id}"
            info["Status"] = "PENDING" if at is not None and time.monotonic() - at < DNS_SECONDS else "INSYNC"
        return result

    Route53.change_resource_record_sets = change_resource_record_sets
    Route53.get_change = get_change


ALB_SECONDS = modeled("TAP_EMULATOR_ALB_SECONDS", "2")


def patch_elbv2():
    """A load balancer is `provisioning` for TAP_EMULATOR_ALB_SECONDS (moto: active on the
    first describe); a listener refuses an ACM certificate that is not ISSUED
    (UnsupportedCertificate, as AWS); a load balancer with deletion protection refuses to be
    deleted (OperationNotPermitted; moto deletes it). Creates repeated with the same settings
    answer with what the first made, as AWS documents."""
    from moto.acm.models import acm_backends
    from moto.elbv2.exceptions import ELBClientError
    from moto.elbv2.models import ELBv2Backend, FakeLoadBalancer

    original_init = FakeLoadBalancer.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.__dict__["_tap_at"] = time.monotonic()

    def activate(self):
        if self.state == "provisioning" and time.monotonic() - self.__dict__.get("_tap_at", 0) >= ALB_SECONDS:
            self.state = "active"

    FakeLoadBalancer.__init__ = init
    FakeLoadBalancer.activate = activate

    def require_issued(backend, certificate):
        if not certificate or ":acm:" not in certificate:
            return
        try:
            cert = acm_backends[backend.account_id][backend.region_name].get_certificate(certificate)
        except Exception:
            return  # moto's own CertificateNotFound follows
        cert.check()
        if cert.status != "ISSUED":
            raise ELBClientError(
                "UnsupportedCertificate",
                f"The certificate '{certificate}' must have a fully-qualified domain name, a supported signature, and a supported key size.",
            )

    original_create_listener = ELBv2Backend.create_listener

    def create_listener(self, load_balancer_arn, protocol, port, ssl_policy, certificate, *args, **kwargs):
        require_issued(self, certificate)
        return original_create_listener(self, load_balancer_arn, protocol, port, ssl_policy, certificate, *args, **kwargs)

    ELBv2Backend.create_listener = create_listener

    original_delete = ELBv2Backend.delete_load_balancer

    def delete_load_balancer(self, arn):
        lb = self.load_balancers.get(arn)
        if lb is not None and lb.attrs.get("deletion_protection.enabled") == "true":
            raise ELBClientError(
                "OperationNotPermitted",
                f"Load balancer '{arn}' cannot be deleted because deletion protection is enabled",
            )
        return original_delete(self, arn)

    ELBv2Backend.delete_load_balancer = delete_load_balancer

    # AWS: "This operation is idempotent": a create repeated with the same settings (the
    # SDK's retry of one whose answer was lost) answers with what the first made; moto makes
    # a second load balancer of the same name, and refuses a target group's or listener's.
    original_create_lb = ELBv2Backend.create_load_balancer

    def create_load_balancer(self, name, *args, **kwargs):
        for lb in self.load_balancers.values():
            if lb.name == name:
                if kwargs.get("scheme", lb.scheme) != lb.scheme:
                    raise ELBClientError("DuplicateLoadBalancerName", "A load balancer with the same name exists with other settings")
                return lb
        return original_create_lb(self, name, *args, **kwargs)

    ELBv2Backend.create_load_balancer = create_load_balancer

    original_create_tg = ELBv2Backend.create_target_group

    def create_target_group(self, name, **kwargs):
        for tg in self.target_groups.values():
            if tg.name == name:
                same = (str(kwargs.get("port")) == str(tg.port) and kwargs.get("protocol") == tg.protocol
                        and kwargs.get("vpc_id") == tg.vpc_id)
                if not same:
                    raise ELBClientError("DuplicateTargetGroupName", "A target group with the specified name already exists.")
                return tg
        return original_create_tg(self, name, **kwargs)

    ELBv2Backend.create_target_group = create_target_group

    def create_listener_once(self, load_balancer_arn, protocol, port, ssl_policy, certificate, *args, **kwargs):
        balancer = self.load_balancers.get(load_balancer_arn)
        for existing in (balancer.listeners.values() if balancer is not None else []):
            if str(existing.port) == str(port) and existing.protocol == protocol:
                return existing
        return create_listener(self, load_balancer_arn, protocol, port, ssl_policy, certificate, *args, **kwargs)

    ELBv2Backend.create_listener = create_listener_once


ECS_SECONDS = modeled("TAP_EMULATOR_ECS_SECONDS", "2")
ECS_DRAIN_SECONDS = modeled("TAP_EMULATOR_ECS_DRAIN_SECONDS", "4")


def patch_ecs():
    """A service deploys for TAP_EMULATOR_ECS_SECONDS after CreateService and after an
    UpdateService that starts a deployment: its primary deployment is IN_PROGRESS, then
    COMPLETED with the desired count running (moto keeps 0 running, MOTO_ECS_SERVICE_RUNNING).
    A deleted service is DRAINING for TAP_EMULATOR_ECS_DRAIN_SECONDS (default 4) before
    INACTIVE; meanwhile CreateService of its name is refused (InvalidParameterException
    "Unable to Start a service that is still Draining.") and DeleteCluster refuses its cluster
    (ClusterContainsServicesException), as AWS does. CreateService keeps
    the capacity provider strategy, deployment configuration, health check grace period and
    managed tags setting (moto drops them), UpdateService the managed tags setting.
    DescribeTaskDefinition by family answers the latest ACTIVE revision (moto: the latest)."""
    import math

    from moto.ecs import models, responses
    from moto.ecs.exceptions import ECSException, InvalidParameterException, TaskDefinitionNotFoundException

    class ClusterContainsServices(ECSException):
        code = "ClusterContainsServicesException"

    Service = models.Service

    def ready(svc):
        return time.monotonic() >= svc.__dict__.get("_tap_ready_at", math.inf)

    def get_running(self):
        if self.status != "ACTIVE":
            return 0
        return self.desired_count if ready(self) else self.__dict__.get("_tap_before", 0)

    def get_pending(self):
        return max(self.desired_count - self.running_count, 0) if self.status == "ACTIVE" else 0

    def get_deployments(self):
        deployments = self.__dict__.get("_tap_deployments", [])
        for d in deployments[:1]:
            d.update(
                desiredCount=self.desired_count,
                runningCount=self.running_count,
                pendingCount=self.pending_count,
                taskDefinition=self.task_definition,
                rolloutState="COMPLETED" if ready(self) else "IN_PROGRESS",
            )
        return deployments

    def set_deployments(self, value):
        self.__dict__["_tap_deployments"] = value

    def get_status(self):
        status = self.__dict__.get("_tap_status", "ACTIVE")
        if status == "INACTIVE" and time.monotonic() < self.__dict__.get("_tap_gone_at", 0):
            return "DRAINING"
        return status

    def set_status(self, value):
        if value == "INACTIVE" and self.__dict__.get("_tap_status") != "INACTIVE":
            self.__dict__["_tap_gone_at"] = time.monotonic() + ECS_DRAIN_SECONDS
        self.__dict__["_tap_status"] = value

    Service.running_count = property(get_running, lambda self, value: None)
    Service.pending_count = property(get_pending, lambda self, value: None)
    Service.deployments = property(get_deployments, set_deployments)
    Service.status = property(get_status, set_status)

    def deploy(svc):
        svc.__dict__["_tap_before"] = svc.running_count if svc.status == "ACTIVE" else 0
        svc.__dict__["_tap_ready_at"] = time.monotonic() + ECS_SECONDS

    kept = {
        "capacityProviderStrategy": "capacity_provider_strategy",
        "deploymentConfiguration": "deployment_configuration",
        "healthCheckGracePeriodSeconds": "health_check_grace_period_seconds",
        "enableECSManagedTags": "enable_ecs_managed_tags",
    }
    Response = responses.EC2ContainerServiceResponse
    original_create = Response.create_service

    def create_service(self):
        cluster = self._get_param("cluster", "default").split("/")[-1]
        old = self.ecs_backend.services.get(f"{cluster}:{self._get_param('serviceName')}")
        if old is not None and old.status == "DRAINING":
            raise InvalidParameterException("Unable to Start a service that is still Draining.")
        result = original_create(self)
        svc = self.ecs_backend._get_service(self._get_param("cluster", "default"), self._get_param("serviceName"))
        for param, attr in kept.items():
            value = self._get_param(param)
            if value is not None:
                setattr(svc, attr, value)
        deploy(svc)
        return result

    original_update = Response.update_service

    def update_service(self):
        svc = self.ecs_backend._get_service(self._get_param("cluster", "default"), self._get_param("service"))
        new_deployment = any(
            self._get_param(p) is not None
            for p in ("taskDefinition", "networkConfiguration", "capacityProviderStrategy", "loadBalancers")
        ) or self._get_param("forceNewDeployment")
        if new_deployment:
            deploy(svc)
        result = original_update(self)
        managed = self._get_param("enableECSManagedTags")
        if managed is not None:
            svc.enable_ecs_managed_tags = managed
        return result

    Response.create_service = create_service
    Response.update_service = update_service

    Backend = models.EC2ContainerServiceBackend
    original_delete_cluster = Backend.delete_cluster

    def delete_cluster(self, cluster_str):
        name = cluster_str.split("/")[-1]
        busy = [s.name for key, s in self.services.items() if key.startswith(name + ":") and s.status != "INACTIVE"]
        if busy:
            raise ClusterContainsServices(
                f"The Cluster cannot be deleted while Services are active or draining: {', '.join(busy)}"
            )
        return original_delete_cluster(self, cluster_str)

    Backend.delete_cluster = delete_cluster

    original_describe_td = Backend.describe_task_definition

    def describe_task_definition(self, task_definition_str):
        name = task_definition_str.split("/")[-1]
        if ":" in name:
            return original_describe_td(self, task_definition_str)
        active = [r for r, d in self.task_definitions.get(name, {}).items() if d.status == "ACTIVE"]
        if not active:
            raise TaskDefinitionNotFoundException()
        return self.task_definitions[name][max(active)]

    Backend.describe_task_definition = describe_task_definition


def patch_autoscaling():
    """Application Auto Scaling tags: Tags on RegisterScalableTarget, TagResource,
    UntagResource, ListTagsForResource (moto 5.2 lacks them); DeregisterScalableTarget
    deletes the target's scaling policies and their alarms, as AWS does (moto keeps them), and answers one that
    is not there ObjectNotFoundException, as AWS does (moto: ValidationException); PutScalingPolicy
    on an existing policy replaces its managed alarms (moto adds a second pair each time)."""
    import json

    from moto.applicationautoscaling.models import ApplicationAutoscalingBackend, FakeApplicationAutoscalingPolicy

    original_put_policy = ApplicationAutoscalingBackend.put_scaling_policy

    def put_scaling_policy(self, policy_name, service_namespace, resource_id, scalable_dimension, *args, **kwargs):
        key = FakeApplicationAutoscalingPolicy.formulate_key(service_namespace, resource_id, scalable_dimension, policy_name)
        old = self.policies.get(key)
        if old is not None:
            old.delete_alarms(self.account_id, self.region_name)
        return original_put_policy(self, policy_name, service_namespace, resource_id, scalable_dimension, *args, **kwargs)

    ApplicationAutoscalingBackend.put_scaling_policy = put_scaling_policy
    from moto.applicationautoscaling.responses import ApplicationAutoScalingResponse as Response

    def tags_of(backend):
        return backend.__dict__.setdefault("_tap_tags", {})

    original_register = Response.register_scalable_target

    def register_scalable_target(self):
        result = original_register(self)
        tags = self._get_param("Tags")
        if tags:
            tags_of(self.applicationautoscaling_backend).setdefault(json.loads(result)["ScalableTargetARN"], {}).update(tags)
        return result

    def known_arn(backend, arn):
        for targets in backend.targets.values():
            if any(t.arn == arn for t in targets.values()):
                return
        # AWS: ResourceNotFoundException for the tag calls on an ARN it does not know.
        from moto.core.exceptions import JsonRESTError
        raise JsonRESTError("ResourceNotFoundException", f"Resource {arn} not found")

    def tag_resource(self):
        arn = self._get_param("ResourceARN")
        known_arn(self.applicationautoscaling_backend, arn)
        tags_of(self.applicationautoscaling_backend).setdefault(arn, {}).update(self._get_param("Tags") or {})
        return "{}"

    def untag_resource(self):
        arn = self._get_param("ResourceARN")
        known_arn(self.applicationautoscaling_backend, arn)
        tags = tags_of(self.applicationautoscaling_backend).get(arn, {})
        for key in self._get_param("TagKeys") or []:
            tags.pop(key, None)
        return "{}"

    def list_tags_for_resource(self):
        arn = self._get_param("ResourceARN")
        known_arn(self.applicationautoscaling_backend, arn)
        return json.dumps({"Tags": tags_of(self.applicationautoscaling_backend).get(arn, {})})

    Response.register_scalable_target = register_scalable_target
    Response.tag_resource = tag_resource
    Response.untag_resource = untag_resource
    Response.list_tags_for_resource = list_tags_for_resource

    original_deregister = ApplicationAutoscalingBackend.deregister_scalable_target

    def deregister_scalable_target(self, namespace, r_id, dimension):
        target = self.targets.get(dimension, {}).get(r_id)
        if target is None:
            # AWS: ObjectNotFoundException (moto: ValidationException).
            from moto.core.exceptions import JsonRESTError
            raise JsonRESTError(
                "ObjectNotFoundException",
                f"No scalable target registered for service namespace: {namespace}, resource ID: {r_id}, scalable dimension: {dimension}",
            )
        original_deregister(self, namespace, r_id, dimension)
        for key, policy in list(self.policies.items()):
            if policy.resource_id == r_id and policy.scalable_dimension == dimension:
                policy.delete_alarms(self.account_id, self.region_name)  # AWS's own alarms go too
                del self.policies[key]
        if target is not None:
            tags_of(self).pop(target.arn, None)

    ApplicationAutoscalingBackend.deregister_scalable_target = deregister_scalable_target


CF_SECONDS = modeled("TAP_EMULATOR_CF_SECONDS", "2")


def patch_cloudfront():
    """A distribution is `InProgress` for TAP_EMULATOR_CF_SECONDS after each create or update
    (moto: `Deployed` at once); a viewer certificate not ISSUED is refused
    (InvalidViewerCertificate); updates and deletes must name the current ETag
    (PreconditionFailed) and change it; DeleteDistribution refuses a distribution that is
    enabled or not yet deployed (DistributionNotDisabled); an origin keeps its
    OriginAccessControlId and S3OriginConfig (moto drops them). Origin access controls: one
    per name, If-Match honoured, refused deletion while in use. Origin access identities
    (moto 5.2 answers 404): Create/Get/GetConfig/Update/Delete/List."""
    from moto.acm.models import acm_backends
    from moto.cloudfront import models, urls
    from moto.cloudfront.exceptions import CloudFrontException
    from moto.cloudfront.responses import CloudFrontResponse
    from moto.core.responses import ActionResult, EmptyResult

    def fail(code, message):
        return CloudFrontException(code, message)

    original_origin_init = models.Origin.__init__

    def origin_init(self, origin):
        original_origin_init(self, origin)
        self.origin_access_control_id = origin.get("OriginAccessControlId") or ""
        if "S3OriginConfig" in origin:
            identity = (origin.get("S3OriginConfig") or {}).get("OriginAccessIdentity") or ""
            self.s3_origin_config = {"OriginAccessIdentity": identity}

    models.Origin.__init__ = origin_init

    def get_status(self):
        return "InProgress" if time.monotonic() < self.__dict__.get("_tap_ready_at", 0) else "Deployed"

    models.Distribution.status = property(get_status, lambda self, value: None)

    def deploying(dist):
        dist.__dict__["_tap_ready_at"] = time.monotonic() + CF_SECONDS
        dist.etag = models.random_id()

    def require_issued(backend, config):
        arn = ((config or {}).get("ViewerCertificate") or {})
        arn = arn.get("ACMCertificateArn") if isinstance(arn, dict) else getattr(arn, "acm_certificate_arn", "")
        if not arn:
            return
        cert = None
        try:
            cert = acm_backends[backend.account_id]["us-east-1"].get_certificate(arn)
            cert.check()
        except Exception:
            cert = None
        if cert is None or cert.status != "ISSUED":
            raise fail(
                "InvalidViewerCertificate",
                "The specified SSL certificate doesn't exist, isn't in us-east-1 region, isn't valid, or doesn't include a valid certificate chain.",
            )

    def require_etag(dist, if_match):
        if if_match != dist.etag:
            raise fail("PreconditionFailed", "The If-Match version is missing or not valid for the resource.")

    Backend = models.CloudFrontBackend

    # Origin access controls as AWS keeps them: a name is the account's once (moto makes a
    # second); updates and deletes name the current ETag (moto ignores If-Match) and change
    # it; one a distribution's origin uses cannot be deleted (moto deletes it).
    original_create_control = Backend.create_origin_access_control

    def create_origin_access_control(self, config_dict):
        if any(c.name == config_dict.get("Name") for c in self.origin_access_controls.values()):
            raise fail("OriginAccessControlAlreadyExists",
                       "An origin access control with the same name already exists.")
        return original_create_control(self, config_dict)

    Backend.create_origin_access_control = create_origin_access_control

    def control_in_use(backend, control_id):
        for dist in backend.distributions.values():
            origins = dist.distribution_config.__dict__.get("Origins", {}).get("Items", [])
            if any(getattr(o, "origin_access_control_id", "") == control_id for o in origins):
                return True
        return False

    original_update_control = CloudFrontResponse.update_origin_access_control
    original_delete_control = CloudFrontResponse.delete_origin_access_control

    def require_control_etag(response):
        control = response.backend.get_origin_access_control(response._get_param("Id"))
        if response.headers.get("If-Match") != control.etag:
            raise fail("PreconditionFailed", "The If-Match version is missing or not valid for the resource.")
        return control

    def update_origin_access_control(self):
        control = require_control_etag(self)
        control.etag = models.random_id()
        return original_update_control(self)

    def delete_origin_access_control(self):
        require_control_etag(self)
        if control_in_use(self.backend, self._get_param("Id")):
            raise fail("OriginAccessControlInUse",
                       "Cannot delete this origin access control because it's in use by one or more origins.")
        return original_delete_control(self)

    CloudFrontResponse.update_origin_access_control = update_origin_access_control
    CloudFrontResponse.delete_origin_access_control = delete_origin_access_control

    original_create = Backend.create_distribution_with_tags

    def create_distribution_with_tags(self, distribution_config, tags):
        require_issued(self, distribution_config)
        dist, location, _ = original_create(self, distribution_config, tags)
        deploying(dist)
        return dist, location, dist.etag

    original_update = Backend.update_distribution

    def update_distribution(self, dist_config, _id, if_match):
        dist = self.distributions.get(_id)
        if dist is None:
            raise models.NoSuchDistribution
        require_etag(dist, if_match)
        require_issued(self, dist_config)
        dist, location, _ = original_update(self, dist_config, _id, if_match)
        deploying(dist)
        return dist, location, dist.etag

    original_delete = Backend.delete_distribution

    def delete_distribution(self, distribution_id, if_match):
        dist = self.distributions.get(distribution_id)
        if dist is None:
            raise models.NoSuchDistribution
        require_etag(dist, if_match)
        enabled = str(dist.distribution_config.__dict__.get("Enabled")).lower() == "true"
        if enabled or dist.status != "Deployed":
            raise fail(
                "DistributionNotDisabled",
                "The distribution you are trying to delete has not been disabled.",
            )
        return original_delete(self, distribution_id, if_match)

    Backend.create_distribution_with_tags = create_distribution_with_tags
    Backend.update_distribution = update_distribution
    Backend.delete_distribution = delete_distribution

    # Origin access identities.
    base = "{0}/2020-05-31/origin-access-identity/cloudfront"
    urls.url_paths.update(
        {
            base + "$": CloudFrontResponse.dispatch,
            base + "/(?P<Id>[^/]+)$": CloudFrontResponse.dispatch,
            base + "/(?P<Id>[^/]+)/config$": CloudFrontResponse.dispatch,
        }
    )

    def store(backend):
        return backend.__dict__.setdefault("_tap_identities", {})

    def found(self):
        entry = store(self.backend).get(self._get_param("Id"))
        if entry is None:
            raise fail("NoSuchCloudFrontOriginAccessIdentity", "The specified origin access identity does not exist.")
        return entry

    def create_identity(self):
        config = self._get_param("CloudFrontOriginAccessIdentityConfig", {}) or {}
        for entry in store(self.backend).values():
            if entry["identity"]["CloudFrontOriginAccessIdentityConfig"]["CallerReference"] == config.get("CallerReference"):
                raise fail(
                    "CloudFrontOriginAccessIdentityAlreadyExists",
                    "The caller reference is associated with another origin access identity.",
                )
        identity_id = "E" + models.random_id(length=13)[1:]
        identity = {
            "Id": identity_id,
            "S3CanonicalUserId": models.random_id(uppercase=False, length=64),
            "CloudFrontOriginAccessIdentityConfig": {
                "CallerReference": config.get("CallerReference") or "",
                "Comment": config.get("Comment") or "",
            },
        }
        entry = {"identity": identity, "etag": models.random_id()}
        store(self.backend)[identity_id] = entry
        return ActionResult(
            {
                "CloudFrontOriginAccessIdentity": identity,
                "ETag": entry["etag"],
                "Location": f"https://cloudfront.amazonaws.com/2020-05-31/origin-access-identity/cloudfront/{identity_id}",
            }
        )

    def get_identity(self):
        entry = found(self)
        return ActionResult({"CloudFrontOriginAccessIdentity": entry["identity"], "ETag": entry["etag"]})

    def get_identity_config(self):
        entry = found(self)
        return ActionResult(
            {
                "CloudFrontOriginAccessIdentityConfig": entry["identity"]["CloudFrontOriginAccessIdentityConfig"],
                "ETag": entry["etag"],
            }
        )

    def update_identity(self):
        entry = found(self)
        if self._get_param("IfMatch") != entry["etag"]:
            raise fail("PreconditionFailed", "The If-Match version is missing or not valid for the resource.")
        config = self._get_param("CloudFrontOriginAccessIdentityConfig", {}) or {}
        entry["identity"]["CloudFrontOriginAccessIdentityConfig"]["Comment"] = config.get("Comment") or ""
        entry["etag"] = models.random_id()
        return get_identity(self)

    def delete_identity(self):
        entry = found(self)
        if self._get_param("IfMatch") != entry["etag"]:
            raise fail("PreconditionFailed", "The If-Match version is missing or not valid for the resource.")
        del store(self.backend)[entry["identity"]["Id"]]
        return EmptyResult()

    def list_identities(self):
        items = [
            {
                "Id": e["identity"]["Id"],
                "S3CanonicalUserId": e["identity"]["S3CanonicalUserId"],
                "Comment": e["identity"]["CloudFrontOriginAccessIdentityConfig"]["Comment"],
            }
            for e in store(self.backend).values()
        ]
        return ActionResult(
            {
                "CloudFrontOriginAccessIdentityList": {
                    "Marker": "",
                    "MaxItems": 100,
                    "IsTruncated": False,
                    "Quantity": len(items),
                    "Items": items,
                }
            }
        )

    CloudFrontResponse.create_cloud_front_origin_access_identity = create_identity
    CloudFrontResponse.get_cloud_front_origin_access_identity = get_identity
    CloudFrontResponse.get_cloud_front_origin_access_identity_config = get_identity_config
    CloudFrontResponse.update_cloud_front_origin_access_identity = update_identity
    CloudFrontResponse.delete_cloud_front_origin_access_identity = delete_identity
    CloudFrontResponse.list_cloud_front_origin_access_identities = list_identities


def patch_s3():
    from moto.s3.responses import S3Response

    def get_bucket_versioning(self):
        # moto 5.2 answers <GetBucketVersioningResponse>; AWS (and strict clients such as
        # the Rust SDK) use <VersioningConfiguration>.
        status = self.backend.get_bucket_versioning(self.bucket_name)
        inner = f"<Status>{status}</Status>" if status else ""
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f'<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{inner}</VersioningConfiguration>'
        )
        return 200, {"Content-Type": "application/xml"}, body

    S3Response.get_bucket_versioning = get_bucket_versioning

    # Conditional writes atomic, as on S3: moto checks If-None-Match / If-Match, then writes,
    # and its server is threaded, so two writers could both pass the check. One at a time.
    conditional = threading.Lock()
    original_put = S3Response.put_object
    original_delete = S3Response.delete_object

    def put_object(self):
        if self.headers.get("If-None-Match") or self.headers.get("If-Match"):
            with conditional:
                return original_put(self)
        return original_put(self)

    def delete_object(self, *args, **kwargs):
        if self.headers.get("If-Match"):
            with conditional:
                return original_delete(self, *args, **kwargs)
        return original_delete(self, *args, **kwargs)

    S3Response.put_object = put_object
    S3Response.delete_object = delete_object


def patch_policy_conditions():
    from moto.iam import policy_conditions
    from moto.iam.access_control import IAMPolicyStatement, PermissionResult

    def bool_equals(expected, actual):
        values = expected if isinstance(expected, list) else [expected]
        return str(actual).lower() in [str(v).lower() for v in values]

    policy_conditions.CONDITION_OPERATIONS["Bool"] = bool_equals
    original = IAMPolicyStatement.is_action_permitted

    def is_action_permitted(self, action, resource="*", principal=None, incoming_condition_values=None):
        values = {"aws:SecureTransport": "true", **(incoming_condition_values or {})}
        if self._statement.get("Condition") and not self._check_conditions(values):
            return PermissionResult.NEUTRAL  # a statement whose condition fails does not apply
        return original(self, action, resource, principal, values)

    IAMPolicyStatement.is_action_permitted = is_action_permitted


def patch_rds():
    from moto.rds.exceptions import RDSClientError
    from moto.rds.models import DBCluster, DBInstance, RDSBackend

    # A cluster's name is taken until it is deleted (moto replaces a cluster created twice,
    # and makes its managed secret again).
    original_create_cluster = RDSBackend.create_db_cluster

    def create_db_cluster(self, kwargs):
        if kwargs["db_cluster_identifier"] in self.clusters:
            raise RDSClientError("DBClusterAlreadyExistsFault", "DB Cluster already exists")
        return original_create_cluster(self, kwargs)

    RDSBackend.create_db_cluster = create_db_cluster

    def cluster_status(self):
        since = self.__dict__.setdefault("_tap_since", time.monotonic())
        if self._status == "creating" and time.monotonic() - since >= DB_CLUSTER_SECONDS:
            self._status = "available"
        if self._status == "modifying" and time.monotonic() - since >= DB_MODIFY_SECONDS:
            settle(self)
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
        if value == "modifying" and time.monotonic() - self.__dict__["_tap_modified"] >= DB_MODIFY_SECONDS:
            settle(self)
            value = self.__dict__["_tap_status"] = "available"
        return value

    def set_instance_status(self, value):
        self.__dict__.setdefault("_tap_created", time.monotonic())
        self.__dict__["_tap_status"] = value

    DBInstance.status = property(instance_status, set_instance_status)

    patch_rds_lifecycle(DBCluster, DBInstance, RDSBackend)

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

    import faults

    def create_db_instance(self, db_kwargs):
        cluster = db_kwargs.get("db_cluster_identifier")
        if cluster:
            busy = self.__dict__.setdefault("_tap_cluster_busy", {})
            now = time.monotonic()
            window = faults.setting(self.account_id, "db_busy_seconds", DB_BUSY_SECONDS)
            if now - busy.get(cluster, -1e9) < window:
                raise InvalidDBClusterStateFault(
                    f"Cannot create an instance in DB cluster {cluster}: another instance operation is in progress."
                )
            # A create refused (its name taken) starts no operation on the cluster.
            made = keep_insights(original_create(self, db_kwargs), db_kwargs)
            busy[cluster] = now
            return made
        return keep_insights(original_create(self, db_kwargs), db_kwargs)

    def modify_db_instance(self, db_instance_identifier, db_kwargs):
        return keep_insights(original_modify(self, db_instance_identifier, db_kwargs), db_kwargs)

    RDSBackend.create_db_instance = create_db_instance

    # moto 5.2 pops the group in ModifyDBSubnetGroup and never puts it back.
    original_modify_group = RDSBackend.modify_db_subnet_group

    def modify_db_subnet_group(self, subnet_name, description, subnets):
        group = original_modify_group(self, subnet_name, description, subnets)
        self.subnet_groups[subnet_name] = group
        return group

    RDSBackend.modify_db_subnet_group = modify_db_subnet_group
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


def settle(resource):
    """Applies what a modification left pending (PendingModifiedValues) once it is done."""
    for attr, value in resource.__dict__.pop("_tap_pending", {}).items():
        setattr(resource, attr, value)
    resource.pending_modified_values = {}


def patch_rds_lifecycle(DBCluster, DBInstance, RDSBackend):
    """What AWS does between a call and its result, where the product must cope with it:

    - Deleted clusters and instances stay `deleting` for TAP_EMULATOR_DB_DELETE_SECONDS
      (default 1; an account's {"db_delete_seconds": N} fault sets its own), listed by Describe*, their name taken (AlreadyExists) and their subnet
      group in use until then (moto removes them at once).
    - ModifyDBInstance and ModifyDBCluster make the resource `modifying` for
      TAP_EMULATOR_DB_MODIFY_SECONDS (default 1); a new instance class or engine version
      shows in PendingModifiedValues and takes effect only then (at once with
      ApplyImmediately; without it, at the next maintenance window, which never comes here).
      Another modification or a deletion meanwhile is refused (InvalidDBInstanceState /
      InvalidDBClusterStateFault), as AWS refuses them.
    """
    import faults
    from moto.rds.exceptions import (
        DBClusterNotFoundError,
        DBInstanceAlreadyExists,
        DBInstanceNotFoundError,
        InvalidDBClusterStateFault,
        RDSClientError,
    )

    def leaving(backend, kind):
        """The `deleting` ones of a kind ("db" or "cluster") still listed: {name: resource}."""
        gone = backend.__dict__.setdefault("_tap_leaving", {}).setdefault(kind, {})
        now = time.monotonic()
        for name in [n for n, (_, until) in gone.items() if until <= now]:
            del gone[name]
        return {name: resource for name, (resource, _) in gone.items()}

    def leave(backend, kind, name, resource):
        resource.__dict__["_tap_status"] = "deleting"
        if kind == "cluster":
            resource._status = "deleting"
        window = faults.setting(backend.account_id, "db_delete_seconds", DB_DELETE_SECONDS)
        backend.__dict__.setdefault("_tap_leaving", {}).setdefault(kind, {})[name] = (
            resource,
            time.monotonic() + window,
        )

    def listing(original, kind, cls, key, not_found):
        argument = f"{kind.replace('db', 'db_instance') if kind == 'db' else 'db_cluster'}_identifier"

        def describe(self, *args, **kwargs):
            identifier = args[0] if args else kwargs.get(argument)
            filters = args[1] if len(args) > 1 else kwargs.get("filters")
            going = leaving(self, kind)
            try:
                found = original(self, identifier, filters)
            except not_found:
                found = []
            if identifier:
                filters = {**(filters or {}), key: [identifier]}
            if going and filters:
                going = self._filter_resources(going, filters, cls)
            found += list(going.values())
            for resource in found:
                resource.status  # settles a finished modification before it is answered
            if identifier and not found:
                raise not_found(identifier)
            return found

        return describe

    RDSBackend.describe_db_instances = listing(
        RDSBackend.describe_db_instances, "db", DBInstance, "db-instance-id", DBInstanceNotFoundError
    )
    RDSBackend.describe_db_clusters = listing(
        RDSBackend.describe_db_clusters, "cluster", DBCluster, "db-cluster-id", DBClusterNotFoundError
    )

    original_create_instance = RDSBackend.create_db_instance

    def create_db_instance(self, db_kwargs):
        name = db_kwargs["db_instance_identifier"]
        if name in leaving(self, "db"):
            if faults.setting(self.account_id, "db_delete_ends_when_refused", 0):
                # The deletion ends just after this refusal: the caller's next look finds
                # the name free and nothing going away.
                del self.__dict__["_tap_leaving"]["db"][name]
            raise DBInstanceAlreadyExists()
        return original_create_instance(self, db_kwargs)

    RDSBackend.create_db_instance = create_db_instance

    original_create_cluster = RDSBackend.create_db_cluster

    def create_db_cluster(self, kwargs):
        if kwargs["db_cluster_identifier"] in leaving(self, "cluster"):
            raise RDSClientError("DBClusterAlreadyExistsFault", "DB Cluster already exists")
        return original_create_cluster(self, kwargs)

    RDSBackend.create_db_cluster = create_db_cluster

    def instance_busy(instance, doing):
        status = instance.status
        if status != "available":
            raise RDSClientError(
                "InvalidDBInstanceState",
                f"Cannot {doing} DB instance {instance.db_instance_identifier}: it is {status}.",
            )

    original_delete_instance = RDSBackend.delete_db_instance

    def delete_db_instance(self, db_instance_identifier, *args, **kwargs):
        name = db_instance_identifier
        if name in leaving(self, "db"):
            raise RDSClientError("InvalidDBInstanceState", f"Instance {name} is already being deleted.")
        if name in self.databases and self.databases[name].status == "modifying":
            instance_busy(self.databases[name], "delete")
        instance = original_delete_instance(self, db_instance_identifier, *args, **kwargs)
        leave(self, "db", name, instance)
        return instance

    RDSBackend.delete_db_instance = delete_db_instance

    original_delete_cluster = RDSBackend.delete_db_cluster

    def delete_db_cluster(self, cluster_identifier, *args, **kwargs):
        if cluster_identifier in leaving(self, "cluster"):
            raise InvalidDBClusterStateFault(f"Cluster {cluster_identifier} is already being deleted.")
        cluster = self.clusters.get(cluster_identifier)
        if cluster is not None and cluster.status == "modifying":
            raise InvalidDBClusterStateFault(f"Cluster {cluster_identifier} is modifying.")
        cluster = original_delete_cluster(self, cluster_identifier, *args, **kwargs)
        leave(self, "cluster", cluster_identifier, cluster)
        return cluster

    RDSBackend.delete_db_cluster = delete_db_cluster

    original_modify_instance = RDSBackend.modify_db_instance

    def modify_db_instance(self, db_instance_identifier, db_kwargs):
        instance = self.describe_db_instances(db_instance_identifier)[0]
        instance_busy(instance, "modify")
        before = instance.db_instance_class
        instance = original_modify_instance(self, db_instance_identifier, db_kwargs)
        pending = {}
        if instance.db_instance_class != before:
            pending["db_instance_class"] = instance.db_instance_class
            instance.db_instance_class = before
            instance.pending_modified_values = {"DBInstanceClass": pending["db_instance_class"]}
        if pending and not db_kwargs.get("apply_immediately"):
            instance.__dict__["_tap_pending"] = pending  # the next maintenance window
            return instance
        instance.__dict__["_tap_pending"] = pending
        instance.__dict__["_tap_status"] = "modifying"
        instance.__dict__["_tap_modified"] = time.monotonic()
        return instance

    RDSBackend.modify_db_instance = modify_db_instance

    original_modify_cluster = RDSBackend.modify_db_cluster

    def modify_db_cluster(self, kwargs):
        name = kwargs["db_cluster_identifier"]
        cluster = self.clusters.get(name)
        if cluster is None:
            if name in leaving(self, "cluster"):
                raise InvalidDBClusterStateFault(f"Cluster {name} is being deleted.")
            raise DBClusterNotFoundError(name)
        if cluster.status != "available":
            raise InvalidDBClusterStateFault(f"Cluster {name} is {cluster.status}, not available.")
        before = cluster.engine_version
        original_modify_cluster(self, kwargs)
        pending = {}
        if cluster.engine_version != before:
            pending["engine_version"] = cluster.engine_version
            cluster.engine_version = before
            cluster.pending_modified_values = {"EngineVersion": pending["engine_version"]}
        cluster.__dict__["_tap_pending"] = pending
        cluster.status = "modifying"  # the setter restarts the clock
        if pending and not kwargs.get("apply_immediately"):
            cluster._status = "available"
        return cluster

    RDSBackend.modify_db_cluster = modify_db_cluster

    original_delete_group = RDSBackend.delete_subnet_group

    def delete_subnet_group(self, subnet_name):
        users = [
            *(c for c in list(self.clusters.values()) + list(leaving(self, "cluster").values())),
            *(d for d in list(self.databases.values()) + list(leaving(self, "db").values())),
        ]
        for user in users:
            if getattr(user, "db_subnet_group_name", None) == subnet_name:
                raise RDSClientError(
                    "InvalidDBSubnetGroupStateFault",
                    f"Cannot delete the subnet group '{subnet_name}' because at least one database is still using it.",
                )
        return original_delete_group(self, subnet_name)

    RDSBackend.delete_subnet_group = delete_subnet_group


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
            "{0}/backup-vaults/(?P<name>[^/]+)/access-policy/?$": BackupResponse.dispatch,
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

    def vault_policies(backend):
        return backend.__dict__.setdefault("_tap_vault_policies", {})

    def policy_vault(self):
        vault = vault_from_path(self.path)
        if vault not in self.backup_backend.vaults:
            raise not_found(f"Backup vault {vault}")
        return vault, vault_policies(self.backup_backend)

    def put_backup_vault_access_policy(self):
        vault, store = policy_vault(self)
        store[vault] = json.loads(self.body or "{}").get("Policy", "")
        return "{}"

    def get_backup_vault_access_policy(self):
        vault, store = policy_vault(self)
        if vault not in store:  # AWS's answer for a vault without one
            raise JsonRESTError("ResourceNotFoundException", f"Backup Vault {vault} has no associated POLICY")
        arn = self.backup_backend.vaults[vault].backup_vault_arn
        return json.dumps({"BackupVaultName": vault, "BackupVaultArn": arn, "Policy": store[vault]})

    def delete_backup_vault_access_policy(self):
        vault, store = policy_vault(self)
        store.pop(vault, None)
        return "{}"

    def list_tags(self):
        # moto takes the ARN from a trailing-slash path only (boto3's); the Rust SDK sends none.
        arn = unquote(self.path.split("/tags/", 1)[1].split("?")[0].strip("/"))
        return json.dumps({"Tags": self.backup_backend.list_tags(resource_arn=arn)})

    def update_backup_plan(self):
        plan_id = unquote(self.path.split("/plans/", 1)[1].strip("/"))
        plan = self.backup_backend.plans.get(plan_id)
        if plan is None or plan.deletion_date:
            raise not_found(f"Backup plan {plan_id}")
        new = json.loads(self.body)["BackupPlan"]
        for rule in new.get("Rules", []):
            rule.setdefault("ScheduleExpression", "cron(0 5 ? * * *)")
            rule.setdefault("StartWindowMinutes", 480)
            rule.setdefault("CompletionWindowMinutes", 10080)
            rule.setdefault("ScheduleExpressionTimezone", "Etc/UTC")
            rule["RuleId"] = str(uuid.uuid4())
        plan.backup_plan = new
        plan.version_id = uuid.uuid4().hex
        return json.dumps(
            {
                "BackupPlanId": plan.backup_plan_id,
                "BackupPlanArn": plan.backup_plan_arn,
                "CreationDate": plan.creation_date,
                "VersionId": plan.version_id,
            }
        )

    for f in (
        update_backup_plan,
        list_tags,
        create_backup_selection,
        get_backup_selection,
        list_backup_selections,
        delete_backup_selection,
        start_backup_job,
        list_recovery_points_by_backup_vault,
        delete_recovery_point,
        put_backup_vault_access_policy,
        get_backup_vault_access_policy,
        delete_backup_vault_access_policy,
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
        vault_policies(self).pop(name, None)
        return original_delete_vault(self, *args, **kwargs)

    BackupBackend.delete_backup_vault = delete_backup_vault

    original_delete_plan = BackupBackend.delete_backup_plan

    def delete_backup_plan(self, backup_plan_id):
        if any(sel["BackupPlanId"] == backup_plan_id for sel in selections(self).values()):
            raise JsonRESTError(
                "InvalidRequestException",
                f"Backup plan {backup_plan_id} cannot be deleted because it has selections",
            )
        return original_delete_plan(self, backup_plan_id)

    BackupBackend.delete_backup_plan = delete_backup_plan

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


# An access key id the emulator refuses (InvalidClientTokenId), for wrong-credential tests.
REJECTED_KEY = "999999999403"
CALLS = {}
# Every request since the start, by operation: resets of CALLS do not touch it.
SERVED = {}
# The tool names itself in its user agent (src/aws/mod.rs); the tests' own clients do not.
PRODUCT_AGENT = "app/tap-provision"


def from_product(environ):
    """A call the tap-provision binary made (not a test's own out-of-band or inventory call)."""
    agent = f'{environ.get("HTTP_X_AMZ_USER_AGENT", "")} {environ.get("HTTP_USER_AGENT", "")}'
    return PRODUCT_AGENT in agent.split()

CALLS_LOCK = threading.Lock()
TIMELINE = os.environ.get("TAP_EMULATOR_TIMELINE")
CREDENTIAL = re.compile(r"Credential=([^/]+)/[^/]+/[^/]+/([^/]+)/")


def operation_of(environ, body):
    """The AWS operation a request calls: query `Action`, JSON `X-Amz-Target`, or the REST
    route of the service's model."""
    from urllib.parse import parse_qs

    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if "Action" in query:
        return query["Action"][0]
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded") and body:
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        if "Action" in form:
            return form["Action"][0]
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.split(".")[-1]
    match = CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    service = match.group(2) if match else "?"
    method = environ.get("REQUEST_METHOD", "GET")
    path = environ.get("PATH_INFO", "")
    if service == "s3":
        return s3_operation(method, path, query)
    try:
        from werkzeug.wrappers import Request

        request = Request(environ)
        request.raw_path = path
        operation, _ = service_router(service).match(request)
        return operation.name
    except Exception:
        return f"{method} {path}"


@functools.lru_cache(maxsize=None)
def service_router(service):
    """moto builds a router from the service's model on every call: once per service here."""
    from moto.core.routing import get_service_router

    return get_service_router(service)


S3_SUBRESOURCES = {
    "publicAccessBlock": "PublicAccessBlock",
    "ownershipControls": "BucketOwnershipControls",
    "encryption": "BucketEncryption",
    "versioning": "BucketVersioning",
    "policy": "BucketPolicy",
    "lifecycle": "BucketLifecycleConfiguration",
    "tagging": "BucketTagging",
    "location": "BucketLocation",
    "acl": "BucketAcl",
    "website": "BucketWebsite",
    "logging": "BucketLogging",
    "cors": "BucketCors",
}


def s3_operation(method, path, query):
    """S3 operations by path-style route: the bucket's sub-resource in the query string. The
    tool's own lock and run reports are told apart (`PutObject[lock]`, `PutObject[history]`),
    so tests count the environment's writes without them and the lock's on their own."""
    verb = {"GET": "Get", "PUT": "Put", "DELETE": "Delete", "HEAD": "Head", "POST": "Post"}.get(method, method)
    parts = [p for p in path.split("/") if p]
    if len(parts) > 1:
        key = "/".join(parts[1:])
        if key.startswith("tap-provision/lock"):
            return f"{verb}Object[lock]"
        if key.startswith("tap-provision/runs/"):
            return f"{verb}Object[history]"
        return f"{verb}Object"
    if not parts:
        return "ListBuckets" if method == "GET" else f"{verb}Service"
    if method == "GET" and query.get("list-type") == ["2"]:
        return "ListObjectsV2"
    if "versions" in query:
        return "ListObjectVersions"
    if "delete" in query:
        return "DeleteObjects"
    for flag, name in S3_SUBRESOURCES.items():
        if flag in query:
            return f"{verb}{name}"
    return {"GET": "ListObjects", "PUT": "CreateBucket", "DELETE": "DeleteBucket", "HEAD": "HeadBucket"}.get(method, f"{verb}Bucket")


def patch_counting():
    import io
    import json

    import barrier
    import clone
    import consistency
    import crash
    import faults
    import pages
    import tokens

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.__call__

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_tap/calls/"):
            account = path.rsplit("/", 1)[-1]
            with CALLS_LOCK:
                if environ.get("REQUEST_METHOD") == "DELETE":
                    CALLS.pop(account, None)
                body = json.dumps(CALLS.get(account, {})).encode()
            start_response(
                "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return [body]
        if path.startswith("/_tap/faults/"):
            return faults.admin(environ, start_response)
        if path.startswith("/_tap/consistency/"):
            return consistency.admin(environ, start_response)
        if path.startswith("/_tap/crash/"):
            return crash.admin(environ, start_response)
        if path.startswith("/_tap/pages/"):
            return pages.admin(environ, start_response)
        if path.startswith("/_tap/barrier/"):
            return barrier.admin(environ, start_response)
        if path.startswith("/_tap/clone/"):
            return clone.admin(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = b""
        if length:
            body = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(body)
        if LATENCY_SECONDS:
            time.sleep(LATENCY_SECONDS)
        if READ_LATENCY or WRITE_LATENCY:
            time.sleep(call_latency(operation_of(environ, body)))
        match = CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        if match and match.group(1) == REJECTED_KEY:
            # Credentials AWS does not know: every call is refused, as STS refuses them.
            body = (
                '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
                "<Type>Sender</Type><Code>InvalidClientTokenId</Code>"
                "<Message>The security token included in the request is invalid.</Message>"
                "</Error><RequestId>tap-rejected</RequestId></ErrorResponse>"
            ).encode()
            start_response(
                "403 Forbidden", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))]
            )
            return [body]
        if match:
            account, service = match.group(1), match.group(2)
            key = f"{service}:{operation_of(environ, body)}"
            with CALLS_LOCK:
                counts = CALLS.setdefault(account, {})
                counts[key] = counts.get(key, 0) + 1
            failed = faults.maybe_fail(environ, start_response, account, service, key, from_product(environ))
            if TIMELINE:
                with CALLS_LOCK, open(TIMELINE, "a") as f:
                    f.write(f"{time.time():.3f} {account} {key} {'T' if failed is not None else '-'}\n")
            if failed is None:
                failed = consistency.maybe_fail(environ, start_response, account, key, body)
            if failed is not None:
                return failed
            if from_product(environ):
                with CALLS_LOCK:
                    SERVED[key] = SERVED.get(key, 0) + 1
            start_response = barrier.enter(account, key, start_response)

            def serve():
                return tokens.around(
                    environ, start_response, account, key, body,
                    lambda respond: pages.around(
                        environ, respond, account, key, body,
                        lambda paged: original(self, environ, paged)))

            if faults.loses_answer(account, key):
                return faults.serve_and_lose(environ, serve)
            return crash.around(environ, account, key, serve)
        return original(self, environ, start_response)

    DomainDispatcherApplication.__call__ = __call__


def write_served():
    """Adds what was served, summed over accounts and never reset, to $TAP_EMULATOR_CALLS_LOG (one JSON
    object per line), for tests/emulator/coverage.py."""
    import json

    path = os.environ.get("TAP_EMULATOR_CALLS_LOG")
    if not path:
        return
    with CALLS_LOCK:
        total = dict(SERVED)
    with open(path, "a") as f:
        f.write(json.dumps(total) + "\n")


# Per-call latency by kind of call, set by --model (seconds; 0: only TAP_EMULATOR_LATENCY_MS).
READ_LATENCY = WRITE_LATENCY = 0.0
READ_PREFIXES = ("Describe", "Get", "List", "Head", "Lookup", "Search", "BatchGet")


def apply_model(path, percentile):
    """The front of the benchmarks: each modeled state lasts its time at `percentile` divided
    by TAP_TIME_SCALE (all of them, the two windows tests hit from outside too), and every
    answer waits its call latency (reads and writes apart, not scaled)."""
    import tomllib

    global READ_LATENCY, WRITE_LATENCY
    with open(path, "rb") as f:
        model = tomllib.load(f)
    READ_LATENCY = model["calls"]["read_ms"] / 1000
    WRITE_LATENCY = model["calls"]["write_ms"] / 1000
    for name, state in model["ready"].items():
        if "cases" in state:
            # A propagation: the calls that use what it propagates are refused meanwhile.
            import consistency

            consistency.DEFAULT = {
                "seconds": state[percentile] * 60,
                "cases": state["cases"],
                "at_least_once": False,
            }
        knob = state.get("knob")
        if knob is None:
            continue
        if knob not in globals():
            sys.exit(f"{path}: [ready.{name}] knob = {knob!r} is not a launcher variable")
        globals()[knob] = state[percentile] * 60 / TIME_SCALE


def is_read(operation):
    """Whether an operation only reads (Describe*, Get*, List*, ..., Batch*Get*)."""
    return operation.startswith(READ_PREFIXES) or (
        operation.startswith("Batch") and "Get" in operation
    )


def call_latency(operation):
    """The modeled latency of one call (0 without --model)."""
    return READ_LATENCY if is_read(operation) else WRITE_LATENCY


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--parent-watch", action="store_true")
    parser.add_argument(
        "--model",
        help="a latency model (tests/emulator/model.toml): modeled readiness times and call latency",
    )
    parser.add_argument("--percentile", choices=["p50", "p95"], default="p50")
    args = parser.parse_args()
    if not args.host.startswith("127.") and args.host not in ("localhost", "::1"):
        sys.exit("launch.py serves on loopback only")
    if args.model:
        apply_model(args.model, args.percentile)

    # Certificates issue on records seen in a zone (patch_acm), never on moto's timer alone.
    os.environ.setdefault("MOTO_ACM_VALIDATION_WAIT", "1000000")
    # Nothing here launches instances: no account-region loads moto's thousands of AMIs.
    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    patch_speed()
    patch_accounts()
    patch_nat_gateways()
    patch_rds()
    patch_backup()
    patch_policy_conditions()
    patch_s3()
    patch_logs()
    patch_tagging()
    patch_scheduler()
    patch_acm()
    patch_route53_changes()
    patch_elbv2()
    patch_ecs()
    patch_autoscaling()
    patch_cloudfront()
    patch_security_groups()
    patch_counting()
    # Outermost: CloudWatch's CBOR becomes JSON before the counting and moto see it.
    import cbor_bridge

    cbor_bridge.install()

    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from moto.server import ThreadedMotoServer

    # One log line per request (to a stderr nobody reads) cost about a tenth of the
    # emulator's CPU under the suite; errors are still logged.
    MotoRequestHandler.log_request = lambda self, code="-", size="-": None

    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    port = server._server.server_port if server._server else args.port
    gc.freeze()  # what is loaded to serve, out of every full collection from here on
    print(f"READY {port}", flush=True)

    if args.parent_watch:
        sys.stdin.read()  # returns at EOF: the parent is gone
        write_served()
        os._exit(0)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    server.stop()


if __name__ == "__main__":
    main()
