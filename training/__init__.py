"""Training job: data -> Lightning LSTM -> walk-forward evaluation -> ONNX -> bundle -> MLflow."""
