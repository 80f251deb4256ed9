"""How many CPU threads torch uses: at most the number asked for (`--threads`, else every core this
process may run on), and no more than the cores other processes leave free.

Why (docs/performance.md, "On a busy machine"): torch's CPU kernels split each operation over its
threads and wait for all of them at the end. When another process holds a core, one of those
threads waits for the scheduler on every operation, and work made of many small operations (GCN
selection, the inversion's LM passes) then runs several times slower than on one thread. So the
thread count follows the free cores, read at every phase boundary of a run.
"""

from __future__ import annotations

import os
import statistics
import time

READINGS = 5  # samples of the run queue, a few milliseconds apart: one reading catches bursts
READING_GAP = 0.002
RECHECK_SECONDS = 1.0  # the load is read again at a phase boundary at most this often


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask: a container or `taskset` may give fewer)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def running_elsewhere() -> int | None:
    """Runnable threads of other processes right now: the kernel's run-queue count (/proc/loadavg)
    minus this process's own runnable threads, as a median over a few readings. None where
    /proc is not there to read."""
    samples = []
    try:
        for _ in range(READINGS):
            with open("/proc/loadavg", encoding="ascii") as handle:
                running = int(handle.read().split()[3].split("/")[0])
            own = 0
            for task in os.listdir("/proc/self/task"):
                try:
                    with open(f"/proc/self/task/{task}/stat", encoding="ascii") as handle:
                        own += handle.read().rsplit(")", 1)[1].split()[0] == "R"
                except OSError:  # the thread ended between the listing and the read
                    continue
            samples.append(max(0, running - own))
            time.sleep(READING_GAP)
    except (OSError, ValueError, IndexError):
        return None
    return round(statistics.median(samples))


def threads_for(ceiling: int, cores: int, elsewhere: int | None) -> int:
    """The threads to use: the ceiling, less the cores other processes are using, at least one."""
    if elsewhere is None:
        return ceiling
    return max(1, min(ceiling, cores - elsewhere))


class ThreadPolicy:
    """Sets torch's threads to `threads_for` the current load, at most once per `RECHECK_SECONDS`."""

    def __init__(self, ceiling: int | None = None):
        import torch

        self.cores = usable_cores()
        self.ceiling = ceiling or min(torch.get_num_threads(), self.cores)
        self.checked = float("-inf")
        self.adapt(force=True)

    def adapt(self, force: bool = False) -> int:
        import torch

        now = time.monotonic()
        if force or now - self.checked >= RECHECK_SECONDS:
            self.checked = now
            wanted = threads_for(self.ceiling, self.cores, running_elsewhere())
            if wanted != torch.get_num_threads():
                torch.set_num_threads(wanted)
        return torch.get_num_threads()


POLICY: ThreadPolicy | None = None  # set by `pipeline.start`; the library alone leaves torch's threads as they are


def install(ceiling: int | None) -> ThreadPolicy:
    global POLICY
    POLICY = ThreadPolicy(ceiling)
    return POLICY


def adapt() -> None:
    """At a phase boundary: follow the load, when a policy is installed."""
    if POLICY is not None:
        POLICY.adapt()
