"""The settings model: README's table is generated from it, values come from the environment, the include dir."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline_hub.config import (
    INCLUDE_NOT_FOUND,
    HubSettings,
    Settings,
    env_name,
    get_settings,
    include_dir,
    settings_table,
)
from pipeline_hub.exceptions import ConfigError

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_settings_table_is_the_models():
    text = README.read_text()
    found = re.search(r"<!-- settings-table:start -->\n(.*?)\n<!-- settings-table:end -->", text, re.S)
    assert found, "README.md: no settings table between the settings-table markers"
    assert found.group(1) == settings_table(), "README settings table is stale: paste settings_table()"


def test_every_field_has_a_description_and_a_prefixed_variable():
    for name, info in HubSettings.model_fields.items():
        assert info.description, name
        assert env_name(name).startswith("PIPELINE_HUB_") or env_name(name) == "XDG_STATE_HOME"


def test_settings_follow_the_environment_and_defaults_are_unchanged(monkeypatch):
    for var in ("PIPELINE_HUB_RAW_URI", "PIPELINE_HUB_CHUNK_SIZE", "PIPELINE_HUB_LLM_POOL"):
        monkeypatch.delenv(var, raising=False)
    assert get_settings().raw_uri == "s3://aws_default@raw/raw_data" and get_settings().chunk_size == 500
    assert get_settings().llm_pool == "llm_default"
    monkeypatch.setenv("PIPELINE_HUB_RAW_URI", "/data/raw")
    monkeypatch.setenv("PIPELINE_HUB_CHUNK_SIZE", "")  # empty = unset
    assert Settings.from_env().raw_root == "/data/raw" and Settings.from_env().chunk_size == 500
    assert Settings.from_env(raw_root="/other").raw_root == "/other"
    assert get_settings() is get_settings()  # read once per environment


def test_a_bad_value_is_a_config_error_naming_the_variable(monkeypatch):
    monkeypatch.setenv("PIPELINE_HUB_CHUNK_SIZE", "many")
    with pytest.raises(ConfigError, match="PIPELINE_HUB_CHUNK_SIZE='many'") as info:
        get_settings()
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)


def test_include_dir_from_setting_then_cwd_else_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PIPELINE_HUB_INCLUDE_DIR", str(tmp_path / "mine"))
    assert include_dir() == tmp_path / "mine"
    monkeypatch.delenv("PIPELINE_HUB_INCLUDE_DIR")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        include_dir()
    assert str(info.value) == INCLUDE_NOT_FOUND
    (tmp_path / "include" / "prompts").mkdir(parents=True)
    assert include_dir() == tmp_path / "include"
