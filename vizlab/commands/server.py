"""`vizlab server start|stop|status|assets`: the local Visdom dashboard."""

from __future__ import annotations

import time
from pathlib import Path

import click

from vizlab.server import lifecycle as srv

_DIR = click.Path(file_okay=False, path_type=Path)
_EXISTING_DIR = click.Path(exists=True, file_okay=False, path_type=Path)


@click.group("server")
def server():
    """Start, stop or inspect the local Visdom server.

    \b
      vizlab server start            dashboard at http://127.0.0.1:8097, in the background
      vizlab server status           URL, pid, uptime, envs
      vizlab server stop
    """


@server.command()
@click.option("--port", type=int, default=srv.DEFAULT_PORT, show_default=True)
@click.option("--host", default=srv.DEFAULT_HOST, show_default=True,
              help="Address to listen on. Any other than loopback shows the dashboard to "
                   "everyone who can reach this machine.")
@click.option("--env-dir", type=_DIR, default=None,
              help="Where envs are saved and reloaded from  [default: <state dir>/envs].")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME",
              help="A host name browsers may use to reach the server (repeatable). Requests "
                   "naming any other host are refused (DNS rebinding); loopback addresses, "
                   "localhost and --host always work.")
@click.option("--login", is_flag=True,
              help=f"Require a login: {srv.USER_VAR} and {srv.PASSWORD_VAR}.")
@click.option("--readonly", is_flag=True,
              help="Dashboards nobody can change or steer from the page (no control pane "
                   "commands, no closing windows).")
@click.option("--foreground", is_flag=True, help="Run in this terminal; Ctrl-C stops it.")
@click.option("--assets-dir", type=_EXISTING_DIR, default=None,
              help="Take the front-end files from DIR (made by `vizlab server assets --export`) "
                   "instead of the copies shipped with vizlab.")
def start(port, host, env_dir, allow_hosts, login, readonly, foreground, assets_dir):
    """Start the Visdom server (in the background unless --foreground).

    By default it listens on 127.0.0.1 only. tornado's debug mode is off, it works with no
    internet, and it keeps every env in the env dir, so a restart keeps the dashboards.
    """
    from vizlab.term import console, warn

    for name in allow_hosts:
        _check_host_name(name)
    if not _is_loopback(host):
        warn(f"--host {host}: anyone who can reach port {port} here can read and change the "
             "dashboard" + ("" if login else "; consider --login") + " (browsers reach it by "
             "IP address, or by the names given with --allow-host)")
    progress = _progress()
    if foreground:
        srv.exec_foreground(port, host, env_dir, login, assets_dir, progress, allow_hosts,
                            readonly)
        return  # not reached: exec replaced this process
    info, already = srv.start(port, host, env_dir, login, assets_dir, progress, allow_hosts,
                              readonly)
    if already:
        console().print(f"vizlab's Visdom server already runs at {info.url} (pid {info.pid})")
        return
    console().print(f"Visdom server started at {info.url} (pid {info.pid})")
    console().print(f"envs saved in {info.env_dir}; log: {srv.log_file()}")


@server.command()
def stop():
    """Stop the server; it saves its in-memory envs first."""
    from vizlab.term import console

    info = srv.stop()
    if info is None:
        console().print("no vizlab Visdom server is running")
    else:
        console().print(f"stopped the Visdom server at {info.url} (pid {info.pid})")


@server.command()
def status():
    """Show URL, pid, uptime and envs (exit status 3 when none runs)."""
    from vizlab.term import console

    info = srv.running()
    if info is None:
        console().print(f"no vizlab Visdom server is running (state dir: {srv.state_dir()})")
        # SystemExit, not ctx.exit: vizlab.cli.main runs Click with standalone_mode=False,
        # where ctx.exit's status is returned, not used.
        raise SystemExit(3)
    envs, live = srv.list_envs(info)
    shown = (", ".join(envs) or "none") + ("" if live else " (saved; the server did not answer)")
    rows = [("url", info.url), ("pid", str(info.pid)), ("uptime", _duration(info.uptime)),
            ("envs", shown),
            ("env dir", info.env_dir), ("login", "on" if info.login else "off"),
            ("log", str(srv.log_file()))]
    for name, value in rows:  # env names and paths are the user's: no Rich markup
        console().print(f"{name + ':':9} {value}", soft_wrap=True, markup=False)


@server.command()
@click.option("--assets-dir", type=_EXISTING_DIR, default=None,
              help="Lay the files from DIR (another machine's --export).")
@click.option("--registry", is_flag=True,
              help="Lay the files from the npm registry (through npm where installed).")
@click.option("--export", "export_dir", type=_DIR, default=None,
              help="Also write the files to DIR.")
def assets(assets_dir, registry, export_dir):
    """Lay and verify the dashboard's front-end files (`start` does it when needed).

    They come from the copies shipped with vizlab (the npm registry when those are missing or
    damaged), or from --assets-dir or --registry when asked; every file is checked against its
    pinned SHA-256.
    """
    from vizlab.errors import VizlabError
    from vizlab.server import assets as front
    from vizlab.term import console

    progress = _progress()
    static = front.static_dir()
    t0 = time.perf_counter()
    if assets_dir is not None and registry:
        raise VizlabError("--assets-dir and --registry: choose one source")
    if assets_dir is not None or registry or not front.is_complete(static):
        static = front.lay(assets_dir, progress, registry=registry)
        console().print(f"laid in {time.perf_counter() - t0:.1f} s")
    console().print(f"{len(front.table())} front-end files of Visdom {front.visdom_version()} "
                    f"verified (SHA-256) in {static}")
    if export_dir is not None:
        count = front.export(export_dir, progress)
        console().print(f"wrote {count} files to {export_dir}; on a machine with no network: "
                        f"vizlab server assets --assets-dir {export_dir}")


def _progress():
    from vizlab.term import console

    return lambda message: console().print(f"[dim]{message}[/dim]")


def _check_host_name(name: str) -> None:
    from vizlab.errors import VizlabError
    from vizlab.server.request_rules import is_host_name

    if not is_host_name(name):
        raise VizlabError(f"--allow-host {name!r}: not a host name or IP address")


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def _duration(seconds: float) -> str:
    s = int(seconds)
    h, m = divmod(s // 60, 60)
    return f"{h}h {m:02d}m {s % 60:02d}s" if h else f"{m}m {s % 60:02d}s"
