"""A fresh machine with no network: the first `vizlab server start` serves a complete page from
the front-end files shipped with vizlab, and the first `vizlab run` prints no warning.

"No network" twice over: npm and the registry point at dead ends that record any use (so a
fetch is not merely failing, it is never attempted), and, where Linux lets an unprivileged
process make one, inside a network namespace that has nothing but loopback.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pagecheck
import pytest
from conftest import free_port

from vizlab.server import lifecycle as srv

TESTS = Path(__file__).resolve().parent


@contextlib.contextmanager
def recording_registry():
    """An npm registry stand-in that answers 503 to everything and records what was asked."""
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            self.send_response(503)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}/", asked
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """Empty state, cache and data dirs; `npm` and the registry dead ends that record any use.
    Stops the server the test started; fails the test if anything tried to fetch."""
    for var, name in (("VIZLAB_STATE_DIR", "state"), ("XDG_CACHE_HOME", "cache"),
                      ("VIZLAB_DATA_DIR", "data")):
        monkeypatch.setenv(var, str(tmp_path / name))
    for var in ("VIZLAB_VISDOM_STATIC", "VIZLAB_VISDOM_URL", srv.USER_VAR, srv.PASSWORD_VAR):
        monkeypatch.delenv(var, raising=False)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm_log = tmp_path / "npm-called"
    (bin_dir / "npm").write_text(f'#!/bin/sh\necho "$@" >> "{npm_log}"\nexit 1\n')
    (bin_dir / "npm").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    with recording_registry() as (url, asked):
        monkeypatch.setenv("npm_config_registry", url)
        monkeypatch.setenv("NPM_CONFIG_REGISTRY", url)
        try:
            yield tmp_path
        finally:
            srv.stop()
    assert not npm_log.exists(), npm_log.read_text()
    assert asked == []


def test_first_server_start_serves_a_complete_page_with_no_fetch(fresh):
    port = free_port()
    out = subprocess.run([sys.executable, "-m", "vizlab", "server", "start", "--port", str(port)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # no warning
    assert pagecheck.problems(f"http://127.0.0.1:{port}") == []
    assert (fresh / "cache" / "vizlab").is_dir()  # laid into this fresh cache, not another one


def _netns_works() -> bool:
    if not (shutil.which("unshare") and shutil.which("ip")):
        return False
    probe = subprocess.run(["unshare", "-rn", "ip", "link", "set", "lo", "up"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(not _netns_works(),
                    reason="needs `unshare -rn` (unprivileged network namespaces) and `ip`")
def test_first_server_start_in_a_network_namespace_with_only_loopback(fresh):
    port = free_port()
    py = sys.executable
    script = (f'ip link set lo up && "{py}" -m vizlab server start --port {port} >&2 && '
              f'"{py}" "{TESTS / "pagecheck.py"}" {port}; rc=$?; '
              f'"{py}" -m vizlab server stop >&2; exit $rc')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)])}
    proc = subprocess.run(["unshare", "-rn", "sh", "-c", script], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == []


def test_first_run_prints_the_dashboard_line_and_no_warning(fresh, monkeypatch, capfd):
    """`vizlab run mlp` with the default URL on a fresh machine: it starts the local server
    (here on a free port standing in for 8097), and the sink waits for it silently."""
    from vizlab import config
    from vizlab.cli import main
    from vizlab.report import visdom_client as vc

    port = free_port()
    monkeypatch.setattr(srv, "DEFAULT_PORT", port)
    monkeypatch.setattr(config, "DEFAULT_VISDOM_URL", f"http://localhost:{port}")
    monkeypatch.setattr(srv, "_ensured", set())
    try:
        code = main(["run", "mlp", "--limit-train", "2000", "--limit-test", "500", "--epochs", "1",
                     "--runs-dir", str(fresh / "runs"), "--name", "first", "--progress", "plain"])
    except SystemExit as exc:
        code = exc.code
    out, err = capfd.readouterr()
    assert code in (0, None), err
    assert err == ""
    assert f"dashboard: http://localhost:{port}/env/first" in out
    assert "1 epoch," in out and "1 epochs" not in out
    viz = vc.connect(f"http://localhost:{port}", "first")
    assert {"train_loss", "test_acc", "run_card"} <= set(vc.window_data(viz, "first"))
