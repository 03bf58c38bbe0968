"""Finite-difference gradient checks, for the tests and for users.

The central difference ``(f(x + εe_i) - f(x - εe_i)) / 2ε`` has error O(ε²);
in float64 with ε = 1e-6 a correct backward agrees to about 1e-8 relative
error, a wrong one by orders of magnitude more. The error reported is

    ‖g_analytic - g_numeric‖ / max(‖g_analytic‖ + ‖g_numeric‖, 1e-12)

over the checked entries.
"""
import copy

import numpy as np

from .training import prepare_targets


def numerical_gradient(f, x, eps=1e-6, indices=None):
    """Central-difference gradient of scalar ``f()`` with respect to array ``x``.

    ``x`` is perturbed in place and restored. ``indices`` (flat) limits the
    entries checked; the others stay 0 in the result.
    """
    grad = np.zeros(x.shape, dtype=np.float64)
    for i in (range(x.size) if indices is None else indices):
        # Index by position, not through reshape(-1), which would copy a
        # non-contiguous (e.g. transposed) x and perturb the copy.
        at = np.unravel_index(i, x.shape)
        old = x[at]
        x[at] = old + eps
        plus = f()
        x[at] = old - eps
        minus = f()
        x[at] = old
        grad[at] = (plus - minus) / (2 * eps)
    return grad


def relative_error(analytic, numeric):
    """Norm-wise relative error between two gradients (0 when both are 0)."""
    a, n = np.asarray(analytic, np.float64), np.asarray(numeric, np.float64)
    return float(np.linalg.norm(a - n) / max(np.linalg.norm(a) + np.linalg.norm(n), 1e-12))


def sample_indices(size, max_entries, rng):
    """All flat indices when ``size <= max_entries``, else a random subset."""
    if max_entries is None or size <= max_entries:
        return np.arange(size)
    return rng.choice(size, max_entries, replace=False)


def check_layer(layer, x, eps=1e-6, seed=0, training=True, max_entries=None):
    """Check a built float64 layer's ``backward`` for input and every parameter.

    The scalar checked is ``L = Σ y ⊙ R`` for a fixed random ``R``, so
    ``dy = R``. Layers that draw random numbers in training (dropout) must
    draw them from ``layer.rng``; it is reset before every forward so the
    mask is the same each time.

    Returns ``{"input": err, "<param name>": err, ...}``.
    """
    rng = np.random.default_rng(seed)
    x = np.array(x, dtype=np.float64)
    has_rng = getattr(layer, "rng", None) is not None
    rng_state = copy.deepcopy(layer.rng.bit_generator.state) if has_rng else None

    def run(inp):
        if has_rng:
            layer.rng.bit_generator.state = copy.deepcopy(rng_state)
        return layer.forward(inp, training)

    y = run(x)
    R = rng.standard_normal(y.shape)
    needs = layer.needs_input_grad
    layer.needs_input_grad = True
    dx = layer.backward(R)
    layer.needs_input_grad = needs
    loss = lambda: float(np.sum(run(x) * R))
    idx = sample_indices(x.size, max_entries, rng)
    errors = {"input": relative_error(dx.reshape(-1)[idx], numerical_gradient(loss, x, eps, idx).reshape(-1)[idx])}
    for p in layer.parameters():
        analytic = p.grad.copy()
        idx = sample_indices(p.data.size, max_entries, rng)
        numeric = numerical_gradient(loss, p.data, eps, idx)
        errors[p.name] = relative_error(analytic.reshape(-1)[idx], numeric.reshape(-1)[idx])
    return errors


def check_cost(cost, a, t, eps=1e-6):
    """Relative error of ``cost.gradient`` against central differences of ``cost.value``."""
    a = np.array(a, dtype=np.float64)
    numeric = numerical_gradient(lambda: cost.value(a, t), a, eps)
    return relative_error(cost.gradient(a, t), numeric)


def check_network(net, X, y, eps=1e-6, max_entries=30, verbose=True, seed=0):
    """Per-layer report for ``net.check_gradients``: a float64 copy of the
    network, one batch, the full cost, backprop vs central differences for
    each layer's input and parameters (``max_entries`` random entries each)."""
    net64 = copy.deepcopy(net).astype(np.float64)
    for layer in net64.layers:
        if getattr(layer, "stateful", False):
            # every perturbed forward must start from the same (zero) state
            layer.stateful, layer.carried_state = False, None
    X = net64._as_batch(X)
    targets, _ = prepare_targets(net64, y, len(X))
    rng = np.random.default_rng(seed)
    rng_state = copy.deepcopy(net64.rng.bit_generator.state)

    def forward_from(i, inp):
        net64.rng.bit_generator.state = copy.deepcopy(rng_state)
        for layer in net64.layers[i:]:
            inp = layer.forward(inp, True)
        return inp

    # One forward, keeping each layer's input, then the analytic backward.
    inputs = []
    out = X
    net64.rng.bit_generator.state = copy.deepcopy(rng_state)
    for layer in net64.layers:
        inputs.append(out)
        out = layer.forward(out, True)
    grads_in = [None] * len(net64.layers)
    grad = (net64.cost.fused_gradient(out, targets) if net64.fused_output
            else net64.cost.gradient(out, targets))
    last = len(net64.layers) - (2 if net64.fused_output else 1)
    for i in range(last, -1, -1):
        layer = net64.layers[i]
        layer.needs_input_grad = True
        grad = layer.backward(grad)
        grads_in[i] = grad
    analytic = {id(p): p.grad.copy() for p in net64.parameters()}

    rows = []
    for i, layer in enumerate(net64.layers[:last + 1]):
        loss = lambda i=i: net64.cost.value(forward_from(i, inputs[i]), targets)
        if grads_in[i] is not None:  # an Embedding's token ids have no gradient
            x_in = inputs[i].copy()
            inputs[i] = x_in
            idx = sample_indices(x_in.size, max_entries, rng)
            num = numerical_gradient(loss, x_in, eps, idx)
            rows.append({"layer": layer.name, "what": "input",
                         "rel_error": relative_error(grads_in[i].reshape(-1)[idx], num.reshape(-1)[idx])})
        for p in layer.parameters():
            idx = sample_indices(p.data.size, max_entries, rng)
            num = numerical_gradient(loss, p.data, eps, idx)
            rows.append({"layer": layer.name, "what": p.name,
                         "rel_error": relative_error(analytic[id(p)].reshape(-1)[idx], num.reshape(-1)[idx])})
    if verbose:
        print(f"{'layer':<14}{'gradient':<10}{'relative error':>16}")
        for r in rows:
            flag = "" if r["rel_error"] < 1e-5 else "   <-- check this"
            print(f"{r['layer']:<14}{r['what']:<10}{r['rel_error']:>16.2e}{flag}")
    return rows
