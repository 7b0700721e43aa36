"""TF-IDF n-grams with a linear model (logistic regression; ridge for regression), by scikit-learn.

Not a network: it trains in seconds on a CPU, and its errors differ from a Transformer's, which
makes it a useful ensemble member. The vectoriser is fitted on each fold's training rows only.
"""

from __future__ import annotations

import numpy as np
from omegaconf import DictConfig


def fit_predict(
    cfg: DictConfig, task: str, train_texts: list[str], target: np.ndarray, predict_texts: list[list[str]], seed: int
) -> list[np.ndarray]:
    """Fit on (train_texts, target); predictions (rows, outputs) for each list in `predict_texts`."""
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
    features = vectorizer.fit_transform(train_texts)
    if task == "regression":
        model = Ridge(alpha=1.0 / cfg.C, random_state=seed).fit(features, target)
        return [model.predict(vectorizer.transform(texts))[:, None] for texts in predict_texts]
    model = LogisticRegression(C=cfg.C, max_iter=cfg.max_iter, random_state=seed).fit(features, target)
    return [model.predict_proba(vectorizer.transform(texts)) for texts in predict_texts]
