"""Between the two paths to gradients: a layer made of Tensor ops, and the
checks of every hand-written backward against autodiff.

``AutodiffLayer`` is a layer defined only by a forward function in Tensor
ops: its backward is whatever autodiff derives, so it sits in a ``Network``
and trains with no hand-written backward.

``check_layer_with_autodiff`` and ``check_network_with_autodiff`` (that is,
``net.check_gradients(method="autodiff")``) compare the library's
hand-written backward passes with the gradients autodiff derives from the
same forwards written in Tensor ops (``nnscratch.layers.tensor_forms``).

This module uses the layers, so the ``autodiff`` package (the engine) does
not import it: ``from nnscratch.autodiff.bridge import AutodiffLayer``, or
``from nnscratch import AutodiffLayer``.
"""
import copy

import numpy as np

from ..gradcheck import relative_error
from ..layers.base import Layer, Parameter
from ..layers.tensor_forms import (cost_form_of, network_forward, parameter_tensors, register, tensor_cost,
                                   tensor_forward)
from ..training import prepare_targets
from .engine import gradients
from .mode import no_grad
from .tensor import Tensor


class AutodiffLayer(Layer):
    """A layer whose forward is ``fn(x, *params)`` in Tensor ops; autodiff does backward.

    Parameters
    ----------
    fn : callable
        ``fn(x, *params) -> Tensor``, x a Tensor (N, ...), params Tensors in
        the order of ``params``.
    params : dict or callable
        ``{name: initial array}``, or ``params(input_shape, rng, dtype)``
        returning such a dict (so sizes can follow the input).
    name : str
        Kind shown in the summary (default "autodiff").

    Saving works with ``pickle``/``net.save`` when ``fn`` is a module-level
    function; ``Network.load`` (the safe loader) accepts only nnscratch's own
    functions, so load such networks with ``pickle.load`` if you trust them.
    """

    kind = "autodiff"

    def __init__(self, fn, params=None, name="autodiff"):
        super().__init__()
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        self.fn, self._param_spec, self.kind = fn, params or {}, name

    def _build(self, input_shape, rng, dtype):
        spec = self._param_spec(input_shape, rng, dtype) if callable(self._param_spec) else self._param_spec
        self.params = [Parameter(np.array(value, dtype=dtype), name, decay=np.ndim(value) > 1)
                       for name, value in spec.items()]
        probe = np.zeros((1,) + tuple(1 if s is None else s for s in input_shape), dtype=dtype)
        with no_grad():
            out = self.fn(Tensor(probe), *[Tensor(p.data) for p in self.params])
        shape = tuple(out.shape[1:])
        if input_shape and input_shape[0] is None and len(shape) == len(input_shape):
            shape = (None,) + shape[1:]   # a free sequence length stays free
        return shape

    def parameters(self):
        return self.params

    def forward(self, x, training=False):
        self.check_input(x)
        x_t = Tensor(x, requires_grad=self.needs_input_grad)
        p_t = [Tensor(p.data, requires_grad=True) for p in self.params]
        y = self.fn(x_t, *p_t)
        self._cache = (x_t, p_t, y)
        return y.data

    def backward(self, dy):
        x_t, p_t, y = self._cache
        inputs = ([x_t] if self.needs_input_grad else []) + p_t
        grads = gradients([y], inputs, grad_outputs=[dy])     # fresh arrays, .grad untouched
        grads = [np.zeros_like(t.data) if g is None else g.data for t, g in zip(inputs, grads)]
        if self.needs_input_grad:
            dx, grads = grads[0], grads[1:]
        for p, g in zip(self.params, grads):
            p.grad = g.astype(p.data.dtype, copy=False)
        return dx if self.needs_input_grad else None


@register(AutodiffLayer)
def autodiff_layer_form(layer, x, params, training):
    """Its own ``fn`` (so a network holding one can be checked as a whole)."""
    return layer.fn(x, *[params[p] for p in layer.params])


# -- the checks ----------------------------------------------------------------------------
def _parameter_names(layer):
    """``{id(p): name}``: ``W`` for a leaf's own parameter, the path below the block for a
    block's (``fc1.W`` in block ``block1``, whose child is named ``block1.fc1``)."""
    names = {}
    for leaf in layer.leaves():
        path = "" if leaf is layer else leaf.name.removeprefix(layer.name + ".") + "."
        names.update({id(p): path + p.name for p in leaf.parameters()})
    return names


def check_layer_with_autodiff(layer, x, training=True, seed=0):
    """Relative errors between ``layer``'s forward and backward and autodiff's
    derivation from its Tensor-op form (``tensor_forms.tensor_forward``).

    The scalar compared is ``L = Σ y ⊙ R`` for a fixed random ``R``, so the
    layer's backward gets ``dy = R``. Works for blocks (their parameters
    named by path, ``fc1.W``). Returns ``{"forward": err, "input": err,
    "<param>": err, ...}`` ("input" only for a floating-point ``x``: token
    ids have no gradient). A layer class without a form is a TypeError naming it.
    """
    x = np.asarray(x)
    y = layer.forward(x, training)
    R = np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype)
    needs = layer.needs_input_grad
    layer.needs_input_grad = True
    try:
        dx = layer.backward(R)
    finally:
        layer.needs_input_grad = needs
    hand = {id(p): np.array(p.grad) for p in layer.parameters()}

    differentiable = np.issubdtype(x.dtype, np.floating)
    x_t = Tensor(x, requires_grad=True) if differentiable else x
    params = parameter_tensors(layer)
    y_t = tensor_forward(layer, x_t, params, training)
    inputs = ([x_t] if differentiable else []) + list(params.values())
    grads = [np.zeros_like(t.data) if g is None else g.data
             for t, g in zip(inputs, gradients([y_t], inputs, grad_outputs=[R]))]

    errors = {"forward": relative_error(y, y_t.data)}
    if differentiable:
        errors["input"] = relative_error(dx, grads.pop(0))
    names = _parameter_names(layer)
    for p, g in zip(params, grads):
        errors[names[id(p)]] = relative_error(hand[id(p)], g)
    return errors


def _layer_rows(layer, x, rows, seed):
    """Rows for ``layer`` on input ``x`` (and, for a block, for each child on the input it
    sees: the children run in sequence, as Sequential and Residual run them); returns
    ``layer.forward(x, training=True)``."""
    errors = check_layer_with_autodiff(layer, x, training=True, seed=seed)
    if layer.children():       # the block's own combination; its children's parameters get their rows
        errors = {k: v for k, v in errors.items() if k in ("forward", "input")}
    rows.extend({"layer": layer.name, "what": k, "rel_error": v} for k, v in errors.items())
    inner = x
    for child in layer.children():
        inner = _layer_rows(child, inner, rows, seed)
    return layer.forward(x, True)


def _training_step_rows(net, X, y, seed):
    """``net``'s training step (its parameters' gradients of the cost, through the cost's
    fusion with the output layer) against autodiff of the network's and the cost's forms."""
    try:
        cost_form_of(net.cost)
    except TypeError:                                 # a user's cost functions: nothing to compare with
        return [{"layer": "train_step", "what": f"({net.cost.name} cost: no Tensor-op form)",
                 "rel_error": None}]
    if y is None:      # random soft targets, valid for every cost: each row in [0, 1], summing to 1
        t = np.random.default_rng(seed).random(net.forward(X).shape)
        targets = t / t.sum(axis=-1, keepdims=True) if t.shape[-1] > 1 else t
    else:
        targets, _ = prepare_targets(net, y, len(X))
    loss = net.train_step(X, targets)                # forward (training), cost, backward
    hand = {id(p): np.array(p.grad) for p in net.parameters()}

    params = parameter_tensors(net)
    loss_t = tensor_cost(net.cost, network_forward(net, X, params, training=True), targets)
    auto = {id(p): g.data for p, g in zip(params, gradients(loss_t, list(params.values())))}
    # A gradient that is 0 in exact arithmetic (a bias just before a training-mode batch norm) is
    # rounding noise both ways, so a relative error means nothing there: a gradient smaller than a
    # millionth of the whole network's is judged by its difference against that millionth.
    floor = 1e-6 * np.sqrt(sum(float(np.vdot(g, g)) for g in auto.values()))
    rows = [{"layer": "train_step", "what": "loss",
             "rel_error": abs(loss - loss_t.item()) / max(abs(loss_t.item()), 1e-300)}]
    for name, leaf in net.named_layers():
        for p in leaf.parameters():
            a, b = hand[id(p)], auto[id(p)]
            err = np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), floor, 1e-300)
            rows.append({"layer": "train_step", "what": f"{name}.{p.name}", "rel_error": float(err)})
    return rows


def check_network_with_autodiff(net, X, y=None, verbose=True, seed=0):
    """``net.check_gradients(method="autodiff")``: every hand-written gradient of ``net``
    against autodiff, in a float64 copy of the network, on the batch ``X``.

    Two parts:

    - each layer on its own, in training mode (dropout with the mask it drew):
      its forward and its backward (input and parameter gradients) against its
      Tensor-op form (``check_layer_with_autodiff``); a block is checked as a
      whole (forward, input) and then each child on the input it sees;
    - the training step: the gradients ``net`` computes for every parameter
      (forward, cost, backward with the cost's fused output) against
      autodiff of the whole network's form and the cost's; ``y`` gives the
      targets (as for ``fit``), random soft targets by default.

    Returns rows ``{"layer", "what", "rel_error"}`` (``layer`` is
    ``"train_step"`` for the second part). A layer class without a Tensor-op
    form is a TypeError naming it.
    """
    net64 = copy.deepcopy(net).astype(np.float64)
    for _, layer in net64.named_layers():
        if getattr(layer, "stateful", False):      # every forward starts from the same (zero) state
            layer.stateful, layer.carried_state = False, None
    X = net64._as_batch(X)
    rows, out = [], X
    for layer in net64.layers:
        out = _layer_rows(layer, out, rows, seed)
    rows += _training_step_rows(net64, X, y, seed)
    if verbose:
        wide = [max(len(r[key]) for r in rows + [{"layer": "layer", "what": "gradient"}]) + 2
                for key in ("layer", "what")]
        print(f"{'layer':<{wide[0]}}{'gradient':<{wide[1]}}{'backward vs autodiff':>20}")
        for r in rows:
            err = "-" if r["rel_error"] is None else f"{r['rel_error']:.2e}"
            print(f"{r['layer']:<{wide[0]}}{r['what']:<{wide[1]}}{err:>20}")
    return rows
