"""docs/design.md's map of the code stays true: what it names exists, every engine module is on it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROOTS = ("tap_clickstream/", "target_personalize/")


def _map_lines() -> list[str]:
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    section = text.split("## Map", 1)[1].split("\n## ", 1)[0]
    return section.split("```", 2)[1].splitlines()


def mapped_paths() -> list[str]:
    """Every file and folder the map names, as paths from the repository root.

    A path from a package root is whole; a folder at the start of a line is inside the last
    whole folder named; a bare ``name.py`` is in the folder named last on the map.
    """
    found: list[str] = []
    package = folder = ""
    for raw in _map_lines():
        line = raw.lstrip("│▼ ")
        start = re.match(r"(\w+)/\s", line)
        if start and not line.startswith(ROOTS):
            folder = f"{package}{start.group(1)}/"
            found.append(folder)
        for token in re.findall(r"[\w<>/]+/|[\w<>/]+\.py", line):
            if token.startswith(ROOTS):
                found.append(token)
                folder = token if token.endswith("/") else token.rsplit("/", 1)[0] + "/"
                if token.endswith("/"):
                    package = token
            elif token.endswith(".py"):
                found.append(folder + token)
    return found


def test_every_path_on_the_map_exists() -> None:
    paths = mapped_paths()
    assert len(paths) > 40
    for path in paths:
        # A placeholder such as <name> stands for every folder at its place.
        head = path.split("<", 1)[0]
        assert (ROOT / head).exists(), path
        if "<" in path:
            assert any(p.is_dir() for p in (ROOT / head).iterdir()), path


def test_every_engine_module_is_on_the_map() -> None:
    engine = ROOT / "target_personalize" / "engine"
    modules = {
        str(p.relative_to(ROOT))
        for p in engine.rglob("*.py")
        if p.name != "__init__.py" or p.parent == engine
    }
    assert modules <= set(mapped_paths()), sorted(modules - set(mapped_paths()))
