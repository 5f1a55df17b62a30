"""Static checks of the prompt registry: ``pipeline-hub validate [DIR]`` and the evaluation DAG's first task.

For every topic folder under ``DIR`` (default ``include/prompts``) it checks, each failure a
:class:`Problem` printed as ``path:line: message``:

1. ``metadata.yaml`` against the published JSON Schema ``include/prompts/metadata.schema.json``
   (Draft 2020-12), and that ``name`` equals the folder;
2. the ``dev`` and ``prod`` pointers and the named ``labels`` name declared versions; label names match
   ``^[a-z][a-z0-9_-]{0,39}$`` and are not ``dev``/``prod``; every version has a changelog line (schema);
3. every version's template exists and parses, with the partials it includes or imports, and has the
   blocks ``system`` and ``user``;
4. the variables a template uses (its own and those of the partials it includes with context) equal the
   declared ``inputs`` plus ``context`` variables: none undeclared, none unused;
5. every version's output schema is valid JSON Schema Draft 2020-12 and inside the subset OpenAI
   Structured Outputs accepts in strict mode (the hook sends ``strict: true``), see
   :func:`~pipeline_hub.lifecycle.strict_schema.strict_problems`;
6. the ``evaluation`` and ``gate`` sections name fields of the output schema and a metric of the task;
7. the labelled examples (``examples/*.jsonl``, at least :data:`MIN_EXAMPLES`) are JSON objects
   ``{"id", "input", "expected"}``; ``input`` carries every required input field (and the context query
   field); ``expected`` matches the output schemas of ``dev``, ``prod`` and the labels with ``required`` relaxed
   (gold labels are partial, e.g. no ``confidence``) and holds what the evaluation task scores;
8. a version's ``cascade`` parses and fits its topic (:mod:`~pipeline_hub.lifecycle.cascade_checks`).

Line numbers come from the YAML/JSON node marks (PyYAML's composer also reads JSON), template line
numbers from Jinja2's parser. Sources: JSON Schema 2020-12 (json-schema.org); OpenAI "Structured Outputs,
supported schemas" (platform.openai.com/docs/guides/structured-outputs#supported-schemas).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import jsonschema
import yaml
from jinja2 import nodes

from pipeline_hub.lifecycle.cascade_checks import cascade_block_problem
from pipeline_hub.lifecycle.pointers import label_problems
from pipeline_hub.lifecycle.problems import Located, Problem, display_path, jsonable, path_text, shorten
from pipeline_hub.lifecycle.strict_schema import strict_problems
from pipeline_hub.prompts.registry import make_env

MIN_EXAMPLES = 50
SCHEMA_FILE = "metadata.schema.json"
POINTERS = ("dev", "prod")
METRICS_BY_TASK = {
    "classification": ("accuracy", "macro_f1"),
    "extraction": ("precision", "recall", "f1"),
    "matching": ("accuracy", "precision", "recall", "f1"),
}


@lru_cache(maxsize=4)
def metadata_schema(prompts_dir: Path) -> dict[str, Any]:
    """The published metadata JSON Schema (``<prompts_dir>/metadata.schema.json``, else the bundled one)."""
    path = prompts_dir / SCHEMA_FILE
    if not path.is_file():
        from pipeline_hub.config import include_dir

        path = include_dir() / "prompts" / SCHEMA_FILE
    return json.loads(path.read_text())


def relaxed_schema(schema: Any) -> Any:
    """``schema`` with every ``required`` dropped, recursively: what a partial gold answer must match."""
    if isinstance(schema, dict):
        return {k: relaxed_schema(v) for k, v in schema.items() if k != "required"}
    if isinstance(schema, list):
        return [relaxed_schema(v) for v in schema]
    return schema


class _TopicChecker:
    """Runs the checks of one topic folder, collecting :class:`Problem` s."""

    def __init__(self, root: Path, topic_dir: Path, env: jinja2.Environment, problems: set[Problem]) -> None:
        self.root = root
        self.dir = topic_dir
        self.env = env
        self.problems = problems
        self.meta_path = topic_dir / "metadata.yaml"
        self.meta_display = display_path(self.meta_path)
        self.meta: dict[str, Any] = {}
        self.loc = Located("")
        self.schemas: dict[str, dict[str, Any]] = {}  # version -> output schema (parsed, valid)
        self.flagged: set[tuple[str, ...]] = set()  # (versions, v, key) the metadata schema found wrong

    def add(self, path: Path | str, line: int, message: str) -> None:
        shown = path if isinstance(path, str) else display_path(path)
        self.problems.add(Problem(shown, line, message))

    def at_meta(self, path: Sequence[str | int], message: str, *, key: bool = False) -> None:
        self.add(self.meta_display, self.loc.line(path, key=key), message)

    # -- 1, 2: metadata ------------------------------------------------------------------------------
    def check_metadata(self) -> bool:
        text = self.meta_path.read_text()
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            self.add(self.meta_path, mark.line + 1 if mark else 1, f"invalid YAML: {getattr(exc, 'problem', exc)}")
            return False
        self.loc = Located(text)
        if not isinstance(data, dict):
            self.add(self.meta_path, 1, "metadata must be a mapping")
            return False
        self.meta = jsonable(data)
        validator = jsonschema.Draft202012Validator(
            metadata_schema(self.root), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )
        for error in sorted(validator.iter_errors(self.meta), key=lambda e: list(map(str, e.absolute_path))):
            path = list(error.absolute_path)
            self.flagged.add(tuple(map(str, path[:3])))
            if path == ["labels"] and "propertyNames" in error.absolute_schema_path:
                continue  # label names: label_problems below says what is wrong with which
            if error.validator == "additionalProperties" and isinstance(error.instance, dict):
                known = set(error.schema.get("properties") or {})
                for extra in sorted(set(error.instance) - known):
                    self.at_meta(
                        [*path, extra],
                        f"{path_text([*path, extra])}: unknown key (allowed here: {', '.join(sorted(known))})"
                        " (metadata schema)",
                        key=True,
                    )
                continue
            # A missing key is reported at the key of the mapping that lacks it.
            self.at_meta(
                path,
                f"{path_text(path)}: {shorten(error.message)} (metadata schema)",
                key=error.validator == "required" and bool(path),
            )
        if self.meta.get("name") not in (None, self.dir.name):
            self.at_meta(["name"], f"name '{self.meta['name']}' differs from the folder name '{self.dir.name}'")
        versions = self.meta.get("versions") if isinstance(self.meta.get("versions"), dict) else {}
        for pointer in POINTERS:
            target = self.meta.get(pointer)
            if isinstance(target, str) and target not in versions:
                declared = ", ".join(sorted(versions)) or "none"
                self.at_meta(
                    [pointer],
                    f"pointer '{pointer}' names version '{target}', which is not declared under 'versions' "
                    f"(declared: {declared})",
                )
        for path, message, key in label_problems(self.meta):
            self.at_meta(path, message, key=key)
        return True

    def declared_variables(self) -> dict[str, list[str | int]]:
        """Declared template variables -> their key path in metadata.yaml."""
        out: dict[str, list[str | int]] = {}
        for section in ("inputs", "context"):
            if isinstance(self.meta.get(section), dict):
                out.update({name: [section, name] for name in self.meta[section]})
        return out

    # -- 3, 4: templates ------------------------------------------------------------------------------
    def check_template(self, version: str, spec: dict[str, Any]) -> None:
        rel = spec.get("template")
        if not isinstance(rel, str):
            return
        name = f"{self.dir.name}/{rel}"
        if not (self.root / name).is_file():
            self.at_meta(["versions", version, "template"], f"template {rel} of {version} does not exist")
            return
        used = self._variables(name, version)
        if used is None:
            return
        declared = self.declared_variables()
        for var, (file, line) in sorted(used.items()):
            if var not in declared:
                self.add(
                    file,
                    line,
                    f"variable '{var}' is not a declared input of {self.dir.name} (declared: "
                    f"{', '.join(sorted(declared)) or 'none'}); add it under 'inputs' or 'context'",
                )
        for var, path in sorted(declared.items()):
            if var not in used:
                self.at_meta(path, f"input '{var}' is declared but template {rel} ({version}) never uses it", key=True)

    def _variables(self, name: str, version: str) -> dict[str, tuple[Path, int]] | None:
        """Variables ``name`` reads from the render context -> (file, first line); None if unparseable."""
        found: dict[str, tuple[Path, int]] = {}
        ok = True
        seen: set[str] = set()

        def visit(tname: str, with_context: bool, ref_file: Path | None, ref_line: int) -> None:
            nonlocal ok
            if tname in seen:
                return
            seen.add(tname)
            try:
                source, filename, _ = self.env.loader.get_source(self.env, tname)
            except jinja2.TemplateNotFound:
                ok = False
                self.add(ref_file or self.meta_path, ref_line, f"template '{tname}' not found")
                return
            path = Path(filename)
            try:
                ast = self.env.parse(source, tname, filename)
            except jinja2.TemplateSyntaxError as exc:
                ok = False
                self.add(path, exc.lineno or 1, f"template syntax error: {exc.message}")
                return
            if tname == name:
                blocks = {b.name for b in ast.find_all(nodes.Block)}
                for block in ("system", "user"):
                    if block not in blocks:
                        self.add(path, 1, f"template has no '{{% block {block} %}}' ({version})")
            if with_context:
                undeclared = jinja2.meta.find_undeclared_variables(ast) - set(self.env.globals)
                for node in ast.find_all(nodes.Name):
                    if node.ctx == "load" and node.name in undeclared:
                        prev = found.get(node.name)
                        if prev is None or (prev[0] == path and node.lineno < prev[1]):
                            found[node.name] = (path, node.lineno)
            for node in ast.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
                target = node.template
                if not isinstance(target, nodes.Const) or not isinstance(target.value, str):
                    ok = False
                    self.add(path, node.lineno, "dynamic include/import cannot be hashed; use a literal name")
                    continue
                ctx = isinstance(node, nodes.Include | nodes.Extends) or bool(getattr(node, "with_context", False))
                visit(target.value, with_context and ctx, path, node.lineno)

        visit(name, True, None, self.loc.line(["versions", version, "template"]))
        return found if ok else None

    # -- 5, 6: output schema, evaluation, gate --------------------------------------------------------
    def check_schema(self, version: str, spec: dict[str, Any]) -> None:
        rel = spec.get("output_schema")
        if not isinstance(rel, str):
            return
        path = self.dir / rel
        if not path.is_file():
            self.at_meta(["versions", version, "output_schema"], f"output schema {rel} of {version} does not exist")
            return
        text = path.read_text()
        try:
            schema = json.loads(text)
        except json.JSONDecodeError as exc:
            self.add(path, exc.lineno, f"not valid JSON: {exc.msg}")
            return
        loc = Located(text)
        if not isinstance(schema, dict):
            self.add(path, 1, "output schema must be a JSON object")
            return
        declared = schema.get("$schema")
        if declared not in (None, "https://json-schema.org/draft/2020-12/schema"):
            self.add(path, loc.line(["$schema"]), f"$schema is {declared}; output schemas use Draft 2020-12")
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            where = list(exc.absolute_path)
            self.add(
                path,
                loc.line(where),
                f"invalid JSON Schema (Draft 2020-12) at {path_text(where)}: {shorten(exc.message)}",
            )
            return
        for where, message in strict_problems(schema):
            self.add(path, loc.line(where, key=bool(where)), message)
        self.schemas[version] = schema

    def check_evaluation(self) -> None:
        evaluation = self.meta.get("evaluation") if isinstance(self.meta.get("evaluation"), dict) else {}
        gate = self.meta.get("gate") if isinstance(self.meta.get("gate"), dict) else {}
        task = evaluation.get("task")
        if task in METRICS_BY_TASK and gate.get("metric") and gate["metric"] not in METRICS_BY_TASK[task]:
            self.at_meta(
                ["gate", "metric"],
                f"gate metric '{gate['metric']}' is not reported for task '{task}' "
                f"(one of: {', '.join(METRICS_BY_TASK[task])})",
            )
        for version, schema in self.schemas.items():
            props = schema.get("properties") or {}
            for key in ("label_field", "match_field", "items"):
                field = evaluation.get(key)
                if isinstance(field, str) and field not in props:
                    self.at_meta(
                        ["evaluation", key],
                        f"evaluation.{key} '{field}' is not a property of {version}'s output schema",
                    )
            items = props.get(evaluation.get("items")) if isinstance(evaluation.get("items"), str) else None
            if task == "extraction" and isinstance(items, dict):
                item_props = (items.get("items") or {}).get("properties") or {}
                for field in evaluation.get("fields") or {}:
                    if field not in item_props:
                        self.at_meta(
                            ["evaluation", "fields", field],
                            f"evaluation field '{field}' is not a property of {version}'s "
                            f"'{evaluation['items']}' items",
                            key=True,
                        )

    # -- 7: examples ----------------------------------------------------------------------------------
    def check_examples(self) -> None:
        files = sorted((self.dir / "examples").glob("*.jsonl"))
        if not files:
            self.at_meta([], "no labelled examples: add examples/*.jsonl")
            return
        inputs = self.meta.get("inputs") if isinstance(self.meta.get("inputs"), dict) else {}
        required = [cfg["field"] for cfg in inputs.values() if isinstance(cfg, dict) and cfg.get("required", True)]
        context = self.meta.get("context") if isinstance(self.meta.get("context"), dict) else {}
        required += [c.get("query_field", "name") for c in context.values() if isinstance(c, dict)]
        evaluation = self.meta.get("evaluation") if isinstance(self.meta.get("evaluation"), dict) else {}
        gold_key = {
            "classification": evaluation.get("label_field"),
            "matching": evaluation.get("match_field"),
            "extraction": evaluation.get("items"),
        }.get(evaluation.get("task"))
        validators = {}
        labels = self.meta.get("labels") if isinstance(self.meta.get("labels"), dict) else {}
        for version in [self.meta.get(p) for p in POINTERS] + list(labels.values()):
            if isinstance(version, str) and version in self.schemas and version not in validators:
                validators[version] = jsonschema.Draft202012Validator(relaxed_schema(self.schemas[version]))
        count = 0
        ids: dict[str, tuple[Path, int]] = {}
        for file in files:
            for lineno, line in enumerate(file.read_text().splitlines(), start=1):
                if not line.strip():
                    continue
                count += 1
                try:
                    example = json.loads(line)
                except json.JSONDecodeError as exc:
                    self.add(file, lineno, f"not valid JSON: {exc.msg}")
                    continue
                if not isinstance(example, dict) or not isinstance(example.get("input"), dict):
                    self.add(
                        file, lineno, "an example is an object with 'id', 'input' (object) and 'expected' (object)"
                    )
                    continue
                eid = example.get("id")
                if eid is None:
                    self.add(file, lineno, "example has no 'id'")
                elif str(eid) in ids:
                    first = ids[str(eid)]
                    self.add(file, lineno, f"example id '{eid}' repeats {display_path(first[0])}:{first[1]}")
                else:
                    ids[str(eid)] = (file, lineno)
                for field in dict.fromkeys(required):
                    value = example["input"].get(field)
                    if value is None or (isinstance(value, str) and not value.strip()):
                        self.add(
                            file,
                            lineno,
                            f"example '{eid}': input field '{field}' (a required input) is missing or empty",
                        )
                expected = example.get("expected")
                if not isinstance(expected, dict):
                    self.add(file, lineno, f"example '{eid}': 'expected' must be an object")
                    continue
                if gold_key and gold_key not in expected:
                    self.add(
                        file,
                        lineno,
                        f"example '{eid}': expected has no '{gold_key}' (scored by evaluation task "
                        f"'{evaluation.get('task')}')",
                    )
                for version, validator in validators.items():
                    error = jsonschema.exceptions.best_match(validator.iter_errors(expected))
                    if error is not None:
                        self.add(
                            file,
                            lineno,
                            f"example '{eid}': expected{error.json_path[1:]} does not match the output schema of "
                            f"{version}: fails '{error.validator}' ({shorten(error.message, 100)})",
                        )
        if count < MIN_EXAMPLES:
            self.add(files[0], 1, f"{count} labelled examples; at least {MIN_EXAMPLES} are required")

    # -- 8: cascade ------------------------------------------------------------------------------------
    def check_cascade(self, version: str, spec: dict[str, Any]) -> None:
        problem = cascade_block_problem(self.meta, self.dir.name, spec, self.schemas.get(version))
        if problem and ("versions", version, "cascade") not in self.flagged:  # else the metadata schema said it
            self.at_meta(["versions", version, "cascade"], f"versions.{version}: {problem}")

    def run(self) -> None:
        if not self.check_metadata():
            return
        versions = self.meta.get("versions") if isinstance(self.meta.get("versions"), dict) else {}
        for version, spec in versions.items():
            if isinstance(spec, dict):
                self.check_template(version, spec)
                self.check_schema(version, spec)
                self.check_cascade(version, spec)
        self.check_evaluation()
        self.check_examples()


def validate_registry(prompts_dir: Path | str | None = None, topics: Iterable[str] | None = None) -> list[Problem]:
    """Every problem of the registry under ``prompts_dir`` (default ``include/prompts``), sorted by file and line.

    ``topics`` limits the check to those folders. An empty list means the registry is valid. Raises
    ``FileNotFoundError`` when ``prompts_dir`` does not exist.
    """
    from pipeline_hub.config import include_dir

    root = Path(prompts_dir or include_dir() / "prompts").resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such prompts directory")
    env = make_env(root)
    problems: set[Problem] = set()
    chosen = set(topics) if topics else None
    folders = sorted(p.parent for p in root.glob("*/metadata.yaml") if not p.parent.name.startswith("_"))
    if not folders:
        problems.add(Problem(display_path(root), 1, "no topic folders (<topic>/metadata.yaml)"))
    for folder in folders:
        if chosen is None or folder.name in chosen:
            _TopicChecker(root, folder, env, problems).run()
    return sorted(problems)
