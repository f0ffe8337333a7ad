"""One fake Kubernetes API server on loopback, shared by the retrainer's, rollout's and the monitor's
(calibration ConfigMap) tests.

It answers the namespaced calls they make (get, list, create, patch of any resource) as
kube-apiserver does: Status objects with their codes and reasons (401 Unauthorized without the
bearer token, 403 Forbidden outside a Role's resourceNames, 404 NotFound, 409 AlreadyExists on
create, 409 Conflict on a patch whose resourceVersion is stale, 415 for an unknown patch type, 422
for a JSON patch that does not apply); lists filtered by labelSelector and paged by limit/continue;
JSON merge patch (RFC 7386) and JSON patch (RFC 6902, the `jsonpatch` library); resourceVersion
bumped on every write and metadata.generation on a spec change. It records every request.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import ssl
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import jsonpatch
import jsonpointer

NAMESPACE = "forecaster"
SA_TOKEN = "sa-token-from-projected-volume"
KINDS = {
    "jobs": "Job",
    "cronjobs": "CronJob",
    "inferenceservices": "InferenceService",
    "configmaps": "ConfigMap",
}
MERGE_PATCH, JSON_PATCH = "application/merge-patch+json", "application/json-patch+json"
_PATH = re.compile(
    r"/(?P<gv>api/v1|apis/[^/]+/[^/]+)/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?"
)
_REQUIREMENT = re.compile(
    r"\s*(?:(?P<absent>![\w./-]+)|(?P<key>[\w./-]+)\s*(?:(?P<op>==|=|!=)\s*(?P<value>[\w.-]*)"
    r"|\s+(?P<set>in|notin)\s*\((?P<values>[^)]*)\))?)\s*"
)  # fmt: skip


def merge_patch(target, patch):
    """RFC 7386, section 2, as written: objects merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(doc: dict, ops: list[dict]) -> dict:
    """RFC 6902 by the `jsonpatch` library (a new document; raises on a failed `test`)."""
    return jsonpatch.apply_patch(doc, ops)


def label_selector(text: str) -> Callable[[dict], bool]:
    """kube's labelSelector grammar: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`."""
    tests: list[Callable[[dict], bool]] = []
    for part in re.split(r",(?![^(]*\))", text) if text.strip() else []:
        m = _REQUIREMENT.fullmatch(part)
        if not m:
            raise ValueError(f"unable to parse requirement: {part!r}")
        key, value, values = m["key"], m["value"], {v.strip() for v in (m["values"] or "").split(",")}
        if m["absent"]:
            tests.append(lambda labels, k=m["absent"][1:]: k not in labels)
        elif m["op"] in ("=", "=="):
            tests.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif m["op"] == "!=":
            tests.append(lambda labels, k=key, v=value: labels.get(k) != v)
        elif m["set"] == "in":
            tests.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
        elif m["set"] == "notin":
            tests.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
        else:
            tests.append(lambda labels, k=key: k in labels)
    return lambda labels: all(test(labels) for test in tests)


class StatusError(Exception):
    """An answer that is a Status object (every failure kube-apiserver returns)."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def body(self) -> dict:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}  # fmt: skip


class KubeApi:
    """The fake API server. Tests seed and read objects through `collection()` (live dicts), set
    `resource_names` (plural -> the names a Role grants), `fail_next` (status codes for the next
    calls, e.g. 503s) and `before_next(method, action)` (what another client does just before)."""

    def __init__(self, token: str | None = SA_TOKEN, ssl_context: ssl.SSLContext | None = None,
                 user: str = f"system:serviceaccount:{NAMESPACE}:default") -> None:  # fmt: skip
        self.token, self.user = token, user  # token None: no authentication (behind `kubectl proxy`)
        self.store: dict[str, dict[str, dict]] = {}
        self.requests: list[dict] = []
        self.fail_next: list[int] = []
        self.resource_names: dict[str, set[str]] = {}
        self._before: list[tuple[str, Callable[[dict], None]]] = []
        self.revision = 1000  # above any resourceVersion a test seeds
        self.lock = threading.RLock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        if ssl_context is not None:
            self.server.socket = ssl_context.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if ssl_context else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def collection(self, group_version: str, plural: str, namespace: str = NAMESPACE) -> dict[str, dict]:
        """The objects of one collection by name, live: what tests add, change or delete is served."""
        prefix = "api/v1" if group_version == "v1" else f"apis/{group_version}"
        return self.store.setdefault(f"/{prefix}/namespaces/{namespace}/{plural}", {})

    def before_next(self, method: str, action: Callable[[dict], None]) -> None:
        """Run `action(request)` once, just before the next `method` request is served (a race)."""
        self._before.append((method, action))

    def touch(self, obj: dict) -> None:
        """Another writer (a controller's status update): the object's resourceVersion moves on."""
        with self.lock:
            self.revision += 1
            obj["metadata"]["resourceVersion"] = str(self.revision)

    def by_method(self, method: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == method]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- serving ------------------------------------------------------------------------------

    def serve(self, request: dict) -> tuple[int, dict]:
        with self.lock:
            self.requests.append(request)
            try:
                return self._route(request)
            except StatusError as status:
                return status.code, status.body()

    def _route(self, request: dict) -> tuple[int, dict]:
        method, path, query = request["method"], request["path"], request["query"]
        if self.token is not None and request["authorization"] != f"Bearer {self.token}":
            raise StatusError(401, "Unauthorized", "Unauthorized")
        if self.fail_next:
            raise StatusError(self.fail_next.pop(0), "ServiceUnavailable", "etcdserver: request timed out")
        for i, (wanted, action) in enumerate(self._before):
            if wanted == method:
                del self._before[i]
                action(request)
                break
        m = _PATH.fullmatch(path)
        if not m:
            raise StatusError(404, "NotFound", "the server could not find the requested resource")
        gv, namespace, plural, name = m["gv"], m["ns"], m["plural"], m["name"]
        group = gv.split("/")[1] if gv.startswith("apis/") else ""
        resource = f"{plural}.{group}" if group else plural
        verb = {("GET", False): "list", ("GET", True): "get", ("POST", False): "create",
                ("PATCH", True): "patch"}.get((method, name is not None))  # fmt: skip
        if verb is None:
            raise StatusError(405, "MethodNotAllowed", f"the server does not allow this method on {resource}")
        granted = self.resource_names.get(plural)
        if granted is not None and name not in granted:
            subject = f'{resource} "{name}"' if name else resource
            raise StatusError(403, "Forbidden", f'{subject} is forbidden: User "{self.user}" cannot '
                              f'{verb} resource "{plural}" in API group "{group}" in the namespace '
                              f'"{namespace}"')  # fmt: skip
        objects = self.store.setdefault(path.rsplit("/", 1)[0] if name else path, {})
        api_version = gv.removeprefix("apis/").removeprefix("api/")
        if verb == "list":
            return 200, self._list(objects, plural, api_version, query)
        if verb == "create":
            return 201, self._create(objects, plural, resource, namespace, request["body"])
        if name not in objects:
            raise StatusError(404, "NotFound", f'{resource} "{name}" not found')
        if verb == "get":
            return 200, copy.deepcopy(objects[name])
        return 200, self._patch(objects, resource, name, request["body"], request["content_type"])

    def _list(self, objects: dict, plural: str, api_version: str, query: dict) -> dict:
        try:
            selected = label_selector(query.get("labelSelector", ""))
            after = json.loads(base64.b64decode(query["continue"]))["after"] if "continue" in query else ""
            limit = int(query.get("limit", 0))
        except (ValueError, KeyError) as exc:
            raise StatusError(400, "BadRequest", f"invalid list options: {exc}") from exc
        items = [copy.deepcopy(objects[name]) for name in sorted(objects) if name > after
                 and selected(objects[name].get("metadata", {}).get("labels") or {})]  # fmt: skip
        page, rest = (items[:limit], items[limit:]) if limit else (items, [])
        meta: dict = {"resourceVersion": str(self.revision)}
        if rest:
            token = json.dumps({"after": page[-1]["metadata"]["name"]}).encode()
            meta.update({"continue": base64.b64encode(token).decode(), "remainingItemCount": len(rest)})
        return {"kind": f"{KINDS.get(plural, 'Object')}List", "apiVersion": api_version, "metadata": meta,
                "items": page}  # fmt: skip

    def _create(self, objects: dict, plural: str, resource: str, namespace: str, body: dict) -> dict:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            raise StatusError(
                422, "Invalid", f"{KINDS.get(plural)} is invalid: metadata.name: Required value"
            )
        if meta.setdefault("namespace", namespace) != namespace:
            raise StatusError(400, "BadRequest", "the namespace of the provided object does not match "
                            "the namespace sent on the request")  # fmt: skip
        if meta["name"] in objects:
            raise StatusError(409, "AlreadyExists", f'{resource} "{meta["name"]}" already exists')
        self.revision += 1
        meta.update(uid=f"{KINDS.get(plural, plural).lower()}-{len(objects)}", generation=1,
                    resourceVersion=str(self.revision),
                    creationTimestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))  # fmt: skip
        objects[meta["name"]] = obj
        return copy.deepcopy(obj)

    def _patch(self, objects: dict, resource: str, name: str, body, content_type: str | None) -> dict:
        current = objects[name]
        try:
            if content_type == MERGE_PATCH:
                patched = merge_patch(current, body)
            elif content_type == JSON_PATCH:
                patched = json_patch(current, body)
            else:
                raise StatusError(415, "UnsupportedMediaType", "the body of the request was in an "
                                  f"unknown format - accepted media types include: {JSON_PATCH}, "
                                  f"{MERGE_PATCH}")  # fmt: skip
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            raise StatusError(422, "Invalid", str(exc)) from exc
        meta = patched.setdefault("metadata", {})
        wanted = meta.get("resourceVersion")  # a patch naming a resourceVersion is a precondition
        if wanted is not None and wanted != current.get("metadata", {}).get("resourceVersion"):
            raise StatusError(409, "Conflict", f'Operation cannot be fulfilled on {resource} "{name}": the '
                            "object has been modified; please apply your changes to the latest version "
                            "and try again")  # fmt: skip
        self.revision += 1
        meta["resourceVersion"] = str(self.revision)
        if patched.get("spec") != current.get("spec"):
            meta["generation"] = current.get("metadata", {}).get("generation", 1) + 1
        objects[name] = patched
        return copy.deepcopy(patched)

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                request = {"method": self.command, "path": url.path, "query": dict(parse_qsl(url.query)),
                           "body": body, "content_type": self.headers.get("Content-Type"),
                           "authorization": self.headers.get("Authorization")}  # fmt: skip
                status, answer = api.serve(request)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve  # noqa: N815

        return Handler
