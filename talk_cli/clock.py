"""Seconds per named phase of a run, so that a user (and benchmarks/cost.py) can see where the
time of a distillation goes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from talk_cli import threads


class PhaseClock:
    """Adds up wall seconds per phase over every time the phase runs. Phases may nest: each second
    is charged to the innermost phase running, so the phases add up to the run. On CUDA it waits for
    the GPU at each boundary, so a phase is charged with its own kernels, not with the next one's."""

    def __init__(self, device: torch.device = torch.device("cpu")):
        self.device = device
        self.seconds: dict[str, float] = {}
        self.running: list[str] = []  # the phases entered and not left, innermost last
        self.since = 0.0  # when the innermost phase was last charged

    def charge(self) -> None:
        now = time.perf_counter()
        if self.running:
            phase = self.running[-1]
            self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self.since
        self.since = now

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        self.wait()
        threads.adapt()  # a phase boundary: follow the machine's load
        self.charge()
        self.running.append(phase)
        try:
            yield
        finally:
            self.wait()
            self.charge()
            self.running.pop()

    def wait(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def report(self) -> dict[str, float]:
        return {phase: round(seconds, 3) for phase, seconds in self.seconds.items()}
