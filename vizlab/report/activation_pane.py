"""The comparison's activation pane: each compared activation and the gradient training really
back-propagates through it, evaluated by autograd on a fresh layer (vizlab.models.activations).

Two activations need a word in the legend: ``binary`` trains with a straight-through gradient (not
its zero derivative), and ``prelu`` learns its slope (the pane shows the slope it starts from).
"""

from __future__ import annotations

from collections.abc import Sequence

from vizlab.report import window_packets as P

GRADIENT_NOTE = {"binary": "straight-through", "prelu": "slope 0.25 at start"}


def activation_packet(names: Sequence[str], colors: Sequence[str]) -> dict:
    import torch

    from vizlab.models.activations import activation_curve

    xs = torch.linspace(-5, 5, 201)
    traces = []
    for i, name in enumerate(names):
        ys, dys = activation_curve(name, xs)
        color = colors[i % len(colors)]
        note = GRADIENT_NOTE.get(name)
        label = f"{name} ({note})" if name == "prelu" else name
        grad_label = f"{name}' ({note})" if name == "binary" else f"{name}'"
        traces.append(P.trace(xs.tolist(), ys.tolist(), label, color))
        traces.append({**P.trace(xs.tolist(), dys.tolist(), grad_label, color, width=1.5),
                       "line": {"color": color, "width": 1.5, "dash": "dot"}})
    return P.plot_packet("activations (solid) and the gradients training uses (dotted)", "x",
                         "f(x), gradient", traces, width=520, height=400,
                         yaxis={"title": "f(x), gradient", "range": [-2, 5]})
