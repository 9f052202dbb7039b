"""Run commands and measure them: wall seconds and the peak memory (RSS) of each process.

The peak is the process's own high-water mark (``VmHWM`` in ``/proc/<pid>/status``), sampled
until it exits. ``ru_maxrss`` from wait4 is not used where /proc is available: a child spawned
from a large parent (tap_throughput's parent holds the fake export) reports the parent's size,
because Linux records the borrowed (vfork) memory's high-water mark at exec.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_mib: float

    def rate(self, n: int) -> float:
        return n / self.seconds


class _Peak:
    """Sample a process's high-water RSS until it exits (every 10 ms)."""

    def __init__(self, pid: int) -> None:
        self.status = Path(f"/proc/{pid}/status")
        self.kib = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.done.is_set():
            try:
                for line in self.status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.kib = max(self.kib, int(line.split()[1]))
            except (OSError, ValueError, IndexError):
                pass  # gone, or its memory already released
            self.done.wait(0.01)

    def stop(self, maxrss_kib: int) -> float:
        self.done.set()
        self.thread.join()
        return (self.kib or maxrss_kib) / 1024  # ru_maxrss where /proc is not readable


def measure(
    command: list[str],
    *,
    stdin: IO[Any] | int | None = None,
    stdout: IO[Any] | int | None = subprocess.DEVNULL,
    env: dict[str, str] | None = None,
) -> Run:
    """Run one command to the end: its wall time and its peak RSS."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, stdin=stdin, stdout=stdout, stderr=subprocess.DEVNULL, env=env
    )
    peak = _Peak(process.pid)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command[0]} failed with {os.waitstatus_to_exitcode(status)}")
    return Run(seconds, peak.stop(usage.ru_maxrss))


def measure_pipe(
    left: list[str], right: list[str], env: dict[str, str] | None = None
) -> tuple[Run, float, float]:
    """Run ``left | right``; return the pipeline's wall time and each side's peak RSS (MiB)."""
    start = time.perf_counter()
    producer = subprocess.Popen(left, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    consumer = subprocess.Popen(
        right, stdin=producer.stdout, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    assert producer.stdout is not None
    producer.stdout.close()
    samplers = {process.pid: _Peak(process.pid) for process in (producer, consumer)}
    peaks = {}
    for process in (producer, consumer):
        _, status, usage = os.wait4(process.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{process.args[0]} failed")  # type: ignore[index]
        peaks[process.pid] = samplers[process.pid].stop(usage.ru_maxrss)
    seconds = time.perf_counter() - start
    return Run(seconds, max(peaks.values())), peaks[producer.pid], peaks[consumer.pid]
