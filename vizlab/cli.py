"""The `vizlab` command. Each subcommand lives in vizlab/commands/<name>.py and is imported only
when it runs, so `vizlab --help` stays instant (no torch, torchvision or visdom)."""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from vizlab import __version__
from vizlab.errors import VizlabError

# name -> (module, attribute, one-line help shown by `vizlab --help` without importing it)
COMMANDS = {
    "run": ("vizlab.commands.run", "run", "Train a model, streaming to Visdom and the terminal."),
    "compare": ("vizlab.commands.compare", "compare",
                "Train variants side by side on one dashboard."),
    "models": ("vizlab.commands.models", "models", "List the models, or show one's layers."),
    "data": ("vizlab.commands.data", "data", "List the datasets; verify their files."),
    "server": ("vizlab.commands.server", "server", "Start, stop or inspect the local Visdom server."),
    "replay": ("vizlab.commands.replay", "replay", "Redraw a run's dashboard from its run log."),
    "runs": ("vizlab.commands.runs", "runs", "List or delete runs."),
    "control": ("vizlab.commands.control", "control",
                "Steer a running run: stop, pause, resume, lr, checkpoint."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return [name for name, (mod, _, _) in COMMANDS.items() if _module_exists(mod)]

    def get_command(self, ctx, name):
        if name not in COMMANDS or not _module_exists(COMMANDS[name][0]):
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _module_exists(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vizlab")
def cli():
    """Train classic MNIST-family models and watch them live in Visdom.

    \b
      vizlab run mlp                 train the MLP, dashboard at http://localhost:8097
      vizlab models                  list the models
      vizlab compare mlp --activation relu,tanh
    """


def main(argv=None):
    """Entry point: user errors become one line on stderr and exit status 2."""
    try:
        status = cli.main(args=argv, prog_name="vizlab", standalone_mode=False)
        # Without standalone mode Click returns (not raises) the status a command exits with.
        if isinstance(status, int) and status:
            sys.exit(status)
    except VizlabError as exc:
        click.echo(f"vizlab: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("vizlab: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        # Click's usage errors: keep them to one line (no usage block), exit 2.
        click.echo(f"vizlab: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.exit(0)
