"""Write the Hub definitions, meltano.yml's plugins and the README's settings tables.

All come from the plugins' ``--about``. Run ``python scripts/plugin_definitions.py`` after
changing a setting; a test checks that the committed files match the plugins. Each setting's
default is written once, in the plugin's settings schema; every file here repeats it.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML

from tap_clickstream.config import SOURCES

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
REPO = "https://github.com/clickstream-personalize/clickstream-personalize"
#: The keys of a Hub definition that ``meltano add --from-ref`` copies into a project, less
#: ``supported_python_versions``, which it copies too but Meltano's project schema rejects.
PROJECT_KEYS = (
    "namespace",
    "label",
    "variant",
    "docs",
    "repo",
    "executable",
    "description",
    "capabilities",
    "settings",
    "settings_group_validation",
    "commands",
)
#: Every key of a plugin's entry in meltano.yml that comes from its definition.
PROJECT_KEYS_ALL = frozenset({"name", "pip_url", *PROJECT_KEYS})

PLUGINS: dict[str, dict[str, Any]] = {
    "tap-clickstream": {
        "kind": "extractors",
        "namespace": "tap_clickstream",
        "label": "Clickstream",
        "description": "Event-level clickstream from GA4, Mixpanel, Amplitude, Snowplow and files, as one canonical event",
        "keywords": ["meltano_sdk", "clickstream", "mixpanel", "amplitude", "analytics"],
    },
    "target-personalize": {
        "kind": "loaders",
        "namespace": "target_personalize",
        "label": "Personalize",
        "description": "Personalization engine: conversion funnels and multi-objective rankings from clickstream",
        "keywords": ["meltano_sdk", "personalization", "recommendations", "funnel", "duckdb"],
        # The `personalize` commands a Meltano user needs, on the target's store and settings
        # (Meltano expands the variables it sets from them).
        "commands": {
            "serve": {
                "executable": "personalize",
                "args": "serve",
                "description": "Serve the HTTP API and dashboard over the target's store, with "
                "its settings.",
            },
            "summary": {
                "executable": "personalize",
                "args": "summary --database-url $TARGET_PERSONALIZE_DATABASE_URL",
                "description": "What the store holds: events by source and type, users, "
                "sessions, items.",
            },
            "funnel": {
                "executable": "personalize",
                "args": "funnel --database-url $TARGET_PERSONALIZE_DATABASE_URL "
                "--conversion $TARGET_PERSONALIZE_KEY_CONVERSION",
                "description": "The funnel toward the key conversion that the events show.",
            },
            "fit": {
                "executable": "personalize",
                "args": "fit --database-url $TARGET_PERSONALIZE_DATABASE_URL "
                "--conversion $TARGET_PERSONALIZE_KEY_CONVERSION",
                "description": "Fit the ranker once; each load then refreshes it.",
            },
            "recommend": {
                "executable": "personalize",
                "args": "recommend --database-url $TARGET_PERSONALIZE_DATABASE_URL",
                "description": "The best items for a session (--session) or a user (--user).",
            },
            "experiment-report": {
                "executable": "personalize",
                "args": "experiment report --database-url $TARGET_PERSONALIZE_DATABASE_URL",
                "description": "An experiment's readout (--experiment ID): lift with intervals, "
                "SRM, CUPED.",
            },
        },
    },
}


def about(executable: str) -> dict[str, Any]:
    """The plugin's ``--about --format json`` output."""
    out = subprocess.run(
        [str(BIN / executable), "--about", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found: dict[str, Any] = json.loads(out)
    return found


def _kind(schema: dict[str, Any]) -> str:
    types = schema.get("type", "string")
    kind = next(
        (k for k in ([types] if isinstance(types, str) else types) if k != "null"), "string"
    )
    if "enum" in schema:
        return "options"
    if schema.get("format") == "date-time":
        return "date_iso8601"
    return {"number": "decimal"}.get(kind, kind)


def settings(schema: dict[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    """Meltano setting entries for every leaf of a config JSON schema (nested names dotted)."""
    entries: list[dict[str, Any]] = []
    for name, prop in schema.get("properties", {}).items():
        if prop.get("properties"):
            entries += settings(prop, f"{prefix}{name}.")
            continue
        entry: dict[str, Any] = {"name": f"{prefix}{name}", "kind": _kind(prop)}
        if prop.get("title"):
            entry["label"] = prop["title"]
        if prop.get("description"):
            entry["description"] = prop["description"]
        if "default" in prop:
            entry["value"] = prop["default"]
        if "enum" in prop:
            entry["options"] = [
                {"label": str(v), "value": v} for v in prop["enum"] if v is not None
            ]
        if prop.get("secret"):
            entry["sensitive"] = True
        entries.append(entry)
    return entries


def settings_groups() -> list[list[str]]:
    """The tap's minimal valid configurations: nothing (the bundled sample), or one source."""
    return [[], *([f"{s.key}.{name}" for name in group] for s in SOURCES for group in s.groups)]


def definition(executable: str) -> dict[str, Any]:
    """The Hub definition of one plugin."""
    info = about(executable)
    meta = PLUGINS[executable]
    groups = settings_groups() if meta["kind"] == "extractors" else None
    return {
        "name": executable,
        "variant": "clickstream-personalize",
        "namespace": meta["namespace"],
        "label": meta["label"],
        "description": meta["description"],
        "repo": REPO,
        "docs": f"{REPO}#readme",
        "pip_url": f"git+{REPO}.git",
        "executable": executable,
        "maintenance_status": "beta",
        "quality": "silver",
        "keywords": meta["keywords"],
        "capabilities": sorted(info["capabilities"]),
        "supported_python_versions": info["supported_python_versions"],
        "settings": settings(info["settings"]),
        **({"settings_group_validation": groups} if groups else {}),
        **({"commands": meta["commands"]} if "commands" in meta else {}),
    }


def meltano_capabilities(kind: str) -> set[str]:
    """The capabilities Meltano's own project schema lists for a plugin type."""
    schema = json.loads(
        resources.files("meltano").joinpath("schemas/meltano.schema.json").read_text()
    )
    rules = schema["$defs"]["plugins"][kind]["allOf"]
    for rule in rules:
        if "capabilities" in rule.get("properties", {}):
            return set(rule["properties"]["capabilities"]["items"]["enum"])
    raise LookupError(f"Meltano's schema lists no capabilities for {kind}")


def project_plugin(executable: str) -> dict[str, Any]:
    """The plugin's entry in this repository's meltano.yml, installed from the checkout.

    It is what ``meltano add --from-ref`` writes from the Hub definition. Capabilities Meltano's project schema does not list yet (``validate-records``, which the
    Hub's schema has) are left out, so meltano.yml validates; Meltano does not read a
    loader's capabilities.
    """
    hub = definition(executable)
    known = meltano_capabilities(str(PLUGINS[executable]["kind"]))
    entry: dict[str, Any] = {"name": executable}
    for key in PROJECT_KEYS:
        if key in hub:
            entry[key] = hub[key]
        if key == "repo":
            entry["pip_url"] = "-e ."
    entry["capabilities"] = [c for c in entry["capabilities"] if c in known]
    return entry


def _project_yaml() -> YAML:
    handler = YAML()
    handler.preserve_quotes = True
    handler.width = 4096  # no folded lines (ruamel leaves a space at their end)
    handler.indent(mapping=2, sequence=2, offset=0)
    return handler


def meltano_yml_with_definitions(text: str) -> str:
    """meltano.yml with each plugin's definition keys replaced by the current ones.

    Its other keys (``config``, comments) and the inherited plugins stay as they are.
    """
    handler = _project_yaml()
    project = handler.load(text)
    for name, meta in PLUGINS.items():
        plugins = project["plugins"][meta["kind"]]
        index = next(i for i, p in enumerate(plugins) if p["name"] == name)
        entry = project_plugin(name)
        # The project's own keys (config, ...) after the definition.
        entry.update({k: v for k, v in plugins[index].items() if k not in PROJECT_KEYS_ALL})
        plugins[index] = entry
    out = io.StringIO()
    handler.dump(project, out)
    return out.getvalue()


def render(executable: str) -> str:
    """The YAML text of one plugin's Hub definition."""
    return yaml.safe_dump(definition(executable), sort_keys=False, allow_unicode=True, width=100)


def settings_table(executable: str) -> str:
    """The settings table of ``--about --format=markdown``: the plugin's own settings first."""
    out = subprocess.run(
        [str(BIN / executable), "--about", "--format", "markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = out.split("## Settings", 1)[1].strip().splitlines()
    return "\n".join(line for line in lines if line.startswith("|")) + "\n"


def readme_with_settings(text: str) -> str:
    """The README with each plugin's settings table replaced by the current one."""
    for name in PLUGINS:
        start, end = f"<!-- {name} settings: start -->", f"<!-- {name} settings: end -->"
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{start}\n{settings_table(name)}{end}{tail}"
    return text


def path_of(executable: str) -> Path:
    """Where the definition is committed."""
    return ROOT / "hub" / str(PLUGINS[executable]["kind"]) / f"{executable}.yml"


if __name__ == "__main__":
    readme = ROOT / "README.md"
    readme.write_text(readme_with_settings(readme.read_text()))
    print("wrote README.md settings tables")  # noqa: T201
    project = ROOT / "meltano.yml"
    project.write_text(meltano_yml_with_definitions(project.read_text()))
    print("wrote meltano.yml plugin definitions")  # noqa: T201
    for name in PLUGINS:
        path_of(name).parent.mkdir(parents=True, exist_ok=True)
        path_of(name).write_text(render(name))
        print(f"wrote {path_of(name).relative_to(ROOT)}")  # noqa: T201
