"""The study's plots as PNG files: optimization history, parameter importances, parallel coordinates."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from pipeline import io

log = logging.getLogger(__name__)

PLOTS = ("optimization_history", "param_importances", "parallel_coordinate")


def write_plots(study, folder: Path) -> list[Path]:
    """Write each plot the study's trials allow; say which it skipped and why."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as vis

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    for name in PLOTS:
        if name != "optimization_history" and len(complete) < 2:
            log.info("plot %s skipped: it needs two complete trials (the study has %d)", name, len(complete))
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna's matplotlib backend is flagged experimental
            try:
                axes = getattr(vis, f"plot_{name}")(study)
            except (ValueError, RuntimeError) as exc:  # e.g. importances when every trial took the same values
                log.info("plot %s skipped: %s", name, exc)
                continue
        figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
        figure.set_size_inches(10, 6)
        figure.tight_layout()
        path = folder / f"{name}.png"
        with io.atomic_path(path) as tmp:
            figure.savefig(tmp, dpi=100, format="png")
        plt.close(figure)
        written.append(path)
    return written
