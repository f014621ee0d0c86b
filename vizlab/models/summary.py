"""A layer table for any ``nn.Module``, like torchsummary's (seed 000): one row per module call
with its output shape and parameter count, found by running one batch through forward hooks.

Modules that hold raw ``nn.Parameter``s next to (or instead of) submodules, like ``mlp-raw``,
get a row per such parameter (its shape in the shape column), so every parameter of the
model shows up somewhere in the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vizlab.errors import VizlabError

__all__ = ["Row", "Summary", "count_parameters", "format_shape", "summarize"]


@dataclass(frozen=True)
class Row:
    """One line of the table.

    ``name`` is the module's dotted path (or a parameter's name), ``kind`` its class name (or
    ``"Parameter"``), ``output_shape`` the shape it returned (a parameter row: the parameter's
    shape; several outputs: a tuple of shapes; not a tensor: None). ``params`` counts the
    parameters this row adds; a ``block`` row (a module with submodules) shows its whole
    subtree's count, which its children's rows already add, so only non-block rows sum to the
    total. ``depth`` is the nesting level, for indentation.
    """

    name: str
    kind: str
    output_shape: Any
    params: int
    depth: int = 0
    block: bool = False


class Summary(list):
    """The rows (a ``list[Row]``) plus the totals and the shapes at both ends."""

    def __init__(self, rows: list[Row], total: int, trainable: int,
                 input_shape: tuple[int, ...], output_shape: Any):
        super().__init__(rows)
        self.total = total
        self.trainable = trainable
        self.input_shape = input_shape
        self.output_shape = output_shape


def count_parameters(model) -> int:
    """Parameters of ``model``, each shared tensor counted once."""
    return sum(p.numel() for p in model.parameters())


def _shape(output: Any) -> Any:
    if hasattr(output, "shape"):
        return tuple(output.shape)
    if isinstance(output, (tuple, list)):
        return tuple(_shape(o) for o in output)
    return None


def format_shape(shape: Any) -> str:
    """(1, 10, 24, 24) -> '[1, 10, 24, 24]'; several outputs are joined; None -> '--'."""
    if shape is None:
        return "--"
    if all(isinstance(s, int) for s in shape):  # one tensor's shape (() for a scalar)
        return "[" + ", ".join(str(s) for s in shape) + "]"
    return ", ".join(format_shape(s) for s in shape)


def summarize(model, input_shape: tuple[int, ...] = (1, 1, 28, 28)) -> Summary:
    """Run one zero batch of ``input_shape`` through ``model`` (eval mode, no grad) and table it.

    The model's train/eval modes are restored afterwards and its state is not changed.
    """
    import torch

    rows: list[dict[str, Any]] = []
    open_rows: dict[int, list[int]] = {}  # id(module) -> stack of its unfinished rows
    seen: set[int] = set()  # modules whose parameters are already in a row
    names = {id(m): n for n, m in model.named_modules() if m is not model}

    def param_rows(module, prefix: str, depth: int) -> None:
        for pname, p in module.named_parameters(recurse=False):
            rows.append(dict(name=f"{prefix}{pname}", kind="Parameter",
                             output_shape=tuple(p.shape), params=p.numel(), depth=depth,
                             block=False))

    def before(module, args) -> None:
        name = names[id(module)]
        block = any(True for _ in module.children())
        first = id(module) not in seen
        seen.add(id(module))
        params = count_parameters(module) if first else 0
        open_rows.setdefault(id(module), []).append(len(rows))
        rows.append(dict(name=name, kind=type(module).__name__, output_shape=None,
                         params=params, depth=name.count("."), block=block))
        if block and first:
            param_rows(module, f"{name}.", name.count(".") + 1)

    def after(module, args, output) -> None:
        rows[open_rows[id(module)].pop()]["output_shape"] = _shape(output)

    param_rows(model, "", 0)
    handles = []
    for module in model.modules():
        if module is not model:
            handles.append(module.register_forward_pre_hook(before))
            handles.append(module.register_forward_hook(after))

    reference = next(model.parameters(), None)
    if reference is None:
        reference = next(model.buffers(), None)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None and reference.is_floating_point() \
        else torch.float32
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            output = model(torch.zeros(input_shape, device=device, dtype=dtype))
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise VizlabError(f"{type(model).__name__} failed on a {format_shape(input_shape)} "
                          f"batch: {type(exc).__name__}: {detail}") from exc
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes:
            module.training = training

    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Summary([Row(**r) for r in rows], count_parameters(model), trainable,
                   tuple(input_shape), _shape(output))
