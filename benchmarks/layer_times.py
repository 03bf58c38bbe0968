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
"""
import statistics
import time

import numpy as np


def _timed(method, key, spent):
    """``method`` that adds the seconds of each call to ``spent[key]``."""
    def call(*args, **kwargs):
        start = time.perf_counter()
        result = method(*args, **kwargs)
        spent[key] = spent.get(key, 0.0) + time.perf_counter() - start
        return result
    return call


def time_layers(net, optimizer, X, y, batch, repeats=20):
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
        # Layers with weights: one product forward, one for the weight gradient, one for the input's.
        products = 1 + (2 if layer.needs_input_grad else 1) if layer.parameters() else 0
        rows.append((f"{name} ({type(layer).__name__})", median((name, "forward")),
                     median((name, "backward")), products * layer.flops() * batch))
    rest = statistics.median(step - sum(spent_in_step.values()) for spent_in_step, step, _ in steps)
    output_name = layers[-1][0]
    fused = (f", fused: {output_name}'s backward skipped" if (output_name, "backward") not in steps[0][0]
             else "")
    cost = getattr(net.cost, "name", type(net.cost).__name__)
    rows.append((f"cost ({cost}{fused}) and the rest of train_step", rest, None, 0))
    return {"rows": rows, "step": (type(optimizer).__name__, statistics.median(s for _, _, s in steps)),
            "repeats": repeats}
