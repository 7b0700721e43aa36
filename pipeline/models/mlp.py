"""A multilayer perceptron over a table (`family: mlp`), trained by Lightning like every network family.

Numeric features are standardised with the mean and spread of the fold's training rows, a missing
value becomes 0 plus a missing flag of its own; each categorical feature gets a learned embedding
(index 0: missing, or a category unseen in training). For regression the output is scaled to the
training target's mean and spread, so the first epoch does not spend itself learning an offset
(log prices sit near 12). These statistics are buffers of the network: they travel with its
weights, so a saved fold predicts new rows as it predicted the test set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig
from torch import nn

from pipeline.data.tabular import NUMERIC, TableSchema


class TableMLP(nn.Module):
    def __init__(
        self,
        n_numeric: int,
        cardinalities: list[int],
        n_outputs: int,
        hidden: list[int],
        dropout: float,
        embedding_dim: int | None,
    ):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_numeric))
        self.register_buffer("scale", torch.ones(n_numeric))
        self.register_buffer("target_mean", torch.zeros(n_outputs))
        self.register_buffer("target_scale", torch.ones(n_outputs))
        # a category's embedding: at most 16 numbers, fewer for a column of few categories
        sizes = [embedding_dim or min(16, (k + 2) // 2) for k in cardinalities]
        self.embeddings = nn.ModuleList(nn.Embedding(k + 1, d) for k, d in zip(cardinalities, sizes))
        layers: list[nn.Module] = []
        width = 2 * n_numeric + sum(sizes)
        for units in hidden:
            layers += [nn.Linear(width, units), nn.BatchNorm1d(units), nn.SiLU(), nn.Dropout(dropout)]
            width = units
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(width, n_outputs)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        missing = torch.isnan(numeric)
        values = torch.where(missing, torch.zeros_like(numeric), (numeric - self.mean) / self.scale)
        parts = [values, missing.to(values.dtype)]
        parts += [embedding(categorical[:, i]) for i, embedding in enumerate(self.embeddings)]
        return self.out(self.body(torch.cat(parts, dim=1))) * self.target_scale + self.target_mean


def table_tensors(table: pd.DataFrame, schema: TableSchema) -> tuple[torch.Tensor, torch.Tensor]:
    """The typed feature table as the network reads it: numeric float32 (NaN kept) and category indices
    (0 for missing or unseen, k + 1 for the k-th category)."""
    numeric = [c.name for c in schema.columns if c.kind == NUMERIC]
    categorical = schema.categorical
    values = (  # a copy: pandas may hand out a read-only view, which torch would share
        table[numeric].to_numpy(np.float32, copy=True) if numeric else np.zeros((len(table), 0), np.float32)
    )
    codes = np.stack([table[c].cat.codes.to_numpy(np.int64) + 1 for c in categorical], axis=1) if categorical else None
    return torch.from_numpy(values), torch.from_numpy(
        codes if codes is not None else np.zeros((len(table), 0), np.int64)
    )


def build_table(
    model: DictConfig,
    schema: TableSchema,
    n_outputs: int,
    root: Path,
    rows: pd.DataFrame | None = None,
    target: np.ndarray | None = None,
    task: str = "regression",
) -> TableMLP:
    """The network for `schema`'s features; with the fold's training `rows` and `target`, its scaling fitted to them
    (a saved fold's scaling comes with its weights instead)."""
    n_numeric = sum(c.kind == NUMERIC for c in schema.columns)
    cardinalities = [len(c.categories) for c in schema.columns if c.kind != NUMERIC]
    net = TableMLP(n_numeric, cardinalities, n_outputs, list(model.hidden), model.dropout, model.embedding_dim)
    if rows is not None:
        numeric, _ = table_tensors(rows, schema)
        mean = torch.nan_to_num(torch.nanmean(numeric, dim=0))
        spread = numeric - mean
        spread = torch.sqrt(torch.nanmean(spread * spread, dim=0))
        net.mean.copy_(mean)
        net.scale.copy_(torch.where(torch.isfinite(spread) & (spread > 0), spread, torch.ones_like(spread)))
        if task == "regression" and target is not None:
            net.target_mean.fill_(float(np.mean(target)))
            net.target_scale.fill_(float(np.std(target)) or 1.0)
    return net
