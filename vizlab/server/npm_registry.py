"""Front-end files from the npm registry: the fallback when vizlab's shipped copies are missing.

Tarballs come through ``npm pack`` where npm is installed (its cache, proxy and registry settings
apply), else by an HTTP GET from the registry npm would use. Every file taken out of a tarball is
checked against its pinned SHA-256 before it is written.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

from vizlab.errors import VizlabError
from vizlab.server.asset_manifest import Asset

DEFAULT_REGISTRY = "https://registry.npmjs.org/"


def lay(rows: tuple[Asset, ...], staged: Path, tarballs: Path,
        progress: Callable[[str], None] | None) -> None:
    """Write every row's file under ``staged``, from its package's tarball (kept in ``tarballs``)."""
    for (package, version), tarball in fetch(rows, tarballs, progress).items():
        wanted = [a for a in rows if (a.package, a.version) == (package, version)]
        for asset, data in extract(tarball, wanted):
            _write(staged / asset.path, data)


def fetch(rows: tuple[Asset, ...], dest: Path,
          progress: Callable[[str], None] | None) -> dict[tuple[str, str], Path]:
    """The tarball of every package the rows come from, written into ``dest`` (created)."""
    packages = sorted({(a.package, a.version) for a in rows})
    dest.mkdir()
    paths = None
    if shutil.which("npm"):
        if progress:
            progress(f"fetching {len(packages)} npm packages with npm pack")
        paths, npm_error = _npm_pack(packages, dest)
        if paths is None and progress:
            progress(f"npm pack failed ({npm_error}); trying plain HTTP")
    if paths is None:
        registry = registry_url()
        if progress:
            progress(f"fetching {len(packages)} npm packages from {registry}")
        paths = _http_get_tarballs(packages, dest, registry)
    return paths


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


def extract(tarball: Path, rows: list[Asset]) -> list[tuple[Asset, bytes]]:
    """The wanted members, each checked against its pin (npm tarballs nest everything under one
    top folder). Raises VizlabError for a missing or different file."""
    wanted = {a.member: a for a in rows}
    found = []
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar:
                inner = member.name.split("/", 1)[-1]
                if member.isfile() and inner in wanted:
                    asset = wanted.pop(inner)
                    data = tar.extractfile(member).read()
                    if hashlib.sha256(data).hexdigest() != asset.sha256:
                        raise VizlabError(f"{asset.package}@{asset.version}: {asset.member} does "
                                          "not match its pinned SHA-256 (registry mirror serving "
                                          "other content?)")
                    found.append((asset, data))
                if not wanted:
                    break
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise VizlabError(f"{tarball.name}: unreadable npm tarball ({exc})") from None
    if wanted:
        first = next(iter(wanted.values()))
        raise VizlabError(f"{first.package}@{first.version}: tarball lacks {first.member}")
    return found


def _npm_pack(packages, dest: Path):
    """Tarballs through npm; (None, why) if that fails."""
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


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
