"""Reference math for the tests, written independently of nnscratch.gradcheck, and small helpers."""
import numpy as np


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


def built(layer, input_shape, seed=0, dtype=np.float64):
    """``layer`` built for per-sample ``input_shape`` (float64 by default, for gradient checks)."""
    layer.build(input_shape, np.random.default_rng(seed), dtype)
    return layer


def randn(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


def away_from_zero(shape, seed, margin=0.1):
    """Random values with |x| > margin: away from kinks at 0 (ReLU), and a zero
    output can only be a dropped unit (dropout)."""
    x = randn(shape, seed)
    return x + np.sign(x) * margin + (x == 0) * margin
