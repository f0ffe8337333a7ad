"""The calibration state in a ConfigMap, key `<model name>.json`, through the Kubernetes API.

Why a ConfigMap: etcd keeps it (restarts of the monitor or the predictor lose nothing), the kubelet
projects it into the predictor pods as a read-only file (refreshed within about a minute; the state
changes once a day), and the predictor needs neither the registry nor the API to read it. The chart
creates each ConfigMap without `data`, so an upgrade never overwrites what the monitor wrote, and
grants the monitor get and patch on those names only: it never creates or deletes one.

A write is a JSON merge patch of its own key carrying the resourceVersion read just before, so it
applies only to the object as read: a 409 Conflict (another writer in between) reads it again, a
bounded number of times, and a newer state of the same model is never replaced by an older one.
"""

from __future__ import annotations

import logging

import httpx
import tenacity
from pydantic import ValidationError

from bundle.online import OnlineState
from retrainer.kube import KubeClient

log = logging.getLogger(__name__)
MODEL = "{model}"  # in the ConfigMap name: replaced by each model's name (one ConfigMap per model)


class StoreError(RuntimeError):
    """The ConfigMap could not be read or written (one line naming it and the API's answer)."""


class _ConflictError(Exception):
    """409: the ConfigMap changed since it was read."""


class ConfigMapStore:
    def __init__(self, kube: KubeClient, name: str, attempts: int = 4) -> None:
        self.kube, self.name, self.attempts = kube, name, attempts

    def configmap(self, model: str) -> str:
        return self.name.replace(MODEL, model)

    def where(self, model: str) -> str:
        return f"ConfigMap {self.configmap(model)} key {model}.json"

    def read(self, model: str) -> OnlineState | None:
        """The stored state, or None (none yet, or one that fails validation: it is replaced)."""
        return _state(self._get(model), model, self.where(model))

    def write(self, model: str, state: OnlineState) -> None:
        conflict = tenacity.retry_if_exception_type(_ConflictError)
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts), retry=conflict,
            before_sleep=lambda _: log.warning("%s changed while being written; reading it again",
                                               self.where(model)),
        )  # fmt: skip
        try:
            retrying(self._write_once, model, state)
        except tenacity.RetryError as exc:
            raise StoreError(f"{self.where(model)}: changed under each of {self.attempts} writes") from exc

    def _write_once(self, model: str, state: OnlineState) -> None:
        configmap = self._get(model)
        stored = _state(configmap, model, self.where(model))
        if stored is not None and stored.identity == state.identity and stored.as_of > state.as_of:
            log.warning("%s holds a newer state (as of %s) than this one (%s): kept",
                        self.where(model), stored.as_of, state.as_of)  # fmt: skip
            return
        version = configmap["metadata"]["resourceVersion"]
        patch = {"metadata": {"resourceVersion": version}, "data": {f"{model}.json": state.model_dump_json()}}
        try:
            self.kube.patch_configmap(self.configmap(model), patch)
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code == 409:
                raise _ConflictError from exc
            raise StoreError(f"patch {self.where(model)}: {_answer(exc)}") from exc
        except httpx.HTTPError as exc:
            raise StoreError(f"patch {self.where(model)}: {type(exc).__name__}: {exc}") from exc

    def _get(self, model: str) -> dict:
        try:
            return self.kube.get_configmap(self.configmap(model))
        except httpx.HTTPStatusError as exc:
            missing = exc.response.status_code == 404
            hint = " (the chart creates it: is calibration enabled?)" if missing else ""
            raise StoreError(f"get ConfigMap {self.configmap(model)}: {_answer(exc)}{hint}") from exc
        except httpx.HTTPError as exc:
            raise StoreError(f"get ConfigMap {self.configmap(model)}: {type(exc).__name__}: {exc}") from exc


def _state(configmap: dict, model: str, where: str) -> OnlineState | None:
    text = (configmap.get("data") or {}).get(f"{model}.json")
    if text is None:
        return None
    try:
        return OnlineState.model_validate_json(text)
    except ValidationError as exc:
        log.warning("%s is not a valid state and will be replaced: %s", where, " ".join(str(exc).split()))
        return None


def _answer(exc: httpx.HTTPStatusError) -> str:
    message = getattr(getattr(exc, "status", None), "message", None) or exc.response.reason_phrase
    return f"{exc.response.status_code} ({message})"
