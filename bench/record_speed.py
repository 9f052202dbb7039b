"""RECORD-mode load speed: target-personalize against target-duckdb and target-postgres.

Writes N canonical events (default 250,000) as the Singer lines a third-party tap sends (one
``{"type": "RECORD", ...}`` line per event, a STATE every 10,000), then, in one run and
interleaved (the machine is shared: each round times every target once, back to back):
  - target-personalize into a fresh DuckDB file, and target-duckdb (jwills) into another;
  - target-personalize into a fresh PostgreSQL schema, and MeltanoLabs' target-postgres into
    another (PostgreSQL at 127.0.0.1:5432, trust, database ``test``; skipped if absent).
The two other targets are installed from PyPI into their own virtualenvs under
``bench/.venvs/`` (created on first use, not committed). Prints events/s per round, the
best round of each target, the ratios, and ``uptime`` before and after. Each run is also
timed in CPU seconds (user + system, of the target and its children) per 100,000 events:
wall-clock ratios swing with the shared machine's load, CPU ratios much less.

    .venv/bin/python bench/record_speed.py [N] [ROUNDS] [duckdb]   # duckdb: DuckDB pair only
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from _record_lines import write_messages  # noqa: E402

VENVS = ROOT / "bench" / ".venvs"
BIN = Path(sys.executable).parent
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "database": "test"}
CONNINFO = "host=127.0.0.1 port=5432 user=postgres dbname=test"
OTHERS = {"target-duckdb": "target-duckdb", "target-postgres": "meltanolabs-target-postgres"}


def other_target(name: str) -> Path:
    """The executable of another target, installed in its own virtualenv on first use."""
    venv = VENVS / name
    executable = venv / "bin" / name
    if not executable.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", OTHERS[name]], check=True)
    return executable


def cpu_of_children() -> float:
    """CPU seconds (user + system) used so far by this process's finished children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], lines: Path, workdir: Path) -> tuple[float, float]:
    """Wall and CPU seconds ``command`` takes to read ``lines`` on stdin (it must succeed)."""
    log = workdir / "last.log"
    with lines.open("rb") as stdin, log.open("wb") as err:
        cpu = cpu_of_children()
        start = time.perf_counter()
        done = subprocess.run(
            command, stdin=stdin, stdout=subprocess.DEVNULL, stderr=err, check=False
        )
        seconds = time.perf_counter() - start
        cpu = cpu_of_children() - cpu
    if done.returncode:
        tail = log.read_text(errors="replace")[-2000:]
        raise SystemExit(f"{command[0]} failed ({done.returncode}):\n{tail}")
    return seconds, cpu


def postgres_ready() -> bool:
    try:
        import psycopg  # noqa: PLC0415

        psycopg.connect(CONNINFO, connect_timeout=3).close()
    except Exception:
        return False
    return True


def fresh_schema() -> str:
    import psycopg  # noqa: PLC0415

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(CONNINFO, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {name}")
    return name


def drop_schema(name: str) -> None:
    import psycopg  # noqa: PLC0415

    with psycopg.connect(CONNINFO, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def commands(workdir: Path, round_: int, with_postgres: bool) -> dict[str, tuple[list[str], str]]:
    """Each target's command line for one round (fresh stores), and its cleanup schema."""

    def config(name: str, settings: dict[str, object]) -> str:
        path = workdir / f"{name}-{round_}.json"
        path.write_text(json.dumps(settings))
        return str(path)

    ours = [str(BIN / "target-personalize"), "--config"]
    runs = {
        "personalize-duckdb": (
            [
                *ours,
                config(
                    "pd",
                    {
                        "database_url": f"duckdb:///{workdir / f'ours-{round_}.duckdb'}",
                    },
                ),
            ],
            "",
        ),
        "target-duckdb": (
            [
                str(other_target("target-duckdb")),
                "--config",
                config(
                    "td",
                    {
                        "filepath": str(workdir / f"theirs-{round_}.duckdb"),
                        "default_target_schema": "main",
                    },
                ),
            ],
            "",
        ),
    }
    if with_postgres:
        ours_schema, theirs_schema = fresh_schema(), fresh_schema()
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{ours_schema}"
        runs["personalize-postgres"] = (
            [*ours, config("pp", {"database_url": url})],
            ours_schema,
        )
        runs["target-postgres"] = (
            [
                str(other_target("target-postgres")),
                "--config",
                config(
                    "tp",
                    {**PG, "password": "", "default_target_schema": theirs_schema},
                ),
            ],
            theirs_schema,
        )
    return runs


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 250_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    duckdb_only = sys.argv[3:4] == ["duckdb"]
    with_postgres = not duckdb_only and postgres_ready()
    if not with_postgres and not duckdb_only:
        print("PostgreSQL at 127.0.0.1:5432 not reachable: DuckDB targets only")
    rates: dict[str, list[float]] = {}
    #: CPU seconds per 100,000 events, per round.
    cpus: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        lines = workdir / "records.jsonl"
        write_messages(lines, n)
        print(f"{n:,} events, {lines.stat().st_size / 2**20:.0f} MiB of RECORD lines")
        print("before:", uptime())
        for round_ in range(rounds):
            for name, (command, schema) in commands(workdir, round_, with_postgres).items():
                try:
                    wall, cpu = timed(command, lines, workdir)
                finally:
                    if schema:
                        drop_schema(schema)
                rate, cpu_100k = n / wall, cpu * 100_000 / n
                rates.setdefault(name, []).append(rate)
                cpus.setdefault(name, []).append(cpu_100k)
                print(
                    f"round {round_ + 1} {name:<22} {rate:>10,.0f} events/s "
                    f"{cpu_100k:>7.2f} CPU s/100k",
                    flush=True,
                )
        print("after: ", uptime())
    best = {name: max(values) for name, values in rates.items()}
    least_cpu = {name: min(values) for name, values in cpus.items()}
    print(f"\n{'target':<22} {'best events/s':>14} {'least CPU s/100k':>17}")
    for name, rate in best.items():
        print(f"{name:<22} {rate:>14,.0f} {least_cpu[name]:>17.2f}")
    pairs = [
        pair
        for pair in (
            ("personalize-duckdb", "target-duckdb"),
            ("personalize-postgres", "target-postgres"),
        )
        if pair[0] in rates
    ]
    for ours, theirs in pairs:
        walls = [a / b for a, b in zip(rates[ours], rates[theirs], strict=True)]
        cpu_ratios = [b / a for a, b in zip(cpus[ours], cpus[theirs], strict=True)]
        print(
            f"{ours} / {theirs}: wall {best[ours] / best[theirs]:.2f}x best, per round "
            f"{', '.join(f'{r:.2f}' for r in walls)}; CPU "
            f"{least_cpu[theirs] / least_cpu[ours]:.2f}x least, per round "
            f"{', '.join(f'{r:.2f}' for r in cpu_ratios)}"
        )


if __name__ == "__main__":
    main()
