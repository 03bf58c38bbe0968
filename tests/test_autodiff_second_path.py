"""The second path: every layer's hand-written backward against autodiff.

For each layer the same forward computation is written again in autodiff
Tensor operations, from the equations the layer documents (PyTorch's, for the
recurrent layers) and with the layer's own parameter arrays. A scalar
``L = Σ y ⊙ R`` (R fixed, random) is run backward through autodiff, and the
layer's ``backward(R)`` — its ``dx`` and every ``p.grad`` (and the recurrent
layers' ``initial_state_grad``) — must agree to a norm-wise relative error of
1e-6 in float64. The forward values are compared too, so a test cannot pass by
differentiating some other function.

The costs are checked the same way on their own scalar value (their gradient
with respect to the prediction, and the fused ``(a - t)/N`` with respect to
the softmax / sigmoid input); whole networks are re-expressed in Tensor ops
layer by layer and compared after the network's own ``loss_gradient``.

Convolution is checked against ``ad.conv2d`` (which reuses the layer's
``windows`` view and a ``_col2im``-style scatter) AND against a version built
here from pad + strided slicing + stack + reshape + matmul; pooling against
``ad.max_pool2d`` / ``ad.avg_pool2d`` AND against stacked slices (or, for
non-overlapping windows, a reshape) reduced with ``max`` / ``mean``.

Run with ``-s`` to see the largest relative error per layer family.
"""
import numpy as np
import pytest
from reference import away_from_zero, built, randn, rel_err

from nnscratch import Network
from nnscratch import autodiff as ad
from nnscratch.autodiff import Tensor
from nnscratch.costs import BinaryCrossEntropy, CrossEntropy, Quadratic
from nnscratch.layers import (GRU, LSTM, RNN, AvgPool2D, BatchNorm, Conv2D, Dropout, Embedding, Flatten,
                              FullyConnected, LeakyReLU, MaxPool2D, ReLU, Sigmoid, Softmax, Tanh)

TOL = 1e-6
MAX_ERR = {}     # layer family -> largest relative error seen (printed at the end with -s)


@pytest.fixture(scope="module", autouse=True)
def _report_max_errors():
    yield
    if MAX_ERR:
        print("\nlargest relative error per family (hand-written vs autodiff):")
        for family, err in sorted(MAX_ERR.items()):
            print(f"  {family:12s} {err:.2e}")


def assert_close(family, errors):
    """Every error finite and below TOL; the largest one is recorded for ``family``."""
    for key, err in errors.items():
        assert np.isfinite(err) and err < TOL, f"{family} {key}: relative error {err:.3e} ({errors})"
    MAX_ERR[family] = max(MAX_ERR.get(family, 0.0), *errors.values())


def leaf(a):
    return Tensor(np.array(a, dtype=np.float64), requires_grad=True)


def ad_params(layer):
    """The layer's own parameter arrays as fresh autodiff leaves, by name."""
    return {p.name: leaf(p.data) for p in layer.parameters()}


def second_path(family, layer, x, ad_forward, *, training=False, seed=7, state0=None, zero_grads=()):
    """Compare ``layer``'s forward/backward with ``ad_forward(x_tensor, params, state0_tensors)``.

    ``L = Σ y ⊙ R``; returns the errors after asserting them. ``state0``: the
    recurrent layers' initial state (tuple of arrays), whose gradient is
    compared with ``layer.initial_state_grad``. ``zero_grads``: parameters whose
    gradient is exactly zero here (both ways); every other gradient must not be.
    """
    kwargs = {} if state0 is None else {"initial_state": state0 if len(state0) > 1 else state0[0]}
    x_before = np.array(x)
    y = np.array(layer.forward(x, training=training, **kwargs))
    R = randn(y.shape, seed)
    dy = R.copy()
    dx = layer.backward(dy)
    dx = None if dx is None else np.array(dx)
    grads = {p.name: np.array(p.grad) for p in layer.parameters()}
    # neither pass writes into its argument, and backward depends only on the cached forward
    np.testing.assert_array_equal(np.asarray(x), x_before)
    np.testing.assert_array_equal(dy, R)
    again = layer.backward(R.copy())
    if dx is not None:
        np.testing.assert_array_equal(np.asarray(again), dx)
    for p in layer.parameters():
        np.testing.assert_array_equal(p.grad, grads[p.name])

    differentiable = np.issubdtype(np.asarray(x).dtype, np.floating)
    xt = leaf(x) if differentiable else np.asarray(x)
    P = ad_params(layer)
    st = None if state0 is None else tuple(leaf(s) for s in state0)
    yt = ad_forward(xt, P, st) if state0 is not None else ad_forward(xt, P)
    assert yt.shape == y.shape
    (yt * R).sum().backward()

    errors = {"forward": rel_err(yt.data, y)}
    if differentiable:
        assert np.linalg.norm(xt.grad.data) > 0
        errors["input"] = rel_err(np.asarray(dx), xt.grad.data)
    for p in layer.parameters():
        if p.name in zero_grads:
            assert not P[p.name].grad.data.any() and not np.any(p.grad), p.name
        else:
            assert np.linalg.norm(P[p.name].grad.data) > 0, p.name
        errors[p.name] = rel_err(p.grad, P[p.name].grad.data)
    if st is not None:
        hand = layer.initial_state_grad
        hand = hand if isinstance(hand, tuple) else (hand,)
        assert len(hand) == len(st)
        for k, (h, s) in enumerate(zip(hand, st)):
            errors[f"state0[{k}]"] = rel_err(h, s.grad.data)
    assert_close(family, errors)
    return errors


# =============================================================================
# The forward computations, in Tensor ops, from the layers' documented equations
# =============================================================================
def ad_fully_connected(x, P):
    """y = x Wᵀ + b over the last axis ((N, D) or (N, T, D): matmul broadcasts W)."""
    return x @ P["W"].T + P["b"]


def ad_sigmoid(x):
    return 1.0 / (1.0 + ad.exp(-x))


def ad_tanh(x):
    return ad.tanh(x)


def ad_relu(x):
    return ad.where(x.data > 0, x, 0.0)


def ad_leaky_relu(x, slope):
    return ad.where(x.data > 0, x, slope * x)


def ad_softmax(x):
    e = ad.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def ad_batchnorm(x, P, layer, training):
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    shape = (1, -1) if x.ndim == 2 else (1, -1, 1, 1)
    if training:
        mu = x.mean(axis=axes, keepdims=True)
        var = ((x - mu) * (x - mu)).mean(axis=axes, keepdims=True)          # biased
    else:
        mu = Tensor(layer.running_mean.reshape(shape))
        var = Tensor(layer.running_var.reshape(shape))
    x_hat = (x - mu) / ad.sqrt(var + layer.eps)
    return x_hat * P["gamma"].reshape(shape) + P["beta"].reshape(shape)


def pad_widths(padding, kernel):
    """Zero padding ((top, bottom), (left, right)) from Conv2D's documented argument, written here:
    "same" puts k - 1 in total per axis, the odd one at the bottom/right (as PyTorch)."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        return tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel)
    ph, pw = (padding, padding) if np.isscalar(padding) else padding
    return (ph, ph), (pw, pw)


def offsets(xp, kernel, stride, out_hw):
    """Element (u, v) of every window, for each offset: a list of (N, C, OH, OW) strided slices."""
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    return [xp[:, :, u:u + sh * (oh - 1) + 1:sh, v:v + sw * (ow - 1) + 1:sw]
            for u in range(kh) for v in range(kw)]


def conv_from_primitives(x, W, b, stride, pads):
    """y[n,f,i,j] = b[f] + Σ_{c,u,v} W[f,c,u,v] x_p[n,c,i·s+u,j·s+v]: pad, slice, stack, reshape, matmul."""
    n, c, h, w = x.shape
    f, _, kh, kw = W.shape
    (pt, pb), (pl, pr) = pads
    sh, sw = stride
    oh, ow = (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1
    xp = ad.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    fields = ad.stack(offsets(xp, (kh, kw), stride, (oh, ow)), axis=2)          # (N, C, kh*kw, OH, OW)
    cols = fields.transpose(0, 3, 4, 1, 2).reshape(n * oh * ow, c * kh * kw)    # columns in (c, u, v) order
    out = cols @ W.reshape(f, c * kh * kw).T + b                                # (N*OH*OW, F)
    return out.reshape(n, oh, ow, f).transpose(0, 3, 1, 2)


def pool_from_slices(x, size, stride, reduce):
    """Stack the kh·kw offsets of every window on a new last axis and reduce it (max or mean)."""
    (kh, kw), (sh, sw) = size, stride
    oh, ow = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    stacked = ad.stack(offsets(x, size, stride, (oh, ow)), axis=-1)           # (N, C, OH, OW, kh*kw)
    return stacked.max(axis=-1) if reduce == "max" else stacked.mean(axis=-1)


def pool_by_reshape(x, size, reduce):
    """Non-overlapping windows (stride = size): crop, reshape to (N, C, OH, kh, OW, kw), reduce (3, 5)."""
    kh, kw = size
    n, c, h, w = x.shape
    oh, ow = h // kh, w // kw
    blocks = x[:, :, :oh * kh, :ow * kw].reshape(n, c, oh, kh, ow, kw)
    return blocks.max(axis=(3, 5)) if reduce == "max" else blocks.mean(axis=(3, 5))


def ad_recurrent(layer, x, P, state0):
    """The time loop from PyTorch's documented equations, gate blocks sliced out of the stacked weights."""
    H = layer.hidden

    def lin(k, inp, w, bias):                       # inp W_kᵀ + b_k for gate block k
        return inp @ P[w][k * H:(k + 1) * H].T + P[bias][k * H:(k + 1) * H]

    h = state0[0]
    c = state0[1] if isinstance(layer, LSTM) else None
    hs = []
    for t in range(x.shape[1]):
        xt = x[:, t]
        if isinstance(layer, LSTM):
            a = [lin(k, xt, "W_ih", "b_ih") + lin(k, h, "W_hh", "b_hh") for k in range(4)]
            i, f, g, o = ad.sigmoid(a[0]), ad.sigmoid(a[1]), ad.tanh(a[2]), ad.sigmoid(a[3])
            c = f * c + i * g
            h = o * ad.tanh(c)
        elif isinstance(layer, GRU):
            r = ad.sigmoid(lin(0, xt, "W_ih", "b_ih") + lin(0, h, "W_hh", "b_hh"))
            z = ad.sigmoid(lin(1, xt, "W_ih", "b_ih") + lin(1, h, "W_hh", "b_hh"))
            n = ad.tanh(lin(2, xt, "W_ih", "b_ih") + r * lin(2, h, "W_hh", "b_hh"))
            h = (1 - z) * n + z * h
        else:
            a = xt @ P["W_ih"].T + P["b_ih"] + h @ P["W_hh"].T + P["b_hh"]
            h = ad.tanh(a) if layer.activation == "tanh" else ad_relu(a)
        hs.append(h)
    return ad.stack(hs, axis=1) if layer.return_sequences else h


# =============================================================================
# Dense layer and activations
# =============================================================================
@pytest.mark.parametrize("shape", [(5, 7), (3, 4, 7), (1, 1, 7)], ids=["NxD", "NxTxD", "1x1xD"])
def test_fully_connected(shape):
    layer = built(FullyConnected(6), shape[1:])
    layer.b.data[...] = randn(6, 1)
    second_path("dense", layer, randn(shape, 2), ad_fully_connected)


ACTIVATIONS = {
    "sigmoid": (Sigmoid, lambda x, P: ad_sigmoid(x)),
    "tanh": (Tanh, lambda x, P: ad_tanh(x)),
    "relu": (ReLU, lambda x, P: ad_relu(x)),
    "leaky_relu": (lambda: LeakyReLU(0.2), lambda x, P: ad_leaky_relu(x, 0.2)),
    "softmax": (Softmax, lambda x, P: ad_softmax(x)),
    "softmax_ad_op": (Softmax, lambda x, P: ad.softmax(x, axis=-1)),
}


@pytest.mark.parametrize("name", list(ACTIVATIONS))
@pytest.mark.parametrize("shape", [(4, 6), (2, 3, 5)])
def test_activations(name, shape):
    make, forward = ACTIVATIONS[name]
    layer = built(make(), shape[1:])
    x = 3 * away_from_zero(shape, 3)                      # away from the kink of ReLU and LeakyReLU
    second_path("activations", layer, x, forward)


def test_softmax_large_logits():
    layer = built(Softmax(), (5,))
    x = randn((3, 5), 4) + np.array([[800.0], [-800.0], [0.0]])
    second_path("activations", layer, x, lambda x, P: ad_softmax(x))


# =============================================================================
# Costs: their value and gradient, and the fused gradients
# =============================================================================
def one_hot(labels, k):
    return np.eye(k)[labels]


def soft_targets(shape, seed):
    t = np.exp(randn(shape, seed))
    return t / t.sum(axis=-1, keepdims=True)


def ad_quadratic(a, t):
    rows = a.size // a.shape[-1]
    d = a - t
    return 0.5 * (d * d).sum() / rows


def ad_cross_entropy(a, t):
    return -(Tensor(t) * ad.log(a)).sum() / (a.size // a.shape[-1])


def ad_binary_cross_entropy(a, t):
    t = Tensor(t)
    return -(t * ad.log(a) + (1 - t) * ad.log(1 - a)).sum() / (a.size // a.shape[-1])


def cost_path(family, value, gradient, make_ad, a, t):
    """The cost's value and gradient (w.r.t. ``a``) against autodiff of ``make_ad(a_tensor, t)``."""
    at = leaf(a)
    loss = make_ad(at, t)
    loss.backward()
    errors = {"value": abs(value - loss.item()) / max(abs(loss.item()), 1e-12),
              "gradient": rel_err(gradient, at.grad.data)}
    assert_close(family, errors)


SHAPES = [(6, 4), (3, 5, 4)]        # (N, K) and sequences (N, T, K): averaged over the N·T predictions


@pytest.mark.parametrize("shape", SHAPES)
def test_quadratic_cost(shape):
    a, t = randn(shape, 5), randn(shape, 6)
    cost = Quadratic()
    cost_path("costs", cost.value(a, t), cost.gradient(a, t), ad_quadratic, a, t)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("targets", ["one_hot", "soft"])
def test_cross_entropy_cost_and_fused_with_softmax(shape, targets):
    k = shape[-1]
    t = one_hot(np.random.default_rng(7).integers(0, k, shape[:-1]), k) if targets == "one_hot" \
        else soft_targets(shape, 7)
    z = 2 * randn(shape, 8)
    a = built(Softmax(), shape[1:]).forward(z)
    cost = CrossEntropy()
    # its own gradient, -t / (N a), with respect to the probabilities
    cost_path("costs", cost.value(a, t), cost.gradient(a, t), ad_cross_entropy, a, t)
    # fused with softmax: (a - t) / N with respect to the logits
    cost_path("costs", cost.value(a, t), cost.fused_gradient(a, t),
              lambda zt, t: ad_cross_entropy(ad_softmax(zt), t), z, t)
    if len(shape) == 2:   # and against the autodiff op, from the logits through log-softmax
        cost_path("costs", cost.value(a, t), cost.fused_gradient(a, t), ad.cross_entropy, z, t)


@pytest.mark.parametrize("shape", SHAPES)
def test_binary_cross_entropy_cost_and_fused_with_sigmoid(shape):
    t = (randn(shape, 9) > 0).astype(np.float64)
    t[0] = np.random.default_rng(10).uniform(size=shape[1:])   # soft targets in one row
    z = 2 * randn(shape, 11)
    a = built(Sigmoid(), shape[1:]).forward(z)
    cost = BinaryCrossEntropy()
    cost_path("costs", cost.value(a, t), cost.gradient(a, t), ad_binary_cross_entropy, a, t)
    cost_path("costs", cost.value(a, t), cost.fused_gradient(a, t),
              lambda zt, t: ad_binary_cross_entropy(ad_sigmoid(zt), t), z, t)


# =============================================================================
# Dropout
# =============================================================================
@pytest.mark.parametrize("p", [0.3, 0.75])
@pytest.mark.parametrize("shape", [(20, 9), (4, 3, 5, 5)])
def test_dropout_training_with_the_mask_read_back(p, shape):
    layer = built(Dropout(p), shape[1:], seed=12)
    x = away_from_zero(shape, 13)
    state = layer.rng.bit_generator.state
    y = layer.forward(x, training=True)
    keep = y != 0                                     # x is never 0: a zero output is a dropped unit
    assert 0 < keep.sum() < keep.size
    np.testing.assert_allclose(y[keep], x[keep] / (1 - p), rtol=1e-15)
    # the same mask from the generator replayed (the 16-bit Bernoulli(1 - p) draw the layer documents)
    layer.rng.bit_generator.state = state
    replay = layer.rng.integers(0, 65536, size=shape, dtype=np.uint16) >= round(p * 65536)
    np.testing.assert_array_equal(replay, keep)

    layer.rng.bit_generator.state = state            # second_path runs the forward again: same mask
    mask = Tensor(keep / (1 - p))
    second_path("dropout", layer, x, lambda x, P: x * mask, training=True)


@pytest.mark.parametrize("p,training", [(0.5, False), (0.0, True)])
def test_dropout_identity_cases(p, training):
    layer = built(Dropout(p), (6,))
    second_path("dropout", layer, randn((5, 6), 14), lambda x, P: 1.0 * x, training=training)


# =============================================================================
# BatchNorm
# =============================================================================
@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 5, 4), (2, 1, 1, 2)], ids=["NxD", "NxCxHxW", "m=4"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batchnorm(shape, training):
    layer = built(BatchNorm(momentum=0.2, eps=1e-3), shape[1:])
    c = shape[1]
    layer.gamma.data[...] = 1 + 0.5 * randn(c, 15)
    layer.beta.data[...] = randn(c, 16)
    layer.running_mean = randn(c, 17)
    layer.running_var = np.exp(randn(c, 18))
    rm, rv = layer.running_mean.copy(), layer.running_var.copy()
    x = 2 * randn(shape, 19) + 1
    second_path("batchnorm", layer, x, lambda xt, P: ad_batchnorm(xt, P, layer, training), training=training)
    if training:   # the running statistics move as documented (unbiased variance), once per forward
        axes = (0,) if len(shape) == 2 else (0, 2, 3)
        m = x.size // c
        np.testing.assert_allclose(layer.running_mean, 0.8 * rm + 0.2 * x.mean(axis=axes), rtol=1e-12)
        np.testing.assert_allclose(layer.running_var, 0.8 * rv + 0.2 * x.var(axis=axes) * m / (m - 1),
                                   rtol=1e-12)
    else:
        np.testing.assert_array_equal(layer.running_mean, rm)


# =============================================================================
# Conv2D
# =============================================================================
# (C, H, W, F, kernel, stride, padding)
CONV_CONFIGS = {
    "3x3_s1_p0": (2, 6, 6, 3, 3, 1, 0),
    "3x3_s2_p1": (2, 7, 6, 3, 3, 2, 1),
    "2x3_s2_p1": (3, 7, 8, 4, (2, 3), 2, 1),            # non-square kernel
    "3x2_s21_p10": (2, 6, 5, 2, (3, 2), (2, 1), (1, 0)),
    "4x3_same": (1, 5, 6, 2, (4, 3), 1, "same"),        # even kernel: asymmetric padding
    "1x1": (3, 4, 4, 2, 1, 1, 0),
}


@pytest.mark.parametrize("config", list(CONV_CONFIGS))
@pytest.mark.parametrize("impl", ["fast", "naive"])
@pytest.mark.parametrize("path", ["ad_conv2d", "primitives"])
def test_conv2d(config, impl, path):
    c, h, w, f, kernel, stride, padding = CONV_CONFIGS[config]
    layer = built(Conv2D(f, kernel, stride=stride, padding=padding, impl=impl), (c, h, w))
    layer.b.data[...] = randn(f, 20)
    x = randn((3, c, h, w), 21)
    kh, kw = layer.W.data.shape[2:]
    if path == "ad_conv2d":
        forward = lambda x, P: ad.conv2d(x, P["W"], P["b"], stride=stride, padding=padding)
    else:
        s = (stride, stride) if np.isscalar(stride) else stride
        forward = lambda x, P: conv_from_primitives(x, P["W"], P["b"], s, pad_widths(padding, (kh, kw)))
    second_path("conv", layer, x, forward)


def test_conv2d_channels_last_input():
    """The fast path sees conv outputs laid out channels-last in memory; same gradients."""
    layer = built(Conv2D(3, (2, 3), stride=2, padding=1), (2, 6, 7))
    layer.b.data[...] = randn(3, 22)
    x = np.ascontiguousarray(randn((2, 6, 7, 2), 23)).transpose(0, 3, 1, 2)     # (N, C, H, W) view
    second_path("conv", layer, x, lambda x, P: conv_from_primitives(x, P["W"], P["b"], (2, 2), ((1, 1), (1, 1))))


# =============================================================================
# Pooling
# =============================================================================
# (H, W, size, stride)
POOL_CONFIGS = {
    "2x2": (6, 8, 2, None),
    "2x2_leftover": (7, 5, 2, None),                     # windows that do not tile the input
    "2x3": (6, 7, (2, 3), None),                        # non-square windows
    "3x3_s2_overlap": (7, 7, 3, 2),                     # overlapping windows accumulate
    "2x3_s1_overlap": (5, 6, (2, 3), 1),
}


@pytest.mark.parametrize("config", list(POOL_CONFIGS))
@pytest.mark.parametrize("impl", ["fast", "naive"])
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_pooling(config, impl, kind, layout):
    h, w, size, stride = POOL_CONFIGS[config]
    make = MaxPool2D if kind == "max" else AvgPool2D
    x = randn((3, 2, h, w), 24)                         # distinct values: no ties for the max
    if layout == "channels_last":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    sz = (size, size) if np.isscalar(size) else size
    st = sz if stride is None else ((stride, stride) if np.isscalar(stride) else stride)
    op = ad.max_pool2d if kind == "max" else ad.avg_pool2d
    paths = {"ad_op": lambda x, P: op(x, size, stride),
             "slices": lambda x, P: pool_from_slices(x, sz, st, kind)}
    if st == sz:
        paths["reshape"] = lambda x, P: pool_by_reshape(x, sz, kind)
    for forward in paths.values():
        second_path("pooling", built(make(size, stride, impl=impl), (2, h, w)), x, forward)


@pytest.mark.parametrize("impl", ["fast", "naive"])
@pytest.mark.parametrize("size,stride", [(2, None), (3, 2)], ids=["2x2", "3x3_s2"])
def test_max_pool_ties_go_to_the_first_maximum(impl, size, stride):
    """ReLU outputs are full of zeros: tied windows send the gradient to the first maximal
    entry in window order, as ``ad.max_pool2d`` (and PyTorch) do."""
    x = np.maximum(randn((2, 2, 7, 7), 60), 0)
    x[0, 0, :3, :3] = 0.5                               # a window of equal positive values
    layer = built(MaxPool2D(size, stride, impl=impl), (2, 7, 7))
    second_path("pooling", layer, x, lambda x, P: ad.max_pool2d(x, size, stride))


def test_flatten():
    layer = built(Flatten(), (2, 3, 4))
    x = np.ascontiguousarray(randn((3, 3, 4, 2), 25)).transpose(0, 3, 1, 2)
    second_path("pooling", layer, x, lambda x, P: x.reshape(x.shape[0], -1))


# =============================================================================
# Recurrent layers and Embedding
# =============================================================================
RECURRENT = {
    "rnn_tanh": lambda H, rs: RNN(H, activation="tanh", return_sequences=rs),
    "rnn_relu": lambda H, rs: RNN(H, activation="relu", return_sequences=rs),
    "lstm": lambda H, rs: LSTM(H, return_sequences=rs),
    "gru": lambda H, rs: GRU(H, return_sequences=rs),
}


@pytest.mark.parametrize("kind", list(RECURRENT))
@pytest.mark.parametrize("steps", [1, 5])
@pytest.mark.parametrize("return_sequences", [True, False], ids=["seq", "last"])
@pytest.mark.parametrize("given_state", [True, False], ids=["h0", "zeros"])
def test_recurrent(kind, steps, return_sequences, given_state):
    N, D, H = 3, 4, 5
    layer = built(RECURRENT[kind](H, return_sequences), (steps, D), seed=26)
    x = randn((N, steps, D), 27)
    count = 2 if kind == "lstm" else 1
    if given_state:
        state0 = tuple(randn((N, H), 28 + k) for k in range(count))
    else:
        state0 = tuple(np.zeros((N, H)) for _ in range(count))
    zero = ("W_hh",) if steps == 1 and not given_state else ()     # h0 = 0 multiplies W_hh
    second_path("recurrent", layer, x, lambda x, P, s: ad_recurrent(layer, x, P, s), state0=state0,
                zero_grads=zero)


@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "gru"])
def test_recurrent_free_sequence_length(kind):
    """Built for (None, D): any T; here T = 4, and the last step only."""
    layer = built(RECURRENT[kind](3, False), (None, 2), seed=36)
    x = randn((2, 4, 2), 37)
    state0 = tuple(randn((2, 3), 38 + k) for k in range(2 if kind == "lstm" else 1))
    second_path("recurrent", layer, x, lambda x, P, s: ad_recurrent(layer, x, P, s), state0=state0)


@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "gru"])
def test_recurrent_stateful_second_batch(kind):
    """Stateful: the second batch starts from the first one's final state, a constant (truncated
    BPTT); initial_state_grad is ∂L/∂(that state)."""
    layer = RECURRENT[kind](3, True)
    layer.stateful = True
    built(layer, (3, 2), seed=39)
    first = randn((2, 3, 2), 40)
    layer.forward(first, training=True)
    carried = tuple(np.array(s) for s in layer.carried_state)
    x = randn((2, 3, 2), 41)
    y = layer.forward(x, training=True)
    R = randn(y.shape, 42)
    dx = layer.backward(R)
    xt, P = leaf(x), ad_params(layer)
    st = tuple(leaf(s) for s in carried)
    yt = ad_recurrent(layer, xt, P, st)
    (yt * R).sum().backward()
    hand = layer.initial_state_grad if isinstance(layer.initial_state_grad, tuple) else (layer.initial_state_grad,)
    errors = {"forward": rel_err(yt.data, y), "input": rel_err(dx, xt.grad.data)}
    errors.update({f"state0[{k}]": rel_err(h, s.grad.data) for k, (h, s) in enumerate(zip(hand, st))})
    errors.update({p.name: rel_err(p.grad, P[p.name].grad.data) for p in layer.parameters()})
    assert np.linalg.norm(carried[0]) > 0
    assert_close("recurrent", errors)


def test_recurrent_without_initial_state_argument():
    """With no initial state the layer starts from zeros; initial_state_grad is still ∂L/∂h0."""
    layer = built(LSTM(4, return_sequences=True), (3, 2), seed=31)
    x = randn((2, 3, 2), 32)
    y = layer.forward(x, training=True)
    R = randn(y.shape, 33)
    dx = layer.backward(R)
    xt, P = leaf(x), ad_params(layer)
    h0, c0 = leaf(np.zeros((2, 4))), leaf(np.zeros((2, 4)))
    (ad_recurrent(layer, xt, P, (h0, c0)) * R).sum().backward()
    errors = {"input": rel_err(dx, xt.grad.data), "h0": rel_err(layer.initial_state_grad[0], h0.grad.data),
              "c0": rel_err(layer.initial_state_grad[1], c0.grad.data)}
    errors.update({p.name: rel_err(p.grad, P[p.name].grad.data) for p in layer.parameters()})
    assert_close("recurrent", errors)


@pytest.mark.parametrize("gather", ["getitem", "one_hot_matmul"])
def test_embedding(gather):
    V, E, N, T = 7, 4, 3, 6
    layer = built(Embedding(V, E), (T,))
    ids = np.random.default_rng(34).integers(0, V, (N, T))
    ids[0, :3] = 2                                       # repeated ids: their gradients must add up
    ids[2, -1] = 6
    if gather == "getitem":
        forward = lambda x, P: P["W"][x]                  # autodiff gather: a scatter-add VJP
    else:
        forward = lambda x, P: Tensor(np.eye(V)[x]) @ P["W"]
    errors = second_path("embedding", layer, ids, forward)
    assert "input" not in errors and layer.backward(randn((N, T, E), 35)) is None


# =============================================================================
# Whole networks: the network's own loss_gradient against autodiff of forward + cost
# =============================================================================
def ad_network_forward(net, x, P, masks, training=True):
    """Every layer of ``net`` in Tensor ops, in order (dropout masks given, by layer name)."""
    for layer in net.layers:
        p = P.get(layer.name, {})
        if isinstance(layer, FullyConnected):
            x = ad_fully_connected(x, p)
        elif isinstance(layer, BatchNorm):
            x = ad_batchnorm(x, p, layer, training)
        elif isinstance(layer, Dropout):
            x = x * Tensor(masks[layer.name]) if training else x
        elif isinstance(layer, Conv2D):
            x = conv_from_primitives(x, p["W"], p["b"], layer.stride, layer.pads)
        elif isinstance(layer, MaxPool2D):
            x = pool_from_slices(x, layer.size, layer.stride, "max")
        elif isinstance(layer, AvgPool2D):
            x = pool_from_slices(x, layer.size, layer.stride, "avg")
        elif isinstance(layer, Flatten):
            x = x.reshape(x.shape[0], -1)
        elif isinstance(layer, (RNN, LSTM, GRU)):
            n = x.shape[0]
            zeros = tuple(Tensor(np.zeros((n, layer.hidden))) for _ in range(2 if isinstance(layer, LSTM) else 1))
            x = ad_recurrent(layer, x, p, zeros)
        elif isinstance(layer, Embedding):
            x = p["W"][x]
        elif isinstance(layer, LeakyReLU):
            x = ad_leaky_relu(x, layer.negative_slope)
        else:
            x = {Sigmoid: ad_sigmoid, Tanh: ad_tanh, ReLU: ad_relu, Softmax: ad_softmax}[type(layer)](x)
    return x


AD_COSTS = {"cross_entropy": ad_cross_entropy, "binary_cross_entropy": ad_binary_cross_entropy,
            "quadratic": ad_quadratic}


def network_path(net, X, targets):
    """net.forward(training=True) + net.loss_gradient against autodiff of the same forward and cost,
    with every dropout mask made identical by resetting the network's generator before each pass."""
    for layer in net.layers:                           # non-degenerate biases and normalization parameters
        for p in layer.parameters():
            if p.name in ("b", "beta", "gamma"):
                p.data[...] = (p.name == "gamma") + 0.3 * randn(p.data.shape, 40 + len(p.name))
    state = net.rng.bit_generator.state

    # the masks: each dropout layer run on ones from the same generator state (only dropout draws in forward)
    masks = {}
    drops = [layer for layer in net.layers if isinstance(layer, Dropout)]
    assert len(drops) <= 1, "one dropout layer: its draw is the first after the reset"
    for layer in drops:
        net.rng.bit_generator.state = state
        masks[layer.name] = layer.forward(np.ones((len(X),) + layer.input_shape), training=True).copy()

    P = {layer.name: ad_params(layer) for layer in net.layers}
    x = X if net.layers[0].kind == "embedding" else Tensor(np.asarray(X, dtype=np.float64))
    out_t = ad_network_forward(net, x, P, masks)
    loss = AD_COSTS[net.cost.name](out_t, targets)
    loss.backward()

    net.rng.bit_generator.state = state
    out = net.forward(X, training=True)
    net.loss_gradient(out, targets)

    errors = {"forward": rel_err(out_t.data, out),
              "cost": abs(net.cost.value(out, targets) - loss.item()) / abs(loss.item())}
    for layer, after in zip(net.layers, net.layers[1:] + [None]):
        for p in layer.parameters():
            auto = P[layer.name][p.name].grad.data
            if p.name == "b" and isinstance(after, BatchNorm):
                # Training-mode BatchNorm subtracts the batch mean: a bias just before it has
                # gradient 0 in exact arithmetic, so both sides are rounding noise; a relative
                # error means nothing there. Both must be negligible next to the weights' gradient.
                scale = np.linalg.norm(P[layer.name]["W"].grad.data)
                assert max(np.linalg.norm(p.grad), np.linalg.norm(auto)) < 1e-12 * scale, f"{layer.name}.b"
                continue
            assert np.linalg.norm(auto) > 0, f"{layer.name}.{p.name}"
            errors[f"{layer.name}.{p.name}"] = rel_err(p.grad, auto)
    assert_close("network", errors)
    return errors


def test_network_mlp_batchnorm_dropout_softmax_cross_entropy():
    net = Network(6, "cross_entropy", seed=3, dtype=np.float64)
    net.add_fc_layer(8)
    net.add_batchnorm_layer()
    net.add_relu_layer()
    net.add_dropout_layer(0.3)
    net.add_fc_layer(4)
    net.add_softmax_layer()
    assert net.fused_output
    X = randn((10, 6), 50)
    targets = one_hot(np.random.default_rng(51).integers(0, 4, 10), 4)
    errors = network_path(net, X, targets)
    assert set(errors) >= {"fc1.W", "batchnorm1.gamma", "batchnorm1.beta", "fc2.W", "fc2.b"}


def test_network_cnn_sigmoid_binary_cross_entropy():
    net = Network((2, 7, 7), "binary_cross_entropy", seed=4, dtype=np.float64)
    net.add_conv_layer(3, (3, 2), stride=2, padding=1)
    net.add_batchnorm_layer()
    net.add_tanh_layer()
    net.add_maxpool_layer(2)
    net.add_conv_layer(2, 1, impl="naive")
    net.add_avgpool_layer(2, stride=1)
    net.add_flatten_layer()
    net.add_fc_layer(3)
    net.add_sigmoid_layer()
    assert net.fused_output
    X = randn((4, 2, 7, 7), 52)
    targets = (randn((4, 3), 53) > 0).astype(np.float64)
    network_path(net, X, targets)


def test_network_sequences_embedding_gru_softmax_per_step():
    """Cross-entropy averaged over the N·T predictions of a sequence output."""
    net = Network((5,), "cross_entropy", seed=5, dtype=np.float64)
    net.add_embedding_layer(9, 4)
    net.add_gru_layer(6, return_sequences=True)
    net.add_fc_layer(9)
    net.add_softmax_layer()
    ids = np.random.default_rng(54).integers(0, 9, (3, 5))
    targets = one_hot(np.random.default_rng(55).integers(0, 9, (3, 5)), 9)
    network_path(net, ids, targets)


def test_network_rnn_lstm_quadratic_not_fused():
    """Quadratic cost: no fusion, so the sigmoid's own backward runs too."""
    net = Network((4, 3), "quadratic", seed=6, dtype=np.float64)
    net.add_rnn_layer(5, return_sequences=True)
    net.add_lstm_layer(4)
    net.add_leaky_relu_layer(negative_slope=0.1)
    net.add_fc_layer(2)
    net.add_sigmoid_layer()
    assert not net.fused_output
    network_path(net, randn((3, 4, 3), 56), randn((3, 2), 57))


# =============================================================================
# The comparison is not vacuous
# =============================================================================
def test_a_wrong_backward_is_caught():
    layer = built(FullyConnected(3), (4,))
    x = randn((5, 4), 58)
    y = layer.forward(x)
    R = randn(y.shape, 59)
    layer.backward(R)
    xt, P = leaf(x), ad_params(layer)
    (ad_fully_connected(xt, P) * R).sum().backward()
    assert rel_err(layer.W.grad, P["W"].grad.data) < TOL
    wrong = layer.W.grad.copy()
    wrong[0, 0] += 1e-3 * np.linalg.norm(wrong)          # one entry off by 0.1% of the norm
    assert rel_err(wrong, P["W"].grad.data) > TOL
    assert rel_err(R.T @ x / 5, P["W"].grad.data) > TOL   # a mean instead of a sum
