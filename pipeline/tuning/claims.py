"""One worker at a time counts the study's trials and creates the next: a study never overshoots tune.n_trials.

Each worker decides to start a trial when the finished and running ones fall short of
`tune.n_trials`. Two workers deciding at the same moment would each start one, and a study of 4
would end with 5. The decision and the creation of the trial it leads to are therefore made under
an exclusive lock: taken before counting, released once the new trial is in the storage (the
objective's first act) or once the worker decides to stop. The lock file lies beside a SQLite or
journal storage (so workers on several machines sharing it over a network file system share the
lock too), and in the study's scratch folder for a database server (workers of one machine).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.tuning.storage import JOURNAL


def claim_lock_path(url: str, scratch: Path) -> Path:
    """Where the claim lock of the storage at `url` (a storage_url) lives."""
    for prefix in ("sqlite:///", JOURNAL):
        if url.startswith(prefix):
            return Path(url[len(prefix) :] + ".claims.lock")
    return scratch / "claims.lock"


class ClaimLock:
    """An exclusive advisory lock (fcntl.flock) that is taken and released at most once each way."""

    def __init__(self, path: Path):
        self.path, self.held, self._handle = path, False, None

    def acquire(self) -> None:
        import fcntl

        if self.held:
            return
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a")  # kept open for the worker's life
        fcntl.flock(self._handle, fcntl.LOCK_EX)
        self.held = True

    def release(self) -> None:
        import fcntl

        if self.held and self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self.held = False

    def close(self) -> None:
        self.release()
        if self._handle is not None:
            self._handle.close()
            self._handle = None
