from datetime import UTC, datetime

from retrainer.kube import job_from_cronjob, running_jobs
from tests.integration.retrainer.contract import CRONJOB


def job(name: str, owner_uid: str, conditions=None) -> dict:
    return {"metadata": {"name": name, "ownerReferences": [{"uid": owner_uid}]},
            "status": {"conditions": conditions or []}}  # fmt: skip


def test_job_name_is_valid_and_dated():
    built = job_from_cronjob(CRONJOB, datetime(2026, 11, 27, 21, 45, 7, tzinfo=UTC))
    assert built["metadata"]["name"] == "petr4-retrain-alert-20261127214507"
    assert built["metadata"]["namespace"] == "forecaster"


def test_running_jobs_are_those_of_this_cronjob_not_finished():
    uid = CRONJOB["metadata"]["uid"]
    jobs = [
        job("scheduled-running", uid),
        job("done", uid, [{"type": "Complete", "status": "True"}]),
        job("failed", uid, [{"type": "Failed", "status": "True"}]),
        job("other-cronjob", "another-uid"),
    ]
    assert running_jobs(jobs, CRONJOB) == ["scheduled-running"]
