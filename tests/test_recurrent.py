"""Recurrent layers (RNN, LSTM, GRU) and Embedding.

- float64 finite-difference checks of input, weights, biases and the initial
  state, for one step and several, batches of one and odd sizes;
- stacked recurrent layers checked through ``Network.check_gradients``;
- the forward pass (of both ``impl="fast"`` and ``impl="naive"``) against a
  plain per-sample, per-step loop written here from the equations PyTorch
  documents for ``nn.RNN``, ``nn.LSTM`` and ``nn.GRU`` (torch itself is not
  imported); the two impls against each other are in test_recurrent_twins.py;
- stateful mode (truncated BPTT), gradient clipping, Embedding, errors, and
  tiny models that learn a toy sequence task.
"""
import numpy as np
import pytest
from conftest import TOL, assert_all_small, assert_rows_small, built, central_difference, randn, rel_err

from nnscratch import SGD, Adam, Network, gradcheck
from nnscratch.layers import GRU, LSTM, RNN, Embedding, FullyConnected

KINDS = {
    "rnn_tanh": lambda H, **kw: RNN(H, activation="tanh", **kw),
    "rnn_relu": lambda H, **kw: RNN(H, activation="relu", **kw),
    "lstm": lambda H, **kw: LSTM(H, **kw),
    "gru": lambda H, **kw: GRU(H, **kw),
}
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
PARAM_NAMES = {"input", "W_ih", "W_hh", "b_ih", "b_hh"}

# (N, T, D, H): one step and one sample, odd sizes, a longer sequence.
SHAPES = [(1, 1, 3, 2), (3, 6, 4, 5), (1, 6, 2, 3), (5, 1, 1, 3)]


def make(kind, H, input_shape, seed=0, dtype=np.float64, **kw):
    return built(KINDS[kind](H, **kw), input_shape, seed, dtype)


def activation_of(kind):
    return "relu" if kind == "rnn_relu" else "tanh"


# -- the reference: PyTorch's documented equations, one sample and one step at a time --
def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def reference_forward(kind, x, W_ih, W_hh, b_ih, b_hh, h0=None, c0=None):
    """Returns (every h (N, T, H), final h (N, H), final c or None, pre-activations of the RNN)."""
    N, T, _ = x.shape
    H = W_hh.shape[1]
    out = np.zeros((N, T, H))
    final_c = np.zeros((N, H))
    pre = np.zeros((N, T, H))
    for n in range(N):
        h = np.zeros(H) if h0 is None else h0[n].copy()
        c = np.zeros(H) if c0 is None else c0[n].copy()
        for t in range(T):
            xt = x[n, t]
            if kind.startswith("rnn"):
                a = W_ih @ xt + b_ih + W_hh @ h + b_hh
                pre[n, t] = a
                h = np.tanh(a) if kind == "rnn_tanh" else np.maximum(a, 0.0)
            elif kind == "lstm":
                W_ii, W_if, W_ig, W_io = np.split(W_ih, 4)
                W_hi, W_hf, W_hg, W_ho = np.split(W_hh, 4)
                b_ii, b_if, b_ig, b_io = np.split(b_ih, 4)
                b_hi, b_hf, b_hg, b_ho = np.split(b_hh, 4)
                i = sigmoid(W_ii @ xt + b_ii + W_hi @ h + b_hi)
                f = sigmoid(W_if @ xt + b_if + W_hf @ h + b_hf)
                g = np.tanh(W_ig @ xt + b_ig + W_hg @ h + b_hg)
                o = sigmoid(W_io @ xt + b_io + W_ho @ h + b_ho)
                c = f * c + i * g
                h = o * np.tanh(c)
            else:  # gru
                W_ir, W_iz, W_in = np.split(W_ih, 3)
                W_hr, W_hz, W_hn = np.split(W_hh, 3)
                b_ir, b_iz, b_in = np.split(b_ih, 3)
                b_hr, b_hz, b_hn = np.split(b_hh, 3)
                r = sigmoid(W_ir @ xt + b_ir + W_hr @ h + b_hr)
                z = sigmoid(W_iz @ xt + b_iz + W_hz @ h + b_hz)
                nn_ = np.tanh(W_in @ xt + b_in + r * (W_hn @ h + b_hn))
                h = (1 - z) * nn_ + z * h
            out[n, t] = h
        final_c[n] = c
    return out, out[:, -1], (final_c if kind == "lstm" else None), pre


def ref_of(layer, kind, x, h0=None, c0=None):
    return reference_forward(kind, x, layer.W_ih.data, layer.W_hh.data, layer.b_ih.data, layer.b_hh.data,
                             h0, c0)


def relu_margin_ok(layer, x, h0=None, margin=1e-3):
    """ReLU RNN: no pre-activation within ``margin`` of the kink (else central differences straddle it),
    and both sides of the kink are present."""
    pre = ref_of(layer, "rnn_relu", x, h0)[3]
    return np.abs(pre).min() > margin and (pre > 0).any() and (pre < 0).any()


# -- 1. finite-difference checks ------------------------------------------------------------
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
@pytest.mark.parametrize("N,T,D,H", SHAPES, ids=str)
@pytest.mark.parametrize("kind", list(KINDS))
def test_gradcheck_input_and_parameters(kind, N, T, D, H, return_sequences):
    layer = make(kind, H, (T, D), seed=1, return_sequences=return_sequences)
    x = randn((N, T, D), 2)
    if kind == "rnn_relu":
        # The first input seed whose pre-activations all keep away from the kink at 0
        # (with both signs present once there are enough of them).
        ok = relu_margin_ok if N * T * H > 4 else lambda l, v: np.abs(ref_of(l, kind, v)[3]).min() > 1e-3
        seed = next(s for s in range(2, 50) if ok(layer, randn((N, T, D), s)))
        x = randn((N, T, D), seed)
    y = layer.forward(x)
    assert y.shape == ((N, T, H) if return_sequences else (N, H))
    assert_all_small(gradcheck.check_layer(layer, x), PARAM_NAMES)


@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_initial_state_and_parameter_gradients_by_central_difference(kind, return_sequences):
    """Backward with a non-zero initial state, against conftest.central_difference of
    L = Σ forward(x, initial_state) ⊙ R: the initial state's gradient and every parameter's."""
    N, T, D, H = 3, 4, 2, 3
    layer = make(kind, H, (T, D), seed=3, return_sequences=return_sequences)
    rng = np.random.default_rng(8)
    for p in layer.parameters():  # larger than the init, so the gradients reaching h0 are not tiny
        p.data[...] = rng.uniform(-1.0, 1.0, p.data.shape)
    x = randn((N, T, D), 4)
    h0 = randn((N, H), 5, 0.7)
    c0 = randn((N, H), 6, 0.7)
    if kind == "rnn_relu":
        assert relu_margin_ok(layer, x, h0)

    def state(h, c):
        return (h, c) if kind == "lstm" else h

    y = layer.forward(x, True, initial_state=state(h0, c0))
    R = randn(y.shape, 7)
    dx = layer.backward(R)

    def loss(x_=x, h=h0, c=c0):
        return float(np.sum(layer.forward(x_, True, initial_state=state(h, c)) * R))

    if kind == "lstm":
        dh0, dc0 = layer.initial_state_grad
        assert rel_err(dc0, central_difference(lambda v: loss(c=v), c0)) < TOL
    else:
        dh0 = layer.initial_state_grad
    assert dh0.shape == (N, H)
    assert rel_err(dh0, central_difference(lambda v: loss(h=v), h0)) < TOL
    assert rel_err(dx, central_difference(lambda v: loss(x_=v), x)) < TOL

    analytic = {p.name: p.grad.copy() for p in layer.parameters()}
    for p in layer.parameters():
        original = p.data.copy()

        def loss_p(v, p=p):
            p.data = v
            return loss()

        numeric = central_difference(loss_p, original)
        p.data = original
        assert rel_err(analytic[p.name], numeric) < TOL, p.name


def test_initial_state_gradient_is_not_zero_and_differs_from_zero_state():
    """A guard on the test above: the initial state matters (the gradient is not 0)
    and the forward depends on it."""
    layer = make("lstm", 3, (4, 2), seed=3, return_sequences=True)
    x = randn((2, 4, 2), 4)
    h0, c0 = randn((2, 3), 5), randn((2, 3), 6)
    y0 = layer.forward(x, True)
    y1 = layer.forward(x, True, initial_state=(h0, c0))
    assert np.abs(y1 - y0).max() > 1e-3
    layer.backward(np.ones_like(y1))
    assert np.abs(layer.initial_state_grad[0]).max() > 1e-3
    assert np.abs(layer.initial_state_grad[1]).max() > 1e-3


# -- 2. stacks ------------------------------------------------------------------------------
def test_stacked_lstm_gru_rnn_network_check_gradients():
    T, D = 5, 3
    net = Network((T, D), seed=0, dtype=np.float64)
    net.add_lstm_layer(4, return_sequences=True)
    net.add_gru_layer(3, return_sequences=True)
    net.add_rnn_layer(4)
    net.add_fc_layer(3)
    net.add_softmax_layer()
    X = randn((5, T, D), 1)
    y = np.random.default_rng(2).integers(0, 3, 5)
    rows = net.check_gradients(X, y, verbose=False)
    checked = {(r["layer"], r["what"]) for r in rows}
    for name in ("lstm1", "gru1", "rnn1"):
        assert {(name, w) for w in PARAM_NAMES} <= checked
    assert {("fc1", "W"), ("fc1", "b"), ("fc1", "input")} <= checked
    assert_rows_small(rows)


def test_sequence_output_network_with_per_step_dense_check_gradients():
    """LSTM over every step -> FC applied per step -> softmax, with (N, T) class-id targets."""
    T, D, V = 4, 3, 5
    net = Network((T, D), seed=1, dtype=np.float64)
    net.add_lstm_layer(4, return_sequences=True)
    net.add_fc_layer(V)
    net.add_softmax_layer()
    assert net.output_shape == (T, V)
    X = randn((3, T, D), 3)
    y = np.random.default_rng(4).integers(0, V, (3, T))
    rows = net.check_gradients(X, y, verbose=False)
    assert len(rows) == 5 + 3
    assert_rows_small(rows)


@pytest.mark.parametrize("N,T,D,U", [(1, 1, 2, 3), (3, 5, 4, 2)])
def test_per_step_dense_layer_on_sequences(N, T, D, U):
    layer = built(FullyConnected(U), (T, D))
    layer.b.data[...] = randn(U, 1)
    x = randn((N, T, D), 2)
    y = layer.forward(x)
    expected = np.stack([x[:, t] @ layer.W.data.T + layer.b.data for t in range(T)], axis=1)
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-13)
    assert_all_small(gradcheck.check_layer(layer, x), {"input", "W", "b"})


# -- 3. forward against the documented equations ---------------------------------------------
@pytest.mark.parametrize("impl", ["fast", "naive"])
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
def test_forward_matches_pytorch_equations(kind, return_sequences, impl):
    """Both impls (the naive twin, layers/recurrent_naive.py, is checked against the fast one
    in test_recurrent_twins.py too) against the per-sample loop above."""
    N, T, D, H = 3, 5, 4, 3
    layer = make(kind, H, (T, D), seed=8, return_sequences=return_sequences, impl=impl)
    G = GATES[kind]
    assert layer.W_ih.data.shape == (G * H, D)
    assert layer.W_hh.data.shape == (G * H, H)
    assert layer.b_ih.data.shape == (G * H,)
    assert layer.b_hh.data.shape == (G * H,)
    assert [p.name for p in layer.parameters()] == ["W_ih", "W_hh", "b_ih", "b_hh"]
    # Spread the weights so that the gates are far from 1/2 and a swapped gate order shows.
    rng = np.random.default_rng(9)
    for p in layer.parameters():
        p.data[...] = rng.uniform(-1.5, 1.5, p.data.shape)
    x = randn((N, T, D), 10)
    h0, c0 = randn((N, H), 11, 0.5), randn((N, H), 12, 0.5)
    ref, ref_last, _, _ = ref_of(layer, kind, x)
    y = layer.forward(x)
    np.testing.assert_allclose(y, ref if return_sequences else ref_last, rtol=0, atol=1e-12)
    # and from a given initial state
    ref, ref_last, _, _ = ref_of(layer, kind, x, h0, c0 if kind == "lstm" else None)
    y = layer.forward(x, initial_state=(h0, c0) if kind == "lstm" else h0)
    np.testing.assert_allclose(y, ref if return_sequences else ref_last, rtol=0, atol=1e-12)


def test_reference_distinguishes_gate_orders():
    """Guard: permuting the LSTM's gate blocks (e.g. i, f, o, g as Keras orders them)
    changes the output, so the comparison above would catch a wrong order."""
    layer = make("lstm", 3, (4, 2), seed=8, return_sequences=True)
    x = randn((2, 4, 2), 1)
    ref = ref_of(layer, "lstm", x)[0]
    perm = np.concatenate([np.arange(0, 6), np.arange(9, 12), np.arange(6, 9)])  # i, f, o, g
    swapped = reference_forward("lstm", x, layer.W_ih.data[perm], layer.W_hh.data[perm],
                                layer.b_ih.data[perm], layer.b_hh.data[perm])[0]
    assert np.abs(ref - swapped).max() > 1e-2
    np.testing.assert_allclose(layer.forward(x), ref, rtol=0, atol=1e-12)


def test_gru_reset_gate_multiplies_hidden_bias():
    """PyTorch's GRU puts b_hn inside r ⊙ (W_hn h + b_hn); moving it outside changes the output."""
    H = 3
    layer = make("gru", H, (4, 2), seed=2, return_sequences=True)
    layer.b_hh.data[2 * H:] = 2.0
    x = randn((2, 4, 2), 3)
    y = layer.forward(x)
    np.testing.assert_allclose(y, ref_of(layer, "gru", x)[0], rtol=0, atol=1e-12)
    b_ih, b_hh = layer.b_ih.data.copy(), layer.b_hh.data.copy()
    b_ih[2 * H:] += b_hh[2 * H:]
    b_hh[2 * H:] = 0.0  # the b_hn-outside variant
    outside = reference_forward("gru", x, layer.W_ih.data, layer.W_hh.data, b_ih, b_hh)[0]
    assert np.abs(y - outside).max() > 1e-3


@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "gru"])
def test_uniform_init_bound_is_one_over_sqrt_hidden(kind):
    H, D = 4, 300
    layer = make(kind, H, (2, D), seed=0)
    bound = 1.0 / np.sqrt(H)
    values = np.concatenate([p.data.ravel() for p in layer.parameters()])
    for p in layer.parameters():
        assert np.abs(p.data).max() <= bound
    assert values.max() > 0.95 * bound and values.min() < -0.95 * bound
    # U(-a, a) has standard deviation a/√3
    assert abs(values.std() - bound / np.sqrt(3)) < 0.05 * bound
    assert abs(values.mean()) < 0.05 * bound
    for p in layer.parameters():  # biases are not zero
        assert np.abs(p.data).max() > 0.5 * bound


def test_default_dtype_is_float32_and_seed_reproducible():
    def build(seed):
        net = Network((3, 2), seed=seed)
        net.add_lstm_layer(4)
        return net

    a, b, c = build(0), build(0), build(1)
    assert a.layers[0].W_ih.data.dtype == np.float32
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
        np.testing.assert_array_equal(pa.data, pb.data)
        assert not np.array_equal(pa.data, pc.data)
    X = randn((2, 3, 2), 0).astype(np.float32)
    assert a.forward(X).dtype == np.float32


# -- 4. stateful mode ------------------------------------------------------------------------
def state_of(layer, kind):
    return layer.carried_state if kind == "lstm" else layer.carried_state[0]


@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "gru"])
def test_stateful_chunks_equal_the_whole_sequence(kind):
    N, T, D, H = 3, 7, 2, 4
    x = randn((N, T, D), 1)
    whole = make(kind, H, (None, D), seed=5, return_sequences=True)
    stateful = make(kind, H, (None, D), seed=5, return_sequences=True, stateful=True)
    expected = ref_of(whole, kind, x)[0]
    np.testing.assert_allclose(whole.forward(x), expected, rtol=0, atol=1e-12)
    first = stateful.forward(x[:, :3])
    second = stateful.forward(x[:, 3:])
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), expected, rtol=0, atol=1e-12)
    # a non-stateful layer starts every batch from zeros
    np.testing.assert_allclose(whole.forward(x[:, 3:]), ref_of(whole, kind, x[:, 3:])[0], rtol=0, atol=1e-12)
    assert np.abs(whole.forward(x[:, 3:]) - second).max() > 1e-3


def test_stateful_carries_the_state_only_when_the_batch_size_matches():
    D, H = 2, 4
    layer = make("lstm", H, (None, D), seed=5, return_sequences=True, stateful=True)
    x3, x2 = randn((3, 4, D), 1), randn((2, 4, D), 2)
    layer.forward(x3)
    y = layer.forward(x2)  # batch of 2 after a batch of 3: starts from zeros
    np.testing.assert_allclose(y, ref_of(layer, "lstm", x2)[0], rtol=0, atol=1e-12)
    # and now the carried state is the batch of 2's final state
    _, h_end, c_end, _ = ref_of(layer, "lstm", x2)
    y = layer.forward(x2)
    np.testing.assert_allclose(y, ref_of(layer, "lstm", x2, h_end, c_end)[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("via_network", [False, True], ids=["layer", "network"])
def test_reset_state_forgets(via_network):
    D, H = 2, 3
    net = Network((None, D), seed=0, dtype=np.float64)
    net.add_gru_layer(H, return_sequences=True, stateful=True)
    net.add_rnn_layer(H, return_sequences=True, stateful=True)
    x = randn((2, 5, D), 3)
    fresh = net.forward(x)
    again = net.forward(x)
    assert np.abs(again - fresh).max() > 1e-3
    if via_network:
        net.reset_state()
    else:
        for layer in net.layers:
            layer.reset_state()
    assert all(layer.carried_state is None for layer in net.layers)
    np.testing.assert_allclose(net.forward(x), fresh, rtol=0, atol=1e-14)


@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "gru"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
def test_stateful_gradients_stop_at_the_chunk_boundary(kind, return_sequences):
    """Backward of chunk 2 of a stateful layer equals backward of a fresh layer that
    starts from chunk 1's final state: chunk 1 contributes nothing to the weight gradients."""
    N, D, H = 3, 2, 4
    x1, x2 = randn((N, 4, D), 1), randn((N, 3, D), 2)
    stateful = make(kind, H, (None, D), seed=6, return_sequences=return_sequences, stateful=True)
    fresh = make(kind, H, (None, D), seed=6, return_sequences=return_sequences)
    stateful.forward(x1, True)
    carried = state_of(stateful, kind)
    _, h1, c1, _ = ref_of(fresh, kind, x1)
    if kind == "lstm":
        np.testing.assert_allclose(carried[0], h1, atol=1e-12)
        np.testing.assert_allclose(carried[1], c1, atol=1e-12)
        carried = (carried[0].copy(), carried[1].copy())
    else:
        np.testing.assert_allclose(carried, h1, atol=1e-12)
        carried = carried.copy()
    y = stateful.forward(x2, True)
    R = randn(y.shape, 3)
    dx = stateful.backward(R)
    y_ref = fresh.forward(x2, True, initial_state=carried)
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-13)
    dx_ref = fresh.backward(R)
    np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=1e-13)
    for p, q in zip(stateful.parameters(), fresh.parameters()):
        np.testing.assert_allclose(p.grad, q.grad, rtol=0, atol=1e-13, err_msg=p.name)
    if kind == "lstm":
        assert stateful.initial_state_grad is not None
        for a, b in zip(stateful.initial_state_grad, fresh.initial_state_grad):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-13)
    else:
        np.testing.assert_allclose(stateful.initial_state_grad, fresh.initial_state_grad, rtol=0, atol=1e-13)
    # The weight gradient of the whole sequence run at once is different (it flows through chunk 1).
    whole = make(kind, H, (None, D), seed=6, return_sequences=True)
    y_whole = whole.forward(np.concatenate([x1, x2], axis=1), True)
    R_whole = np.zeros_like(y_whole)
    if return_sequences:
        R_whole[:, 4:] = R
    else:
        R_whole[:, -1] = R
    whole.backward(R_whole)
    assert np.abs(whole.W_ih.grad - stateful.W_ih.grad).max() > 1e-6


def test_stateful_carried_state_is_not_an_alias_of_the_output():
    layer = make("rnn_tanh", 3, (None, 2), seed=0, return_sequences=True, stateful=True)
    x = randn((2, 4, 2), 1)
    y = layer.forward(x)
    expected = y[:, -1].copy()
    y[...] = 0.0  # a caller scribbling on the output must not change the next batch
    np.testing.assert_array_equal(layer.carried_state[0], expected)


# -- 5. clipping ------------------------------------------------------------------------------
def sign_data(n, T, seed):
    rng = np.random.default_rng(seed)
    X = rng.choice([-1.0, 1.0], size=(n, T, 1))
    return X, (X.sum(axis=(1, 2)) > 0).astype(np.int64)


def lstm_classifier(T=8, H=8, seed=0, **kw):
    net = Network((T, 1), seed=seed, **kw)
    net.add_lstm_layer(H)
    net.add_fc_layer(2)
    net.add_softmax_layer()
    return net


def test_lstm_fit_with_adam_clip_norm_clips():
    class RecordingAdam(Adam):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.norms = []

        def step(self, params):
            self.norms.append(np.sqrt(sum(float(np.sum(p.grad.astype(np.float64) ** 2)) for p in params)))
            super().step(params)

    X, y = sign_data(96, 8, 0)
    net = lstm_classifier()
    before = [p.data.copy() for p in net.parameters()]
    opt = RecordingAdam(lr=0.01, clip_norm=1e-3)
    history = net.fit(X, y, epochs=2, batch_size=32, optimizer=opt, verbose=0)
    assert len(opt.norms) == 6
    assert min(opt.norms) > 1e-3  # every step's global norm was above clip_norm: the clip applied
    assert all(np.isfinite(v) for v in history["loss"])
    assert all(np.isfinite(p.data).all() for p in net.parameters())
    assert all(np.abs(p.data - b).max() > 0 for p, b in zip(net.parameters(), before))


def test_lstm_clipped_sgd_step_is_the_scaled_gradient():
    """One SGD step through fit with clip_norm: Δθ = -lr · g · clip/‖g‖, g computed here by
    hand (forward, cost gradient, backward) on the same batch."""
    X, y = sign_data(16, 5, 1)
    net = lstm_classifier(T=5, H=4, dtype=np.float64)
    before = [p.data.copy() for p in net.parameters()]
    targets = np.eye(2)[y]
    out = net.forward(X, training=True)
    net.loss_gradient(out, targets)
    grads = [p.grad.copy() for p in net.parameters()]
    norm = np.sqrt(sum(np.sum(g * g) for g in grads))
    clip, lr = 0.25 * norm, 0.5
    net.fit(X, y, epochs=1, batch_size=16, optimizer=SGD(lr=lr, clip_norm=clip), shuffle=False, verbose=0)
    for p, b, g in zip(net.parameters(), before, grads):
        # (rtol allows for a small guard term added to the norm)
        np.testing.assert_allclose(b - p.data, lr * g * clip / norm, rtol=1e-4, atol=1e-12)


# -- 6. Embedding -------------------------------------------------------------------------------
def embedding(V=6, E=3, seed=0):
    return built(Embedding(V, E), (None,), seed)


def test_embedding_forward_is_row_lookup():
    layer = embedding()
    ids = np.array([[0, 5, 2, 2], [1, 1, 3, 4]])
    y = layer.forward(ids)
    assert y.shape == (2, 4, 3)
    for n in range(2):
        for t in range(4):
            np.testing.assert_array_equal(y[n, t], layer.W.data[ids[n, t]])


def test_embedding_backward_accumulates_repeated_ids():
    layer = embedding()
    ids = np.array([[0, 5, 2, 2, 2], [1, 1, 3, 2, 0]])
    dy = randn((2, 5, 3), 1)
    layer.forward(ids, True)
    assert layer.backward(dy) is None
    expected = np.zeros((6, 3))
    for n in range(2):
        for t in range(5):
            expected[ids[n, t]] += dy[n, t]
    np.testing.assert_allclose(layer.W.grad, expected, rtol=0, atol=1e-14)
    assert not expected[4].any()  # id 4 never appears: its row's gradient is zero
    np.testing.assert_allclose(layer.W.grad[2], dy[0, 2] + dy[0, 3] + dy[0, 4] + dy[1, 3], atol=1e-14)


def test_embedding_weight_gradient_by_central_difference():
    layer = embedding(V=5, E=2)
    ids = np.array([[4, 0, 4], [2, 2, 2], [0, 1, 4]])
    R = randn((3, 3, 2), 2)
    layer.forward(ids, True)
    layer.backward(R)
    W0 = layer.W.data.copy()

    def loss(v):
        layer.W.data = v
        return float(np.sum(layer.forward(ids) * R))

    numeric = central_difference(loss, W0)
    layer.W.data = W0
    assert rel_err(layer.W.grad, numeric) < TOL


@pytest.mark.parametrize("ids,match", [
    (np.array([[0, 6]]), r"embedding.*\[0, 5\].*6"),
    (np.array([[-1, 2]]), r"embedding.*\[0, 5\].*-1"),
    (np.array([0, 1, 2]), r"embedding.*\(N, T\).*\(3,\)"),
    (np.zeros((2, 3, 1), dtype=np.int64), r"embedding.*\(N, T\).*\(2, 3, 1\)"),
    (np.array([[0.0, 1.5]]), r"embedding.*integer"),
], ids=["too_large", "negative", "1d", "3d", "non_integer_float"])
def test_embedding_bad_ids_are_clear_errors(ids, match):
    with pytest.raises(ValueError, match=match):
        embedding().forward(ids)


def test_embedding_accepts_integral_floats():
    layer = embedding()
    np.testing.assert_array_equal(layer.forward(np.array([[3.0, 0.0]])), layer.W.data[[[3, 0]]])


def char_net(V=7, E=3, H=4, seed=0, dtype=np.float32):
    net = Network((None,), seed=seed, dtype=dtype)
    net.add_embedding_layer(V, E)
    net.add_lstm_layer(H, return_sequences=True)
    net.add_fc_layer(V)
    net.add_softmax_layer()
    return net


def test_network_with_embedding_keeps_integer_ids_and_any_length():
    net = char_net()
    seen = []
    emb = net.layers[0]
    original = emb.forward

    def recording(x, training=False):
        seen.append(np.asarray(x).dtype)
        return original(x, training)

    emb.forward = recording
    for T in (1, 5, 9):
        ids = np.random.default_rng(T).integers(0, 7, (2, T))
        p = net.forward(ids)
        assert p.shape == (2, T, 7)
        np.testing.assert_allclose(p.sum(axis=-1), 1.0, atol=1e-5)
    assert all(np.issubdtype(d, np.integer) for d in seen), seen
    # fit and evaluate on integer sequences with (N, T) next-id targets
    ids = np.random.default_rng(0).integers(0, 7, (8, 6))
    history = net.fit(ids, np.roll(ids, -1, axis=1), epochs=1, batch_size=4, optimizer=Adam(lr=1e-2),
                      verbose=0)
    assert np.isfinite(history["loss"][0])
    assert all(np.issubdtype(d, np.integer) for d in seen), seen


def test_network_embedding_gradient_by_central_difference():
    """The whole char model's embedding gradient (cost → softmax → FC → LSTM → Embedding)."""
    net = char_net(dtype=np.float64)
    ids = np.array([[1, 3, 3, 0], [6, 2, 1, 1]])
    targets = np.eye(7)[np.array([[3, 3, 0, 5], [2, 1, 1, 4]])]
    out = net.forward(ids, training=True)
    net.loss_gradient(out, targets)
    W = net.layers[0].W
    analytic, W0 = W.grad.copy(), W.data.copy()

    def loss(v):
        W.data = v
        return net.cost.value(net.forward(ids), targets)

    numeric = central_difference(loss, W0)
    W.data = W0
    assert np.abs(numeric).max() > 1e-4
    assert rel_err(analytic, numeric) < TOL


def test_check_gradients_on_a_network_starting_with_an_embedding():
    net = char_net()
    ids = np.array([[1, 3, 3, 0], [6, 2, 1, 1]])
    rows = net.check_gradients(ids, np.roll(ids, -1, axis=1), verbose=False)
    assert_rows_small(rows)


def test_check_gradients_on_a_stateful_network():
    net = Network((5, 3), seed=0)
    net.add_lstm_layer(4, return_sequences=True, stateful=True)
    net.add_fc_layer(6)
    net.add_softmax_layer()
    X = randn((2, 5, 3), 0)
    y = np.random.default_rng(1).integers(0, 6, (2, 5))
    rows = net.check_gradients(X, y, verbose=False)
    assert_rows_small(rows)


# -- 7. errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "gru"])
def test_wrong_feature_size_is_a_clear_error(kind):
    layer = make(kind, 3, (4, 2))
    with pytest.raises(ValueError, match=r"\(N, T, 2\).*\(5, 4, 3\)") as err:
        layer.forward(np.zeros((5, 4, 3)))
    assert layer.name in str(err.value)


@pytest.mark.parametrize("shape", [(4, 2), (5, 4, 2, 1), (8,)], ids=str)
@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "gru"])
def test_non_3d_input_is_a_clear_error(kind, shape):
    layer = make(kind, 3, (4, 2))
    with pytest.raises(ValueError, match=r"\(N, T, 2\)") as err:
        layer.forward(np.zeros(shape))
    assert layer.name in str(err.value) and str(shape) in str(err.value)


def test_errors_name_the_layer_inside_a_network():
    net = Network((4, 2), seed=0)
    net.add_gru_layer(3, return_sequences=True)
    net.add_lstm_layer(3)
    with pytest.raises(ValueError, match=r"lstm1.*\(N, T, 3\).*\(2, 4, 5\)"):
        net.layers[1].forward(np.zeros((2, 4, 5), np.float32))
    with pytest.raises(ValueError, match=r"\(N, 4, 2\).*\(2, 4, 3\)"):
        net.forward(np.zeros((2, 4, 3)))


@pytest.mark.parametrize("kind,bad", [
    ("rnn_tanh", np.zeros((3, 3))),
    ("rnn_tanh", np.zeros((2, 4))),
    ("gru", np.zeros((2, 3, 1))),
    ("lstm", (np.zeros((2, 3)), np.zeros((2, 4)))),
    ("lstm", (np.zeros((2, 3)),)),
    ("lstm", (np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)))),
], ids=["rnn_batch", "rnn_hidden", "gru_3d", "lstm_c", "lstm_one", "lstm_three"])
def test_wrong_initial_state_is_a_clear_error(kind, bad):
    layer = make(kind, 3, (4, 2))
    with pytest.raises(ValueError, match=r"initial state.*\(2, 3\)") as err:
        layer.forward(np.zeros((2, 4, 2)), initial_state=bad)
    message = str(err.value)
    assert layer.name in message
    for s in (bad if isinstance(bad, tuple) else (bad,)):
        assert str(s.shape) in message


@pytest.mark.parametrize("add", ["add_lstm_layer", "add_gru_layer", "add_rnn_layer"])
def test_recurrent_layer_on_non_sequence_input_fails_at_build(add):
    net = Network(784)
    with pytest.raises(ValueError, match=r"\(N, T, D\).*\(784,\)"):
        getattr(net, add)(8)
    assert net.layers == []
    net = Network((1, 28, 28))
    with pytest.raises(ValueError, match=r"\(1, 28, 28\)"):
        getattr(net, add)(8)
    # after a recurrent layer that returns only the last step, the output is (N, H): not a sequence
    net = Network((28, 28))
    net.add_lstm_layer(8)
    with pytest.raises(ValueError, match=r"\(8,\)"):
        getattr(net, add)(8)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="hidden"):
        LSTM(0)
    with pytest.raises(ValueError, match="activation"):
        RNN(3, activation="sigmoid")
    with pytest.raises(ValueError, match="vocab_size"):
        Embedding(0, 3)


# -- 8. learning ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,threshold", [("lstm", 0.9), ("gru", 0.85), ("rnn", 0.8)])
def test_tiny_recurrent_net_learns_the_sign_of_a_sum(kind, threshold):
    T = 8
    X_train, y_train = sign_data(600, T, 1)
    X_test, y_test = sign_data(400, T, 2)
    baseline = max(np.mean(y_test), 1 - np.mean(y_test))
    assert baseline < 0.7  # always guessing one class is far from the threshold
    net = Network((T, 1), seed=0)
    getattr(net, f"add_{kind}_layer")(8)
    net.add_fc_layer(2)
    net.add_softmax_layer()
    before = net.evaluate(X_test, y_test)["accuracy"]
    net.fit(X_train, y_train, epochs=6, batch_size=32, optimizer=Adam(lr=0.02), verbose=0)
    after = net.evaluate(X_test, y_test)["accuracy"]
    assert after > threshold, (before, after)
