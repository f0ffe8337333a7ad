"""The practical floor: bare Starlette + onnxruntime, same bundle and validation-free hot path."""

from __future__ import annotations

import os

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bundle import OnnxForecaster, load_bundle

FORECASTER = OnnxForecaster(load_bundle(os.environ["BENCH_BUNDLE"]), "fp32", threads=1)


async def predict(request: Request) -> Response:
    closes = np.asarray(orjson.loads(await request.body())["closes"], dtype=np.float64)
    return Response(
        orjson.dumps({"forecast": FORECASTER.predict(closes).tolist()}), media_type="application/json"
    )


app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])
