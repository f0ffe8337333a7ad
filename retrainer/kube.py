"""The Kubernetes API calls the receiver (and `python -m rollout`, and the monitor's calibration
store) make, on lightkube, and the Job the receiver creates (pure). Objects cross this module as
plain dicts, so the logic around them is pure."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from lightkube import Client, KubeConfig
from lightkube.config.models import Cluster, User
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.batch_v1 import CronJob, Job
from lightkube.resources.core_v1 import ConfigMap
from lightkube.types import PatchType

from retrainer.settings import KubeAccess

MERGE_PATCH = PatchType.MERGE.value  # RFC 7386: objects merge, null deletes, lists replace
JSON_PATCH = PatchType.JSON.value  # RFC 6902: for one element of a list (spec.canary[i])
InferenceService = create_namespaced_resource(
    "serving.kserve.io", "v1beta1", "InferenceService", "inferenceservices"
)


CRONJOB_LABEL = "forecaster.io/cronjob"
TRIGGER_LABEL = "forecaster.io/trigger"


class KubeClient:
    page_size = 500  # items per list call (kubectl's chunk size); the rest follows `continue`

    def __init__(self, settings: KubeAccess, timeout_s: float = 10.0) -> None:
        https = settings.api_server.startswith("https")
        cluster = Cluster(server=settings.api_server, certificate_auth=settings.ca_path if https else None)
        # The token file is re-read when the API server answers 401: the kubelet rotates it.
        user = User(token_file=settings.sa_token_path or None)
        config = KubeConfig.from_one(cluster=cluster, user=user, namespace=settings.namespace)
        self.timeout = httpx.Timeout(timeout_s)
        self.api = Client(config, timeout=self.timeout)

    def get_cronjob(self, name: str) -> dict:
        return self.api.get(CronJob, name).to_dict()

    def list_jobs(self, labels: dict[str, str] | None = None) -> list[dict]:
        """The namespace's Jobs carrying `labels` (a labelSelector), every page of them."""
        return [job.to_dict() for job in self.api.list(Job, chunk_size=self.page_size, labels=labels)]

    def create_job(self, job: dict) -> dict:
        return self.api.create(Job.from_dict(job)).to_dict()

    def get_inferenceservice(self, name: str) -> dict:
        return self.api.get(InferenceService, name).to_dict()

    def patch_inferenceservice(self, name: str, patch: dict | list, content_type: str) -> dict:
        return self.api.patch(InferenceService, name, patch, patch_type=PatchType(content_type)).to_dict()

    def get_configmap(self, name: str) -> dict:
        return self.api.get(ConfigMap, name).to_dict()

    def patch_configmap(self, name: str, patch: dict) -> dict:
        """A JSON merge patch (RFC 7386): the keys it names, nothing else."""
        return self.api.patch(ConfigMap, name, patch, patch_type=PatchType.MERGE).to_dict()


def running_jobs(jobs: list[dict], cronjob: dict) -> list[str]:
    """Jobs of this CronJob (scheduled or alert-triggered) that have not finished.

    The CronJob controller copies only the template's labels onto the Jobs it schedules (no label
    names the CronJob), so its own record of them, `status.active`, counts too."""
    uid, name = cronjob["metadata"]["uid"], cronjob["metadata"]["name"]
    mine = {}
    for job in jobs:
        meta = job["metadata"]
        owned = any(ref.get("uid") == uid for ref in meta.get("ownerReferences", []))
        if owned or meta.get("labels", {}).get(CRONJOB_LABEL) == name:
            mine[meta["name"]] = job.get("status", {}).get("conditions", [])
    running = [
        job
        for job, conditions in mine.items()
        if not any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions)
    ]
    active = cronjob.get("status", {}).get("active") or []
    return running + [ref["name"] for ref in active if ref.get("name") not in mine]


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
