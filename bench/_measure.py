"""Run commands and measure them: wall seconds and the peak memory (RSS) of the process tree."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from typing import IO, Any


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_mib: float

    def rate(self, n: int) -> float:
        return n / self.seconds


def measure(
    command: list[str],
    *,
    stdin: IO[Any] | int | None = None,
    stdout: IO[Any] | int | None = subprocess.DEVNULL,
    env: dict[str, str] | None = None,
) -> Run:
    """Run one command to the end; its peak RSS comes from wait4 (this child only)."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, stdin=stdin, stdout=stdout, stderr=subprocess.DEVNULL, env=env
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command[0]} failed with {os.waitstatus_to_exitcode(status)}")
    return Run(seconds, usage.ru_maxrss / 1024)


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
    peaks = {}
    for process in (producer, consumer):
        _, status, usage = os.wait4(process.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{process.args[0]} failed")  # type: ignore[index]
        peaks[process.pid] = usage.ru_maxrss / 1024
    seconds = time.perf_counter() - start
    return Run(seconds, max(peaks.values())), peaks[producer.pid], peaks[consumer.pid]
