"""The three Kubernetes API calls the receiver needs, and the Job it creates (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx

from retrainer.settings import RetrainerSettings

CRONJOB_LABEL = "forecaster.io/cronjob"
TRIGGER_LABEL = "forecaster.io/trigger"


class KubeClient:
    def __init__(self, settings: RetrainerSettings) -> None:
        self.settings = settings
        verify = settings.ca_path if settings.api_server.startswith("https") and settings.ca_path else True
        self.http = httpx.Client(base_url=settings.api_server, verify=verify, timeout=10.0)

    def _headers(self) -> dict[str, str]:
        token = Path(self.settings.sa_token_path).read_text().strip()  # rotated by the kubelet
        return {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def _call(self, method: str, path: str, **kw) -> dict:
        response = self.http.request(method, path, headers=self._headers(), **kw)
        response.raise_for_status()
        return response.json()

    def get_cronjob(self, name: str) -> dict:
        return self._call("GET", f"/apis/batch/v1/namespaces/{self.settings.namespace}/cronjobs/{name}")

    def list_jobs(self) -> list[dict]:
        return self._call("GET", f"/apis/batch/v1/namespaces/{self.settings.namespace}/jobs")["items"]

    def create_job(self, job: dict) -> dict:
        return self._call("POST", f"/apis/batch/v1/namespaces/{self.settings.namespace}/jobs", json=job)


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
