"""The ranking as people read it: the same cells in the terminal and on the dashboard.

Rows come from vizlab.compare.ranking.rank (or a comparison.json's ``variants``): plain dicts, so
a replayed dashboard shows exactly what the live one did.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vizlab.report import window_packets as P
from vizlab.report.fmt import num

ALPHA = 0.05  # as vizlab.compare.ranking.ALPHA (report/ does not import compare/)
TIE_STYLE = "background:#e6f4ea"  # the best and the variants tied with it, on the dashboard


def header(target: float | None, short: bool = False) -> list[str]:
    """Column titles; ``short`` for the terminal, where the notes say what ± and p are."""
    to = f"to {target:g}%" if target is not None else "to target"
    if short:
        return ["#", "variant", "final acc.", "Δ vs best", "vs best", to, "test loss",
                "s/epoch", "params", "status"]
    return ["#", "variant", "final acc. ± 95% CI", "Δ vs best", "vs best (Holm p)", to,
            "test loss", "s / epoch", "params", "status"]


def p_text(p: float | None) -> str:
    if p is None:
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.2g}"


def acc_text(row: dict[str, Any]) -> str:
    mean, ci = row.get("final_acc"), row.get("final_acc_ci")
    if mean is None:
        return "-"
    return f"{mean:.2f}%" + (f" ± {(ci[1] - ci[0]) / 2:.2f}" if ci else "")


def diff_text(row: dict[str, Any]) -> str:
    vs = row.get("vs_best")
    if not vs:
        return "-"
    low, high = vs["diff_ci"]
    # Shown as the variant minus the best (negative: behind it).
    return f"{0.0 - vs['mean_diff']:+.2f} ± {(high - low) / 2:.2f}"


def verdict_text(row: dict[str, Any]) -> str:
    verdict = row.get("verdict", "untested")
    vs = row.get("vs_best")
    if verdict in ("tied", "worse", "differs") and vs:
        return f"{verdict} ({p_text(vs['p_holm'])})"
    if verdict == "untested":
        return "untested (one seed)" if row.get("repeats", 1) < 2 else "untested (no shared seeds)"
    return verdict


def target_text(row: dict[str, Any]) -> str:
    t = row.get("time_to_target")
    if not t:
        return "-"
    if not t["reached"]:
        return "not reached"
    text = f"{t['epochs']:.3g} ep · {t['steps']:.0f} steps · {t['seconds']:.1f} s"
    return text if t["reached"] == t["of"] else f"{text} ({t['reached']}/{t['of']} seeds)"


def cells(row: dict[str, Any]) -> list[str]:
    return [str(row["rank"]), str(row["variant"]), acc_text(row), diff_text(row),
            verdict_text(row), target_text(row), num(row.get("test_loss")),
            num(row.get("epoch_time"), 2), f"{row.get('params') or 0:,}", str(row["status"])]


def is_tie(row: dict[str, Any]) -> bool:
    """The best, or a variant that cannot be told apart from it."""
    return row.get("verdict") in ("best", "tied")


def terminal_columns(rows: Sequence[dict[str, Any]], width: int = 200) -> list[int]:
    """The columns worth a terminal's width: parameters only when they differ, status only when
    some run did not finish, the difference to the best and the test loss only when there is
    room."""
    skip = set() if width >= 110 else {3} if width >= 95 else {3, 6}
    if len({r.get("params") for r in rows}) <= 1:
        skip.add(8)
    if all(r.get("status") == "finished" for r in rows):
        skip.add(9)
    return [i for i in range(10) if i not in skip]


def notes(rows: Sequence[dict[str, Any]], differences: dict[str, Any] | None = None,
          shown: Sequence[int] | None = None) -> list[str]:
    """The lines under the table: what the numbers mean, the ties, and what was not controlled
    (``shown``: the columns a terminal showed; say what the left-out ones hold)."""
    out = []
    if shown is not None and rows:
        same = []
        if 8 not in shown:
            same.append(f"{rows[0].get('params') or 0:,} parameters")
        if 9 not in shown:
            same.append("finished")
        if same:
            out.append("Every variant: " + ", ".join(same) + ".")
        if 3 not in shown:
            out.append("Δ vs best (with its interval)" + (" and test loss" if 6 not in shown
                                                           else "") +
                       ": in comparison.json and on the dashboard.")
    repeats = max((r.get("repeats", 1) for r in rows), default=1)
    if repeats >= 2:
        out.append(f"± 95% Student-t interval over the seeds. vs best: paired t-test on per-seed "
                   f"final accuracy, Holm-corrected, α = {ALPHA:g}; p_sign_flip (exact, "
                   f"distribution-free) is in comparison.json.")
        tied = [r["variant"] for r in rows if is_tie(r)]
        if len(tied) > 1:
            out.append("Cannot be told apart from the best: " + ", ".join(map(str, tied)) + ".")
        elif tied:
            out.append(f"{tied[0]} is ahead of every other variant at α = {ALPHA:g}.")
    else:
        out.append("One seed per variant: no interval, no test (train with --repeats 3 or more).")
    if differences:
        listed = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in differences.items())
        out.append(f"NOT CONTROLLED: the runs differ in data shaping ({listed}).")
    return out


def ranking_packet(title: str, rows: Sequence[dict[str, Any]], target: float | None,
                   differences: dict[str, Any] | None = None) -> dict[str, Any]:
    """The dashboard's ranking pane: the table, tied rows shaded, and the notes."""
    table = P.html_table([cells(r) for r in rows], header=header(target),
                         row_styles=[TIE_STYLE if is_tie(r) else "" for r in rows])
    lines = "".join(f'<p style="font-size:12px;margin:4px 0">{P.esc(line)}</p>'
                    for line in notes(rows, differences))
    return P.text_packet(f"{title}: ranking", table + lines, width=900,
                         height=130 + 24 * len(rows))
