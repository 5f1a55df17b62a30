"""End to end: the Prompt Hub view in a real headless Chromium against a real ``airflow api-server``.

A partition published by the in-process pipeline (stub LLM) is the sanitized root; ``airflow db migrate``
builds a SQLite metadata DB in a temporary AIRFLOW_HOME; ``airflow api-server`` (SimpleAuthManager, every
user admin, so no login form) is started on a free port and stopped at the end. Chromium is the Debian
``chromium`` package driven by Playwright (never ``playwright install``): it opens the Airflow UI (in
all-admins mode Airflow signs every request in), then Browse → Prompt Hub in the navigation (the plugin's external view,
an iframe on the plugin's FastAPI app), and the topic's page. The page must show the manifest's numbers
and its charts (a drift row is written for the label-distribution chart); the feedback form is filled in
and submitted, and the correction appears with the signed-in user (``Anonymous`` in all-admins mode) as
author. The screenshot goes to the test's tmp dir and to ``.local/test-artifacts/prompt-hub.png``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pipeline_hub.analytics.drift_store import write_drift
from pipeline_hub.prompts.feedback import read_feedback
from pipeline_hub.stages.runner import run_pipeline

from conftest import DS, REPO

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOPIC = "industry_classification"
ARTIFACT = REPO / ".local" / "test-artifacts" / "prompt-hub.png"


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    """Poll ``url`` until it answers 200; fail with the server log's tail when it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"api-server exited: {log.read_text()[-3000:]}"
        try:
            if urllib.request.urlopen(url, timeout=3).status == 200:
                return
        except OSError:
            pass
        time.sleep(1)
    pytest.fail(f"api-server not answering {url} after {timeout}s: {log.read_text()[-3000:]}")


def drift_row(out: Path) -> dict:
    """A drift row of ``TOPIC`` for ``DS`` whose label counts are the partition's against a made-up baseline."""
    import pyarrow.parquet as pq

    part = out / "sanitized_data" / TOPIC / f"ds={DS}" / "part-00000.parquet"
    sectors = pq.read_table(part, columns=["sector"]).column("sector").to_pylist()
    counts = {s: sectors.count(s) for s in set(sectors)}
    rows = sorted(counts.items(), key=lambda kv: str(kv[0]))
    labels = [{"label": str(k), "current": n, "baseline": 2 * n + i} for i, (k, n) in enumerate(rows)]
    return {"topic": TOPIC, "status": "ok", "psi_threshold": 0.2, "label_field": "sector", "label_psi": 0.05,
            "labels": labels, "drifted": []}  # fmt: skip


def write_score(artifacts: Path) -> None:
    """A gate score of ``TOPIC`` v1 under ``artifacts`` (the fields the view reads), as ``pipeline-hub score`` does."""
    from pipeline_hub import storage
    from pipeline_hub.lifecycle.scoring import score_paths

    score = {
        "version": "v1", "gate_metric": "macro_f1", "gate_value": 0.8125, "invalid": {"rate": 0.0},
        "usage": {"cost_usd": 0.0}, "model": "stub-model", "examples_sha256": "0" * 64,
        "template_sha256": "0" * 64, "scored_at": "2026-12-01T10:00:00+00:00",
    }  # fmt: skip
    path = score_paths(str(artifacts), TOPIC, "v1")["json"]
    path.parent.mkdir(parents=True, exist_ok=True)
    storage.write_json(path, score)


@pytest.fixture
def api_server(stub, raw_zone, tmp_path):
    """``(base_url, manifest)``: an api-server serving a sanitized root with ``TOPIC`` published for ``DS``."""
    from pipeline_hub_dev.process import find_free_port

    out = tmp_path / "out"
    assert not run_pipeline(raw_root=str(raw_zone), output_root=str(out), ds=DS, topics=[TOPIC]).failed
    manifest = json.loads((out / "sanitized_data" / TOPIC / f"ds={DS}" / "_manifest.json").read_text())
    write_drift(str(out), DS, drift_row(out))
    write_score(tmp_path / "artifacts")
    home = tmp_path / "airflow"
    port = find_free_port("127.0.0.1")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
        "AIRFLOW__OPENLINEAGE__DISABLED": "True",
        "PIPELINE_HUB_SANITIZED_URI": str(out),
        "PIPELINE_HUB_ARTIFACTS_URI": str(tmp_path / "artifacts"),
    }
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    log = tmp_path / "api-server.log"
    with log.open("ab") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/api/v2/version", proc, log)
        yield base, manifest, out
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no browser: {CHROMIUM} missing (apt-get install chromium)")
def test_prompt_hub_page_in_chromium_shows_the_run(api_server, tmp_path):
    import pyarrow.parquet as pq
    from playwright.sync_api import expect, sync_playwright

    base, manifest, out = api_server
    record = pq.read_table(out / "sanitized_data" / TOPIC / f"ds={DS}" / "part-00000.parquet").to_pylist()[0]
    right = "Energy" if record["sector"] != "Energy" else "Financials"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1700})
            # The Airflow UI signs the browser in (SimpleAuthManager, all admins): the JWT cookie is set.
            page.goto(f"{base}/", wait_until="networkidle")
            # The plugin's app is behind Airflow's auth: a forged token is refused (in all-admins mode Airflow
            # signs every request without a token in, so the anonymous case cannot be shown here).
            forged = urllib.request.Request(f"{base}/pipeline-hub/", headers={"Authorization": "Bearer forged"})
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(forged, timeout=10)
            assert refused.value.code in (401, 403)
            # The navigation entry is registered: the UI's plugin list holds the external view.
            plugins = page.request.get(f"{base}/api/v2/plugins").json()["plugins"]
            views = [v for p in plugins for v in p.get("external_views", [])]
            assert {"name": "Prompt Hub", "url_route": "prompt-hub"}.items() <= next(
                v for v in views if v.get("url_route") == "prompt-hub"
            ).items()
            # The navigation entry: Browse → Prompt Hub opens the external view, an iframe on the plugin's app.
            page.get_by_role("button", name="Browse").click()
            page.get_by_role("menuitem", name="Prompt Hub").click()
            page.wait_for_url(f"{base}/plugin/prompt-hub")
            frame = page.frame_locator("iframe")
            expect(frame.locator(f'tr[data-topic="{TOPIC}"] .published')).to_have_text(
                str(manifest["counts"]["published"]), timeout=60_000
            )
            frame.locator(f'a[href="/pipeline-hub/topics/{TOPIC}"]').click()
            row = frame.locator(f'#runs tr[data-ds="{DS}"]')
            expect(row.locator(".published")).to_have_text(str(manifest["counts"]["published"]), timeout=60_000)
            expect(row.locator(".records-in")).to_have_text(str(manifest["counts"]["in"]))
            expect(row.locator(".llm-calls")).to_have_text(str(manifest["usage"]["llm_calls"]))
            oracle = sum(manifest["usage"]["records_by_route"].values())  # no cascade: every record on the oracle
            expect(row.locator(".routes")).to_have_text(f"0 / {oracle}")  # no "saved" line without proxy answers
            expect(frame.locator('#versions tr[data-version="v1"] .score')).to_have_text("macro_f1 0.812")
            for chart in ("#counts-chart", "#cost-chart", "#labels-chart"):
                expect(frame.locator(chart)).to_be_visible()
            # An analyst's correction through the form: stored with the signed-in user, shown without its note.
            form = frame.locator("#feedback-form")
            form.locator('input[name="record_id"]').fill(record["record_id"])
            form.locator('input[name="label"]').fill(right)
            form.locator('input[name="note"]').fill("see the annual report")
            form.get_by_role("button", name="Record feedback").click()
            expect(frame.locator("#notice")).to_have_text("Feedback recorded.", timeout=60_000)
            expect(frame.locator("#feedback-latest .feedback-label")).to_have_text(right)
            frame.locator("h1").scroll_into_view_if_needed()  # the screenshot shows the page from its top
            shot = tmp_path / "prompt-hub.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    (stored,) = read_feedback(str(out), TOPIC)
    assert stored["author"] == "Anonymous" and stored["label"] == right and stored["record_id"] == record["record_id"]
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, ARTIFACT)
