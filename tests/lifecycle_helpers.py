"""Helpers for the prompt-lifecycle tests: an oracle that answers the stub with the labelled gold, and a
second prompt version in a copy of the registry."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from pipeline_hub.lifecycle.scoring import load_examples, topic_metadata
from pipeline_hub.prompts.registry import load_topic
from pipeline_hub.stages.prompt_inputs import build_variables


def _answer(task: str, evaluation: dict, schema: dict, expected: dict, candidates: list | None, wrong: bool) -> dict:
    if task == "classification":
        field = evaluation["label_field"]
        labels = schema["properties"][field]["enum"]
        label = expected[field]
        if wrong:
            label = labels[(labels.index(label) + 1) % len(labels)]
        return {field: label, "confidence": 0.9}
    if task == "matching":
        gold = expected[evaluation["match_field"]]
        ids = [c["id"] for c in candidates or []]
        if wrong:
            choice = next((i for i in ids if i != gold), None)
        else:
            choice = gold if gold in ids else None
        return {evaluation["match_field"]: choice, "confidence": 0.9}
    items = evaluation["items"]
    gold = [] if wrong else expected[items]
    if items == "use_cases":
        gold = [{"summary": "Summary.", **item} for item in gold] or [
            {"name": "Unrelated", "summary": "Unrelated.", "techniques": ["astrology"]}
        ]
    return {items: gold}


def oracle(topic_name: str, prompts_dir: Path | None = None, version: str | None = None, wrong: bool = False):
    """``{user message: answer}`` for every example of ``topic_name`` ``version``: the gold answer
    (completed to the output schema; for matching, gold when it is among the offered candidates, else
    null), or a wrong one when ``wrong``."""
    topic = load_topic(topic_name, prompts_dir, pointer="dev", version=version)
    meta = topic_metadata(topic)
    evaluation = meta["evaluation"]
    examples, _ = load_examples(topic.metadata_path.parent)
    table: dict[str, dict[str, Any]] = {}
    for ex in examples:
        variables, missing, _ = build_variables(topic, {"fields": ex["input"]})
        assert missing is None, ex["id"]
        user = topic.prompt.render(variables)[-1]["content"]
        table[user] = _answer(
            evaluation["task"],
            evaluation,
            topic.prompt.output_schema,
            ex["expected"],
            variables.get("candidates"),
            wrong,
        )
    return table


def responder(*tables: dict[str, dict]):
    """A stub responder answering from the first table that knows the request's last user message."""

    def respond(body: dict) -> dict | None:
        content = body["messages"][-1]["content"]
        for table in tables:
            if content in table:
                return table[content]
        return None

    return respond


def copy_registry(tmp_path: Path) -> Path:
    """A copy of the shipped ``include/`` (prompts, reference tables, PII config) under ``tmp_path``."""
    from pipeline_hub.config import include_dir

    target = tmp_path / "include"
    shutil.copytree(include_dir(), target, ignore=shutil.ignore_patterns("sample_data"))
    return target


def add_version(prompts_dir: Path, topic: str, version: str = "v2", *, dev: bool = True) -> None:
    """Add ``version`` to ``topic``: the v1 template with a last user line naming the version, same schema."""
    folder = prompts_dir / topic
    source = (folder / "prompts" / f"{topic}_v1.j2").read_text()
    assert "Answer:\n{% endblock %}" in source
    (folder / "prompts" / f"{topic}_{version}.j2").write_text(
        source.replace("Answer:\n{% endblock %}", f"Answer ({version}):\n{{% endblock %}}")
    )
    meta_path = folder / "metadata.yaml"
    text = meta_path.read_text()
    meta = yaml.safe_load(text)
    block = (
        f"  {version}:\n"
        f"    template: prompts/{topic}_{version}.j2\n"
        "    output_schema: schemas/output_v1.json\n"
        "    created: 2026-11-23\n"
        f"    changelog: Test version {version}, asks for the JSON object explicitly.\n"
        f"    model_params: {{temperature: 0.0, max_tokens: {meta['versions']['v1']['model_params']['max_tokens']}}}\n"
    )
    text = text.replace("\ndev: ", "\n" + block.rstrip("\n") + "\ndev: ", 1)
    if dev:
        text = text.replace("\ndev: v1\n", f"\ndev: {version}\n", 1)
    meta_path.write_text(text)


def hub(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``pipeline-hub ARGS`` through :func:`pipeline_hub.cli.main`: (exit code, stdout, stderr)."""
    from pipeline_hub import cli

    code = 0
    try:
        cli.main(list(args))
    except SystemExit as exc:
        code = exc.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err
