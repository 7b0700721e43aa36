"""The pipeline files, rendered from config: every `competitions/<name>/dvc.yaml` and the root `dvc.yaml`.

One definition of the stages (prepare -> train@<model> -> ensemble -> submit -> bundle, and the leaderboard
over all competitions) that `podium new` and `podium pipeline render | check` share; the demos'
files are its output. A competition's file follows its YAML (`models:`, `seeds:`, `overrides:`,
modality and task) and each model's YAML (its family, and for the user's own network the module
file that `net._target_` names, a dependency of that model's stage alone).

The inputs are read as YAML, not composed, so a new competition's file with `???` keys renders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.data.reads import data_keys
from pipeline.errors import PodiumError
from pipeline.training import reads

HEADER = """\
# The {name} pipeline, rendered by `podium pipeline render` from
# conf/competition/{name}.yaml and the model files it lists: edit those, then render again
# (`podium pipeline check` says whether this file is current). `dvc repro` at the root runs it.
#   prepare (validate, folds{decoded}) -> train@<model> (K-fold: OOF + test predictions)
#   -> ensemble -> submit (validated submission, local leaderboard score) -> bundle (offline predict.py)
# Stages call the `podium` command line from the project root (wdir); each saves the resolved
# config it used beside its outputs. Paths in `vars` and `plots` are relative to this file.
vars:
  - ../../params.yaml:trainer,launcher   # the trainer preset of every stage, and what starts training

stages:
"""

ROOT = """\
# `dvc repro` runs every competition's pipeline (competitions/<name>/dvc.yaml), only what
# changed, then this summary of all of them. Rendered by `podium pipeline render` (one pair of
# deps per competition of conf/competition/ whose raw files are in place); `podium new` renders it too.
# One competition alone: `dvc repro competitions/animals/dvc.yaml:submit`.
stages:
  leaderboard:
    cmd: podium leaderboard --out outputs/leaderboard.md
    deps:
{deps}    outs:
      - outputs/leaderboard.md:
          cache: false
"""


def _prepare_data_keys(modality: str) -> str:
    """The keys of conf/config.yaml's `data:` that shape the prepared data (pipeline/data/reads.py)."""
    return "".join(f"          - {f'data.{key}':<32} # {why}\n" for key, why in data_keys(modality).items())


@dataclass(frozen=True)
class Model:
    name: str
    family: str
    code: tuple[str, ...]  # the files holding its code: the user's modules, else the family's module (from the root)
    curves: bool  # trained by epochs: learning curves and curves.csv


def render_competition(root: Path, name: str, comp: dict | None = None) -> str:
    """The text of competitions/<name>/dvc.yaml, from conf/competition/<name>.yaml (or `comp`, its content)."""
    comp = comp if comp is not None else _read_yaml(root / "conf" / "competition" / f"{name}.yaml")
    modality, task = comp.get("modality", "image"), comp.get("task")
    models = [_model(root, m) for m in comp.get("models") or []]
    if not models:
        raise PodiumError(
            f"conf/competition/{name}.yaml lists no models (`models:`): its pipeline would train nothing. "
            f"List the models to train and ensemble, e.g. models: [cnn]."
        )
    demo = (root / "competitions" / name / "build.py").is_file()
    out = f"outputs/{name}"
    text = HEADER.format(name=name, decoded=", decoded images" if modality == "image" else "")
    if demo:
        text += f"""\
  data:
    # Demo only: builds Kaggle-style raw files from a package's data. A real competition puts its
    # downloaded files in data/{name}/raw/ instead (and may `dvc add` them).
    wdir: ../..
    cmd: python competitions/{name}/build.py --out data/{name}
    deps:
      - competitions/{name}/build.py
    outs:
      - data/{name}/raw
      - data/{name}/private

"""
    text += f"""\
  prepare:
    wdir: ../..
    cmd: podium prepare competition={name} trainer=${{trainer}}
    deps:
      - data/{name}/raw
      - pipeline/prepare.py
      - pipeline/data
    params:
      - conf/competition/{name}.yaml:
      - conf/trainer/${{trainer}}.yaml:
      - conf/config.yaml:
{_prepare_data_keys(modality)}    outs:
      - {out}/prepared

  train:
    foreach:                        # one stage per model of `models:`, with the file holding its code
{_code_items(models)}    do:
      wdir: ../..
      cmd: >-
        ${{launcher}} podium train competition={name} model=${{key}} trainer=${{trainer}}
        out_dir={out}/models/${{key}}
      deps:
        - {out}/prepared
        - ${{item.code}}                # the model's own code (your competitions/{name}/models.py)
{"".join(f"        - ${{item.code_{k}}}{chr(10)}" for k in range(2, _code_slots(models) + 1))}        - pipeline/training
        - pipeline/models
        - pipeline/data/prepared.py   # how the prepared data are read
{"        - pipeline/data/tabular.py    # how the feature tables are typed" + chr(10) if modality == "tabular" else ""}        - pipeline/plots.py           # draws the outputs' plots/
        - pipeline/metrics.py         # the fold scores and the CV
        - pipeline/predictions.py     # the prediction files' columns and order
        - pipeline/config             # how the config is composed and checked
      params:
        - conf/model/${{key}}.yaml:
        - competitions/{name}/tuned/${{key}}.yaml:   # best parameters from `podium tune` (applied by default)
            - overrides
        - conf/competition/{name}.yaml:   # what training reads beyond the prepared data
{_keys(comp, reads.competition_keys(comp), 12)}{_training_groups(root, comp, modality)}\
        - conf/config.yaml:           # what training reads; not `tune:` (sweep settings) nor `ensemble:`
{"".join(f"            - {k}{chr(10)}" for k in ("defaults", *reads.ROOT_SECTIONS))}"""
    text += f"""\
      outs:
        - {out}/models/${{key}}/seeds   # each seed's predictions (one folder per seed)
        - {out}/models/${{key}}/oof.parquet
        - {out}/models/${{key}}/test.parquet
        - {out}/models/${{key}}/history.csv
        - {out}/models/${{key}}/config.yaml
        - {out}/models/${{key}}/fitted  # every fold's fitted model: `podium predict`, `podium bundle`
        - {out}/models/${{key}}/plots:    # PNGs (also in MLflow) and curves.csv; `dvc plots show`
            cache: false
      metrics:
        - {out}/models/${{key}}/metrics.json:
            cache: false

  ensemble:
    wdir: ../..
    cmd: podium ensemble competition={name} trainer=${{trainer}} out_dir={out}/ensemble
    deps:
      - {out}/models
      - pipeline/ensemble
      - pipeline/plots.py
    params:
      - conf/ensemble/{_choice(root, comp, "ensemble")}.yaml:
      - conf/competition/{name}.yaml:
{_keys(comp, ["models", "overrides"], 10)}    outs:
      - {out}/ensemble/oof.parquet
      - {out}/ensemble/test.parquet
      - {out}/ensemble/config.yaml
      - {out}/ensemble/blend      # the fitted blend: `podium predict`, `podium bundle`
      - {out}/ensemble/plots:    # member correlation and weights (also in MLflow)
          cache: false
    metrics:
      - {out}/ensemble/metrics.json:
          cache: false

  submit:
    wdir: ../..
    cmd: podium submit competition={name} trainer=${{trainer}} out_dir={out}/submission
    deps:
      - {out}/ensemble/test.parquet
      - {out}/models         # each member's local leaderboard score is reported beside its CV
      - data/{name}/raw          # the sample submission gives ids, order and columns
{f"      - data/{name}/private      # the held-out labels of the local leaderboard{chr(10)}" if demo or (root / "data" / name / "private").is_dir() else ""}\
      - pipeline/submit.py
      - pipeline/submission.py
      - pipeline/data/target.py   # a transformed target back in the competition's units
    outs:
      - submissions/{name}/submission.csv
      - {out}/submission/config.yaml
    metrics:
      - {out}/submission/metrics.json:
          cache: false

  bundle:                    # the ensemble for an offline notebook: bundles/{name}/predict.py
    wdir: ../..
    cmd: podium bundle competition={name} --out bundles/{name}
    deps:
      - {out}/ensemble/blend
      - {out}/ensemble/config.yaml
{"".join(f"      - {out}/models/{m.name}/fitted{chr(10)}      - {out}/models/{m.name}/config.yaml{chr(10)}" for m in models)}\
      - pipeline               # the bundle carries Podium's own code
    outs:
      - bundles/{name}

"""
    return text + _plots(name, models, task)


def _choice(root: Path, comp: dict, group: str) -> str:
    """The option of config group `group` a competition's commands use: its `overrides:`, else conf/config.yaml's."""
    for override in comp.get("overrides") or []:
        key, _, value = str(override).partition("=")
        if key.lstrip("+~") == group:
            return value
    for entry in _read_yaml(root / "conf" / "config.yaml").get("defaults", []):
        if isinstance(entry, dict) and group in entry:
            return str(entry[group])
    raise PodiumError(f"conf/config.yaml's defaults list has no {group}: option; add one (e.g. {group}: none).")


def _training_groups(root: Path, comp: dict, modality: str) -> str:
    """The option files of the config groups a training reads (pipeline/training/reads.py), as DVC params."""
    files = {
        "model": "conf/model/${key}.yaml:",
        "trainer": "conf/trainer/${trainer}.yaml:",
        **{g: f"conf/{g}/{_choice(root, comp, g)}.yaml:" for g in reads.IMAGE_ONLY_GROUPS},
    }
    return "".join(f"        - {files[g]}\n" for g in reads.groups(modality) if g != "model")


def _keys(comp: dict, keys: list[str], indent: int) -> str:
    """DVC params of the competition file: those of `keys` it sets (DVC refuses a key the file lacks)."""
    return "".join(f"{' ' * indent}- {k}\n" for k in keys if comp.get(k) not in (None, [], {}))


def _plots(name: str, models: list[Model], task: str | None) -> str:
    where = f"../../outputs/{name}"
    lines = [
        "# `dvc plots show` (or `dvc plots diff main`) renders these into dvc_plots/index.html.",
        "plots:",
    ]
    curves = [m for m in models if m.curves]
    if curves:
        lines += ["  - validation score per epoch (mean over folds and seeds):", "      x: epoch", "      y:"]
        lines += [f"        {where}/models/{m.name}/plots/curves.csv: val_score" for m in curves]
    per_model = ["confusion_matrix", "class_scores"] if task != "regression" else ["residuals"]
    for m in models:
        lines += [f"  - {where}/models/{m.name}/plots/{p}.png" for p in (["learning_curves"] if m.curves else [])]
        lines += [f"  - {where}/models/{m.name}/plots/{p}.png" for p in per_model]
    lines += [f"  - {where}/ensemble/plots/member_correlation.png", f"  - {where}/ensemble/plots/weights.png"]
    return "\n".join(lines) + "\n"


def render_root(root: Path, new: str | None = None, new_config: dict | None = None) -> str:
    """The root dvc.yaml: the leaderboard over every competition of conf/competition/ (and `new`) whose raw
    files are in place (or that builds them): a plain `dvc repro` never runs a competition still being set up."""
    names = sorted(
        n
        for n in set(competitions(root)) | ({new} if new else set())
        if _has_data(root, n, new_config if n == new else None)
    )
    deps = "".join(
        f"      - outputs/{n}/submission/metrics.json\n      - outputs/{n}/ensemble/metrics.json\n"
        f"      - bundles/{n}    # its size is listed; and so `dvc repro` keeps every bundle current\n"
        for n in names
    )
    return ROOT.format(deps=deps)


def rendered(root: Path, names: list[str] | None = None) -> dict[Path, str]:
    """Every pipeline file and its rendered text: each competition's (of conf/competition/, or `names`), the root's."""
    from pipeline.scaffold import TUNED

    names = names or competitions(root)
    files = {root / "competitions" / n / "dvc.yaml": render_competition(root, n) for n in names}
    for name in names:  # each train stage reads its model's tuned file: an empty one until `podium tune`
        for model in _read_yaml(root / "conf" / "competition" / f"{name}.yaml").get("models") or []:
            tuned = root / "competitions" / name / "tuned" / f"{model}.yaml"
            if not tuned.is_file():
                files[tuned] = TUNED.format(model=model, name=name)
    files[root / "dvc.yaml"] = render_root(root)
    return files


def _has_data(root: Path, name: str, comp: dict | None = None) -> bool:
    if (root / "competitions" / name / "build.py").is_file():
        return True
    comp = comp if comp is not None else _read_yaml(root / "conf" / "competition" / f"{name}.yaml")
    return (root / "data" / name / "raw" / ((comp.get("files") or {}).get("train") or "train.csv")).is_file()


def competitions(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / "conf" / "competition").glob("*.yaml"))


def stale(root: Path) -> list[Path]:
    """The pipeline files whose text is not their render (edited by hand, or config changed since), and the
    tuned files they read that are missing."""
    return [p for p, text in rendered(root).items() if not p.is_file() or p.read_text() != text]


def _model(root: Path, name: str) -> Model:
    from pipeline.models import BUILT_IN, family
    from pipeline.models.targets import project_files

    path = root / "conf" / "model" / f"{name}.yaml"
    if not path.is_file():
        raise PodiumError(
            f"Model {name!r} of `models:` has no file conf/model/{name}.yaml. Fix the name in `models:` "
            f"or add the model's YAML."
        )
    content = _model_content(path)
    family_name = content.get("family")
    record = BUILT_IN.get(family_name) or family(family_name)
    own = project_files(content, root)  # the user's modules its net, estimator or loss name
    if own:
        code = tuple(str(f) for f in own)
    else:  # Podium's own family, or a package's: its module (pipeline/ lies in the project)
        module = record.module.replace(".", "/") + ".py"
        code = (module if record.module.startswith("pipeline.") else path_of(path, root),)
    return Model(name, family_name, code, curves=record.kind == "network")


def _code_slots(models: list[Model]) -> int:
    return max(len(m.code) for m in models)


def _code_items(models: list[Model]) -> str:
    """The foreach items: each model's code files as `code`, `code_2`, ... A foreach item cannot hand a
    list to `deps`, so every model gets as many keys as the model with the most files, a shorter list
    repeating its last file (DVC takes a repeated dependency once)."""
    slots, text = _code_slots(models), ""
    for m in models:
        files = [*m.code, *[m.code[-1]] * (slots - len(m.code))]
        text += f"      {m.name}:\n" + "".join(
            f"        {'code' if k == 0 else f'code_{k + 1}'}: {f}\n" for k, f in enumerate(files)
        )
    return text


def path_of(path: Path, root: Path) -> str:
    return str(path.relative_to(root))


def _model_content(path: Path) -> dict:
    """A model file's keys, with those of the files its defaults list names (`- transformer`) beneath them."""
    content = _read_yaml(path)
    merged: dict = {}
    for parent in content.get("defaults", []) or []:
        if isinstance(parent, str) and parent != "_self_":
            merged.update(_model_content(path.with_name(f"{parent}.yaml")))
    return {**merged, **{k: v for k, v in content.items() if k != "defaults"}}


def _read_yaml(path: Path) -> dict:
    import yaml

    from pipeline.config.files import yaml_message

    try:
        return yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise PodiumError(f"{path} does not exist: no config to render the pipeline from.") from None
    except yaml.MarkedYAMLError as exc:
        raise PodiumError(yaml_message(exc, path.parents[2])) from None
