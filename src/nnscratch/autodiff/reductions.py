"""Reductions over any axes: sum, mean, max, min, var, std.

``axis`` is None (every axis), an int or a tuple of ints; ``keepdims`` as in
NumPy. Every VJP first puts ``g`` back into the keepdims shape (a reshape),
so it broadcasts against the input.

The names ``sum``, ``max``, ``min`` shadow Python's builtins inside this
module on purpose (they mirror NumPy's); use ``builtins`` here if needed.
"""
import math

import numpy as np

from .elementwise import mul, sqrt, sub
from .shape import _axes_tuple, broadcast_to, keepdims_shape, reshape
from .tensor import lift, record


def _count(shape, axis):
    """How many entries each output of a reduction over ``axis`` summarizes."""
    return math.prod(shape[i] for i in _axes_tuple(axis, len(shape)))


def sum(a, axis=None, keepdims=False):  # noqa: A001
    """``y = Σ_axis a``.

    VJP: ``ḡ_a = broadcast_to(g, a.shape)`` (g in keepdims shape): every summand
    gets the gradient of its sum.
    """
    a = lift(a)
    kshape = keepdims_shape(a.shape, axis)
    data = np.sum(a.data, axis=axis, keepdims=keepdims)
    return record(data, "sum", (a,), lambda g, y: (broadcast_to(reshape(g, kshape), a.shape),))


def mean(a, axis=None, keepdims=False):
    """``y = (1/n) Σ_axis a`` with ``n`` the number of entries averaged (a sum, then a division).

    VJP (through those two): ``ḡ_a = broadcast_to(g, a.shape) / n``.
    """
    a = lift(a)
    return sum(a, axis, keepdims) / _count(a.shape, axis)


def _extreme(a, axis, keepdims, reduce, name):
    """Shared by max and min: ``y = reduce_axis a``.

    VJP: ``ḡ_a = g · [a = y] / #{a = y}``: the gradient goes to the entry that
    attains the extreme, shared equally among ties. The mask is constant (its
    derivative is zero wherever it is defined), so this differentiates again.
    """
    a = lift(a)
    if a.size == 0:
        raise ValueError(f"{name} of an empty tensor")
    kshape = keepdims_shape(a.shape, axis)
    data = reduce(a.data, axis=axis, keepdims=keepdims)
    hits = a.data == data.reshape(kshape)                                     # a's shape
    share = (hits / hits.sum(axis=_axes_tuple(axis, a.ndim), keepdims=True)).astype(a.dtype, copy=False)
    return record(data, name, (a,), lambda g, y: (mul(broadcast_to(reshape(g, kshape), a.shape), share),))


def max(a, axis=None, keepdims=False):  # noqa: A001
    """Largest entry over ``axis``. VJP: to the arg-max (shared among ties)."""
    return _extreme(a, axis, keepdims, np.max, "max")


def min(a, axis=None, keepdims=False):  # noqa: A001
    """Smallest entry over ``axis``. VJP: to the arg-min (shared among ties)."""
    return _extreme(a, axis, keepdims, np.min, "min")


def var(a, axis=None, keepdims=False, ddof=0):
    """``y = Σ_axis (a - ā)² / (n - ddof)`` with ``ā`` the mean over ``axis``.

    A composite of differentiable operations; its VJP works out to
    ``ḡ_a = 2 g (a - ā) / (n - ddof)`` (the ``ā`` term cancels since Σ(a - ā) = 0).
    """
    a = lift(a)
    n = _count(a.shape, axis)
    if n - ddof <= 0:
        raise ValueError(f"var: {n} entries with ddof={ddof} leave no degrees of freedom")
    centered = sub(a, mean(a, axis, keepdims=True))
    return sum(mul(centered, centered), axis, keepdims) / (n - ddof)


def std(a, axis=None, keepdims=False, ddof=0):
    """``√var``; VJP ``ḡ_a = g (a - ā) / ((n - ddof) · std)``, through its parts."""
    return sqrt(var(a, axis, keepdims, ddof))
