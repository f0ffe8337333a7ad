"""The receiver's side of the shared fake Kubernetes API (tests/kube_api.py): the CronJob it reads,
as the chart renders it, and the Jobs it creates."""

from __future__ import annotations

import copy

from tests.kube_api import NAMESPACE, SA_TOKEN, KubeApi

__all__ = ["CRONJOB", "NAMESPACE", "SA_TOKEN", "KubeContract"]
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


class KubeContract(KubeApi):
    """The shared fake API server holding the CronJob the receiver reads and the Jobs it creates."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.collection("batch/v1", "cronjobs")["petr4-retrain"] = copy.deepcopy(CRONJOB)

    @property
    def jobs(self) -> dict[str, dict]:
        return self.collection("batch/v1", "jobs")

    def posts(self) -> list[dict]:
        return self.by_method("POST")

    def finish_jobs(self) -> None:
        with self.lock:
            for job in self.jobs.values():
                job["status"] = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
