"""First derivatives of every autodiff operation, and the Tensor's behaviour.

Each operation is checked in float64 against central differences (the
checker below perturbs each input entry of ``L = Σ op(inputs) ⊙ R`` for a
fixed random ``R``, so every entry of the Jacobian is involved), on several
shapes including broadcasting. conv2d and max_pool2d are also checked against
the library's Conv2D and MaxPool2D layers, forward and backward. Then: dtypes
(float32 stays float32, Python scalars do not upcast), repeated-index
accumulation, a 10,000-operation chain, zero_grad, no_grad, detach, the
error for backward on a non-scalar, the functional API and the graph pictures.
"""
import gc

import numpy as np
import pytest
from conftest import TOL, central_difference, rel_err

from nnscratch import autodiff as ad
from nnscratch.autodiff import Tensor
from nnscratch.layers import Conv2D, MaxPool2D

CONST = np.random.default_rng(1234)          # constants captured by the cases below
MASK = CONST.standard_normal((3, 4)) > 0
COND_B = CONST.standard_normal((3, 1)) > 0
IDX = np.array([2, 0, 2, 2, 1])
BOOL = np.array([True, False, True, True])
TARGET_IDS = np.array([2, 0, 3, 3, 1])


def check_grads(fn, arrays, tol=TOL, seed=0):
    """Autodiff gradients of ``L = Σ fn(*inputs) ⊙ R`` against central differences, per input."""
    R = np.random.default_rng(seed).standard_normal(fn(*[Tensor(a) for a in arrays]).shape)
    tensors = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    (fn(*tensors) * R).sum().backward()
    for i, a in enumerate(arrays):
        def loss(ai, i=i):
            args = [Tensor(ai if j == i else arrays[j]) for j in range(len(arrays))]
            return float(np.sum(fn(*args).data * R))
        numeric = central_difference(loss, a.copy())
        analytic = tensors[i].grad
        assert analytic is not None, f"input {i} got no gradient"
        assert analytic.shape == a.shape and analytic.dtype == np.float64
        err = rel_err(analytic.data, numeric)
        assert err < tol, f"input {i}: relative error {err:.2e}"


def normal(*shape):
    return ("n", shape)


def positive(*shape):
    return ("p", shape)


def make(specs, seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) if kind == "n" else rng.uniform(0.5, 2.0, shape)
            for kind, shape in specs]


CASES = [
    # arithmetic, with broadcasting
    ("add", lambda a, b: a + b, [normal(3, 4), normal(3, 4)]),
    ("add_broadcast", lambda a, b: a + b, [normal(2, 3, 4), normal(3, 1)]),
    ("add_scalar_shape", lambda a, b: a + b, [normal(3,), normal()]),
    ("radd_array", lambda a: np.ones((2, 3)) + a, [normal(3,)]),
    ("sub_broadcast", lambda a, b: a - b, [normal(4, 1, 3), normal(2, 3)]),
    ("rsub_scalar", lambda a: 2.0 - a, [normal(3, 2)]),
    ("mul", lambda a, b: a * b, [normal(3, 4), normal(3, 4)]),
    ("mul_broadcast", lambda a, b: a * b, [normal(4, 1, 3), normal(2, 1)]),
    ("rmul_array", lambda a: np.arange(3.0) * a, [normal(2, 3)]),
    ("div", lambda a, b: a / b, [normal(3, 4), positive(3, 4)]),
    ("div_broadcast", lambda a, b: a / b, [normal(2, 3), positive(3)]),
    ("rdiv_scalar", lambda a: 1.5 / a, [positive(5)]),
    ("pow_int", lambda a: a ** 3, [normal(3, 4)]),
    ("pow_frac", lambda a: a ** 0.5, [positive(4)]),
    ("pow_tensor", lambda a, b: a ** b, [positive(2, 3), normal(3)]),
    ("rpow", lambda a: 2.0 ** a, [normal(4)]),
    ("neg", lambda a: -a, [normal(2, 3)]),
    # unary functions
    ("exp", ad.exp, [normal(3, 4)]),
    ("log", ad.log, [positive(3, 4)]),
    ("sqrt", ad.sqrt, [positive(2, 5)]),
    ("tanh", ad.tanh, [normal(3, 4)]),
    ("erf", ad.erf, [normal(3, 4)]),
    ("sigmoid", ad.sigmoid, [normal(3, 4)]),
    ("sigmoid_large", lambda a: ad.sigmoid(a * 30), [normal(6)]),
    ("relu", ad.relu, [normal(3, 4)]),
    ("abs", ad.abs, [normal(3, 4)]),
    ("maximum", ad.maximum, [normal(3, 4), normal(3, 4)]),
    ("maximum_broadcast", ad.maximum, [normal(3, 4), normal(4)]),
    ("minimum_broadcast", ad.minimum, [normal(2, 1, 3), normal(4, 1)]),
    ("maximum_scalar", lambda a: ad.maximum(a, 0.1), [normal(3, 4)]),
    ("where", lambda a, b: ad.where(MASK, a, b), [normal(3, 4), normal(3, 4)]),
    ("where_broadcast", lambda a, b: ad.where(COND_B, a, b), [normal(4), normal(3, 4)]),
    ("where_scalar", lambda a: ad.where(MASK, a, 0.0), [normal(3, 4)]),
    ("clip", lambda a: ad.clip(a, -0.5, 0.7), [normal(3, 4)]),
    ("clip_lower", lambda a: a.clip(lo=0.1), [normal(3, 4)]),
    # matrix products
    ("matmul", lambda a, b: a @ b, [normal(3, 4), normal(4, 5)]),
    ("matmul_batched", lambda a, b: a @ b, [normal(2, 3, 4), normal(2, 4, 5)]),
    ("matmul_broadcast_batch", lambda a, b: a @ b, [normal(2, 1, 3, 4), normal(3, 4, 2)]),
    ("matmul_batch_by_matrix", lambda a, b: a @ b, [normal(2, 3, 4), normal(4, 2)]),
    ("matvec", lambda a, b: a @ b, [normal(3, 4), normal(4)]),
    ("vecmat", lambda a, b: a @ b, [normal(4), normal(2, 4, 3)]),
    ("dot", lambda a, b: a @ b, [normal(4), normal(4)]),
    ("rmatmul_array", lambda b: np.arange(6.0).reshape(2, 3) @ b, [normal(3, 2)]),
    # reductions
    ("sum_all", lambda a: a.sum(), [normal(3, 4)]),
    ("sum_axis", lambda a: a.sum(axis=1), [normal(3, 4, 2)]),
    ("sum_axes_keepdims", lambda a: a.sum(axis=(0, 2), keepdims=True), [normal(3, 4, 2)]),
    ("mean_negative_axis", lambda a: a.mean(axis=-1), [normal(3, 4)]),
    ("mean_all_keepdims", lambda a: a.mean(keepdims=True), [normal(2, 3)]),
    ("max_all", lambda a: a.max(), [normal(3, 4)]),
    ("max_axis", lambda a: a.max(axis=0), [normal(3, 4)]),
    ("max_axes_keepdims", lambda a: a.max(axis=(1, 2), keepdims=True), [normal(2, 3, 4)]),
    ("min_axis", lambda a: ad.min(a, axis=1), [normal(3, 4)]),
    ("var_all", lambda a: a.var(), [normal(3, 4)]),
    ("var_axis_ddof", lambda a: a.var(axis=0, ddof=1), [normal(5, 3)]),
    ("var_axes_keepdims", lambda a: ad.var(a, axis=(0, 2), keepdims=True), [normal(3, 2, 4)]),
    ("std", lambda a: a.std(axis=1), [normal(3, 5)]),
    # shapes and indexing
    ("reshape", lambda a: a.reshape(4, -1) * np.arange(3.0), [normal(2, 6)]),
    ("transpose", lambda a: a.transpose(2, 0, 1), [normal(2, 3, 4)]),
    ("T", lambda a: a.T, [normal(3, 4)]),
    ("swapaxes", lambda a: a.swapaxes(0, -1), [normal(2, 3, 4)]),
    ("expand_squeeze", lambda a: ad.squeeze(ad.expand_dims(a, 1) * 2, 1), [normal(3, 4)]),
    ("flatten", lambda a: a.flatten(), [normal(2, 3)]),
    ("broadcast_to", lambda a: ad.broadcast_to(a, (2, 3, 4)), [normal(3, 1)]),
    ("slice", lambda a: a[1:, ::2], [normal(3, 5)]),
    ("slice_negative_step_newaxis", lambda a: a[::-1, None, ..., -2], [normal(3, 4, 5)]),
    ("int_index", lambda a: a[1], [normal(3, 4)]),
    ("int_array_repeated", lambda a: a[IDX], [normal(4, 3)]),
    ("int_arrays_2d", lambda a: a[IDX[:3], [0, 2, 0]], [normal(3, 4)]),
    ("int_array_and_slice", lambda a: a[:, IDX], [normal(2, 4)]),
    ("bool_mask", lambda a: a[BOOL], [normal(4, 2)]),
    ("tensor_index", lambda a: a[Tensor(IDX)], [normal(3, 2)]),
    ("concatenate", lambda a, b: ad.concatenate([a, b], axis=1), [normal(2, 3), normal(2, 4)]),
    ("concatenate_with_constant", lambda a: ad.concatenate([np.ones((1, 3)), a]), [normal(2, 3)]),
    ("stack", lambda a, b, c: ad.stack([a, b, c], axis=1), [normal(2, 3), normal(2, 3), normal(2, 3)]),
    ("stack_last", lambda a, b: ad.stack([a, b], axis=-1), [normal(4), normal(4)]),
    ("pad", lambda a: ad.pad(a, ((1, 2), (0, 3))), [normal(2, 3)]),
    ("pad_value", lambda a: ad.pad(a, 1, constant_values=2.0), [normal(2, 2, 2)]),
    ("getitem_then_sum_to", lambda a: ad.sum_to(a[:, 1:], (1, 3)), [normal(2, 4)]),
    # softmax family
    ("softmax", ad.softmax, [normal(3, 4)]),
    ("softmax_axis0", lambda a: ad.softmax(a, axis=0), [normal(3, 4)]),
    ("log_softmax", ad.log_softmax, [normal(3, 4)]),
    ("log_softmax_large", lambda a: ad.log_softmax(a * 100, axis=0), [normal(4, 2)]),
    ("logsumexp_all", ad.logsumexp, [normal(3, 4)]),
    ("logsumexp_axis_keepdims", lambda a: ad.logsumexp(a, axis=1, keepdims=True), [normal(3, 4)]),
    ("logsumexp_axes", lambda a: a.logsumexp(axis=(0, 2)), [normal(2, 3, 4)]),
    ("cross_entropy_ids", lambda z: ad.cross_entropy(z, TARGET_IDS), [normal(5, 4)]),
    ("cross_entropy_probs", lambda z, t: ad.cross_entropy(z, ad.softmax(t)), [normal(3, 4), normal(3, 4)]),
    ("cross_entropy_onehot", lambda z: ad.cross_entropy(z, np.eye(4)[TARGET_IDS]), [normal(5, 4)]),
    # convolution and pooling
    ("conv2d", lambda x, w, b: ad.conv2d(x, w, b), [normal(2, 3, 5, 5), normal(4, 3, 3, 3), normal(4)]),
    ("conv2d_stride_pad", lambda x, w, b: ad.conv2d(x, w, b, stride=2, padding=1),
     [normal(2, 2, 5, 6), normal(3, 2, 3, 3), normal(3)]),
    ("conv2d_same_even", lambda x, w: ad.conv2d(x, w, padding="same"),
     [normal(1, 2, 4, 5), normal(2, 2, 2, 3)]),
    ("conv2d_rect_stride", lambda x, w: ad.conv2d(x, w, None, stride=(2, 1), padding=(0, 1)),
     [normal(2, 1, 6, 4), normal(2, 1, 3, 2)]),
    ("max_pool2d", lambda x: ad.max_pool2d(x, 2), [normal(2, 3, 4, 4)]),
    ("max_pool2d_overlap", lambda x: ad.max_pool2d(x, 3, stride=2), [normal(2, 2, 7, 6)]),
    ("max_pool2d_leftover", lambda x: ad.max_pool2d(x, (2, 3), stride=(2, 2)), [normal(1, 2, 5, 7)]),
    ("avg_pool2d", lambda x: ad.avg_pool2d(x, 2, stride=1), [normal(2, 2, 4, 5)]),
    ("unfold_fold", lambda x: ad.fold(ad.unfold(x, (2, 2), (1, 2)) * 2, (4, 5), (2, 2), (1, 2)),
     [normal(1, 4, 5, 2)]),
    # a composite
    ("mlp", lambda x, w1, w2: ad.cross_entropy(ad.tanh(x @ w1) @ w2, TARGET_IDS[:3]),
     [normal(3, 4), normal(4, 5), normal(5, 4)]),
]


@pytest.mark.parametrize("fn, specs", [pytest.param(fn, specs, id=name) for name, fn, specs in CASES])
def test_first_derivatives(fn, specs):
    check_grads(fn, make(specs, seed=len(specs) * 7 + sum(len(s) for _, s in specs)))


def test_functional_grad_matches_backward():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal(4)
    def f(a, b):
        return (ad.tanh(a * b) ** 2).sum()

    ga, gb = ad.grad(f, argnums=(0, 1))(a, b)
    assert isinstance(ga, np.ndarray) and isinstance(gb, np.ndarray)
    assert rel_err(ga, central_difference(lambda a_: f(Tensor(a_), b).item(), a)) < TOL
    assert rel_err(gb, central_difference(lambda b_: f(a, Tensor(b_)).item(), b)) < TOL
    value, g1 = ad.value_and_grad(f, argnums=1)(a, b)
    assert np.isclose(value, f(a, b).item()) and np.allclose(g1, gb)
    assert np.allclose(ad.grad(f)(Tensor(a), b), ga)               # Tensors in, arrays out


def test_grad_of_unused_argument_is_zero_and_ints_are_promoted():
    g = ad.grad(lambda x, y: (x * 2).sum(), argnums=(0, 1))(np.array([1, 2, 3]), np.ones(2))
    assert np.array_equal(g[0], [2.0, 2.0, 2.0]) and g[0].dtype == np.float64
    assert np.array_equal(g[1], np.zeros(2))
    assert np.array_equal(ad.grad(lambda x: 3.0)(np.ones(2)), np.zeros(2))


def test_grad_needs_a_scalar():
    with pytest.raises(ValueError, match="scalar"):
        ad.grad(lambda x: x * 2)(np.ones(3))


# -- agreement with the layers ----------------------------------------------------------
@pytest.mark.parametrize("kernel, stride, padding",
                         [(3, 1, 0), (3, 2, 1), ((2, 3), 1, "same"), (3, (2, 1), (1, 0))])
def test_conv2d_matches_conv2d_layer(kernel, stride, padding):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 6, 5))
    layer = Conv2D(4, kernel, stride, padding)
    layer.build(x.shape[1:], rng, np.float64)
    layer.b.data[...] = rng.standard_normal(4)
    y_layer = layer.forward(x)
    dy = rng.standard_normal(y_layer.shape)
    dx_layer = layer.backward(dy)
    xt, Wt, bt = (Tensor(a.copy(), requires_grad=True) for a in (x, layer.W.data, layer.b.data))
    y = ad.conv2d(xt, Wt, bt, stride=stride, padding=padding)
    assert np.allclose(y.data, y_layer, atol=1e-12)
    y.backward(dy)
    for mine, theirs in ((xt.grad, dx_layer), (Wt.grad, layer.W.grad), (bt.grad, layer.b.grad)):
        assert np.allclose(mine.data, theirs, atol=1e-12)


@pytest.mark.parametrize("size, stride", [(2, None), (3, 2), ((2, 3), (1, 2))])
def test_max_pool2d_matches_layer_including_ties(size, stride):
    rng = np.random.default_rng(4)
    x = rng.integers(0, 3, (2, 3, 7, 6)).astype(np.float64)      # many ties: first maximum wins, as the layer
    layer = MaxPool2D(size, stride)
    layer.build(x.shape[1:], rng, np.float64)
    y_layer = layer.forward(x)
    dy = rng.standard_normal(y_layer.shape)
    xt = Tensor(x, requires_grad=True)
    y = ad.max_pool2d(xt, size, stride)
    assert np.array_equal(y.data, y_layer)
    y.backward(dy)
    assert np.allclose(xt.grad.data, layer.backward(dy), atol=1e-12)


def test_conv2d_errors_are_clear():
    with pytest.raises(ValueError, match="channels"):
        ad.conv2d(np.ones((1, 3, 5, 5)), np.ones((2, 2, 3, 3)))
    with pytest.raises(ValueError, match="does not fit"):
        ad.conv2d(np.ones((1, 1, 2, 2)), np.ones((1, 1, 3, 3)))
    with pytest.raises(ValueError, match="b must have shape"):
        ad.conv2d(np.ones((1, 1, 3, 3)), np.ones((2, 1, 3, 3)), np.ones(3))


# -- dtypes ---------------------------------------------------------------------------
FLOAT32_OPS = {
    "scalar_arith": lambda x: (2 * x + 1.5 - x / 3) * 0.5,
    "rdiv": lambda x: 1 / (x.abs() + 1),
    "pow": lambda x: x ** 2 + 2.0 ** x + (x.abs() + 1) ** 0.5,
    "unary": lambda x: ad.exp(x) + ad.log(x.abs() + 1) + ad.sqrt(x.abs() + 1) + ad.tanh(x) + ad.sigmoid(x),
    "piecewise": lambda x: ad.relu(x) + ad.maximum(x, 0.5) + ad.minimum(0.1, x) + ad.where(x > 0, x, 0.1)
    + ad.clip(x, -0.5, 0.5),
    "reductions": lambda x: (x.sum(axis=0) + x.mean(axis=0) + x.max(axis=0) + x.min(axis=0) + x.var(axis=0)
                             + x.std(0)),
    "softmax": lambda x: ad.softmax(x) + ad.log_softmax(x) + ad.logsumexp(x, axis=1, keepdims=True),
    "matmul": lambda x: x @ x.T,
    "shapes": lambda x: ad.concatenate([x[:, ::2], ad.pad(x, 1)[1:-1, :2]], axis=1).reshape(-1)[[0, 0, 1]],
    "stack": lambda x: ad.stack([x, x * 2]),
    "cross_entropy": lambda x: ad.cross_entropy(x, np.array([0, 2, 1])),
    "conv_pool": lambda x: ad.max_pool2d(ad.conv2d(x.reshape(1, 1, 3, 4), np.ones((2, 1, 2, 2), np.float32),
                                                  np.zeros(2, np.float32), padding=1), 2),
}


@pytest.mark.parametrize("op", FLOAT32_OPS.values(), ids=FLOAT32_OPS.keys())
def test_float32_stays_float32(op):
    x = Tensor(np.random.default_rng(5).standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    y = op(x)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_float64_array_promotes_result_but_not_the_gradient():
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    y = x * np.full(3, 2.0)                       # NumPy's rule: float32 * float64 array -> float64
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32 and np.array_equal(x.grad.data, [2, 2, 2])
    f32 = ad.grad(lambda x: (x ** 2).sum())(np.ones(2, np.float32))
    assert f32.dtype == np.float32


# -- engine behaviour -----------------------------------------------------------------
def test_repeated_indices_accumulate():
    x = Tensor(np.arange(4.0), requires_grad=True)
    x[[0, 0, 2, 0]].sum().backward()
    assert np.array_equal(x.grad.data, [3, 0, 1, 0])
    y = Tensor(np.zeros((2, 3)), requires_grad=True)
    (y[[1, 1], [2, 2]] * np.array([1.0, 10.0])).sum().backward()
    assert np.array_equal(y.grad.data, [[0, 0, 0], [0, 0, 11]])


def test_ties_share_the_gradient():
    x = Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]]), requires_grad=True)
    x.max(axis=1).sum().backward()                 # row 0: two maxima split the gradient
    assert np.array_equal(x.grad.data, [[0, 0.5, 0.5], [1, 0, 0]])
    a, b = Tensor(np.array([1.0, 2.0]), requires_grad=True), Tensor(np.array([1.0, 3.0]), requires_grad=True)
    ad.maximum(a, b).sum().backward()
    assert np.array_equal(a.grad.data, [0.5, 0]) and np.array_equal(b.grad.data, [0.5, 1])


def test_a_10000_op_chain_backpropagates():
    x = Tensor(np.array(0.5), requires_grad=True)
    y = x
    for i in range(5000):
        y = y * 1.0001 + 0.001                    # 10,000 recorded operations
    y.backward()
    assert np.isclose(x.grad.item(), 1.0001 ** 5000)
    assert ad.to_dot(y).count("->") == 10000 * 2   # each op has a tensor and a constant input
    del y
    gc.collect()                                   # freeing the chain must not recurse too deeply either


def test_gradients_accumulate_until_zero_grad():
    x = Tensor(np.array([1.0, -2.0]), requires_grad=True)
    for expected in ([2.0, -4.0], [4.0, -8.0]):
        (x * x).sum().backward()
        assert np.array_equal(x.grad.data, expected)
    x.zero_grad()
    assert x.grad is None
    (x * x).sum().backward()
    assert np.array_equal(x.grad.data, [2.0, -4.0])


def test_shared_subexpressions_sum_their_gradients():
    x = Tensor(np.array(3.0), requires_grad=True)
    y = x * x
    z = y + y * x                                  # x² + x³: 2x + 3x² = 33
    z.backward()
    assert x.grad.item() == 33.0


def test_no_grad_records_nothing():
    x = Tensor(np.ones(3), requires_grad=True)
    with ad.no_grad():
        y = ad.exp(x * 2).sum()
        assert not ad.is_grad_enabled()
        with ad.enable_grad():
            z = x * 2
    assert ad.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf and y.op is None and y._parents == ()
    assert z.requires_grad and z.op == "mul"
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()

    @ad.no_grad()
    def f(t):
        return t * 3
    assert not f(x).requires_grad


def test_backward_on_non_scalar_needs_a_gradient():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="non-scalar tensor of shape \\(2, 3\\) needs a gradient"):
        y.backward()
    y.backward(np.full((2, 3), 0.5))               # a vector-Jacobian product
    assert np.array_equal(x.grad.data, np.ones((2, 3)))
    with pytest.raises(ValueError, match="gradient has shape"):
        y.backward(np.ones(3))


def test_detach_stops_gradients():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.is_leaf and np.shares_memory(d.data, x.data)
    (x * d).sum().backward()                       # d is a constant: d/dx = d
    assert np.array_equal(x.grad.data, [1.0, 2.0])


def test_retain_grad_on_an_intermediate():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = (x * 3).retain_grad()
    (h * h).sum().backward()
    assert np.array_equal(h.grad.data, [6.0, 12.0]) and np.array_equal(x.grad.data, [18.0, 36.0])


def test_tensor_attributes():
    a = np.arange(6.0).reshape(2, 3)
    t = Tensor(a, requires_grad=True, name="x")
    assert t.shape == (2, 3) and t.ndim == 2 and t.dtype == np.float64 and t.size == 6 and len(t) == 2
    assert t.T.shape == (3, 2) and np.array_equal(t.T.data, a.T)
    assert t.numpy() is a and t.data is a and np.asarray(t) is a
    assert t[1, 2].item() == 5.0 and isinstance(t.sum().item(), float) and float(t[0, 1]) == 1.0
    assert [row.shape for row in t] == [(3,), (3,)]
    assert "requires_grad=True" in repr(t) and "op=mul" in repr(t * 2)
    assert (t > 2).dtype == bool and np.array_equal((t > 2).data, a > 2) and not (t > 2).requires_grad
    assert isinstance(np.ones(3) + t[0], Tensor) and isinstance(np.ones((3, 2)) @ t, Tensor)
    assert isinstance(np.ones(3) - t[0], Tensor) and isinstance(np.ones(3) / (t[0] + 1), Tensor)
    with pytest.raises(TypeError, match="floating-point"):
        Tensor(np.arange(3), requires_grad=True)
    with pytest.raises(ValueError, match="do not match"):
        Tensor(np.ones((2, 3))) @ np.ones((2, 3))


def test_cross_entropy_value_and_errors():
    z = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]])
    expected = np.mean([np.log(np.exp(z[0]).sum()) - 1.0, 1000.0 - 1000.0])   # stable for huge logits
    assert np.isclose(ad.cross_entropy(z, np.array([0, 0])).item(), expected)
    assert np.isclose(ad.cross_entropy(z, np.eye(3)[[0, 0]]).item(), expected)
    with pytest.raises(ValueError, match="class ids"):
        ad.cross_entropy(z, np.array([0, 3]))
    with pytest.raises(ValueError, match="shape"):
        ad.cross_entropy(z, np.ones((2, 2)))


def test_logsumexp_and_softmax_are_stable():
    z = np.array([1000.0, 1000.0, -np.inf])
    assert np.isclose(ad.logsumexp(z).item(), 1000.0 + np.log(2))
    assert np.allclose(ad.softmax(z).data, [0.5, 0.5, 0.0])
    assert np.allclose(ad.log_softmax(np.array([-1000.0, 0.0])).data, [-1000.0, 0.0])


# -- graph pictures -----------------------------------------------------------------
def small_graph():
    x = Tensor(np.ones((2, 3)), requires_grad=True, name="x")
    w = Tensor(np.ones((3, 4)), requires_grad=True, name="W")
    return ad.tanh(x @ w + 1.0).sum()


def test_to_dot_lists_ops_leaves_and_edges():
    dot = ad.to_dot(small_graph())
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    for text in ("matmul", "add", "tanh", "sum", "x\\n(2, 3)", "W\\n(3, 4)", "(2, 4)"):
        assert text in dot, text
    nodes = {line.split()[0]: line for line in dot.splitlines() if "[label=" in line}
    edges = [line.strip().rstrip(";").split(" -> ") for line in dot.splitlines() if "->" in line]
    assert len(nodes) == 7 and len(edges) == 6            # x, W, matmul, 1.0, add, tanh, sum
    label = {name: line.split('"')[1].split("\\n")[0] for name, line in nodes.items()}
    assert {(label[a], label[b]) for a, b in edges} == {
        ("x", "matmul"), ("W", "matmul"), ("matmul", "add"), ("1", "add"), ("add", "tanh"), ("tanh", "sum")}


def test_draw_graph_writes_a_png(tmp_path):
    path = ad.draw_graph(small_graph(), tmp_path / "graph.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
