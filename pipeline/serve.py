"""Run a web server (the MLflow UI, optuna-dashboard) in the foreground until Ctrl-C, then stop all of it.

The server runs in a process group of its own, so Ctrl-C reaches Podium only, and Podium stops
the whole group: the server and every worker it started. A server left behind keeps its port
and slows the machine down (shared/GUIDE.md, section 1).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence


def serve(command: Sequence[str], env: dict[str, str] | None = None, name: str = "server", grace_s: float = 15) -> int:
    """Run `command` until it exits or Podium is interrupted (Ctrl-C, SIGTERM); return its exit code (0 when stopped)."""
    server = subprocess.Popen(list(command), env=env, process_group=0)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the server as Ctrl-C does
    try:
        return server.wait()
    except KeyboardInterrupt:
        print(f"stopping the {name} ...", file=sys.stderr, flush=True)
        _stop_group(server, grace_s)
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if server.poll() is None:  # any other way out: never leave it running
            _stop_group(server, grace_s)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _stop_group(server: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM to the server's group, SIGKILL to what is left after `grace_s` seconds."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        return
    try:
        os.killpg(server.pid, signal.SIGKILL)  # workers that outlived their parent, or a slow shutdown
    except ProcessLookupError:
        pass
    server.wait()
