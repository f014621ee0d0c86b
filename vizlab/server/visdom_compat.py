"""What differs between the Visdom releases vizlab supports, kept in this one place.

Two lines are supported, each with the Pythons pip gives it (setup.cfg's environment markers):

- Visdom 0.2.4 on Python 3.11 (0.2.4 is the last release that installs there);
- Visdom 0.3.x on Python 3.12 and newer (0.3 needs 3.12).

Between them: the front-end files the page loads (MathJax 2 against 3, newer grid styles), what
``import visdom`` drags in (0.3 imports openTSNE, hence scikit-learn and scipy, whose array-API
helpers break on the torch block), and how each answers the page's favicon request. Everything
else vizlab changes in the server (vizlab.server.main: request checks, its own login, env
saving, tornado settings) works on both unchanged; clients tell the two apart by nothing but
the status of a refused login (vizlab.report.visdom_client). Standard library only, so `vizlab
server` imports it cheaply.
"""

from __future__ import annotations

import importlib.metadata
import sys
from dataclasses import dataclass

from vizlab.errors import VizlabError
from vizlab.server.asset_manifest import VISDOM_0_2, VISDOM_0_3, Asset

SUPPORTED = "Visdom 0.2.4 (Python 3.11) or 0.3.x (Python 3.12 and newer)"


@dataclass(frozen=True)
class VisdomLine:
    name: str
    assets: tuple[Asset, ...]  # the front-end files its page loads
    # Modules ``import visdom`` would load that the server never uses: torch (~3 s; visdom only
    # checks for tensors) and, in 0.3, openTSNE (scikit-learn and scipy, ~2 s, and scipy fails
    # outright where torch is blocked). A None entry makes the import fail fast, which visdom
    # catches (it then lacks t-SNE embeddings, which vizlab never draws).
    unused_imports: tuple[str, ...]


LINES = (
    VisdomLine("0.2", VISDOM_0_2, ("torch",)),
    VisdomLine("0.3", VISDOM_0_3, ("torch", "openTSNE")),
)


def installed_version() -> str:
    try:
        return importlib.metadata.version("visdom")
    except importlib.metadata.PackageNotFoundError:
        raise VizlabError("visdom is not installed (reinstall vizlab: bash scripts/install.sh)") \
            from None


def line_of(version: str) -> VisdomLine:
    """The supported line ``version`` belongs to; VizlabError for any other version."""
    parts = version.split(".")
    if version == "0.2.4":
        return LINES[0]
    if parts[:2] == ["0", "3"]:
        return LINES[1]
    raise VizlabError(f"Visdom {version} is installed; vizlab works with {SUPPORTED} "
                      "(reinstall vizlab to get the matching one: bash scripts/install.sh)")


def installed_line() -> VisdomLine:
    return line_of(installed_version())


def block_unused_imports() -> None:
    """Call before anything imports visdom (the server process does, first thing)."""
    for name in installed_line().unused_imports:
        sys.modules.setdefault(name, None)


def extra_handlers() -> list[tuple]:
    """Routes vizlab's server adds in front of visdom's (tornado takes the first match).

    The page asks for ``favicon.png`` relative to its URL, so ``/env/NAME`` asks for
    ``/env/favicon.png``: 0.2.4 answers with the page itself, 0.3 with a 404 for an env named
    favicon.png, which the browser reports as an error. Neither ships an icon: answer "no
    content" on both lines.
    """
    import tornado.web

    class NoFavicon(tornado.web.RequestHandler):
        def get(self, *args):
            self.set_status(204)

    return [(r"(?:/env|/compare)?/favicon\.png", NoFavicon)]
