"""The kserve internals both servers subclass alike (for the kserve of serving.cli): the data
plane and the model repository extension. The predictor adds its own (predictor/kserve_seam.py)."""

from __future__ import annotations

import struct

import orjson
from cloudevents.sdk.converters.util import has_binary_headers
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER, PredictorProtocol
from kserve.errors import InferenceError, InvalidInput
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.infer_type import InferRequest
from kserve.protocol.model_repository_extension import ModelRepositoryExtension
from kserve.protocol.rest.v2_datamodels import InferenceRequest
from pydantic import ValidationError

from bundle.outputs import INPUT_DATATYPES
from serving.errors import Rejected, RepositoryLockedError, body_error
from serving.text import check_strings, refuse_lone_surrogates

# What kserve's binary parser raises on a malformed request; InferenceError e.g. for shape [-1] with
# binary_data_size 0 ("unexpected numpy array shape").
PARSE_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, struct.error, InferenceError)


def check_datatype_case(datatypes) -> None:
    """The protocol's datatypes are upper-case ("FP64"); kserve upper-cases REST's but refuses
    gRPC's with "invalid content type". One rule for both: a lower-case datatype is refused, by name."""
    for datatype in datatypes:
        if isinstance(datatype, str) and datatype != datatype.upper():
            upper, accepted = datatype.upper(), ", ".join(INPUT_DATATYPES)
            raise Rejected("datatype", f"datatype {datatype!r} is not a protocol datatype: they are "
                                       f"upper-case ({upper!r}); accepted: {accepted}")  # fmt: skip


class ServingDataPlane(DataPlane):
    """Ready only when it is, metadata naming what is served, decoding that never turns a 400 into a 500."""

    async def ready(self) -> bool:
        return (await self.readiness())[0]

    async def readiness(self, detailed: bool = False) -> tuple[bool, dict[str, str]]:
        """Ready once every model has settled and at least one serves; the models not serving, each
        with its reason (its state; `detailed`: its own words too, for a caller holding the token).
        A model that cannot load never takes the others out of service."""
        models = list(self.model_registry.get_models().values())
        missing = {m.name: self.not_ready_reason(m, detailed) for m in models if not await m.healthy()}
        return bool(models) and len(missing) < len(models) and self.settled(models), missing

    def not_ready_reason(self, model, detailed: bool = False) -> str:
        return "not ready"

    def settled(self, models: list) -> bool:
        """Every model has had its first load attempt (kserve answers ready while models load)."""
        return True

    def metadata(self) -> dict:
        """The extensions this server really offers: the binary tensor extension (REST), not the
        model repository (refused: models follow their source)."""
        return {**super().metadata(), "extensions": ["binary_tensor_data"]}

    async def model_metadata(self, model_name: str) -> dict:
        meta = await super().model_metadata(model_name)
        served = getattr(self.get_model_from_registry(model_name), "served", None)
        meta.update(platform="onnxruntime_onnx", versions=[served.version] if served else [])
        return meta

    def decode(self, body, headers, protocol_version=PredictorProtocol.REST_V1.value, model_name=None):
        """A body is JSON whatever Content-Type it declares (curl -d sends a form type, tritonclient
        none) unless the binary tensor extension or a binary CloudEvent says otherwise."""
        if isinstance(body, bytes) and headers and not _binary(headers):
            headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        try:
            return super().decode(body, headers, protocol_version, model_name)
        except InvalidInput:
            if isinstance(body, bytes):  # orjson or jiter gave a position: name the field if it is text
                refuse_lone_surrogates(body)
            raise

    def decode_inference_request(self, body, headers, model_name):
        """kserve's decoding, with the datatype-case rule (kserve upper-cases REST datatypes) and,
        for a request FastAPI's lenient parser read, the strings it echoes or uses checked as text."""
        if not isinstance(body, bytes):
            check_strings(_used_strings(body))
            check_datatype_case(i.datatype for i in body.inputs)
            return super().decode_inference_request(body, headers, model_name)
        declared = headers.get(INFERENCE_CONTENT_LENGTH_HEADER)
        if declared is None:  # a v2 JSON body that came without a JSON Content-Type
            try:
                request = InferenceRequest.model_validate_json(body)
            except ValidationError as exc:
                raise InvalidInput(body_error(exc.errors())) from exc
            check_datatype_case(i.datatype for i in request.inputs)
            return InferRequest.from_inference_request(request, model_name)
        if not declared.isdigit() or int(declared) > len(body):
            raise InvalidInput(f"{INFERENCE_CONTENT_LENGTH_HEADER} must be a byte count within the "
                               f"{len(body)}-byte body, got {declared!r}")  # fmt: skip
        try:
            check_datatype_case(_header_datatypes(orjson.loads(body[: int(declared)])))
            return InferRequest.from_bytes(body, int(declared), model_name)
        except InvalidInput:
            raise
        except PARSE_ERRORS as exc:  # kserve's parser
            refuse_lone_surrogates(body[: int(declared)])
            raise InvalidInput(f"malformed binary tensor request: {type(exc).__name__}: {exc}") from exc


def _used_strings(request: InferenceRequest):
    """(place, value) of what kserve's v2 route echoes or uses from a request: its id, names,
    datatypes, parameters, and BYTES data (the transformer's ticker and as-of). Numbers are not
    looked at: a price is never text."""
    yield "id", request.id
    yield "parameters", request.parameters
    for i, inp in enumerate(request.inputs):
        yield f"inputs.{i}.name", inp.name
        yield f"inputs.{i}.datatype", inp.datatype
        yield f"inputs.{i}.parameters", inp.parameters
        if inp.datatype == "BYTES":
            yield f"inputs.{i}.data", inp.data
    for i, out in enumerate(request.outputs or ()):
        yield f"outputs.{i}.name", out.name
        yield f"outputs.{i}.parameters", out.parameters


def _header_datatypes(header) -> list:
    """The datatypes a binary-extension JSON header declares (kserve's parser judges the rest)."""
    inputs = header.get("inputs") if isinstance(header, dict) else None
    return [i.get("datatype") for i in inputs if isinstance(i, dict)] if isinstance(inputs, list) else []


def _binary(headers: dict) -> bool:
    return INFERENCE_CONTENT_LENGTH_HEADER in headers or has_binary_headers(headers)


class LockedRepository(ModelRepositoryExtension):
    """gRPC and REST load/unload refused: kserve's unload cannot be undone by load."""

    async def load(self, model_name: str) -> None:
        raise RepositoryLockedError("load")

    async def unload(self, model_name: str) -> None:
        raise RepositoryLockedError("unload")
