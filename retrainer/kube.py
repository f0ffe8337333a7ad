"""The Kubernetes API calls the receiver (and `python -m rollout`) make, and the Job the receiver
creates (pure). Plain HTTP with the pod's ServiceAccount token: no Kubernetes SDK in the images."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import httpx

KSERVE = "/apis/serving.kserve.io/v1beta1"
MERGE_PATCH = "application/merge-patch+json"  # RFC 7386: objects merge, null deletes, lists replace
JSON_PATCH = "application/json-patch+json"  # RFC 6902: for one element of a list (spec.canary[i])


class ApiAccess(Protocol):
    """Where the API server is and how to authenticate (RetrainerSettings, RolloutSettings)."""

    namespace: str
    api_server: str
    sa_token_path: str | None  # empty/None: no Authorization header (`kubectl proxy` adds it)
    ca_path: str | None


CRONJOB_LABEL = "forecaster.io/cronjob"
TRIGGER_LABEL = "forecaster.io/trigger"


class KubeClient:
    def __init__(self, settings: ApiAccess) -> None:
        self.settings = settings
        verify = settings.ca_path if settings.api_server.startswith("https") and settings.ca_path else True
        self.http = httpx.Client(base_url=settings.api_server, verify=verify, timeout=10.0)

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.settings.sa_token_path:
            token = Path(self.settings.sa_token_path).read_text().strip()  # rotated by the kubelet
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _call(self, method: str, path: str, headers: dict[str, str] | None = None, **kw) -> dict:
        response = self.http.request(method, path, headers={**self._headers(), **(headers or {})}, **kw)
        response.raise_for_status()
        return response.json()

    def get_cronjob(self, name: str) -> dict:
        return self._call("GET", f"/apis/batch/v1/namespaces/{self.settings.namespace}/cronjobs/{name}")

    def list_jobs(self) -> list[dict]:
        return self._call("GET", f"/apis/batch/v1/namespaces/{self.settings.namespace}/jobs")["items"]

    def create_job(self, job: dict) -> dict:
        return self._call("POST", f"/apis/batch/v1/namespaces/{self.settings.namespace}/jobs", json=job)

    def get_inferenceservice(self, name: str) -> dict:
        return self._call("GET", f"{KSERVE}/namespaces/{self.settings.namespace}/inferenceservices/{name}")

    def patch_inferenceservice(self, name: str, patch: dict | list, content_type: str) -> dict:
        return self._call(
            "PATCH",
            f"{KSERVE}/namespaces/{self.settings.namespace}/inferenceservices/{name}",
            headers={"Content-Type": content_type},
            content=json.dumps(patch),
        )


def running_jobs(jobs: list[dict], cronjob: dict) -> list[str]:
    """Jobs of this CronJob (scheduled or alert-triggered) that have not finished."""
    uid, name = cronjob["metadata"]["uid"], cronjob["metadata"]["name"]
    running = []
    for job in jobs:
        meta, status = job["metadata"], job.get("status", {})
        owned = any(ref.get("uid") == uid for ref in meta.get("ownerReferences", []))
        if not (owned or meta.get("labels", {}).get(CRONJOB_LABEL) == name):
            continue
        done = any(
            c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            for c in status.get("conditions", [])
        )
        if not done:
            running.append(meta["name"])
    return running


def job_from_cronjob(cronjob: dict, now: datetime | None = None, reason: str = "alert") -> dict:
    """What `kubectl create job --from=cronjob/<name>` builds, plus labels saying why."""
    now = now or datetime.now(UTC)
    meta, template = cronjob["metadata"], cronjob["spec"]["jobTemplate"]
    name = f"{meta['name'][:38]}-{reason}-{now:%Y%m%d%H%M%S}"
    labels = {
        **template.get("metadata", {}).get("labels", {}),
        CRONJOB_LABEL: meta["name"],
        TRIGGER_LABEL: reason,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": {
                **template.get("metadata", {}).get("annotations", {}),
                "cronjob.kubernetes.io/instantiate": "manual",
            },
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": template["spec"],
    }
