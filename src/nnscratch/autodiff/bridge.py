"""The bridge between the two paths to gradients.

``AutodiffLayer`` is a layer defined only by a forward function in Tensor
ops: its backward is whatever autodiff derives, so it sits in a ``Network``
and trains with no hand-written backward.

``layer_as_tensor_ops`` re-expresses the library's own layers in Tensor ops,
so ``check_layer_with_autodiff`` (and ``net.check_gradients(method="autodiff")``)
can compare every hand-written backward with the gradients autodiff derives
from the forward alone.
"""
import numpy as np

from ..layers.base import Layer, Parameter
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


# -- the library's layers written in Tensor ops ------------------------------------------
def _dense(layer, x, W, b):
    return x @ W.T + b


def _batchnorm(layer, x, gamma, beta, training):
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    shape = (1, -1) if x.ndim == 2 else (1, -1, 1, 1)
    if training:
        mean = x.mean(axis=axes, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    else:
        mean, var = layer.running_mean.reshape(shape), layer.running_var.reshape(shape)
    return (x - mean) / (var + layer.eps) ** 0.5 * gamma.reshape(shape) + beta.reshape(shape)


def _conv(layer, x, W, b):
    from .convolution import conv2d
    (pt, pb), (pl, pr) = layer.pads
    if (pt, pl) != (pb, pr):
        raise NotImplementedError("asymmetric padding")
    return conv2d(x, W, b, stride=layer.stride, padding=(pt, pl))


def _pool(pool):
    def forward(layer, x):
        return pool(x, layer.size, layer.stride)
    return forward


def _tensor_forward(layer):
    """``f(layer, x, *params[, training]) -> Tensor`` for the library's layer kinds, or None."""
    from . import elementwise as ew
    from .convolution import avg_pool2d, max_pool2d
    from .nn import softmax
    return {
        "fc": _dense,
        "sigmoid": lambda layer, x: ew.sigmoid(x),
        "tanh": lambda layer, x: ew.tanh(x),
        "relu": lambda layer, x: ew.relu(x),
        "leaky_relu": lambda layer, x: ew.where(x.data > 0, x, x * layer.negative_slope),
        "softmax": lambda layer, x: softmax(x, axis=-1),
        "flatten": lambda layer, x: x.reshape(x.shape[0], -1),
        "maxpool": _pool(max_pool2d),
        "avgpool": _pool(avg_pool2d),
        "conv": _conv,
        "batchnorm": _batchnorm,
    }.get(layer.kind)


def check_layer_with_autodiff(layer, x, training=True, seed=0):
    """Relative errors between ``layer.backward`` and autodiff's gradients of the
    same forward written in Tensor ops, for ``L = Σ y ⊙ R``; None when the
    layer kind has no Tensor-op version here (recurrent layers, dropout).

    Returns ``{"input": err, "<param>": err, ...}``.
    """
    from ..gradcheck import relative_error
    forward = _tensor_forward(layer)
    if forward is None:
        return None
    y = layer.forward(x, training)
    R = np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype)
    needs = layer.needs_input_grad
    layer.needs_input_grad = True
    dx = layer.backward(R)
    layer.needs_input_grad = needs
    x_t = Tensor(np.asarray(x), requires_grad=True)
    p_t = [Tensor(p.data, requires_grad=True) for p in layer.parameters()]
    extra = (training,) if layer.kind == "batchnorm" else ()
    y_t = forward(layer, x_t, *p_t, *extra)
    grads = gradients([y_t], [x_t] + p_t, grad_outputs=[R])
    grads = [g.data if isinstance(g, Tensor) else np.asarray(g) for g in grads]
    errors = {"input": relative_error(dx, grads[0])}
    for p, g in zip(layer.parameters(), grads[1:]):
        errors[p.name] = relative_error(p.grad, g)
    return errors


def check_network_with_autodiff(net, X, verbose=True):
    """``net.check_gradients(method="autodiff")``: for each layer of a float64
    copy of ``net``, in training mode on the batch ``X``, the relative error
    between its backward and autodiff's gradients of its Tensor-op forward.

    Returns rows ``{"layer", "what", "rel_error"}``; layers without a Tensor-op
    version (dropout, recurrent, autodiff layers themselves) are listed with
    ``rel_error`` None.
    """
    import copy
    net64 = copy.deepcopy(net).astype(np.float64)
    out = net64._as_batch(X)
    rows = []
    for layer in net64.layers:
        errors = check_layer_with_autodiff(layer, out) if layer.kind != "embedding" else None
        if errors is None:
            rows.append({"layer": layer.name, "what": "-", "rel_error": None})
        else:
            rows.extend({"layer": layer.name, "what": k, "rel_error": v} for k, v in errors.items())
        out = layer.forward(out, True)
    if verbose:
        print(f"{'layer':<14}{'gradient':<10}{'backward vs autodiff':>22}")
        for r in rows:
            err = "no Tensor-op version" if r["rel_error"] is None else f"{r['rel_error']:.2e}"
            print(f"{r['layer']:<14}{r['what']:<10}{err:>22}")
    return rows
