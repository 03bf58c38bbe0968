"""Optimizers against reference updates written here from the algorithms that
``torch.optim`` documents (SGD, Adam, AdamW, RMSprop), in plain float64 NumPy,
one parameter at a time. torch itself is not imported."""
import numpy as np
import pytest

from nnscratch.layers import Parameter
from nnscratch.optimizers import SGD, Adam, AdamW, RMSprop, get_optimizer

from conftest import central_difference

RTOL = 1e-12
ATOL = 1e-15
STEPS = 5


def make_problem(seed=0):
    """A weight (decayed) and a bias (not decayed), and a fixed gradient
    sequence for each, different at every step."""
    rng = np.random.default_rng(seed)
    W0 = rng.standard_normal((3, 4))
    b0 = rng.standard_normal(3)
    grads = [(rng.standard_normal((3, 4)), rng.standard_normal(3)) for _ in range(STEPS)]
    return W0, b0, grads


def params_from(W0, b0):
    return [Parameter(W0.copy(), "W"), Parameter(b0.copy(), "b", decay=False)]


def run_library(opt, W0, b0, grads, steps):
    params = params_from(W0, b0)
    history = []
    for k in range(steps):
        params[0].grad = grads[k][0].copy()
        params[1].grad = grads[k][1].copy()
        opt.step(params)
        history.append((params[0].data.copy(), params[1].data.copy()))
    return history


# -- references, from the documented pseudo-code -------------------------------------
def ref_sgd(theta, grads, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    theta = theta.copy()
    out, b = [], None
    for t, g in enumerate(grads, start=1):
        g = g.copy()
        if weight_decay != 0:
            g = g + weight_decay * theta
        if momentum != 0:
            if t > 1:
                b = momentum * b + (1 - dampening) * g
            else:
                b = g.copy()
            if nesterov:
                g = g + momentum * b
            else:
                g = b
        theta = theta - lr * g
        out.append(theta.copy())
    return out


def ref_adam(theta, grads, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False):
    theta = theta.copy()
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    out = []
    for t, g in enumerate(grads, start=1):
        if decoupled:
            theta = theta - lr * weight_decay * theta
        elif weight_decay != 0:
            g = g + weight_decay * theta
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g ** 2
        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(theta.copy())
    return out


def ref_rmsprop(theta, grads, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    theta = theta.copy()
    v = np.zeros_like(theta)
    g_ave = np.zeros_like(theta)
    buf = np.zeros_like(theta)
    out = []
    for g in grads:
        if weight_decay != 0:
            g = g + weight_decay * theta
        v = alpha * v + (1 - alpha) * g ** 2
        v_tilde = v
        if centered:
            g_ave = alpha * g_ave + (1 - alpha) * g
            v_tilde = v_tilde - g_ave ** 2
        if momentum > 0:
            buf = momentum * buf + g / (np.sqrt(v_tilde) + eps)
            theta = theta - lr * buf
        else:
            theta = theta - lr * g / (np.sqrt(v_tilde) + eps)
        out.append(theta.copy())
    return out


# (name, optimizer factory, reference function, reference kwargs)
CASES = [
    ("sgd", lambda: SGD(lr=0.1), ref_sgd, dict(lr=0.1)),
    ("sgd_momentum", lambda: SGD(lr=0.05, momentum=0.9), ref_sgd, dict(lr=0.05, momentum=0.9)),
    ("sgd_dampening", lambda: SGD(lr=0.05, momentum=0.8, dampening=0.3), ref_sgd,
     dict(lr=0.05, momentum=0.8, dampening=0.3)),
    ("sgd_nesterov", lambda: SGD(lr=0.05, momentum=0.9, nesterov=True), ref_sgd,
     dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("sgd_weight_decay", lambda: SGD(lr=0.1, weight_decay=0.2), ref_sgd, dict(lr=0.1, weight_decay=0.2)),
    ("sgd_all", lambda: SGD(lr=0.05, momentum=0.7, nesterov=True, weight_decay=0.1), ref_sgd,
     dict(lr=0.05, momentum=0.7, nesterov=True, weight_decay=0.1)),
    ("adam", lambda: Adam(lr=0.01), ref_adam, dict(lr=0.01)),
    ("adam_betas_eps", lambda: Adam(lr=0.03, betas=(0.8, 0.9), eps=1e-3), ref_adam,
     dict(lr=0.03, beta1=0.8, beta2=0.9, eps=1e-3)),
    ("adam_weight_decay", lambda: Adam(lr=0.01, weight_decay=0.3), ref_adam,
     dict(lr=0.01, weight_decay=0.3)),
    ("adamw", lambda: AdamW(lr=0.01), ref_adam, dict(lr=0.01, weight_decay=0.01, decoupled=True)),
    ("adamw_strong", lambda: AdamW(lr=0.02, betas=(0.85, 0.95), weight_decay=0.5), ref_adam,
     dict(lr=0.02, beta1=0.85, beta2=0.95, weight_decay=0.5, decoupled=True)),
    ("rmsprop", lambda: RMSprop(lr=0.01), ref_rmsprop, dict(lr=0.01)),
    ("rmsprop_alpha_eps", lambda: RMSprop(lr=0.02, alpha=0.7, eps=1e-2), ref_rmsprop,
     dict(lr=0.02, alpha=0.7, eps=1e-2)),
    ("rmsprop_centered", lambda: RMSprop(lr=0.01, alpha=0.9, centered=True), ref_rmsprop,
     dict(lr=0.01, alpha=0.9, centered=True)),
    ("rmsprop_momentum", lambda: RMSprop(lr=0.01, momentum=0.8), ref_rmsprop, dict(lr=0.01, momentum=0.8)),
    ("rmsprop_centered_momentum_wd",
     lambda: RMSprop(lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.1), ref_rmsprop,
     dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.1)),
]


def no_decay(kwargs):
    """Reference kwargs for a parameter that weight decay skips."""
    return {k: v for k, v in kwargs.items() if k != "weight_decay"}


@pytest.mark.parametrize("steps", [1, STEPS])
@pytest.mark.parametrize("name,make,ref,kw", CASES, ids=[c[0] for c in CASES])
def test_matches_documented_algorithm(name, make, ref, kw, steps):
    W0, b0, grads = make_problem(seed=len(name))
    got = run_library(make(), W0, b0, grads, steps)
    want_W = ref(W0, [g[0] for g in grads[:steps]], **kw)
    want_b = ref(b0, [g[1] for g in grads[:steps]], **no_decay(kw))  # the bias is not decayed
    for k in range(steps):
        np.testing.assert_allclose(got[k][0], want_W[k], rtol=RTOL, atol=ATOL, err_msg=f"W, step {k + 1}")
        np.testing.assert_allclose(got[k][1], want_b[k], rtol=RTOL, atol=ATOL, err_msg=f"b, step {k + 1}")


def test_references_distinguish_variants():
    """The variants really differ on this problem, so each case above tests its option."""
    W0, _, grads = make_problem()
    gs = [g[0] for g in grads]
    finals = {name: ref(W0, gs, **kw)[-1] for name, _, ref, kw in CASES}
    names = list(finals)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not np.allclose(finals[a], finals[b], rtol=1e-6, atol=1e-9), (a, b)


def test_first_sgd_step_by_hand():
    """One step worked out with plain numbers: θ - γ(g + λθ)."""
    p = Parameter(np.array([1.0, -2.0]), "W")
    p.grad = np.array([0.5, 0.25])
    SGD(lr=0.1, weight_decay=0.5, momentum=0.9).step([p])
    np.testing.assert_allclose(p.data, [1.0 - 0.1 * (0.5 + 0.5), -2.0 - 0.1 * (0.25 - 1.0)], rtol=1e-14)


def test_first_adam_step_is_lr_times_sign():
    """Bias correction makes Adam's first step ≈ γ·sign(g), whatever |g| is."""
    p = Parameter(np.array([0.0, 0.0, 0.0]), "W")
    p.grad = np.array([3.0, -0.002, 50.0])
    Adam(lr=0.1).step([p])
    np.testing.assert_allclose(p.data, [-0.1, 0.1, -0.1], rtol=1e-5)


# -- weight decay and decay flags -----------------------------------------------------
@pytest.mark.parametrize("make", [lambda **k: SGD(lr=0.1, weight_decay=0.5, **k),
                                  lambda **k: Adam(lr=0.1, weight_decay=0.5, **k),
                                  lambda **k: AdamW(lr=0.1, weight_decay=0.5, **k),
                                  lambda **k: RMSprop(lr=0.1, weight_decay=0.5, **k)],
                         ids=["sgd", "adam", "adamw", "rmsprop"])
def test_weight_decay_skips_biases_unless_decay_all(make):
    """With zero gradients only decay moves a parameter."""
    def after_step(decay_all):
        W = Parameter(np.full((2, 2), 2.0), "W")
        b = Parameter(np.full(2, 2.0), "b", decay=False)
        W.grad, b.grad = np.zeros((2, 2)), np.zeros(2)
        make(decay_all=decay_all).step([W, b])
        return W.data.copy(), b.data.copy()

    W, b = after_step(False)
    assert np.all(W < 2.0)                     # decayed toward 0
    np.testing.assert_array_equal(b, [2.0, 2.0])  # untouched
    W2, b2 = after_step(True)
    np.testing.assert_allclose(b2, W2[0], rtol=1e-14)  # the bias now decays exactly like the weight
    assert np.all(b2 < 2.0)


def test_sgd_weight_decay_value_on_bias_with_decay_all():
    b = Parameter(np.array([4.0]), "b", decay=False)
    b.grad = np.array([1.0])
    SGD(lr=0.1, weight_decay=0.5, decay_all=True).step([b])
    np.testing.assert_allclose(b.data, [4.0 - 0.1 * (1.0 + 0.5 * 4.0)], rtol=1e-14)


# -- clip_norm -------------------------------------------------------------------
def test_clip_norm_uses_global_norm():
    W = Parameter(np.zeros((2, 2)), "W")
    b = Parameter(np.zeros(3), "b", decay=False)
    gW = np.array([[3.0, 0.0], [0.0, 4.0]])  # ‖gW‖ = 5
    gb = np.array([0.0, 12.0, 0.0])          # ‖gb‖ = 12; global ‖g‖ = 13
    W.grad, b.grad = gW.copy(), gb.copy()
    SGD(lr=1.0, clip_norm=2.6).step([W, b])  # scale 2.6 / 13 = 0.2 for both
    np.testing.assert_allclose(W.data, -0.2 * gW, rtol=1e-6)
    np.testing.assert_allclose(b.data, -0.2 * gb, rtol=1e-6)
    total = np.sqrt(np.sum(W.data ** 2) + np.sum(b.data ** 2))
    assert total == pytest.approx(2.6, rel=1e-6)
    # the caller's gradients are not modified
    np.testing.assert_array_equal(W.grad, gW)
    np.testing.assert_array_equal(b.grad, gb)


def test_clip_norm_leaves_small_gradients_alone():
    W = Parameter(np.zeros(2), "W")
    W.grad = np.array([0.3, 0.4])  # norm 0.5 < 1
    SGD(lr=1.0, clip_norm=1.0).step([W])
    np.testing.assert_allclose(W.data, [-0.3, -0.4], rtol=1e-14)


def test_clip_norm_then_adam_state_sees_clipped_gradient():
    """Clipping happens before the optimizer's own arithmetic (as with
    torch.nn.utils.clip_grad_norm_ before optimizer.step())."""
    W0, b0, grads = make_problem(seed=3)
    c = 0.5
    got = run_library(RMSprop(lr=0.01, clip_norm=c), W0, b0, grads, STEPS)
    clipped = []
    for gW, gb in grads:
        norm = np.sqrt(np.sum(gW ** 2) + np.sum(gb ** 2))
        s = min(1.0, c / norm)
        clipped.append((gW * s, gb * s))
    want_W = ref_rmsprop(W0, [g[0] for g in clipped], lr=0.01)
    want_b = ref_rmsprop(b0, [g[1] for g in clipped], lr=0.01)
    np.testing.assert_allclose(got[-1][0], want_W[-1], rtol=1e-6)
    np.testing.assert_allclose(got[-1][1], want_b[-1], rtol=1e-6)


# -- undo_last_step ----------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: SGD(lr=0.1, momentum=0.9, weight_decay=0.1),
                                  lambda: Adam(lr=0.01), lambda: AdamW(lr=0.01),
                                  lambda: RMSprop(lr=0.01, centered=True, momentum=0.5)],
                         ids=["sgd", "adam", "adamw", "rmsprop"])
def test_undo_last_step_restores_exactly(make):
    W0, b0, grads = make_problem(seed=4)
    params = params_from(W0, b0)
    opt = make()
    before = None
    for k in range(3):
        before = [p.data.copy() for p in params]
        params[0].grad, params[1].grad = grads[k][0].copy(), grads[k][1].copy()
        opt.step(params)
        assert not np.array_equal(params[0].data, before[0])
    opt.undo_last_step()
    for p, old in zip(params, before):
        assert np.array_equal(p.data, old)


def test_undo_after_first_step_gives_initial_values():
    W0, b0, grads = make_problem(seed=5)
    params = params_from(W0, b0)
    params[0].grad, params[1].grad = grads[0]
    opt = SGD(lr=0.5)
    opt.step(params)
    opt.undo_last_step()
    assert np.array_equal(params[0].data, W0) and np.array_equal(params[1].data, b0)


# -- penalty -----------------------------------------------------------------------
def test_penalty_is_half_lambda_sum_of_squares_over_decayed_params():
    W = Parameter(np.array([[1.0, 2.0], [3.0, -1.0]]), "W")  # Σ w² = 15
    V = Parameter(np.array([0.5, -0.5]), "V")               # Σ v² = 0.5
    b = Parameter(np.array([10.0, 10.0]), "b", decay=False)  # Σ b² = 200, skipped
    params = [W, V, b]
    assert SGD(lr=0.1, weight_decay=0.2).penalty(params) == pytest.approx(0.1 * 15.5, rel=1e-14)
    assert SGD(lr=0.1, weight_decay=0.2, decay_all=True).penalty(params) == pytest.approx(
        0.1 * 215.5, rel=1e-14)
    assert SGD(lr=0.1).penalty(params) == 0.0
    assert Adam(lr=0.1, weight_decay=0.4).penalty(params) == pytest.approx(0.2 * 15.5, rel=1e-14)


def test_sgd_decay_is_gradient_of_penalty():
    """Coupled decay adds λθ to the gradient: the gradient of the penalty."""
    rng = np.random.default_rng(6)
    W = Parameter(rng.standard_normal(4), "W")
    W.grad = np.zeros(4)
    opt = SGD(lr=1.0, weight_decay=0.3)
    num = central_difference(lambda v: opt.penalty([Parameter(v, "W")]), W.data.copy())
    theta = W.data.copy()
    opt.step([W])
    np.testing.assert_allclose(theta - W.data, num, rtol=1e-7)


# -- bad hyperparameters -----------------------------------------------------------
@pytest.mark.parametrize("cls", [SGD, Adam, AdamW, RMSprop])
@pytest.mark.parametrize("lr", [0.0, -0.01])
def test_non_positive_lr_rejected(cls, lr):
    with pytest.raises(ValueError, match="lr"):
        cls(lr=lr)


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW, RMSprop])
def test_negative_weight_decay_rejected(cls):
    with pytest.raises(ValueError, match="weight_decay"):
        cls(lr=0.1, weight_decay=-1e-4)


def test_nesterov_needs_momentum_and_no_dampening():
    with pytest.raises(ValueError):
        SGD(lr=0.1, nesterov=True)
    with pytest.raises(ValueError):
        SGD(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)
    SGD(lr=0.1, momentum=0.9, nesterov=True)  # fine


@pytest.mark.parametrize("clip", [0.0, -1.0])
def test_non_positive_clip_norm_rejected(clip):
    with pytest.raises(ValueError):
        SGD(lr=0.1, clip_norm=clip)


def test_get_optimizer():
    opt = Adam(lr=0.5)
    assert get_optimizer(opt) is opt
    assert type(get_optimizer("adamw")) is AdamW and type(get_optimizer("SGD")) is SGD
    with pytest.raises(ValueError):
        get_optimizer("lbfgs")



def test_adam_moments_match_pytorchs_exp_avg_and_exp_avg_sq():
    rng = np.random.default_rng(11)
    p = Parameter(rng.standard_normal((3, 4)), "W")
    opt = Adam(lr=1e-2, betas=(0.8, 0.95))
    m = np.zeros((3, 4))
    v = np.zeros((3, 4))
    for _ in range(3):
        g = rng.standard_normal((3, 4))
        p.grad = g
        opt.step([p])
        m = 0.8 * m + 0.2 * g            # exp_avg
        v = 0.95 * v + 0.05 * g * g      # exp_avg_sq
    exp_avg, exp_avg_sq = opt.moments(0)
    np.testing.assert_allclose(exp_avg, m, rtol=1e-12)
    np.testing.assert_allclose(exp_avg_sq, v, rtol=1e-12)
