"""Bare kserve + onnxruntime: kserve's documented custom-model path and nothing of ours around it.

A `kserve.Model` whose predict runs the same bundle's ONNX session (the floor's call), started with
`kserve.ModelServer().start([model])` on kserve's default settings (its logging, latency logging
and gRPC server included): what kserve itself costs per request, so that the predictor's own layer
(validation, metrics, guard, deadline) shows as the difference. Ports come from kserve's own flags:

    python -m bench.servers.bare_kserve --model_name m --http_port 8080 --grpc_port 8081
"""

from __future__ import annotations

import os

import numpy as np
from kserve import Model, ModelServer, model_server
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from kserve.utils.utils import generate_uuid

from bundle import OnnxForecaster, load_bundle


class BareModel(Model):
    """The bundle's ONNX session behind kserve's v2 protocol: no checks, one `forecast` output."""

    def __init__(self, name: str, bundle: str) -> None:
        super().__init__(name)
        self.forecaster = OnnxForecaster(load_bundle(bundle), "fp32", threads=1)
        self.ready = True

    def predict(self, payload: InferRequest, headers: dict | None = None) -> InferResponse:
        closes = np.asarray(payload.inputs[0].as_numpy(), dtype=np.float64)
        forecast = self.forecaster.predict(closes)
        output = InferOutput("forecast", list(forecast.shape), "FP64", forecast.tolist())
        return InferResponse(payload.id or generate_uuid(), self.name, [output])


if __name__ == "__main__":
    ModelServer().start([BareModel(model_server.args.model_name, os.environ["BENCH_BUNDLE"])])
