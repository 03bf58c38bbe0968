"""2-D convolution and pooling over images (N, C, H, W), differentiable to any order.

The library's layers (``nnscratch.layers.conv`` and ``.pooling``) supply the
kernels; here they become pairs of *linear* primitives that are each other's
adjoint, so every VJP is again a Tensor operation:

``unfold`` / ``fold``
    im2col: every receptive field of a channels-last image, gathered with the
    layer's strided ``windows`` view (N, OH, OW, kh, kw, C); and its adjoint,
    the scatter-add back onto the image (the layer's ``Conv2D._col2im``).
``window_pick`` / ``window_place``
    one entry per pooling window at a fixed offset per window; and its
    adjoint, putting values back at those offsets (``MaxPool2D``'s backward).

Convolution is then ``pad → unfold → reshape → matmul (+ b)``, the same im2col
product as ``Conv2D``::

    y[n, f, i, j] = b[f] + Σ_{c,u,v} W[f, c, u, v] · x_p[n, c, i·s + u, j·s + v]

and its gradients (``dW = dYᵀ · cols``, ``dx = fold(dY · W)``) come out of
the VJPs of those parts. Max pooling picks, for each window, the offset of
its maximum (the first one on ties, as ``MaxPool2D``) — a constant choice, so
the pooled output is a linear function of ``x`` with a zero second
derivative, and the VJP routes ``g`` back to the winning entries.
"""
import numpy as np

from ..layers.conv import padding_widths, pair, windows
from .linalg import matmul
from .reductions import mean
from .shape import pad, reshape, transpose
from .tensor import lift, record


# -- im2col and its adjoint ----------------------------------------------
def unfold(x, kernel, stride):
    """Receptive fields of channels-last ``x`` (N, H, W, C) -> (N, OH, OW, kh, kw, C) (a copy).

    ``y[n, i, j, u, v, c] = x[n, i·sh + u, j·sw + v, c]``. Linear; VJP:
    ``ḡ_x = fold(g)``, each field's gradient added back where it was read.
    """
    x = lift(x)
    size = x.shape[1:3]
    data = np.ascontiguousarray(windows(np.ascontiguousarray(x.data), kernel, stride))
    return record(data, "unfold", (x,), lambda g, y: (fold(g, size, kernel, stride),))


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

    ``stride``: int or pair; ``padding``: int, pair, "valid" or "same" (stride 1).
    Returns (N, F, OH, OW). Differentiable in ``x``, ``W`` and ``b``, to any order.
    """
    x, W = lift(x), lift(W)
    if x.ndim != 4 or W.ndim != 4:
        raise ValueError(f"conv2d expects x (N, C, H, W) and W (F, C, kh, kw), got {x.shape} and {W.shape}")
    n, c, h, w = x.shape
    f, c_w, kh, kw = W.shape
    if c != c_w:
        raise ValueError(f"conv2d: x has {c} channels but W {W.shape} expects {c_w}")
    kernel, stride = (kh, kw), pair(stride, "stride")
    pads = padding_widths(padding, kernel, stride)
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
    size = pair(size, "size")
    stride = size if stride is None else pair(stride, "stride")
    (kh, kw), (sh, sw), (h, w) = size, stride, x.shape[2:]
    if h < kh or w < kw:
        raise ValueError(f"pooling: a {kh}x{kw} window does not fit input of shape {x.shape}")
    return size, stride, ((h - kh) // sh + 1, (w - kw) // sw + 1)


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
