"""The two Kubernetes API calls `python -m rollout` makes, answered on loopback as the API server
answers them: GET and PATCH of serving.kserve.io/v1beta1 InferenceServices, JSON merge patch
(RFC 7386) and JSON patch (RFC 6902, `test`/`add`/`replace`), 401 without the ServiceAccount token,
403 outside the Role's resourceNames, 415 for other patch types, 422 for a failed `test`, and
`metadata.generation` bumped only when the spec changes (what starts a KServe rollout)."""

from __future__ import annotations

import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAMESPACE = "forecaster"
SA_TOKEN = "sa-token-from-projected-volume"
BASE = f"/apis/serving.kserve.io/v1beta1/namespaces/{NAMESPACE}/inferenceservices/"


def inference_service(name: str, uri: str, mode: str = "Standard", canary_uri: str | None = None) -> dict:
    """The shape the chart renders (templates/predictor/inferenceservice.yaml), trimmed to what matters."""
    model = {"name": "kserve-container", "modelFormat": {"name": "petr4-forecaster-bundle"}}
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "generation": 1,
            "resourceVersion": "1",
            "annotations": {"serving.kserve.io/deploymentMode": mode},
        },
        "spec": {"predictor": {"minReplicas": 1, "model": {**model, "storageUri": uri}}},
    }
    if canary_uri and mode == "Standard":
        canary = {"name": "canary", "model": {**model, "storageUri": canary_uri}}
        isvc["spec"]["canary"] = [{"trafficPercent": 10, "predictor": canary}]
    elif canary_uri:
        isvc["spec"]["predictor"]["canaryTrafficPercent"] = 10
        isvc["spec"]["predictor"]["model"]["storageUri"] = canary_uri
    return isvc


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class PatchTestFailedError(ValueError):
    pass


def json_patch(doc: dict, ops: list[dict]) -> dict:
    doc = copy.deepcopy(doc)
    for op in ops:
        *parents, last = [p for p in op["path"].split("/")[1:]]
        node = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if op["op"] == "test":
            current = node[int(last)] if isinstance(node, list) else node.get(last)
            if current != op["value"]:
                raise PatchTestFailedError(f"testing value {op['path']} failed")
        elif op["op"] in ("add", "replace"):
            if op["op"] == "replace" and last not in node:
                raise PatchTestFailedError(f"replace {op['path']}: missing")
            node[last] = op["value"]
        else:
            raise PatchTestFailedError(f"unsupported op {op['op']}")
    return doc


class KubeIsvcContract:
    def __init__(self, allowed: set[str]) -> None:
        self.allowed = allowed  # the Role's resourceNames
        self.objects: dict[str, dict] = {}
        self.requests: list[dict] = []
        self.fail_next: list[int] = []  # status codes to answer the next calls with (5xx: transient)
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def patches(self) -> list[dict]:
        return [r for r in self.requests if r["method"] == "PATCH"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        contract = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code: int, reason: str, message: str) -> None:
                body = {"kind": "Status", "apiVersion": "v1", "status": "Failure"}
                self._reply(code, {**body, "message": message, "reason": reason, "code": code})

            def _admit(self) -> tuple[str, object] | None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                record = {
                    "method": self.command,
                    "path": self.path,
                    "body": body,
                    "content_type": self.headers.get("Content-Type"),
                    "authorization": self.headers.get("Authorization"),
                }
                contract.requests.append(record)
                if self.headers.get("Authorization") != f"Bearer {SA_TOKEN}":
                    self._status(401, "Unauthorized", "Unauthorized")
                    return None
                with contract.lock:
                    failing = contract.fail_next.pop(0) if contract.fail_next else None
                if failing:
                    self._status(failing, "ServiceUnavailable", "etcdserver: request timed out")
                    return None
                if not self.path.startswith(BASE):
                    self._status(404, "NotFound", "the server could not find the requested resource")
                    return None
                name = self.path.removeprefix(BASE)
                if name not in contract.allowed:
                    verb = "get" if self.command == "GET" else "patch"
                    self._status(
                        403,
                        "Forbidden",
                        f'inferenceservices.serving.kserve.io "{name}" is forbidden: User '
                        f'"system:serviceaccount:{NAMESPACE}:training" cannot {verb} resource '
                        f'"inferenceservices" in API group "serving.kserve.io" '
                        f'in the namespace "{NAMESPACE}"',
                    )
                    return None
                if name not in contract.objects:
                    self._status(404, "NotFound", f'inferenceservices.serving.kserve.io "{name}" not found')
                    return None
                return name, body

            def do_GET(self):
                admitted = self._admit()
                if admitted:
                    with contract.lock:
                        self._reply(200, contract.objects[admitted[0]])

            def do_PATCH(self):
                admitted = self._admit()
                if not admitted:
                    return
                name, body = admitted
                kind = self.headers.get("Content-Type")
                with contract.lock:
                    current = contract.objects[name]
                    try:
                        if kind == "application/merge-patch+json":
                            patched = merge_patch(current, body)
                        elif kind == "application/json-patch+json":
                            patched = json_patch(current, body)
                        else:
                            return self._status(415, "UnsupportedMediaType", f"unsupported patch type {kind}")
                    except (PatchTestFailedError, KeyError, IndexError, ValueError) as exc:
                        return self._status(422, "Invalid", str(exc))
                    meta = patched["metadata"]
                    meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
                    if patched["spec"] != current["spec"]:
                        meta["generation"] = current["metadata"]["generation"] + 1
                    contract.objects[name] = patched
                    return self._reply(200, patched)

        return Handler
