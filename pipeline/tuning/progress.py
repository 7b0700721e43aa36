"""What a sweep prints: a line per finished trial, and the study's summary tables."""

from __future__ import annotations

import logging
from typing import Any

from pipeline.progress import advance

log = logging.getLogger("pipeline.tuning")


def short(params: dict[str, Any]) -> str:
    """`lr=0.0031 width=32`: the last part of each key, numbers to 3 significant digits."""
    return " ".join(
        f"{k.rsplit('.', 1)[-1]}={v:.3g}" if isinstance(v, float) else f"{k.rsplit('.', 1)[-1]}={v}"
        for k, v in params.items()
    )


def report_trial(metric: str):
    """An Optuna callback logging each finished trial in one line."""

    def report(study, trial) -> None:
        advance("trials")  # the sweep's progress bar, when one is drawn
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        retry = trial.system_attrs.get("failed_trial")
        again = f" (retry of killed trial {retry})" if retry is not None else ""
        state = trial.state.name
        if state == "COMPLETE":
            best = " (best so far)" if study.best_trial.number == trial.number else ""
            log.info(
                "trial %d%s: %s %.4f in %.0f s%s  %s",
                trial.number,
                again,
                metric,
                trial.value,
                seconds,
                best,
                short(trial.params),
            )
        elif state == "PRUNED":
            step = max(trial.intermediate_values) if trial.intermediate_values else -1
            value = trial.intermediate_values.get(step, float("nan"))
            log.info(
                "trial %d%s: pruned after %d epochs (val %s %.4f) in %.0f s  %s",
                trial.number,
                again,
                step + 1,
                metric,
                value,
                seconds,
                short(trial.params),
            )
        else:
            log.warning(
                "trial %d%s failed: %s  %s",
                trial.number,
                again,
                trial.user_attrs.get("fail_reason", "no reason recorded"),
                short(trial.params),
            )

    return report


def counts(study) -> dict[str, int]:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    return {
        state.name.lower(): sum(t.state == state for t in trials)
        for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING)
    }


def top_trials(study, n: int = 5) -> tuple[list[str], list[list[Any]]]:
    """The best `n` complete trials as a table: rank, trial, value, epochs, seconds, parameters."""
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    done.sort(key=lambda t: t.value, reverse=study.direction.name == "MAXIMIZE")
    keys = list(dict.fromkeys(k for t in done[:n] for k in t.params))
    headers = ["rank", "trial", "value", "epochs", "s", *(k.rsplit(".", 1)[-1] for k in keys)]
    rows = [
        [
            i + 1,
            t.number,
            t.value,
            len(t.intermediate_values) or "-",
            round(t.duration.total_seconds()),
            *(t.params.get(k) for k in keys),
        ]
        for i, t in enumerate(done[:n])
    ]
    return headers, rows
