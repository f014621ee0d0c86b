"""The dashboard's heavy windows: sample grids, the prediction table, the run card, histograms.

Pure functions from events to window packets (see panes.py); every string is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from vizlab.events import Histograms, Predictions, SampleSet
from vizlab.report import window_packets as P

if TYPE_CHECKING:
    from vizlab.report.dashboard import Dashboard

_COLORS = (P.BLUE, P.ORANGE, P.GREEN, P.RED, P.PURPLE, "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")


def _name(classes: Sequence[str], i: int) -> str:
    return classes[i] if 0 <= i < len(classes) else str(i)


def _matching_preds(samples: SampleSet | None, preds: Predictions | None):
    if samples is None or preds is None or len(preds.preds) != len(samples.labels):
        return None
    return preds


def samples_pane(samples: SampleSet | None, preds: Predictions | None,
                 classes: Sequence[str]) -> dict | None:
    """The fixed test images, framed green (right) or red (wrong) and captioned."""
    if samples is None or not samples.labels:
        return None
    from vizlab.report.grids import decode_uint8, label_grid, png_data_url

    images = decode_uint8(samples.images, samples.height, samples.width)
    preds = _matching_preds(samples, preds)
    grid = label_grid(images, samples.labels, preds.preds if preds else None, classes)
    if preds is None:
        caption = "true labels; predictions appear after the first epoch"
        title = "test samples"
    else:
        right = sum(p == t for p, t in zip(preds.preds, samples.labels))
        caption = f"epoch {preds.epoch}: {right} of {len(samples.labels)} right; red frame = wrong"
        title = f"test samples: predictions (epoch {preds.epoch})"
    return P.image_packet(title, png_data_url(grid), caption, grid.shape[1], grid.shape[0])


def predictions_pane(samples: SampleSet | None, preds: Predictions | None,
                     classes: Sequence[str]) -> dict | None:
    """An HTML table of the sample images' true label, prediction and confidence."""
    if preds is None or not preds.preds:
        return None
    labels = samples.labels if _matching_preds(samples, preds) else None
    rows, styles = [], []
    for k, (p, conf) in enumerate(zip(preds.preds, preds.confidences)):
        true = labels[k] if labels else None
        ok = true is None or p == true
        rows.append((k + 1, samples.indices[k] if labels else "", "" if true is None else
                     _name(classes, true), _name(classes, p), f"{100 * conf:.1f}%",
                     "" if true is None else ("right" if ok else "WRONG")))
        styles.append("" if ok else "background:#fde0e0")
    right = sum(1 for k, p in enumerate(preds.preds) if labels and p == labels[k])
    head = (f"<p><b>epoch {preds.epoch}</b>: {right} of {len(rows)} right</p>" if labels else
            f"<p><b>epoch {preds.epoch}</b></p>")
    body = head + P.html_table(rows, ("#", "test index", "true", "predicted", "confidence", ""),
                               styles)
    return P.text_packet(f"predictions (epoch {preds.epoch})", body, width=460, height=520)


def misclassified_pane(samples: SampleSet | None, preds: Predictions | None,
                       classes: Sequence[str]) -> dict | None:
    """Test images the model got wrong this epoch, captioned with prediction and truth."""
    if preds is None:
        return None
    n = len(preds.wrong_labels)
    title = f"misclassified test images (epoch {preds.epoch})"
    if n == 0 or not preds.wrong_images:
        return P.text_packet(title, f"<p>No misclassified test images in epoch {preds.epoch}.</p>",
                             width=360, height=120)
    from vizlab.events import decode_images
    from vizlab.report.grids import decode_uint8, label_grid, png_data_url

    if samples is not None:
        h, w = samples.height, samples.width
    else:  # square images: infer the side from the byte count
        h = w = math.isqrt(len(decode_images(preds.wrong_images)) // n)
    images = decode_uint8(preds.wrong_images, h, w)[:n]
    grid = label_grid(images, preds.wrong_labels[:len(images)], preds.wrong_preds[:len(images)],
                      classes)
    caption = f"{len(images)} test images predicted wrong in epoch {preds.epoch}"
    return P.image_packet(title, png_data_url(grid), caption, grid.shape[1], grid.shape[0])


def run_card_pane(board: Dashboard) -> dict | None:
    """Model, size, data, device, timing, status and final metrics; the config below."""
    run = board.run
    if run is None:
        return None
    ended, rows = board.ended, board.epoch_rows()
    status = board.status()
    color = {"finished": P.GREEN, "running": P.BLUE, "failed": P.RED}.get(status, P.ORANGE)
    facts = [("model", run.model), ("parameters", f"{run.params:,}"),
             ("dataset", f"{run.dataset} ({run.train_samples:,} train, "
                         f"{run.test_samples:,} test)"),
             ("device", run.device + (f" x{run.world_size}" if run.world_size > 1 else "")),
             ("started", board.first_started or run.started)]
    if run.resumed:
        facts.append(("resumed", f"{run.started} from epoch {run.start_epoch}, "
                                 f"step {run.start_step}"))
    done = rows[-1].epoch if rows else 0
    facts.append(("epochs", f"{done} of {run.epochs} ({run.steps_per_epoch} steps each)"))
    if rows:
        last = rows[-1]
        facts += [("test accuracy", f"{last.test_acc:.2f}%"),
                  ("best accuracy", f"{last.best_acc:.2f}%"),
                  ("test loss", f"{last.test_loss:.4f}"),
                  ("throughput", f"{last.samples_per_s:,.0f} samples/s")]
    if ended is not None:
        if ended.wall_time:
            facts.append(("wall time", f"{ended.wall_time:.1f} s"))
        if ended.message:
            facts.append(("message", ended.message))
    body = (f'<p><b>{P.esc(run.run)}</b> &nbsp; <span style="color:{color}"><b>'
            f"{P.esc(status)}</b></span></p>" + P.html_table(facts) +
            "<p><b>config</b></p>" + P.html_table(sorted(
                (k, "" if v is None else v) for k, v in run.config.items())))
    return P.text_packet(f"run: {run.run}", body, width=440, height=560)


def hist_pane(hist: Histograms | None, kind: str) -> dict | None:
    """Histograms of one kind ("weight" or "grad"), one trace per parameter tensor."""
    if hist is None:
        return None
    traces = []
    for i, (layer, h) in enumerate(sorted(hist.layers.items())):
        counts, rng = h.get(kind), h.get(f"{kind}_range")
        if not counts or not rng or len(rng) != 2:
            continue
        lo, hi = float(rng[0]), float(rng[1])
        if not (math.isfinite(lo) and math.isfinite(hi)):
            continue  # a diverged layer: nothing drawable (JSON has no NaN)
        step = (hi - lo) / len(counts)
        total = sum(counts) or 1
        x = [lo + (j + 0.5) * step for j in range(len(counts))]
        traces.append(P.trace(x, [c / total for c in counts], P.esc(layer),
                              _COLORS[i % len(_COLORS)], width=1.5))
    if not traces:
        return None
    what = "weights" if kind == "weight" else "gradients"
    return P.plot_packet(f"{what} (epoch {hist.epoch})", "value", "fraction of entries", traces)
