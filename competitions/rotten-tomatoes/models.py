"""Your own networks for this competition: an example of `family: network` (conf/model/textcnn.yaml).

A text network takes (input_ids, attention_mask), both (N, L), over the word vocabulary Podium fits
on each fold's training rows, and returns N x n_outputs logits. Podium passes `vocab_size`,
`pad_id`, `max_length` and `n_outputs` by parameter name, and every other key of the YAML's `net:`.
"""

from __future__ import annotations

import torch
from torch import nn


class TextCNN(nn.Module):
    """Kim (2014): word embeddings, 1-D convolutions of several widths, max-pooled over the real tokens."""

    def __init__(self, vocab_size: int, pad_id: int, n_outputs: int, embedding_dim: int = 64,
                 filters: int = 64, widths: tuple[int, ...] = (2, 3, 4), dropout: float = 0.3):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        self.convs = nn.ModuleList(nn.Conv1d(embedding_dim, filters, w, padding=w - 1) for w in widths)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(filters * len(widths), n_outputs)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.embedding(input_ids).transpose(1, 2)  # (N, E, L)
        pooled = []
        for conv in self.convs:
            features = torch.relu(conv(x))[:, :, : input_ids.shape[1]]  # the positions of real tokens
            features = features.masked_fill(attention_mask[:, None, :] == 0, float("-inf"))
            pooled.append(features.max(dim=2).values)
        return self.head(self.dropout(torch.cat(pooled, dim=1)))
