"""Element-wise operations: arithmetic, unary functions, and selections.

Binary operations broadcast as NumPy does. The VJP of ``y = f(a, b)`` with
``y`` of the broadcast shape is computed at that shape and then summed back to
each input's shape (``sum_to``, "unbroadcast"): an input entry that was used
for several outputs collects all their gradients.

Notation: ``g`` is the upstream gradient ``∂L/∂y``, ``y`` the output, and
products are element-wise. Every VJP is written with Tensor operations so it
can be recorded and differentiated again; quantities that are piecewise
constant (masks, signs) enter as constants, since their derivative is zero
almost everywhere.
"""
import math

import numpy as np

from .. import special
from .shape import sum_to
from .tensor import Tensor, lift, lift_pair, record


def _to(t, make):
    """The gradient for input ``t``: ``sum_to(make(), t.shape)``, or None when ``t`` needs none."""
    return sum_to(make(), t.shape) if t.requires_grad else None


# -- arithmetic -----------------------------------------------------------
def add(a, b):
    """``y = a + b``. VJP: ``ḡ_a = g``, ``ḡ_b = g`` (each summed to its shape)."""
    a, b = lift_pair(a, b)
    return record(a.data + b.data, "add", (a, b), lambda g, y: (_to(a, lambda: g), _to(b, lambda: g)))


def sub(a, b):
    """``y = a - b``. VJP: ``ḡ_a = g``, ``ḡ_b = -g``."""
    a, b = lift_pair(a, b)
    return record(a.data - b.data, "sub", (a, b), lambda g, y: (_to(a, lambda: g), _to(b, lambda: neg(g))))


def mul(a, b):
    """``y = a · b``. VJP: ``ḡ_a = g · b``, ``ḡ_b = g · a``."""
    a, b = lift_pair(a, b)
    return record(a.data * b.data, "mul", (a, b),
                  lambda g, y: (_to(a, lambda: mul(g, b)), _to(b, lambda: mul(g, a))))


def div(a, b):
    """``y = a / b``. VJP: ``ḡ_a = g / b``, ``ḡ_b = -g · a / b² = -g · y / b``."""
    a, b = lift_pair(a, b)
    return record(a.data / b.data, "div", (a, b),
                  lambda g, y: (_to(a, lambda: div(g, b)), _to(b, lambda: neg(div(mul(g, y), b)))))


def power(a, b):
    """``y = a ** b``.

    VJP: ``ḡ_a = g · b · a^(b-1)``; ``ḡ_b = g · y · ln a`` where ``a > 0``
    (and 0 elsewhere, where the real power is not differentiable in ``b``).
    """
    a, b = lift_pair(a, b)

    def vjp(g, y):
        grad_a = _to(a, lambda: mul(g, mul(b, power(a, sub(b, 1)))))
        if not b.requires_grad:
            return grad_a, None
        positive = a.data > 0
        log_a = where(positive, log(where(positive, a, 1)), 0)   # ln a, kept finite off its domain
        return grad_a, _to(b, lambda: mul(mul(g, y), log_a))
    return record(a.data ** b.data, "pow", (a, b), vjp)


def neg(a):
    """``y = -a``. VJP: ``ḡ_a = -g``."""
    a = lift(a)
    return record(-a.data, "neg", (a,), lambda g, y: (neg(g),))


# -- unary functions ------------------------------------------------------
def exp(a):
    """``y = eᵃ``. VJP: ``ḡ_a = g · y``."""
    a = lift(a)
    return record(np.exp(a.data), "exp", (a,), lambda g, y: (mul(g, y),))


def log(a):
    """``y = ln a``. VJP: ``ḡ_a = g / a``."""
    a = lift(a)
    return record(np.log(a.data), "log", (a,), lambda g, y: (div(g, a),))


def sqrt(a):
    """``y = √a``. VJP: ``ḡ_a = g / (2y)``."""
    a = lift(a)
    return record(np.sqrt(a.data), "sqrt", (a,), lambda g, y: (div(g, mul(2, y)),))


def tanh(a):
    """``y = tanh a``. VJP: ``ḡ_a = g · (1 - y²)``."""
    a = lift(a)
    return record(np.tanh(a.data), "tanh", (a,), lambda g, y: (mul(g, sub(1, mul(y, y))),))


def erf(a):
    """``y = erf a = (2/√π) ∫₀ᵃ e^{-t²} dt``. VJP: ``ḡ_a = g · (2/√π) e^{-a²}``.

    NumPy has no erf: ``nnscratch.special.erf`` (Cody's rationals, within
    4.4e-16 of the true erf) computes it; short approximations (error ~1e-7)
    would spoil the gradient checks.
    """
    a = lift(a)
    data = special.erf(a.data)
    two_over_root_pi = 2 / math.sqrt(math.pi)
    return record(data, "erf", (a,), lambda g, y: (mul(g, mul(two_over_root_pi, exp(neg(mul(a, a))))),))


def sigmoid(a):
    """``y = σ(a) = 1 / (1 + e⁻ᵃ)``. VJP: ``ḡ_a = g · y · (1 - y)``.

    Computed from ``e^(-|a|)`` so neither branch overflows.
    """
    a = lift(a)
    e = np.exp(-np.abs(a.data))
    data = np.where(a.data >= 0, 1 / (1 + e), e / (1 + e)).astype(e.dtype, copy=False)
    return record(data, "sigmoid", (a,), lambda g, y: (mul(g, mul(y, sub(1, y))),))


def relu(a):
    """``y = max(a, 0)``. VJP: ``ḡ_a = g · [a > 0]`` (0 at the kink, as is usual)."""
    a = lift(a)
    mask = (a.data > 0).astype(a.dtype)
    return record(a.data * mask, "relu", (a,), lambda g, y: (mul(g, mask),))


def abs(a):  # the module's function, as np.abs
    """``y = |a|``. VJP: ``ḡ_a = g · sign(a)`` (0 at a = 0)."""
    a = lift(a)
    sign = np.sign(a.data)
    return record(np.abs(a.data), "abs", (a,), lambda g, y: (mul(g, sign),))


def astype(a, dtype):
    """Cast to ``dtype``. VJP: ``ḡ_a = g`` cast back to ``a``'s dtype."""
    a = lift(a)
    dtype = np.dtype(dtype)
    if a.dtype == dtype:
        return a
    return record(a.data.astype(dtype), "astype", (a,), lambda g, y: (astype(g, a.dtype),))


# -- selections -----------------------------------------------------------
def _pick(a, b, mask_a, op, data):
    """``y = data`` made of entries of ``a`` (weight ``mask_a``) and ``b`` (weight ``1 - mask_a``).

    VJP: ``ḡ_a = g · mask_a``, ``ḡ_b = g · (1 - mask_a)``.
    """
    mask_b = 1 - mask_a
    return record(data, op, (a, b),
                  lambda g, y: (_to(a, lambda: mul(g, mask_a)), _to(b, lambda: mul(g, mask_b))))


def maximum(a, b):
    """Element-wise ``max(a, b)``. VJP: ``g`` goes to the larger input; split in half on ties."""
    a, b = lift_pair(a, b)
    data = np.maximum(a.data, b.data)
    mask = (a.data > b.data) + 0.5 * (a.data == b.data)
    return _pick(a, b, mask.astype(data.dtype, copy=False), "maximum", data)


def minimum(a, b):
    """Element-wise ``min(a, b)``. VJP: ``g`` goes to the smaller input; split in half on ties."""
    a, b = lift_pair(a, b)
    data = np.minimum(a.data, b.data)
    mask = (a.data < b.data) + 0.5 * (a.data == b.data)
    return _pick(a, b, mask.astype(data.dtype, copy=False), "minimum", data)


def where(condition, a, b):
    """``a`` where ``condition`` else ``b`` (``condition`` is a constant boolean mask).

    VJP: ``ḡ_a = where(condition, g, 0)``, ``ḡ_b = where(condition, 0, g)``.
    """
    cond = np.asarray(condition.data if isinstance(condition, Tensor) else condition, dtype=bool)
    a, b = lift_pair(a, b)
    return record(np.where(cond, a.data, b.data), "where", (a, b),
                  lambda g, y: (_to(a, lambda: where(cond, g, 0)), _to(b, lambda: where(cond, 0, g))))


def clip(a, lo=None, hi=None):
    """Clamp ``a`` to ``[lo, hi]`` (constant bounds; either may be None).

    VJP: ``ḡ_a = g · [lo ≤ a ≤ hi]`` (the bounds themselves count as inside).
    """
    a = lift(a)
    if lo is None and hi is None:
        raise ValueError("clip needs lo, hi or both")
    lo = lo.data if isinstance(lo, Tensor) else lo
    hi = hi.data if isinstance(hi, Tensor) else hi
    inside = np.ones(a.shape, dtype=bool)
    if lo is not None:
        inside &= a.data >= lo
    if hi is not None:
        inside &= a.data <= hi
    mask = inside.astype(a.dtype)
    return record(np.clip(a.data, lo, hi), "clip", (a,), lambda g, y: (mul(g, mask),))
