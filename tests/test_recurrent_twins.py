"""RNN, LSTM and GRU come as twins: ``impl="naive"`` and ``impl="fast"`` are one layer.

``impl="naive"`` (layers/recurrent_naive.py) runs the equations one time step
at a time, as they read; ``impl="fast"`` (the default) computes the same
numbers with fused products, feature-major buffers and pre-scaled weights.
What must hold:

- in float64 the two agree on the output and on every gradient (each
  parameter, the input, the initial state) to 1e-10 relative, on awkward
  shapes: T = 1, a batch of one, odd input and hidden sizes, both return
  modes, with and without an initial state, the relu RNN;
- the naive twin, on its own, passes float64 central finite differences
  (a table, one row per layer and configuration);
- one seed gives both the same parameters, and weights move between them;
  stateful mode, ``needs_input_grad=False`` and float32 work alike;
- a few batches of the sequential-MNIST classifier train to the same
  weights with either impl, and networks saved before ``impl`` existed
  load as fast layers that give the same outputs run naive.
"""
import os

import numpy as np
import pytest
from conftest import assert_rows_small, built, central_difference, randn, rel_err

from nnscratch import Adam, Network, load_mnist
from nnscratch.layers import GRU, LSTM, RNN

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
TWIN_TOL = 1e-10     # the two impls differ only by float rounding
FD_TOL = 1e-7        # central differences in float64

KINDS = {
    "rnn": lambda H, **kw: RNN(H, **kw),
    "rnn_relu": lambda H, **kw: RNN(H, activation="relu", **kw),
    "lstm": lambda H, **kw: LSTM(H, **kw),
    "gru": lambda H, **kw: GRU(H, **kw),
}
# (N, T, D, H): one step and one sample, odd sizes, a single input feature, a hidden size of one.
SHAPES = [(1, 1, 3, 2), (3, 6, 5, 7), (1, 5, 2, 3), (4, 1, 1, 5), (2, 3, 4, 1)]


def twins(kind, H, input_shape, seed=0, dtype=np.float64, **kw):
    """The fast and the naive layer, each built from the same generator draws."""
    return tuple(built(KINDS[kind](H, impl=impl, **kw), input_shape, seed, dtype)
                 for impl in ("fast", "naive"))


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def initial_state(kind, N, H, seed):
    h0 = randn((N, H), seed, 0.7)
    return (h0, randn((N, H), seed + 1, 0.7)) if kind == "lstm" else h0


def forward_backward(layer, x, dy_seed, state=None):
    """Forward in training mode, backward of L = Σ y ⊙ R: everything a caller can see, by name."""
    y = layer.forward(x, True, initial_state=state)
    results = {"output": y.copy(), "input": layer.backward(randn(y.shape, dy_seed).astype(y.dtype))}
    results.update({p.name: p.grad for p in layer.parameters()})
    for i, grad in enumerate(as_tuple(layer.initial_state_grad)):
        results[("h0", "c0")[i]] = grad
    return results


def assert_agree(fast, naive, tol=TWIN_TOL):
    assert fast.keys() == naive.keys()
    for key in fast:
        assert fast[key].shape == naive[key].shape, key
        assert fast[key].dtype == naive[key].dtype, key
        error = rel_err(fast[key], naive[key])
        assert error < tol, f"{key}: relative error {error:.2e}"


# -- 1. the twins agree ---------------------------------------------------------------------------
@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "initial_state"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
@pytest.mark.parametrize("N,T,D,H", SHAPES, ids=str)
@pytest.mark.parametrize("kind", list(KINDS))
def test_fast_and_naive_give_the_same_output_and_every_gradient(kind, N, T, D, H, return_sequences,
                                                               with_state):
    fast, naive = twins(kind, H, (None, D), seed=1, return_sequences=return_sequences)
    x = randn((N, T, D), 2)
    state = initial_state(kind, N, H, 3) if with_state else None
    state_names = {"h0", "c0"} if kind == "lstm" else {"h0"}
    expected = {"output", "input", "W_ih", "W_hh", "b_ih", "b_hh"} | state_names
    results = [forward_backward(layer, x, 5, state) for layer in (fast, naive)]
    assert set(results[0]) == expected
    assert_agree(*results)


@pytest.mark.parametrize("kind", list(KINDS))
def test_stateful_twins_agree_across_two_batches_and_after_reset(kind):
    fast, naive = twins(kind, 5, (None, 3), seed=4, return_sequences=True, stateful=True)
    x1, x2 = randn((3, 4, 3), 1), randn((3, 2, 3), 2)
    for x, seed in ((x1, 6), (x2, 7)):   # the second batch starts from the first one's final state
        assert_agree(*(forward_backward(layer, x, seed) for layer in (fast, naive)))
        for a, b in zip(fast.carried_state, naive.carried_state):
            assert rel_err(a, b) < TWIN_TOL
    for layer in (fast, naive):
        layer.reset_state()
        assert layer.carried_state is None
    np.testing.assert_allclose(naive.forward(x1), fast.forward(x1), rtol=0, atol=1e-13)
    # and the carried state is the naive layer's own: a caller writing on the output changes nothing
    y = naive.forward(x1)
    expected = y[:, -1].copy()
    y[...] = 0.0
    np.testing.assert_array_equal(naive.carried_state[0], expected)


@pytest.mark.parametrize("kind", list(KINDS))
def test_skipping_the_input_gradient_leaves_the_weight_gradients_as_they_were(kind):
    x = randn((3, 4, 2), 1)
    for layer in twins(kind, 3, (4, 2), seed=2):
        with_dx = forward_backward(layer, x, 3)
        layer.needs_input_grad = False
        y = layer.forward(x, True)
        assert layer.backward(randn(y.shape, 3)) is None
        for p in layer.parameters():
            np.testing.assert_array_equal(p.grad, with_dx[p.name])


@pytest.mark.parametrize("kind", list(KINDS))
def test_twins_agree_in_float32_and_keep_float32(kind):
    fast, naive = twins(kind, 6, (5, 3), seed=3, dtype=np.float32, return_sequences=True)
    x = randn((4, 5, 3), 1).astype(np.float32)
    results = [forward_backward(layer, x, 2) for layer in (fast, naive)]
    for key, value in results[1].items():
        assert value.dtype == np.float32, key
    assert_agree(*results, tol=1e-5)


def test_the_naive_twin_does_not_read_the_array_it_returned():
    """Backward after a caller wrote on the output (return_sequences=False returns h_T, which the
    tanh derivative needs) gives the same gradients."""
    layer = twins("rnn", 4, (3, 2), seed=0)[1]
    x = randn((2, 3, 2), 1)
    clean = forward_backward(layer, x, 2)
    layer.forward(x, True)[...] = 7.0
    dy = randn((2, 4), 2)
    np.testing.assert_array_equal(layer.backward(dy), clean["input"])


# -- 2. the naive twin against central differences ----------------------------------------------------
# One row per layer and configuration: kind, (N, T, D, H), return_sequences, stateful, with an initial state.
FD_CASES = [
    ("rnn", (1, 1, 3, 2), False, False, False),
    ("rnn", (3, 4, 2, 3), True, False, True),
    ("rnn_relu", (2, 3, 2, 3), True, False, True),
    ("rnn_relu", (1, 4, 3, 5), False, False, False),
    ("lstm", (1, 1, 2, 3), False, False, False),
    ("lstm", (2, 4, 3, 3), True, False, True),
    ("lstm", (3, 3, 1, 2), False, True, False),
    ("gru", (1, 1, 2, 3), True, False, False),
    ("gru", (2, 4, 3, 3), False, False, True),
    ("gru", (3, 3, 2, 2), True, True, False),
]


def case_id(row):
    kind, shape, return_sequences, stateful, with_state = row
    return "-".join([kind, "x".join(map(str, shape)), "seq" if return_sequences else "last"]
                    + ["stateful"] * stateful + ["h0"] * with_state)


def relu_pre_activations(layer, x, state):
    """The naive RNN's a_t on ``x`` (its step caches hold them)."""
    layer.forward(x, initial_state=state)
    return np.stack([cache[2] for cache in layer._cache_steps])


@pytest.mark.parametrize("kind,shape,return_sequences,stateful,with_state", FD_CASES,
                         ids=[case_id(row) for row in FD_CASES])
def test_the_naive_twin_passes_central_differences(kind, shape, return_sequences, stateful, with_state):
    """L = Σ forward(x, initial state) ⊙ R: its gradient with respect to the input, each parameter
    and the initial state, from the naive backward and from conftest.central_difference."""
    N, T, D, H = shape
    layer = built(KINDS[kind](H, return_sequences=return_sequences, stateful=stateful, impl="naive"),
                  (T, D), seed=3)
    rng = np.random.default_rng(8)
    for p in layer.parameters():   # larger than the init, so that the gradients reaching h0 are not tiny
        p.data[...] = rng.uniform(-1.0, 1.0, p.data.shape)
    state = initial_state(kind, N, H, 5) if with_state else None
    carried = None
    if stateful:   # a first batch, so that the checked one starts from a carried state
        layer.forward(randn((N, T, D), 99))
        carried = layer.carried_state
    x = next(x for x in (randn((N, T, D), seed) for seed in range(2, 60))
             if kind != "rnn_relu" or np.abs(relu_pre_activations(layer, x, state)).min() > 1e-3)
    R = randn(layer.forward(x).shape, 7)

    def loss(x=x, state=state, **replaced):
        """L, with any parameter replaced by name for the call."""
        kept = [p.data for p in layer.parameters()]
        for p in layer.parameters():
            p.data = replaced.get(p.name, p.data)
        layer.carried_state = carried
        value = float(np.sum(layer.forward(x, True, initial_state=state) * R))
        for p, data in zip(layer.parameters(), kept):
            p.data = data
        return value

    loss()
    analytic = {"input": layer.backward(R)}
    analytic.update({p.name: p.grad for p in layer.parameters()})
    numeric = {"input": central_difference(lambda v: loss(x=v), x)}
    for p in layer.parameters():
        numeric[p.name] = central_difference(lambda v, name=p.name: loss(**{name: v}), p.data)
    if with_state:
        states = as_tuple(state)

        def replacing(i, v):   # the initial state with its i-th array replaced by v
            new = states[:i] + (v,) + states[i + 1:]
            return new if kind == "lstm" else new[0]

        for i, (name, grad) in enumerate(zip(("h0", "c0"), as_tuple(layer.initial_state_grad))):
            analytic[name] = grad
            numeric[name] = central_difference(lambda v, i=i: loss(state=replacing(i, v)), states[i])
    assert len(numeric) == 5 + (0 if not with_state else 2 if kind == "lstm" else 1)
    for key in numeric:
        if key == "W_hh" and T == 1 and not (with_state or stateful):
            assert not analytic[key].any()   # h_0 = 0 multiplies W_hh: exactly no gradient
        else:
            assert np.abs(numeric[key]).max() > 1e-6, f"{key}: the check would pass on zeros"
        assert rel_err(analytic[key], numeric[key]) < FD_TOL, \
            f"{key}: relative error {rel_err(analytic[key], numeric[key]):.2e}"


# -- 3. one set of parameters -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(KINDS))
def test_one_seed_gives_both_impls_the_same_parameters(kind):
    fast, naive = twins(kind, 5, (4, 3), seed=7, dtype=np.float32)
    assert [(p.name, p.data.shape, p.decay) for p in fast.parameters()] == \
        [(p.name, p.data.shape, p.decay) for p in naive.parameters()]
    for p, q in zip(fast.parameters(), naive.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    # through the network builders too
    nets = []
    for impl in ("fast", "naive"):
        net = Network((4, 3), seed=7)
        add = {"rnn": net.add_rnn_layer, "rnn_relu": lambda H, **kw: net.add_rnn_layer(H, "relu", **kw),
               "lstm": net.add_lstm_layer, "gru": net.add_gru_layer}[kind]
        assert add(5, impl=impl).impl == impl
        nets.append(net)
    for p, q in zip(*(net.parameters() for net in nets)):
        np.testing.assert_array_equal(p.data, q.data)


def sequence_net(kind, impl, hidden=6, seed=0, dtype=np.float64, return_sequences=False, steps=5, features=3):
    net = Network((steps, features), seed=seed, dtype=dtype)
    {"rnn": net.add_rnn_layer, "lstm": net.add_lstm_layer, "gru": net.add_gru_layer}[kind](
        hidden, return_sequences=return_sequences, impl=impl)
    net.add_fc_layer(4)
    net.add_softmax_layer()
    return net


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_weights_trained_with_one_impl_run_the_same_in_the_other(kind, tmp_path):
    X, y = randn((12, 5, 3), 1), np.random.default_rng(2).integers(0, 4, 12)
    trained = sequence_net(kind, "fast")
    trained.fit(X, y, epochs=2, batch_size=4, optimizer=Adam(lr=0.05), verbose=0)
    naive = sequence_net(kind, "naive", seed=1)
    naive.load_state_dict(trained.state_dict())
    np.testing.assert_allclose(naive.predict_proba(X), trained.predict_proba(X), rtol=0, atol=1e-13)
    # a saved naive network loads as naive
    path = os.path.join(tmp_path, "naive.pickle")
    naive.save(path)
    loaded = Network.load(path)
    assert loaded.layers[0].impl == "naive"
    np.testing.assert_array_equal(loaded.predict_proba(X), naive.predict_proba(X))


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_a_per_step_dense_layer_after_either_twin_trains_the_same(kind):
    """Recurrent over every step -> FC applied per step -> softmax, (N, T) class-id targets."""
    X, y = randn((8, 5, 3), 3), np.random.default_rng(4).integers(0, 4, (8, 5))
    nets = [sequence_net(kind, impl, return_sequences=True) for impl in ("fast", "naive")]
    for net in nets:
        net.fit(X, y, epochs=2, batch_size=4, optimizer=Adam(lr=0.05), verbose=0)
    for p, q in zip(*(net.parameters() for net in nets)):
        assert rel_err(p.data, q.data) < TWIN_TOL
    rows = nets[1].check_gradients(X[:3], y[:3], verbose=False)
    assert_rows_small(rows)


# -- 4. sequential MNIST and the shipped networks ----------------------------------------------------------
@pytest.fixture(scope="module")
def mnist_rows():
    X_train, y_train, X_test, _ = load_mnist()
    return X_train[:96].reshape(-1, 28, 28).astype(np.float64), y_train[:96], X_test[:64].reshape(-1, 28, 28)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_sequential_mnist_trains_to_the_same_weights_with_either_impl(kind, mnist_rows):
    """The shipped classifier (one recurrent layer of 128 over the 28 rows, FC 10, Adam 1e-3 with
    clipping at 5), in float64, for three batches of 32 (it trains on 64)."""
    X, y, _ = mnist_rows
    nets = []
    for impl in ("fast", "naive"):
        net = Network((28, 28), cost="cross_entropy", seed=0, dtype=np.float64)
        {"rnn": net.add_rnn_layer, "lstm": net.add_lstm_layer, "gru": net.add_gru_layer}[kind](128, impl=impl)
        net.add_fc_layer(10)
        net.add_softmax_layer()
        net.fit(X, y, epochs=1, batch_size=32, optimizer=Adam(lr=1e-3, clip_norm=5.0), verbose=0)
        nets.append(net)
    fast, naive = nets
    for p, q in zip(fast.parameters(), naive.parameters()):
        assert rel_err(p.data, q.data) < 1e-10
    initial = built(KINDS[kind](128), (28, 28)).W_hh.data
    assert np.abs(fast.layers[0].W_hh.data - initial).max() > 1e-4   # it trained


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_a_network_saved_before_impl_existed_loads_as_fast(kind, tmp_path):
    net = sequence_net(kind, "fast", dtype=np.float32)
    X = randn((3, 5, 3), 1).astype(np.float32)
    expected = net.predict_proba(X)
    del net.layers[0].__dict__["impl"]   # as in the networks pickled before there was a choice
    path = os.path.join(tmp_path, "old.pickle")
    net.save(path)
    loaded = Network.load(path)
    assert "impl" not in vars(loaded.layers[0]) and loaded.layers[0].impl == "fast"
    np.testing.assert_array_equal(loaded.predict_proba(X), expected)


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_shipped_networks_load_as_fast_and_give_the_same_outputs_run_naive(name, mnist_rows):
    net = Network.load(os.path.join(ROOT, "pre-trained", f"{name}.pickle"))
    layer = net.layers[0]
    assert layer.impl == "fast"
    X = mnist_rows[2]
    fast = net.predict_proba(X)
    layer.impl = "naive"
    np.testing.assert_allclose(net.predict_proba(X), fast, rtol=0, atol=1e-5)


def test_shipped_character_model_gives_the_same_outputs_run_naive():
    net = Network.load(os.path.join(ROOT, "pre-trained", "charlm.pickle"))
    lstm = next(layer for layer in net.layers if isinstance(layer, LSTM))
    assert lstm.impl == "fast" and lstm.stateful
    ids = np.random.default_rng(0).integers(0, net.layers[0].vocab_size, (2, 30))
    outputs = {}
    for impl in ("fast", "naive"):
        lstm.impl = impl
        net.reset_state()
        outputs[impl] = [net.predict_proba(ids), net.predict_proba(ids)]   # the second from the carried state
    for a, b in zip(outputs["fast"], outputs["naive"]):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)


def test_a_bad_impl_is_a_clear_error():
    for make in (RNN, LSTM, GRU):
        with pytest.raises(ValueError, match="impl must be 'fast' or 'naive', got 'loop'"):
            make(3, impl="loop")
