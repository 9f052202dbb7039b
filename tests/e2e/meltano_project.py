"""Meltano projects for end-to-end tests: a private environment, the `meltano` commands of the
docs, and the loader's `serve` command asked over HTTP."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

__all__ = [
    "MELTANO",
    "ROOT",
    "code_block_commands",
    "hub_definition",
    "inline_commands",
    "meltano",
    "meltano_env",
    "served_stats",
]

ROOT = Path(__file__).resolve().parents[2]
MELTANO = Path(sys.executable).parent / "meltano"


def meltano_env(**extra: str) -> dict[str, str]:
    """This process's environment without any plugin or Meltano setting, and no telemetry."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TAP_CLICKSTREAM", "TARGET_PERSONALIZE", "PERSONALIZE_", "MELTANO_"))
    }
    env.update(MELTANO_SEND_ANONYMOUS_USAGE_STATS="false", DO_NOT_TRACK="1", **extra)
    return env


def meltano(
    args: list[str], cwd: Path, env: dict[str, str], *, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run `meltano ARGS` in ``cwd`` and require it to succeed."""
    done = subprocess.run(
        [str(MELTANO), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"meltano {shlex.join(args)}:\n{done.stderr[-4000:]}"
    return done


def hub_definition(kind: str, name: str, pip_url: str, directory: Path) -> Path:
    """A copy of a committed Hub definition (``hub/<kind>/<name>.yml``) installing ``pip_url``."""
    definition = yaml.safe_load((ROOT / "hub" / kind / f"{name}.yml").read_text())
    definition["pip_url"] = pip_url
    path = directory / f"{name}.yml"
    path.write_text(yaml.safe_dump(definition, sort_keys=False))
    return path


def _fenced(text: str) -> list[tuple[bool, str]]:
    """Each line of a Markdown text, with whether it is inside a fenced code block."""
    lines, inside = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            inside = not inside
            continue
        lines.append((inside, line))
    return lines


def code_block_commands(text: str) -> list[list[str]]:
    """The `meltano` command lines of a Markdown text's code blocks (``$ `` prompts allowed),
    split as a shell would, without their comments."""
    commands = []
    for inside, line in _fenced(text):
        command = line.strip().removeprefix("$ ")
        if inside and command.startswith("meltano "):
            commands.append(shlex.split(command, comments=True))
    return commands


def inline_commands(text: str) -> list[list[str]]:
    """The `meltano ...` spans of a Markdown text's prose and code comments, split."""
    prose = []
    for inside, line in _fenced(text):
        prose.append(line.partition(" #")[2] if inside else line)
    spans = re.findall(r"`(meltano\s[^`]+)`", " ".join(prose))
    return [shlex.split(" ".join(span.split())) for span in spans]


def served_stats(cwd: Path, env: dict[str, str], args: list[str]) -> dict[str, object]:
    """Start `meltano ARGS --port PORT` (a `serve` command), read /v1/stats, stop it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(MELTANO), *args, "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: Meltano and the server it starts
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and server.poll() is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/v1/stats?fresh=true", timeout=5)
            except httpx.TransportError:
                time.sleep(0.5)
                continue
            stats: dict[str, object] = answer.json()
            return stats
        raise AssertionError(f"the server did not answer: {server.communicate()[1][-3000:]}")
    finally:
        _stop_group(server)


def _stop_group(process: subprocess.Popen[str]) -> None:
    """Interrupt a process and the ones it started, and wait until all of them have ended
    (the server holds the store's lock until it exits)."""
    group = process.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGINT)
    process.wait(timeout=60)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(group, signal.SIGKILL)
