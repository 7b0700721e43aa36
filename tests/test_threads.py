"""CPU threads (pipeline/training/threads.py): the cores a process may use, read from its cgroup and affinity."""

from __future__ import annotations

import os

import pytest

from pipeline.training.threads import available_cores, cgroup_quota

pytestmark = pytest.mark.fast


def test_a_cgroup_v2_quota_is_read_in_cores(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_quota(tmp_path) is None


def test_a_cgroup_v1_quota_is_read_in_cores(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu/cpu.cfs_quota_us").write_text("200000\n")
    (tmp_path / "cpu/cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_quota(tmp_path) == 2.0
    (tmp_path / "cpu/cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_quota(tmp_path) is None


def test_no_cgroup_file_means_no_quota(tmp_path):
    assert cgroup_quota(tmp_path) is None


def test_the_available_cores_are_this_processs_affinity_at_most():
    assert 1 <= available_cores() <= len(os.sched_getaffinity(0))
