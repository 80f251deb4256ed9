"""torch's thread count follows the cores other processes leave free, never above what was asked."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from talk_cli import threads

READ_THE_RUN_QUEUE = threads.running_elsewhere  # conftest's fixture replaces it in every test: here, the real one


def test_threads_follow_the_free_cores_and_never_exceed_the_ceiling():
    assert threads.threads_for(2, 2, 0) == 2
    assert threads.threads_for(2, 2, 1) == 1
    assert threads.threads_for(2, 2, 5) == 1  # never below one
    assert threads.threads_for(1, 8, 0) == 1  # --threads is a ceiling
    assert threads.threads_for(4, 8, None) == 4  # no /proc to read: as asked


def test_the_policy_sets_torch_and_rechecks_at_most_once_a_second(monkeypatch):
    readings = iter([0, 1, 0])
    clock = iter([0.0, 0.1, 0.5, 0.6])  # seconds, as time.monotonic gives them: no test waits on the real clock
    monkeypatch.setattr(threads, "running_elsewhere", lambda: next(readings))
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(threads.time, "monotonic", lambda: next(clock))
    policy = threads.ThreadPolicy(2)
    assert torch.get_num_threads() == 2
    assert policy.adapt(force=True) == 1  # another process took a core
    assert policy.adapt() == 1  # within the second: not read again (the reading would say 0)
    assert policy.adapt(force=True) == 2


def test_a_busy_process_is_seen_as_running_elsewhere():
    if READ_THE_RUN_QUEUE() is None:
        pytest.skip("no /proc/loadavg here: the policy keeps the ceiling (the first test)")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        seen = max(READ_THE_RUN_QUEUE() for _ in range(20))
    finally:
        busy.kill()
        busy.wait()
    assert seen >= 1
