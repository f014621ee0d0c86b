"""The front-end files each supported Visdom line needs, where each comes from on the npm
registry, and its pinned SHA-256 (checked by vizlab.server.assets whenever files are laid and at
every server start). vizlab ships a gzipped copy of every file (vizlab/server/frontend/,
credited in its README.md); vizlab.server.visdom_compat picks the table for the installed Visdom.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Asset:
    path: str  # under static/, named as visdom's own download code names it
    package: str  # npm package ...
    version: str  # ... at the version visdom's download code fetches
    member: str  # the file inside the package's tarball
    sha256: str

    @property
    def shipped(self) -> str:
        """Its gzipped copy under vizlab/server/frontend/."""
        return f"{self.package}-{self.version}/{self.member}.gz"


_MJ = "js/mathjax/2.7.5/"
_BS = "dist/fonts/glyphicons-halflings-regular"
# One row per file visdom's build.download_scripts() fetches (the glyphicons SVG under the name
# browsers request: visdom's name keeps the URL's "#fragment" in it). First the files both lines
# fetch alike.
_COMMON: tuple[Asset, ...] = tuple(Asset(*row) for row in (
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
))

# Visdom 0.2.4 (Python 3.11): older grid styles and MathJax 2.
VISDOM_0_2: tuple[Asset, ...] = _COMMON + tuple(Asset(*row) for row in (
    ("css/react-resizable-styles.css", "react-resizable", "1.4.6", "css/styles.css",
     "7c9122a97c86b4be7839fd3d23c37d06aec1ece3ef830f8bae3a8c121056d528"),
    ("css/react-grid-layout-styles.css", "react-grid-layout", "0.16.3", "css/styles.css",
     "4ec035a50c31ec008bab5794e88ef056043e63aaa8dcbb24d36e5a73780b4dbc"),
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

# Visdom 0.3.x (Python 3.12 and newer): newer grid styles and MathJax 3 in one file.
VISDOM_0_3: tuple[Asset, ...] = _COMMON + tuple(Asset(*row) for row in (
    ("css/react-resizable-styles.css", "react-resizable", "3.1.3", "css/styles.css",
     "08fba77b2ebcdb6d82519998bbdaf4690a4cc235d26c51aeccd70f9a4158192d"),
    ("css/react-grid-layout-styles.css", "react-grid-layout", "2.2.3", "css/styles.css",
     "924b27a74bd4642110e68002786c901a0aa42860858fe97a153ad7502db2a3c2"),
    ("js/mathjax/3.2.2/es5/tex-mml-svg.js", "mathjax", "3.2.2", "es5/tex-mml-svg.js",
     "1f17a7ed95ff4a4b27d16bf0fb5f80b915686ee8673e82983a2876ecf8cb9fae"),
))

# Every file vizlab ships, once (most are shared by both lines).
SHIPPED: tuple[Asset, ...] = tuple({a.shipped: a for a in VISDOM_0_2 + VISDOM_0_3}.values())


@dataclass(frozen=True)
class License:
    spdx: str  # as the package's package.json declares it
    file: str | None  # its licence file inside the tarball; None: the package ships none
    holder: str  # who holds the copyright, as the package names it


# One row per npm package whose files vizlab ships; scripts/ship_frontend.py copies each licence
# file beside the package's files and writes frontend/README.md from this table.
LICENSES: dict[tuple[str, str], License] = {
    ("jquery", "3.1.1"): License("MIT", "LICENSE.txt", "jQuery Foundation and other contributors"),
    ("bootstrap", "3.3.7"): License("MIT", "LICENSE", "Twitter, Inc."),
    ("react", "16.2.0"): License("MIT", "LICENSE", "Facebook, Inc."),
    ("react-dom", "16.2.0"): License("MIT", "LICENSE", "Facebook, Inc."),
    ("react-modal", "3.1.10"): License("MIT", "LICENSE", "Ryan Florence"),
    ("plotly.js-dist-min", "2.11.1"): License("MIT", "LICENSE", "Plotly, Inc."),
    ("sjcl", "1.0.7"): License("BSD-2-Clause OR GPL-2.0-or-later", "LICENSE.txt",
                               "Emily Stark, Mike Hamburg, Dan Boneh"),
    ("layout-bin-packer", "1.4.0"): License("ISC", None, "Stefan Penner"),
    ("d3", "3.5.17"): License("BSD-3-Clause", "LICENSE", "Mike Bostock"),
    ("d3-selection-multi", "1.0.1"): License("BSD-3-Clause", "LICENSE", "Mike Bostock"),
    ("save-svg-as-png", "1.4.17"): License("MIT", "LICENSE", "Eric Shull"),
    ("react-resizable", "1.4.6"): License("MIT", None, "Samuel Reed"),
    ("react-resizable", "3.1.3"): License("MIT", "LICENSE", "Samuel Reed"),
    ("react-grid-layout", "0.16.3"): License("MIT", "LICENSE", "Samuel Reed"),
    ("react-grid-layout", "2.2.3"): License("MIT", "LICENSE", "Samuel Reed"),
    ("classnames", "2.2.5"): License("MIT", "LICENSE", "Jed Watson"),
    ("mathjax", "2.7.5"): License("Apache-2.0", "LICENSE", "The MathJax Consortium"),
    ("mathjax", "3.2.2"): License("Apache-2.0", "LICENSE", "The MathJax Consortium"),
}
