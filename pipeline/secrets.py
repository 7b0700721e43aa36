"""Secrets kept out of everything Podium prints, logs or saves.

Light on imports on purpose: the command line masks its messages with it before anything heavy loads.
"""

from __future__ import annotations

import os
import re

# Environment variables whose values are secrets (KAGGLE_KEY, HF_TOKEN, MLFLOW_TRACKING_PASSWORD, ...).
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)


def secret_values() -> list[str]:
    """Values of the environment's secret-named variables (6 characters or more), longest first."""
    # Names first, then each value with .get: iterating os.environ.items() raises KeyError when another
    # thread (MLflow's telemetry) removes a variable meanwhile; iterating the names is atomic.
    values = (os.environ.get(name) for name in os.environ if SECRET_NAME.search(name))
    return sorted({v for v in values if v and len(v) >= 6}, key=len, reverse=True)


def redact(text: str) -> str:
    """`text` as it may be logged, saved or printed: passwords in URLs (postgresql://me:***@host/db)
    and the values of secret environment variables replaced by ***."""
    text = re.sub(r"(://[^:/@\s]+):[^@\s]*@", r"\1:***@", text)
    for value in secret_values():
        text = text.replace(value, "***")
    return text
