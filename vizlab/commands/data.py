"""`vizlab data`: list the datasets and check their files (no torch import)."""

from __future__ import annotations

import click

from vizlab.config import default_data_dir
from vizlab.data import bundled_mnist, known_datasets
from vizlab.errors import VizlabError
from vizlab.term import console

DATA_DIR_HELP = "Data directory (default: $VIZLAB_DATA_DIR or ~/.cache/vizlab/data)."
MARKS = {"official": "ok", "valid": "ok", "missing": "missing", "bad": "WRONG"}


def _line(text: str, style: str | None = None) -> None:
    # soft_wrap: long paths stay on one line (copyable); markup off: paths may contain [ ].
    console().print(text, style=style, markup=False, highlight=False, soft_wrap=True)


@click.group(invoke_without_command=True)
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help=DATA_DIR_HELP)
@click.pass_context
def data(ctx, data_dir):
    """List the datasets: where each lives, whether it is present and verified."""
    ctx.obj = data_dir
    if ctx.invoked_subcommand is not None:
        return
    root = data_dir or default_data_dir()
    _line(f"data dir: {root}")
    for spec in known_datasets.DATASETS.values():
        folder = known_datasets.raw_dir(spec, root)
        status = known_datasets.summary(known_datasets.check_dataset(spec, root))
        _line("")
        _line(f"{spec.name}  ({spec.title}, {len(spec.classes)} classes)", style="bold")
        _line(f"  location  {folder}")
        _line(f"  source    {spec.origin}")
        _line(f"  status    {status}", style="red" if status.startswith("CORRUPT") else None)


@data.command()
@click.option("--dataset", type=click.Choice(tuple(known_datasets.DATASETS)), default=None,
              help="Check only this dataset (default: all).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help=DATA_DIR_HELP)
@click.pass_context
def verify(ctx, dataset, data_dir):
    """Check every file: IDX structure, and the official MD5 where the file has the official
    size. Names each wrong file; exit status 2 if any is wrong."""
    root = data_dir or ctx.obj or default_data_dir()
    specs = [known_datasets.DATASETS[dataset]] if dataset else list(known_datasets.DATASETS.values())
    wrong = []
    for spec in specs:
        _line(f"{spec.name}  {known_datasets.raw_dir(spec, root)}", style="bold")
        for check in known_datasets.check_dataset(spec, root):
            note = check.note if check.state == "bad" else f"{check.path.name}: {check.note}"
            _line(f"  {MARKS[check.state]:<8}{note}", style="red" if check.state == "bad" else None)
            if check.state == "bad":
                wrong.append(check.note)
        if spec.name == "mnist":
            wrong += _verify_shipped()
    if wrong:
        more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        raise VizlabError(f"verification failed: {wrong[0]}{more}")
    _line("no problems found in the files present")


def _verify_shipped() -> list[str]:
    """Check vizlab's own packaged copy of MNIST (what first use unpacks)."""
    problems = []
    for name, (_, official) in bundled_mnist.MNIST_FILES.items():
        try:
            digest = bundled_mnist.shipped_md5(name)
        except VizlabError as exc:
            problems.append(str(exc))
            _line(f"  WRONG   {exc}", style="red")
            continue
        if digest == official:
            _line(f"  ok      shipped {name}.gz: official MD5")
        else:
            problem = f"vizlab's shipped {name}.gz: MD5 {digest}, expected {official}; reinstall vizlab"
            problems.append(problem)
            _line(f"  WRONG   {problem}", style="red")
    return problems
