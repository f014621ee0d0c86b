"""Write vizlab/server/frontend/: the front-end files vizlab ships for every supported Visdom line.

    python scripts/ship_frontend.py          # needs the npm registry (npm pack, or plain HTTP)

For each npm package in vizlab.server.asset_manifest: the files the Visdom pages load, gzipped
(level 9, no name, mtime 0: the same bytes on every machine), each checked against its pinned
SHA-256; the package's licence file (or, where the package ships none, the licence its
package.json declares, written out); and README.md crediting them all. Run it after changing the
manifest, then commit the directory.
"""

from __future__ import annotations

import gzip
import shutil
import sys
import tarfile
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vizlab.server import npm_registry  # noqa: E402
from vizlab.server.asset_manifest import LICENSES, SHIPPED, VISDOM_0_2, VISDOM_0_3  # noqa: E402

OUT = ROOT / "vizlab" / "server" / "frontend"

MIT = """Permission is hereby granted, free of charge, to any person obtaining a copy of this software
and associated documentation files (the "Software"), to deal in the Software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT
NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT
OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""
ISC = """Permission to use, copy, modify, and/or distribute this software for any purpose with or
without fee is hereby granted, provided that the above copyright notice and this permission notice
appear in all copies.

THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES WITH REGARD TO THIS
SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL THE
AUTHOR BE LIABLE FOR ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES
WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS, WHETHER IN AN ACTION OF CONTRACT,
NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF OR IN CONNECTION WITH THE USE OR PERFORMANCE
OF THIS SOFTWARE.
"""
TEXTS = {"MIT": MIT, "ISC": ISC}


def licence_text(package: str, version: str, tarball: Path) -> bytes:
    lic = LICENSES[(package, version)]
    if lic.file is not None:
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar:
                if member.isfile() and member.name.split("/", 1)[-1] == lic.file:
                    return tar.extractfile(member).read()
        raise SystemExit(f"{package}@{version}: tarball lacks {lic.file}")
    note = (f"{package} {version} ships no licence file; its package.json declares the {lic.spdx} "
            f"licence, whose text follows.\n\nCopyright (c) {lic.holder}\n\n")
    return (note + TEXTS[lic.spdx]).encode()


def readme() -> str:
    intro = textwrap.fill(
        "The files Visdom's page loads (its own `build.download_scripts()` fetches them from CDNs "
        "at first start), as published on the npm registry, so that vizlab's Visdom server works "
        "with no network. Each is gzipped (level 9, no name, mtime 0) under "
        "`<package>-<version>/<file in the package>.gz`, beside the package's licence (`LICENSE`). "
        "`vizlab.server.assets` lays the installed Visdom's files and checks each against the "
        "SHA-256 pinned in `vizlab/server/asset_manifest.py`; `scripts/ship_frontend.py` writes "
        "this directory.", 100, break_on_hyphens=False)
    lines = [
        "# Front-end files shipped with vizlab",
        "",
        intro,
        "",
        "| package | version | licence | files | Visdom |",
        "|---|---|---|---:|---|",
    ]
    for (package, version), lic in LICENSES.items():
        rows = [a for a in SHIPPED if (a.package, a.version) == (package, version)]
        lines_of = [name for name, table in (("0.2.4", VISDOM_0_2), ("0.3.x", VISDOM_0_3))
                    if any((a.package, a.version) == (package, version) for a in table)]
        note = "" if lic.file else " (written out: the package ships no licence file)"
        lines.append(f"| [{package}](https://www.npmjs.com/package/{package}/v/{version}) | "
                     f"{version} | {lic.spdx}{note} | {len(rows)} | {', '.join(lines_of)} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    packages = sorted({(a.package, a.version) for a in SHIPPED})
    missing = [p for p in packages if p not in LICENSES]
    if missing:
        raise SystemExit(f"asset_manifest.LICENSES lacks {missing}")
    work = Path(tempfile.mkdtemp(prefix="ship-frontend-"))
    try:
        staged = work / "frontend"
        staged.mkdir()
        # Fetch every package once, through the same code (and pins) the server's fallback uses.
        tarballs = npm_registry.fetch(SHIPPED, work / "tarballs", print)
        for (package, version), tarball in sorted(tarballs.items()):
            rows = [a for a in SHIPPED if (a.package, a.version) == (package, version)]
            for asset, data in npm_registry.extract(tarball, rows):
                target = staged / asset.shipped
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(gzip.compress(data, 9, mtime=0))
            (staged / f"{package}-{version}" / "LICENSE").write_bytes(
                licence_text(package, version, tarball))
        (staged / "README.md").write_text(readme())
        shutil.rmtree(OUT, ignore_errors=True)
        shutil.copytree(staged, OUT)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    size = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {len(SHIPPED)} files of {len(packages)} packages to {OUT} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
