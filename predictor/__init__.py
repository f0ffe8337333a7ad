"""KServe predictor for bundle models: onnxruntime only, no torch, nothing from training."""
