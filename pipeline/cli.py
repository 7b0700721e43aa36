"""The `podium` command line: thin wrappers that compose the config and call one stage.

Every command takes Hydra overrides (key=value, group=option, +new.key=value, ~key, ...):
    podium train competition=animals model=cnn model.optimizer.lr=3e-4 trainer.max_epochs=2
Heavy libraries are imported inside the commands, so `podium --help` answers at once.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pipeline import __version__
from pipeline.errors import PodiumError

log = logging.getLogger("pipeline")


def _compose(args):
    from pipeline.config import compose

    return compose(args.overrides)


def cmd_prepare(args) -> None:
    from pipeline.data.profile import profile_text
    from pipeline.prepare import log_profile, prepare

    cfg = _compose(args)
    result = prepare(cfg)
    log_profile(cfg, result)
    print(profile_text(result.profile))
    if result.features is not None:
        from pipeline.report import table

        print(table(["feature", "type", "missing", "distinct"], result.features))
    print(
        f"prepared {result.n_train} training rows in {result.n_folds} folds and {result.n_test} test rows -> {result.folder}"
    )


def cmd_train(args) -> None:
    from pipeline.report import table
    from pipeline.training.train import train

    cfg = _compose(args)
    log.info("training %s on %s into %s", cfg.model.name, cfg.competition.name, cfg.out_dir)
    r = train(cfg)
    if r is None:  # a DDP process other than rank 0: rank 0 reports
        return
    rows = [[f"fold {k}", s, e] for k, (s, e) in enumerate(zip(r.fold_scores, r.best_epochs))]
    rows.append(["CV (all OOF)", r.cv_score, None])
    print(table(["", r.metric, "best epoch"], rows))
    print(f"{r.model}: CV {r.metric} {r.cv_score:.4f} in {r.seconds:.0f} s -> {r.out_dir}")


def cmd_tune(args) -> None:
    from pipeline.report import table
    from pipeline.tuning import tune

    r = tune(args.overrides, workers=args.workers)
    if r is None:  # a DDP process other than rank 0: rank 0 reports
        return
    c = r.counts
    running = f", {c['running']} running" if c["running"] else ""
    print(
        f"study {r.study} ({r.storage}): {c['complete']} complete, {c['pruned']} pruned, {c['fail']} failed{running} "
        f"in {r.seconds:.0f} s"
    )
    print(table(*r.top))
    print(
        f"best {r.metric} {r.best_value:.4f} (trial {r.best_trial})"
        + (f" -> {r.tuned_file} (training applies it; train.tuned=false ignores it)" if r.tuned_file else "")
    )
    print(f"trials.csv and plots -> {r.out_dir}")


def cmd_ensemble(args) -> None:
    from pipeline.ensemble import ensemble
    from pipeline.report import board_table, table

    cfg = _compose(args)
    r = ensemble(cfg)
    rows = [[s.method, s.in_sample, s.nested, "chosen" if s.method == r.method else ""] for s in r.methods]
    print(table(["method", "CV in-sample", "CV nested", "chosen"], rows))
    print()
    print(board_table(r.board, cfg.competition.metric))
    print(f"ensemble: {r.method}, nested CV {r.cv_score:.4f} -> {r.out_dir}")


def cmd_submit(args) -> None:
    from pipeline.report import board_table
    from pipeline.submit import submit

    cfg = _compose(args)
    r = submit(cfg)
    print(board_table(r.board, cfg.competition.metric))
    lb = f", local leaderboard {r.leaderboard_score:.4f}" if r.leaderboard_score is not None else ""
    cv = f"CV {r.cv_score:.4f}" if r.cv_score is not None else "CV unknown"
    print(f"valid submission, {r.rows} rows -> {r.path} ({cv}{lb})")


def cmd_predict(args) -> None:
    from pipeline import io
    from pipeline.data.raw import load_test
    from pipeline.inference.predict import image_folder, predict_file, print_report

    cfg = _compose(args)
    comp, root = cfg.competition, io.root(cfg)
    images = image_folder(args, comp)
    out = args.out or root / cfg.paths.submissions / comp.name / "predictions.csv"
    test = load_test(args.test, comp, images)  # the rows are checked before the ensemble is even looked for
    result = predict_file(root / cfg.paths.outputs / comp.name / "ensemble", root, args.test, images, out, test=test)
    print_report(result, args.expect_rows, args.budget_minutes)


def cmd_bundle(args) -> None:
    from pipeline import io
    from pipeline.inference.bundle import make_bundle

    cfg = _compose(args)
    out = args.out or io.root(cfg) / "bundles" / cfg.competition.name
    r = make_bundle(cfg, out, wheels=args.wheels)
    print(f"bundle of {cfg.competition.name}: {r.files} files, {r.bytes / 1e6:.1f} MB -> {r.folder}")
    print(f"manifest.json SHA-256 {r.manifest_sha256} (compare it where the bundle runs)")
    print(f"offline: python {r.folder}/predict.py --test test.csv --out submission.csv")


def cmd_score(args) -> None:
    from pipeline.submit import score_file

    cfg = _compose(args)
    for name, score in score_file(cfg, args.submission, args.solution).items():  # the metric first
        print(f"{name}: {score:.5f}")


def cmd_new(args) -> None:
    from pipeline.config.compose import find_root
    from pipeline.scaffold import new_competition

    root = find_root()
    made = new_competition(root, args.name, args.modality, args.task)
    print(f"new {args.task} {args.modality} competition {made.name}:")
    for path in made.written:
        print(f"  {path.relative_to(root)}")
    if made.proposed:
        print(f"read from data/{made.name}/raw/ (check them):")
        for key, value in made.proposed.items():
            print(f"  {key}: {value}")
    print(
        f"next: fill in the ??? keys of conf/competition/{made.name}.yaml, put Kaggle's files in data/{made.name}/raw/, "
        f"check with `podium config competition={made.name}`, run `dvc repro competitions/{made.name}/dvc.yaml` "
        f"(after editing `models:`, `podium pipeline render`)."
    )


def cmd_pipeline(args) -> None:
    from pipeline import io
    from pipeline.config.compose import find_root
    from pipeline.dvc_files import rendered, stale

    root = find_root()
    if args.action == "check":
        old = stale(root)
        if old:
            raise PodiumError(
                f"Pipeline file(s) not as the config renders them: {', '.join(str(p.relative_to(root)) for p in old)} "
                f"(a model, seed or override changed in conf/, or the file was edited by hand). Run "
                f"`podium pipeline render` to write them from the config."
            )
        print("every pipeline file is as the config renders it")
        return
    for path, text in rendered(root).items():
        if not path.is_file() or path.read_text() != text:
            io.write_text(path, text)
            print(f"rendered {path.relative_to(root)}")


def cmd_config(args) -> None:
    from omegaconf import OmegaConf

    from pipeline.io import portable_config

    cfg = _compose(args)
    said = []
    if args.estimate:  # the model's auto keys resolved and the training time estimated, from the prepared data
        from pipeline.training.estimate import estimate_config

        said = estimate_config(cfg)
    shown = OmegaConf.to_container(portable_config(cfg))
    # Only what this competition's modality reads: a text competition has no images to augment.
    unread = {"text": (("augment",), ("tta",), ("competition", "image")), "image": (("competition", "text"),)}
    for path in unread.get(shown["competition"]["modality"], ()):
        parent = shown
        for key in path[:-1]:
            parent = parent[key]
        parent.pop(path[-1], None)
    print(OmegaConf.to_yaml(OmegaConf.create(shown)), end="")
    for line in said:  # as comments: the output stays a config file
        print(f"# {line}")


def cmd_leaderboard(args) -> None:
    from pipeline import io
    from pipeline.leaderboard import HEADERS, bundle_lines, leaderboard_rows, markdown
    from pipeline.report import table

    cfg = _compose(args)
    rows = leaderboard_rows(io.root(cfg) / cfg.paths.outputs, io.root(cfg))
    if not rows:
        raise PodiumError(f"No results under {io.root(cfg) / cfg.paths.outputs}: run the pipeline first (dvc repro).")
    bundles = bundle_lines(io.root(cfg))
    print(table(HEADERS, rows))
    for line in bundles:
        print(line)
    if args.out:
        io.write_text(args.out, markdown(HEADERS, rows) + "".join(f"\n{line}\n" for line in bundles))


def cmd_ui(args) -> None:
    import os

    from pipeline.serve import serve
    from pipeline.tracking import tracking_uri

    cfg = _compose(args)
    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no job runner: starts in seconds
        "PYTHONWARNINGS": "ignore:starlette.middleware.wsgi is deprecated",
    }  # MLflow 3.17 imports it; not ours to fix
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--workers",
        "1",
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--backend-store-uri",
        tracking_uri(cfg),
    ]
    base = f"http://{args.host}:{args.port}"
    print(f"MLflow UI on {base} (Ctrl-C stops it)", flush=True)
    for name, link in _experiment_links(tracking_uri(cfg), base):
        print(f"  {name}: {link}", flush=True)
    _server_exit(serve(command, env, "MLflow UI"), "the MLflow UI")


def cmd_dashboard(args) -> None:
    from pipeline.secrets import redact
    from pipeline.serve import serve
    from pipeline.tuning.storage import storage_url

    cfg = _compose(args)
    url = storage_url(cfg)
    if url.startswith("journal:///"):  # optuna-dashboard reads a journal file by its path
        url = url[len("journal:///") :]
    print(f"optuna-dashboard on http://{args.host}:{args.port} over {redact(url)} (Ctrl-C stops it)", flush=True)
    # the console script installed beside this interpreter (a dependency of Podium)
    command = [
        str(Path(sys.executable).with_name("optuna-dashboard")),
        url,
        "--host",
        args.host,
        "--port",
        str(args.port),
    ]
    _server_exit(serve(command, name="dashboard"), "optuna-dashboard")


def _experiment_links(uri: str, base: str) -> list[tuple[str, str]]:
    """Each experiment's runs page, in the UI's "Model training" view (MLflow 3 opens on its GenAI view)."""
    from mlflow.tracking import MlflowClient

    experiments = MlflowClient(uri).search_experiments()
    return [
        (e.name, f"{base}/#/experiments/{e.experiment_id}/runs?workflowType=machine_learning")
        for e in experiments
        if e.name != "Default"
    ]


def _server_exit(code: int, name: str) -> None:
    if code != 0:
        raise PodiumError(
            f"{name} stopped with exit code {code} (its messages are above). If the port is taken, "
            f"pick another with --port."
        )


COMMANDS = {  # name -> (one-line help, handler)
    "prepare": ("validate the raw files, assign folds, decode images", cmd_prepare),
    "train": ("K-fold training of one model: out-of-fold and test predictions, CV score", cmd_train),
    "tune": (
        "Optuna sweep of a model's search space (conf/tune/); training then applies the best parameters",
        cmd_tune,
    ),
    "ensemble": (
        "blend trained models (mean, rank, weighted, hill climbing, stacking), chosen by a nested CV estimate",
        cmd_ensemble,
    ),
    "submit": ("write the submission from the ensemble, validate it, score it locally", cmd_submit),
    "predict": (
        "run the ensemble on new rows (a test file with any ids) and write a validated submission",
        cmd_predict,
    ),
    "bundle": ("the ensemble as a self-contained folder with predict.py, for an offline notebook", cmd_bundle),
    "score": ("validate and score any submission file against a solution file", cmd_score),
    "leaderboard": ("every competition's models, ensemble and local leaderboard score in one table", cmd_leaderboard),
    "config": ("print the composed, validated config (nothing runs)", cmd_config),
    "new": ("scaffold a competition: a commented config, its DVC pipeline and the data/<name>/raw/ layout", cmd_new),
    "pipeline": (
        "render the DVC pipeline files from the config (render), or say whether they are current (check)",
        cmd_pipeline,
    ),
    "ui": ("open the MLflow UI on the project's runs (127.0.0.1)", cmd_ui),
    "dashboard": ("open optuna-dashboard on the project's studies (tune.storage, 127.0.0.1)", cmd_dashboard),
}


def add_predict_arguments(parser: argparse.ArgumentParser, out_help: str) -> None:
    """The options of `podium predict` and of a bundle's predict.py."""
    parser.add_argument("--test", type=Path, required=True, help="the rows to predict: a CSV like test.csv")
    parser.add_argument("--images", type=Path, help="their image folder (default: images/ beside the test file)")
    parser.add_argument("--out", type=Path, help=out_help)
    parser.add_argument("--expect-rows", type=int, metavar="N", help="estimate the time for N rows (a hidden test set)")
    parser.add_argument(
        "--budget-minutes", type=float, default=540, metavar="M", help="the time limit (default: Kaggle's 9 hours)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="podium",
        description="Run a machine-learning competition from raw files to a validated submission.",
        epilog="Each command takes Hydra overrides, e.g. `podium train model=cnn trainer.max_epochs=2`. "
        "`dvc repro` runs the whole pipeline.",
    )
    parser.add_argument("--version", action="version", version=f"podium {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and results")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of any error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, handler) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == "new":
            p.add_argument("name", help="the competition's name: lower-case letters, digits, '-' and '_'")
            p.add_argument("--modality", choices=["image", "text", "tabular"], default="image", help="default: image")
            p.add_argument(
                "--task",
                choices=["binary", "multiclass", "regression"],
                default="multiclass",
                help="default: multiclass",
            )
            p.set_defaults(func=handler)
            continue
        if name == "pipeline":
            p.add_argument("action", choices=["render", "check"], help="render: write the files; check: compare")
            p.set_defaults(func=handler)
            continue
        p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="Hydra overrides of conf/config.yaml")
        if name == "score":
            p.add_argument("--submission", type=Path, required=True, help="the submission CSV to score")
            p.add_argument(
                "--solution", type=Path, help="the solution CSV (default: the competition's private solution)"
            )
        if name == "predict":
            add_predict_arguments(p, "the submission to write (default: submissions/<name>/predictions.csv)")
        if name == "bundle":
            p.add_argument("--out", type=Path, help="the folder to write (default: bundles/<name>)")
            p.add_argument("--wheels", action="store_true", help="add a wheelhouse of the pinned packages (pip wheel)")
        if name == "config":
            p.add_argument(
                "--estimate",
                action="store_true",
                help="resolve the model's auto keys from the prepared data and print the training time expected "
                "(a few timed batches; train.budget_minutes applies)",
            )
        if name == "leaderboard":
            p.add_argument("--out", type=Path, help="also write the table as Markdown to this file")
        if name == "tune":
            p.add_argument(
                "--workers", type=int, metavar="N", help="worker processes sharing the study (tune.n_workers)"
            )
        if name in ("ui", "dashboard"):
            p.add_argument("--port", type=int, default=5000 if name == "ui" else 8080)
            p.add_argument(
                "--host",
                default="127.0.0.1",
                help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network)",
            )
        p.set_defaults(func=handler)
    return parser


LONG_WORK = {
    "prepare",
    "train",
    "tune",
    "ensemble",
    "submit",
    "predict",
}  # commands that draw progress bars on a terminal


def main(argv: list[str] | None = None) -> int:
    from pipeline import progress
    from pipeline.training.distributed import secondary_process

    args = build_parser().parse_args(argv)
    # The handler writes to the current sys.stderr, so log lines land above the progress bars.
    logging.basicConfig(level=logging.WARNING, format="podium: %(message)s", handlers=[progress.log_handler()])
    for handler in logging.getLogger().handlers:
        handler.addFilter(_redact_record)
    # The other processes of a DDP run share the terminal: rank 0 alone logs and draws.
    quiet = args.quiet or secondary_process()
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    try:
        with progress.display(enabled=args.command in LONG_WORK and not quiet):
            args.func(args)
    except PodiumError as exc:
        _report(args, f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        _report(
            args,
            "interrupted. Files already written are complete, and training keeps its finished folds and "
            "the last epoch's checkpoint: rerun the same command (or `dvc repro`) to resume.",
        )
        return 130
    except Exception as exc:  # a bug, not bad input: say so, and where to find the details
        _report(
            args,
            f"unexpected error: {type(exc).__name__}: {exc}\nThis is a bug in Podium or a library it uses, "
            f"not a problem with your input. Rerun with --debug for the traceback and report it.",
        )
        return 1
    return 0


def _report(args, message: str) -> None:
    """One paragraph on stderr, secrets masked; with --debug, the traceback first."""
    from pipeline.secrets import redact

    if args.debug:
        import traceback

        traceback.print_exc()
    print(redact(f"podium {args.command}: {message}"), file=sys.stderr)


def _redact_record(record: logging.LogRecord) -> bool:
    from pipeline.secrets import redact

    record.msg, record.args = redact(record.getMessage()), None
    return True
