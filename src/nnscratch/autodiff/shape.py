"""Operations that move values without changing them: broadcasting, reshaping,
transposing, indexing, joining and padding.

All are linear, so each VJP is another operation of this module (the adjoint):

    broadcast_to  <->  sum_to          reshape     <->  reshape back
    transpose(p)  <->  transpose(p⁻¹)  getitem     <->  scatter-add (index_add)
    concatenate   <->  slices          pad         <->  crop (a slice)

and, being Tensor operations, they differentiate again to any order.
"""
import numpy as np

from .tensor import Tensor, lift, record


def _axes_tuple(axis, ndim):
    """``axis`` (None, int or tuple, negatives allowed) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if np.isscalar(axis) else tuple(axis)
    return tuple(sorted({_check_axis(a, ndim) for a in axes}))


def _check_axis(axis, ndim):
    axis = int(axis)
    if not -ndim <= axis < max(ndim, 1):
        raise np.exceptions.AxisError(axis, ndim)
    return axis % ndim if ndim else 0


def keepdims_shape(shape, axis):
    """The shape a reduction over ``axis`` has with ``keepdims=True``."""
    axes = _axes_tuple(axis, len(shape))
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


# -- broadcasting ---------------------------------------------------------
def broadcast_to(a, shape):
    """Broadcast ``a`` to ``shape`` (NumPy rules).

    VJP: ``ḡ_a = sum_to(g, a.shape)`` — every copy of an entry sends its
    gradient back to that one entry.
    """
    a = lift(a)
    shape = tuple(shape)
    if a.shape == shape:
        return a
    return record(np.broadcast_to(a.data, shape), "broadcast_to", (a,),
                  lambda g, out: (sum_to(g, a.shape),))


def sum_to(a, shape):
    """Sum ``a`` down to ``shape``, the inverse of broadcasting ("unbroadcast").

    Leading axes that broadcasting added are summed away, and axes where
    ``shape`` has 1 are summed with keepdims. VJP: ``ḡ_a = broadcast_to(g, a.shape)``.
    """
    a = lift(a)
    shape = tuple(shape)
    if a.shape == shape:
        return a
    lead = a.ndim - len(shape)
    if lead < 0:
        raise ValueError(f"sum_to: cannot reduce shape {a.shape} to the larger shape {shape}")
    stretched = tuple(lead + i for i, s in enumerate(shape) if s == 1 and a.shape[lead + i] != 1)
    axes = tuple(range(lead)) + stretched
    data = a.data.sum(axis=axes, keepdims=True).reshape(shape)
    return record(data, "sum_to", (a,), lambda g, out: (broadcast_to(g, a.shape),))


def identity(a):
    """``y = a`` as a new node (``grad`` uses it to make a fresh input that stays
    connected to an enclosing graph). VJP: ``ḡ_a = g``."""
    a = lift(a)
    return record(a.data, "identity", (a,), lambda g, out: (g,))


# -- reshaping and transposing -------------------------------------------
def reshape(a, *shape):
    """``a.reshape(shape)`` (``-1`` allowed). VJP: ``ḡ_a = g.reshape(a.shape)``."""
    a = lift(a)
    if len(shape) == 1 and not np.isscalar(shape[0]):
        shape = tuple(shape[0])
    data = a.data.reshape(shape)
    if data.shape == a.shape:
        return a
    return record(data, "reshape", (a,), lambda g, out: (reshape(g, a.shape),))


def transpose(a, *axes):
    """Permute axes (reverse them when none are given).

    VJP: ``ḡ_a = transpose(g, p⁻¹)`` with ``p⁻¹ = argsort(p)``.
    """
    a = lift(a)
    if len(axes) == 1 and (axes[0] is None or not np.isscalar(axes[0])):
        axes = axes[0]
    n = a.ndim
    if axes is None or axes == ():
        perm = tuple(range(n - 1, -1, -1))
    else:
        perm = tuple(_check_axis(i, n) for i in axes)
        if sorted(perm) != list(range(n)):
            raise ValueError(f"transpose: axes {axes} are not a permutation of the axes of shape {a.shape}")
    if perm == tuple(range(n)):
        return a
    inverse = [0] * n            # p⁻¹, in plain Python: this runs for every matmul's VJP
    for i, p in enumerate(perm):
        inverse[p] = i
    inverse = tuple(inverse)
    return record(a.data.transpose(perm), "transpose", (a,), lambda g, out: (transpose(g, inverse),))


def swapaxes(a, axis1, axis2):
    """Exchange two axes: a transpose by the permutation that swaps them."""
    a = lift(a)
    perm = list(range(a.ndim))
    i, j = _check_axis(axis1, a.ndim), _check_axis(axis2, a.ndim)
    perm[i], perm[j] = perm[j], perm[i]
    return transpose(a, perm)


def expand_dims(a, axis):
    """Insert an axis of length 1 (a reshape)."""
    a = lift(a)
    return reshape(a, np.expand_dims(a.data, axis).shape)


def squeeze(a, axis=None):
    """Remove axes of length 1 (a reshape)."""
    a = lift(a)
    return reshape(a, np.squeeze(a.data, axis).shape)


def flatten(a):
    """All entries as a vector (a reshape)."""
    return reshape(a, -1)


# -- indexing -------------------------------------------------------------
def _normalize_index(index):
    """A tuple index with Tensors and lists turned into arrays; and whether it has integer arrays."""
    if not isinstance(index, tuple):
        index = (index,)
    parts, integer_arrays = [], False
    for part in index:
        if isinstance(part, Tensor):
            part = part.data
        if isinstance(part, (list, np.ndarray)):
            part = np.asarray(part)
            if part.dtype != bool:
                if part.size and not np.issubdtype(part.dtype, np.integer):
                    raise IndexError(f"index arrays must be integers or booleans, got dtype {part.dtype}")
                part = part.astype(np.intp, copy=False)
                integer_arrays = True
        parts.append(part)
    return tuple(parts), integer_arrays


def getitem(a, index):
    """``a[index]``: basic (ints, slices, None, ...) and advanced (integer and boolean arrays).

    VJP: ``ḡ_a = index_add(zeros(a.shape), index, g)`` — the gradient goes back
    to the entries that were read, and an entry read several times (a repeated
    integer index) receives the sum of their gradients.
    """
    a = lift(a)
    index, integer_arrays = _normalize_index(index)
    return record(a.data[index], "getitem", (a,),
                  lambda g, out: (index_add(g, index, a.shape, integer_arrays),))


def index_add(values, index, shape, accumulate=True):
    """``z = zeros(shape); z[index] += values`` with repeated indices accumulating.

    ``accumulate=False`` is a faster assignment, valid when no entry is hit twice
    (basic and boolean indexing). VJP: ``ḡ_values = g[index]``.
    """
    values = lift(values)
    z = np.zeros(shape, dtype=values.dtype)
    if accumulate:
        np.add.at(z, index, values.data)    # unbuffered: repeated indices add up
    else:
        z[index] = values.data
    return record(z, "index_add", (values,), lambda g, out: (getitem(g, index),))


# -- joining and padding --------------------------------------------------
def concatenate(tensors, axis=0):
    """Join tensors along an existing axis.

    VJP: each input gets its own slice of ``g`` along ``axis``.
    """
    tensors = [lift(t) for t in tensors]
    if not tensors:
        raise ValueError("concatenate needs at least one tensor")
    data = np.concatenate([t.data for t in tensors], axis=axis)
    axis = _check_axis(axis, data.ndim)
    bounds = np.cumsum([0] + [t.shape[axis] for t in tensors])
    lead = (slice(None),) * axis

    def vjp(g, out):
        return tuple(getitem(g, lead + (slice(int(start), int(stop)),)) if t.requires_grad else None
                     for t, start, stop in zip(tensors, bounds[:-1], bounds[1:]))
    return record(data, "concatenate", tuple(tensors), vjp)


def stack(tensors, axis=0):
    """Join same-shape tensors along a new axis (expand_dims, then concatenate)."""
    tensors = [lift(t) for t in tensors]
    if not tensors:
        raise ValueError("stack needs at least one tensor")
    axis = _check_axis(axis, tensors[0].ndim + 1)
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack: all tensors must have the same shape, got {sorted(shapes)}")
    return concatenate([expand_dims(t, axis) for t in tensors], axis)


def pad(a, pad_width, constant_values=0):
    """Constant padding, ``pad_width`` as for ``np.pad`` (int, (before, after), or one pair per axis).

    VJP: ``ḡ_a = g[before_0 : before_0 + n_0, ...]`` — the padding is constant,
    so only the original entries get gradients.
    """
    a = lift(a)
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.intp), (a.ndim, 2))
    if (widths < 0).any():
        raise ValueError(f"pad: widths must be non-negative, got {pad_width!r}")
    if not widths.any():
        return a
    data = np.pad(a.data, widths, constant_values=constant_values)
    crop = tuple(slice(int(b), int(b) + n) for (b, _), n in zip(widths, a.shape))
    return record(data, "pad", (a,), lambda g, out: (getitem(g, crop),))
