"""Conv2D, MaxPool2D, AvgPool2D and Flatten, both implementations.

Every backward pass (input, ``W`` and ``b``) is checked against float64 central
differences on awkward shapes (a batch of one, odd and non-square sizes, strides
that leave gaps or overlap, asymmetric "same" padding); the fast (im2col) and
naive (loop) versions are checked against each other, including on
channels-last and non-contiguous arrays; and both forwards are checked against
references written here from the definitions, with the padding done by hand.
"""
import numpy as np
import pytest
from conftest import TOL, assert_all_small, assert_rows_small, built, central_difference, randn, rel_err

from nnscratch import Adam, Network, gradcheck
from nnscratch.layers import AvgPool2D, Conv2D, Flatten, MaxPool2D

IMPLS = ["fast", "naive"]


def channels_last(x):
    """The same values as (N, C, H, W) ``x``, laid out (N, H, W, C) in memory."""
    return x.transpose(0, 2, 3, 1).copy().transpose(0, 3, 1, 2)


def strided(x, seed):
    """The same values as ``x`` as a non-contiguous view (every other column of a wider array)."""
    big = randn(x.shape[:-1] + (2 * x.shape[-1],), seed)
    view = big[..., ::2]
    view[...] = x
    assert not view.flags.c_contiguous and not view.flags.f_contiguous
    return view


# -- references written from the definitions ---------------------------------------
def zero_pad(x, pads):
    """(N, C, H, W) -> (N, C, H + top + bottom, W + left + right), by hand (not np.pad)."""
    (pt, pb), (pl, pr) = pads
    n, c, h, w = x.shape
    out = np.zeros((n, c, h + pt + pb, w + pl + pr))
    out[:, :, pt:pt + h, pl:pl + w] = x
    return out


def n_positions(size, k, s):
    """How many windows of size k fit at stride s: counted, not from the formula."""
    return len(range(0, size - k + 1, s))


def conv_loops(x, W, b, stride, pads):
    """y[n,f,i,j] = b[f] + Σ_{c,u,v} W[f,c,u,v] · x_pad[n,c,i·sh+u,j·sw+v], seven plain loops."""
    xp = zero_pad(x, pads)
    n_, c_, hp, wp = xp.shape
    f_, _, kh, kw = W.shape
    sh, sw = stride
    oh, ow = n_positions(hp, kh, sh), n_positions(wp, kw, sw)
    y = np.zeros((n_, f_, oh, ow))
    for n in range(n_):
        for f in range(f_):
            for i in range(oh):
                for j in range(ow):
                    acc = b[f]
                    for c in range(c_):
                        for u in range(kh):
                            for v in range(kw):
                                acc += W[f, c, u, v] * xp[n, c, i * sh + u, j * sw + v]
                    y[n, f, i, j] = acc
    return y


def conv_einsum(x, W, b, stride, pads):
    """The same sum, one einsum per output position (fast enough for central differences)."""
    xp = zero_pad(x, pads)
    kh, kw = W.shape[2:]
    sh, sw = stride
    oh, ow = n_positions(xp.shape[2], kh, sh), n_positions(xp.shape[3], kw, sw)
    y = np.empty((x.shape[0], W.shape[0], oh, ow))
    for i in range(oh):
        for j in range(ow):
            field = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]  # (N, C, kh, kw)
            y[:, :, i, j] = np.einsum("ncuv,fcuv->nf", field, W) + b
    return y


def pool_loops(x, size, stride, op):
    """y[n,c,i,j] = max or mean of x[n,c,i·sh+u,j·sw+v] over the window, plain loops."""
    n_, c_, h, w = x.shape
    (kh, kw), (sh, sw) = size, stride
    oh, ow = n_positions(h, kh, sh), n_positions(w, kw, sw)
    y = np.zeros((n_, c_, oh, ow))
    for n in range(n_):
        for c in range(c_):
            for i in range(oh):
                for j in range(ow):
                    vals = [x[n, c, i * sh + u, j * sw + v] for u in range(kh) for v in range(kw)]
                    y[n, c, i, j] = max(vals) if op == "max" else sum(vals) / len(vals)
    return y


def maxpool_grad_loops(x, dy, size, stride):
    """Each window's dy goes to its first maximum in row-major window order."""
    (kh, kw), (sh, sw) = size, stride
    dx = np.zeros_like(x)
    n_, c_, oh, ow = dy.shape
    for n in range(n_):
        for c in range(c_):
            for i in range(oh):
                for j in range(ow):
                    best = None
                    for u in range(kh):
                        for v in range(kw):
                            val = x[n, c, i * sh + u, j * sw + v]
                            if best is None or val > best[0]:  # strictly greater: ties keep the first
                                best = (val, u, v)
                    dx[n, c, i * sh + best[1], j * sw + best[2]] += dy[n, c, i, j]
    return dx


# -- Conv2D configurations ------------------------------------------------------------
# (id, N, C, H, W, F, kernel, stride, padding, explicit pads ((top, bottom), (left, right)))
# The explicit pads are written out by hand, not computed by the library.
CONV_CONFIGS = [
    ("batch1_C1", 1, 1, 5, 5, 2, 3, 1, 0, ((0, 0), (0, 0))),
    ("odd_sizes_pad1", 3, 3, 5, 7, 4, 3, 1, 1, ((1, 1), (1, 1))),
    ("k3_stride2_pad1", 2, 2, 7, 7, 3, 3, 2, 1, ((1, 1), (1, 1))),
    ("k4_stride2_pad2", 2, 2, 6, 5, 2, 4, 2, 2, ((2, 2), (2, 2))),
    ("nonsquare_7x9_k2x3", 2, 2, 7, 9, 3, (2, 3), 1, 0, ((0, 0), (0, 0))),
    ("k3x2_stride2x3_pad1x2", 1, 3, 7, 9, 2, (3, 2), (2, 3), (1, 2), ((1, 1), (2, 2))),
    ("pad_pair_1_2", 2, 1, 5, 6, 2, 3, 1, (1, 2), ((1, 1), (2, 2))),
    ("same_k4", 2, 2, 6, 7, 2, 4, 1, "same", ((1, 2), (1, 2))),
    ("same_k2x3", 1, 2, 5, 4, 3, (2, 3), 1, "same", ((0, 1), (1, 1))),
    ("same_k3", 2, 1, 5, 5, 2, 3, 1, "same", ((1, 1), (1, 1))),
    ("kernel_is_whole_input", 2, 2, 3, 4, 2, (3, 4), 1, 0, ((0, 0), (0, 0))),
    ("kernel_bigger_than_input_pad1", 1, 1, 2, 2, 2, 3, 1, 1, ((1, 1), (1, 1))),
    ("pointwise_1x1", 2, 4, 4, 3, 3, 1, 1, 0, ((0, 0), (0, 0))),
    ("stride3_gaps", 2, 2, 8, 7, 2, 2, 3, 0, ((0, 0), (0, 0))),
]
CONV_IDS = [c[0] for c in CONV_CONFIGS]


def make_conv(config, impl, seed=0):
    """A built float64 layer with non-zero biases, its input, and (stride pair, explicit pads)."""
    _, n, c, h, w, f, kernel, stride, padding, pads = config
    layer = built(Conv2D(f, kernel, stride=stride, padding=padding, impl=impl), (c, h, w), seed)
    layer.b.data[...] = randn(f, seed + 1)
    x = randn((n, c, h, w), seed + 2)
    s = (stride, stride) if np.isscalar(stride) else tuple(stride)
    return layer, x, s, pads


def twin(layer, config, impl):
    """A layer of the same configuration in implementation ``impl``, with ``layer``'s weights."""
    other = make_conv(config, impl, seed=123)[0]
    assert not np.allclose(other.W.data, layer.W.data)  # the copy below is what makes them equal
    other.W.data[...] = layer.W.data
    other.b.data[...] = layer.b.data
    return other


# -- 1. finite differences ---------------------------------------------------------
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("config", CONV_CONFIGS, ids=CONV_IDS)
def test_conv_gradients(config, impl):
    layer, x, _, _ = make_conv(config, impl)
    assert_all_small(gradcheck.check_layer(layer, x), {"input", "W", "b"})


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("config", [CONV_CONFIGS[3], CONV_CONFIGS[5], CONV_CONFIGS[7]], ids=lambda c: c[0])
def test_conv_gradients_hand_rolled(config, impl):
    """The backward against central differences of the reference forward (not of the layer's own)."""
    layer, x, stride, pads = make_conv(config, impl)
    W0, b0 = layer.W.data.copy(), layer.b.data.copy()
    y = layer.forward(x, training=True)
    R = randn(y.shape, 7)
    dx = layer.backward(R)

    def loss(x_, W_, b_):
        return float(np.sum(conv_einsum(x_, W_, b_, stride, pads) * R))

    assert dx.shape == x.shape and layer.W.grad.shape == W0.shape and layer.b.grad.shape == b0.shape
    assert rel_err(dx, central_difference(lambda v: loss(v, W0, b0), x)) < TOL
    assert rel_err(layer.W.grad, central_difference(lambda v: loss(x, v, b0), W0)) < TOL
    assert rel_err(layer.b.grad, central_difference(lambda v: loss(x, W0, v), b0)) < TOL


@pytest.mark.parametrize("impl", IMPLS)
def test_conv_without_input_grad_still_fills_parameter_grads(impl):
    config = CONV_CONFIGS[2]  # 3x3 stride 2 pad 1
    layer, x, stride, pads = make_conv(config, impl)
    layer.needs_input_grad = False
    W0, b0 = layer.W.data.copy(), layer.b.data.copy()
    y = layer.forward(x, training=True)
    R = randn(y.shape, 8)
    layer.W.grad[...] = np.nan  # stale values must be replaced, not added to
    layer.b.grad[...] = np.nan
    assert layer.backward(R) is None
    loss = lambda W_, b_: float(np.sum(conv_einsum(x, W_, b_, stride, pads) * R))
    assert rel_err(layer.W.grad, central_difference(lambda v: loss(v, b0), W0)) < TOL
    assert rel_err(layer.b.grad, central_difference(lambda v: loss(W0, v), b0)) < TOL
    # b's gradient is Σ_{n,i,j} R[n, f, i, j], whatever the weights
    np.testing.assert_allclose(layer.b.grad, R.sum(axis=(0, 2, 3)), rtol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_conv_gradient_check_catches_a_wrong_backward(impl):
    """The same check must fail for a backward that is slightly off (here: dx scaled)."""

    class Off(Conv2D):
        def backward(self, dy):
            dx = super().backward(dy)
            return dx * 1.001

    layer, x, _, _ = make_conv(CONV_CONFIGS[2], impl)
    bad = built(Off(layer.filters, layer.kernel, stride=layer.stride, padding=1, impl=impl),
                layer.input_shape)
    bad.b.data[...] = layer.b.data
    errors = gradcheck.check_layer(bad, x)
    assert errors["input"] > 1e-4 and errors["W"] < TOL


# -- 2. fast and naive agree -------------------------------------------------------
AGREE_CONFIGS = [CONV_CONFIGS[i] for i in (1, 3, 5, 7, 8, 12, 13)]


def _run(layer, x, dy):
    y = layer.forward(x, training=True)
    dx = layer.backward(dy)
    return y, dx, layer.W.grad.copy(), layer.b.grad.copy()


def _assert_same(a, b):
    for got, want in zip(a, b):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("config", AGREE_CONFIGS, ids=lambda c: c[0])
def test_conv_fast_and_naive_agree(config):
    fast, x, _, _ = make_conv(config, "fast")
    naive = twin(fast, config, "naive")
    dy = randn((x.shape[0],) + fast.output_shape, 9)
    _assert_same(_run(fast, x, dy), _run(naive, x, dy))


@pytest.mark.parametrize("layout", ["channels_last_x", "strided_x", "strided_dy", "channels_last_dy", "all"])
@pytest.mark.parametrize("config", [CONV_CONFIGS[i] for i in (2, 5, 7, 12)], ids=lambda c: c[0])
def test_conv_fast_on_non_contiguous_arrays(config, layout):
    fast, x, _, _ = make_conv(config, "fast")
    naive = twin(fast, config, "naive")
    dy = randn((x.shape[0],) + fast.output_shape, 10)
    want = _run(naive, x.copy(), dy.copy())
    x_in, dy_in = x, dy
    if layout in ("channels_last_x", "all"):
        x_in = channels_last(x)
    if layout == "strided_x":
        x_in = strided(x, 11)
    if layout in ("strided_dy", "all"):
        dy_in = strided(dy, 12)
    if layout == "channels_last_dy":
        dy_in = channels_last(dy)
    x_before, dy_before = x_in.copy(), dy_in.copy()
    _assert_same(_run(fast, x_in, dy_in), want)
    # and the inputs are left as they were
    np.testing.assert_array_equal(x_in, x_before)
    np.testing.assert_array_equal(dy_in, dy_before)


def test_conv_backward_twice_gives_same_gradients():
    """Gradients are set, not accumulated, by each backward."""
    for impl in IMPLS:
        layer, x, _, _ = make_conv(CONV_CONFIGS[1], impl)
        dy = randn((x.shape[0],) + layer.output_shape, 13)
        first = _run(layer, x, dy)
        _assert_same(_run(layer, x, dy), first)


# -- 3. the independent reference and the output shape --------------------------------
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("config", CONV_CONFIGS, ids=CONV_IDS)
def test_conv_forward_matches_loop_reference(config, impl):
    layer, x, stride, pads = make_conv(config, impl)
    want = conv_loops(x, layer.W.data, layer.b.data, stride, pads)
    got = layer.forward(x)
    assert got.shape == want.shape == (x.shape[0],) + layer.output_shape
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_references_agree():
    """The two references (plain loops, one einsum per position) compute the same thing."""
    for config in CONV_CONFIGS[:8]:
        layer, x, stride, pads = make_conv(config, "naive")
        W, b = layer.W.data, layer.b.data
        np.testing.assert_allclose(conv_einsum(x, W, b, stride, pads), conv_loops(x, W, b, stride, pads),
                                   rtol=1e-12, atol=1e-12)


def test_conv_known_values():
    """A hand-worked example: 1 channel, 3x3 input, 2x2 kernel, stride 1, pad 0."""
    layer = built(Conv2D(1, 2), (1, 3, 3))
    layer.W.data[...] = [[[[1.0, 2.0], [3.0, 4.0]]]]
    layer.b.data[...] = 0.5
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    # [0 1 2; 3 4 5; 6 7 8] ⋆ [1 2; 3 4]: top-left = 0 + 2 + 9 + 16 = 27, then +10 per column, +30 per row
    want = np.array([[[[27.5, 37.5], [57.5, 67.5]]]])
    for impl in IMPLS:
        layer.impl = impl
        np.testing.assert_allclose(layer.forward(x), want, rtol=0, atol=1e-12)
        dx = layer.backward(np.ones((1, 1, 2, 2)))
        # each input pixel gets the sum of the kernel entries that touch it
        np.testing.assert_allclose(dx, [[[[1, 3, 2], [4, 10, 6], [3, 7, 4]]]], atol=1e-12)
        np.testing.assert_allclose(layer.W.grad, [[[[8, 12], [20, 24]]]], atol=1e-12)
        np.testing.assert_allclose(layer.b.grad, [4.0], atol=1e-12)


@pytest.mark.parametrize("config", CONV_CONFIGS, ids=CONV_IDS)
def test_conv_output_shape_formula(config):
    _, _, c, h, w, f, kernel, stride, padding, ((pt, pb), (pl, pr)) = config
    kh, kw = (kernel, kernel) if np.isscalar(kernel) else kernel
    sh, sw = (stride, stride) if np.isscalar(stride) else stride
    layer = built(Conv2D(f, kernel, stride=stride, padding=padding), (c, h, w))
    oh, ow = (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1
    assert layer.output_shape == (f, oh, ow)
    assert (oh, ow) == (n_positions(h + pt + pb, kh, sh), n_positions(w + pl + pr, kw, sw))


@pytest.mark.parametrize("f,c,h,w,kernel,stride,padding,expected", [
    (4, 3, 28, 28, 5, 1, 0, (4, 24, 24)),
    (4, 3, 28, 28, 3, 2, 1, (4, 14, 14)),
    (2, 1, 7, 9, (2, 3), 1, 0, (2, 6, 7)),
    (2, 1, 7, 9, 4, 2, 2, (2, 4, 5)),
    (2, 1, 7, 9, 3, 2, 0, (2, 3, 4)),
    (2, 1, 5, 6, 3, 1, (1, 2), (2, 5, 8)),
    (3, 2, 6, 7, 4, 1, "same", (3, 6, 7)),
    (3, 2, 6, 7, 3, 3, "valid", (3, 2, 2)),
])
def test_conv_output_shape_known_values(f, c, h, w, kernel, stride, padding, expected):
    assert built(Conv2D(f, kernel, stride=stride, padding=padding), (c, h, w)).output_shape == expected


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 5, (2, 3), (4, 1), (3, 6)], ids=str)
def test_same_padding_keeps_size_and_pads_bottom_right(kernel, impl):
    kh, kw = (kernel, kernel) if np.isscalar(kernel) else kernel
    c, h, w = 2, 5, 6
    layer = built(Conv2D(3, kernel, padding="same", impl=impl), (c, h, w))
    layer.b.data[...] = randn(3, 14)
    assert layer.output_shape == (3, h, w)
    pads = (((kh - 1) // 2, kh - 1 - (kh - 1) // 2), ((kw - 1) // 2, kw - 1 - (kw - 1) // 2))
    x = randn((2, c, h, w), 15)
    want = conv_einsum(x, layer.W.data, layer.b.data, (1, 1), pads)
    np.testing.assert_allclose(layer.forward(x), want, rtol=1e-10, atol=1e-10)
    if kh % 2 == 0 and kh > 1:
        # the extra row goes at the bottom: padding it at the top instead gives a different answer
        wrong = ((pads[0][1], pads[0][0]), pads[1])
        assert not np.allclose(layer.forward(x), conv_einsum(x, layer.W.data, layer.b.data, (1, 1), wrong))


# -- 4. pooling ------------------------------------------------------------------
# (size, stride) on 7x8 inputs: tiling, overlapping, stride 1, gaps, leftovers.
POOL_CASES = [(2, 2), (3, 2), (2, 1), (2, 3), (3, 3), ((2, 3), (2, 1)), ((3, 1), (1, 3))]
POOL_IDS = [f"size{s}_stride{t}" for s, t in POOL_CASES]
POOL_TYPES = {"max": MaxPool2D, "avg": AvgPool2D}


def as_pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


def make_pool(kind, size, stride, impl, c=2, h=7, w=8):
    return built(POOL_TYPES[kind](size, stride, impl=impl), (c, h, w))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("size,stride", POOL_CASES, ids=POOL_IDS)
def test_pool_gradients(size, stride, kind, impl):
    layer = make_pool(kind, size, stride, impl)
    x = randn((2, 2, 7, 8), 20)  # distinct values: max pooling is differentiable there
    assert len(np.unique(x)) == x.size
    assert_all_small(gradcheck.check_layer(layer, x), {"input"})


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("size,stride", POOL_CASES, ids=POOL_IDS)
def test_pool_forward_matches_reference(size, stride, kind, impl):
    layer = make_pool(kind, size, stride, impl)
    x = randn((2, 2, 7, 8), 21)
    want = pool_loops(x, as_pair(size), as_pair(stride), kind)
    assert layer.output_shape == want.shape[1:]
    np.testing.assert_allclose(layer.forward(x), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("size,stride,expected", [
    (2, 2, (3, 4)), (3, 2, (3, 3)), (2, 1, (6, 7)), (2, 3, (2, 3)), (3, 3, (2, 2)),
    ((2, 3), (2, 1), (3, 6)), ((3, 1), (1, 3), (5, 3)), (2, None, (3, 4)), (3, None, (2, 2)),
])
def test_pool_output_shape(size, stride, expected):
    for kind in POOL_TYPES:
        assert make_pool(kind, size, stride, "fast", c=3).output_shape == (3,) + expected


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("size,stride", POOL_CASES, ids=POOL_IDS)
def test_pool_backward_matches_reference_and_skips_leftovers(size, stride, kind, impl):
    (kh, kw), (sh, sw) = as_pair(size), as_pair(stride)
    layer = make_pool(kind, size, stride, impl)
    x = randn((2, 2, 7, 8), 22)
    layer.forward(x, training=True)
    dy = randn((2,) + layer.output_shape, 23)
    dx = layer.backward(dy)
    if kind == "max":
        want = maxpool_grad_loops(x, dy, (kh, kw), (sh, sw))
    else:
        want = np.zeros_like(x)
        for i in range(dy.shape[2]):
            for j in range(dy.shape[3]):
                want[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw] += dy[:, :, i, j, None, None] / (kh * kw)
    np.testing.assert_allclose(dx, want, rtol=1e-12, atol=1e-12)
    # pixels in no window (gaps, leftover rows/columns) get exactly zero
    covered = np.zeros((7, 8), bool)
    for i in range(dy.shape[2]):
        for j in range(dy.shape[3]):
            covered[i * sh:i * sh + kh, j * sw:j * sw + kw] = True
    assert (dx[:, :, ~covered] == 0).all()


def test_pool_cases_include_leftovers_and_gaps():
    """The cases above must really leave rows/columns unpooled and really overlap."""
    leftovers = overlaps = 0
    for size, stride in POOL_CASES:
        (kh, kw), (sh, sw) = as_pair(size), as_pair(stride)
        oh, ow = n_positions(7, kh, sh), n_positions(8, kw, sw)
        leftovers += (oh - 1) * sh + kh < 7 or (ow - 1) * sw + kw < 8 or sh > kh or sw > kw
        overlaps += sh < kh or sw < kw
    assert leftovers >= 3 and overlaps >= 3


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("size,stride", POOL_CASES, ids=POOL_IDS)
def test_pool_fast_and_naive_agree(size, stride, kind):
    fast, naive = make_pool(kind, size, stride, "fast"), make_pool(kind, size, stride, "naive")
    x = randn((3, 2, 7, 8), 24)
    dy = randn((3,) + fast.output_shape, 25)
    y_n, dx_n = naive.forward(x.copy(), True), naive.backward(dy.copy())
    for x_in, dy_in in [(x, dy), (channels_last(x), dy), (x, strided(dy, 26)),
                        (channels_last(x), channels_last(dy)), (strided(x, 27), strided(dy, 28))]:
        y_f = fast.forward(x_in, True)
        dx_f = fast.backward(dy_in)
        assert y_f.shape == y_n.shape and dx_f.shape == dx_n.shape == x.shape
        np.testing.assert_allclose(y_f, y_n, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dx_f, dx_n, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("size,stride", POOL_CASES, ids=POOL_IDS)
def test_maxpool_all_equal_input_sends_gradient_to_first_of_each_window(size, stride, impl):
    (kh, kw), (sh, sw) = as_pair(size), as_pair(stride)
    layer = make_pool("max", size, stride, impl)
    x = np.full((2, 2, 7, 8), 1.5)
    y = layer.forward(x, training=True)
    np.testing.assert_array_equal(y, np.full((2,) + layer.output_shape, 1.5))
    dy = np.random.default_rng(29).integers(1, 10, y.shape).astype(np.float64)  # non-zero, exact sums
    dx = layer.backward(dy)
    want = np.zeros_like(x)
    for i in range(y.shape[2]):
        for j in range(y.shape[3]):
            want[:, :, i * sh, j * sw] += dy[:, :, i, j]  # the top-left of every window
    np.testing.assert_array_equal(dx, want)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("size,stride", POOL_CASES, ids=POOL_IDS)
def test_maxpool_ties_go_to_exactly_one_input_per_window(size, stride, impl):
    (kh, kw), (sh, sw) = as_pair(size), as_pair(stride)
    rng = np.random.default_rng(30)
    x = rng.integers(0, 3, (3, 2, 7, 8)).astype(np.float64)  # many ties
    layer = make_pool("max", size, stride, impl)
    y = layer.forward(x, training=True)
    dy = rng.integers(1, 10, y.shape).astype(np.float64)
    dx = layer.backward(dy)
    np.testing.assert_array_equal(dx, maxpool_grad_loops(x, dy, (kh, kw), (sh, sw)))
    # every window sent its whole dy to one input holding the max: Σ dx over the
    # chosen positions accounts for Σ dy, and nothing else gets anything
    assert dx.sum() == dy.sum()
    if sh >= kh and sw >= kw:  # windows do not overlap: check window by window
        for i in range(y.shape[2]):
            for j in range(y.shape[3]):
                win = dx[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].reshape(3, 2, -1)
                np.testing.assert_array_equal(win.sum(axis=2), dy[:, :, i, j])
                assert ((win != 0).sum(axis=2) == 1).all()
                xw = x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].reshape(3, 2, -1)
                # the chosen one is the first maximum in row-major window order
                first = np.array([[next(k for k in range(kh * kw) if xw[a, b, k] == xw[a, b].max())
                                   for b in range(2)] for a in range(3)])
                np.testing.assert_array_equal(np.argmax(win != 0, axis=2), first)
    # ties really happened
    windows_with_ties = sum(
        (x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].reshape(3, 2, -1)
         == y[:, :, i, j, None]).sum(axis=2).__gt__(1).sum()
        for i in range(y.shape[2]) for j in range(y.shape[3]))
    assert windows_with_ties > 0


@pytest.mark.parametrize("impl", IMPLS)
def test_maxpool_overlapping_windows_accumulate(impl):
    """A pixel that is the max of two overlapping windows gets both gradients."""
    layer = make_pool("max", 3, 2, impl, c=1, h=5, w=5)  # 2x2 windows overlapping on row/col 2
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 9.0  # in all four windows
    layer.forward(x, training=True)
    dy = np.array([[[[1.0, 2.0], [4.0, 8.0]]]])
    dx = layer.backward(dy)
    assert dx[0, 0, 2, 2] == 15.0 and dx.sum() == 15.0


@pytest.mark.parametrize("impl", IMPLS)
def test_avgpool_known_values(impl):
    layer = make_pool("avg", 2, 2, impl, c=1, h=3, w=4)
    x = np.arange(12.0).reshape(1, 1, 3, 4)
    np.testing.assert_allclose(layer.forward(x), [[[[2.5, 4.5]]]], atol=1e-12)  # row 2 left over
    dx = layer.backward(np.array([[[[4.0, 8.0]]]]))
    np.testing.assert_allclose(dx, [[[[1, 1, 2, 2], [1, 1, 2, 2], [0, 0, 0, 0]]]], atol=1e-12)


def test_maxpool_fast_large_window():
    layer = make_pool("max", 17, None, "fast", c=1, h=17, w=17)
    x = randn((2, 1, 17, 17), 31)
    y = layer.forward(x, training=True)
    np.testing.assert_array_equal(y[:, :, 0, 0], x.max(axis=(2, 3)))
    dx = layer.backward(np.ones_like(y))
    np.testing.assert_array_equal(dx, (x == x.max(axis=(2, 3), keepdims=True)).astype(float))


@pytest.mark.parametrize("impl", IMPLS)
def test_layers_reject_integer_input_instead_of_truncating(impl):
    # integer means would truncate; layers take floating-point arrays (a Network casts for you)
    layer = make_pool("avg", 2, 2, impl, c=1, h=2, w=2)
    with pytest.raises(ValueError, match="floating-point"):
        layer.forward(np.array([[[[1, 2], [3, 4]]]]))


# -- 5. Flatten ------------------------------------------------------------------
@pytest.mark.parametrize("memory", ["contiguous", "channels_last", "strided"])
def test_flatten_is_chw_order(memory):
    n, c, h, w = 2, 3, 4, 5
    layer = built(Flatten(), (c, h, w))
    assert layer.output_shape == (c * h * w,)
    x = randn((n, c, h, w), 32)
    x_in = {"contiguous": x, "channels_last": channels_last(x), "strided": strided(x, 33)}[memory]
    y = layer.forward(x_in, training=True)
    assert y.shape == (n, c * h * w)
    dy = randn((n, c * h * w), 34)
    dx = layer.backward(dy)
    assert dx.shape == (n, c, h, w)
    for a in range(n):
        for ch in range(c):
            for r in range(h):
                for col in range(w):
                    k = ch * h * w + r * w + col
                    assert y[a, k] == x[a, ch, r, col]
                    assert dx[a, ch, r, col] == dy[a, k]


def test_flatten_after_conv_matches_pytorch_order():
    """A conv output (channels-last in memory) flattens channel by channel, not pixel by pixel."""
    conv = built(Conv2D(3, 2, impl="fast"), (2, 4, 4))
    flat = built(Flatten(), conv.output_shape)
    x = randn((2, 2, 4, 4), 35)
    y = conv.forward(x)
    f = flat.forward(y)
    np.testing.assert_array_equal(f[:, :9], np.asarray(y)[:, 0].reshape(2, 9))  # channel 0 first
    np.testing.assert_array_equal(f[:, 9:18], np.asarray(y)[:, 1].reshape(2, 9))


# -- 6. errors -------------------------------------------------------------------
@pytest.mark.parametrize("impl", IMPLS)
def test_conv_wrong_channels_names_layer_and_shapes(impl):
    net = Network((3, 8, 8), dtype=np.float64)
    conv = net.add_conv_layer(4, 3, impl=impl)
    with pytest.raises(ValueError, match=r"conv1.*\(N, 3, 8, 8\).*\(2, 2, 8, 8\)"):
        conv.forward(np.zeros((2, 2, 8, 8)))
    with pytest.raises(ValueError, match=r"conv1.*\(N, 3, 8, 8\).*\(2, 2, 8, 8\)"):
        net.forward(np.zeros((2, 2, 8, 8)))


@pytest.mark.parametrize("impl", IMPLS)
def test_wrong_spatial_size_names_layer_and_shapes(impl):
    net = Network((1, 8, 8), dtype=np.float64)
    net.add_conv_layer(4, 3, impl=impl)
    conv2 = net.add_conv_layer(2, 3, impl=impl)
    pool = net.add_maxpool_layer(2, impl=impl)
    avg = net.add_avgpool_layer(2, impl=impl)
    flat = net.add_flatten_layer()
    with pytest.raises(ValueError, match=r"conv2.*\(N, 4, 6, 6\).*\(2, 4, 7, 6\)"):
        conv2.forward(np.zeros((2, 4, 7, 6)))
    with pytest.raises(ValueError, match=r"conv2.*\(N, 4, 6, 6\).*\(4, 6, 6\)"):
        conv2.forward(np.zeros((4, 6, 6)))  # batch axis missing
    with pytest.raises(ValueError, match=r"maxpool1.*\(N, 2, 4, 4\).*\(2, 2, 4, 5\)"):
        pool.forward(np.zeros((2, 2, 4, 5)))
    with pytest.raises(ValueError, match=r"avgpool1.*\(N, 2, 2, 2\).*\(2, 2, 3, 2\)"):
        avg.forward(np.zeros((2, 2, 3, 2)))
    with pytest.raises(ValueError, match=r"flatten1.*\(N, 2, 1, 1\).*\(2, 2, 1, 2\)"):
        flat.forward(np.zeros((2, 2, 1, 2)))
    with pytest.raises(ValueError, match=r"conv1.*\(N, 1, 8, 8\).*\(2, 1, 8, 9\)"):
        net.forward(np.zeros((2, 1, 8, 9)))


@pytest.mark.parametrize("kernel,padding,shape", [
    (3, 0, (1, 2, 2)), (5, 1, (1, 2, 2)), ((1, 5), 0, (2, 4, 4)), ((3, 2), (0, 0), (1, 2, 9)),
])
def test_kernel_larger_than_padded_input_fails_at_build(kernel, padding, shape):
    net = Network(shape)
    c, h, w = shape
    with pytest.raises(ValueError, match=rf"conv1.*\(N, {c}, {h}, {w}\)"):
        net.add_conv_layer(4, kernel, padding=padding)
    assert net.layers == []


def test_kernel_larger_than_input_error_names_kernel_and_padded_size():
    with pytest.raises(ValueError, match=r"conv1 \(Conv2D\).*3x3.*\(N, 1, 2, 2\).*2x2"):
        Network((1, 2, 2)).add_conv_layer(4, 3)


def test_kernel_fits_once_padded():
    net = Network((1, 2, 2))
    assert net.add_conv_layer(4, 3, padding=1).output_shape == (4, 2, 2)
    assert Network((1, 4, 4)).add_conv_layer(2, (4, 1)).output_shape == (2, 1, 4)


@pytest.mark.parametrize("stride", [2, (1, 2), (2, 1)])
def test_same_padding_with_stride_fails(stride):
    with pytest.raises(ValueError, match="same"):
        Conv2D(4, 3, stride=stride, padding="same")
    with pytest.raises(ValueError, match="same"):
        Network((1, 8, 8)).add_conv_layer(4, 3, stride=stride, padding="same")


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("size,shape", [(3, (1, 2, 2)), ((1, 3), (2, 2, 2)), ((5, 2), (1, 4, 9))])
def test_pool_window_larger_than_input_fails(kind, size, shape):
    net = Network(shape)
    add = net.add_maxpool_layer if kind == "max" else net.add_avgpool_layer
    c, h, w = shape
    with pytest.raises(ValueError, match=rf"{kind}pool1.*\(N, {c}, {h}, {w}\)"):
        add(size)


@pytest.mark.parametrize("kwargs,what", [
    (dict(filters=0), "filters"), (dict(filters=-2), "filters"), (dict(filters=2.5), "filters"),
    (dict(kernel_size=0), "kernel_size"), (dict(kernel_size=-3), "kernel_size"),
    (dict(kernel_size=2.5), "kernel_size"), (dict(kernel_size=(3,)), "kernel_size"),
    (dict(kernel_size=(3, 3, 3)), "kernel_size"), (dict(kernel_size=(0, 3)), "kernel_size"),
    (dict(stride=0), "stride"), (dict(stride=-1), "stride"), (dict(stride=1.5), "stride"),
    (dict(stride=(1, 0)), "stride"),
    (dict(padding=-1), "padding"), (dict(padding=(1, -1)), "padding"), (dict(padding=1.5), "padding"),
    (dict(padding=(1, 2, 3)), "padding"),
    (dict(impl="gpu"), "impl"),
])
def test_conv_invalid_arguments(kwargs, what):
    args = dict(filters=2, kernel_size=3)
    args.update(kwargs)
    with pytest.raises(ValueError, match=what):
        Conv2D(**args)


def test_conv_unknown_padding_string_names_padding():
    with pytest.raises(ValueError, match="padding"):
        Conv2D(2, 3, padding="full")


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("kwargs,what", [
    (dict(size=0), "size"), (dict(size=1.5), "size"), (dict(size=(2, 2, 2)), "size"),
    (dict(stride=0), "stride"), (dict(stride=(2, -1)), "stride"), (dict(impl="loop"), "impl"),
])
def test_pool_invalid_arguments(kind, kwargs, what):
    with pytest.raises(ValueError, match=what):
        POOL_TYPES[kind](**kwargs)


def test_conv_on_flat_input_fails():
    with pytest.raises(ValueError, match=r"conv1.*images"):
        Network(5).add_conv_layer(2, 1)
    with pytest.raises(ValueError, match=r"maxpool1.*images"):
        Network((3, 4)).add_maxpool_layer(2)


# -- 7. in a network ---------------------------------------------------------------
def tiny_cnn(dtype=np.float64, seed=0):
    net = Network((2, 9, 9), seed=seed, dtype=dtype)
    net.add_conv_layer(4, 3, padding=1)                # (4, 9, 9)
    net.add_relu_layer()
    net.add_maxpool_layer(2)                           # (4, 4, 4)
    net.add_conv_layer(6, 3, stride=2, padding=1)      # (6, 2, 2)
    net.add_relu_layer()
    net.add_avgpool_layer(2)                           # (6, 1, 1)
    net.add_flatten_layer()                            # (6,)
    net.add_fc_layer(3)
    net.add_softmax_layer()
    return net


def test_tiny_cnn_check_gradients():
    net = tiny_cnn()
    rng = np.random.default_rng(41)
    for layer in net.layers:  # non-zero biases, so the check is not degenerate
        if hasattr(layer, "b"):
            layer.b.data[...] = 0.1 * rng.standard_normal(layer.b.data.shape)
    # conv1's bias lifts most of relu1's outputs above 0, so no max-pool window is all zeros
    net.layers[0].b.data += 1.5
    X = rng.standard_normal((4, 2, 9, 9))
    y = rng.integers(0, 3, 4)
    # Max pooling is not differentiable at ties; a window of ReLU zeros is one. Make sure there is none.
    a = net.layers[1].forward(net.layers[0].forward(X))
    win = a[:, :, :8, :8].reshape(4, 4, 4, 2, 4, 2).transpose(0, 1, 2, 4, 3, 5).reshape(4, 4, 4, 4, 4)
    assert ((win == win.max(axis=-1, keepdims=True)).sum(axis=-1) == 1).all()
    rows = net.check_gradients(X, y, verbose=False)
    checked = {(r["layer"], r["what"]) for r in rows}
    assert {("conv1", "input"), ("conv1", "W"), ("conv1", "b"), ("maxpool1", "input"), ("conv2", "W"),
            ("avgpool1", "input"), ("flatten1", "input"), ("fc1", "W")} <= checked
    assert_rows_small(rows)


def test_tiny_cnn_summary_and_weight_layout():
    net = tiny_cnn(dtype=np.float32)
    conv1, conv2, fc = net.layers[0], net.layers[3], net.layers[7]
    assert conv1.W.data.shape == (4, 2, 3, 3) and conv1.b.data.shape == (4,)
    assert conv2.W.data.shape == (6, 4, 3, 3) and conv2.b.data.shape == (6,)
    assert fc.W.data.shape == (3, 6)
    assert conv1.W.data.dtype == np.float32
    lines = {line.split()[0]: line for line in net.summary().splitlines()[2:-2]}
    expected = {"input": ("(N, 2, 9, 9)", "0"), "conv1": ("(N, 4, 9, 9)", "76"),
                "relu1": ("(N, 4, 9, 9)", "0"),
                "maxpool1": ("(N, 4, 4, 4)", "0"), "conv2": ("(N, 6, 2, 2)", "222"),
                "relu2": ("(N, 6, 2, 2)", "0"), "avgpool1": ("(N, 6, 1, 1)", "0"),
                "flatten1": ("(N, 6)", "0"), "fc1": ("(N, 3)", "21"), "softmax1": ("(N, 3)", "0")}
    assert set(lines) == set(expected)
    for name, (shape, params) in expected.items():
        assert shape in lines[name], lines[name]
        assert params in lines[name].split(), lines[name]
    assert "total: 319 parameters" in net.summary()


def test_conv_weights_are_pytorch_layout():
    """W[f, c, u, v]: filter, input channel, kernel row, kernel column. A one-hot weight
    picks one input channel shifted by (u, v)."""
    layer = built(Conv2D(2, (2, 3)), (3, 4, 5))
    assert layer.W.data.shape == (2, 3, 2, 3) and layer.b.data.shape == (2,)
    layer.W.data[...] = 0
    layer.W.data[1, 2, 1, 2] = 1.0  # filter 1 reads channel 2 at row offset 1, column offset 2
    x = randn((1, 3, 4, 5), 41)
    for impl in IMPLS:
        layer.impl = impl
        y = layer.forward(x)
        assert y.shape == (1, 2, 3, 3)
        np.testing.assert_array_equal(y[0, 0], 0)
        np.testing.assert_allclose(y[0, 1], x[0, 2, 1:4, 2:5], rtol=0, atol=1e-15)


def blob_images(n, seed):
    """8x8 images of noise with a bright 3x3 blob; the label is 0 for the left half, 1 for the right."""
    rng = np.random.default_rng(seed)
    X = 0.1 * rng.random((n, 1, 8, 8))
    y = rng.integers(0, 2, n)
    rows = rng.integers(0, 6, n)
    cols = np.where(y == 0, rng.integers(0, 2, n), rng.integers(4, 6, n))  # blob fully in its half
    for k in range(n):
        X[k, 0, rows[k]:rows[k] + 3, cols[k]:cols[k] + 3] += 1.0
    return X.astype(np.float32), y


def test_small_cnn_learns_blob_side():
    X, y = blob_images(400, 50)
    X_test, y_test = blob_images(200, 51)
    assert 0.3 < y.mean() < 0.7
    net = Network((1, 8, 8), seed=0)
    net.add_conv_layer(4, 3, padding=1)
    net.add_relu_layer()
    net.add_maxpool_layer(2)
    net.add_flatten_layer()
    net.add_fc_layer(2)
    net.add_softmax_layer()
    before = net.evaluate(X_test, y_test)["accuracy"]
    net.fit(X, y, epochs=5, batch_size=32, optimizer=Adam(lr=1e-2), verbose=0)
    after = net.evaluate(X_test, y_test)["accuracy"]
    assert before < 0.75 and after > 0.9, (before, after)


@pytest.mark.parametrize("h,w", [(8, 8), (7, 9), (26, 26)])
def test_maxpool_2x2_tournament_matches_naive_with_ties_on_even_and_odd_sizes(h, w):
    """The 2 x 2, stride 2 fast path (a tournament of pairs, uninitialized dx when
    the windows cover every pixel) against the naive loop, with many ties (ReLU-like
    zeros and repeated integers), for standard and channels-last inputs."""
    rng = np.random.default_rng(31)
    x = np.maximum(rng.integers(-2, 3, (3, 4, h, w)), 0).astype(np.float64)
    fast, naive = (built(MaxPool2D(2, impl=impl), (4, h, w)) for impl in ("fast", "naive"))
    assert fast._pairs()
    dy = randn((3,) + fast.output_shape, 32)
    y_n, dx_n = naive.forward(x, True), naive.backward(dy)
    for x_in in (x, channels_last(x)):
        np.testing.assert_array_equal(fast.forward(x_in, True), y_n)
        np.testing.assert_array_equal(fast.backward(dy), dx_n)


@pytest.mark.parametrize("few_channels", [0, 4], ids=["channels_last_unfold", "channels_first_unfold"])
@pytest.mark.parametrize("config", CONV_CONFIGS, ids=CONV_IDS)
def test_conv_both_unfolds_pass_gradients_and_agree_with_naive(config, few_channels, monkeypatch):
    """The fast path unfolds few-channel standard-layout inputs channel by channel and all
    others channels-last; every configuration here has C <= 4, so each is run both ways
    (FEW_CHANNELS = 0 forces the channels-last unfold) against finite differences and the naive loop."""
    monkeypatch.setattr(Conv2D, "FEW_CHANNELS", few_channels)
    fast, x, _, _ = make_conv(config, "fast")
    assert fast._unfolds_channels_first(x) == (few_channels > 0)
    assert_all_small(gradcheck.check_layer(fast, x), {"input", "W", "b"})
    naive = twin(fast, config, "naive")
    dy = randn((x.shape[0],) + fast.output_shape, 13)
    _assert_same(_run(fast, x, dy), _run(naive, x, dy))
