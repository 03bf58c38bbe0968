"""The training step split over two threads (nnscratch/threads.py) against the one-thread step.

The split is a fast path of ``Network.train_step``: the same gradients up to
float rounding (here float64, so to about 1e-13), the same cost, the same
output; fit with ``threads=2`` ends with the weights of ``threads=1``. It is
refused, with the reason, for networks where halves would change the result.
"""
import numpy as np
import pytest

from nnscratch import Adam, AdamW, Network
from nnscratch import threads as split


def small_gpt(seed=0, dropout=0.0):
    """A one-block causal transformer over 6 tokens, float64."""
    net = Network((None,), cost="cross_entropy_logits", seed=seed, dtype=np.float64)
    net.add_embedding_layer(6, 8)
    net.add_positional_embedding_layer(16)
    net.add_transformer_block(2, ff_dim=12, dropout=dropout, causal=True, approximate="tanh")
    net.add_layernorm_layer()
    net.add_fc_layer(6)
    return net


def token_batch(n, T=7, seed=1):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 6, (n, T)), rng.integers(0, 6, (n, T))


def one_hot(ids, k=6):
    return np.eye(k)[ids]


@pytest.mark.parametrize("n", [2, 5, 8], ids=["two", "odd_5", "eight"])
def test_split_step_gives_the_one_thread_gradients_cost_and_output(n):
    net = small_gpt()
    X, Y = token_batch(n)
    loss, out = net.train_step(X, one_hot(Y), return_output=True)
    grads = [p.grad.copy() for p in net.parameters()]
    assert all(np.abs(g).max() > 0 for g in grads)
    for p in net.parameters():
        p.grad = np.full_like(p.data, np.nan)             # the split must write every gradient
    split_loss, split_out = split.SplitSteps(net).train_step(X, one_hot(Y), return_output=True)
    assert split_loss == pytest.approx(loss, rel=1e-13)
    np.testing.assert_allclose(split_out, out, rtol=1e-12, atol=1e-13)
    for p, g in zip(net.parameters(), grads):
        np.testing.assert_allclose(p.grad, g, rtol=1e-10, atol=1e-13, err_msg=p.name)


def test_split_step_on_one_sample_is_the_plain_step():
    net = small_gpt()
    X, Y = token_batch(1)
    loss = net.train_step(X, one_hot(Y))
    assert split.SplitSteps(net).train_step(X, one_hot(Y)) == loss


def test_fit_with_two_threads_ends_with_the_weights_of_one_thread():
    X, Y = token_batch(40)
    nets = []
    for threads in (1, 2):
        net = small_gpt(seed=3)
        history = net.fit(X, Y, epochs=2, batch_size=8, optimizer=AdamW(lr=1e-2), verbose=0, threads=threads)
        nets.append((net, history))
    (one, h1), (two, h2) = nets
    np.testing.assert_allclose(h2["loss"], h1["loss"], rtol=1e-11)
    assert h2["accuracy"] == h1["accuracy"]
    for p, q, start in zip(one.parameters(), two.parameters(), small_gpt(seed=3).parameters()):
        # atol: Adam divides by sqrt(v), so where a gradient is ~0 a rounding-sized difference
        # moves a weight by up to ~1e-11 (the weights are O(0.1-1)); anything wrong would be >1e-3
        np.testing.assert_allclose(q.data, p.data, rtol=1e-9, atol=1e-9, err_msg=p.name)
        assert not np.allclose(p.data, start.data), f"{p.name} did not move: the test would prove nothing"


def test_replicas_follow_the_optimizer_and_replaced_parameter_arrays():
    net = small_gpt()
    X, Y = token_batch(6)
    steps = split.SplitSteps(net)
    steps.train_step(X, one_hot(Y))
    Adam(lr=0.1).step(net.parameters())                   # in place: the replicas see it
    assert steps._shares_parameters()
    net.load_state_dict({k: v * 1.5 for k, v in net.state_dict().items()})
    loss = net.train_step(X, one_hot(Y))
    grads = [p.grad.copy() for p in net.parameters()]
    assert steps.train_step(X, one_hot(Y)) == pytest.approx(loss, rel=1e-13)
    for p, g in zip(net.parameters(), grads):
        np.testing.assert_allclose(p.grad, g, rtol=1e-10, atol=1e-13)


def test_an_error_in_the_second_thread_reaches_the_caller():
    net = small_gpt()
    steps = split.SplitSteps(net)
    X, Y = token_batch(4)
    X[3, 0] = 99                                          # a token id outside the vocabulary, second half
    with pytest.raises(Exception):
        steps.train_step(X, one_hot(Y))


def test_networks_that_halves_would_change_are_refused_with_the_reason():
    assert split.split_refusal(small_gpt()) is None
    assert "draws random numbers" in split.split_refusal(small_gpt(dropout=0.1))
    bn = Network(4, seed=0)
    bn.add_fc_layer(3)
    bn.add_batchnorm_layer()
    assert "BatchNorm" in split.split_refusal(bn)
    from nnscratch.layers import ReLU

    class NoisyReLU(ReLU):              # may draw random numbers, and has no rate that says it will not
        uses_rng = True

    noisy = Network(4, seed=0)
    noisy.add_fc_layer(3)
    noisy.add(NoisyReLU())
    assert "NoisyReLU) draws random numbers" in split.split_refusal(noisy)
    lstm = Network((5, 3), seed=0)
    lstm.add_lstm_layer(4, stateful=True)
    assert "carries its state" in split.split_refusal(lstm)
    with pytest.raises(ValueError, match="cannot be split over threads: .*draws random numbers"):
        split.splitter_for(small_gpt(dropout=0.1), 2, 8)
    with pytest.raises(ValueError, match="threads must be"):
        split.splitter_for(small_gpt(), 3, 8)


def test_auto_splits_only_large_steps_of_networks_that_qualify(monkeypatch):
    net = small_gpt()
    monkeypatch.setattr(split.os, "cpu_count", lambda: 2)
    assert split.splitter_for(net, "auto", 8, positions=7) is None              # far below a GFLOP
    assert split.splitter_for(net, 1, 8) is None
    monkeypatch.setattr(split, "MIN_FLOPS", 1)
    splitter = split.splitter_for(net, "auto", 8, positions=7)
    assert isinstance(splitter, split.SplitSteps)
    splitter.close()
    assert split.splitter_for(small_gpt(dropout=0.1), "auto", 8, positions=7) is None
    monkeypatch.setattr(split.os, "cpu_count", lambda: 1)
    assert split.splitter_for(net, "auto", 8, positions=7) is None


def test_fit_ends_its_worker_thread_and_drops_the_replicas(monkeypatch):
    """Each fit makes its own replicas; they must not outlive it (a leak of one copy of every
    per-batch array per fit call, and a thread)."""
    import threading
    made = []
    original = split.SplitSteps.__init__

    def recording(self, net):
        original(self, net)
        made.append(self)

    monkeypatch.setattr(split.SplitSteps, "__init__", recording)
    X, Y = token_batch(16)
    before = threading.active_count()
    for _ in range(3):
        small_gpt().fit(X, Y, epochs=1, batch_size=8, optimizer=AdamW(lr=1e-2), verbose=0, threads=2)
    assert len(made) == 3 and all(s.replicas == [] for s in made)
    for _ in range(100):
        if threading.active_count() <= before:
            break
        threading.Event().wait(0.01)
    assert threading.active_count() <= before
