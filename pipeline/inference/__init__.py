"""Inference on new rows: fitted models kept by `train`, `podium predict` and the offline bundle."""
