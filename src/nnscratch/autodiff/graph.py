"""Pictures of a computation graph: Graphviz dot text, or a PNG drawn with matplotlib.

Nodes are the tensors a result was computed from: operations (ellipses, named
by the op), leaves that require grad (boxes, blue) and constants (boxes,
grey), each with its shape. Edges run from inputs to the operation that used
them, in data-flow direction.

``draw_graph`` needs no Graphviz: it places each node in a column by its depth
(the longest path from a leaf) and draws boxes and arrows on a
``matplotlib.figure.Figure`` with the Agg canvas (never pyplot, so it works
headless and leaves no global figure state).
"""
import numpy as np

from .engine import topological_order
from .tensor import Tensor


def _nodes_and_edges(tensor):
    """All tensors ``tensor`` was computed from (parents before children) and the
    (parent index, child index) edges. Iterative, like the backward pass."""
    order = topological_order([tensor], keep=lambda node: True)
    index = {id(node): i for i, node in enumerate(order)}
    edges = [(index[id(p)], index[id(node)]) for node in order for p in node._parents]
    return order, edges


def _kind(node):
    if node._op is not None:
        return "op"
    return "leaf" if node.requires_grad else "const"


def _label(node):
    shape = "(" + ", ".join(str(s) for s in node.shape) + ("," if node.ndim == 1 else "") + ")"
    if node._op is not None:
        title = node._op if node.name is None else f"{node.name} = {node._op}"
    elif node.name is not None:
        title = node.name
    elif node.requires_grad:
        title = "leaf"
    elif node.size == 1:
        title = f"{node.data.item():.4g}"
    else:
        title = "const"
    return f"{title}\n{shape}"


_DOT_STYLE = {
    "op": 'shape=ellipse, style=filled, fillcolor="#fff2cc"',
    "leaf": 'shape=box, style="rounded,filled", fillcolor="#cfe2f3"',
    "const": 'shape=box, style="rounded,filled", fillcolor="#eeeeee"',
}


def to_dot(tensor, name="autodiff"):
    """Graphviz dot text of the graph that computed ``tensor``.

    Each node is ``n<i> [label="<op or leaf>\\n<shape>", ...]`` and each edge
    ``n<parent> -> n<child>``; render with ``dot -Tpng`` if Graphviz is around,
    or use ``draw_graph``.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dot expects a Tensor, got {type(tensor).__name__}")
    order, edges = _nodes_and_edges(tensor)
    lines = [f"digraph {name} {{", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    for i, node in enumerate(order):
        label = _label(node).replace('"', r'\"').replace("\n", r"\n")
        lines.append(f'  n{i} [label="{label}", {_DOT_STYLE[_kind(node)]}];')
    lines += [f"  n{p} -> n{c};" for p, c in edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


_FILL = {"op": "#fff2cc", "leaf": "#cfe2f3", "const": "#eeeeee"}


def draw_graph(tensor, path, dpi=100, max_nodes=300):
    """Draw the graph that computed ``tensor`` and save it as a PNG at ``path``.

    Columns by depth (leaves at the left, ``tensor`` at the right), boxes for
    nodes, arrows for edges. Returns ``path``. Graphs over ``max_nodes`` are
    refused: such a picture is unreadable (use ``to_dot`` and Graphviz).
    """
    # Imported here: drawing is optional, and matplotlib is slow to import.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not isinstance(tensor, Tensor):
        raise TypeError(f"draw_graph expects a Tensor, got {type(tensor).__name__}")
    order, edges = _nodes_and_edges(tensor)
    if len(order) > max_nodes:
        raise ValueError(f"draw_graph: {len(order)} nodes is more than max_nodes={max_nodes}; "
                         "draw a smaller graph or use to_dot")
    # Layer = longest path from a leaf; parents come first in ``order``, so one pass does it.
    depth = np.zeros(len(order), dtype=int)
    for p, c in edges:
        depth[c] = max(depth[c], depth[p] + 1)
    # Leaves move right, next to their first user, so constants do not draw long edges.
    first_use = {}
    for p, c in edges:
        first_use[p] = min(first_use.get(p, depth[c]), depth[c])
    for i, node in enumerate(order):
        if not node._parents and i in first_use:
            depth[i] = first_use[i] - 1
    columns = [[i for i in range(len(order)) if depth[i] == d] for d in range(depth.max() + 1)]
    tallest = max(len(col) for col in columns)
    pos = {}
    for d, col in enumerate(columns):
        for k, i in enumerate(col):
            pos[i] = (d, (len(col) - 1) / 2 - k)                       # each column centred on y = 0

    fig = Figure(figsize=(max(3.0, 1.9 * len(columns)), max(2.0, 0.75 * tallest + 0.5)))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    ax.set_xlim(-0.6, len(columns) - 0.4)
    ax.set_ylim(-(tallest - 1) / 2 - 0.6, (tallest - 1) / 2 + 0.6)
    texts = {}
    for i, node in enumerate(order):
        kind = _kind(node)
        texts[i] = ax.text(*pos[i], _label(node), ha="center", va="center", fontsize=8, zorder=2,
                           bbox=dict(boxstyle="round,pad=0.3" if kind != "op" else "round4,pad=0.3",
                                     facecolor=_FILL[kind], edgecolor="#555555"))
    for p, c in edges:
        # Anchored to the two text artists: the arrow runs from the right edge of
        # the input's label to the left edge of the operation's.
        ax.annotate("", xy=(0, 0.5), xycoords=texts[c], xytext=(1, 0.5), textcoords=texts[p], zorder=1,
                    arrowprops=dict(arrowstyle="-|>", color="#444444", shrinkA=4, shrinkB=4, lw=0.8))
    fig.savefig(path, format="png", dpi=dpi)
    return path
