"""A recorded Kubernetes API contract on loopback: the calls the receiver makes, answered as a real
API server answers them (status codes, JobList shape, 401 without the service-account token)."""

from __future__ import annotations

import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAMESPACE = "forecaster"
SA_TOKEN = "sa-token-from-projected-volume"
CRONJOB = {
    "apiVersion": "batch/v1",
    "kind": "CronJob",
    "metadata": {
        "name": "petr4-retrain",
        "namespace": NAMESPACE,
        "uid": "6f1c2b7e-1111-4a5b-9c3d-000000000001",
        "labels": {"app.kubernetes.io/name": "petr4-forecaster", "app.kubernetes.io/component": "training"},
    },
    "spec": {
        "schedule": "30 21 * * 1-5",
        "concurrencyPolicy": "Forbid",
        "jobTemplate": {
            "metadata": {"labels": {"app.kubernetes.io/component": "training"}},
            "spec": {
                "backoffLimit": 1,
                "template": {
                    "metadata": {"labels": {"app.kubernetes.io/component": "training"}},
                    "spec": {
                        "restartPolicy": "Never",
                        "automountServiceAccountToken": False,
                        "containers": [
                            {
                                "name": "train",
                                "image": "petr4-forecaster-train:0.1.0",
                                "args": ["--source", "yfinance", "--ticker", "PETR4.SA"],
                            }
                        ],
                    },
                },
            },
        },
    },
}


class KubeContract:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.jobs: list[dict] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def posts(self) -> list[dict]:
        return [r for r in self.requests if r["method"] == "POST"]

    def finish_jobs(self) -> None:
        with self.lock:
            for job in self.jobs:
                job["status"] = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        contract = self
        base = f"/apis/batch/v1/namespaces/{NAMESPACE}"

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

            def _record(self) -> dict | None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                contract.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "body": body,
                        "authorization": self.headers.get("Authorization"),
                    }
                )
                if self.headers.get("Authorization") != f"Bearer {SA_TOKEN}":
                    self._reply(
                        401,
                        {
                            "kind": "Status",
                            "apiVersion": "v1",
                            "status": "Failure",
                            "message": "Unauthorized",
                            "reason": "Unauthorized",
                            "code": 401,
                        },
                    )
                    return None
                return {"body": body}

            def do_GET(self):
                if self._record() is None:
                    return
                if self.path == f"{base}/cronjobs/petr4-retrain":
                    return self._reply(200, CRONJOB)
                if self.path == f"{base}/jobs":
                    with contract.lock:
                        items = copy.deepcopy(contract.jobs)
                    return self._reply(
                        200, {"kind": "JobList", "apiVersion": "batch/v1", "metadata": {}, "items": items}
                    )
                return self._reply(404, {"kind": "Status", "code": 404, "reason": "NotFound"})

            def do_POST(self):
                got = self._record()
                if got is None:
                    return
                if self.path != f"{base}/jobs":
                    return self._reply(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
                job = copy.deepcopy(got["body"])
                job["metadata"]["uid"] = f"job-{len(contract.jobs)}"
                job["status"] = {"active": 1}
                with contract.lock:
                    contract.jobs.append(job)
                return self._reply(201, job)

        return Handler
