"""TF-IDF n-grams with a linear model (logistic regression; ridge for regression), by scikit-learn.

Not a network: it trains in seconds on a CPU, and its errors differ from a Transformer's, which
makes it a useful ensemble member. The vectoriser is fitted on each fold's training rows only.
"""

from __future__ import annotations

import numpy as np
from omegaconf import DictConfig

from pipeline.models import EstimatorFold


def fit(cfg: DictConfig, fold: EstimatorFold):
    """The vectoriser and linear model, one scikit-learn Pipeline, fitted on the fold's training texts."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline

    vectorizer = TfidfVectorizer(
        ngram_range=tuple(cfg.ngram_range),
        min_df=cfg.min_df,
        max_features=cfg.max_features,
        sublinear_tf=cfg.sublinear_tf,
        lowercase=True,
        dtype=np.float32,
    )
    if fold.task == "regression":
        model = Ridge(alpha=1.0 / cfg.C, random_state=fold.seed)
    else:
        model = LogisticRegression(C=cfg.C, max_iter=cfg.max_iter, random_state=fold.seed)
    return make_pipeline(vectorizer, model).fit(fold.train_rows, fold.target)
