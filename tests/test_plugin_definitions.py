"""meltano.yml and the Hub definitions stay in step with the plugins' settings."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

from tap_clickstream.tap import TapClickstream
from target_personalize.target import TargetPersonalize

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location(
    "plugin_definitions", ROOT / "scripts/plugin_definitions.py"
)
assert _spec and _spec.loader
definitions = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(definitions)

PLUGINS = {"tap-clickstream": TapClickstream, "target-personalize": TargetPersonalize}


def _own_settings(name: str) -> dict[str, dict[str, Any]]:
    """The plugin's own settings: its schema without the SDK's built-in ones.

    (The SDK appends its built-ins to the class's schema in place once a plugin runs.)
    """
    plugin = PLUGINS[name]
    builtins: dict[str, Any] = {"type": "object", "properties": {}}
    plugin.append_builtin_config(builtins)
    schema = {
        "properties": {
            k: v
            for k, v in plugin.config_jsonschema["properties"].items()
            if k not in builtins["properties"]
        }
    }
    return {s["name"]: s for s in definitions.settings(schema)}


def _meltano_plugin(name: str) -> dict[str, Any]:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    for kind in ("extractors", "loaders"):
        for plugin in project["plugins"][kind]:
            if plugin["name"] == name:
                return plugin
    raise AssertionError(f"{name} is not in meltano.yml")


@pytest.mark.parametrize("name", PLUGINS)
def test_meltano_yml_declares_every_setting_with_its_kind_and_sensitivity(name: str) -> None:
    expected = _own_settings(name)
    declared = {s["name"]: s for s in _meltano_plugin(name)["settings"]}
    assert set(declared) == set(expected)
    for setting, spec in expected.items():
        assert declared[setting]["kind"] == spec["kind"], setting
        assert declared[setting].get("sensitive", False) == spec.get("sensitive", False), setting


@pytest.mark.parametrize("name", PLUGINS)
def test_meltano_yml_and_the_hub_declare_the_same_commands(name: str) -> None:
    assert _meltano_plugin(name).get("commands") == definitions.definition(name).get("commands")


@pytest.mark.parametrize("name", PLUGINS)
def test_committed_hub_definition_matches_the_plugin(name: str) -> None:
    committed = definitions.path_of(name).read_text()
    assert committed == definitions.render(name), (
        "run `python scripts/plugin_definitions.py` to refresh hub/"
    )


def test_every_secret_is_marked_sensitive_everywhere() -> None:
    secrets = {
        "mixpanel.secret",
        "amplitude.secret_key",
        "ga4.export_url",
        "ga4.credentials_json",
        "snowplow.sqlalchemy_url",
        "catalog.sqlalchemy_url",
    }
    hub = yaml.safe_load(definitions.path_of("tap-clickstream").read_text())
    assert {s["name"] for s in hub["settings"] if s.get("sensitive")} == secrets
    assert {
        s["name"] for s in _meltano_plugin("tap-clickstream")["settings"] if s.get("sensitive")
    } == secrets


def test_inherited_extractors_exist_for_each_source() -> None:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    inherited = {
        p["name"]
        for p in project["plugins"]["extractors"]
        if p.get("inherit_from") == "tap-clickstream"
    }
    assert {
        "tap-clickstream--mixpanel",
        "tap-clickstream--amplitude",
        "tap-clickstream--files",
    } <= inherited


def test_readme_settings_tables_are_the_plugins_about_output() -> None:
    readme = (ROOT / "README.md").read_text()
    assert readme == definitions.readme_with_settings(readme), (
        "run `python scripts/plugin_definitions.py` to refresh the README's settings tables"
    )
