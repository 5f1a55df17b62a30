"""PII benchmark: texts/s and recall of the scrubber against a plain Presidio analyze loop and spaCy alone.

Run by hand, never as part of the test suite (``tests/test_benchmark_smoke.py`` only checks behaviour)::

    .venv/bin/python benchmarks/pii.py                  # 3 000 distinct texts (~3 min on 2 cores)
    .venv/bin/python benchmarks/pii.py --texts 600 --json
    .venv/bin/python benchmarks/pii.py --repeat 3       # floor and one-process scrubber only: the ratio

Texts: N distinct labelled CRM / e-mail sentences from the evaluation-set generator
(``tests/data/make_pii_eval.py``) with another seed, so none repeats and deduplication gains nothing
unless ``--dup-rate`` adds repeats (CRM exports repeat signatures and boilerplate). Each method sees the
same texts; recall is scored as ``pipeline-hub pii-eval`` does (:func:`pipeline_hub.pii.evaluate.score`).

Methods:

``plain``
    ``AnalyzerEngine.analyze`` in a loop, one call per text: Presidio's default recognizer registry and
    NLP engine (the same spaCy model, full pipeline) with the entities the issue names and our
    score threshold, i.e. what a straightforward integration does.
``scrubber``
    :class:`pipeline_hub.pii.engine.PiiAnalyzer` as the scrub stage runs it (``include/pii/``: only the
    configured recognizers, ten entities, spaCy ``nlp.pipe`` batches without the components PERSON does
    not need, deduplication, worker processes). Timed cold (worker start-up and model loading included)
    and warm (the pool already up, as in a long run), and in one process only (``workers: 1``), which
    compares per core with ``plain`` and so depends less on what else the machine runs.
``spacy``
    spaCy ``nlp.pipe`` alone over the same texts with the model Presidio loads (full pipeline); its
    recall is for PERSON only (``PERSON`` entities of the model).
``floor``
    spaCy ``nlp.pipe`` with only ``ner`` (the same model, every other component excluded, the
    scrubber's batch size): the least any analysis that runs this NER model over every text costs. The
    issue-16 target is scrubber (1 process) >= 0.9x the floor in texts/s; ``ratio_vs_floor`` in the
    output. With ``--repeat N`` the floor and the one-process scrubber are timed N times, alternating,
    and each keeps its fastest run (as :mod:`timeit` does: on a shared machine the fastest run is the
    one least disturbed by other processes); ``ratio_vs_floor_cpu`` is the ratio by CPU time of this
    process (texts per CPU second), which other processes on the machine disturb less.

The machine's load average is printed with the results: this machine is shared.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))

from pipeline_hub.pii.config import ScrubConfig  # noqa: E402
from pipeline_hub.pii.engine import Detection, PiiAnalyzer, _offline_tldextract  # noqa: E402
from pipeline_hub.pii.evaluate import RECALL_TARGETS, score  # noqa: E402

ISSUE_ENTITIES = list(RECALL_TARGETS)


def make_texts(n: int, seed: int = 7, dup_rate: float = 0.0) -> list[dict]:
    """``n`` labelled records (``{"text", "spans"}``), distinct unless ``dup_rate`` > 0 repeats some."""
    spec = importlib.util.spec_from_file_location("make_pii_eval", REPO / "tests" / "data" / "make_pii_eval.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    rng = random.Random(seed)
    seen, records = set(), []
    while len(records) < n:
        if records and rng.random() < dup_rate:
            records.append(rng.choice(records))
            continue
        b = gen.record(rng)
        if b.text not in seen:
            seen.add(b.text)
            records.append({"text": b.text, "spans": b.spans})
    return records


def recall_of(records: list[dict], detections: list[list[Detection]], entities: list[str]) -> dict:
    report = score(records, detections)
    per = {e: report[e]["recall"] for e in entities if e in report}
    support = sum(report[e]["support"] for e in entities if e in report)
    found = sum(report[e]["found"] for e in entities if e in report)
    return {"micro": round(found / support, 4) if support else None, "per_entity": per}


def plain_analyzer(config: ScrubConfig):
    _offline_tldextract()
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    nlp = NlpEngineProvider(nlp_configuration=config.nlp_engine).create_engine()
    return AnalyzerEngine(nlp_engine=nlp, supported_languages=[config.language])


def run_plain(records, config) -> dict:
    engine = plain_analyzer(config)
    engine.analyze("warm up Maria Gonzalez +44 20 7946 0958", language="en")
    texts = [r["text"] for r in records]
    start, cpu = time.perf_counter(), time.process_time()
    found = [
        engine.analyze(t, language=config.language, entities=ISSUE_ENTITIES, score_threshold=config.score_threshold)
        for t in texts
    ]
    wall = time.perf_counter() - start
    dets = [[Detection(r.entity_type, r.start, r.end, r.score) for r in f] for f in found]
    return {
        "method": "plain",
        "seconds": round(wall, 2),
        "texts_per_s": round(len(texts) / wall, 1),
        "cpu_s": round(time.process_time() - cpu, 2),
        "recall": recall_of(records, dets, ISSUE_ENTITIES),
    }


def run_scrubber(records, config, workers: int | None) -> list[dict]:
    if workers is not None:
        config.workers = workers
    texts = [r["text"] for r in records]
    rows = []
    with PiiAnalyzer(config) as analyzer:
        _ = analyzer.engine  # this process's engine is loaded in either case: time the analysis itself
        for label in ("scrubber (cold: workers start)", "scrubber (warm)"):
            rows.append(_timed(label, analyzer, records, texts))
            rows[-1]["processes"] = config.worker_count() if len(set(texts)) >= config.parallel_min_texts else 1
    single = dataclasses.replace(config, workers=1)
    with PiiAnalyzer(single) as analyzer:
        rows.append(_timed("scrubber (1 process)", analyzer, records, texts))
        rows[-1]["processes"] = 1
    return rows


def _timed(label: str, analyzer: PiiAnalyzer, records: list[dict], texts: list[str]) -> dict:
    start, cpu = time.perf_counter(), time.process_time()
    dets = analyzer.analyze(texts)
    wall = time.perf_counter() - start
    return {
        "method": label,
        "seconds": round(wall, 2),
        "texts_per_s": round(len(texts) / wall, 1),
        "cpu_s": round(time.process_time() - cpu, 2),  # this process only
        "recall": recall_of(records, dets, ISSUE_ENTITIES),
    }


def run_spacy(records, config) -> dict:
    import spacy

    model = next(m["model_name"] for m in config.nlp_engine["models"] if m["lang_code"] == config.language)
    nlp = spacy.load(model)
    texts = [r["text"] for r in records]
    start = time.perf_counter()
    docs = list(nlp.pipe(texts, batch_size=config.batch_size))
    wall = time.perf_counter() - start
    dets = [[Detection("PERSON", e.start_char, e.end_char, 0.85) for e in d.ents if e.label_ == "PERSON"] for d in docs]
    return {
        "method": "spacy nlp.pipe (full pipeline)",
        "seconds": round(wall, 2),
        "texts_per_s": round(len(texts) / wall, 1),
        "recall": recall_of(records, dets, ["PERSON"]),
    }


def load_floor_model(config: ScrubConfig):
    """The configured spaCy model with only its ``ner`` component (the rest excluded, not just disabled)."""
    import spacy

    model = next(m["model_name"] for m in config.nlp_engine["models"] if m["lang_code"] == config.language)
    names = spacy.load(model).component_names
    return spacy.load(model, exclude=[n for n in names if n != "ner"])


def run_floor(records, config, nlp=None) -> dict:
    """Time ``nlp.pipe`` with only ``ner`` over the texts; recall for PERSON only."""
    nlp = nlp or load_floor_model(config)
    list(nlp.pipe(["warm up Maria Gonzalez +44 20 7946 0958"]))
    texts = [r["text"] for r in records]
    start, cpu = time.perf_counter(), time.process_time()
    docs = list(nlp.pipe(texts, batch_size=config.batch_size))
    wall = time.perf_counter() - start
    dets = [[Detection("PERSON", e.start_char, e.end_char, 0.85) for e in d.ents if e.label_ == "PERSON"] for d in docs]
    return {
        "method": "floor: spacy nlp.pipe (ner only)",
        "components": list(nlp.pipe_names),
        "seconds": round(wall, 2),
        "texts_per_s": round(len(texts) / wall, 1),
        "cpu_s": round(time.process_time() - cpu, 2),
        "recall": recall_of(records, dets, ["PERSON"]),
    }


def run_ratio(records, config, repeat: int) -> list[dict]:
    """Floor and one-process scrubber, ``repeat`` times alternating; each method's fastest run."""
    nlp = load_floor_model(config)
    single = dataclasses.replace(config, workers=1)
    texts = [r["text"] for r in records]
    floors, scrubs = [], []
    with PiiAnalyzer(single) as analyzer:
        _ = analyzer.engine
        analyzer.analyze(["warm up Maria Gonzalez +44 20 7946 0958"])
        for _ in range(repeat):
            floors.append(run_floor(records, config, nlp))
            scrubs.append(_timed("scrubber (1 process)", analyzer, records, texts))
    floor = min(floors, key=lambda r: r["seconds"])
    scrub = min(scrubs, key=lambda r: r["seconds"])
    scrub["processes"] = 1
    for row, runs in ((floor, floors), (scrub, scrubs)):
        row["runs_texts_per_s"] = [r["texts_per_s"] for r in runs]
        row["cpu_s_best"] = min(r["cpu_s"] for r in runs)
    return [scrub, floor]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=3000, help="distinct texts (default 3000)")
    parser.add_argument("--dup-rate", type=float, default=0.0, help="share of texts that repeat an earlier one")
    parser.add_argument(
        "--workers", type=int, default=None, help="scrubber processes, this one included (default: config)"
    )
    parser.add_argument("--parallel-min", type=int, default=None, help="fewest distinct texts for worker processes")
    parser.add_argument("--skip", default="", help="comma-separated methods to skip: plain,scrubber,spacy,floor")
    parser.add_argument(
        "--repeat",
        type=int,
        default=0,
        help="time only the floor and the one-process scrubber, N times alternating, best of each",
    )
    parser.add_argument("--json", action="store_true", help="print JSON rows only")
    args = parser.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    records = make_texts(args.texts, dup_rate=args.dup_rate)
    config = ScrubConfig.load()
    if args.parallel_min is not None:
        config.parallel_min_texts = args.parallel_min
    load_before = os.getloadavg()
    rows = []
    if args.repeat > 0:
        rows += run_ratio(records, config, args.repeat)
        skip |= {"scrubber", "floor", "spacy", "plain"}
    if "scrubber" not in skip:
        rows += run_scrubber(records, config, args.workers)
    if "floor" not in skip:
        rows.append(run_floor(records, config))
    if "spacy" not in skip:
        rows.append(run_spacy(records, config))
    if "plain" not in skip:
        rows.append(run_plain(records, config))
    plain = next((r for r in rows if r["method"] == "plain"), None)
    for r in rows:
        r["speed_vs_plain"] = round(r["texts_per_s"] / plain["texts_per_s"], 2) if plain else None
    single = next((r for r in rows if r["method"] == "scrubber (1 process)"), None)
    floor = next((r for r in rows if r["method"].startswith("floor")), None)
    meta = {
        "texts": len(records),
        "ratio_vs_floor": round(single["texts_per_s"] / floor["texts_per_s"], 3) if single and floor else None,
        # the same ratio by this process's CPU time, which depends less on what else the machine runs
        "ratio_vs_floor_cpu": (
            round(floor.get("cpu_s_best", floor["cpu_s"]) / single.get("cpu_s_best", single["cpu_s"]), 3)
            if single and floor
            else None
        ),
        "distinct": len({r["text"] for r in records}),
        "cpus": len(os.sched_getaffinity(0)),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}, indent=2))
        return 0
    print(json.dumps(meta))
    print(f"{'method':34} {'texts/s':>8} {'x plain':>8} {'seconds':>8} {'recall':>7}  per-entity recall")
    for r in rows:
        per = " ".join(f"{e.split('_')[0]}={v}" for e, v in r["recall"]["per_entity"].items())
        print(f"{r['method']:34} {r['texts_per_s']:>8} {r['speed_vs_plain']!s:>8} {r['seconds']:>8} "
              f"{r['recall']['micro']!s:>7}  {per}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
