"""Character-level text: the vocabulary, truncated-BPTT batches, bits per character
and sampling. Expected values are computed here, from the text itself or by
running the network without its carried state."""
import math

import numpy as np
import pytest

from nnscratch import Network
from nnscratch.text import Vocabulary, bits_per_character, bptt_batches, sample

TEXT = "In the beginning God created the heaven and the earth. And the earth was without form, and void."


def char_lm(V, E=3, H=5, seed=0, dtype=np.float64, stateful=True):
    """Embedding -> LSTM over every step -> per-step FC -> softmax (the char model's shape, small)."""
    net = Network((None,), seed=seed, dtype=dtype)
    net.add_embedding_layer(V, E)
    net.add_lstm_layer(H, return_sequences=True, stateful=stateful)
    net.add_fc_layer(V)
    net.add_softmax_layer()
    return net


def stateless_twin(net):
    """The same weights in a network whose LSTM starts from zeros at every forward."""
    V = net.layers[0].vocab_size
    twin = char_lm(V, net.layers[0].dim, net.layers[1].hidden, dtype=net.dtype, stateful=False)
    twin.load_state_dict(net.state_dict())
    return twin


# -- Vocabulary ----------------------------------------------------------------------------
def test_vocabulary_sorted_ids_and_round_trip():
    v = Vocabulary("hello world")
    assert len(v) == 8
    assert v.chars == [" ", "d", "e", "h", "l", "o", "r", "w"]
    ids = v.encode("hello")
    assert np.issubdtype(ids.dtype, np.integer)
    np.testing.assert_array_equal(ids, [3, 2, 4, 4, 5])  # by hand: h=3, e=2, l=4, o=5
    assert v.decode(ids) == "hello"
    assert v.decode(v.encode("world hello")) == "world hello"
    assert v.decode(v.encode(" ")) == " "
    assert v.encode("").size == 0 and v.decode([]) == ""


def test_vocabulary_round_trip_on_a_longer_text():
    v = Vocabulary(TEXT)
    assert len(v) == len(set(TEXT))
    ids = v.encode(TEXT)
    assert ids.min() == 0 and ids.max() == len(v) - 1
    assert v.decode(ids) == TEXT
    # equal characters get equal ids, different ones different ids
    for a, b in [(0, 1), (3, 4), (10, 30)]:
        assert (ids[a] == ids[b]) == (TEXT[a] == TEXT[b])


@pytest.mark.parametrize("bad", ["z", "hello!", "héllo"])
def test_vocabulary_unknown_character_is_named(bad):
    v = Vocabulary("hello world")
    unknown = next(c for c in bad if c not in "hello world")
    with pytest.raises(ValueError, match=repr(unknown)):
        v.encode(bad)


# -- bptt_batches -------------------------------------------------------------------------------
@pytest.mark.parametrize("length,streams,seq_len",
                         [(101, 4, 5), (97, 3, 7), (30, 1, 29), (7, 2, 3), (1000, 5, 8)])
def test_bptt_batches_order_and_continuation(length, streams, seq_len):
    positions = np.arange(length)  # ids equal to their positions: every row tells where it was read
    X, Y = bptt_batches(positions, streams, seq_len)
    assert X.shape == Y.shape and X.shape[1] == seq_len and len(X) % streams == 0
    batches = len(X) // streams
    # as many whole chunks as fit in each strand of (length - 1) // streams characters
    assert batches == ((length - 1) // streams) // seq_len
    np.testing.assert_array_equal(Y, X + 1)  # the next character
    for r in range(len(X)):  # every row a contiguous slice of the text
        np.testing.assert_array_equal(X[r], np.arange(X[r, 0], X[r, 0] + seq_len))
    for b in range(1, batches):
        for i in range(streams):
            assert X[b * streams + i, 0] == X[(b - 1) * streams + i, -1] + 1
    # the strands are the consecutive equal slices of the text, starting at 0
    strand = (length - 1) // streams
    np.testing.assert_array_equal(X[:streams, 0], np.arange(streams) * strand)
    assert len(np.unique(X)) == X.size  # no character read twice


def test_bptt_batches_on_real_ids_match_slices_of_the_text():
    v = Vocabulary(TEXT)
    ids = v.encode(TEXT)
    streams, seq_len = 3, 6
    X, Y = bptt_batches(ids, streams, seq_len)
    strand = (len(TEXT) - 1) // streams
    for b in range(len(X) // streams):
        for i in range(streams):
            start = i * strand + b * seq_len
            assert v.decode(X[b * streams + i]) == TEXT[start:start + seq_len]
            assert v.decode(Y[b * streams + i]) == TEXT[start + 1:start + 1 + seq_len]


@pytest.mark.parametrize("length,streams,seq_len", [(6, 2, 3), (5, 1, 5), (0, 1, 1), (1, 1, 1), (10, 20, 1)])
def test_bptt_batches_too_short_text(length, streams, seq_len):
    with pytest.raises(ValueError, match="too few"):
        bptt_batches(np.arange(length), streams, seq_len)


def test_bptt_batches_just_long_enough():
    """streams·seq_len + 1 characters make exactly one batch (the +1 is the last target)."""
    X, Y = bptt_batches(np.arange(2 * 3 + 1), 2, 3)
    np.testing.assert_array_equal(X, [[0, 1, 2], [3, 4, 5]])
    np.testing.assert_array_equal(Y, [[1, 2, 3], [4, 5, 6]])


# -- bits per character ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bits_per_character_of_a_uniform_model_is_log2_v(dtype):
    v = Vocabulary(TEXT)
    net = char_lm(len(v), dtype=dtype)
    fc = net.layers[2]
    fc.W.data[...] = 0.0
    fc.b.data[...] = 0.0
    bpc = bits_per_character(net, v.encode(TEXT), streams=3, seq_len=8)
    assert abs(bpc - math.log2(len(v))) < 1e-6
    assert all(layer.carried_state is None for layer in net.layers if hasattr(layer, "carried_state"))


def test_bits_per_character_reads_each_strand_as_one_sequence():
    """Against a direct computation: each strand run at once through a stateless twin,
    -log2 p(next character) averaged over every character read."""
    v = Vocabulary(TEXT)
    ids = v.encode(TEXT)
    net = char_lm(len(v), seed=3)
    streams, seq_len = 3, 5
    net.forward(ids[:21].reshape(streams, 7))  # leave a carried state (of batch size streams) behind:
    assert net.layers[1].carried_state is not None  # bits_per_character must reset it first
    bpc = bits_per_character(net, ids, streams=streams, seq_len=seq_len)

    twin = stateless_twin(net)
    strand = (len(ids) - 1) // streams
    usable = (strand // seq_len) * seq_len
    total, count = 0.0, 0
    for i in range(streams):
        text_ids = ids[i * strand:i * strand + usable]
        targets = ids[i * strand + 1:i * strand + usable + 1]
        p = twin.forward(text_ids[None])[0]                          # (usable, V)
        total -= np.log2(p[np.arange(usable), targets]).sum()
        count += usable
    assert count == len(bptt_batches(ids, streams, seq_len)[0]) * seq_len
    assert abs(bpc - total / count) < 1e-9
    # and it is not just log2 V
    assert abs(bpc - math.log2(len(v))) > 1e-3


# -- sampling -------------------------------------------------------------------------------------
def peaked_lm(v, seed=0):
    """A char model whose output distributions are sharp (scaled-up output weights)."""
    net = char_lm(len(v), seed=seed)
    net.layers[2].W.data *= 40.0
    return net


def greedy(net, v, prime, length):
    """Argmax continuation, rerunning the whole text so far through a stateless twin at each step."""
    twin = stateless_twin(net)
    ids = list(v.encode(prime))
    margins = []
    for _ in range(length):
        logp = np.log(twin.forward(np.array([ids]))[0, -1])
        top2 = np.sort(logp)[-2:]
        margins.append(top2[1] - top2[0])
        ids.append(int(np.argmax(logp)))
    return v.decode(ids), min(margins)


def test_sample_is_deterministic_with_a_fixed_rng_and_starts_with_the_prime():
    v = Vocabulary(TEXT)
    net = char_lm(len(v), seed=1)
    a = sample(net, v, "the ", 30, rng=np.random.default_rng(7))
    b = sample(net, v, "the ", 30, rng=np.random.default_rng(7))
    c = sample(net, v, "the ", 30, rng=np.random.default_rng(8))
    assert a == b
    assert a != c  # a near-uniform model: another seed gives another text
    assert a.startswith("the ") and len(a) == 4 + 30
    assert set(a) <= set(v.chars)
    assert sample(net, v, "And", 0, rng=np.random.default_rng(0)) == "And"
    assert all(layer.carried_state is None for layer in net.layers if hasattr(layer, "carried_state"))


@pytest.mark.parametrize("temperature", [0, 0.0, -0.5])
def test_sample_rejects_non_positive_temperature(temperature):
    v = Vocabulary(TEXT)
    with pytest.raises(ValueError, match="temperature"):
        sample(char_lm(len(v)), v, "the", 5, temperature=temperature)


def test_sample_at_low_temperature_is_greedy():
    v = Vocabulary(TEXT)
    net = peaked_lm(v, seed=6)
    expected, margin = greedy(net, v, "the earth", 25)
    # at temperature 0.01 the runner-up is exp(-margin/0.01) times less likely than the argmax
    assert margin > 0.3, "pick another seed: two next characters are nearly tied"
    assert len(set(expected[9:])) >= 2  # not a single repeated character
    for seed in range(3):
        assert sample(net, v, "the earth", 25, temperature=0.01, rng=np.random.default_rng(seed)) == expected


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_sample_draws_from_the_tempered_distribution(temperature):
    """With the output layer's weights zeroed, every step's distribution is softmax(b) whatever
    the input; the sampled characters' frequencies must then be softmax(log p / T) = softmax(b / T)."""
    v = Vocabulary(TEXT)
    V = len(v)
    net = char_lm(V, seed=4)
    fc = net.layers[2]
    fc.W.data[...] = 0.0
    fc.b.data[...] = np.random.default_rng(5).normal(0.0, 1.5, V)
    n = 3000
    text = sample(net, v, "a", n, temperature=temperature, rng=np.random.default_rng(6))
    counts = np.bincount(v.encode(text[1:]), minlength=V)
    freq = counts / n

    def tempered(t):
        z = fc.b.data / t
        e = np.exp(z - z.max())
        return e / e.sum()

    q = tempered(temperature)
    sigma = np.sqrt(q * (1 - q) / n)
    assert np.all(np.abs(freq - q) < 4.5 * sigma + 1e-3), np.max(np.abs(freq - q) / (sigma + 1e-12))
    # the check can tell temperatures apart: another temperature's distribution is far off
    other = tempered(temperature * 2)
    assert np.max(np.abs(freq - other) / np.sqrt(other * (1 - other) / n)) > 10
