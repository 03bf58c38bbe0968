"""Max and average pooling over (N, C, H, W), and Flatten.

Window ``size`` (kh, kw), ``stride`` (default: the size). Windows that do not
tile the input are fine: ``OH = (H - kh) // sh + 1``, and rows or columns left
over at the bottom/right are not pooled (as in PyTorch without padding).

The fast versions loop over the kh·kw offsets of a window: at offset (u, v),
``x[:, :, u::sh, v::sw]`` (cropped to OH x OW) holds that element of every
window at once, so a window's max or mean is built with kh·kw whole-array
operations. The naive versions loop over output positions, one window at a
time, as the definition reads.
"""
import numpy as np

from .base import Layer
from .conv import pair, require_images


def _channels_last(a):
    """True when (N, C, H, W) ``a`` is laid out channels-last in memory (conv outputs are)."""
    return a.ndim == 4 and a.strides[1] < a.strides[3]


def _zeros_like_layout(shape, dtype, channels_last, allocate=np.zeros):
    """Zeros of (N, C, H, W) ``shape``, channels-last in memory when asked."""
    if not channels_last:
        return allocate(shape, dtype=dtype)
    n, c, h, w = shape
    return allocate((n, h, w, c), dtype=dtype).transpose(0, 3, 1, 2)


def _empty_like_layout(shape, dtype, channels_last):
    """Like ``_zeros_like_layout``, uninitialized."""
    return _zeros_like_layout(shape, dtype, channels_last, allocate=np.empty)


class _Pool2D(Layer):
    def __init__(self, size=2, stride=None, impl="fast"):
        super().__init__()
        if impl not in ("fast", "naive"):
            raise ValueError(f"impl must be 'fast' or 'naive', got {impl!r}")
        self.size = pair(size, "size")
        self.stride = self.size if stride is None else pair(stride, "stride")
        self.impl = impl

    def _build(self, input_shape, rng, dtype):
        require_images(self, input_shape)
        c, h, w = input_shape
        (kh, kw), (sh, sw) = self.size, self.stride
        if h < kh or w < kw:
            raise ValueError(f"{self.name} ({type(self).__name__}): a {kh}x{kw} window does not fit "
                             f"input of shape (N, {c}, {h}, {w})")
        return c, (h - kh) // sh + 1, (w - kw) // sw + 1

    def _offset(self, x, u, v):
        """Element (u, v) of every window: (N, C, OH, OW), a strided view."""
        (sh, sw), (oh, ow) = self.stride, self.output_shape[1:]
        return x[:, :, u:u + sh * oh:sh, v:v + sw * ow:sw]

    def _field(self, x, i, j):
        """The window of output position (i, j): (N, C, kh, kw)."""
        (kh, kw), (sh, sw) = self.size, self.stride
        return x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]

    def _naive_reduce(self, x, reduce):
        """The teaching version: ``reduce`` (max or mean) over one window at a time."""
        _, oh, ow = self.output_shape
        y = np.empty((x.shape[0], x.shape[1], oh, ow), dtype=x.dtype)
        for i in range(oh):
            for j in range(ow):
                y[:, :, i, j] = reduce(self._field(x, i, j), axis=(2, 3))
        return y

    def flops(self):
        return int(np.prod(self.output_shape)) * self.size[0] * self.size[1]


class MaxPool2D(_Pool2D):
    """``y[n, c, i, j] = max_{u,v} x[n, c, i·sh + u, j·sw + v]``.

    Backward sends each output's gradient to the one input that was the max
    (the first one, in window order, when several tie), accumulating where
    overlapping windows pick the same input.
    """

    kind = "maxpool"

    def forward(self, x, training=False):
        self.check_input(x)
        if self.impl == "naive":
            self._cache = x
            return self._naive_forward(x)
        kh, kw = self.size
        if self._pairs():
            return self._forward_pairs(x)
        out = self._offset(x, 0, 0).copy(order="K")             # keeps the input's memory layout
        winner = np.zeros(out.shape, dtype=np.uint8 if kh * kw <= 256 else np.int32)  # offset of each max
        for k in range(1, kh * kw):
            candidate = self._offset(x, k // kw, k % kw)
            np.putmask(winner, candidate > out, k)              # strictly: ties stay with the first
            np.maximum(out, candidate, out=out)
        self._cache = (x.shape, winner, _channels_last(x))
        return out

    def backward(self, dy):
        if self.impl == "naive":
            return self._naive_backward(dy)
        if self._pairs():
            return self._backward_pairs(dy)
        x_shape, winner, channels_last = self._cache
        kh, kw = self.size
        dx = _zeros_like_layout(x_shape, dy.dtype, channels_last)
        disjoint = self.stride[0] >= kh and self.stride[1] >= kw   # each input in one window at most
        for k in range(kh * kw):
            target = self._offset(dx, k // kw, k % kw)
            if disjoint:
                np.multiply(dy, winner == k, out=target)
            else:
                target += dy * (winner == k)
        return dx

    # -- the 2 x 2 fast path: a tournament of pairs ---------------------------
    def _pairs(self):
        """True for 2 x 2 windows with stride 2, the common case, which has its own fast path."""
        return self.size == (2, 2) and self.stride == (2, 2)

    def _forward_pairs(self, x):
        """Max of 2 x 2 windows as a tournament: the two pairs of each window, then their winners.

        ``top = max(x00, x01)``, ``bottom = max(x10, x11)``, ``y = max(top, bottom)``,
        with ``x_uv`` the element (u, v) of every window (a strided view). Three
        booleans per window record who won, strictly, so that ties go to the
        first element in window order (x00, x01, x10, x11) as in the general loop:
        ``right_top = x01 > x00``, ``right_bottom = x11 > x10``, ``lower = bottom > top``.
        Six whole-array operations and no ``putmask``: on the CNN's first pooling
        (64 x 32 x 26 x 26) 1.4 ms instead of 6.9 ms for the general loop, the
        same outputs bit for bit (benchmarks/README.md).
        """
        x00, x01, x10, x11 = (self._offset(x, u, v) for u, v in ((0, 0), (0, 1), (1, 0), (1, 1)))
        top = np.maximum(x00, x01)                               # keeps the input's memory layout
        bottom = np.maximum(x10, x11)
        winners = (x01 > x00, x11 > x10, bottom > top)           # right_top, right_bottom, lower
        np.maximum(top, bottom, out=top)
        self._cache = (x.shape, winners, _channels_last(x))
        return top

    def _backward_pairs(self, dy):
        """Each window's gradient to its winner, down the tournament:
        ``d_lower = dy ⊙ lower``, ``d_upper = dy - d_lower``; then
        ``dx01 = d_upper ⊙ right_top``, ``dx00 = d_upper - dx01`` (and the lower
        pair likewise). Every element of a window is written once, so ``dx`` needs
        zeros only for the row or column that no window covers (odd H or W).
        1.6 ms instead of 3.0 ms on the CNN's first pooling."""
        x_shape, (right_top, right_bottom, lower), channels_last = self._cache
        n, c, h, w = x_shape
        uncovered = h % 2 or w % 2
        dx = (_zeros_like_layout if uncovered else _empty_like_layout)(x_shape, dy.dtype, channels_last)
        if channels_last != _channels_last(dy):
            # dy in the winners' layout first (after Flatten it comes in the standard one):
            # element-wise passes over arrays of two layouts were 3-5x slower than this copy
            dy_same_layout = _empty_like_layout(dy.shape, dy.dtype, channels_last)
            np.copyto(dy_same_layout, dy)
            dy = dy_same_layout
        d_lower = dy * lower
        d_upper = dy - d_lower
        for (u, winner_right, d_pair) in ((0, right_top, d_upper), (1, right_bottom, d_lower)):
            right, left = self._offset(dx, u, 1), self._offset(dx, u, 0)
            np.multiply(d_pair, winner_right, out=right)
            np.subtract(d_pair, right, out=left)
        return dx

    def _naive_forward(self, x):
        return self._naive_reduce(x, np.max)

    def _naive_backward(self, dy):
        x = self._cache
        n, c = x.shape[:2]
        kw = self.size[1]
        dx = np.zeros_like(x)
        rows, chans = np.arange(n)[:, None], np.arange(c)[None, :]
        for i in range(self.output_shape[1]):
            for j in range(self.output_shape[2]):
                field = self._field(x, i, j)
                first_max = field.reshape(n, c, -1).argmax(axis=2)              # (N, C)
                u, v = first_max // kw, first_max % kw
                self._field(dx, i, j)[rows, chans, u, v] += dy[:, :, i, j]
        return dx


class AvgPool2D(_Pool2D):
    """``y[n, c, i, j] = mean_{u,v} x[n, c, i·sh + u, j·sw + v]``; each input in a
    window gets ``dy / (kh·kw)`` back."""

    kind = "avgpool"

    def forward(self, x, training=False):
        self.check_input(x)
        self._cache = (x.shape, _channels_last(x))
        kh, kw = self.size
        if self.impl == "naive":
            return self._naive_reduce(x, np.mean)
        out = self._offset(x, 0, 0).copy(order="K")  # keeps the input's memory layout
        for u in range(kh):
            for v in range(kw):
                if u or v:
                    out += self._offset(x, u, v)
        out *= x.dtype.type(1.0 / (kh * kw))
        return out

    def backward(self, dy):
        kh, kw = self.size
        share = dy * dy.dtype.type(1.0 / (kh * kw))
        x_shape, channels_last = self._cache
        dx = _zeros_like_layout(x_shape, dy.dtype, channels_last)
        if self.impl == "naive":
            for i in range(self.output_shape[1]):
                for j in range(self.output_shape[2]):
                    self._field(dx, i, j)[...] += share[:, :, i, j, None, None]
            return dx
        for u in range(kh):
            for v in range(kw):
                self._offset(dx, u, v)[...] += share
        return dx


class Flatten(Layer):
    """(N, C, H, W) -> (N, C·H·W), in C-H-W order (as PyTorch's ``nn.Flatten``),
    so the dense layer after it has PyTorch's weight layout."""

    kind = "flatten"

    def _build(self, input_shape, rng, dtype):
        return (int(np.prod(input_shape)),)

    def forward(self, x, training=False):
        self.check_input(x)
        self._cache_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        return dy.reshape(self._cache_shape)
