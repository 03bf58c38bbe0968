"""2-D convolution (cross-correlation, as in PyTorch), two ways.

For input ``x`` (N, C, H, W), weights ``W`` (F, C, kh, kw), bias ``b`` (F,),
stride ``s`` and the input zero-padded to ``x_p``::

    y[n, f, i, j] = b[f] + Σ_{c, u, v} W[f, c, u, v] · x_p[n, c, i·s + u, j·s + v]

    OH = (H + pad_top + pad_bottom - kh) // s + 1   (and OW likewise)

Backward, with ``dy`` (N, F, OH, OW)::

    db[f]         = Σ_{n, i, j} dy[n, f, i, j]
    dW[f, c, u, v] = Σ_{n, i, j} dy[n, f, i, j] · x_p[n, c, i·s + u, j·s + v]
    dx_p[n, c, i·s + u, j·s + v] += Σ_f dy[n, f, i, j] · W[f, c, u, v]

``impl="naive"`` computes exactly these sums with a loop over output
positions (the teaching version); ``impl="fast"`` (default) gathers every
receptive field into a matrix (im2col) and does one matrix product, and its
backward sends ``dx`` back with one matrix product and one strided add per
kernel offset.
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

from .base import Layer, Parameter
from .dense import WeightInit


def pair(value, name):
    """``3`` -> ``(3, 3)``; ``(3, 5)`` stays; anything else is an error."""
    pair_ = (value, value) if np.isscalar(value) else tuple(value)
    if len(pair_) != 2 or any(int(v) != v or v < 1 for v in pair_):
        raise ValueError(f"{name} must be a positive integer or a pair of them, got {value!r}")
    return int(pair_[0]), int(pair_[1])


def padding_widths(padding, kernel, stride):
    """((top, bottom), (left, right)) zero padding from an int, a pair, "valid" or "same"."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        if stride != (1, 1):
            raise ValueError("padding='same' needs stride 1 (as in PyTorch)")
        # total k - 1 per axis; the odd one out goes to the bottom/right, as PyTorch does
        return tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel)
    if isinstance(padding, str):
        raise ValueError(f"padding must be 'same', 'valid', a non-negative int or a pair, got {padding!r}")
    if np.isscalar(padding):
        padding = (padding, padding)
    if len(padding) != 2 or any(int(p) != p or p < 0 for p in padding):
        raise ValueError(f"padding must be 'same', 'valid', a non-negative int or a pair, got {padding!r}")
    return (int(padding[0]),) * 2, (int(padding[1]),) * 2


def pad_images(x, pads):
    """Zero-pad the two spatial axes of (N, C, H, W); no copy when there is no padding."""
    if pads == ((0, 0), (0, 0)):
        return x
    return np.pad(x, ((0, 0), (0, 0)) + pads)


def windows(x, kernel, stride):
    """A strided view of every receptive field of channels-last ``x`` (N, H, W, C):
    shape (N, OH, OW, kh, kw, C), no copy.

    ``windows(x)[n, i, j]`` is ``x[n, i·s:i·s+kh, j·s:j·s+kw, :]``. With C
    last and contiguous, reshaping it to (N·OH·OW, kh·kw·C) copies runs of C
    floats at a time, several times faster than gathering single pixels.
    """
    n, h, w, c = x.shape
    (kh, kw), (sh, sw) = kernel, stride
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    s_n, s_h, s_w, s_c = x.strides
    return as_strided(x, shape=(n, oh, ow, kh, kw, c),
                      strides=(s_n, s_h * sh, s_w * sw, s_h, s_w, s_c), writeable=False)


def require_images(layer, input_shape):
    """Raise a ValueError naming ``layer`` unless the per-sample shape is (C, H, W)."""
    if len(input_shape) != 3:
        raise ValueError(f"{layer.name} ({type(layer).__name__}) expects images (N, C, H, W), "
                         f"got per-sample shape {input_shape}")


def output_size(size, kernel, stride, pads):
    return (size + pads[0] + pads[1] - kernel) // stride + 1


class Conv2D(WeightInit, Layer):
    """Convolution layer: ``F`` filters of size ``kh × kw`` over ``C`` input channels.

    Parameters
    ----------
    filters : int
        Output channels F.
    kernel_size : int or (kh, kw)
    stride : int or (sh, sw)
    padding : int, (ph, pw), "valid" or "same" (stride 1)
    init : {"auto", "he", "glorot", "normal"}
        As for ``FullyConnected``, with fan-in ``C·kh·kw`` and fan-out ``F·kh·kw``.
    impl : {"fast", "naive"}
        im2col and one matrix product, or the loop over output positions.

    Shapes: ``x`` (N, C, H, W) -> ``y`` (N, F, OH, OW); ``W`` (F, C, kh, kw) and
    ``b`` (F,) as PyTorch's ``nn.Conv2d``.
    """

    kind = "conv"

    def __init__(self, filters, kernel_size, stride=1, padding=0, init="auto", impl="fast"):
        super().__init__()
        if int(filters) != filters or filters < 1:
            raise ValueError(f"filters must be a positive integer, got {filters!r}")
        if impl not in ("fast", "naive"):
            raise ValueError(f"impl must be 'fast' or 'naive', got {impl!r}")
        self.filters = int(filters)
        self.kernel = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        self.pads = padding_widths(padding, self.kernel, self.stride)
        self.init, self.impl = init, impl

    def _build(self, input_shape, rng, dtype):
        require_images(self, input_shape)
        c, h, w = input_shape
        (kh, kw), (sh, sw) = self.kernel, self.stride
        padded = (h + sum(self.pads[0]), w + sum(self.pads[1]))
        if padded[0] < kh or padded[1] < kw:
            raise ValueError(f"{self.name} (Conv2D): a {kh}x{kw} kernel does not fit input of shape "
                             f"(N, {c}, {h}, {w}) padded to {padded[0]}x{padded[1]}")
        self.W = self._init_weights((self.filters, c, kh, kw), rng, dtype)      # (F, C, kh, kw)
        self.b = Parameter(np.zeros(self.filters, dtype=dtype), "b", decay=False)
        return (self.filters, output_size(h, kh, sh, self.pads[0]), output_size(w, kw, sw, self.pads[1]))

    def _fans(self):
        kh, kw = self.kernel
        return self.input_shape[0] * kh * kw, self.filters * kh * kw

    def parameters(self):
        return [self.W, self.b]

    # Inputs with at most this many channels that are not channels-last in memory (a
    # network's first layer on grey or RGB images) are unfolded channel by channel.
    FEW_CHANNELS = 4

    def forward(self, x, training=False):
        self.check_input(x)
        if self.impl == "naive":
            x_p = pad_images(x, self.pads)
            self._cache = (x_p, x.shape)
            return self._naive_forward(x_p)
        n = x.shape[0]
        f, (oh, ow) = self.filters, self.output_shape[1:]
        w_aug = self._weights_with_bias(channels_first := self._unfolds_channels_first(x))  # (F, K+1)
        cols = (self._unfold_channels_first if channels_first else self._unfold_channels_last)(x)
        out = cols.T @ w_aug.T if channels_first else cols @ w_aug.T             # (N*OH*OW, F)
        self._cache = (cols, w_aug, x.shape, channels_first)
        # (N, F, OH, OW) as a view of channels-last memory: element-wise layers
        # keep that layout, and the next conv or this backward need no copy.
        return out.reshape(n, oh, ow, f).transpose(0, 3, 1, 2)

    def _unfolds_channels_first(self, x):
        return x.shape[1] <= self.FEW_CHANNELS and not (x.strides[1] < x.strides[3])

    def _weights_with_bias(self, channels_first):
        """``[W | b]`` (F, K+1), W's K = C·kh·kw columns in the order of the unfolded columns.

        *Bias folded into the product*: each receptive field gets one more entry,
        a constant 1, whose weight is the bias, so ``y = [W | b] [x_field; 1]``
        needs no separate ``y += b`` pass, and backward's ``db = Σ dy`` comes out of
        the weight-gradient product as its last column (the same trick as the
        recurrent layers' trick 2). On the CNN's first layer (64 x 32 x 26 x 26
        outputs) the pass and the sum took 0.6 and 1.2 ms.
        """
        f = self.filters
        w = self.W.data if channels_first else self.W.data.transpose(0, 2, 3, 1)   # (F, C, kh, kw) or (F, kh, kw, C)
        return np.concatenate([w.reshape(f, -1), self.b.data[:, None]], axis=1)

    def _unfold_channels_last(self, x):
        """im2col: every receptive field as a row, (N·OH·OW, kh·kw·C + 1), ending in a 1.

        Works channels-last: free when x came from a conv or pool layer (their
        outputs are channels-last in memory), one copy otherwise; each row is then
        copied in runs of C floats."""
        n, (oh, ow) = x.shape[0], self.output_shape[1:]
        x_hwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))                  # (N, H, W, C)
        if self.pads != ((0, 0), (0, 0)):
            x_hwc = np.pad(x_hwc, ((0, 0),) + self.pads + ((0, 0),))          # (N, Hp, Wp, C)
        fields = windows(x_hwc, self.kernel, self.stride)                     # (N, OH, OW, kh, kw, C) view
        k = fields[0, 0, 0].size
        cols = self.buffer("cols", (n * oh * ow, k + 1), x.dtype)
        np.copyto(cols[:, :k].reshape(fields.shape), fields)
        cols[:, k] = 1                                                          # the bias's input
        return cols

    def _unfold_channels_first(self, x):
        """im2col transposed, for few channels: (C·kh·kw + 1, N·OH·OW), row (c, u, v)
        the pixel at offset (u, v) of channel c of every receptive field, and a row of 1s.

        *Unfold by shifted slices*: row (c, u, v) is one strided slice
        ``x_p[:, c, u::s, v::s]`` copied whole (runs of OW floats); unfolding a
        1-channel image channels-last instead copies one float at a time
        (CNN's first layer, 64 x 1 x 28 x 28: 0.18 ms against 1.3 ms).
        """
        (kh, kw), (sh, sw) = self.kernel, self.stride
        n, c = x.shape[:2]
        _, oh, ow = self.output_shape
        x_p = pad_images(x, self.pads)
        cols = self.buffer("cols_t", (c * kh * kw + 1, n * oh * ow), x.dtype)
        fields = cols[:-1].reshape(c, kh, kw, n, oh, ow)
        for u in range(kh):
            for v in range(kw):
                fields[:, u, v] = x_p[:, :, u:u + sh * oh:sh, v:v + sw * ow:sw].transpose(1, 0, 2, 3)
        cols[-1] = 1                                                            # the bias's input
        return cols

    def backward(self, dy):
        if self.impl == "naive":
            return self._naive_backward(dy)
        cols, w_aug, x_shape, channels_first = self._cache
        f, (kh, kw), c = self.filters, self.kernel, x_shape[1]
        dout = np.ascontiguousarray(dy.transpose(0, 2, 3, 1)).reshape(-1, f)  # (N*OH*OW, F)
        dw_aug = dout.T @ (cols.T if channels_first else cols)                  # (F, K+1): [dW | db]
        if channels_first:
            self.W.grad = np.ascontiguousarray(dw_aug[:, :-1]).reshape(f, c, kh, kw)
        else:
            self.W.grad = np.ascontiguousarray(dw_aug[:, :-1].reshape(f, kh, kw, c).transpose(0, 3, 1, 2))
        self.b.grad = dw_aug[:, -1].copy()                                      # Σ_{n,i,j} dy
        if not self.needs_input_grad:
            return None
        if channels_first:
            return self._fold_channels_first(dout, w_aug[:, :-1], x_shape)
        return self._col2im(dout, w_aug[:, :-1], x_shape)

    def _fold_channels_first(self, dout, w_mat, x_shape):
        """dx for the channels-first unfold: ``dcols = W_matᵀ doutᵀ`` (C·kh·kw, N·OH·OW),
        each row added back onto the strided slice it was copied from."""
        (kh, kw), (sh, sw), (pt, pb), (pl, pr) = self.kernel, self.stride, *self.pads
        n, c, h, w = x_shape
        _, oh, ow = self.output_shape
        dcols = (w_mat.T @ dout.T).reshape(c, kh, kw, n, oh, ow)
        dx_p = np.zeros((n, c, h + pt + pb, w + pl + pr), dtype=dout.dtype)
        for u in range(kh):
            for v in range(kw):
                dx_p[:, :, u:u + sh * oh:sh, v:v + sw * ow:sw] += dcols[:, u, v].transpose(1, 0, 2, 3)
        return dx_p[:, :, pt:pt + h, pl:pl + w]

    def _col2im(self, dout, w_mat, x_shape):
        """dx: scatter-add each receptive field's gradient ``dout · W`` back onto the input.

        One step per kernel offset (u, v): the gradient that every output
        position sends through that offset, ``dout @ W[:, u, v, :]`` (N·OH·OW, C),
        lands on a strided grid of the (padded, channels-last) input. With a
        horizontal stride of 1 the OW·C values of an output row land on one
        contiguous run of an input row, so each add moves long runs (several
        times faster than adding C floats at a time).
        """
        (kh, kw), (sh, sw), (pt, pb), (pl, pr) = self.kernel, self.stride, *self.pads
        n, c, h, w = x_shape
        oh, ow = self.output_shape[1:]
        hp, wp = h + pt + pb, w + pl + pr
        dx_p = np.zeros((n, hp, wp, c), dtype=dout.dtype)                      # channels-last
        rows = dx_p.reshape(n, hp, wp * c)                                      # (N, Hp, Wp*C) view
        for u in range(kh):
            for v in range(kw):
                k = (u * kw + v) * c
                part = dout @ w_mat[:, k:k + c]                                 # (N*OH*OW, C)
                if sw == 1:
                    rows[:, u:u + sh * oh:sh, v * c:(v + ow) * c] += part.reshape(n, oh, ow * c)
                else:
                    dx_p[:, u:u + sh * oh:sh, v:v + sw * ow:sw, :] += part.reshape(n, oh, ow, c)
        return dx_p[:, pt:pt + h, pl:pl + w, :].transpose(0, 3, 1, 2)          # (N, C, H, W) view

    # -- the teaching version ------------------------------------------------
    def _naive_forward(self, x_p):
        """y[:, :, i, j] = b + Σ_{c,u,v} W[:, c, u, v] x_p[:, c, i·s+u, j·s+v], one (i, j) at a time."""
        (kh, kw), (sh, sw) = self.kernel, self.stride
        f, oh, ow = self.output_shape
        y = np.empty((x_p.shape[0], f, oh, ow), dtype=x_p.dtype)
        for i in range(oh):
            for j in range(ow):
                field = x_p[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]           # (N, C, kh, kw)
                y[:, :, i, j] = np.einsum("ncuv,fcuv->nf", field, self.W.data) + self.b.data
        return y

    def _naive_backward(self, dy):
        """Each output position (i, j) sends its gradient back to the weights
        and to the input pixels of its receptive field."""
        x_p, x_shape = self._cache
        (kh, kw), (sh, sw), (pt, _), (pl, _) = self.kernel, self.stride, *self.pads
        _, oh, ow = self.output_shape
        dW = np.zeros_like(self.W.data)
        dx_p = np.zeros_like(x_p)
        for i in range(oh):
            for j in range(ow):
                field = x_p[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]           # (N, C, kh, kw)
                dW += np.einsum("nf,ncuv->fcuv", dy[:, :, i, j], field)
                dx_p[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw] += np.einsum(
                    "nf,fcuv->ncuv", dy[:, :, i, j], self.W.data)
        self.W.grad = dW
        self.b.grad = dy.sum(axis=(0, 2, 3))
        if not self.needs_input_grad:
            return None
        return dx_p[:, :, pt:pt + x_shape[2], pl:pl + x_shape[3]]

    def flops(self):
        f, oh, ow = self.output_shape
        return 2 * f * oh * ow * self.input_shape[0] * self.kernel[0] * self.kernel[1]
