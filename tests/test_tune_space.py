"""Search spaces: parsing, refusals before any trial, conditional sampling, override text."""

from __future__ import annotations

import optuna
import pytest

from pipeline.config.tuned import override_value, read_tuned, to_overrides, write_tuned
from pipeline.errors import PodiumError
from pipeline.tuning.space import parse_space

pytestmark = pytest.mark.fast  # no training, no servers

SPACE = {
    "model": {
        "optimizer": {
            "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
            "_target_": {"type": "categorical", "choices": ["torch.optim.AdamW", "torch.optim.SGD"]},
            "momentum": {
                "type": "float",
                "low": 0.8,
                "high": 0.97,
                "when": {"model.optimizer._target_": "torch.optim.SGD"},
            },
        },
        "depth": {"type": "int", "low": 2, "high": 4},
    },
    "augment": {"type": "categorical", "choices": ["none", "flip_shift"]},
}


def test_nested_space_flattens_to_config_keys_in_order():
    space = parse_space(SPACE, "test")
    assert [p.key for p in space.params] == [
        "model.optimizer.lr",
        "model.optimizer._target_",
        "model.optimizer.momentum",
        "model.depth",
        "augment",
    ]
    assert space.params[0].log and space.params[3].type == "int"


def test_conditional_parameter_is_sampled_only_when_its_condition_holds():
    space = parse_space(SPACE, "test")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        params = space.sample(trial)
        assert ("model.optimizer.momentum" in params) == (params["model.optimizer._target_"] == "torch.optim.SGD")
        assert 2 <= params["model.depth"] <= 4 and 1e-4 <= params["model.optimizer.lr"] <= 1e-2
        seen.add(params["model.optimizer._target_"])
        study.tell(trial, 0.0)
    assert seen == {"torch.optim.AdamW", "torch.optim.SGD"}


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"model": {"dropout": {"type": "float", "low": 0.5, "high": 0.1}}}, "low 0.5 is above high 0.1"),
        ({"model": {"width": {"type": "categorical", "choices": []}}}, "`choices` must be a non-empty list"),
        ({"model": {"width": {"type": "categorical", "choices": [16, 16]}}}, "repeats a value"),
        ({"model": {"lr": {"type": "float", "low": 0.0, "high": 1.0, "log": True}}}, "a log range must be positive"),
        ({"model": {"depth": {"type": "int", "low": 1.5, "high": 4}}}, "must both be integers"),
        ({"model": {"depth": {"type": "integer", "low": 1, "high": 4}}}, "needs `type:` float, int or categorical"),
        ({"model": {"depth": {"type": "int", "low": 1, "high": 4, "choices": [1]}}}, "unknown spec key(s) choices"),
        (
            {"model": {"momentum": {"type": "float", "low": 0.1, "high": 0.9, "when": {"model.opt": "SGD"}}}},
            "not a parameter listed before it",
        ),
        ({"competition": {"cv": {"n_splits": {"type": "int", "low": 2, "high": 5}}}}, "fixed for a study"),
        ({}, "No search space"),
    ],
)
def test_invalid_spaces_are_refused_with_the_parameter_named(spec, message):
    with pytest.raises(PodiumError) as caught:
        parse_space(spec, "conf/tune/cnn.yaml")
    assert message in str(caught.value) and "conf/tune/cnn.yaml" in str(caught.value)


def test_values_become_hydra_overrides():
    assert [override_value(v) for v in (0.003, 5, True, None, "torch.optim.SGD", "[1,2]", "a b")] == [
        "0.003",
        "5",
        "true",
        "null",
        "torch.optim.SGD",
        "[1,2]",
        "'a b'",
    ]
    assert to_overrides({"model.dropout": 0.25, "augment": "none"}, groups=["augment", "model"]) == [
        "++model.dropout=0.25",
        "augment=none",
    ]


def test_tuned_file_round_trips_and_absent_or_empty_means_nothing(tmp_path):
    path = tmp_path / "competitions/animals/tuned/cnn.yaml"
    assert read_tuned(path) == {}
    write_tuned(path, {"model.optimizer.lr": 0.002, "augment": "none"}, "a header\nsecond line", {"value": 0.9})
    assert path.read_text().startswith("# a header\n# second line\n")
    assert read_tuned(path) == {"model.optimizer.lr": 0.002, "augment": "none"}
    path.write_text("overrides: {}\n")
    assert read_tuned(path) == {}
    path.write_text("overrides: [1, 2]\n")
    with pytest.raises(PodiumError, match="must map config keys to values"):
        read_tuned(path)
