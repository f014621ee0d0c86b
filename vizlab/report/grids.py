"""Captioned image grids for the dashboard: small digits scaled up, mistakes framed in red.

Pure functions of their inputs (same pixels and labels give the same PNG bytes), so a replayed
dashboard shows exactly the live one. numpy and PIL are imported lazily.
"""

from __future__ import annotations

import base64
import functools
import io
from collections.abc import Sequence

TILE_MIN = 84  # on-screen size of one image; 28-pixel digits are scaled up three times
COLUMNS = 8
BORDER = 3
PAD = 4
CAPTION_LINE = 14
MAX_CHARS = 14

GREEN = (44, 160, 44)
RED = (214, 39, 40)
GRAY = (170, 170, 170)
TEXT = (40, 40, 40)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS - 1] + "…"


def label_grid(images, labels: Sequence[int], preds: Sequence[int] | None,
               names: Sequence[str]):
    """A grid of uint8 images (n, h, w) with a frame and caption each, as an (H, W, 3) array.

    With ``preds``: green frame and the prediction when right; red frame, ``pred Y`` and
    ``true X`` when wrong. Without (before the first evaluation): gray frame and the true label.
    """
    import numpy as np
    from PIL import Image, ImageDraw

    images = np.asarray(images, dtype=np.uint8)
    n, h, w = images.shape
    scale = max(1, -(-TILE_MIN // max(h, w)))
    th, tw = h * scale + 2 * BORDER, w * scale + 2 * BORDER
    cell_w, cell_h = tw + PAD, th + 2 * CAPTION_LINE + PAD
    cols = max(1, min(COLUMNS, n))
    rows = max(1, -(-n // cols))
    canvas = Image.new("RGB", (cols * cell_w + PAD, rows * cell_h + PAD), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = _font()

    def name(i: int) -> str:
        return names[i] if 0 <= i < len(names) else str(i)

    for k in range(n):
        x0, y0 = PAD + (k % cols) * cell_w, PAD + (k // cols) * cell_h
        true = labels[k]
        pred = preds[k] if preds is not None and k < len(preds) else None
        color = GRAY if pred is None else (GREEN if pred == true else RED)
        draw.rectangle([x0, y0, x0 + tw - 1, y0 + th - 1], fill=color)
        tile = np.kron(images[k], np.ones((scale, scale), dtype=np.uint8))
        canvas.paste(Image.fromarray(tile, "L").convert("RGB"), (x0 + BORDER, y0 + BORDER))
        first = name(true) if pred is None else (name(pred) if pred == true else
                                                 f"pred {name(pred)}")
        draw.text((x0, y0 + th + 1), _clip(first), fill=color if pred is not None else TEXT,
                  font=font)
        if pred is not None and pred != true:
            draw.text((x0, y0 + th + 1 + CAPTION_LINE), _clip(f"true {name(true)}"), fill=TEXT,
                      font=font)
    return np.asarray(canvas)


@functools.lru_cache(maxsize=1)
def _font():
    from PIL import ImageFont

    return ImageFont.load_default(size=12)


def png_data_url(rgb) -> str:
    """An (H, W, 3) uint8 array as a ``data:image/png;base64,...`` URL (deterministic bytes)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="PNG", compress_level=3)  # the fastest here
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def decode_uint8(text: str, height: int, width: int):
    """Images from an event's ``encode_images()`` text, as a uint8 (n, h, w) array."""
    import numpy as np

    from vizlab.events import decode_images

    raw = np.frombuffer(decode_images(text), dtype=np.uint8)
    per = height * width
    return raw[: (raw.size // per) * per].reshape(-1, height, width)
