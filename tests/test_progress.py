"""Progress of the prompt stage: log lines with done/total, rate, ETA, quarantined, calls in flight; a bar on a TTY."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import re

from pipeline_hub.stages.progress import ProgressReporter, listening
from pipeline_hub.stages.runner import run_pipeline

from conftest import DS, REPO

LINE = re.compile(
    r"prompt (?P<topic>\w+) chunk (?P<chunk>\d+): (?P<done>\d+)/(?P<total>\d+) records \(\d+%\), "
    r"[\d.]+ records/s, (ETA \S+|done), (?P<q>\d+) quarantined, (?P<f>\d+) calls in flight"
)


def test_reporter_logs_periodic_lines_while_records_are_done(caplog):
    caplog.set_level(logging.INFO, logger="pipeline_hub.stages.progress")

    async def chunk() -> ProgressReporter:
        reporter = ProgressReporter("industry_classification", 3, chunk_index=0, interval_s=0.01)
        reporter.in_flight = lambda: 2
        async with reporter:
            reporter.advance()
            reporter.advance(quarantined=True)
            for _ in range(1000):  # wait for a tick: behaviour, not timing
                if reporter.lines:
                    break
                await asyncio.sleep(0.01)
            reporter.advance()
        return reporter

    reporter = asyncio.run(chunk())
    lines = [LINE.fullmatch(r.getMessage()) for r in caplog.records if r.name == "pipeline_hub.stages.progress"]
    assert reporter.lines >= 1 and all(lines), [r.getMessage() for r in caplog.records]
    periodic, final = lines[:-1], lines[-1]
    assert periodic[0]["done"] == "2" and periodic[0]["total"] == "3" and periodic[0]["q"] == "1"
    assert periodic[0]["f"] == "2" and "ETA" in periodic[0].group(0)
    assert final["done"] == final["total"] == "3" and final.group(0).endswith("2 calls in flight")
    assert ", done, " in final.group(0)


def test_prompt_stage_logs_progress_without_record_text(stub, raw_zone, tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("PIPELINE_HUB_PROGRESS_INTERVAL_S", "0.01")
    caplog.set_level(logging.INFO)
    seen = []
    with listening(seen.append):
        result = run_pipeline(
            raw_root=str(raw_zone), output_root=str(tmp_path / "out"), ds=DS, topics=["industry_classification"]
        )
    assert [p["topic"] for p in result.published] == ["industry_classification"]
    total = result.published[0]["in"]
    lines = [m for r in caplog.records if (m := LINE.fullmatch(r.getMessage()))]
    assert lines and lines[-1]["topic"] == "industry_classification"
    assert lines[-1]["done"] == lines[-1]["total"] == str(total)
    assert all(int(m["done"]) <= int(m["total"]) == total for m in lines)
    # Listeners see every record; the last snapshot is the finished chunk.
    assert [s.done for s in seen if not s.final] == list(range(1, total + 1))
    assert seen[-1].final and seen[-1].topic_total == total
    with (REPO / "include" / "sample_data" / "companies" / "companies.csv").open(newline="") as fh:
        names = [row["name"] for row in csv.DictReader(fh)]
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "pipeline_hub.stages.progress")
    assert not any(name in text for name in names)


def test_run_shows_a_bar_on_a_terminal_and_plain_lines_otherwise(monkeypatch):
    from pipeline_hub.cli import run as run_cli

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    async def chunk() -> None:
        reporter = ProgressReporter("industry_classification", 2, chunk_index=0, topic_total=2, interval_s=60)
        async with reporter:
            reporter.advance()
            reporter.advance(quarantined=True)

    screen = Tty()
    monkeypatch.setattr("sys.stderr", screen)
    with run_cli._progress_display():
        asyncio.run(chunk())
    shown = screen.getvalue()
    assert "industry_classification" in shown and "2/2" in shown and "1 quarantined" in shown

    plain = io.StringIO()  # not a terminal: no bar, no listener
    monkeypatch.setattr("sys.stderr", plain)
    seen = []
    with run_cli._progress_display(), listening(seen.append):
        asyncio.run(chunk())
    assert len(seen) == 3 and "2/2" not in plain.getvalue()
