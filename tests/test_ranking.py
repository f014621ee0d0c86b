"""vizlab.compare.ranking on small fixed data: intervals, paired tests, Holm, verdicts, time to
target, and the cells the terminal and the dashboard show.

Reference values computed once with scipy 1.16 (stats.t.interval, stats.ttest_rel,
stats.permutation_test with n_resamples=inf) and pasted as literals.
"""

from __future__ import annotations

import pytest

from vizlab.compare.ranking import RunRecord, VariantRuns, rank, ties
from vizlab.events import EpochEnd
from vizlab.report import ranking_view as view

A = [97.1, 97.5, 96.9, 97.3]
B = [95.2, 96.0, 95.8, 95.1]
C = [97.0, 97.4, 97.0, 97.1]


def epochs(final: float, first: float | None = None) -> tuple[EpochEnd, ...]:
    """Two epochs of 10 steps and 2 s each, ending at ``final`` accuracy."""
    first = final - 1.0 if first is None else first
    return tuple(EpochEnd(epoch=e, step=10 * e, train_loss=0.1, test_loss=0.2, test_acc=acc,
                          per_class_acc=(), confusion=(), epoch_time=2.0, samples_per_s=1.0,
                          lr=0.01, best_acc=max(first, acc) if e == 2 else acc, is_best=True)
                 for e, acc in ((1, first), (2, final)))


def variant(name: str, finals: list[float], firsts=None, seeds=None) -> VariantRuns:
    firsts = firsts or [None] * len(finals)
    seeds = seeds or list(range(len(finals)))
    return VariantRuns(name, {"activation": name}, tuple(
        RunRecord(s, f"runs/{name}-{s}", "finished", epochs(f, f1), 1000)
        for s, f, f1 in zip(seeds, finals, firsts)))


@pytest.fixture
def rows():
    failed = VariantRuns("e", {"activation": "e"}, (RunRecord(0, "runs/e-0", "failed", ()),))
    return rank([variant("b", B), variant("c", C), failed, variant("d", [96.0]),
                 variant("a", A, firsts=[None, 97.2, None, None])], target=97.0)


def test_order_intervals_and_verdicts(rows):
    assert [r["variant"] for r in rows] == ["a", "c", "d", "b", "e"]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    by = {r["variant"]: r for r in rows}
    assert by["a"]["final_acc"] == pytest.approx(97.2)
    assert by["a"]["final_acc_ci"] == pytest.approx([96.78914794864791, 97.6108520513521])
    assert by["b"]["final_acc_ci"] == pytest.approx([94.82083506101594, 96.22916493898407])
    assert by["c"]["final_acc_ci"] == pytest.approx([96.82378631861438, 97.42621368138562])
    assert by["d"]["final_acc_ci"] is None  # one seed: no interval
    assert [r["verdict"] for r in rows] == ["best", "tied", "untested", "worse", "no result"]
    assert ties(rows) == ["a", "c"]


def test_paired_tests_and_holm(rows):
    by = {r["variant"]: r for r in rows}
    b, c = by["b"]["vs_best"], by["c"]["vs_best"]
    assert b["seeds"] == [0, 1, 2, 3]
    assert b["t"] == pytest.approx(6.9979217694191105)
    assert b["p"] == pytest.approx(0.005991343404637916, rel=1e-9)
    assert b["diff_ci"] == pytest.approx([0.9132599095856005, 2.4367400904144008])
    assert c["p"] == pytest.approx(0.31893179191277116, rel=1e-9)
    assert c["diff_ci"] == pytest.approx([-0.12522452253358937, 0.275224522533588])
    # Holm over the two tested: the smaller p doubled, the larger kept (and never below it).
    assert b["p_holm"] == pytest.approx(2 * 0.005991343404637916, rel=1e-9)
    assert c["p_holm"] == pytest.approx(0.31893179191277116, rel=1e-9)
    assert (b["p_sign_flip"], c["p_sign_flip"]) == (0.125, 0.5)
    assert by["a"]["vs_best"] is None and by["d"]["vs_best"] is None


def test_pairing_uses_shared_seeds_only():
    rows = rank([variant("a", A), variant("x", [96.0, 96.5, 90.0], seeds=[1, 2, 7])], 97.0)
    vs = rows[1]["vs_best"]
    assert vs["seeds"] == [1, 2]  # seed 7 has no partner in "a"
    assert vs["mean_diff"] == pytest.approx(((97.5 - 96.0) + (96.9 - 96.5)) / 2)
    assert rank([variant("a", A), variant("y", [96.0], seeds=[9])], 97.0)[1]["verdict"] == \
        "untested"


def test_time_to_target(rows):
    by = {r["variant"]: r for r in rows}
    # a: seed 1 reaches 97.0 at epoch 1 (97.2); seeds 0 and 3 at epoch 2; seed 2 (96.9) never.
    t = by["a"]["time_to_target"]
    assert (t["acc"], t["reached"], t["of"]) == (97.0, 3, 4)
    assert t["epochs"] == pytest.approx(5 / 3) and t["steps"] == pytest.approx(50 / 3)
    assert t["seconds"] == pytest.approx(10 / 3)
    runs = {r["seed"]: r["time_to_target"] for r in by["a"]["runs"]}
    assert runs[1] == {"epoch": 1, "step": 10, "seconds": 2.0} and runs[2] is None
    assert by["b"]["time_to_target"]["reached"] == 0
    assert view.target_text(by["b"]) == "not reached"
    assert view.target_text(by["a"]) == "1.67 ep · 17 steps · 3.3 s (3/4 seeds)"


def test_cells_say_what_the_rows_hold(rows):
    a, c, d, b, e = (view.cells(r) for r in rows)
    assert a[:5] == ["1", "a", "97.20% ± 0.41", "-", "best"]
    assert c[3] == "-0.07 ± 0.20" and c[4] == "tied (0.32)"
    assert b[4] == "worse (0.012)"
    assert d[4] == "untested (one seed)" and e[4] == "no result" and e[2] == "-"
    notes = view.notes(rows)
    assert "Cannot be told apart from the best: a, c." in notes
    assert any("NOT CONTROLLED" in n for n in view.notes(rows, {"epochs": [1, 2]}))
