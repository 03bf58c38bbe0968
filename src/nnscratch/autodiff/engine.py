"""Reverse-mode accumulation: from an output back to the leaves.

For a scalar ``L`` and the graph that computed it, the chain rule summed over
every path is

    ∂L/∂v = Σ_{c : v is an input of c} VJP_c(∂L/∂c)  restricted to v,

so each node's gradient is complete once every node that used it has been
processed: nodes are visited in reverse topological order, each one's VJP
run once, and the contributions to a node that feeds several others summed.

The topological order comes from an explicit-stack depth-first search, not
recursion, so a chain of any length (10,000 operations and more) works
without touching Python's recursion limit.

Each VJP runs with grad mode set to ``create_graph``: off, the backward pass
is plain NumPy work wrapped in constant Tensors; on, it is recorded like any
forward computation, and the gradients it produces can be differentiated again.
"""
import numpy as np

from .mode import set_grad_enabled
from .tensor import Tensor, lift


def topological_order(roots, keep=lambda node: node.requires_grad):
    """Every tensor ``roots`` depend on (those ``keep`` accepts, by default the
    ones requiring grad), each after all of its inputs.

    Iterative DFS, so graphs of any depth work: a node is emitted once all its
    parents have been (post-order).
    """
    order, seen = [], set()
    stack = [(root, False) for root in reversed(roots) if keep(root)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for parent in reversed(node._parents):
            if keep(parent) and id(parent) not in seen:
                stack.append((parent, False))
    return order


def _seed(output, gradient):
    """The starting ``∂L/∂output``: ones for a one-element output, else the given gradient."""
    if gradient is None:
        if output.size != 1:
            raise RuntimeError(
                f"backward() on a non-scalar tensor of shape {output.shape} needs a gradient argument: "
                "pass gradient=∂L/∂output of that shape (the vector of the vector-Jacobian product), "
                "or reduce the output to a scalar first (e.g. .sum() or .mean())")
        return Tensor(np.ones_like(output.data))
    gradient = lift(gradient, output)
    if gradient.shape != output.shape:
        raise ValueError(f"backward(): the gradient has shape {gradient.shape}, the output {output.shape}")
    return gradient.astype(output.dtype)


def _conform(grad, parent, node):
    """A VJP's gradient for ``parent``, checked for shape and cast to the parent's dtype."""
    if grad.shape != parent.shape:
        raise RuntimeError(f"internal error: the VJP of '{node._op}' gave a gradient of shape {grad.shape} "
                           f"for an input of shape {parent.shape}")
    return grad if grad.dtype == parent.dtype else grad.astype(parent.dtype)


def _propagate(roots, seeds, create_graph, on_grad, targets=None):
    """Run the VJPs from ``roots`` (with gradients ``seeds``) towards the leaves.

    ``on_grad(node, grad)`` receives each node's complete gradient. With
    ``targets`` (ids), only the nodes through which some target is reached are
    processed: the rest of the graph is not differentiated at all.
    """
    order = topological_order(roots)
    if targets is not None:
        # leads[id] : some target is this node or one of its ancestors (parents come first in order)
        leads = set()
        for node in order:
            if id(node) in targets or any(id(p) in leads for p in node._parents):
                leads.add(id(node))
    grads = {}
    with set_grad_enabled(create_graph):
        for root, seed in zip(roots, seeds):
            if root.requires_grad:
                grads[id(root)] = seed if id(root) not in grads else grads[id(root)] + seed
        for node in reversed(order):
            grad = grads.pop(id(node), None)
            if grad is None:
                continue
            on_grad(node, grad)
            if node._vjp is None or (targets is not None and id(node) not in leads):
                continue
            parent_grads = node._vjp(grad, node)
            for parent, parent_grad in zip(node._parents, parent_grads):
                if parent_grad is None or not parent.requires_grad:
                    continue
                if targets is not None and id(parent) not in leads:
                    continue
                parent_grad = _conform(parent_grad, parent, node)
                key = id(parent)
                grads[key] = parent_grad if key not in grads else grads[key] + parent_grad


def backward(output, gradient=None, create_graph=False):
    """Accumulate ``∂output/∂leaf`` (times ``gradient``) into the ``.grad`` of every leaf
    that requires grad (and of tensors that called ``retain_grad()``).

    Gradients add up across calls until ``zero_grad()``. With ``create_graph``
    the gradients are recorded Tensors (differentiable); otherwise constants.
    """
    if not output.requires_grad:
        raise RuntimeError("backward(): this tensor does not require grad — nothing it was computed from has "
                           "requires_grad=True, or it was computed under no_grad()")
    seed = _seed(output, gradient)

    def deliver(node, grad):
        if node._vjp is not None and not node._retains_grad:
            return
        if create_graph:
            node.grad = grad if node.grad is None else node.grad + grad
        elif node.grad is None:
            # a copy: the same array may be the gradient of other nodes, and users update .grad in place
            node.grad = Tensor(np.array(grad.data))
        else:
            node.grad = Tensor(node.grad.data + grad.data)

    _propagate([output], [seed], create_graph, deliver)


def gradients(outputs, inputs, grad_outputs=None, create_graph=False):
    """``∂(Σ outputs·grad_outputs)/∂input`` for each of ``inputs``, without touching any ``.grad``.

    Parameters
    ----------
    outputs : Tensor or sequence of Tensor
    inputs : sequence of Tensor
        Any tensors of the graph (leaves or intermediate results).
    grad_outputs : sequence, optional
        ``∂L/∂output`` for each output; may be omitted for one-element outputs.
    create_graph : bool
        Record the computation, so the results can be differentiated again.

    Returns
    -------
    list of Tensor or None
        None for an input that the outputs do not depend on.
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    seeds = [_seed(o, g) for o, g in zip(outputs, grad_outputs)]
    wanted = {id(t) for t in inputs}
    found = {}

    def collect(node, grad):
        if id(node) in wanted:
            found[id(node)] = grad

    _propagate(outputs, seeds, create_graph, collect, targets=wanted)
    return [found.get(id(t)) for t in inputs]
