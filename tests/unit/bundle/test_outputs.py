"""The declared outputs: names, order, quantiles and the values each reads from a Forecast."""

from __future__ import annotations

import numpy as np
import pytest

from bundle import Forecast
from bundle.outputs import MEAN, columns, input_metadata, level_label, outputs


@pytest.mark.parametrize(("coverage", "label"), [(0.8, "80"), (0.95, "95"), (0.5, "50"), (0.975, "97.5")])
def test_level_labels_are_exact_percentages(coverage, label):
    assert level_label(coverage) == label


def test_outputs_are_the_mean_then_each_interval_narrowest_first():
    declared = outputs((0.95, 0.8))
    assert [o.name for o in declared] == [MEAN, "lower_80", "upper_80", "lower_95", "upper_95"]
    assert [o.quantile for o in declared] == pytest.approx([0.5, 0.1, 0.9, 0.025, 0.975])
    assert all(o.datatype == "FP64" and o.metadata()["shape"] == [-1] for o in declared)
    assert outputs(()) == (declared[0],)


def test_values_and_columns_read_the_right_arrays():
    mean = np.array([[10.0, 11.0], [20.0, 21.0]])
    forecast = Forecast(mean=mean, lower={0.8: mean - 1}, upper={0.8: mean + 1})
    declared = outputs((0.8,))
    assert declared[1].values(forecast) is forecast.lower[0.8]
    step1 = columns(forecast, declared, step=1)
    assert list(step1) == ["forecast", "lower_80", "upper_80"]
    assert step1["upper_80"].tolist() == [12.0, 22.0]


def test_input_metadata_names_the_window_once_known():
    assert input_metadata(60) == {"name": "closes", "datatype": "FP64", "shape": [-1, 60]}
    assert input_metadata(None)["shape"] == [-1, -1]


def test_outputs_are_immutable():
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        outputs((0.8,))[1].coverage = 0.9  # type: ignore[misc]
