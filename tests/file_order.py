"""The order test files go to the pytest-xdist workers: the longest first, so no worker runs a long file alone
at the end while the others idle (longest-processing-time-first scheduling).

A file's length is its seconds in tests/durations.json (setup, call and teardown of its tests, measured in
a whole `make test` on the 2-core machine, where each worker has one core), else a guess from its tiers.
`make test-durations` measures them again; a stale figure only makes the order a little worse.
The Makefile passes `--no-loadscope-reorder`: pytest-xdist would otherwise hand out the files with the
most tests first, which started test_pipeline.py (few tests, the longest file) near the end.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

DURATIONS = Path(__file__).with_name("durations.json")
GUESS = {"fast": 1.0, "integration": 10.0, "slow": 60.0}  # seconds per test of a file not yet measured


def file_seconds(tiers_of_tests: dict[str, list[str]]) -> dict[str, float]:
    """Each file's expected seconds: measured where tests/durations.json has it, else guessed from its tiers."""
    measured = json.loads(DURATIONS.read_text()) if DURATIONS.is_file() else {}
    return {path: measured.get(path, sum(GUESS[tier] for tier in tiers)) for path, tiers in tiers_of_tests.items()}


class DurationRecorder:
    """Sums each file's test durations as reports arrive (on the xdist controller: every worker's), and writes
    them into tests/durations.json at the end of a run that passed (the files it ran; the others keep theirs)."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()

    def pytest_runtest_logreport(self, report) -> None:
        self.seconds[report.nodeid.split("::", 1)[0]] += report.duration

    def pytest_sessionfinish(self, session, exitstatus) -> None:
        if exitstatus == 0 and not hasattr(session.config, "workerinput"):
            known = json.loads(DURATIONS.read_text()) if DURATIONS.is_file() else {}
            merged = {**known, **{path: round(s, 1) for path, s in self.seconds.items()}}
            ordered = dict(sorted(merged.items(), key=lambda kv: -kv[1]))
            DURATIONS.write_text(json.dumps(ordered, indent=1) + "\n")
