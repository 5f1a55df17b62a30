"""`pipeline-hub validate`: the shipped registry is clean; each kind of breakage gives one precise line."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from pipeline_hub.cli import app
from pipeline_hub.config import include_dir
from pipeline_hub.lifecycle.strict_schema import strict_problems
from pipeline_hub.lifecycle.validation import relaxed_schema, validate_registry

runner = CliRunner()


@pytest.fixture
def prompts(tmp_path, monkeypatch):
    """A copy of the shipped registry; the working directory is its parent, so paths print as prompts/…."""
    shutil.copytree(include_dir() / "prompts", tmp_path / "prompts")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "prompts"


def replace(path, old, new, count=1):
    text = path.read_text()
    assert text.count(old) >= 1, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, count))


def line_of(path, needle):
    return next(i for i, line in enumerate(path.read_text().splitlines(), start=1) if needle in line)


def test_shipped_registry_validates_cleanly():
    assert validate_registry() == []
    result = runner.invoke(app, ["validate", str(include_dir() / "prompts")])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output


def test_broken_copy_gives_one_precise_line_per_problem(prompts):
    # 1. undeclared variable in a template
    tmpl = prompts / "contact_extraction" / "prompts" / "contact_extraction_v1.j2"
    replace(tmpl, "Text:\n{{ text }}", "Text:\n{{ text }}\nHint: {{ signature_hint }}")
    # 2. invalid output schema (not a JSON Schema type)
    schema = prompts / "company_matching" / "schemas" / "output_v1.json"
    replace(schema, '"confidence": {"type": "number"', '"confidence": {"type": "numeric"')
    # 3. an example whose expected answer does not match the output schema
    examples = prompts / "industry_classification" / "examples" / "examples.jsonl"
    replace(
        examples,
        '"Stamford, Connecticut"}, "expected": {"sector": "Communication Services"}',
        '"Stamford, Connecticut"}, "expected": {"sector": "Telecoms"}',
    )
    # 4. a dangling pointer
    meta = prompts / "use_case_extraction" / "metadata.yaml"
    replace(meta, "\ndev: v1\n", "\ndev: v7\n")

    result = runner.invoke(app, ["validate", "prompts"])
    assert result.exit_code == 1
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 4, result.stdout
    assert lines[0] == (
        f"prompts/company_matching/schemas/output_v1.json:{line_of(schema, 'numeric')}: invalid JSON Schema "
        "(Draft 2020-12) at properties.confidence.type: 'numeric' is not valid under any of the given schemas"
    )
    assert lines[1].startswith(
        f"prompts/contact_extraction/prompts/contact_extraction_v1.j2:{line_of(tmpl, 'signature_hint')}: "
        "variable 'signature_hint' is not a declared input of contact_extraction"
    )
    assert lines[2].startswith(
        f"prompts/industry_classification/examples/examples.jsonl:{line_of(examples, 'Telecoms')}: example 'CHTR': "
        "expected.sector does not match the output schema of v1: fails 'enum'"
    )
    assert lines[3] == (
        f"prompts/use_case_extraction/metadata.yaml:{line_of(meta, 'dev: v7')}: pointer 'dev' names version 'v7', "
        "which is not declared under 'versions' (declared: v1)"
    )


def test_unused_input_missing_changelog_and_syntax_error_in_a_shared_partial(prompts):
    meta = prompts / "industry_classification" / "metadata.yaml"
    replace(
        meta,
        "  headquarters: {field: headquarters}\n",
        "  headquarters: {field: headquarters}\n  ticker: {field: id}\n",
    )
    replace(meta, "    changelog: Initial version, GICS sector with confidence.\n", "")
    problems = [str(p) for p in validate_registry("prompts")]
    assert f"prompts/industry_classification/metadata.yaml:{line_of(meta, 'ticker')}: input 'ticker' is declared " in (
        "\n".join(problems)
    )
    assert any(
        p.startswith(f"prompts/industry_classification/metadata.yaml:{line_of(meta, '  v1:')}: versions.v1: ")
        and "'changelog' is a required property" in p
        for p in problems
    ), problems
    # A broken partial is reported once, at its own line, not once per topic.
    preamble = prompts / "_shared" / "preamble.j2"
    preamble.write_text(preamble.read_text() + "{% if %}\n")
    problems = [str(p) for p in validate_registry("prompts")]
    partial = [p for p in problems if p.startswith("prompts/_shared/preamble.j2:")]
    assert partial == [
        f"prompts/_shared/preamble.j2:{line_of(preamble, '{% if %}')}: template syntax error: "
        "Expected an expression, got 'end of statement block'"
    ]


def test_example_without_a_required_input_and_too_few_examples(prompts):
    examples = prompts / "company_matching" / "examples" / "examples.jsonl"
    lines = examples.read_text().splitlines()
    broken = json.loads(lines[1])
    del broken["input"]["name"]
    examples.write_text("\n".join([lines[0], json.dumps(broken), *lines[2:40]]) + "\n")
    problems = [str(p) for p in validate_registry("prompts", topics=["company_matching"])]
    assert problems == [
        "prompts/company_matching/examples/examples.jsonl:1: 40 labelled examples; at least 50 are required",
        f"prompts/company_matching/examples/examples.jsonl:2: example '{broken['id']}': input field 'name' "
        "(a required input) is missing or empty",
    ]


def test_metadata_schema_rejects_unknown_keys_and_bad_gate(prompts):
    meta = prompts / "company_matching" / "metadata.yaml"
    replace(meta, "gate: {metric: f1,", "gate: {metric: macro_f1,")
    replace(meta, "owner: data-platform\n", "owner: data-platform\nownr: typo\n")
    problems = [str(p) for p in validate_registry("prompts", topics=["company_matching"])]
    assert any(
        p.startswith(f"prompts/company_matching/metadata.yaml:{line_of(meta, 'ownr')}: ownr: unknown key")
        for p in problems
    ), problems
    assert any("gate metric 'macro_f1' is not reported for task 'matching'" in p for p in problems), problems


def test_strict_structured_output_subset():
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            "extra": {"type": ["string", "null"]},
            "nested": {"type": "object", "properties": {"a": {"type": "integer"}}},
        },
        "required": ["name", "tags", "nested"],
        "additionalProperties": False,
    }
    found = {(".".join(map(str, path)), message.split(" ")[0]) for path, message in strict_problems(schema)}
    assert found == {
        ("properties.name.minLength", "keyword"),
        ("properties.tags.uniqueItems", "keyword"),
        ("properties.extra", "property"),  # not in required
        ("properties.nested", "object"),  # no additionalProperties: false
        ("properties.nested.properties.a", "property"),
    }
    shipped = include_dir() / "prompts"
    for path in shipped.glob("*/schemas/*.json"):
        assert strict_problems(json.loads(path.read_text())) == [], path


def test_relaxed_schema_drops_required_only():
    schema = json.loads((include_dir() / "prompts/use_case_extraction/schemas/output_v1.json").read_text())
    relaxed = relaxed_schema(schema)
    assert "required" not in relaxed and "required" not in relaxed["properties"]["use_cases"]["items"]
    assert relaxed["properties"]["use_cases"]["items"]["additionalProperties"] is False
