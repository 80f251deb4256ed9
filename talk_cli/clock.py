"""Seconds per named phase of a run, so that a user (and benchmarks/cost.py) can see where the
time of a distillation goes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from talk_cli import threads


class PhaseClock:
    """Adds up wall seconds per phase over every time the phase runs. On CUDA it waits for the
    GPU at each boundary, so a phase is charged with its own kernels, not with the next one's."""

    def __init__(self, device: torch.device = torch.device("cpu")):
        self.device = device
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        self.wait()
        threads.adapt()  # a phase boundary: follow the machine's load
        started = time.perf_counter()
        try:
            yield
        finally:
            self.wait()
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - started

    def wait(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def report(self) -> dict[str, float]:
        return {phase: round(seconds, 3) for phase, seconds in self.seconds.items()}
