"""Is the dashboard page complete? Fetch it, every file it loads, and every front-end file the
installed Visdom needs (some are loaded later, by scripts and style sheets), as a browser would.

Also runnable as a script (``python tests/pagecheck.py PORT``), for checks that must run where
the test process cannot reach, e.g. inside a network namespace: prints the problems as JSON.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import urllib.error
import urllib.request
from urllib.parse import urljoin, urlparse

_LOADED = re.compile(r"""<(?:script|link)\b[^>]*?\b(?:src|href)\s*=\s*["']?([^"'\s>]+)""", re.I)


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def problems(base: str) -> list[str]:
    """Everything wrong with the page at ``base``; [] for a complete page."""
    from vizlab.server.assets import table

    status, body = _get(base + "/")
    if status != 200:
        return [f"the page answered {status}"]
    out = []
    loaded = set()
    for ref in _LOADED.findall(body.decode(errors="replace")):
        url = urljoin(base + "/", ref)
        path = urlparse(url).path
        if path.startswith(("/static/", "/user/")):  # (the favicon is not one of visdom's files)
            loaded.add(path)
            code, _ = _get(url)
            if code != 200:
                out.append(f"{path}: {code}")
    for asset in table():
        code, data = _get(f"{base}/static/{asset.path}")
        if code != 200:
            out.append(f"{asset.path}: {code}")
        elif hashlib.sha256(data).hexdigest() != asset.sha256:
            out.append(f"{asset.path}: served bytes differ from {asset.package}@{asset.version}")
    if "/static/js/plotly-plotly.min.js" not in loaded or "/static/js/main.js" not in loaded:
        out.append(f"the page does not load plotly and visdom's main.js: {sorted(loaded)}")
    return out


if __name__ == "__main__":
    print(json.dumps(problems(f"http://127.0.0.1:{int(sys.argv[1])}")))
