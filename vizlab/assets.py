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
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from vizlab.errors import VizlabError

DEFAULT_REGISTRY = "https://registry.npmjs.org/"


@dataclass(frozen=True)
class Asset:
    path: str  # under static/, named as visdom's own download code names it
    package: str  # npm package ...
    version: str  # ... at the version visdom's download code fetches
    member: str  # the file inside the package's tarball
    sha256: str


_MJ = "js/mathjax/2.7.5/"
_BS = "dist/fonts/glyphicons-halflings-regular"
# One row per file visdom 0.2.4's build.download_scripts() fetches (the glyphicons SVG under the
# name browsers request: visdom's name keeps the URL's "#fragment" in it).
ASSETS: tuple[Asset, ...] = tuple(Asset(*row) for row in (
    ("js/jquery.min.js", "jquery", "3.1.1", "dist/jquery.min.js",
     "85556761a8800d14ced8fcd41a6b8b26bf012d44a318866c0d81a62092efd9bf"),
    ("js/bootstrap.min.js", "bootstrap", "3.3.7", "dist/js/bootstrap.min.js",
     "53964478a7c634e8dad34ecc303dd8048d00dce4993906de1bacf67f663486ef"),
    ("js/react-react.min.js", "react", "16.2.0", "umd/react.production.min.js",
     "c28b91922bca297037cba02ec85c1c0dc179d1a942355f0b6e085f6021fa67df"),
    ("js/react-dom.min.js", "react-dom", "16.2.0", "umd/react-dom.production.min.js",
     "f61ac9c43e0842c58774da732e424a606898fd211914925252ac9e64f34a77c8"),
    ("js/react-modal.min.js", "react-modal", "3.1.10", "dist/react-modal.min.js",
     "096ce258905585d06758012ec6261a5dc52b11d82e112450670666109bbc6f35"),
    ("js/plotly-plotly.min.js", "plotly.js-dist-min", "2.11.1", "plotly.min.js",
     "dd146b2db18d4ced4743018fa65ada14b723bf1aae08b559a5576ba8116cd889"),
    ("js/sjcl.js", "sjcl", "1.0.7", "sjcl.js",
     "d09a8688f37c7442bb1e6699b46efb191d9281ef05a492586fa0f54dc4e5110a"),
    ("js/layout-bin-packer.js.map", "layout-bin-packer", "1.4.0", "dist/layout-bin-packer.js.map",
     "7f39df86278f0cd247daee3ef579a09df79078e1c585bc7b8ef968266e06c0b5"),
    ("js/layout_bin_packer.js", "layout-bin-packer", "1.4.0", "dist/layout-bin-packer.js",
     "312ed1834f78f497ac3c9e943ce4657679d26ad8cd62d7f722912d26c9d0ed29"),
    ("js/d3.v3.min.js", "d3", "3.5.17", "d3.min.js",
     "76c39718d1c0a3fb321676b3b7e29306c0907919a5716d5728bd1b08ae0169e7"),
    ("js/d3-selection-multi.v1.js", "d3-selection-multi", "1.0.1", "build/d3-selection-multi.js",
     "22f89270afc6f231f8b974e37172a15525f28035276ca960f8ccdce622700315"),
    ("js/saveSvgAsPng.js", "save-svg-as-png", "1.4.17", "lib/saveSvgAsPng.js",
     "71c46f2411daf6ba2a4e38ec563d92f1da42f88da9247a2bdd5c8a10bde93ae3"),
    ("css/react-resizable-styles.css", "react-resizable", "1.4.6", "css/styles.css",
     "7c9122a97c86b4be7839fd3d23c37d06aec1ece3ef830f8bae3a8c121056d528"),
    ("css/react-grid-layout-styles.css", "react-grid-layout", "0.16.3", "css/styles.css",
     "4ec035a50c31ec008bab5794e88ef056043e63aaa8dcbb24d36e5a73780b4dbc"),
    ("css/bootstrap.min.css", "bootstrap", "3.3.7", "dist/css/bootstrap.min.css",
     "f75e846cc83bd11432f4b1e21a45f31bc85283d11d372f7b19accd1bf6a2635c"),
    ("fonts/classnames", "classnames", "2.2.5", "index.js",
     "89f83f030d5f5234436502f5d3ecfb01c1baaabe2a82785016563eb5800b674e"),
    ("fonts/glyphicons-halflings-regular.eot", "bootstrap", "3.3.7", _BS + ".eot",
     "13634da87d9e23f8c3ed9108ce1724d183a39ad072e73e1b3d8cbf646d2d0407"),
    ("fonts/glyphicons-halflings-regular.woff2", "bootstrap", "3.3.7", _BS + ".woff2",
     "fe185d11a49676890d47bb783312a0cda5a44c4039214094e7957b4c040ef11c"),
    ("fonts/glyphicons-halflings-regular.woff", "bootstrap", "3.3.7", _BS + ".woff",
     "a26394f7ede100ca118eff2eda08596275a9839b959c226e15439557a5a80742"),
    ("fonts/glyphicons-halflings-regular.ttf", "bootstrap", "3.3.7", _BS + ".ttf",
     "e395044093757d82afcb138957d06a1ea9361bdcf0b442d06a18a8051af57456"),
    ("fonts/glyphicons-halflings-regular.svg", "bootstrap", "3.3.7", _BS + ".svg",
     "42f60659d265c1a3c30f9fa42abcbb56bd4a53af4d83d316d6dd7a36903c43e5"),
    (_MJ + "MathJax.js", "mathjax", "2.7.5", "MathJax.js",
     "9ef249bfdc162849bcf2abe8425f5e90bd89fa4fd1588b1a492731c65b2bbfc9"),
    (_MJ + "config/Safe.js", "mathjax", "2.7.5", "config/Safe.js",
     "c3d9f149afb82798a73d14a9737a82b5cb8bb8d217de631030a702d4ae0c1d8e"),
    (_MJ + "config/TeX-AMS-MML_HTMLorMML.js", "mathjax", "2.7.5",
     "config/TeX-AMS-MML_HTMLorMML.js",
     "f380ca5d5257b34fc5f0e4cccd7e1447dd3dfa3b65e06ed23f2a4f6af17e19f0"),
    (_MJ + "extensions/Safe.js", "mathjax", "2.7.5", "extensions/Safe.js",
     "1b44a7b48d991ab692da9074fe8582cd47d438b57445af064ce30d2eac3871dd"),
    (_MJ + "jax/output/SVG/config.js", "mathjax", "2.7.5", "jax/output/SVG/config.js",
     "d680518add37c0d1bf50dea3c93a4cd2aa703d5e1d3e2748a0e016c26aee253c"),
    (_MJ + "jax/output/SVG/jax.js", "mathjax", "2.7.5", "jax/output/SVG/jax.js",
     "39d9a95fcde78f560cb5fcf11bb434ca5ad2349d74737b71160c8f473861fb5d"),
    (_MJ + "jax/output/SVG/fonts/TeX/fontdata.js", "mathjax", "2.7.5",
     "jax/output/SVG/fonts/TeX/fontdata.js",
     "c23d4bebe304610f617983eaeab7f8aa5e13a45391318f30ccf2650fbff939e1"),
    (_MJ + "jax/output/SVG/fonts/TeX/Size1/Regular/Main.js", "mathjax", "2.7.5",
     "jax/output/SVG/fonts/TeX/Size1/Regular/Main.js",
     "3e1c830e9c05a62f9caf86f9e13d926c38c5136b1eba8f6171953e839ce3941f"),
))

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
