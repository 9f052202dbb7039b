"""Kill target-personalize mid-load, resume the pipeline from the state it emitted: every event once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from target_personalize.engine import EventStore
from tests.support.events import event

BIN = Path(sys.executable).parent
FILES, PER_FILE = 4, 1500


def _tap(config: Path, state: Path | None = None) -> list[str]:
    command = [str(BIN / "tap-clickstream"), "--config", str(config)]
    if state is not None:
        command += ["--state", str(state)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    return done.stdout.splitlines(keepends=True)


def _target(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN / "target-personalize"), "--config", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _write_json(path: Path, value: dict[str, Any]) -> Path:
    path.write_text(json.dumps(value))
    return path


def test_killed_target_resumes_with_every_event_exactly_once(
    store_url: str, tmp_path: Path
) -> None:
    data = tmp_path / "events"
    data.mkdir()
    for f in range(FILES):
        lines = [json.dumps(event(f * PER_FILE + n)) for n in range(PER_FILE)]
        (data / f"part-{f}.jsonl").write_text("\n".join(lines) + "\n")
    tap_config = _write_json(tmp_path / "tap.json", {"files": {"paths": [str(data / "*.jsonl")]}})
    target_config = _write_json(
        tmp_path / "target.json", {"database_url": store_url, "batch_size_rows": 1000}
    )

    # First run: feed the tap's output to the target and kill -9 it right after its first STATE,
    # while it holds records it has not committed.
    messages = _tap(tap_config)
    target = _target(target_config)
    assert target.stdin is not None and target.stdout is not None
    records_sent = 0
    for line in messages:
        target.stdin.write(line)
        records_sent += '"type":"RECORD"' in line.replace(" ", "")
        if records_sent == 2 * PER_FILE + 700:
            break
    target.stdin.flush()
    state_line = target.stdout.readline()
    target.send_signal(signal.SIGKILL)
    target.wait(timeout=30)
    saved_state = json.loads(state_line)
    files_done = saved_state["bookmarks"]["file_events"]["files"]
    assert 1 <= len(files_done) < FILES  # the state names the files the store already holds

    with EventStore(store_url) as store:
        stored_after_crash = store.query("SELECT count(*) FROM events")[0][0]
    assert len(files_done) * PER_FILE <= stored_after_crash < FILES * PER_FILE

    # Second run, from the saved state, as Meltano would.
    rerun = _tap(tap_config, _write_json(tmp_path / "state.json", saved_state))
    target = _target(target_config)
    out, _ = target.communicate("".join(rerun), timeout=120)
    assert target.returncode == 0
    final_state = json.loads(out.strip().splitlines()[-1])
    assert len(final_state["bookmarks"]["file_events"]["files"]) == FILES

    with EventStore(store_url) as store:
        total, distinct = store.query("SELECT count(*), count(DISTINCT event_id) FROM events")[0]
    assert total == distinct == FILES * PER_FILE
