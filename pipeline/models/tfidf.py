"""TF-IDF n-grams with a linear model (logistic regression; ridge for regression), by scikit-learn.

Not a network: it trains in seconds on a CPU, and its errors differ from a Transformer's, which
makes it a useful ensemble member. The vectoriser is fitted on each fold's training rows only.
"""

from __future__ import annotations

import numpy as np
from omegaconf import DictConfig

from pipeline.models import EstimatorFold


def fit_predict(cfg: DictConfig, fold: EstimatorFold) -> list[np.ndarray]:
    """Fit on the fold's training texts; predictions (rows, outputs) for each list of `fold.predict_rows`."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression, Ridge

    vectorizer = TfidfVectorizer(
        ngram_range=tuple(cfg.ngram_range),
        min_df=cfg.min_df,
        max_features=cfg.max_features,
        sublinear_tf=cfg.sublinear_tf,
        lowercase=True,
        dtype=np.float32,
    )
    train_texts, target, predict_texts, seed = fold.train_rows, fold.target, fold.predict_rows, fold.seed
    features = vectorizer.fit_transform(train_texts)
    if fold.task == "regression":
        model = Ridge(alpha=1.0 / cfg.C, random_state=seed).fit(features, target)
        return [model.predict(vectorizer.transform(texts))[:, None] for texts in predict_texts]
    model = LogisticRegression(C=cfg.C, max_iter=cfg.max_iter, random_state=seed).fit(features, target)
    return [model.predict_proba(vectorizer.transform(texts)) for texts in predict_texts]
