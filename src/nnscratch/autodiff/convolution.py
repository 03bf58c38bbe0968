"""2-D convolution and pooling over images (N, C, H, W), differentiable to any order.

Everything here is written from the definitions, independently of the
library's layers (``nnscratch.layers.conv`` and ``.pooling``), so that
checking a layer against these operations checks the layer's own im2col and
window code rather than reusing it. The operations are built on pairs of
*linear* primitives that are each other's adjoint, so every VJP is again a
Tensor operation:

``unfold`` / ``fold``
    im2col: every receptive field of a channels-last image (N, OH, OW, kh, kw, C),
    gathered as kh·kw shifted, strided slices stacked on new axes; and its
    adjoint, adding each field back where it was read.
``window_pick`` / ``window_place``
    one entry per pooling window at a fixed offset per window; and its
    adjoint, putting values back at those offsets.

Convolution is then ``pad → unfold → reshape → matmul (+ b)``::

    y[n, f, i, j] = b[f] + Σ_{c,u,v} W[f, c, u, v] · x_p[n, c, i·s + u, j·s + v]

and its gradients (``dW = dYᵀ · cols``, ``dx = fold(dY · W)``) come out of
the VJPs of those parts. Max pooling picks, for each window, the offset of
its maximum (the first one on ties, as PyTorch) — a constant choice, so
the pooled output is a linear function of ``x`` with a zero second
derivative, and the VJP routes ``g`` back to the winning entries.
"""
import numpy as np

from .linalg import matmul
from .reductions import mean
from .shape import pad, reshape, transpose
from .tensor import lift, record


# -- geometry ------------------------------------------------------------
def _pair(value, name):
    """``3`` -> ``(3, 3)``; a pair of positive integers stays; anything else is an error."""
    pair = (value, value) if np.isscalar(value) else tuple(value)
    if len(pair) != 2 or any(int(v) != v or v < 1 for v in pair):
        raise ValueError(f"{name} must be a positive integer or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


def _pad_widths(padding, kernel, stride):
    """Zero padding ((top, bottom), (left, right)) from an int, a pair (ph, pw),
    explicit widths ((top, bottom), (left, right)), "valid" or "same" (stride 1:
    k - 1 in total per axis, the odd one at the bottom/right, as PyTorch)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same" and stride == (1, 1):
            return tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel)
        raise ValueError(f"padding must be 'valid', 'same' (stride 1), an int or a pair, got {padding!r}")
    if np.isscalar(padding):
        padding = (padding, padding)
    widths = tuple((p, p) if np.isscalar(p) else tuple(p) for p in padding)
    if len(widths) != 2 or any(len(w) != 2 or int(v) != v or v < 0 for w in widths for v in w):
        raise ValueError(f"padding must be non-negative: an int, (ph, pw) or ((top, bottom), (left, right)), "
                         f"got {padding!r}")
    return tuple((int(a), int(b)) for a, b in widths)


def _out_size(size, kernel, stride):
    return (size - kernel) // stride + 1


# -- im2col and its adjoint ----------------------------------------------
def unfold(x, kernel, stride):
    """Receptive fields of channels-last ``x`` (N, H, W, C) -> (N, OH, OW, kh, kw, C) (a copy).

    ``y[n, i, j, u, v, c] = x[n, i·sh + u, j·sw + v, c]``: for each kernel
    offset (u, v) the slice ``x[:, u::sh, v::sw]`` (cropped to OH x OW) holds
    that entry of every field, and the kh·kw slices are stacked. Linear; VJP:
    ``ḡ_x = fold(g)``, each field's gradient added back where it was read.
    """
    x = lift(x)
    n, h, w, c = x.shape
    (kh, kw), (sh, sw) = kernel, stride
    oh, ow = _out_size(h, kh, sh), _out_size(w, kw, sw)
    shifted = [x.data[:, u:u + sh * (oh - 1) + 1:sh, v:v + sw * (ow - 1) + 1:sw, :]   # (N, OH, OW, C) each
               for u in range(kh) for v in range(kw)]
    data = np.stack(shifted, axis=3).reshape(n, oh, ow, kh, kw, c)                  # (N, OH, OW, kh, kw, C)
    return record(data, "unfold", (x,), lambda g, y: (fold(g, (h, w), kernel, stride),))


def fold(cols, size, kernel, stride):
    """Scatter-add fields (N, OH, OW, kh, kw, C) onto an image (N, H, W, C) of ``size`` (H, W).

    The adjoint of ``unfold``: ``z[n, i·sh + u, j·sw + v, c] += cols[n, i, j, u, v, c]``,
    one vectorized add per kernel offset (u, v). VJP: ``ḡ_cols = unfold(g)``.
    """
    cols = lift(cols)
    n, oh, ow, kh, kw, c = cols.shape
    (h, w), (sh, sw) = size, stride
    image = np.zeros((n, h, w, c), dtype=cols.dtype)                            # channels-last
    for u in range(kh):
        for v in range(kw):
            image[:, u:u + sh * oh:sh, v:v + sw * ow:sw, :] += cols.data[:, :, :, u, v, :]
    return record(image, "fold", (cols,), lambda g, y: (unfold(g, kernel, stride),))


# -- convolution ---------------------------------------------------------
def conv2d(x, W, b=None, stride=1, padding=0):
    """Cross-correlation as ``Conv2D``: ``x`` (N, C, H, W), ``W`` (F, C, kh, kw), ``b`` (F,) or None.

    ``stride``: int or pair; ``padding``: int, (ph, pw), ((top, bottom), (left,
    right)), "valid" or "same" (stride 1). Returns (N, F, OH, OW).
    Differentiable in ``x``, ``W`` and ``b``, to any order.
    """
    x, W = lift(x), lift(W)
    if x.ndim != 4 or W.ndim != 4:
        raise ValueError(f"conv2d expects x (N, C, H, W) and W (F, C, kh, kw), got {x.shape} and {W.shape}")
    n, c, h, w = x.shape
    f, c_w, kh, kw = W.shape
    if c != c_w:
        raise ValueError(f"conv2d: x has {c} channels but W {W.shape} expects {c_w}")
    kernel, stride = (kh, kw), _pair(stride, "stride")
    pads = _pad_widths(padding, kernel, stride)
    if h + sum(pads[0]) < kh or w + sum(pads[1]) < kw:
        raise ValueError(f"conv2d: a {kh}x{kw} kernel does not fit input {x.shape} with padding {pads}")
    x_hwc = transpose(x, 0, 2, 3, 1)                                            # (N, H, W, C)
    x_hwc = pad(x_hwc, ((0, 0),) + pads + ((0, 0),))                            # (N, Hp, Wp, C)
    cols = unfold(x_hwc, kernel, stride)                                        # (N, OH, OW, kh, kw, C)
    oh, ow = cols.shape[1:3]
    cols = reshape(cols, n * oh * ow, kh * kw * c)                              # (N*OH*OW, kh*kw*C)
    w_mat = reshape(transpose(W, 0, 2, 3, 1), f, kh * kw * c)                   # (F, kh*kw*C)
    out = matmul(cols, transpose(w_mat))                                        # (N*OH*OW, F)
    if b is not None:
        b = lift(b)
        if b.shape != (f,):
            raise ValueError(f"conv2d: b must have shape ({f},), got {b.shape}")
        out = out + b
    return transpose(reshape(out, n, oh, ow, f), 0, 3, 1, 2)                    # (N, F, OH, OW)


# -- pooling -------------------------------------------------------------
def _pool_geometry(x, size, stride):
    if x.ndim != 4:
        raise ValueError(f"pooling expects images (N, C, H, W), got shape {x.shape}")
    size = _pair(size, "size")
    stride = size if stride is None else _pair(stride, "stride")
    (kh, kw), (sh, sw), (h, w) = size, stride, x.shape[2:]
    if h < kh or w < kw:
        raise ValueError(f"pooling: a {kh}x{kw} window does not fit input of shape {x.shape}")
    return size, stride, (_out_size(h, kh, sh), _out_size(w, kw, sw))


def _offset(a, u, v, stride, out_hw):
    """Element (u, v) of every window of (N, C, H, W) ``a``: a strided (N, C, OH, OW) view."""
    (sh, sw), (oh, ow) = stride, out_hw
    return a[:, :, u:u + sh * oh:sh, v:v + sw * ow:sw]


def window_pick(x, winner, size, stride, data=None):
    """``y[n, c, i, j] = x[n, c, i·sh + u, j·sw + v]`` with ``(u, v)`` = offset ``winner[n, c, i, j]``.

    Linear in ``x`` for a fixed ``winner`` (offsets ``k = u·kw + v``).
    VJP: ``ḡ_x = window_place(g)``. ``data``: the result, when already known.
    """
    x = lift(x)
    kh, kw = size
    out_hw = winner.shape[2:]
    if data is None:
        data = np.zeros(winner.shape, dtype=x.dtype)
        for k in range(kh * kw):
            np.copyto(data, _offset(x.data, k // kw, k % kw, stride, out_hw), where=winner == k)
    return record(data, "max_pool2d", (x,), lambda g, y: (window_place(g, winner, size, stride, x.shape),))


def window_place(g, winner, size, stride, shape):
    """The adjoint of ``window_pick``: zeros of ``shape`` with ``g[n, c, i, j]`` added at each
    window's chosen offset (accumulating where overlapping windows choose the same entry).

    VJP: ``ḡ_g = window_pick(g')``.
    """
    g = lift(g)
    kh, kw = size
    out_hw = winner.shape[2:]
    image = np.zeros(shape, dtype=g.dtype)
    for k in range(kh * kw):
        _offset(image, k // kw, k % kw, stride, out_hw)[...] += g.data * (winner == k)
    return record(image, "max_unpool2d", (g,), lambda gg, y: (window_pick(gg, winner, size, stride),))


def max_pool2d(x, size=2, stride=None):
    """Max over each ``size`` window (stride: the size by default), as ``MaxPool2D``.

    ``y[n, c, i, j] = max_{u,v} x[n, c, i·sh + u, j·sw + v]``; VJP: ``g`` to the
    first maximal entry of each window, accumulating where windows overlap.
    """
    x = lift(x)
    size, stride, out_hw = _pool_geometry(x, size, stride)
    kh, kw = size
    out = _offset(x.data, 0, 0, stride, out_hw).copy()
    winner = np.zeros(out.shape, dtype=np.uint8 if kh * kw <= 256 else np.int32)   # offset of each max
    for k in range(1, kh * kw):
        candidate = _offset(x.data, k // kw, k % kw, stride, out_hw)
        greater = candidate > out                          # strictly: ties stay with the first
        np.copyto(out, candidate, where=greater)
        np.copyto(winner, k, where=greater)
    return window_pick(x, winner, size, stride, data=out)


def avg_pool2d(x, size=2, stride=None):
    """Mean over each window, as ``AvgPool2D``: ``unfold`` then ``mean``
    (VJP: ``g / (kh·kw)`` to each entry of the window)."""
    x = lift(x)
    size, stride, _ = _pool_geometry(x, size, stride)
    cols = unfold(transpose(x, 0, 2, 3, 1), size, stride)                      # (N, OH, OW, kh, kw, C)
    return transpose(mean(cols, axis=(3, 4)), 0, 3, 1, 2)                      # (N, C, OH, OW)
