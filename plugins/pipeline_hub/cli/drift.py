"""``pipeline-hub drift``: a topic's drift for one ``ds`` against its trailing baseline (analytics.drift).

Exit status: 0 ``ok`` or ``no_baseline``, 1 a PSI over the threshold (``drift``), 2 a bad ``--ds``, an
unknown topic or a partition with nothing published (one line on stderr).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from pipeline_hub.cli.app import app


def _num(value: Any, fmt: str = "{:.4f}") -> str:
    return "" if value is None else fmt.format(value)


def render(result: dict[str, Any], ds: str) -> str:
    """The drift ``result`` of ``ds`` as text: a status line, the figures, the label counts and the notes."""
    from tabulate import tabulate

    base = result["baseline_ds"]
    window = f"{len(base)} partition(s) {base[0]}..{base[-1]}" if base else "none"
    head = (
        f"drift {result['topic']} ds={ds}: {result['status']}"
        + (f" ({', '.join(result['drifted'])})" if result["drifted"] else "")
        + f"; baseline: {window} in {result['baseline_days']} days; PSI threshold {result['psi_threshold']}"
    )
    rows = [["rows", result["rows"], result["baseline_rows"], "", "", ""]]
    if result.get("label_field"):
        rows.append(
            [
                f"label {result['label_field']}",
                "",
                "",
                "",
                _num(result.get("label_psi")),
                _num(result.get("label_chi2_p"), "chi2 {:.4g}"),
            ]  # fmt: skip
        )
    if result.get("confidence_field"):
        rows.append(
            [
                f"mean {result['confidence_field']}",
                _num(result.get("confidence_mean")),
                _num(result.get("baseline_confidence_mean")),
                _num(result.get("confidence_shift"), "{:+.4f}"),
                _num(result.get("confidence_psi")),
                _num(result.get("confidence_ks_p"), "KS {:.4g}"),
            ]  # fmt: skip
        )
    rows.append(
        [
            "invalid-output rate",
            _num(result.get("invalid_output_rate"), "{:.2%}"),
            _num(result.get("baseline_invalid_output_rate"), "{:.2%}"),
            _num(result.get("invalid_output_rate_shift"), "{:+.2%}"),
            "",
            "",
        ]  # fmt: skip
    )
    if result.get("input_length_fields"):
        rows.append(
            [
                f"mean input length, chars ({', '.join(result['input_length_fields'])})",
                _num(result.get("input_length_mean"), "{:.1f}"),
                _num(result.get("baseline_input_length_mean"), "{:.1f}"),
                _num(result.get("input_length_shift"), "{:+.1%}"),
                _num(result.get("input_length_psi")),
                _num(result.get("input_length_ks_p"), "KS {:.4g}"),
            ]  # fmt: skip
        )
    parts = [head, tabulate(rows, headers=["figure", "current", "baseline", "shift", "PSI", "p-value"])]
    if result.get("labels"):
        cur_n = sum(x["current"] for x in result["labels"]) or 1
        base_n = sum(x["baseline"] for x in result["labels"]) or 1
        labels = [
            [x["label"], x["current"], f"{x['current'] / cur_n:.1%}", x["baseline"], f"{x['baseline'] / base_n:.1%}"]
            for x in result["labels"]
            if x["current"] or x["baseline"]  # the schema's other labels: stored, not printed
        ]
        parts.append(tabulate(labels, headers=[result["label_field"], "current", "share", "baseline", "share"]))
    parts += [f"note: {n}" for n in result.get("notes") or []]
    return "\n\n".join(parts[:2]) + ("\n\n" + "\n".join(parts[2:]) if parts[2:] else "")


@app.command()
def drift(
    topic: Annotated[str, typer.Option(help="topic, e.g. industry_classification")],
    ds: Annotated[str, typer.Option(help="partition date YYYY-MM-DD")],
    output: Annotated[
        str | None, typer.Option("--output", "--root", help="sanitized root (default: PIPELINE_HUB_SANITIZED_URI)")
    ] = None,
    baseline_days: Annotated[
        int | None, typer.Option(min=1, help="baseline window in days (default: PIPELINE_HUB_DRIFT_BASELINE_DAYS)")
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(min=0, help="PSI threshold (default: PIPELINE_HUB_DRIFT_PSI_THRESHOLD)")
    ] = None,
    store: Annotated[
        bool, typer.Option("--store/--no-store", help="write metrics/drift/ds=<ds>/<topic>.parquet")
    ] = True,
    json_out: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Print a topic's drift for ``ds``: label PSI and chi-square p, confidence, invalid-output rate, input length.

    Exits 1 when a PSI is over the threshold, 0 otherwise (also without a baseline), 2 for a bad
    ``--ds``, an unknown topic or a ``ds`` with nothing published for the topic.
    """
    from pipeline_hub.analytics.drift import compute_drift, drift_over_threshold
    from pipeline_hub.analytics.drift_store import write_drift
    from pipeline_hub.config import Settings

    root = output or Settings.from_env().sanitized_root
    result = compute_drift(root, topic, ds, baseline_days=baseline_days, psi_threshold=threshold)
    uri = write_drift(root, ds, result) if store else None
    if json_out:
        typer.echo(json.dumps({**result, "ds": ds, "uri": uri}, indent=2, default=str))
    else:
        typer.echo(render(result, ds) + (f"\n\nstored: {uri}" if uri else ""))
    if drift_over_threshold(result):
        raise typer.Exit(1)
