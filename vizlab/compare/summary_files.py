"""A comparison's two result files: comparison.json (the manifest `vizlab replay` reads, the
method, and every variant's row with its runs' numbers) and comparison.csv (one line a variant)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from vizlab.run_files import COMPARISON_CSV, COMPARISON_JSON

CSV_COLUMNS = ("rank", "variant", "repeats", "final_acc", "final_acc_ci_low",
               "final_acc_ci_high", "final_acc_spread", "verdict", "diff_to_best",
               "p_value", "p_holm", "p_sign_flip", "target_acc", "target_reached",
               "target_epochs", "target_steps", "target_seconds", "best_acc", "best_acc_spread",
               "test_loss", "epoch_time", "params", "status")


def csv_record(row: dict[str, Any], axes: Sequence[str]) -> dict[str, Any]:
    """One CSV line's values by column (axes first, after the variant)."""
    ci = row.get("final_acc_ci") or [None, None]
    vs = row.get("vs_best") or {}
    ttt = row.get("time_to_target") or {}
    flat = {**row, "final_acc_ci_low": ci[0], "final_acc_ci_high": ci[1],
            "diff_to_best": vs.get("mean_diff"), "p_value": vs.get("p"),
            "p_holm": vs.get("p_holm"), "p_sign_flip": vs.get("p_sign_flip"),
            "target_acc": ttt.get("acc"),
            "target_reached": f"{ttt['reached']}/{ttt['of']}" if ttt else None,
            "target_epochs": ttt.get("epochs"), "target_steps": ttt.get("steps"),
            "target_seconds": ttt.get("seconds")}
    return {**{a: row["axes"].get(a) for a in axes}, **{c: flat.get(c) for c in CSV_COLUMNS}}


def csv_columns(axes: Sequence[str]) -> list[str]:
    return [*CSV_COLUMNS[:2], *axes, *CSV_COLUMNS[2:]]


def render_files(manifest: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, bytes]:
    """The two files' bytes by name: comparison.json (``manifest`` plus ``variants``: the rows)
    and comparison.csv. Whoever owns the directory writes them (atomically)."""
    axes = list(manifest.get("axes", ()))
    columns = csv_columns(axes)
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        record = csv_record(row, axes)
        writer.writerow({c: "" if record[c] is None else record[c] for c in columns})
    document = json.dumps({**manifest, "variants": rows}, indent=2) + "\n"
    return {COMPARISON_JSON: document.encode(), COMPARISON_CSV: table.getvalue().encode()}
