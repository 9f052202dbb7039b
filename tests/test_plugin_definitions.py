"""meltano.yml and the Hub definitions stay in step with the plugins' settings, and validate
against the schemas of Meltano Hub and of Meltano itself."""

from __future__ import annotations

import importlib.util
import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from tap_clickstream.config import SOURCES
from tap_clickstream.tap import TapClickstream
from target_personalize.target import TargetPersonalize

ROOT = Path(__file__).resolve().parent.parent
HUB_SCHEMAS = ROOT / "tests/fixtures/hub_schemas"
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
    assert set(expected) <= set(declared)  # and the SDK's built-in settings
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


def test_meltano_yml_plugin_definitions_are_the_hub_definitions() -> None:
    text = (ROOT / "meltano.yml").read_text()
    assert text == definitions.meltano_yml_with_definitions(text), (
        "run `python scripts/plugin_definitions.py` to refresh meltano.yml"
    )
    for name in PLUGINS:
        hub, project = definitions.definition(name), _meltano_plugin(name)
        assert project["settings"] == hub["settings"]  # labels, kinds and defaults alike
        assert project.get("settings_group_validation") == hub.get("settings_group_validation")


def test_the_hub_lists_each_sources_groups_after_the_empty_one() -> None:
    hub = yaml.safe_load(definitions.path_of("tap-clickstream").read_text())
    groups = hub["settings_group_validation"]
    assert groups[0] == []  # nothing set: the bundled sample
    assert groups[1:] == [
        [f"{source.key}.{name}" for name in group] for source in SOURCES for group in source.groups
    ]


def test_inherited_extractors_repeat_no_default() -> None:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    defaults = {source.key: source.defaults for source in SOURCES}
    for plugin in project["plugins"]["extractors"]:
        for block, values in (plugin.get("config") or {}).items():
            repeated = {k for k, v in values.items() if defaults[block].get(k, object()) == v}
            assert not repeated, (plugin["name"], block, repeated)


def _hub_validator(kind: str) -> jsonschema.Draft7Validator:
    """The Hub's validator for a plugin type (as meltano/hub's plugin_schema_validate.py)."""
    schemas = [json.loads(p.read_text()) for p in sorted(HUB_SCHEMAS.rglob("*.schema.json"))]
    registry: Registry[Any] = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema, default_specification=DRAFT7))
        for schema in schemas
    )
    top = json.loads((HUB_SCHEMAS / "plugin_definitions" / f"{kind}.schema.json").read_text())
    return jsonschema.Draft7Validator(top, registry=registry)


@pytest.mark.parametrize("name", PLUGINS)
def test_hub_definition_validates_against_the_hub_schema(name: str) -> None:
    kind = str(definitions.PLUGINS[name]["kind"])
    hub = yaml.safe_load(definitions.path_of(name).read_text())
    assert [e.message for e in _hub_validator(kind).iter_errors(hub)] == []


def test_the_hub_schema_check_sees_into_the_shared_schemas() -> None:
    # A wrong setting kind is caught by common/base_setting.schema.json, two $refs away.
    hub = yaml.safe_load(definitions.path_of("tap-clickstream").read_text())
    hub["settings"][0] = {**hub["settings"][0], "kind": "text"}
    hub["capabilities"] = [*hub["capabilities"], "validate-records"]  # a loader's capability
    errors = sorted(e.message for e in _hub_validator("extractors").iter_errors(hub))
    assert len(errors) == 2 and all("is not one of" in e for e in errors), errors


def _meltano_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(
        resources.files("meltano").joinpath("schemas/meltano.schema.json").read_text()
    )
    validator: jsonschema.protocols.Validator = jsonschema.validators.validator_for(schema)(schema)
    return validator


def test_meltano_yml_validates_against_meltanos_schema() -> None:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    assert [e.message for e in _meltano_validator().iter_errors(project)] == []


def test_meltanos_schema_check_rejects_what_meltano_yml_leaves_out() -> None:
    # Why meltano.yml lacks two things its Hub definitions have (see project_plugin).
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    loader = project["plugins"]["loaders"][0]
    loader["capabilities"] = [*loader["capabilities"], "validate-records"]
    loader["supported_python_versions"] = ["3.12"]
    assert len(list(_meltano_validator().iter_errors(project))) >= 2
