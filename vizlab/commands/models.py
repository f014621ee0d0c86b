"""`vizlab models [NAME]`: list the models, or show one model's layers."""

from __future__ import annotations

import click

from vizlab.errors import VizlabError
from vizlab.models import ACTIVATIONS, MODELS, is_user_model, spec_defaults


@click.command("models")
@click.argument("name", required=False)
@click.option("--activation", default=None, metavar="NAME",
              help=f"Hidden-layer activation: {', '.join(ACTIVATIONS)}.")
@click.option("--hidden", default=None, metavar="W1-W2-...",
              help="Hidden widths of mlp, joined by dashes (e.g. 512-256).")
def models(name, activation, hidden):
    """List the models with their parameter counts, or show NAME's layers.

    NAME is a built-in model or your own, given as path/to/file.py:ClassName or
    package.module:ClassName.
    """
    if name is None:
        if activation is not None or hidden is not None:
            raise VizlabError("--activation and --hidden need a model NAME")
        _list_models()
    else:
        _show_model(name, activation, hidden)


def _list_models() -> None:
    from rich.table import Table

    from vizlab.models import build_model
    from vizlab.models.summary import count_parameters
    from vizlab.term import console

    table = Table(title="vizlab models", title_justify="left")
    table.add_column("name", style="bold")
    table.add_column("parameters", justify="right")
    table.add_column("activation")
    table.add_column("description")
    for spec in MODELS.values():
        table.add_row(spec.name, f"{count_parameters(build_model(spec.name)):,}",
                      spec.defaults["activation"], spec.description)
    console().print(table)
    console().print("One model's layers: vizlab models NAME")


def _show_model(name: str, activation: str | None, hidden: str | None) -> None:
    from vizlab.config import parse_hidden

    if is_user_model(name):
        if activation is not None or hidden is not None:
            raise VizlabError("--activation and --hidden apply to the built-in models, "
                              f"not to {name}")
    else:
        defaults = spec_defaults(name)  # unknown name: one line with the valid names
        if activation is not None and activation not in ACTIVATIONS:
            raise VizlabError(f"unknown --activation {activation!r}; "
                              f"choose from {', '.join(ACTIVATIONS)}")
        if hidden is not None and not MODELS[name].takes_hidden:
            raise VizlabError(f"--hidden applies to mlp only, not {name}")
        activation = activation or defaults["activation"]

    from rich.table import Table

    from vizlab.models import build_model
    from vizlab.models.summary import format_shape, summarize
    from vizlab.term import console

    model = build_model(name, activation=activation, hidden=parse_hidden(hidden))
    summary = summarize(model)

    settings = [] if is_user_model(name) else [f"activation {activation}"]
    if hidden is not None:
        settings.append(f"hidden {hidden}")
    title = f"{name} ({', '.join(settings)})" if settings else name
    table = Table(title=title, title_justify="left")
    table.add_column("layer")
    table.add_column("type")
    table.add_column("output shape")
    table.add_column("parameters", justify="right")
    for row in summary:
        label = "  " * row.depth + row.name.rsplit(".", 1)[-1]
        # A block's count is its children's sum: shown in parentheses, not added twice.
        params = f"({row.params:,})" if row.block else (f"{row.params:,}" if row.params else "--")
        style = "dim" if row.block else None
        table.add_row(label, row.kind, format_shape(row.output_shape), params, style=style)
    out = console()
    out.print(table)
    out.print(f"input {format_shape(summary.input_shape)} -> "
              f"output {format_shape(summary.output_shape)}")
    out.print(f"Total params: {summary.total:,}")
    out.print(f"Trainable params: {summary.trainable:,}")
    out.print(f"Non-trainable params: {summary.total - summary.trainable:,}")
