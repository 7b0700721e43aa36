"""An LSTM text classifier over a word vocabulary fitted on each fold's training rows.

The tokenizer is a Hugging Face fast tokenizer (NFKC + lowercase, words and punctuation split
apart, a word-level vocabulary) whose vocabulary is counted here, not by `tokenizers`' trainer:
ties in frequency are broken alphabetically, so the same rows always give the same file.
"""

from __future__ import annotations

from collections import Counter

import torch
from omegaconf import DictConfig
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

PAD, UNK = "[PAD]", "[UNK]"


def make_tokenizer(cfg: DictConfig, texts: list[str], root=None):
    """A word-level tokenizer of the `cfg.vocab_size` most frequent words of `texts` (+ [PAD], [UNK])."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Lowercase()] if cfg.lowercase else [normalizers.NFKC()]
    )
    splitter = pre_tokenizers.Whitespace()  # runs of word characters; runs of punctuation
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(word for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text)))
    words = sorted(counts, key=lambda w: (-counts[w], w))[: cfg.vocab_size]
    vocab = {PAD: 0, UNK: 1, **{word: i + 2 for i, word in enumerate(words)}}
    backend = Tokenizer(WordLevel(vocab, unk_token=UNK))
    backend.normalizer, backend.pre_tokenizer = normalizer, splitter
    # max_length "auto" is resolved from lengths this tokenizer counts (pipeline/training/data_choices.py)
    limit = {"model_max_length": cfg.max_length} if isinstance(cfg.max_length, int) else {}
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token=PAD, unk_token=UNK, **limit)


class LSTMClassifier(nn.Module):
    """Embedding -> LSTM (packed, so padding never enters it) -> pooled state -> dense output."""

    def __init__(
        self,
        vocab_size: int,
        n_outputs: int,
        *,
        embedding_dim: int = 128,
        hidden_size: int = 64,
        layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        pooling: str = "last",
        pad_id: int = 0,
    ):
        super().__init__()
        self.pooling = pooling
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        self.lstm = nn.LSTM(
            embedding_dim,
            hidden_size,
            num_layers=layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), n_outputs)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        lengths = attention_mask.sum(dim=1).clamp(min=1)
        packed = pack_padded_sequence(
            self.dropout(self.embedding(input_ids)), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        states, (last, _) = self.lstm(packed)
        if self.pooling == "last":
            # the final layer's last state (both directions when bidirectional)
            pooled = torch.cat([last[-2], last[-1]], dim=1) if self.lstm.bidirectional else last[-1]
        else:
            states, _ = pad_packed_sequence(states, batch_first=True, total_length=input_ids.shape[1])
            mask = attention_mask[:, :, None].bool()
            if self.pooling == "max":
                pooled = states.masked_fill(~mask, float("-inf")).max(dim=1).values
            else:
                pooled = (states * mask).sum(dim=1) / lengths[:, None].to(states.dtype)
        return self.head(self.dropout(pooled))


def build_text(cfg: DictConfig, tokenizer, n_outputs: int, root=None) -> nn.Module:
    return LSTMClassifier(
        len(tokenizer),
        n_outputs,
        embedding_dim=cfg.embedding_dim,
        hidden_size=cfg.hidden_size,
        layers=cfg.layers,
        bidirectional=cfg.bidirectional,
        dropout=cfg.dropout,
        pooling=cfg.pooling,
        pad_id=tokenizer.pad_token_id,
    )
