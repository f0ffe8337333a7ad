"""The model bundle: the one contract between training and serving (torch-free).

A bundle is a directory holding the ONNX model(s), the feature/scaler definition and metadata as
JSON. Training writes it; the predictor and the promotion gate read it with onnxruntime only.
"""

from bundle.distribution import PredictiveDistribution
from bundle.io import BundleError, LoadedBundle, load_bundle, write_bundle
from bundle.runtime import Forecast, OnnxForecaster
from bundle.schema import (
    BUNDLE_FORMAT_VERSION,
    METADATA_FILE,
    BundleMetadata,
    ConformalInterval,
    FeatureSpec,
    Scaler,
    VariantFile,
)

__all__ = [
    "BUNDLE_FORMAT_VERSION",
    "METADATA_FILE",
    "BundleError",
    "BundleMetadata",
    "ConformalInterval",
    "FeatureSpec",
    "Forecast",
    "LoadedBundle",
    "OnnxForecaster",
    "PredictiveDistribution",
    "Scaler",
    "VariantFile",
    "load_bundle",
    "write_bundle",
]
