"""Visdom's front-end files, laid offline from npm registry packages and checked file by file.

Visdom 0.2.4 downloads its front-end files from CDNs at first start, and with no internet it
never starts (its MathJax download raises). Every one of those files is published on the npm
registry, so vizlab lays them from the registry's packages (``npm pack`` where npm is installed,
else an HTTP GET from the registry npm would use) or copies them from a directory
(``--assets-dir``), and checks every file against the SHA-256 pinned in ``ASSETS``.

Where they go: a vizlab-owned static directory, ``static_dir()``
(``$VIZLAB_VISDOM_STATIC``, default ``$XDG_CACHE_HOME/vizlab/visdom-<version>/static``), holding a
copy of visdom's own static files plus the laid ones and ``version.built``. vizlab's server serves
from there. It never writes into visdom's package directory: that belongs to pip (files added
there outlive ``pip uninstall``) and is read-only for system-wide or shared installs, and one
location for everyone means one code path, the one the tests run.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from vizlab.errors import VizlabError
from vizlab.server.asset_manifest import ASSETS, Asset

DEFAULT_REGISTRY = "https://registry.npmjs.org/"


Progress = Optional[Callable[[str], None]]  # noqa: UP045 (a runtime alias)


def visdom_version() -> str:
    return importlib.metadata.version("visdom")


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


def is_complete(static: Path) -> bool:
    """Cheap check (no hashing) that every file is in place: used at each server start."""
    built = static / "version.built"
    return (built.is_file() and built.read_text().strip() == visdom_version()
            and (static / "index.html").is_file()
            and all((static / a.path).is_file() for a in ASSETS))


def verify(static: Path) -> list[str]:
    """Problems with the laid files, one line each (empty when every file matches its hash)."""
    problems = []
    for asset in ASSETS:
        f = static / asset.path
        if not f.is_file():
            problems.append(f"{asset.path}: missing")
        elif _sha256(f.read_bytes()) != asset.sha256:
            problems.append(f"{asset.path}: content differs from {asset.package}@{asset.version}")
    return problems


def ensure_static(assets_dir: Path | None = None, progress: Progress = None) -> Path:
    """The served static directory, laid first if anything is missing. Raises VizlabError."""
    static = static_dir()
    if assets_dir is None and is_complete(static):
        return static
    return lay(assets_dir, progress)


def lay(assets_dir: Path | None = None, progress: Progress = None) -> Path:
    """(Re)lay the static directory from ``assets_dir`` or the npm registry, checking every file.

    Built beside the target and renamed into place, so a server never sees half a directory and
    two processes laying at once do not mix their files.
    """
    static = static_dir()
    if progress:
        progress(f"laying Visdom's front-end files into {static} (once)")
    static.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".lay-", dir=static.parent))
    try:
        staged = work / "static"
        shutil.copytree(visdom_package_static(), staged)
        if assets_dir is not None:
            _copy_from_dir(Path(assets_dir), staged)
        else:
            _lay_from_registry(staged, work / "tarballs", progress)
        problems = verify(staged)
        if problems:  # cannot happen unless the writes failed: every file was checked on the way
            raise VizlabError(f"laid front-end files failed verification: {problems[0]}")
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
    for asset in ASSETS:
        target = dest / asset.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(static / asset.path, target)
    problems = verify(dest)
    if problems:
        raise VizlabError(f"export to {dest} failed verification: {problems[0]}")
    return len(ASSETS)


def registry_url() -> str:
    """The registry npm would use: ``npm config get registry``, else npm's env var or ~/.npmrc."""
    if shutil.which("npm"):
        try:
            out = subprocess.run(["npm", "config", "get", "registry"], capture_output=True,
                                 text=True, timeout=30).stdout.strip()
            if out.startswith("http"):
                return out
        except (OSError, subprocess.SubprocessError):
            pass
    # npm reads both spellings.
    env = os.environ.get("npm_config_registry") or os.environ.get("NPM_CONFIG_REGISTRY")  # noqa: SIM112
    if env:
        return env
    npmrc = Path.home() / ".npmrc"
    if npmrc.is_file():
        for line in npmrc.read_text(errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "registry" and value.strip():
                return value.strip()
    return DEFAULT_REGISTRY


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _copy_from_dir(source: Path, staged: Path) -> None:
    if not source.is_dir():
        raise VizlabError(f"--assets-dir {source}: not a directory")
    for asset in ASSETS:
        f = source / asset.path
        if not f.is_file():
            raise VizlabError(f"--assets-dir {source}: {asset.path} is missing "
                              "(make the directory with `vizlab server assets --export DIR`)")
        data = f.read_bytes()
        if _sha256(data) != asset.sha256:
            raise VizlabError(f"--assets-dir {source}: {asset.path} is not "
                              f"{asset.package}@{asset.version}'s {asset.member}")
        _write(staged / asset.path, data)


def _lay_from_registry(staged: Path, tarballs: Path, progress: Progress) -> None:
    packages = sorted({(a.package, a.version) for a in ASSETS})
    tarballs.mkdir()
    paths = None
    if shutil.which("npm"):
        if progress:
            progress(f"fetching {len(packages)} npm packages with npm pack")
        paths, npm_error = _npm_pack(packages, tarballs)
        if paths is None and progress:
            progress(f"npm pack failed ({npm_error}); trying plain HTTP")
    if paths is None:
        registry = registry_url()
        if progress:
            progress(f"fetching {len(packages)} npm packages from {registry}")
        paths = _http_get_tarballs(packages, tarballs, registry)
    for (package, version), tarball in paths.items():
        rows = [a for a in ASSETS if (a.package, a.version) == (package, version)]
        _extract(tarball, rows, staged)


def _npm_pack(packages, dest: Path):
    """Tarballs through npm (its cache, proxy and registry settings apply); (None, why) if not."""
    specs = [f"{name}@{version}" for name, version in packages]
    try:
        proc = subprocess.run(["npm", "pack", "--silent", *specs], cwd=dest, capture_output=True,
                              text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, str(exc)
    paths = {(n, v): dest / f"{n}-{v}.tgz" for n, v in packages}
    if proc.returncode != 0 or not all(p.is_file() for p in paths.values()):
        lines = [ln for ln in proc.stderr.splitlines() if "ERR" in ln] or proc.stderr.splitlines()
        return None, (lines[-1] if lines else f"npm pack exited {proc.returncode}")
    return paths, None


def _http_get_tarballs(packages, dest: Path, registry: str) -> dict:
    paths = {}
    for name, version in packages:
        url = f"{registry.rstrip('/')}/{name}/-/{name}-{version}.tgz"
        path = dest / f"{name}-{version}.tgz"
        try:
            with urllib.request.urlopen(url, timeout=60) as resp, open(path, "wb") as out:
                shutil.copyfileobj(resp, out)
        except OSError as exc:
            raise VizlabError(
                f"cannot fetch {name}@{version} from the npm registry ({url}: {exc}); on a machine "
                "with no network use `vizlab server assets --assets-dir DIR` with files exported "
                "elsewhere by `vizlab server assets --export DIR`") from None
        paths[(name, version)] = path
    return paths


def _extract(tarball: Path, rows: list[Asset], staged: Path) -> None:
    """Read the wanted members (npm tarballs nest everything under one top folder)."""
    wanted = {a.member: a for a in rows}
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar:
                inner = member.name.split("/", 1)[-1]
                if member.isfile() and inner in wanted:
                    asset = wanted.pop(inner)
                    data = tar.extractfile(member).read()
                    if _sha256(data) != asset.sha256:
                        raise VizlabError(f"{asset.package}@{asset.version}: {asset.member} does "
                                          "not match its pinned SHA-256 (registry mirror serving "
                                          "other content?)")
                    _write(staged / asset.path, data)
                if not wanted:
                    break
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise VizlabError(f"{tarball.name}: unreadable npm tarball ({exc})") from None
    if wanted:
        first = next(iter(wanted.values()))
        raise VizlabError(f"{first.package}@{first.version}: tarball lacks {first.member}")


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
