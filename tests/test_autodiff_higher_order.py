"""Second (and third) derivatives: grad(grad(f)), Hessians, Hessian-vector products
and backward(create_graph=True), against second derivatives written out here.

The functions are small and the expected Hessians analytic (``Σ x³`` →
``diag(6x)``, ``logsumexp`` → ``diag(p) - p pᵀ``, ``xᵀAx`` → ``A + Aᵀ``...).
For the linear maps (convolution, pooling) the Hessian of ``½‖map(x)‖²`` is
``JᵀJ`` with ``J`` built column by column from forward passes alone; a
nonlinear network through conv2d is checked against central differences of
its gradient.
"""
import numpy as np
import pytest
from conftest import rel_err

from nnscratch import autodiff as ad
from nnscratch.autodiff import Tensor

TOL = 1e-10          # analytic against analytic: only rounding separates them
rng = np.random.default_rng(0)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


# -- scalar functions: grad(grad(f)) --------------------------------------------------
SCALAR_CASES = [
    ("cube", lambda x: x ** 3, lambda x: 6 * x),
    ("x_exp", lambda x: ad.exp(x) * x, lambda x: (x + 2) * np.exp(x)),
    ("tanh", ad.tanh, lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2)),
    ("sigmoid", ad.sigmoid, lambda x: sigmoid(x) * (1 - sigmoid(x)) * (1 - 2 * sigmoid(x))),
    ("log", ad.log, lambda x: -1 / x ** 2),
    ("sqrt", ad.sqrt, lambda x: -0.25 * x ** -1.5),
    ("reciprocal", lambda x: 1 / x, lambda x: 2 / x ** 3),
    ("power_in_exponent", lambda x: 2.0 ** x, lambda x: np.log(2) ** 2 * 2.0 ** x),
    ("x_pow_x", lambda x: x ** x, lambda x: x ** x * ((np.log(x) + 1) ** 2 + 1 / x)),
]


@pytest.mark.parametrize("f, d2f", [pytest.param(f, d2, id=n) for n, f, d2 in SCALAR_CASES])
def test_grad_of_grad(f, d2f):
    for x in (0.7, 1.3, 2.1):
        assert abs(ad.grad(ad.grad(f))(x) - d2f(x)) < 1e-10 * max(1, abs(d2f(x)))


def test_third_derivative_and_mixed_partials():
    assert np.isclose(ad.grad(ad.grad(ad.grad(lambda x: x ** 4)))(1.5), 24 * 1.5)
    def f(x, y):
        return x ** 2 * y ** 3
    d2_dx_dy = ad.grad(ad.grad(f, 1), 0)(1.5, -0.5)              # ∂/∂x (3x²y²) = 6xy²
    d2_dy_dx = ad.grad(ad.grad(f, 0), 1)(1.5, -0.5)              # ∂/∂y (2xy³) = 6xy²
    assert np.isclose(d2_dx_dy, 6 * 1.5 * 0.25) and np.isclose(d2_dy_dx, d2_dx_dy)


# -- Hessians of small functions -----------------------------------------------------
x5 = rng.standard_normal(5)
A = rng.standard_normal((5, 5))
X = rng.standard_normal((7, 5))
c5 = rng.uniform(0.5, 2.0, 5)
p5 = np.exp(x5) / np.exp(x5).sum()
t5 = np.tanh(x5)
s5 = sigmoid(x5)
softmax_hessian = np.diag(p5) - np.outer(p5, p5)


def mixed_exp_product(z):
    x, y = z[:3], z[3:]
    return (ad.exp(x) * y).sum()


def mixed_exp_hessian(z):
    x, y = z[:3], z[3:]
    H = np.zeros((6, 6))
    H[:3, :3] = np.diag(np.exp(x) * y)       # ∂²/∂x²
    H[:3, 3:] = H[3:, :3] = np.diag(np.exp(x))  # ∂²/∂x∂y; ∂²/∂y² = 0
    return H


def product_hessian(x):
    n = len(x)
    H = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                H[i, j] = np.prod([x[k] for k in range(n) if k not in (i, j)])
    return H


HESSIAN_CASES = [
    ("sum_cubes", lambda x: (x ** 3).sum(), x5, np.diag(6 * x5)),
    ("exp_times_y", mixed_exp_product, np.concatenate([x5[:3], c5[:3]]), mixed_exp_hessian(
        np.concatenate([x5[:3], c5[:3]]))),
    ("logsumexp", ad.logsumexp, x5, softmax_hessian),
    ("log_softmax_entry", lambda x: -ad.log_softmax(x)[2], x5, softmax_hessian),
    ("cross_entropy_id", lambda x: ad.cross_entropy(x.reshape(1, -1), np.array([3])), x5, softmax_hessian),
    ("quadratic_form", lambda x: x @ A @ x, x5, A + A.T),
    ("quadratic_form_batched", lambda x: (x.reshape(2, 1, 5) @ A @ x.reshape(2, 5, 1)).sum(),
     np.concatenate([x5, c5]), np.kron(np.eye(2), A + A.T)),
    ("least_squares", lambda w: ((X @ w) ** 2).sum(), x5, 2 * X.T @ X),
    ("tanh", lambda x: ad.tanh(x).sum(), x5, np.diag(-2 * t5 * (1 - t5 ** 2))),
    ("sigmoid", lambda x: ad.sigmoid(x).sum(), x5, np.diag(s5 * (1 - s5) * (1 - 2 * s5))),
    ("product", lambda x: x[0] * x[1] * x[2] * x[3], x5[:4], product_hessian(x5[:4])),
    ("reciprocal", lambda x: (1 / x).sum(), c5, np.diag(2 / c5 ** 3)),
    ("sqrt", lambda x: ad.sqrt(x).sum(), c5, np.diag(-0.25 * c5 ** -1.5)),
    ("variance", lambda x: x.var(), x5, 2 / 5 * (np.eye(5) - 1 / 5)),
    ("norm", lambda x: ad.sqrt((x * x).sum()), x5,
     (np.eye(5) - np.outer(x5, x5) / (x5 @ x5)) / np.linalg.norm(x5)),
    ("relu_times_x", lambda x: (ad.relu(x) * x).sum(), x5, np.diag(2.0 * (x5 > 0))),
    ("where", lambda x: ad.where(x > 0, x ** 2, x ** 3).sum(), x5, np.diag(np.where(x5 > 0, 2, 6 * x5))),
    ("max_squared", lambda x: x.max() ** 2, x5, 2 * np.outer(x5 == x5.max(), x5 == x5.max())),
    ("abs_cubed", lambda x: (ad.abs(x) ** 3).sum(), x5, np.diag(6 * np.abs(x5))),
    ("pad_concat_stack",
     lambda x: (ad.stack([ad.pad(x[:2], 1), ad.concatenate([x[2:], x[:1]])]) ** 2 * 3).sum(),
     x5, np.diag([12.0, 6, 6, 6, 6])),
    ("mean_exp", lambda x: ad.exp(x).mean(), x5, np.diag(np.exp(x5) / 5)),
]


@pytest.mark.parametrize("f, x, H", [pytest.param(f, x, H, id=n) for n, f, x, H in HESSIAN_CASES])
def test_hessian(f, x, H):
    got = ad.hessian(f)(x)
    assert got.shape == (x.size, x.size)
    assert rel_err(got, H) < TOL


@pytest.mark.parametrize("f, x, H", [pytest.param(f, x, H, id=n) for n, f, x, H in HESSIAN_CASES])
def test_hessian_vector_product(f, x, H):
    v = np.random.default_rng(1).standard_normal(x.shape)
    assert rel_err(ad.hvp(f, x, v), H @ v) < TOL


def test_soft_target_cross_entropy_hessian():
    z = rng.standard_normal((3, 4))
    t = rng.uniform(0.1, 1.0, (3, 4))
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    H = ad.hessian(lambda z_: ad.cross_entropy(z_, t))(z)
    expected = np.zeros((3, 4, 3, 4))
    for i in range(3):                                   # rows are independent: block diagonal
        expected[i, :, i, :] = t[i].sum() * (np.diag(p[i]) - np.outer(p[i], p[i])) / 3
    assert rel_err(H, expected) < TOL


def test_jacobian_of_softmax():
    assert rel_err(ad.jacobian(ad.softmax)(x5), softmax_hessian) < TOL


def test_hessian_of_matrix_argument_has_doubled_shape():
    W = rng.standard_normal((2, 3))
    H = ad.hessian(lambda w: (w ** 3).sum())(W)
    assert H.shape == (2, 3, 2, 3)
    assert rel_err(H.reshape(6, 6), np.diag(6 * W.reshape(-1))) < TOL


def test_float32_hessian_stays_float32():
    x = x5.astype(np.float32)
    H = ad.hessian(lambda x: (x ** 3).sum() * 0.5)(x)
    assert H.dtype == np.float32
    assert np.allclose(H, np.diag(3 * x), rtol=1e-6)
    assert ad.hvp(lambda x: ad.logsumexp(x), x, np.ones(5, np.float32)).dtype == np.float32


# -- backward(create_graph=True) ---------------------------------------------------------
def test_backward_create_graph_gives_differentiable_gradients():
    x = Tensor(x5.copy(), requires_grad=True)
    (x ** 3).sum().backward(create_graph=True)
    g = x.grad
    assert g.requires_grad and np.allclose(g.data, 3 * x5 ** 2)
    x.zero_grad()
    v = np.arange(5.0)
    (g * v).sum().backward()                              # Hv = diag(6x) v
    assert np.allclose(x.grad.data, 6 * x5 * v)
    assert not x.grad.requires_grad                       # a plain backward records nothing


def test_plain_backward_gradients_are_constants():
    x = Tensor(x5.copy(), requires_grad=True)
    (x ** 3).sum().backward()
    assert not x.grad.requires_grad and x.grad.is_leaf


def test_grad_inside_a_graph_returns_tensors():
    x = Tensor(x5.copy(), requires_grad=True)
    g = ad.grad(lambda x: (ad.exp(x) * x).sum())(x)      # Tensor in with grad on: differentiable out
    assert isinstance(g, Tensor) and g.requires_grad
    g.sum().backward()
    assert np.allclose(x.grad.data, (x5 + 2) * np.exp(x5))
    with ad.no_grad():
        assert isinstance(ad.grad(lambda x: (x * x).sum())(x), np.ndarray)


def test_nested_grad_through_a_closure():
    # d/dy Σ ∂/∂x Σ x²y = d/dy Σ 2xy = 2 Σ x: the inner grad sees y only through the closure
    x0 = np.array([1.0, 2.0, 4.0])
    outer = ad.grad(lambda y: ad.grad(lambda x: (x ** 2 * y).sum())(x0).sum())(0.5)
    assert np.isclose(outer, 2 * x0.sum())


def test_gradients_functional_on_intermediate_tensors():
    x = Tensor(x5.copy(), requires_grad=True)
    h = ad.tanh(x)
    y = (h * h).sum()
    gh, gx = ad.gradients(y, [h, x])
    assert np.allclose(gh.data, 2 * t5) and np.allclose(gx.data, 2 * t5 * (1 - t5 ** 2))
    assert x.grad is None                                 # gradients() leaves .grad alone


# -- convolution and pooling, to second order --------------------------------------
def columns_of(linear, shape):
    """The matrix of a linear map, one forward pass per basis vector."""
    cols = []
    for k in range(int(np.prod(shape))):
        e = np.zeros(int(np.prod(shape)))
        e[k] = 1
        cols.append(linear(e.reshape(shape)).reshape(-1))
    return np.stack(cols, axis=1)


CONV_X = rng.standard_normal((1, 2, 4, 5))
CONV_W = rng.standard_normal((3, 2, 3, 2))


@pytest.mark.parametrize("stride, padding", [(1, 0), (2, 1), (1, "same")])
def test_conv2d_hessians_are_JtJ(stride, padding):
    def conv(x, w):
        return ad.conv2d(x, w, stride=stride, padding=padding)

    J_x = columns_of(lambda x: conv(x, CONV_W).data, CONV_X.shape)
    H_x = ad.hessian(lambda x: (conv(x, CONV_W) ** 2).sum() / 2)(CONV_X)
    assert rel_err(H_x.reshape(J_x.shape[1], -1), J_x.T @ J_x) < TOL
    J_w = columns_of(lambda w: conv(CONV_X, w).data, CONV_W.shape)
    v = rng.standard_normal(CONV_W.shape)
    Hv = ad.hvp(lambda w: (conv(CONV_X, w) ** 2).sum() / 2, CONV_W, v)
    assert rel_err(Hv.reshape(-1), J_w.T @ J_w @ v.reshape(-1)) < TOL


def test_conv2d_mixed_second_derivative_against_differences_of_the_gradient():
    b = rng.standard_normal(3)
    def f(x, w):
        return ad.tanh(ad.conv2d(x, w, b, stride=1, padding=1)).sum()

    grad_w = ad.grad(f, 1)
    v = rng.standard_normal(CONV_X.shape)
    # ∂/∂x ⟨∇_w f, u⟩ along v, against central differences of ∇_w f in x
    u = rng.standard_normal(CONV_W.shape)
    mixed = ad.grad(lambda x: (grad_w(x, CONV_W) * u).sum())(CONV_X)
    eps = 1e-5
    numeric = ((grad_w(CONV_X + eps * v, CONV_W) - grad_w(CONV_X - eps * v, CONV_W)) / (2 * eps) * u).sum()
    assert abs((mixed * v).sum() - numeric) < 1e-7 * max(1, abs(numeric))


@pytest.mark.parametrize("size, stride", [(2, None), (3, 2)])
def test_max_pool2d_hessian(size, stride):
    x = rng.standard_normal((1, 2, 5, 5))
    H = ad.hessian(lambda x: (ad.max_pool2d(x, size, stride) ** 3).sum())(x).reshape(x.size, x.size)
    k, s = size, stride or size
    times_max = np.zeros(x.shape)                        # how many windows pick each entry
    for i in range(0, 5 - k + 1, s):
        for j in range(0, 5 - k + 1, s):
            for c in range(2):
                window = x[0, c, i:i + k, j:j + k]
                u, v = np.unravel_index(window.argmax(), window.shape)
                times_max[0, c, i + u, j + v] += 1
    assert rel_err(H, np.diag((6 * x * times_max).reshape(-1))) < TOL


def test_avg_pool2d_hessian_is_PtP():
    x = rng.standard_normal((1, 1, 4, 5))
    P = columns_of(lambda x: ad.avg_pool2d(x, 2, stride=1).data, x.shape)
    H = ad.hessian(lambda x: (ad.avg_pool2d(x, 2, stride=1) ** 2).sum())(x).reshape(x.size, x.size)
    assert rel_err(H, 2 * P.T @ P) < TOL
