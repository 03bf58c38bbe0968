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


class _LeafProbe:
    """Watches one leaf layer of a network copy, through instance attributes
    that shadow its ``forward`` and ``backward``.

    While ``recording``, it keeps a copy of the input the leaf received and of
    the input gradient its backward returned (copies: a layer may reuse its
    buffers on the next call). With ``replacement`` set, the leaf computes on
    that array instead of its input, so a finite difference can perturb the
    input of a layer deep inside the network (or inside a block) and run the
    whole network forward.
    """

    def __init__(self, layer):
        self.layer, self.recording, self.replacement = layer, False, None
        self.input = self.input_grad = None
        self._forward, self._backward = layer.forward, layer.backward
        layer.forward, layer.backward = self.forward, self.backward

    def forward(self, x, training=False):
        if self.replacement is not None:
            x = self.replacement
        elif self.recording:
            self.input = x.copy()
        return self._forward(x, training)

    def backward(self, dy):
        dx = self._backward(dy)
        if self.recording and dx is not None:
            self.input_grad = dx.copy()
        return dx


def _float64_copy(net):
    """A float64 deep copy of ``net`` for checking: stateful layers start from a zero
    state at every forward, and every leaf computes its input gradient."""
    net64 = copy.deepcopy(net).astype(np.float64)
    for _, layer in net64.named_layers():
        if getattr(layer, "stateful", False):
            layer.stateful, layer.carried_state = False, None
        layer.needs_input_grad = True
    return net64


def check_network(net, X, y, eps=1e-6, max_entries=30, verbose=True, seed=0):
    """Per-layer report for ``net.check_gradients``: backprop against central
    differences of the full cost, for every leaf layer (inside blocks too).

    On a float64 copy of the network and one batch, ``net.train_step`` gives
    the analytic gradients (the same step ``fit`` runs); then, for each leaf
    layer's input and each of its parameters, ``max_entries`` random entries
    are perturbed and the whole network is run forward again (dropout draws
    the same masks each time). A fused output layer (softmax before
    cross-entropy) is not backpropagated by the step, so it has no row.

    Returns
    -------
    list of ``{"layer": qualified name ("block1.fc1"), "what": "input" or the
    parameter's name, "rel_error": float}``
    """
    net64 = _float64_copy(net)
    X = net64._as_batch(X)
    targets, _ = prepare_targets(net64, y, len(X))
    rng = np.random.default_rng(seed)
    rng_state = copy.deepcopy(net64.rng.bit_generator.state)
    leaves = list(net64.named_layers())
    probes = [_LeafProbe(layer) for _, layer in leaves]

    def loss():
        net64.rng.bit_generator.state = copy.deepcopy(rng_state)
        return net64.cost.value(net64.forward(X, training=True), targets)

    for probe in probes:
        probe.recording = True
    net64.rng.bit_generator.state = copy.deepcopy(rng_state)
    net64.train_step(X, targets)
    for probe in probes:
        probe.recording = False

    def row(name, what, analytic, array, indices):
        numeric = numerical_gradient(loss, array, eps, indices)
        return {"layer": name, "what": what,
                "rel_error": relative_error(analytic.reshape(-1)[indices], numeric.reshape(-1)[indices])}

    rows = []
    for (name, layer), probe in zip(leaves, probes):
        if probe.input_grad is not None:  # None: the fused output layer, or an Embedding's token ids
            probe.replacement = probe.input
            rows.append(row(name, "input", probe.input_grad, probe.input,
                            sample_indices(probe.input.size, max_entries, rng)))
            probe.replacement = None
        for p in layer.parameters():
            analytic = p.grad.copy()
            rows.append(row(name, p.name, analytic, p.data, sample_indices(p.data.size, max_entries, rng)))
    if verbose:
        _print_rows(rows)
    return rows


def _print_rows(rows):
    """The report as a table, one row per gradient, flagging errors above 1e-5."""
    width = max([14] + [len(r["layer"]) + 2 for r in rows])
    print(f"{'layer':<{width}}{'gradient':<10}{'relative error':>16}")
    for r in rows:
        flag = "" if r["rel_error"] < 1e-5 else "   <-- check this"
        print(f"{r['layer']:<{width}}{r['what']:<10}{r['rel_error']:>16.2e}{flag}")
