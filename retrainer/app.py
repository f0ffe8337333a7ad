"""The webhook: authenticate, pick the CronJob for each firing alert, start at most one Job."""

from __future__ import annotations

import asyncio
import hmac
import logging
from datetime import UTC, datetime, timedelta

from lightkube import ApiError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from retrainer.kube import CRONJOB_LABEL, KubeClient, job_from_cronjob, running_jobs
from retrainer.settings import RETRAIN_LABEL, RetrainerSettings

log = logging.getLogger("retrainer")


def create_app(settings: RetrainerSettings, kube: KubeClient | None = None) -> Starlette:
    kube = kube or KubeClient(settings)
    lock = asyncio.Lock()  # one decision at a time: two webhook calls never both create a Job
    expected = f"Bearer {settings.token.get_secret_value()}".encode()

    async def alerts(request: Request) -> JSONResponse:
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401)
        try:
            payload = await request.json()
            firing = [a for a in payload["alerts"] if a.get("status") == "firing"]
        except (ValueError, KeyError, TypeError, AttributeError):
            return JSONResponse({"error": "not an Alertmanager webhook payload"}, status_code=400)
        wanted: dict[str, str] = {}
        acted_on = 0
        for alert in firing:
            labels = alert.get("labels", {})
            key, value = RETRAIN_LABEL
            if labels.get(key) == value and labels.get("model") in settings.cronjobs:
                wanted[settings.cronjobs[labels["model"]]] = labels["alertname"]
                acted_on += 1
        results = {}
        async with lock:
            for cronjob_name in wanted:
                results[cronjob_name] = await asyncio.to_thread(start_one, kube, cronjob_name)
        return JSONResponse({"retraining": results, "ignored_alerts": len(payload["alerts"]) - acted_on})

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/alerts", alerts, methods=["POST"]), Route("/healthz", health)])


def start_one(kube: KubeClient, cronjob_name: str) -> str:
    """A Job unless one runs. Job names carry the second, so that two replicas acting on one alert
    collide (409 AlreadyExists: the other one got there first)."""
    cronjob = kube.get_cronjob(cronjob_name)
    jobs = kube.list_jobs({CRONJOB_LABEL: cronjob_name})
    running, job = running_jobs(jobs, cronjob), job_from_cronjob(cronjob)
    if job["metadata"]["name"] in {j["metadata"]["name"] for j in jobs}:  # this second's Job is done
        job = job_from_cronjob(cronjob, datetime.now(UTC) + timedelta(seconds=1))
    if not running:
        try:
            name = kube.create_job(job)["metadata"]["name"]
            log.info("%s: started %s", cronjob_name, name)
            return f"started {name}"
        except ApiError as exc:
            if exc.status.reason != "AlreadyExists":
                raise
            running = [job["metadata"]["name"]]
    log.info("%s: retraining already running (%s); nothing to do", cronjob_name, ", ".join(running))
    return f"already running: {', '.join(running)}"
