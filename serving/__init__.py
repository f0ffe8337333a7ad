"""Plumbing the predictor and the transformer share (torch-free; below both, importing neither)."""
