"""Visdom's front-end files: laid from the copies that ship with vizlab, checked file by file.

Visdom downloads its front-end files (plotly, React, jQuery, Bootstrap, MathJax, ...) from CDNs at
first start, and with no internet it never starts. vizlab ships a gzipped copy of every file each
supported Visdom line needs (vizlab/server/frontend/, with their licences; see its README.md) and
lays the installed line's files into a static directory it serves from, checking each against the
SHA-256 pinned in vizlab.server.asset_manifest. Every server start checks the laid files again
(about 7 MB to hash: milliseconds) and lays them anew when one differs. Fallbacks: the npm
registry (vizlab.server.npm_registry) when the shipped copies are missing or damaged, and a
directory of exported files (``--assets-dir``).

Where they go: a vizlab-owned static directory, ``static_dir()``
(``$VIZLAB_VISDOM_STATIC``, default ``$XDG_CACHE_HOME/vizlab/visdom-<version>/static``), holding a
copy of visdom's own static files plus the laid ones and ``version.built``. vizlab's server serves
from there. It never writes into visdom's package directory: that belongs to pip (files added
there outlive ``pip uninstall``) and is read-only for system-wide or shared installs, and one
location for everyone means one code path, the one the tests run.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from vizlab.errors import VizlabError
from vizlab.server import npm_registry, visdom_compat
from vizlab.server.asset_manifest import Asset

SHIPPED_DIR = Path(__file__).with_name("frontend")
PAGES = ("index.html", "login.html")  # every file these load must be laid
_STATIC_URL = re.compile(r"""static_url\(\s*["']([^"']+)["']\s*\)""")

Progress = Optional[Callable[[str], None]]  # noqa: UP045 (a runtime alias)


def table() -> tuple[Asset, ...]:
    """The front-end files of the installed Visdom (VizlabError for an unsupported one)."""
    return visdom_compat.installed_line().assets


def visdom_version() -> str:
    return visdom_compat.installed_version()


def visdom_package_static() -> Path:
    """visdom's own static files (index.html, main.js, ...), found without importing visdom."""
    spec = importlib.util.find_spec("visdom")
    if spec is None or not spec.submodule_search_locations:
        raise VizlabError("visdom is not installed (pip install visdom)")
    return Path(list(spec.submodule_search_locations)[0]) / "static"


def static_dir() -> Path:
    """The directory vizlab's Visdom server serves its page and scripts from."""
    env = os.environ.get("VIZLAB_VISDOM_STATIC")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "vizlab" / f"visdom-{visdom_version()}" / "static"


def verify(static: Path) -> list[str]:
    """Problems with the laid files, one line each: a file missing or not matching its pin, or a
    file the page loads that nothing laid (a Visdom release needing files vizlab does not know)."""
    problems = _file_problems(static, table())
    for page in PAGES:
        for ref in _page_refs(static / page):
            if not (static / ref).is_file():
                problems.append(f"{page} loads {ref}, which Visdom {visdom_version()} needs and "
                                "vizlab does not know")
    return problems


def _file_problems(static: Path, rows: tuple[Asset, ...]) -> list[str]:
    problems = []
    for asset in rows:
        f = static / asset.path
        if not f.is_file():
            problems.append(f"{asset.path}: missing")
        elif _sha256(f.read_bytes()) != asset.sha256:
            problems.append(f"{asset.path}: content differs from {asset.package}@{asset.version}")
    return problems


def is_complete(static: Path) -> bool:
    """Laid for the installed Visdom, and every file matches its pin (checked at each start)."""
    built = static / "version.built"
    return (built.is_file() and built.read_text().strip() == visdom_version()
            and (static / "index.html").is_file() and not verify(static))


def ensure_static(assets_dir: Path | None = None, progress: Progress = None) -> Path:
    """The served static directory, laid first if anything is missing or differs from its pin.
    Raises VizlabError."""
    static = static_dir()
    if assets_dir is None and is_complete(static):
        return static
    return lay(assets_dir, progress)


def lay(assets_dir: Path | None = None, progress: Progress = None, *,
        registry: bool = False) -> Path:
    """(Re)lay the static directory, checking every file: from ``assets_dir`` when given, else
    from the shipped copies, else (or with ``registry``) from the npm registry.

    Built beside the target and renamed into place, so a server never sees half a directory and
    two processes laying at once do not mix their files.
    """
    static, rows = static_dir(), table()
    static.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".lay-", dir=static.parent))
    try:
        staged = work / "static"
        shutil.copytree(visdom_package_static(), staged)
        if assets_dir is not None:
            _copy_from_dir(Path(assets_dir), staged, rows)
        else:
            unusable = "not asked for" if registry else _copy_shipped(staged, rows)
            if unusable is None:
                if progress:
                    progress(f"laying Visdom's front-end files (shipped with vizlab) into {static}")
            else:
                if progress and not registry:
                    progress(f"the front-end files shipped with vizlab are unusable ({unusable}); "
                             "fetching them from the npm registry")
                npm_registry.lay(rows, staged, work / "tarballs", progress)
        problems = verify(staged)
        if problems:
            raise VizlabError(f"the front-end files for Visdom {visdom_version()} are "
                              f"incomplete: {problems[0]}")
        (staged / "version.built").write_text(visdom_version())
        _replace_dir(staged, static)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return static


def export(dest: Path, progress: Progress = None) -> int:
    """Write the front-end files to ``dest`` (for ``--assets-dir`` on a machine with no network).

    Returns the number of files written.
    """
    static = ensure_static(progress=progress)
    dest = Path(dest)
    rows = table()
    for asset in rows:
        target = dest / asset.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(static / asset.path, target)
    problems = _file_problems(dest, rows)
    if problems:
        raise VizlabError(f"export to {dest} failed verification: {problems[0]}")
    return len(rows)


def shipped_problems() -> list[str]:
    """Every shipped copy that is missing or does not match its pin (all Visdom lines)."""
    from vizlab.server.asset_manifest import SHIPPED

    problems = []
    for asset in SHIPPED:
        data = _read_shipped(asset)
        if data is None or _sha256(data) != asset.sha256:
            problems.append(f"{asset.shipped}: " + ("missing" if data is None else "differs"))
    return problems


def _copy_shipped(staged: Path, rows: tuple[Asset, ...]) -> str | None:
    """Lay the rows from the shipped copies; why not, if one is missing or differs."""
    for asset in rows:
        data = _read_shipped(asset)
        if data is None:
            return f"{asset.shipped} is missing"
        if _sha256(data) != asset.sha256:
            return f"{asset.shipped} does not match its pinned SHA-256"
        _write(staged / asset.path, data)
    return None


def _read_shipped(asset: Asset) -> bytes | None:
    try:
        return gzip.decompress((SHIPPED_DIR / asset.shipped).read_bytes())
    except (OSError, EOFError, zlib.error):
        return None


def _page_refs(page: Path) -> list[str]:
    """The static files a page template loads (``static_url('...')``), not counting the user's
    style sheet that visdom serves outside /static/."""
    if not page.is_file():
        return []
    return [ref for ref in _STATIC_URL.findall(page.read_text(errors="replace"))
            if not ref.startswith("../")]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _copy_from_dir(source: Path, staged: Path, rows: tuple[Asset, ...]) -> None:
    if not source.is_dir():
        raise VizlabError(f"--assets-dir {source}: not a directory")
    for asset in rows:
        f = source / asset.path
        if not f.is_file():
            raise VizlabError(f"--assets-dir {source}: {asset.path} is missing "
                              "(make the directory with `vizlab server assets --export DIR`)")
        data = f.read_bytes()
        if _sha256(data) != asset.sha256:
            raise VizlabError(f"--assets-dir {source}: {asset.path} is not "
                              f"{asset.package}@{asset.version}'s {asset.member}")
        _write(staged / asset.path, data)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _replace_dir(staged: Path, target: Path) -> None:
    if target.exists():
        # Move the old one aside first: rename cannot replace a non-empty directory.
        old = target.with_name(f".old-{os.getpid()}-{target.name}")
        os.rename(target, old)
        shutil.rmtree(old, ignore_errors=True)
    try:
        os.rename(staged, target)
    except OSError:
        if not is_complete(target):  # another process laid it meanwhile: keep theirs
            raise
