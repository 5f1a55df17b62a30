"""The prompt score gate of the CD workflow: score the topics a deployment changes, apply the promote gate.

    python infra/scripts/prompt_gate.py --base <deployed commit> [--head HEAD] [--conn llm_default]

Changed topics are those with a file changed under ``include/prompts/<topic>/`` between ``--base`` and
``--head`` (``git diff --name-only``); a change to anything else under ``include/prompts/`` (shared
partials, the metadata schema) changes every topic; no ``--base`` (first deployment) means every topic.
For each changed topic, with ``P`` = its ``prod`` version at ``--head`` and ``B`` = at ``--base``:

1. ``pipeline-hub score --topic T --version P`` (and ``--version B`` when prod moved and ``B`` still exists):
   the full labelled examples through the production prompt stage, against ``--conn``;
2. the gate ``pipeline-hub promote`` applies (:func:`pipeline_hub.lifecycle.promotion.evaluate_gate`), with ``B`` as
   the version to compare with (prod set back to ``B`` in a scratch copy of the registry; the checkout is
   not touched): ``gate.min``, ``gate.max_invalid_rate``, ``gate.max_regression`` against ``B``,
   ``gate.max_cost_increase``. Unchanged prod: ``P`` must still pass against itself (minimum, invalid rate).

Exit 0 when every changed topic passes, 1 naming each failed check, 2 on a usage or registry error.
Writes ``<artifacts>/gate.json`` (topics, versions, pass/fail, failures). Scores and reports go to
``PIPELINE_HUB_ARTIFACTS_URI`` (default ``.local/``), re-scoring unchanged versions is free through the
response cache.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
PROMPTS = "include/prompts"


def git(*args: str, cwd: Path = REPO) -> str:
    """``git <args>`` in ``cwd``; stdout. Raises CalledProcessError."""
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def all_topics(head: str, cwd: Path = REPO) -> list[str]:
    """Topic folders (holding metadata.yaml) under include/prompts at ``head``."""
    names = git("ls-tree", "--name-only", "-r", head, "--", PROMPTS, cwd=cwd).splitlines()
    return sorted({p.split("/")[2] for p in names if p.endswith("/metadata.yaml") and p.count("/") == 3})


def changed_topics(base: str | None, head: str, cwd: Path = REPO) -> list[str]:
    """Topics whose prompt files changed between ``base`` and ``head`` (all when ``base`` is None or a
    shared file changed); only topics that exist at ``head``."""
    topics = all_topics(head, cwd)
    if not base:
        return topics
    changed = git("diff", "--name-only", f"{base}..{head}", "--", PROMPTS, cwd=cwd).splitlines()
    hit: set[str] = set()
    for path in changed:
        parts = path.split("/")
        if len(parts) >= 4 and parts[2] in topics:
            hit.add(parts[2])
        elif len(parts) >= 3 and parts[2] not in topics and parts[2] != "_audit.jsonl":
            return topics  # _shared/ partials, metadata.schema.json, README: may change every topic
    return sorted(hit)


def prod_at(commit: str | None, topic: str, cwd: Path = REPO) -> str | None:
    """The topic's ``prod`` pointer at ``commit`` (None when the commit or the topic does not exist)."""
    if not commit:
        return None
    try:
        text = git("show", f"{commit}:{PROMPTS}/{topic}/metadata.yaml", cwd=cwd)
    except subprocess.CalledProcessError:
        return None
    return (yaml.safe_load(text) or {}).get("prod")


def score(topic: str, version: str, conn: str) -> None:
    """``pipeline-hub score`` (the CLI, as a person would run it); raises on a non-zero exit."""
    cmd = [sys.executable, "-m", "pipeline_hub", "score", "--topic", topic, "--version", version, "--conn", conn]
    print("$", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def gate(topic: str, candidate: str, baseline: str, prompts_dir: Path) -> dict[str, Any]:
    """:func:`evaluate_gate` for ``candidate`` with ``baseline`` as prod, in a scratch copy of the registry."""
    from pipeline_hub.lifecycle.promotion import evaluate_gate, set_pointer

    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / "prompts"
        shutil.copytree(prompts_dir, scratch)
        set_pointer(scratch / topic / "metadata.yaml", "prod", baseline)
        return evaluate_gate(topic, candidate, prompts_dir=scratch)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--base", default=os.environ.get("GATE_BASE") or None, help="deployed commit (none: all)")
    parser.add_argument("--head", default="HEAD")
    parser.add_argument("--conn", default="llm_default", help="Airflow connection of the model to score with")
    parser.add_argument("--topics", default=None, help="comma-separated topics instead of the changed ones")
    parser.add_argument("--skip-score", action="store_true", help="use the scores already in the artifacts root")
    args = parser.parse_args(argv)

    from pipeline_hub.config import include_dir
    from pipeline_hub.lifecycle.promotion import PromotionError

    prompts_dir = include_dir() / "prompts"
    try:
        topics = args.topics.split(",") if args.topics else changed_topics(args.base, args.head)
    except subprocess.CalledProcessError as exc:
        print(f"error: git failed: {exc.stderr.strip()}", file=sys.stderr)
        return 2
    try:
        head = git("rev-parse", args.head).strip()
    except (subprocess.CalledProcessError, OSError):
        head = args.head
    report: dict[str, Any] = {"base": args.base, "head": head, "topics": {}}
    failed = False
    for topic in topics:
        prod = prod_at(args.head, topic)
        before = prod_at(args.base, topic)
        versions = (yaml.safe_load((prompts_dir / topic / "metadata.yaml").read_text()) or {}).get("versions") or {}
        baseline = before if before in versions else prod
        try:
            if not args.skip_score:
                for version in dict.fromkeys([prod, baseline]):
                    score(topic, version, args.conn)
            result = gate(topic, prod, baseline, prompts_dir)
        except (subprocess.CalledProcessError, PromotionError) as exc:
            result = {"passed": False, "failures": [f"{type(exc).__name__}: {exc}"]}
        report["topics"][topic] = {
            "prod": prod,
            "baseline": baseline,
            "passed": result["passed"],
            "failures": result["failures"],
        }
        status = "passed" if result["passed"] else "FAILED"
        print(f"{topic}: prod {prod} against {baseline}: {status}")
        for failure in result["failures"]:
            print(f"  - {failure}")
        failed |= not result["passed"]
    if not topics:
        print("no prompt changes: nothing to gate")
    # Next to the scores (PIPELINE_HUB_ARTIFACTS_URI: a local path or an object-store URI such as s3://…).
    from pipeline_hub import storage
    from pipeline_hub.lifecycle.scoring import artifacts_root

    storage.write_json(storage.join(artifacts_root(), "gate.json"), report)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
