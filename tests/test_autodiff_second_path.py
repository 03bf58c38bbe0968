"""The second path: every layer's hand-written backward against autodiff.

Each layer's forward is written again in autodiff Tensor operations, once, in
``nnscratch.layers.tensor_forms`` (from the equations the layer documents:
PyTorch's, for the recurrent layers), and run on the layer's own parameter
arrays. A scalar ``L = Σ y ⊙ R`` (R fixed, random) is run backward through
autodiff, and the layer's ``backward(R)`` — its ``dx`` and every ``p.grad``
(and the recurrent layers' ``initial_state_grad``) — must agree to a
norm-wise relative error of 1e-6 in float64. The forward values are compared
too (same input, same parameters): that is the check that the tensor forms
themselves are right, so a test cannot pass by differentiating some other
function.

The costs are checked the same way on their own scalar value (their gradient
with respect to the prediction, and the fused ``(a - t)/N`` with respect to
the softmax / sigmoid input); whole networks, blocks included, through the
network's own ``train_step`` against autodiff of ``tensor_forms.network_forward``
and the cost's form.

Beside the tensor forms, some layers get further, independent paths written
here: convolution against a version built from pad + strided slicing + stack +
reshape + matmul (and ``ad.conv2d`` called with the layer's own arguments);
pooling against stacked slices (or, for non-overlapping windows, a reshape)
reduced with ``max`` / ``mean``; dropout against the mask replayed from the
generator; the embedding against a one-hot matrix product; softmax against the
``ad.softmax`` op.

Run with ``-s`` to see the largest relative error per layer family.
"""
import numpy as np
import pytest
from conftest import assert_all_small, away_from_zero, built, randn, rel_err

from nnscratch import Network, Residual, Sequential
from nnscratch import autodiff as ad
from nnscratch.autodiff import Tensor
from nnscratch.costs import BinaryCrossEntropy, CrossEntropy, CrossEntropyLogits, Quadratic
from nnscratch.layers import (GRU, LSTM, RNN, AvgPool2D, BatchNorm, Conv2D, Dropout, Embedding, Flatten,
                              FullyConnected, LeakyReLU, MaxPool2D, ReLU, Sigmoid, Softmax, Tanh)
from nnscratch.layers.tensor_forms import network_forward, tensor_cost, tensor_forward

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
    assert_all_small(errors, None, TOL)
    MAX_ERR[family] = max(MAX_ERR.get(family, 0.0), *errors.values())


def leaf(a):
    return Tensor(np.array(a, dtype=np.float64), requires_grad=True)


def parameter_names(layer):
    """``(name, Parameter)`` for each parameter: ``W`` for a leaf layer's own, the
    child's path for a block's (``block1.fc1.W``)."""
    return [(p.name if leaf_ is layer else f"{leaf_.name}.{p.name}", p)
            for leaf_ in layer.leaves() for p in leaf_.parameters()]


def ad_params(layer):
    """The layer's own parameter arrays as fresh autodiff leaves, by name (see ``parameter_names``)."""
    return {name: leaf(p.data) for name, p in parameter_names(layer)}


def by_parameter(layer, P):
    """The same leaves keyed by the layer's ``Parameter`` objects, as the tensor forms take them."""
    return {p: P[name] for name, p in parameter_names(layer)}


def tensor_form(layer, training=False):
    """``ad_forward`` for ``second_path``: the layer's form from ``tensor_forms``."""
    def forward(x, P, state0=None):
        return tensor_forward(layer, x, by_parameter(layer, P), training, initial_state=state0)
    return forward


def second_path(family, layer, x, ad_forward=None, *, training=False, seed=7, state0=None, zero_grads=()):
    """Compare ``layer``'s forward/backward with ``ad_forward(x_tensor, params, state0_tensors)``,
    by default the layer's tensor form.

    ``L = Σ y ⊙ R``; returns the errors after asserting them. ``state0``: the
    recurrent layers' initial state (tuple of arrays), whose gradient is
    compared with ``layer.initial_state_grad``. ``zero_grads``: parameters whose
    gradient is exactly zero here (both ways); every other gradient must not be.
    """
    ad_forward = tensor_form(layer, training) if ad_forward is None else ad_forward
    kwargs = {} if state0 is None else {"initial_state": state0 if len(state0) > 1 else state0[0]}
    x_before = np.array(x)
    y = np.array(layer.forward(x, training=training, **kwargs))
    R = randn(y.shape, seed)
    dy = R.copy()
    dx = layer.backward(dy)
    dx = None if dx is None else np.array(dx)
    names = parameter_names(layer)
    grads = {name: np.array(p.grad) for name, p in names}
    # neither pass writes into its argument, and backward depends only on the cached forward
    np.testing.assert_array_equal(np.asarray(x), x_before)
    np.testing.assert_array_equal(dy, R)
    again = layer.backward(R.copy())
    if dx is not None:
        np.testing.assert_array_equal(np.asarray(again), dx)
    for name, p in names:
        np.testing.assert_array_equal(p.grad, grads[name])

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
    for name, p in names:
        if name in zero_grads:
            assert not P[name].grad.data.any() and not np.any(p.grad), name
        else:
            assert np.linalg.norm(P[name].grad.data) > 0, name
        errors[name] = rel_err(p.grad, P[name].grad.data)
    if st is not None:
        hand = layer.initial_state_grad
        hand = hand if isinstance(hand, tuple) else (hand,)
        assert len(hand) == len(st)
        for k, (h, s) in enumerate(zip(hand, st)):
            errors[f"state0[{k}]"] = rel_err(h, s.grad.data)
    assert_close(family, errors)
    return errors


# =============================================================================
# Further paths, written here independently of the tensor forms
# =============================================================================
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


# =============================================================================
# Dense layer and activations
# =============================================================================
@pytest.mark.parametrize("shape", [(5, 7), (3, 4, 7), (1, 1, 7)], ids=["NxD", "NxTxD", "1x1xD"])
def test_fully_connected(shape):
    layer = built(FullyConnected(6), shape[1:])
    layer.b.data[...] = randn(6, 1)
    second_path("dense", layer, randn(shape, 2))


ACTIVATIONS = {                            # name: (layer, ad_forward: None = its tensor form)
    "sigmoid": (Sigmoid, None),
    "tanh": (Tanh, None),
    "relu": (ReLU, None),
    "leaky_relu": (lambda: LeakyReLU(0.2), None),
    "softmax": (Softmax, None),
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
    second_path("activations", layer, x)


# =============================================================================
# Costs: their value and gradient, and the fused gradients
# =============================================================================
def one_hot(labels, k):
    return np.eye(k)[labels]


def soft_targets(shape, seed):
    t = np.exp(randn(shape, seed))
    return t / t.sum(axis=-1, keepdims=True)


def cost_form(cost, output_layer=None):
    """``make_ad`` for ``cost_path``: the cost's tensor form, after ``output_layer``'s form if given."""
    if output_layer is None:
        return lambda at, t: tensor_cost(cost, at, t)
    return lambda zt, t: tensor_cost(cost, tensor_forward(output_layer, zt), t)


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
    cost_path("costs", cost.value(a, t), cost.gradient(a, t), cost_form(cost), a, t)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("targets", ["one_hot", "soft"])
def test_cross_entropy_cost_and_fused_with_softmax(shape, targets):
    k = shape[-1]
    t = one_hot(np.random.default_rng(7).integers(0, k, shape[:-1]), k) if targets == "one_hot" \
        else soft_targets(shape, 7)
    z = 2 * randn(shape, 8)
    softmax = built(Softmax(), shape[1:])
    a = softmax.forward(z)
    cost = CrossEntropy()
    # its own gradient, -t / (N a), with respect to the probabilities
    cost_path("costs", cost.value(a, t), cost.gradient(a, t), cost_form(cost), a, t)
    # fused with softmax: (a - t) / N with respect to the logits
    cost_path("costs", cost.value(a, t), cost.fused_gradient(a, t), cost_form(cost, softmax), z, t)
    if len(shape) == 2:   # and against the autodiff op, from the logits through log-softmax
        cost_path("costs", cost.value(a, t), cost.fused_gradient(a, t), ad.cross_entropy, z, t)


@pytest.mark.parametrize("shape", SHAPES)
def test_binary_cross_entropy_cost_and_fused_with_sigmoid(shape):
    t = (randn(shape, 9) > 0).astype(np.float64)
    t[0] = np.random.default_rng(10).uniform(size=shape[1:])   # soft targets in one row
    z = 2 * randn(shape, 11)
    sigmoid = built(Sigmoid(), shape[1:])
    a = sigmoid.forward(z)
    cost = BinaryCrossEntropy()
    cost_path("costs", cost.value(a, t), cost.gradient(a, t), cost_form(cost), a, t)
    cost_path("costs", cost.value(a, t), cost.fused_gradient(a, t), cost_form(cost, sigmoid), z, t)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("targets", ["one_hot", "soft"])
def test_cross_entropy_on_logits_cost(shape, targets):
    """No softmax layer: the cost takes the logits; against log-softmax in Tensor ops, and
    against cross-entropy after a softmax (the same function)."""
    k = shape[-1]
    t = one_hot(np.random.default_rng(17).integers(0, k, shape[:-1]), k) if targets == "one_hot" \
        else soft_targets(shape, 17)
    z = 3 * randn(shape, 18)
    cost = CrossEntropyLogits()
    cost_path("costs", cost.value(z, t), cost.gradient(z, t), cost_form(cost), z, t)
    after_softmax = cost_form(CrossEntropy(), built(Softmax(), shape[1:]))
    cost_path("costs", cost.value(z, t), cost.gradient(z, t), after_softmax, z, t)


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
    # the tensor form: the mask of the layer's last training forward
    layer.rng.bit_generator.state = state
    second_path("dropout", layer, x, training=True)


@pytest.mark.parametrize("p,training", [(0.5, False), (0.0, True)])
def test_dropout_identity_cases(p, training):
    layer = built(Dropout(p), (6,))
    second_path("dropout", layer, randn((5, 6), 14), training=training)


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
    second_path("batchnorm", layer, x, training=training)
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
@pytest.mark.parametrize("path", ["ad_conv2d", "primitives", "tensor_form"])
def test_conv2d(config, impl, path):
    c, h, w, f, kernel, stride, padding = CONV_CONFIGS[config]
    layer = built(Conv2D(f, kernel, stride=stride, padding=padding, impl=impl), (c, h, w))
    layer.b.data[...] = randn(f, 20)
    x = randn((3, c, h, w), 21)
    kh, kw = layer.W.data.shape[2:]
    if path == "tensor_form":
        forward = None
    elif path == "ad_conv2d":                        # the op, given the layer's own arguments
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
    paths = {"tensor_form": None,
             "ad_op": lambda x, P: op(x, size, stride),
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
    second_path("pooling", layer, x)


def test_flatten():
    layer = built(Flatten(), (2, 3, 4))
    x = np.ascontiguousarray(randn((3, 3, 4, 2), 25)).transpose(0, 3, 1, 2)
    second_path("pooling", layer, x)


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
    second_path("recurrent", layer, x, state0=state0, zero_grads=zero)


@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "gru"])
def test_recurrent_free_sequence_length(kind):
    """Built for (None, D): any T; here T = 4, and the last step only."""
    layer = built(RECURRENT[kind](3, False), (None, 2), seed=36)
    x = randn((2, 4, 2), 37)
    state0 = tuple(randn((2, 3), 38 + k) for k in range(2 if kind == "lstm" else 1))
    second_path("recurrent", layer, x, state0=state0)


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
    yt = tensor_forward(layer, xt, by_parameter(layer, P), initial_state=st)
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
    (tensor_forward(layer, xt, by_parameter(layer, P), initial_state=(h0, c0)) * R).sum().backward()
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
        forward = None                                   # the tensor form: a gather, a scatter-add VJP
    else:
        forward = lambda x, P: Tensor(np.eye(V)[x]) @ P["W"]
    errors = second_path("embedding", layer, ids, forward)
    assert "input" not in errors and layer.backward(randn((N, T, E), 35)) is None


# =============================================================================
# Whole networks: the network's own train_step against autodiff of forward + cost
# =============================================================================
def network_path(net, X, targets):
    """net.train_step (forward in training mode, cost, backward) against autodiff of the network's
    and the cost's tensor forms, with every dropout mask made identical by resetting the network's
    generator before each pass."""
    leaves = [layer for _, layer in net.named_layers()]
    for layer in leaves:                               # non-degenerate biases and normalization parameters
        for p in layer.parameters():
            if p.name in ("b", "beta", "gamma"):
                p.data[...] = (p.name == "gamma") + 0.3 * randn(p.data.shape, 40 + len(p.name))
    state = net.rng.bit_generator.state

    # the mask: the dropout layer run on ones from the same generator state (only dropout draws in
    # forward); its tensor form uses the mask of this, its last, training forward
    drops = [layer for layer in leaves if isinstance(layer, Dropout)]
    assert len(drops) <= 1, "one dropout layer: its draw is the first after the reset"
    for layer in drops:
        net.rng.bit_generator.state = state
        layer.forward(np.ones((len(X),) + layer.input_shape), training=True)

    P = {layer.name: ad_params(layer) for layer in leaves}
    params = {p: P[layer.name][p.name] for layer in leaves for p in layer.parameters()}
    x = X if isinstance(leaves[0], Embedding) else Tensor(np.asarray(X, dtype=np.float64))
    out_t = network_forward(net, x, params, training=True)
    loss = tensor_cost(net.cost, out_t, targets)
    loss.backward()

    net.rng.bit_generator.state = state
    hand_loss, out = net.train_step(X, targets, return_output=True)

    errors = {"forward": rel_err(out_t.data, out), "cost": abs(hand_loss - loss.item()) / abs(loss.item())}
    for layer, after in zip(leaves, leaves[1:] + [None]):
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


def test_network_residual_mlp_with_nested_blocks():
    """Blocks: a residual block holding batch norm and dropout, a sequential block holding a
    residual one; names and gradients reach every inner layer."""
    net = Network(6, "cross_entropy", seed=7, dtype=np.float64)
    net.add_fc_layer(5)
    net.add(Residual(FullyConnected(5), BatchNorm(), ReLU(), Dropout(0.25), FullyConnected(5)))
    net.add(Sequential(Tanh(), Residual(FullyConnected(5), Sigmoid()), FullyConnected(4)))
    net.add_softmax_layer()
    assert net.fused_output
    X = randn((8, 6), 60)
    targets = soft_targets((8, 4), 61)
    errors = network_path(net, X, targets)
    assert set(errors) >= {"block1.fc1.W", "block1.batchnorm1.gamma", "block1.fc2.W", "block2.block1.fc1.W",
                           "block2.block1.fc1.b", "block2.fc1.W", "fc1.W"}


def test_network_residual_cnn_binary_cross_entropy():
    net = Network((2, 6, 6), "binary_cross_entropy", seed=8, dtype=np.float64)
    net.add_conv_layer(3, 3, padding=1)
    net.add(Residual(Conv2D(3, 3, padding="same"), BatchNorm(), ReLU(), Conv2D(3, (2, 3), padding="same",
                                                                             impl="naive")))
    net.add_maxpool_layer(2)
    net.add(Sequential(Flatten(), FullyConnected(2)))
    net.add_sigmoid_layer()
    X = randn((3, 2, 6, 6), 62)
    targets = (randn((3, 2), 63) > 0).astype(np.float64)
    errors = network_path(net, X, targets)
    assert set(errors) >= {"block1.conv1.W", "block1.conv2.W", "block1.batchnorm1.gamma", "block2.fc1.W"}


@pytest.mark.parametrize("shape", [(6,), (3, 6)], ids=["NxK", "NxTxK"])
def test_network_cross_entropy_on_logits_without_a_softmax_layer(shape):
    net = Network(shape, CrossEntropyLogits(), seed=9, dtype=np.float64)
    net.add_fc_layer(5)
    net.add_tanh_layer()
    net.add_fc_layer(4)
    assert not net.fused_output
    X = randn((5,) + shape, 64)
    targets = soft_targets((5,) + shape[:-1] + (4,), 65)
    errors = network_path(net, X, targets)
    assert set(errors) >= {"fc1.W", "fc1.b", "fc2.W", "fc2.b"}


# =============================================================================
# Every layer has a form, and the comparison is not vacuous
# =============================================================================
def test_every_layer_class_has_a_tensor_form_and_an_unknown_one_is_named():
    import nnscratch.layers as layers
    from nnscratch.layers.tensor_forms import form_of
    classes = [getattr(layers, name) for name in layers.__all__ if name not in ("Layer", "Parameter")]
    assert len(classes) >= 18
    for cls in classes:
        assert form_of(cls.__new__(cls)) is not None, cls.__name__

    class Doubled(ReLU):                      # a subclass uses its base class's form (the MRO)
        pass
    assert form_of(Doubled()) is form_of(ReLU())

    class Mystery(layers.Layer):
        kind = "mystery"
    with pytest.raises(TypeError, match=r"mystery \(Mystery\) has no Tensor-op form"):
        tensor_forward(built(Mystery(), (3,)), np.ones((2, 3)))


def test_recurrent_naive_twin():
    """impl="naive" has the same parameters, so the same form checks it."""
    for make in (lambda: RNN(4, return_sequences=True, impl="naive"), lambda: LSTM(4, impl="naive"),
                 lambda: GRU(4, return_sequences=True, impl="naive")):
        layer = built(make(), (3, 2), seed=66)
        state0 = tuple(randn((2, 4), 67 + k) for k in range(2 if isinstance(layer, LSTM) else 1))
        second_path("recurrent", layer, randn((2, 3, 2), 68), state0=state0)


def test_a_wrong_backward_is_caught():
    layer = built(FullyConnected(3), (4,))
    x = randn((5, 4), 58)
    y = layer.forward(x)
    R = randn(y.shape, 59)
    layer.backward(R)
    xt, P = leaf(x), ad_params(layer)
    (tensor_forward(layer, xt, by_parameter(layer, P)) * R).sum().backward()
    assert rel_err(layer.W.grad, P["W"].grad.data) < TOL
    wrong = layer.W.grad.copy()
    wrong[0, 0] += 1e-3 * np.linalg.norm(wrong)          # one entry off by 0.1% of the norm
    assert rel_err(wrong, P["W"].grad.data) > TOL
    assert rel_err(R.T @ x / 5, P["W"].grad.data) > TOL   # a mean instead of a sum
