"""What the tests share: reference math written independently of ``nnscratch.gradcheck``,
random inputs, the tolerance check, and small problems.

Plain functions, imported by name (``from conftest import randn, rel_err``;
pytest puts this folder on ``sys.path``). Central differences here perturb a
copy of the array, never the layer's own, so they do not share a bug with
``gradcheck.numerical_gradient``.
"""
import copy

import numpy as np

TOL = 1e-7   # float64 central differences: a right backward agrees to ~1e-8, a wrong one by far more


# -- reference math -------------------------------------------------------------------------
def central_difference(f, x, eps=1e-6):
    """d f / d x for scalar f(x), perturbing a copy of x entry by entry."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        grad[i] = (f(xp) - f(xm)) / (2 * eps)
    return grad


def rel_err(a, b):
    """Norm-wise relative error, 0 when both are 0."""
    return np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-12)


def assert_all_small(errors, expected_keys, tol=TOL):
    """``errors`` (name -> relative error) has exactly ``expected_keys`` (None: any keys),
    and every error is finite and below ``tol``."""
    if expected_keys is not None:
        assert set(errors) == set(expected_keys), errors
    for key, err in errors.items():
        assert np.isfinite(err) and err < tol, f"{key}: relative error {err:.3e} ({errors})"


def assert_rows_small(rows, tol=1e-6):
    """A gradient-check report (``net.check_gradients``' rows) is not empty and every
    row's relative error is finite and below ``tol``."""
    assert rows, "the report has no rows"
    assert_all_small({f"{r['layer']} {r['what']}": r["rel_error"] for r in rows}, None, tol)


def central_difference_errors(layer, x, training=True, seed=1):
    """Relative errors of ``layer``'s (a leaf's or a block's) dx and every parameter's grad
    against ``central_difference`` of L = Σ y ⊙ R, R fixed, so that dy = R.

    Every dropout's generator is rewound before each forward: the mask is fixed.
    Returns ``{"input": err, "<leaf name>.<parameter>": err, ...}`` (no "input" for
    integer inputs: token ids have no gradient).
    """
    generators = [leaf.rng for leaf in layer.leaves() if getattr(leaf, "rng", None) is not None]
    states = [copy.deepcopy(g.bit_generator.state) for g in generators]

    def loss(inp):
        for g, state in zip(generators, states):
            g.bit_generator.state = copy.deepcopy(state)
        return float(np.sum(layer.forward(inp, training) * R))

    def loss_with(param, value):
        original = param.data.copy()
        param.data[...] = value
        try:
            return loss(x)
        finally:
            param.data[...] = original

    for g, state in zip(generators, states):
        g.bit_generator.state = copy.deepcopy(state)
    y = layer.forward(x, training)
    R = randn(y.shape, seed)
    R_before = R.copy()
    dx = layer.backward(R)
    assert np.array_equal(R, R_before), "backward changed the upstream gradient it was given"
    analytic = {f"{leaf.name}.{p.name}": p.grad.copy() for leaf in layer.leaves() for p in leaf.parameters()}
    errors = {} if np.issubdtype(np.asarray(x).dtype, np.integer) else \
        {"input": rel_err(dx, central_difference(loss, x))}
    for leaf in layer.leaves():
        for p in leaf.parameters():
            numeric = central_difference(lambda v, p=p: loss_with(p, v), p.data.copy())
            errors[f"{leaf.name}.{p.name}"] = rel_err(analytic[f"{leaf.name}.{p.name}"], numeric)
    return errors


# -- layers and inputs ----------------------------------------------------------------------
def built(layer, input_shape, seed=0, dtype=np.float64):
    """``layer`` built for per-sample ``input_shape`` (float64 by default, for gradient checks)."""
    layer.build(input_shape, np.random.default_rng(seed), dtype)
    return layer


def randn(shape, seed, scale=1.0):
    """``scale`` times standard normal values from generator ``seed``."""
    return scale * np.random.default_rng(seed).standard_normal(shape)


def away_from_zero(shape, seed, margin=0.1):
    """Random values with |x| > margin: away from kinks at 0 (ReLU), and a zero
    output can only be a dropped unit (dropout)."""
    x = randn(shape, seed)
    return x + np.sign(x) * margin + (x == 0) * margin


def give_biases_values(layer, seed, scale=1.0):
    """Biases start at zero; give every ``b`` at or under ``layer`` values so the checks
    are not degenerate."""
    for leaf in layer.leaves():
        if hasattr(leaf, "b"):
            leaf.b.data[...] = scale * randn(leaf.b.data.shape, seed)


# -- small problems -------------------------------------------------------------------------
def toy_classes(n, d, k, seed=0, features="uniform"):
    """A linearly separable toy problem: ``n`` float32 samples of ``d`` features
    (uniform in [0, 1) or standard normal), the class the argmax of a fixed projection to ``k``."""
    rng = np.random.default_rng(seed)
    X = (rng.random((n, d)) if features == "uniform" else rng.standard_normal((n, d))).astype(np.float32)
    y = np.argmax(X @ rng.standard_normal((d, k)), axis=1)
    return X, y

