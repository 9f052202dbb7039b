"""The distribution as users get it (issue 18): the sdist and wheel built with `python -m build`,
checked with `twine check`, the wheel installed by pip into a fresh virtual environment, and its
three commands run from there: `tap-clickstream --about`, the embedded default sync into
`target-personalize`, and `personalize serve` with its dashboard."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path
from typing import IO

import httpx
import pytest

from target_personalize.engine import EventStore
from tests.e2e.meltano_project import ROOT

pytestmark = pytest.mark.e2e

PACKAGES = ("tap_clickstream", "target_personalize")


def _run(
    args: list[str], cwd: Path | None = None, stdin: IO[bytes] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        args, cwd=cwd, stdin=stdin, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout[-2000:]}{done.stderr[-4000:]}"
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel (built from the sdist, as `python -m build` does)."""
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)])
    return out


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin directory of a fresh virtual environment where pip installed the wheel."""
    home = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True).create(home)
    wheel = next(dist.glob("*.whl"))
    _run([str(home / "bin/python"), "-m", "pip", "install", "--quiet", "--no-compile", str(wheel)])
    return home / "bin"


def test_twine_finds_both_distributions_fit_for_pypi(dist: Path) -> None:
    files = sorted(p.name for p in dist.iterdir())
    assert [name.rsplit(".", 1)[-1] for name in files] == ["whl", "gz"]
    checked = _run([sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.iterdir())])
    assert checked.stdout.count("PASSED") == 2


def test_the_wheel_holds_every_file_the_code_reads(dist: Path) -> None:
    # Every file of the packages that is not Python source: samples, dashboard page and script.
    wanted = {
        path.relative_to(ROOT).as_posix()
        for package in PACKAGES
        for path in (ROOT / package).rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in path.parts
    }
    assert {"tap_clickstream/samples/rees46-2019-Oct-head-sample.csv"} <= wanted
    assert any(name.startswith("target_personalize/serve/static/") for name in wanted)
    with zipfile.ZipFile(next(dist.glob("*.whl"))) as wheel:
        names = set(wheel.namelist())
        entry_points = wheel.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert wanted <= names, wanted - names
    for script in ("tap-clickstream", "target-personalize", "personalize"):
        assert f"{script} = " in entry_points


def test_the_installed_tap_describes_itself(installed: Path) -> None:
    about = json.loads(
        _run([str(installed / "tap-clickstream"), "--about", "--format", "json"]).stdout
    )
    assert about["name"] == "tap-clickstream"
    assert {"mixpanel", "amplitude", "ga4", "files", "snowplow", "catalog"} <= set(
        about["settings"]["properties"]
    )
    version = _run([str(installed / "target-personalize"), "--version"]).stdout
    assert "target-personalize v0.1.0" in version


def test_the_installed_plugins_load_the_bundled_sample_and_serve_it(
    installed: Path, tmp_path: Path
) -> None:
    store = f"duckdb:///{tmp_path / 'store.duckdb'}"
    (tmp_path / "target.json").write_text(json.dumps({"database_url": store}))
    # The embedded default: no config at all, run away from the checkout.
    with (tmp_path / "tap.log").open("wb") as log:
        tap = subprocess.Popen(
            [str(installed / "tap-clickstream")], cwd=tmp_path, stdout=subprocess.PIPE, stderr=log
        )
        target = _run(
            [str(installed / "target-personalize"), "--config", "target.json"],
            cwd=tmp_path,
            stdin=tap.stdout,
        )
        assert tap.wait(timeout=300) == 0
    assert "Stream file_events emitted" in (tmp_path / "tap.log").read_text()
    assert "Loaded 17429 records" in target.stderr
    with EventStore(store) as loaded:
        assert loaded.summary().events == 17_429
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(installed / "personalize"), "serve", "--database-url", store, "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                stats = httpx.get(f"{base}/v1/stats", timeout=5).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, "no answer"
                time.sleep(0.5)
        assert stats["store_events"] == 17_429
        page = httpx.get(f"{base}/", timeout=10)
        assert page.status_code == 200 and "<html" in page.text.lower()
        static = ROOT / "target_personalize/serve/static"
        for path in sorted(path for path in static.rglob("*") if path.is_file()):
            name = path.relative_to(static).as_posix()  # the tracker and the demo's files too
            served = httpx.get(f"{base}/static/{name}", timeout=10)
            assert served.status_code == 200 and served.content == path.read_bytes(), name
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
