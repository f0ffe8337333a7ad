"""The int8 check measures stored weights, so it works for any graph (here a tiny one, no torch)."""

from __future__ import annotations

from tests.tiny_bundle import onnx_model
from training.quantize import MIN_INT8_SHARE, int8_share, quantize_int8


def test_fp32_has_no_int8_weights_and_its_quantized_twin_mostly_int8():
    fp32 = onnx_model(steps=63)
    assert int8_share(fp32) == 0.0
    assert int8_share(quantize_int8(fp32)) >= MIN_INT8_SHARE


def test_the_share_counts_weight_elements_by_storage_type():
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.zeros(3, dtype=np.int8), "q"),
             numpy_helper.from_array(np.zeros((2, 2), dtype=np.uint8), "u"),
             numpy_helper.from_array(np.zeros(5, dtype=np.float32), "f")]  # fmt: skip
    graph = helper.make_graph(
        [], "g", [], [helper.make_tensor_value_info("f", TensorProto.FLOAT, [5])], inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    assert int8_share(model) == 7 / 12
    empty = helper.make_graph([], "e", [], [])
    assert int8_share(helper.make_model(empty).SerializeToString()) == 0.0
