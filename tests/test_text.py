"""Text competitions: tokenization cache, dynamic padding, the LSTM's per-fold vocabulary, the
Transformer family (tiny random and the packaged MiniLM), and every task type, on real snippets."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.config import compose
from pipeline.models import lstm, transformer
from pipeline.training.inputs import FoldInputs
from pipeline.training.spec import FoldSpec
from pipeline.training.text_data import LengthBucketSampler, PadCollator, TokenDataset, tokenize
from pipeline.training.train import train

FAST = (
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "data.limit_train_rows=400",
    "competition.cv.n_splits=2",
    "model.batch_size=32",
)


def words_of(texts, tokenizer) -> set[str]:
    backend = tokenizer.backend_tokenizer
    return {w for t in texts for w, _ in backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(t))}


def test_lstm_vocabulary_is_deterministic_and_keeps_the_most_frequent_words(rt_data, tmp_path):
    texts = pd.read_csv(rt_data / "raw" / "train.csv")["text"].tolist()[:2000]
    model_cfg = compose(["model=lstm", "model.vocab_size=500"]).model
    first, second = lstm.make_tokenizer(model_cfg, texts), lstm.make_tokenizer(model_cfg, list(texts))
    first.save_pretrained(tmp_path / "a")
    second.save_pretrained(tmp_path / "b")
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (tmp_path / "b" / "tokenizer.json").read_bytes()
    vocab = first.get_vocab()
    assert len(vocab) == 502 and vocab["[PAD]"] == 0 and vocab["[UNK]"] == 1
    assert {"the", "a", "film"} <= set(vocab), "the commonest words are kept (lower-cased)"
    encoded = first("The FILM is zzzqqq.")["input_ids"]
    assert encoded[:2] == [vocab["the"], vocab["film"]] and vocab["[UNK]"] in encoded


def test_tokenization_is_cached_by_fingerprint(rt_data, tmp_path, caplog, monkeypatch):
    from pipeline.training import text_data

    monkeypatch.setattr(text_data, "_said", False)  # as in a new process
    texts = pd.read_csv(rt_data / "raw" / "train.csv")["text"].tolist()[:500]
    tokenizer = lstm.make_tokenizer(compose(["model=lstm"]).model, texts)
    with caplog.at_level(logging.DEBUG, logger="pipeline.training.text_data"):
        ids, offsets = tokenize(texts, tokenizer, 100, tmp_path)
        again_ids, again_offsets = tokenize(texts, tokenizer, 100, tmp_path)
        tokenize(texts, tokenizer, 8, tmp_path)  # another max length: another cache entry
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("tokenized 500") and messages[1].startswith("read tokens of 500")
    assert messages[2].startswith("tokenized 500")
    assert [r.levelno for r in caplog.records] == [logging.INFO, logging.DEBUG, logging.DEBUG], "said once a run"
    assert len(list((tmp_path / "tokens").glob("*.arrow"))) == 2
    assert np.array_equal(ids, again_ids) and np.array_equal(offsets, again_offsets)
    assert (
        len(offsets) == 501
        and ids[offsets[0] : offsets[1]].tolist() == tokenizer(texts[0], truncation=True, max_length=100)["input_ids"]
    )


def test_dynamic_padding_and_length_buckets():
    lengths = np.array([3, 9, 1, 5, 7, 2, 8, 4, 6, 10])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ids = np.arange(1, offsets[-1] + 1)
    data = TokenDataset(ids, offsets, np.arange(10), np.arange(10))
    batch, target = PadCollator(pad_id=0)([data[2], data[0]])
    assert batch["input_ids"].shape == (2, 3), "padded to the longest row of the batch, not a max length"
    assert batch["attention_mask"].tolist() == [[1, 0, 0], [1, 1, 1]] and target.tolist() == [2, 0]

    sampler = LengthBucketSampler(data.lengths, batch_size=2, seed=0, drop_last=False, bucket_batches=5)
    epoch_1 = list(sampler)
    sampler.sampler.set_epoch(1)  # as Lightning does before each epoch
    epoch_2 = list(sampler)
    assert sorted(i for b in epoch_1 for i in b) == list(range(10)) and len(epoch_1) == len(sampler)
    assert epoch_1 != epoch_2, "a new order each epoch"
    assert list(LengthBucketSampler(data.lengths, 2, seed=0, drop_last=False, bucket_batches=5)) == epoch_1, "seeded"
    resumed = LengthBucketSampler(data.lengths, 2, seed=0, drop_last=False, bucket_batches=5)
    resumed.sampler.set_epoch(1)
    assert list(resumed) == epoch_2, "a run resumed at epoch 1 sees epoch 1's order"
    spread = np.mean([np.ptp(lengths[b]) for b in epoch_1])
    assert spread <= 1.0, "batches hold rows of similar length"

    inputs = FoldInputs(net=None, train=data, valid=data, test=data, collate=PadCollator(0))
    cfg = compose(["model=lstm", "model.batch_size=4"])
    loader, order = inputs.eval_loader(data, FoldSpec.of(cfg))
    seen = torch.cat([(b["input_ids"] > 0).sum(1) for b, _ in loader]).numpy()
    restored = np.empty(10, dtype=int)
    restored[order] = seen
    assert np.array_equal(restored, lengths), "outputs map back to dataset rows"
    assert np.all(np.diff(seen) >= 0), "rows in order of length"


@pytest.fixture
def lstm_run(make_text_cfg):
    cfg = make_text_cfg("model=lstm", *FAST, "out_dir=outputs/rotten-tomatoes/models/lstm")
    return cfg, train(cfg)


def test_lstm_trains_with_a_vocabulary_from_each_folds_training_rows_only(lstm_run, text_project):
    _cfg, result = lstm_run
    oof = pd.read_parquet(result.out_dir / "oof.parquet")
    assert len(oof) == 400 and oof["id"].is_unique and {"prob_rotten", "prob_fresh"} <= set(oof.columns)
    assert np.allclose(oof[["prob_rotten", "prob_fresh"]].sum(axis=1), 1, atol=1e-5)
    metrics = json.loads((result.out_dir / "metrics.json").read_text())
    assert metrics["metric"] == "roc_auc" and 0 <= metrics["report"]["accuracy"] <= 1
    prepared = pd.read_parquet(result.out_dir / "prepared" / "train.parquet")
    fold_dirs = sorted((text_project / "checkpoints" / "rotten-tomatoes" / "lstm").glob("*/seed_0/fold_*"))
    assert [d.name for d in fold_dirs] == ["fold_0", "fold_1"]
    from transformers import PreTrainedTokenizerFast

    for fold, folder in enumerate(fold_dirs):
        assert (folder / "best.ckpt").is_file()
        tokenizer = PreTrainedTokenizerFast.from_pretrained(folder / "tokenizer")
        vocab = set(tokenizer.get_vocab())
        train_words = words_of(prepared.loc[prepared["fold"] != fold, "text"], tokenizer)
        valid_only = words_of(prepared.loc[prepared["fold"] == fold, "text"], tokenizer) - train_words
        test_only = (
            words_of(pd.read_parquet(result.out_dir / "prepared" / "test.parquet")["text"], tokenizer) - train_words
        )
        assert valid_only and not (valid_only & vocab), "no word seen only in validation rows"
        assert test_only and not (test_only & vocab), "no word seen only in test rows"
        assert vocab - {"[PAD]", "[UNK]"} <= train_words


def test_second_training_run_does_no_tokenization(lstm_run, make_text_cfg, caplog):
    _cfg, _ = lstm_run
    with caplog.at_level(logging.DEBUG, logger="pipeline.training.text_data"):
        train(make_text_cfg("model=lstm", *FAST, "out_dir=runs/again"))
    messages = [r.getMessage() for r in caplog.records if r.name == "pipeline.training.text_data"]
    assert len(messages) == 4 and all(m.startswith("read tokens of") for m in messages), messages


def snippets_competition(project, rt_data, task: str) -> None:
    """A text competition on the real snippets with a label of `task`'s kind, derived from the text."""
    raw = project / "data" / "snippets" / "raw"
    raw.mkdir(parents=True)
    train = pd.read_csv(rt_data / "raw" / "train.csv").head(300)
    test = pd.read_csv(rt_data / "raw" / "test.csv").head(80)
    words = train["text"].str.split().str.len()
    if task == "multiclass":
        train["label"] = pd.cut(words, [0, 12, 22, 1000], labels=["short", "medium", "long"]).astype(str)
        classes, metric, direction, fmt = "[short, medium, long]", "log_loss", "minimize", "probabilities"
        pd.DataFrame({"id": test["id"], "short": 1 / 3, "medium": 1 / 3, "long": 1 / 3}).to_csv(
            raw / "sample_submission.csv", index=False
        )
    else:
        train["label"] = np.log1p(words)
        classes, metric, direction, fmt = "[]", "rmse", "minimize", "labels"
        pd.DataFrame({"id": test["id"], "label": 0.0}).to_csv(raw / "sample_submission.csv", index=False)
    train[["id", "text", "label"]].to_csv(raw / "train.csv", index=False)
    test[["id", "text"]].to_csv(raw / "test.csv", index=False)
    (project / "conf" / "competition" / "snippets.yaml").write_text(f"""
defaults:
  - /cv@cv: {"stratified" if task == "multiclass" else "kfold"}
  - _self_
name: snippets
task: {task}
modality: text
target_column: label
classes: {classes}
metric: {metric}
direction: {direction}
models: [lstm]
submission:
  format: {fmt}
cv:
  n_splits: 2
""")


@pytest.mark.parametrize("task, model", [("multiclass", "lstm"), ("regression", "transformer_tiny")])
def test_text_models_handle_multiclass_and_regression(task, model, text_project, rt_data):
    snippets_competition(text_project, rt_data, task)
    cfg = compose(
        [
            "tracking=none",
            "competition=snippets",
            f"model={model}",
            "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false",
            "model.batch_size=16",
            f"out_dir=runs/{task}",
        ],
        root=text_project,
    )
    result = train(cfg)
    oof = pd.read_parquet(result.out_dir / "oof.parquet")
    test = pd.read_parquet(result.out_dir / "test.parquet")
    assert len(oof) == 300 and len(test) == 80 and np.isfinite(result.cv_score)
    if task == "multiclass":
        probs = oof[["prob_short", "prob_medium", "prob_long"]].to_numpy()
        assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
        assert result.cv_score < np.log(3) + 0.2, "log loss near or under the uniform guess"
    else:
        assert list(oof.columns[-1:]) == ["prediction"] and oof["prediction"].std() > 0


def test_tiny_transformer_binary_run(make_text_cfg):
    cfg = make_text_cfg("model=transformer_tiny", *FAST, "out_dir=runs/tiny")
    result = train(cfg)
    test = pd.read_parquet(result.out_dir / "test.parquet")
    assert len(test) == 2849 and test["id"].is_unique and np.isfinite(result.cv_score)


def test_packaged_minilm_loads_offline_and_fine_tunes(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # any hub call would fail
    cfg = compose(
        [
            "competition=rotten-tomatoes",
            "model=transformer",
            "model.layerwise_lr_decay=0.8",
            "model.freeze_layers=2",
            "model.freeze_embeddings=true",
        ]
    ).model
    tokenizer = transformer.make_tokenizer(cfg, [])
    net = transformer.build_text(cfg, tokenizer, n_outputs=1)
    assert sum(p.numel() for p in net.parameters()) > 22_000_000, "the real MiniLM, not a tiny one"
    frozen = {n for n, p in net.model.named_parameters() if not p.requires_grad}
    assert any("embeddings" in n for n in frozen) and any(".layer.1." in n for n in frozen)
    assert not any(".layer.2." in n for n in frozen) and net.training
    groups = net.parameter_groups(lr=1e-4, weight_decay=0.01)
    lrs = sorted({g["lr"] for g in groups}, reverse=True)
    # head 1e-4; layer i of 6 gets 1e-4 * 0.8^(6 - i); layers 0-1 and the embeddings are frozen
    assert lrs == pytest.approx([1e-4 * 0.8**d for d in range(5)])
    assert any(g["weight_decay"] == 0 for g in groups)

    batch = tokenizer(["A gorgeous, moving film.", "Dull and far too long."], padding=True, return_tensors="pt")
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-4)
    logits = net(batch["input_ids"], batch["attention_mask"])
    assert logits.shape == (2, 1)
    torch.nn.functional.binary_cross_entropy_with_logits(logits.squeeze(1), torch.tensor([1.0, 0.0])).backward()
    before = net.model.classifier.weight.detach().clone()
    optimizer.step()
    assert not torch.equal(before, net.model.classifier.weight), "the head trains"


def test_tfidf_member_learns_without_lightning(make_text_cfg):
    cfg = make_text_cfg("model=tfidf", "data.limit_train_rows=3000", "competition.cv.n_splits=3", "out_dir=runs/tfidf")
    result = train(cfg)
    assert result.cv_score > 0.75, "TF-IDF + logistic regression is far above chance (0.5) on 3,000 snippets"
    assert result.best_epochs == [None, None, None]
    oof = pd.read_parquet(result.out_dir / "oof.parquet")
    assert len(oof) == 3000 and np.allclose(oof[["prob_rotten", "prob_fresh"]].sum(axis=1), 1)


def test_a_text_competition_defaults_to_its_first_model_not_the_image_default():
    assert compose(["competition=rotten-tomatoes"]).model.name == "lstm"
    assert compose(["competition=rotten-tomatoes", "model=transformer"]).model.name == "transformer"
    assert compose(["competition=animals"]).model.name == "cnn"
