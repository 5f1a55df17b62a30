"""The promotion gate: ``pipeline-hub promote``, ``pipeline-hub rollback`` and ``pipeline-hub label delete``.

``promote(topic, version, label="prod")`` moves the topic's ``prod`` pointer, or a named label
(``labels:`` in ``metadata.yaml``, Langfuse/MLflow alias semantics; created by its first promotion), to
``version`` only when the version's latest full score (:mod:`pipeline_hub.lifecycle.scoring`,
``reports/<topic>/<version>/score.json`` under the artifacts root) was computed on the *current*
examples and template and passes the topic's ``gate`` in ``metadata.yaml``:

- ``gate.metric`` ≥ ``gate.min``;
- invalid-answer rate ≤ ``gate.max_invalid_rate``;
- not worse than the current prod version's score (same examples, same model) by more than
  ``gate.max_regression``;
- optionally, list-price cost not above prod's by more than ``gate.max_cost_increase`` (relative).

Every label a run can pin passes this same gate (compared with prod), so a label is never a way around
it; ``dev`` is not moved by promotion (it is set by hand: the version under development). A refusal
(:class:`GateRefused`) names every check that failed. A promotion rewrites only the label's line of
``metadata.yaml`` (comments and layout stay, :mod:`pipeline_hub.lifecycle.pointers`), appends a line to
the topic's ``CHANGELOG.md`` and an entry to the append-only audit log ``include/prompts/_audit.jsonl``
(``at``, ``actor``, ``action``, ``topic``, ``label``, ``from``, ``to``, ``scores``, ``gate``; an entry
without ``label`` is prod's). These are files in the repository: commit them, so the review of the
pull request is the review of the promotion.

``rollback(topic, label="prod")`` moves that label back to the version it had before the current one,
as recorded by its own audit entries (promotions push, rollbacks pop, a ``delete`` clears), with its own
audit and changelog entry; it does not consult the gate (it is the way back). ``delete_label`` removes a
named label, audited. Production runs are unaffected mid-run either way: the run plan pins the version
resolved at the start of a run (:mod:`pipeline_hub.stages.plan`).
"""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from pipeline_hub.config import get_settings, include_dir
from pipeline_hub.exceptions import PromptError
from pipeline_hub.lifecycle.pointers import PromotionError, read_labels, set_label, set_pointer
from pipeline_hub.lifecycle.scoring import examples_sha256, read_score, topic_metadata
from pipeline_hub.prompts.registry import LABEL_PATTERN, RegistryError, load_topic

__all__ = ["GateRefused", "PromotionError", "delete_label", "evaluate_gate", "promote", "rollback", "set_pointer"]

AUDIT_FILE = "_audit.jsonl"
CHANGELOG_FILE = "CHANGELOG.md"


class GateRefused(PromptError, RuntimeError):
    """The version failed the gate; ``failures`` lists each failed check (also in the message)."""

    exit_code = 1

    def __init__(self, topic: str, version: str, failures: list[str], label: str = "prod") -> None:
        self.topic, self.version, self.failures, self.label = topic, version, failures, label
        to = "" if label == "prod" else f" to label {label}"
        super().__init__(f"promotion of {topic} {version}{to} refused:\n" + "\n".join(f"- {f}" for f in failures))


def _prompts_dir(prompts_dir: Path | str | None) -> Path:
    return Path(prompts_dir or include_dir() / "prompts").resolve()


def actor_name(actor: str | None = None) -> str:
    """Who acts: ``actor``, ``PIPELINE_HUB_ACTOR`` (e.g. the CI user), else the OS login name."""
    return actor or get_settings().actor or getpass.getuser()


def score_summary(score: dict[str, Any] | None) -> dict[str, Any] | None:
    """The parts of a score the audit log keeps (metric, invalid rate, cost, model, what it was computed on)."""
    if score is None:
        return None
    return {
        "version": score["version"],
        "metric": score.get("gate_metric"),
        "value": score.get("gate_value"),
        "invalid_rate": score["invalid"]["rate"],
        "cost_usd": score["usage"].get("cost_usd"),
        "model": score["model"],
        "examples_sha256": score["examples_sha256"],
        "template_sha256": score["template_sha256"],
        "scored_at": score["scored_at"],
    }


def _fresh(score: dict | None, topic: str, version: str, examples: str, root: Path) -> str | None:
    """Why ``score`` cannot be used for the gate (None when it can)."""
    hint = f"run `pipeline-hub score --topic {topic} --version {version}`"
    if score is None:
        return f"no score for {version}: {hint}"
    if score["examples_sha256"] != examples:
        return f"the score of {version} is stale: the examples changed since {score['scored_at']}; {hint}"
    current = load_topic(topic, root, version=version).prompt.template_sha256
    if score["template_sha256"] != current:
        return f"the score of {version} is stale: its template (or a shared partial) changed; {hint}"
    return None


def evaluate_gate(
    topic: str, version: str, *, prompts_dir: Path | str | None = None, artifacts: str | None = None
) -> dict[str, Any]:
    """Check ``version`` of ``topic`` against its gate; ``{"passed", "failures", "gate", "candidate", "prod"}``.

    ``candidate`` and ``prod`` are the scores used (None when missing). Raises :class:`PromotionError`
    for an unknown topic or version.
    """
    root = _prompts_dir(prompts_dir)
    try:
        current = load_topic(topic, root)
        load_topic(topic, root, version=version)
    except RegistryError as exc:
        raise PromotionError(str(exc)) from None
    gate = topic_metadata(current).get("gate") or {}
    metric, minimum = gate.get("metric"), gate.get("min")
    examples = examples_sha256(topic, root)
    prod_version = current.version
    candidate = read_score(topic, version, artifacts)
    failures: list[str] = []
    if not metric or minimum is None:
        failures.append(f"{current.metadata_path}: gate.metric and gate.min must be set")
    stale = _fresh(candidate, topic, version, examples, root)
    if stale:
        failures.append(stale)
        candidate_ok = False
    else:
        candidate_ok = True
    value = candidate.get("metrics", {}).get(metric) if candidate_ok and metric else None
    if candidate_ok and metric and minimum is not None:
        if value is None:
            failures.append(f"the score has no metric '{metric}' (task {candidate.get('task')})")
        elif value < minimum:
            failures.append(f"{metric} {value:.3f} is below the gate minimum {minimum:.3f} (gate.min)")
        max_invalid = gate.get("max_invalid_rate", 1.0)
        rate = candidate["invalid"]["rate"]
        if rate > max_invalid:
            failures.append(
                f"invalid-answer rate {rate:.3f} is above the gate maximum {max_invalid:.3f} (gate.max_invalid_rate)"
            )
    prod = read_score(topic, prod_version, artifacts)
    if version != prod_version and candidate_ok and metric and value is not None:
        stale_prod = _fresh(prod, topic, prod_version, examples, root)
        if stale_prod:
            failures.append(f"cannot compare with prod {prod_version}: {stale_prod}")
        elif prod["model"] != candidate["model"]:
            failures.append(
                f"prod {prod_version} was scored on model {prod['model']}, {version} on {candidate['model']}: "
                f"score both on the same model"
            )
        else:
            prod_value = prod["metrics"].get(metric) or 0.0
            margin = float(gate.get("max_regression", 0.0))
            if value < prod_value - margin - 1e-12:
                failures.append(
                    f"{metric} {value:.3f} is worse than prod {prod_version}'s {prod_value:.3f} by "
                    f"{prod_value - value:.3f}, more than the allowed {margin:.3f} (gate.max_regression)"
                )
            max_cost = gate.get("max_cost_increase")
            cost, prod_cost = candidate["usage"].get("cost_usd"), prod["usage"].get("cost_usd")
            if max_cost is not None and cost is not None and prod_cost:
                increase = cost / prod_cost - 1
                if increase > max_cost:
                    failures.append(
                        f"cost {cost:.6f} USD is {increase:.1%} above prod {prod_version}'s {prod_cost:.6f} USD "
                        f"(gate.max_cost_increase {max_cost:.1%})"
                    )
    return {
        "passed": not failures,
        "failures": failures,
        "gate": gate,
        "prod_version": prod_version,
        "candidate": candidate,
        "prod": prod if version != prod_version else None,
    }


def read_audit(prompts_dir: Path | str | None = None, topic: str | None = None) -> list[dict[str, Any]]:
    """Entries of the audit log (oldest first), of one ``topic`` when given."""
    path = _prompts_dir(prompts_dir) / AUDIT_FILE
    if not path.exists():
        return []
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [e for e in entries if topic is None or e.get("topic") == topic]


def _append(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(line if line.endswith("\n") else line + "\n")


def _record(root: Path, topic_dir: Path, entry: dict[str, Any], changelog_line: str) -> None:
    _append(root / AUDIT_FILE, json.dumps(entry, sort_keys=True, default=str))
    changelog = topic_dir / CHANGELOG_FILE
    if not changelog.exists():
        changelog.write_text(
            f"# {topic_dir.name}: production changelog\n\n"
            "Written by `pipeline-hub promote`, `rollback` and `label delete` (the audit log is "
            "`include/prompts/_audit.jsonl`).\n\n"
        )
    _append(changelog, changelog_line)


def _fmt_score(s: dict[str, Any] | None) -> str:
    if not s or s.get("value") is None:
        return "no score"
    return f"{s['metric']} {s['value']:.3f}, invalid {s['invalid_rate']:.1%}"


def check_label(label: str) -> str:
    """``label`` when a promotion may move it (``prod`` or a named label); else :class:`PromotionError`.

    ``dev`` is refused: it is the version under development, set by hand in metadata.yaml and scored
    and canaried from there; the gate stands between it and every label a run can pin.
    """
    if label == "dev":
        raise PromotionError(
            "label 'dev' is not moved by promote: it is set by hand in metadata.yaml (the version under "
            "development); promote to prod or a named label (--label canary)"
        )
    if label != "prod" and not LABEL_PATTERN.match(label):
        raise PromotionError(f"label name '{label}' must match {LABEL_PATTERN.pattern} (or be prod)")
    return label


def _entry(action: str, topic: str, label: str, previous: str | None, to: str | None, actor: str | None) -> dict:
    return {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "actor": actor_name(actor),
        "action": action,
        "topic": topic,
        "label": label,
        "from": previous,
        "to": to,
    }


def promote(
    topic: str,
    version: str,
    *,
    label: str = "prod",
    prompts_dir: Path | str | None = None,
    artifacts: str | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """Move ``topic``'s ``label`` (``prod`` by default) to ``version`` if it passes the gate; return the audit entry.

    A named label is created by its first promotion; every label passes the same gate as prod
    (:func:`evaluate_gate`, compared with the current prod's score), so no label a run can pin
    bypasses it. Raises :class:`GateRefused` (naming each failed check) or :class:`PromotionError`
    (unknown version, ``dev``, a bad label name, already there).
    """
    root = _prompts_dir(prompts_dir)
    check_label(label)
    result = evaluate_gate(topic, version, prompts_dir=root, artifacts=artifacts)
    meta_path = root / topic / "metadata.yaml"
    previous = result["prod_version"] if label == "prod" else read_labels(meta_path).get(label)
    if version == previous:
        raise PromotionError(f"{topic}: {version} is already {label}")
    if not result["passed"]:
        raise GateRefused(topic, version, result["failures"], label)
    if label == "prod":
        set_pointer(meta_path, "prod", version)
    else:
        set_label(meta_path, label, version)
    spec = (yaml.safe_load(meta_path.read_text())["versions"] or {}).get(version) or {}
    entry = _entry("promote", topic, label, previous, version, actor)
    entry["gate"] = result["gate"]
    if label == "prod":
        entry["scores"] = {"to": score_summary(result["candidate"]), "from": score_summary(result["prod"])}
        line = (
            f"- {entry['at']} **promote** {previous} → {version} by {entry['actor']}: "
            f"{_fmt_score(entry['scores']['to'])} (prod {previous}: {_fmt_score(entry['scores']['from'])}). "
            f"{version}: {spec.get('changelog', '')}"
        )
    else:
        entry["scores"] = {
            "to": score_summary(result["candidate"]),
            "from": score_summary(read_score(topic, previous, artifacts)) if previous else None,
            "prod": score_summary(result["prod"]),
        }
        line = (
            f"- {entry['at']} **promote** label {label}: {previous or '(new)'} → {version} by {entry['actor']}: "
            f"{_fmt_score(entry['scores']['to'])} (prod {result['prod_version']}: "
            f"{_fmt_score(entry['scores']['prod'])}). {version}: {spec.get('changelog', '')}"
        )
    _record(root, root / topic, entry, line)
    return entry


def _current(root: Path, topic: str, label: str) -> str:
    """The version ``label`` of ``topic`` points at; :class:`PromotionError` when unknown."""
    try:
        pointers = load_topic(topic, root).pointers
    except RegistryError as exc:
        raise PromotionError(str(exc)) from None
    if label not in pointers:
        known = ", ".join(p for p in pointers if p != "dev")
        raise PromotionError(f"{root / topic / 'metadata.yaml'}: {topic} has no label '{label}' (known: {known})")
    return pointers[label]


def rollback_target(topic: str, prompts_dir: Path | str | None = None, label: str = "prod") -> tuple[str, str]:
    """``(current version of label, version to roll back to)`` from the audit log; raises :class:`PromotionError`.

    Only the entries of ``label`` count (an entry without ``label`` is prod's, as written before labels
    existed): promotions push, rollbacks pop, a ``delete`` clears the label's history.
    """
    root = _prompts_dir(prompts_dir)
    check_label(label)
    current = _current(root, topic, label)
    stack: list[str] = []
    for entry in read_audit(root, topic):
        if (entry.get("label") or "prod") != label:
            continue
        if entry["action"] == "promote":
            if entry["from"] is not None and (not stack or stack[-1] != entry["from"]):
                stack.append(entry["from"])
            stack.append(entry["to"])
        elif entry["action"] == "rollback" and stack and stack[-1] == entry["from"]:
            stack.pop()
        elif entry["action"] == "delete":
            stack = []
    if not stack or stack[-1] != current:
        where = root / AUDIT_FILE
        if not stack:
            raise PromotionError(f"{topic}: no promotion of {label} in {where}; nothing to roll back to")
        raise PromotionError(
            f"{topic}: {label} is {current} but {where} says {stack[-1]} (edited by hand?); set the label explicitly"
        )
    if len(stack) < 2:
        hint = "" if label == "prod" else f" (remove it: pipeline-hub label delete --topic {topic} --label {label})"
        raise PromotionError(f"{topic}: {current} is the first recorded {label} version; nothing to roll back to{hint}")
    return current, stack[-2]


def rollback(
    topic: str,
    *,
    label: str = "prod",
    prompts_dir: Path | str | None = None,
    artifacts: str | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """Move ``topic``'s ``label`` (``prod`` by default) back to its previously promoted version; return the audit entry.

    No gate: the target passed it when it was promoted. Raises :class:`PromotionError` (see
    :func:`rollback_target`).
    """
    root = _prompts_dir(prompts_dir)
    current, target = rollback_target(topic, root, label)
    meta_path = root / topic / "metadata.yaml"
    if label == "prod":
        set_pointer(meta_path, "prod", target)
    else:
        set_label(meta_path, label, target)
    entry = _entry("rollback", topic, label, current, target, actor)
    entry["scores"] = {
        "to": score_summary(read_score(topic, target, artifacts)),
        "from": score_summary(read_score(topic, current, artifacts)),
    }
    what = "" if label == "prod" else f"label {label}: "
    line = f"- {entry['at']} **rollback** {what}{current} → {target} by {entry['actor']}"
    _record(root, root / topic, entry, line)
    return entry


def delete_label(
    topic: str, label: str, *, prompts_dir: Path | str | None = None, actor: str | None = None
) -> dict[str, Any]:
    """Remove named ``label`` from ``topic``'s ``labels:``; return the audit entry (``action`` ``delete``).

    ``dev`` and ``prod`` cannot be deleted. A run pinning the label afterwards fails at plan time.
    Raises :class:`PromotionError`.
    """
    root = _prompts_dir(prompts_dir)
    check_label(label)
    if label == "prod":
        raise PromotionError(f"{topic}: prod cannot be deleted; promote or roll it back")
    current = _current(root, topic, label)
    set_label(root / topic / "metadata.yaml", label, None)
    entry = _entry("delete", topic, label, current, None, actor)
    _record(root, root / topic, entry, f"- {entry['at']} **delete** label {label} (was {current}) by {entry['actor']}")
    return entry
