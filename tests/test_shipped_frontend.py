"""The front-end files that ship inside vizlab (vizlab/server/frontend/): every file of both
Visdom lines matches its pin, every package is credited with its licence, the wheel carries them,
and the laid copy is checked again at each start."""

from __future__ import annotations

import pytest

from vizlab.errors import VizlabError
from vizlab.server import assets, visdom_compat
from vizlab.server.asset_manifest import LICENSES, SHIPPED, VISDOM_0_2, VISDOM_0_3

PACKAGES = sorted({(a.package, a.version) for a in SHIPPED})


def test_every_shipped_copy_matches_its_pin():
    assert assets.shipped_problems() == []
    assert {a.shipped for a in VISDOM_0_2 + VISDOM_0_3} == {a.shipped for a in SHIPPED}


def test_every_shipped_package_is_credited_with_its_licence():
    readme = (assets.SHIPPED_DIR / "README.md").read_text()
    assert sorted(LICENSES) == PACKAGES  # no package without a licence row, none stale
    for package, version in PACKAGES:
        licence = (assets.SHIPPED_DIR / f"{package}-{version}" / "LICENSE").read_text()
        assert len(licence) > 500, package  # a licence text, not a stub
        assert f"[{package}](https://www.npmjs.com/package/{package}/v/{version}) | {version} | " \
               f"{LICENSES[package, version].spdx}" in readme
    shipped_dirs = {p.name for p in assets.SHIPPED_DIR.iterdir() if p.is_dir()}
    assert shipped_dirs == {f"{p}-{v}" for p, v in PACKAGES}  # nothing uncredited


def test_the_wheel_carries_the_front_end_files(wheel_members):
    root = "vizlab/server/frontend/"
    for asset in SHIPPED:
        assert wheel_members[root + asset.shipped] == \
               (assets.SHIPPED_DIR / asset.shipped).read_bytes()
    for package, version in PACKAGES:
        assert root + f"{package}-{version}/LICENSE" in wheel_members
    assert root + "README.md" in wheel_members


def test_the_installed_visdom_is_a_supported_line():
    line = visdom_compat.installed_line()
    assert line.assets in (VISDOM_0_2, VISDOM_0_3)
    assert (line.name == "0.2") == (visdom_compat.installed_version() == "0.2.4")


@pytest.mark.parametrize("version, line", [("0.2.4", "0.2"), ("0.3.0", "0.3"), ("0.3.7", "0.3")])
def test_visdom_versions_map_to_their_line(version, line):
    assert visdom_compat.line_of(version).name == line


@pytest.mark.parametrize("version", ["0.2.3", "0.4.0", "1.0"])
def test_other_visdom_versions_are_refused_in_one_line(version):
    with pytest.raises(VizlabError, match=f"Visdom {version} is installed; vizlab works with "
                                          r"Visdom 0\.2\.4 \(Python 3\.11\) or 0\.3\.x"):
        visdom_compat.line_of(version)


def test_a_laid_file_that_changed_is_laid_again_at_the_next_start(tmp_path, monkeypatch):
    monkeypatch.setenv("VIZLAB_VISDOM_STATIC", str(tmp_path / "static"))
    static = assets.ensure_static()
    plotly = static / "js" / "plotly-plotly.min.js"
    plotly.write_bytes(plotly.read_bytes()[:-1] + b" ")  # one byte, same size
    assert not assets.is_complete(static)
    assert assets.ensure_static() == static  # what each server start does
    assert assets.verify(static) == [] and assets.is_complete(static)


def test_a_page_needing_an_unknown_file_is_reported(tmp_path, monkeypatch):
    """A future Visdom whose page loads a file vizlab does not know fails the check by name."""
    monkeypatch.setenv("VIZLAB_VISDOM_STATIC", str(tmp_path / "static"))
    static = assets.ensure_static()
    index = static / "index.html"
    index.write_text(index.read_text().replace(
        "</head>", '<script src={{ static_url("js/new-in-visdom.js") }}></script></head>'))
    problems = assets.verify(static)
    assert len(problems) == 1 and problems[0].startswith("index.html loads js/new-in-visdom.js")
