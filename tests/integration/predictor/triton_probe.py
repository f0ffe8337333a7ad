"""tritonclient's calls against a live predictor, run in a process of their own: tritonclient.grpc and
kserve register the same protobuf symbols (`inference.*`), so the two cannot share a process.

`python -m tests.integration.predictor.triton_probe HTTP_PORT GRPC_PORT WINDOW` prints one JSON object:
each case's outputs (name -> values) or its error text."""

from __future__ import annotations

import json
import sys

import numpy as np
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp
from tritonclient.utils import InferenceServerException

from tests.tiny_bundle import windows


def rows(window: int) -> np.ndarray:
    return windows(3, window)


def outputs(result, names) -> dict:
    return {n: None if result.as_numpy(n) is None else result.as_numpy(n).tolist() for n in names}


def attempt(call) -> dict:
    try:
        return call()
    except InferenceServerException as exc:
        return {"error": str(exc)}


def http_cases(port: int, window: int) -> dict:
    client = thttp.InferenceServerClient(f"127.0.0.1:{port}")
    data, cases = rows(window), {}
    for binary_in in (True, False):  # json-in: tritonclient sends no Content-Type at all
        for binary_out in (True, False):
            tensor = thttp.InferInput("closes", [3, window], "FP64")
            tensor.set_data_from_numpy(data, binary_data=binary_in)
            wanted = [thttp.InferRequestedOutput(n, binary_data=binary_out) for n in ("forecast", "upper_95")]
            result = client.infer("m", [tensor], outputs=wanted)
            cases[f"http in={binary_in} out={binary_out}"] = {
                **outputs(result, ("forecast", "upper_95", "lower_80")),
                "sent as bytes": {n: "data" not in result.get_output(n) for n in ("forecast", "upper_95")},
            }
    fp32 = thttp.InferInput("closes", [3, window], "FP32")
    fp32.set_data_from_numpy(data.astype(np.float32))
    everything = client.infer("m", [fp32])  # no outputs named: tritonclient asks binary_data_output
    cases["http fp32 all outputs"] = [o["name"] for o in everything.get_response()["outputs"]]
    cases["http fp32 all outputs as bytes"] = ["data" not in o for o in everything.get_response()["outputs"]]
    cases["http fp32 forecast"] = everything.as_numpy("forecast").tolist()
    version = client.get_model_metadata("m")["versions"][0]
    versioned = client.infer("m", [fp32], model_version=version).get_response()
    cases["http versioned"] = {"asked": version, "answered": versioned["model_version"]}
    cases["http unknown version"] = attempt(lambda: client.infer("m", [fp32], model_version="999"))
    cases["http unknown version ready"] = client.is_model_ready("m", "999")
    short = thttp.InferInput("closes", [1, 3], "FP64")
    short.set_data_from_numpy(data[:1, :3])
    cases["http short window"] = attempt(lambda: client.infer("m", [short]))
    unknown = [thttp.InferRequestedOutput("median")]
    cases["http unknown output"] = attempt(lambda: client.infer("m", [fp32], outputs=unknown))
    cases["http metadata"] = client.get_model_metadata("m")
    cases["http ready"] = client.is_server_ready() and client.is_model_ready("m")
    cases["http server metadata"] = client.get_server_metadata()
    return cases


def grpc_cases(port: int, window: int) -> dict:
    client = tgrpc.InferenceServerClient(f"127.0.0.1:{port}")
    data = rows(window)
    tensor = tgrpc.InferInput("closes", [3, window], "FP64")
    tensor.set_data_from_numpy(data)  # raw_input_contents: tritonclient's only mode
    result = client.infer("m", [tensor], outputs=[tgrpc.InferRequestedOutput("forecast")])
    negative = tgrpc.InferInput("closes", [1, window], "FP64")
    negative.set_data_from_numpy(-data[:1])
    return {
        "grpc raw": outputs(result, ("forecast",)),
        "grpc output names": [o.name for o in result.get_response().outputs],
        "grpc metadata outputs": [o.name for o in client.get_model_metadata("m").outputs],
        "grpc negative": attempt(lambda: client.infer("m", [negative])),
        "grpc ready": client.is_server_ready() and client.is_model_ready("m"),
        "grpc versioned": result.get_response().model_version,
        "grpc metadata versions": list(client.get_model_metadata("m").versions),
        "grpc unknown version": attempt(lambda: client.is_model_ready("m", "999")),
    }


if __name__ == "__main__":
    http_port, grpc_port, window = map(int, sys.argv[1:4])
    print(
        json.dumps(
            {"rows": rows(window).tolist(), **http_cases(http_port, window), **grpc_cases(grpc_port, window)}
        )
    )
