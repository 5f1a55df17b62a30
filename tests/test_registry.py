"""Prompt registry: every shipped topic loads and renders; hashes cover shared partials."""

import shutil

import jinja2
import pytest

from pipeline_hub.config import include_dir
from pipeline_hub.prompts.registry import RegistryError, list_topics, load_topic

TOPICS = ["company_matching", "contact_extraction", "industry_classification", "use_case_extraction"]


def test_four_topics_ship():
    assert list_topics() == TOPICS


@pytest.mark.parametrize("name", TOPICS)
def test_topic_loads_and_renders_system_then_user(name):
    topic = load_topic(name)
    assert topic.version == topic.pointers["prod"]
    variables = {spec.name: "value" for spec in topic.inputs}
    for var in topic.context:
        variables[var] = [{"id": "1", "name": "Candidate"}]
    messages = topic.prompt.render(variables)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "value" in messages[1]["content"] and "value" not in messages[0]["content"]
    assert len(topic.prompt.template_sha256) == 64


def test_missing_variable_is_an_error_not_an_empty_string():
    topic = load_topic("industry_classification")
    with pytest.raises(jinja2.UndefinedError):
        topic.prompt.render({"company_name": "X"})


def test_shared_partial_change_changes_every_template_hash(tmp_path):
    prompts = tmp_path / "prompts"
    shutil.copytree(include_dir() / "prompts", prompts)
    before = {t: load_topic(t, prompts).prompt.template_sha256 for t in TOPICS}
    with (prompts / "_shared" / "preamble.j2").open("a") as fh:
        fh.write("Be brief.\n")
    after = {t: load_topic(t, prompts).prompt.template_sha256 for t in TOPICS}
    assert all(before[t] != after[t] for t in TOPICS)


def test_dangling_pointer_names_metadata_file(tmp_path):
    prompts = tmp_path / "prompts"
    shutil.copytree(include_dir() / "prompts", prompts)
    meta = prompts / "industry_classification" / "metadata.yaml"
    meta.write_text(meta.read_text().replace("prod: v1", "prod: v9"))
    with pytest.raises(RegistryError, match="metadata.yaml: version 'v9'"):
        load_topic("industry_classification", prompts)
