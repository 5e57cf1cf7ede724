"""One item a page, on purpose, per account (test-side only): PUT /_tap/pages/<account> with
{"size": 1} answers every paginated call the product makes (PAGED below) a page at a time, so
a caller that does not follow the pagination misses items; DELETE turns it off, GET answers
how many pages were cut. moto mostly answers everything at once (few of its list calls
paginate at all), which hides a missing NextToken loop.

How: the request's page token, when it is one of ours (`tap-page-<n>`), is taken out of the
request, moto answers the whole list, and the answer is cut to the items from n on, with a
token for the next page where there is one, in the service's own shape (JSON, query XML,
REST XML).
"""

import io
import json
import threading
import xml.etree.ElementTree as ET
from urllib.parse import parse_qsl, urlencode

import faults

SETTINGS = {}
CUT = {}
LOCK = threading.Lock()
PREFIX = "tap-page-"

# service:Operation -> how its list and its token travel.
#   json: list key, request token key, answer token key (and a flag key set while truncated)
#   rest-json: the same, the request token in the query string
#   xml: path to the list (local names from the root), item tag, request token (form or
#        query string), answer token (child of the list's parent) and truncation flag
JSON = {
    "kms:ListKeys": ("Keys", "Marker", "NextMarker", "Truncated"),
    "logs:DescribeLogGroups": ("logGroups", "nextToken", "nextToken", None),
    "ecs:ListTaskDefinitions": ("taskDefinitionArns", "nextToken", "nextToken", None),
    "application-autoscaling:DescribeScalableTargets": ("ScalableTargets", "NextToken", "NextToken", None),
    "application-autoscaling:DescribeScalingPolicies": ("ScalingPolicies", "NextToken", "NextToken", None),
    "tagging:GetResources": ("ResourceTagMappingList", "PaginationToken", "PaginationToken", None),
    "acm:ListCertificates": ("CertificateSummaryList", "NextToken", "NextToken", None),
    "monitoring:DescribeAlarms": ("MetricAlarms", "NextToken", "NextToken", None),
}
REST_JSON = {
    "backup:ListBackupSelections": ("BackupSelectionsList", "nextToken", "NextToken", None),
    "backup:ListBackupPlans": ("BackupPlansList", "nextToken", "NextToken", None),
}
XML = {
    "ec2:DescribeVpcs": (("vpcSet",), "item", "NextToken", "nextToken", None),
    "ec2:DescribeSubnets": (("subnetSet",), "item", "NextToken", "nextToken", None),
    "ec2:DescribeSecurityGroups": (("securityGroupInfo",), "item", "NextToken", "nextToken", None),
    "ec2:DescribeRouteTables": (("routeTableSet",), "item", "NextToken", "nextToken", None),
    "ec2:DescribeInternetGateways": (("internetGatewaySet",), "item", "NextToken", "nextToken", None),
    "ec2:DescribeNatGateways": (("natGatewaySet",), "item", "NextToken", "nextToken", None),
    "ec2:DescribeFlowLogs": (("flowLogSet",), "item", "NextToken", "nextToken", None),
    "elasticloadbalancing:DescribeListeners": (("DescribeListenersResult", "Listeners"), "member", "Marker", "NextMarker", None),
    "elasticloadbalancing:DescribeRules": (("DescribeRulesResult", "Rules"), "member", "Marker", "NextMarker", None),
    "rds:DescribeDBInstances": (("DescribeDBInstancesResult", "DBInstances"), "DBInstance", "Marker", "Marker", None),
    "iam:ListAttachedRolePolicies": (("ListAttachedRolePoliciesResult", "AttachedPolicies"), "member", "Marker", "Marker", "IsTruncated"),
    "iam:ListRolePolicies": (("ListRolePoliciesResult", "PolicyNames"), "member", "Marker", "Marker", "IsTruncated"),
    "iam:GetAccountAuthorizationDetails": (("GetAccountAuthorizationDetailsResult", "RoleDetailList"), "member", "Marker", "Marker", "IsTruncated"),
    "sns:ListSubscriptionsByTopic": (("ListSubscriptionsByTopicResult", "Subscriptions"), "member", "NextToken", "NextToken", None),
    "cloudfront:ListDistributions": (("Items",), "DistributionSummary", "Marker", "NextMarker", "IsTruncated"),
    "cloudfront:ListOriginAccessControls": (("Items",), "OriginAccessControlSummary", "Marker", "NextMarker", "IsTruncated"),
    "cloudfront:ListCloudFrontOriginAccessIdentities": (("Items",), "CloudFrontOriginAccessIdentitySummary", "Marker", "NextMarker", "IsTruncated"),
}
PAGED = set(JSON) | set(REST_JSON) | set(XML)


def admin(environ, start_response):
    account, method, sent = faults.request(environ)
    with LOCK:
        if method == "PUT":
            SETTINGS[account] = sent
            CUT[account] = {}
        elif method == "DELETE":
            SETTINGS.pop(account, None)
        body = json.dumps({"settings": SETTINGS.get(account, {}), "cut": CUT.get(account, {})}).encode()
    return faults.answer(start_response, body)


def _offset(token):
    if isinstance(token, str) and token.startswith(PREFIX):
        try:
            return int(token[len(PREFIX):])
        except ValueError:
            return None
    return None


def _take_token(environ, body, key):
    """Takes our page token out of the request; returns (offset, new body)."""
    if key in JSON:
        name = JSON[key][1]
        try:
            sent = json.loads(body or b"{}")
        except ValueError:
            return 0, body
        at = _offset(sent.get(name))
        if at is None:
            return 0, body
        sent.pop(name, None)
        return at, json.dumps(sent).encode()
    name = REST_JSON[key][1] if key in REST_JSON else XML[key][2]
    query = environ.get("QUERY_STRING", "")
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(k == name for k, _ in pairs):
        at = next((_offset(v) for k, v in pairs if k == name), None)
        if at is None:
            return 0, body
        environ["QUERY_STRING"] = urlencode([(k, v) for k, v in pairs if k != name])
        return at, body
    form = parse_qsl((body or b"").decode(), keep_blank_values=True)
    at = next((_offset(v) for k, v in form if k == name), None)
    if at is None:
        return 0, body
    return at, urlencode([(k, v) for k, v in form if k != name]).encode()


def _local(tag):
    return tag.rsplit("}", 1)[-1]


def _child(parent, name):
    return next((c for c in parent if _local(c.tag) == name), None)


def _cut_json(data, spec, at, size):
    listed, _, out, flag = spec
    answer = json.loads(data or b"{}")
    items = answer.get(listed) or []
    answer[listed] = items[at:at + size]
    more = at + size < len(items)
    answer.pop(out, None)
    if flag:
        answer[flag] = more
    if more:
        answer[out] = f"{PREFIX}{at + size}"
    return json.dumps(answer).encode(), len(items)


def _cut_xml(data, spec, at, size):
    path, item, _, out, flag = spec
    root = ET.fromstring(data)
    ns = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
    parent, node = None, root
    for name in path:
        parent, node = node, _child(node, name)
        if node is None:
            return data, 0
    items = [c for c in node if _local(c.tag) == item]
    for c in items:
        node.remove(c)
    for c in items[at:at + size]:
        node.append(c)
    more = at + size < len(items)
    quantity = _child(parent, "Quantity")
    if quantity is not None:
        quantity.text = str(len(items[at:at + size]))
    old = _child(parent, out)
    if old is not None:
        parent.remove(old)
    qualified = (lambda n: f"{{{ns}}}{n}") if ns else (lambda n: n)
    if more:
        ET.SubElement(parent, qualified(out)).text = f"{PREFIX}{at + size}"
    if flag:
        truncated = _child(parent, flag)
        if truncated is None:
            truncated = ET.SubElement(parent, qualified(flag))
        truncated.text = "true" if more else "false"
    with LOCK:
        ET.register_namespace("", ns)
        text = ET.tostring(root, encoding="utf-8")
    return text, len(items)


def around(environ, start_response, account, key, body, serve):
    """Serves through `serve(start_response)`, a page at a time when the account asks."""
    with LOCK:
        size = int((SETTINGS.get(account) or {}).get("size", 0))
    if not size or key not in PAGED:
        return serve(start_response)
    if key == "tagging:GetResources" and b"ResourceARNList" in (body or b""):
        # AWS answers an ARN list in one page (pagination parameters beside it are refused).
        return serve(start_response)
    at, body = _take_token(environ, body, key)
    environ["wsgi.input"] = io.BytesIO(body or b"")
    environ["CONTENT_LENGTH"] = str(len(body or b""))
    status, headers, data = faults.serve_captured(serve)
    if status.startswith("2") and data:
        spec = JSON.get(key) or REST_JSON.get(key)
        if spec:
            data, total = _cut_json(data, spec, at, size)
        else:
            data, total = _cut_xml(data, XML[key], at, size)
        if total > size:
            with LOCK:
                counts = CUT.setdefault(account, {})
                counts[key] = counts.get(key, 0) + 1
    headers.append(("Content-Length", str(len(data))))
    start_response(status, headers)
    return [data]
