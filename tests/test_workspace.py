"""Reused per-batch arrays (layers/workspace.py) and what reusing them must not break.

The recurrent layers keep their per-batch arrays from one batch to the next.
These tests check that reuse is invisible from outside: outputs, input
gradients, initial-state gradients and carried states are the caller's own
arrays; a second forward of another batch (or another shape or dtype) gives
the same numbers as a fresh layer; and saving a network stores no buffers.
"""
import pickle

import numpy as np
import pytest
from conftest import built, randn

from nnscratch import Network
from nnscratch.layers import GRU, LSTM, RNN
from nnscratch.layers.workspace import Workspace

KINDS = {"rnn": lambda H, **kw: RNN(H, **kw), "lstm": lambda H, **kw: LSTM(H, **kw),
         "gru": lambda H, **kw: GRU(H, **kw)}


def make(kind, seed=0, dtype=np.float64, **kw):
    return built(KINDS[kind](4, **kw), (None, 3), seed, dtype)


def test_workspace_returns_the_same_memory_for_a_name_and_grows_when_asked():
    ws = Workspace()
    a = ws("a", (3, 4), np.float32)
    assert a.shape == (3, 4) and a.dtype == np.float32
    a[...] = 7
    again = ws("a", (2, 6), np.float32)          # same size, other shape: same memory
    assert np.shares_memory(a, again)
    smaller = ws("a", (5,), np.float32)
    assert np.shares_memory(a, smaller) and smaller.shape == (5,)
    bigger = ws("a", (4, 4), np.float32)          # larger: a new block
    assert bigger.shape == (4, 4) and not np.shares_memory(a, bigger)
    other_dtype = ws("a", (4, 4), np.float64)
    assert other_dtype.dtype == np.float64
    assert not np.shares_memory(ws("b", (4, 4), np.float64), other_dtype)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("n, steps", [(1, 1), (2, 5), (3, 1)])
def test_outputs_and_gradients_survive_the_next_batch(kind, return_sequences, n, steps):
    layer = make(kind, return_sequences=return_sequences)
    x1, x2 = randn((n, steps, 3), 1), randn((n, steps, 3), 2)
    y1 = layer.forward(x1, True)
    dy = randn(y1.shape, 3)
    dx1 = layer.backward(dy)
    kept = [y1.copy(), dx1.copy(), layer.W_hh.grad.copy()]
    state_grad = layer.initial_state_grad
    state_grad = state_grad if isinstance(state_grad, tuple) else (state_grad,)
    kept_state = [s.copy() for s in state_grad]
    layer.forward(x2, True)
    layer.backward(randn(y1.shape, 4))
    for before, now in zip(kept, [y1, dx1]):
        np.testing.assert_array_equal(now, before)
    for before, now in zip(kept_state, state_grad):
        np.testing.assert_array_equal(now, before)
    # The first batch again gives the first results exactly: nothing stale is read.
    np.testing.assert_array_equal(layer.forward(x1, True), kept[0])
    np.testing.assert_array_equal(layer.backward(dy), kept[1])
    np.testing.assert_array_equal(layer.W_hh.grad, kept[2])


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_changing_batch_size_length_and_dtype_matches_a_fresh_layer(kind):
    layer = make(kind, return_sequences=True)
    for shape in [(4, 6, 3), (2, 3, 3), (5, 7, 3)]:
        for dtype in (np.float64, np.float32):
            x = randn(shape, sum(shape)).astype(dtype)
            fresh = make(kind, return_sequences=True)
            layer.forward(x.astype(np.float64), True)       # leave other-sized buffers behind
            y, y_fresh = layer.forward(x, True), fresh.forward(x, True)
            assert y.dtype == dtype
            np.testing.assert_array_equal(y, y_fresh)
            dy = randn(y.shape, 9).astype(dtype)
            np.testing.assert_array_equal(layer.backward(dy), fresh.backward(dy))
            np.testing.assert_array_equal(layer.W_ih.grad, fresh.W_ih.grad)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_first_layer_skips_the_input_gradient_but_not_the_weight_gradients(kind):
    net = Network((5, 3), seed=0, dtype=np.float64)
    {"rnn": net.add_rnn_layer, "lstm": net.add_lstm_layer, "gru": net.add_gru_layer}[kind](4)
    net.add_fc_layer(2)
    net.add_softmax_layer()
    layer = net.layers[0]
    assert layer.needs_input_grad is False
    x, y = randn((3, 5, 3), 1), np.array([0, 1, 1])
    out = net.forward(x, True)
    assert net.loss_gradient(out, np.eye(2)[y]) is None
    skipped = [p.grad.copy() for p in layer.parameters()]
    layer.needs_input_grad = True
    net.forward(x, True)
    dx = net.loss_gradient(net.forward(x, True), np.eye(2)[y])
    assert dx.shape == x.shape
    for before, p in zip(skipped, layer.parameters()):
        np.testing.assert_array_equal(p.grad, before)


def test_a_saved_network_holds_no_buffers():
    net = Network((28, 28), seed=0)
    net.add_lstm_layer(32)
    net.add_fc_layer(10)
    net.add_softmax_layer()
    net.forward(randn((64, 28, 28), 0).astype(np.float32), True)
    layer = net.layers[0]
    assert any(k.startswith("_cache") for k in vars(layer))
    state = layer.__getstate__()
    assert not any(k.startswith("_cache") for k in state)
    # Parameters: (4*32*28 + 4*32*32 + 2*4*32 + 10*32 + 10) floats = 32,650 * 4 bytes; the
    # buffers of one 64 x 28 batch are over 1 MB. Allow generous room for the pickle's framing.
    assert len(pickle.dumps(net)) < 200_000
