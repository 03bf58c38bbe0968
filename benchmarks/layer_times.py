"""Where one training step's time goes: each layer's forward and backward, the cost, the optimizer.

The step is the library's own: ``net.train_step(X, targets)`` (forward in
training mode, cost, backward) then ``optimizer.step(net.parameters())``,
exactly what ``fit`` runs per batch; nothing of it is written again here.
To see inside it, each leaf layer's ``forward`` and ``backward`` are wrapped,
on the instance and only while measuring, by a timer that adds up the
seconds of its calls in the current step. A fused output layer (softmax
with cross-entropy) whose backward ``train_step`` skips shows no backward
time. What the layers do not account for (the cost's value and gradient,
``train_step``'s own Python) is the cost row.

The same module counts a step's matrix products, layer by layer from its
shapes (``forward_products``, ``training_products``, ``product_flops``,
``step_products``, which checks them against each layer's own ``flops()``):
the GFLOP/s column of the table, and the floor that ``bench.py`` and
``bench_chargpt.py`` print beside each model (``floor``: those FLOPs at the
machine's float32 GEMM rate, ``machine.gemm_rate``).
"""
import statistics
import time
from collections import Counter

import numpy as np

from nnscratch.layers import Conv2D, FullyConnected, MultiHeadAttention
from nnscratch.layers.base import size_of
from nnscratch.layers.recurrent import Recurrent


def _timed(method, key, spent):
    """``method`` that adds the seconds of each call to ``spent[key]``."""
    def call(*args, **kwargs):
        start = time.perf_counter()
        result = method(*args, **kwargs)
        spent[key] = spent.get(key, 0.0) + time.perf_counter() - start
        return result
    return call


def time_layers(net, optimizer, X, y, batch, repeats=20, positions=None):
    """Median seconds of each layer's forward and backward in ``repeats`` training steps on one batch.

    Parameters
    ----------
    net : Network
        A trained (or fresh) classifier with a K-way output.
    optimizer : Optimizer
        The one that trained it (its buffers already made).
    X : array (N, *input_shape)
        The first ``batch`` samples are the batch (integer token ids stay integers, as ``fit`` keeps them).
    y : int array (N,) or (N, T)
        Class ids; the targets are one-hot rows of the network's dtype, as ``fit`` makes them.
    batch : int
    repeats : int
    positions : int or None
        T, for the FLOPs column of a network whose sequence length is free (``(None,)``).

    Returns
    -------
    dict with ``rows``: ``[(name, forward s, backward s or None, fwd+bwd FLOPs), ...]``, one per
    leaf layer and a last one for the cost and the rest of ``train_step``; ``step``: ``(optimizer
    class name, seconds)``; ``repeats``.
    """
    X_batch = (np.ascontiguousarray(X[:batch]) if np.issubdtype(X.dtype, np.integer)  # token ids stay ints
               else np.ascontiguousarray(X[:batch], dtype=net.dtype))
    targets = np.eye(net.output_shape[-1], dtype=net.dtype)[y[:batch]]  # (batch, K) or (batch, T, K)
    layers, params = list(net.named_layers()), net.parameters()  # the leaves, inside blocks too, in order
    spent, steps = {}, []
    saved = [{k: vars(layer)[k] for k in ("forward", "backward") if k in vars(layer)} for _, layer in layers]
    try:
        for name, layer in layers:
            layer.forward = _timed(layer.forward, (name, "forward"), spent)
            layer.backward = _timed(layer.backward, (name, "backward"), spent)
        for _ in range(repeats):
            spent.clear()
            start = time.perf_counter()
            net.train_step(X_batch, targets)
            stepped = time.perf_counter()
            optimizer.step(params)
            steps.append((dict(spent), stepped - start, time.perf_counter() - stepped))
    finally:
        for (_, layer), before in zip(layers, saved):
            for key in ("forward", "backward"):
                vars(layer).pop(key, None)
                if key in before:
                    setattr(layer, key, before[key])

    def median(key):
        values = [spent_in_step[key] for spent_in_step, _, _ in steps if key in spent_in_step]
        return statistics.median(values) if values else None

    rows = []
    for name, layer in layers:
        rows.append((f"{name} ({type(layer).__name__})", median((name, "forward")),
                     median((name, "backward")), product_flops(layer, batch, positions)))
    rest = statistics.median(step - sum(spent_in_step.values()) for spent_in_step, step, _ in steps)
    output_name = layers[-1][0]
    fused = (f", fused: {output_name}'s backward skipped" if (output_name, "backward") not in steps[0][0]
             else "")
    cost = getattr(net.cost, "name", type(net.cost).__name__)
    rows.append((f"cost ({cost}{fused}) and the rest of train_step", rest, None, 0))
    return {"rows": rows, "step": (type(optimizer).__name__, statistics.median(s for _, _, s in steps)),
            "repeats": repeats}


# -- the matrix products of a step, and the floor they set ----------------------------------
def forward_products(layer, samples, positions=None):
    """The matrix products of ``layer``'s forward pass on ``samples`` samples, from its shapes.

    FullyConnected (D -> U) on x (..., D): ``(N·rows, D) @ (D, U)``. Conv2D (F filters,
    KH x KW on C channels, output OH x OW): ``(N·OH·OW, C·KH·KW) @ (C·KH·KW, F)``, the im2col
    product. Recurrent (G gates of H units on D inputs, T steps): per step ``(N, D) @ (D, G·H)``
    from x_t and ``(N, H) @ (H, G·H)`` from h_{t-1}. MultiHeadAttention (E, H heads of d = E / H):
    the projections ``(N·T, E) @ (E, 3E)`` and ``(N·T, E) @ (E, E)``, and per sample and head
    ``Q Kᵀ`` (T, d) @ (d, T) and ``P V`` (T, T) @ (T, d), every T x T entry counted, masked or
    not (the causal fast path skips the all-masked corner: 62.5% of them are computed).
    Every other layer (activations, pooling, dropout, the norms, embedding lookups) does no
    product and gets ``[]``.

    Per sample (and per position, where the length is free) their FLOPs are the layer's own
    ``flops()``, the attention's less its softmax (5 H T²); ``step_products`` checks that.

    Parameters
    ----------
    layer : Layer
        A built leaf layer.
    samples : int
        N, the batch.
    positions : int or None
        T for a layer whose sequence length is free (``input_shape[0] is None``).

    Returns
    -------
    list of ((stack, m, k, n), takes_input)
        ``stack`` products (m, k) @ (k, n), ``2·stack·m·k·n`` FLOPs; ``takes_input``: the
        left factor is the layer's input x, whose gradient the layer skips when
        ``needs_input_grad`` is False.
    """
    shape = tuple((positions or 1) if s is None else s for s in layer.input_shape)
    if isinstance(layer, FullyConnected):
        return [((1, samples * size_of(shape[:-1]), shape[-1], layer.units), True)]
    if isinstance(layer, Conv2D):
        filters, oh, ow = layer.output_shape
        return [((1, samples * oh * ow, shape[0] * layer.kernel[0] * layer.kernel[1], filters), True)]
    if isinstance(layer, Recurrent):
        (steps, d), gates = shape, layer.gates * layer.hidden
        return [((steps, samples, d, gates), True), ((steps, samples, layer.hidden, gates), False)]
    if isinstance(layer, MultiHeadAttention):
        (T, E), H = shape, layer.num_heads
        return [((1, samples * T, E, 3 * E), True), ((samples * H, T, E // H, T), False),
                ((samples * H, T, T, E // H), False), ((1, samples * T, E, E), False)]
    return []


def training_products(layer, samples, positions=None):
    """The matrix products of one training step of ``layer`` on ``samples`` samples: each forward one
    (``forward_products``) and, in backward, the gradients of both its factors, the weight's (or for
    Q Kᵀ and P V the other input's) and the input's, but not that of the layer's own input x where
    ``needs_input_grad`` is False (the first layer's).

    Returns
    -------
    list of ((stack, m, k, n), FLOPs): for a forward ``A (m, k) @ B (k, n) = C``, itself,
    ``dB = Aᵀ dC`` as (k, m) @ (m, n) and ``dA = dC Bᵀ`` as (m, n) @ (n, k); each
    ``2·stack·m·k·n`` FLOPs.
    """
    out = []
    for (stack, m, k, n), takes_input in forward_products(layer, samples, positions):
        shapes = [(stack, m, k, n), (stack, k, m, n)]
        if layer.needs_input_grad or not takes_input:
            shapes.append((stack, m, n, k))
        out += [(shape, 2 * stack * m * k * n) for shape in shapes]
    return out


def product_flops(layer, samples, positions=None):
    """FLOPs of ``layer``'s matrix products in one training step (forward and backward) on ``samples``
    samples (``training_products``; 0 for a layer without products)."""
    return sum(flops for _, flops in training_products(layer, samples, positions))


def step_products(net, batch, positions=None):
    """Every matrix product of one training step of ``net`` on ``batch`` samples, by shape.

    Returns
    -------
    dict with ``flops``: ``{(stack, m, k, n): FLOPs of the step's products of that shape}``
    (``training_products``), the largest first; ``counted`` and ``skipped``: ``{layer type: how
    many}`` of the leaf layers that do products and of those that do none.

    Raises ValueError where a layer's ``flops()`` and its forward products here disagree (a layer
    whose FLOPs changed: update ``forward_products``).
    """
    flops, counted, skipped = {}, Counter(), Counter()
    for name, layer in net.named_layers():
        products = training_products(layer, batch, positions)
        (counted if products else skipped)[type(layer).__name__] += 1
        per_sample = sum(2 * s * m * k * n for (s, m, k, n), _ in forward_products(layer, 1, 1))
        attention = isinstance(layer, MultiHeadAttention)
        softmax = 5 * layer.num_heads * (layer.input_shape[0] or 1) ** 2 if attention else 0
        if products and per_sample != layer.flops() - softmax:
            raise ValueError(f"{name} ({type(layer).__name__}): flops() gives {layer.flops():,} per sample, "
                             f"benchmarks/layer_times.forward_products {per_sample + softmax:,}")
        for shape, f in products:
            flops[shape] = flops.get(shape, 0) + f
    flops = dict(sorted(flops.items(), key=lambda item: -item[1]))  # what gemm_rate measures first
    return {"flops": flops, "counted": dict(counted), "skipped": dict(skipped)}


def floor(products, steps, rates, measured):
    """The time of ``steps`` steps' matrix products at the machine's float32 GEMM rates; ``measured`` over it.

    Parameters
    ----------
    products : dict
        ``step_products``'s.
    steps : float
        Training steps (an MNIST epoch: 60,000 / batch).
    rates : dict
        ``machine.gemm_rate``'s: ``square`` (GFLOP/s of the 1024³ product) and ``shapes``
        (GFLOP/s of each of the step's product shapes, alone).
    measured : float
        The seconds those steps took (an epoch's, or a step's).

    Returns
    -------
    dict with ``gflop`` (the products' GFLOP in ``steps``), ``rate`` (the square rate),
    ``seconds`` (gflop / rate: the floor), ``own_shapes_seconds`` (each product at the rate
    measured for its shape, as ``np.matmul`` of row-major arrays; the layers may lay them
    out otherwise), ``own_shapes_rate`` (gflop / own_shapes_seconds), ``measured``,
    ``over_floor`` (measured / seconds) and ``over_own_shapes_floor`` (measured /
    own_shapes_seconds). None where the network does no product (the own shapes' also
    where one of them was not measured).
    """
    gflop = steps * sum(products["flops"].values()) / 1e9
    own_rates = [rates["shapes"].get(shape) for shape in products["flops"]]
    own = (steps * sum(f / r for f, r in zip(products["flops"].values(), own_rates)) / 1e9
           if all(own_rates) else None)  # not where a shape went unmeasured, out of time
    seconds = gflop / rates["square"]
    return {"gflop": gflop, "rate": rates["square"], "seconds": seconds, "own_shapes_seconds": own,
            "own_shapes_rate": gflop / own if own else None, "measured": measured,
            "over_floor": measured / seconds if seconds else None,
            "over_own_shapes_floor": measured / own if own else None}
