"""Softmax, log-softmax, log-sum-exp and cross-entropy, computed stably.

With ``p = softmax(a)`` along an axis::

    logsumexp(a) = m + ln Σ_j e^(a_j - m)       (m = max_j a_j: no overflow)
    ∂ logsumexp / ∂a = p
    ∂ softmax / ∂a = diag(p) - p pᵀ   so   ḡ_a = p ⊙ (g - Σ_j g_j p_j)
    log_softmax(a) = a - logsumexp(a)    (never takes the log of a rounded-to-zero p)
"""
import numpy as np

from .elementwise import exp, mul, neg, sub
from .reductions import mean, sum
from .shape import _axes_tuple, keepdims_shape, reshape
from .tensor import Tensor, lift, record


def logsumexp(a, axis=None, keepdims=False):
    """``y = ln Σ_axis eᵃ`` (over every axis by default, like ``scipy.special.logsumexp``).

    VJP: ``ḡ_a = g · e^(a - y) = g · softmax(a)``, written with ``y`` itself so
    that it differentiates again (giving ``diag(p) - p pᵀ``).
    """
    a = lift(a)
    kshape = keepdims_shape(a.shape, axis)
    m = np.max(a.data, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)                 # rows of -inf (or inf) must not give inf - inf
    with np.errstate(divide="ignore"):                 # ln 0 = -inf for a row of -inf is the right answer
        data = np.log(np.sum(np.exp(a.data - m), axis=axis, keepdims=True)) + m
    if not keepdims:
        axes = _axes_tuple(axis, a.ndim)
        data = data.reshape(tuple(s for i, s in enumerate(a.shape) if i not in axes))
    return record(data, "logsumexp", (a,),
                  lambda g, y: (mul(reshape(g, kshape), exp(sub(a, reshape(y, kshape)))),))


def softmax(a, axis=-1):
    """``p = e^(a - m) / Σ e^(a - m)`` along ``axis`` (the last by default).

    VJP: ``ḡ_a = p · (g - Σ_axis g p)``.
    """
    a = lift(a)
    e = np.exp(a.data - np.max(a.data, axis=axis, keepdims=True))
    data = e / np.sum(e, axis=axis, keepdims=True)
    return record(data, "softmax", (a,), lambda g, p: (mul(p, sub(g, sum(mul(g, p), axis, keepdims=True))),))


def log_softmax(a, axis=-1):
    """``a - logsumexp(a)`` along ``axis``; VJP ``ḡ_a = g - softmax(a) Σ_axis g`` through its parts."""
    a = lift(a)
    return sub(a, logsumexp(a, axis, keepdims=True))


def cross_entropy(logits, targets):
    """Mean over rows of ``-Σ_k t_k ln softmax(z)_k``, from raw scores (logits).

    Parameters
    ----------
    logits : Tensor or array (N, K)
    targets : int array (N,) of class ids, or float array/Tensor (N, K) of
        probabilities (one-hot or soft; then differentiable in the targets too).

    The gradient with respect to the logits is ``(softmax(z) - t) / N``.
    """
    logits = lift(logits)
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy expects logits of shape (N, K), got {logits.shape}")
    n, k = logits.shape
    log_p = log_softmax(logits, axis=1)                                        # (N, K)
    t = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
    if np.issubdtype(t.dtype, np.integer):
        if t.shape != (n,):
            raise ValueError(f"cross_entropy: integer targets must have shape ({n},) for logits "
                             f"{logits.shape}, "
                             f"got {t.shape}")
        if n and (t.min() < 0 or t.max() >= k):
            raise ValueError(f"cross_entropy: class ids must be in [0, {k}), "
                             f"got range [{t.min()}, {t.max()}]")
        return neg(mean(log_p[np.arange(n), t]))                               # picks log p[i, t_i]
    if t.shape != logits.shape:
        raise ValueError(f"cross_entropy: probability targets must have the logits' shape {logits.shape}, "
                         f"got {t.shape}")
    targets = targets if isinstance(targets, Tensor) else Tensor(t)
    return neg(sum(mul(targets, log_p))) / n

