"""Reference math for the tests, written independently of nnscratch.gradcheck."""
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
