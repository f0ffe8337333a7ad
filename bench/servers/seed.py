"""The seed's serving design: FastAPI, torch eager in the route, model and scaler loaded in the
lifespan, the window in the request body, uvicorn's access log on (as the seed ran it)."""

from __future__ import annotations

import os
from contextlib import asynccontextmanager

import numpy as np
import torch
from fastapi import FastAPI
from pydantic import BaseModel

from bundle import load_bundle
from bundle.transform import model_inputs, to_price
from training.model import StackedRNN

STATE: dict = {}


@asynccontextmanager
async def lifespan(app: FastAPI):
    torch.set_num_threads(1)
    net = StackedRNN()
    net.load_state_dict(torch.load(os.environ["BENCH_WEIGHTS"], weights_only=True))
    STATE["model"], STATE["spec"] = net.eval(), load_bundle(os.environ["BENCH_BUNDLE"]).metadata.features
    yield


app = FastAPI(lifespan=lifespan)


class Window(BaseModel):
    closes: list[list[float]]


@app.post("/predict")
def predict(window: Window) -> dict:
    closes = np.asarray(window.closes, dtype=np.float64)
    spec = STATE["spec"]
    with torch.no_grad():
        raw = STATE["model"](torch.from_numpy(model_inputs(closes, spec))).squeeze(-1).numpy()
    return {"forecast": to_price(raw, closes, spec).tolist()}
