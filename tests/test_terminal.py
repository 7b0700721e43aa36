"""The command line as a person meets it: help, progress bars on a terminal, quiet logs, `podium ui` and Ctrl-C."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import free_port, listening_addresses, wait_for_http

from pipeline.cli import COMMANDS, build_parser

PODIUM = [sys.executable, "-m", "pipeline"]
TRAIN = [
    "train",
    "trainer=smoke",
    "trainer.enable_progress_bar=true",
    "train.seeds=[0]",
    "tracking.uri=sqlite:///mlflow.db",
    "out_dir=runs/cnn",
]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_every_command_has_help_in_the_same_shape():
    parser = build_parser()
    listing = parser.format_help()
    for name, (help_text, _) in COMMANDS.items():
        assert name in listing and help_text[:40] in " ".join(listing.split())
    for name in ("prepare", "train", "tune", "ensemble", "submit", "score", "ui", "new"):
        assert name in COMMANDS
        result = subprocess.run([*PODIUM, name, "--help"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and result.stdout.startswith(f"usage: podium {name}"), result.stderr
        assert " ".join(COMMANDS[name][0].split()) in " ".join(result.stdout.split())


def run_on_terminal(command: list[str], cwd: Path, timeout: float = 300) -> tuple[int, str]:
    """Run `command` with a pseudo-terminal as stdin, stdout and stderr; its exit code and everything it drew."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        command, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env={**os.environ, "COLUMNS": "160"}
    )
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode(errors="replace")


def test_progress_bars_on_a_terminal_and_plain_log_lines_in_a_pipe(project):
    assert subprocess.run([*PODIUM, "prepare", "trainer=smoke"], cwd=project, capture_output=True).returncode == 0
    code, drawn = run_on_terminal([*PODIUM, *TRAIN], project)
    assert code == 0, drawn
    text = ANSI.sub("", drawn)
    for bar in ("cnn: folds", "cnn fold 0 epoch 1/1", "cnn fold 1 epoch 1/1", "cnn fold 0 predicting"):
        assert bar in text, f"{bar!r} not drawn"
    assert re.search(r"epoch 1/1 .*\d+/\d+.*loss \d\.\d{4}", text), "the epoch bar shows batches and the loss"
    assert "podium: cnn fold 1 (2 of 2): accuracy" in text and "CV (all OOF)" in text  # logs and results still there
    assert "podium: cnn fold 0 epoch" not in text, "on a terminal the bar says it: no epoch lines"

    piped = subprocess.run(
        [*PODIUM, *TRAIN[:-1], "trainer.max_epochs=2", "data.num_threads=1", "out_dir=runs/cnn2"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert piped.returncode == 0, piped.stderr
    assert "\x1b[" not in piped.stderr + piped.stdout
    # in a pipe: one line per epoch with its figures, its seconds and the fold's time left
    number = r"\d+\.\d{4}"
    first = rf"podium: cnn fold 0 epoch 1/2  loss {number}  val loss {number}  val accuracy {number}  \d+ s  \(fold: about \d+ s left\)"
    assert re.search(first, piped.stderr), piped.stderr
    assert re.search(rf"podium: cnn fold 1 epoch 2/2  loss {number} .* \d+ s$", piped.stderr, re.M), piped.stderr
    assert len(re.findall(r"epoch \d/2", piped.stderr)) == 4, "two folds of two epochs, a line each"
    # the thread count as torch reports it back once set
    assert re.search(r"podium: training on 1 CPU thread \(data\.num_threads; \d+ cores? available\)", piped.stderr)
    lines = piped.stderr.splitlines()
    assert lines and all(line.startswith("podium: ") for line in lines), (
        "only Podium's own log lines: no library warnings"
    )


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_ui_stops_cleanly_with_everything_it_started(project, stop):
    """Ctrl-C (or kill) stops `podium ui`: exit 0, the port free, no server process left behind."""
    port = free_port()
    podium = subprocess.Popen(
        [*PODIUM, "ui", "--port", str(port), "tracking.uri=sqlite:///mlflow.db"],
        cwd=project,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert wait_for_http(f"http://127.0.0.1:{port}/health", podium) == b"OK"
        assert session_members(podium.pid) - {podium.pid}, "the server runs beside podium"
        podium.send_signal(stop)  # Ctrl-C reaches podium only: the server has a process group of its own
        output = podium.communicate(timeout=60)[0]
    finally:
        if podium.poll() is None:
            os.killpg(podium.pid, signal.SIGKILL)
    assert podium.returncode == 0, output
    assert "Traceback" not in output and "stopping the MLflow UI" in output
    assert not listening_addresses(port)
    assert not session_members(podium.pid), "a server process outlived podium ui"


def session_members(session: int) -> set[int]:
    """Processes whose session id is `session` (the test started podium in a session of its own)."""
    members = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != "Z":  # fields after the name: state, ppid, pgrp, session
            members.add(int(stat.parent.name))
    return members
