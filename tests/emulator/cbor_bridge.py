"""Smithy RPC v2 CBOR for moto: CloudWatch's current SDKs (the Rust aws-sdk-cloudwatch among
them) speak only `rpc-v2-cbor`, which moto 5.2 does not parse; it serves the same operations
over AWS JSON 1.0. This bridge turns a CBOR request (POST
/service/<Service>/operation/<Operation>, header `smithy-protocol: rpc-v2-cbor`) into the
JSON one (X-Amz-Target `<Service>.<Operation>`), lets moto answer it, and encodes the answer
back as CBOR, with the types of the operation's output shape (timestamps as CBOR tag 1,
doubles as floats) so strict clients decode it. Errors keep their `__type` and message.

Installed outermost (after the request counting), so the count sees the JSON operation.
"""

import base64
import datetime
import functools
import io
import json
import re

CREDENTIAL = re.compile(r"Credential=([^/]+)/[^/]+/[^/]+/([^/]+)/")


@functools.lru_cache(maxsize=None)
def _operation_model(signing_name, operation):
    import botocore.session

    service = {"monitoring": "cloudwatch"}.get(signing_name, signing_name)
    model = botocore.session.get_session().get_service_model(service)
    return model.operation_model(operation)


def _to_json(value):
    """CBOR-decoded request values as JSON would carry them."""
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    return value


def _typed(value, shape):
    """A JSON answer's values in the CBOR types the output shape names."""
    import cbor2

    if value is None or shape is None:
        return value
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        members = shape.members
        return {k: _typed(v, members.get(k)) for k, v in value.items()}
    if kind == "list" and isinstance(value, list):
        return [_typed(v, shape.member) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: _typed(v, shape.value) for k, v in value.items()}
    if kind == "timestamp":
        if isinstance(value, str):
            try:
                value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                return value
        return cbor2.CBORTag(1, float(value))
    if kind in ("double", "float") and isinstance(value, (int, float)):
        return float(value)
    if kind in ("integer", "long") and isinstance(value, (int, float)):
        return int(value)
    if kind == "blob" and isinstance(value, str):
        return base64.b64decode(value)
    return value


def install():
    import cbor2
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.__call__

    def __call__(self, environ, start_response):
        if environ.get("HTTP_SMITHY_PROTOCOL") != "rpc-v2-cbor":
            return original(self, environ, start_response)
        parts = environ.get("PATH_INFO", "").strip("/").split("/")
        if len(parts) != 4 or parts[0] != "service" or parts[2] != "operation":
            return original(self, environ, start_response)
        target, operation = parts[1], parts[3]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        params = cbor2.loads(raw) if raw else {}
        body = json.dumps(_to_json(params)).encode()
        environ = dict(environ)
        environ.pop("HTTP_SMITHY_PROTOCOL", None)
        environ.update(
            {
                "PATH_INFO": "/",
                "CONTENT_TYPE": "application/x-amz-json-1.0",
                "CONTENT_LENGTH": str(len(body)),
                "HTTP_X_AMZ_TARGET": f"{target}.{operation}",
                "wsgi.input": io.BytesIO(body),
            }
        )
        answer = {}

        def capture(status, headers, exc_info=None):
            answer["status"], answer["headers"] = status, headers
            return lambda data: None

        chunks = original(self, environ, capture)
        try:
            data = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        try:
            value = json.loads(data) if data.strip() else {}
        except ValueError:
            value = {"__type": "InternalFailure", "message": data.decode("utf-8", "replace")}
        if answer["status"].startswith("2"):
            match = CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
            signing = match.group(2) if match else "monitoring"
            value = _typed(value, _operation_model(signing, operation).output_shape)
        out = cbor2.dumps(value)
        headers = [
            (k, v)
            for k, v in answer["headers"]
            if k.lower() not in ("content-type", "content-length")
        ]
        headers += [
            ("Content-Type", "application/cbor"),
            ("Content-Length", str(len(out))),
            ("smithy-protocol", "rpc-v2-cbor"),
        ]
        start_response(answer["status"], headers)
        return [out]

    DomainDispatcherApplication.__call__ = __call__
