"""The character GPT: its training pieces, a quick run of the example, and the shipped network."""
import math
import os
import sys

import numpy as np
import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, "src"))

import build_network  # noqa: E402
import chargpt  # noqa: E402
from nnscratch import MultiHeadAttention, Network, generation  # noqa: E402
from nnscratch.schedules import warmup_cosine  # noqa: E402


class UniformModel:
    """Stands in for a network: the same logits everywhere, so p(next) = 1/V for every character."""

    def __init__(self, vocab_size):
        self.vocab_size, self.positions = vocab_size, 0

    def forward(self, ids):
        self.positions += ids.size
        return np.zeros(ids.shape + (self.vocab_size,))


@pytest.mark.parametrize("length", [2, 50, 129, 300, 1000])
def test_held_out_bits_scores_every_character_once(length):
    """A model that gives every character 1/V scores exactly log₂ V bits, however the windows fall."""
    ids = np.arange(length) % 7
    bits = chargpt.held_out_bits(UniformModel(7), ids, context=16)
    assert abs(bits - math.log2(7)) < 1e-12


def test_held_out_bits_counts_each_prediction_once():
    """A model that knows the next character of positions it is shown once, and is unsure of
    the others, would be miscounted by overlapping windows scored twice: check the count."""
    scored = []

    class Recorder(UniformModel):
        def forward(self, ids):
            scored.append(ids.copy())
            return super().forward(ids)

    ids = np.arange(100)
    chargpt.held_out_bits(Recorder(100), ids, context=16)
    windows = np.concatenate(scored)
    assert windows.shape[1] == 16 and windows[0, 0] == 0 and windows[-1, -1] == 98  # up to the last input


def test_random_windows_give_the_next_character_as_target():
    ids = np.arange(1000)
    X, Y = chargpt.random_windows(ids, 5, 12, np.random.default_rng(0))
    assert X.shape == Y.shape == (5, 12)
    np.testing.assert_array_equal(Y, X + 1)
    np.testing.assert_array_equal(np.diff(X, axis=1), 1)


def test_warmup_then_cosine():
    assert warmup_cosine(0, 0.0, 1.0, 10) == pytest.approx(0.1)          # (step + 1) / warmup
    assert warmup_cosine(9, 0.01, 1.0, 10) == pytest.approx(1.0)
    assert warmup_cosine(50, 0.5, 1.0, 10, 0.2) == pytest.approx(0.6)    # halfway down the cosine
    assert warmup_cosine(99, 1.0, 1.0, 10, 0.2) == pytest.approx(0.2)


def test_a_quick_run_of_the_example_writes_its_files(capsys, tmp_path):
    assert build_network.main(["chargpt", "--epochs", "1", "--limit", "64", "--quiet",
                               "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "final held-out bits per character" in out
    for name in ("chargpt.pickle", "chargpt_curves.png", "chargpt_metrics.csv", "chargpt_bits.png",
                 "chargpt_attention.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    vocab, _, _ = chargpt.load_corpus()
    assert Network.load(str(tmp_path / "chargpt.pickle")).output_shape == (None, len(vocab))


@pytest.fixture(scope="module")
def shipped():
    return Network.load(os.path.join(ROOT, "pre-trained", "chargpt.pickle"))


def test_shipped_gpt_is_the_documented_architecture(shipped):
    kinds = [layer.kind for layer in shipped.layers]
    assert kinds == ["embedding", "positional", "block", "block", "block", "block", "layernorm", "fc"]
    assert shipped.cost.name == "cross_entropy_logits"
    attention = [leaf for _, leaf in shipped.named_layers() if isinstance(leaf, MultiHeadAttention)]
    assert len(attention) == 4 and all(a.causal and a.num_heads == 4 for a in attention)


def test_shipped_gpt_beats_the_shipped_lstm_on_held_out_text(shipped):
    """The shipped character LSTM scores 1.69 bits per character on the whole held-out text."""
    vocab, _, held_out = chargpt.load_corpus()
    assert shipped.output_shape[-1] == len(vocab)
    assert chargpt.held_out_bits(shipped, held_out[:20000], chargpt.CONTEXT) < 1.69


def test_shipped_gpt_samples_the_same_with_and_without_the_cache(shipped):
    vocab, _, _ = chargpt.load_corpus()
    net = Network.load(os.path.join(ROOT, "pre-trained", "chargpt.pickle")).astype(np.float64)
    texts = [generation.sample_text(net, vocab, "And the LORD", 60, 0.8, 10, np.random.default_rng(3), cache)
             for cache in (True, False)]
    assert texts[0] == texts[1]
    assert "the" in texts[0][len("And the LORD"):]                  # it has learnt some English


def test_embedding_backward_one_hot_product_and_scatter_add_agree(monkeypatch):
    """Both ways of summing the rows of dy into dW (the one-hot product for small vocabularies,
    np.add.at above ONE_HOT_LIMIT) give the same gradient, repeated ids included."""
    from nnscratch.layers import embedding
    net = Network((6,), cost="quadratic", dtype=np.float64)
    layer = net.add_embedding_layer(9, 4)
    ids = np.random.default_rng(0).integers(0, 9, (5, 6))
    dy = np.random.default_rng(1).standard_normal((5, 6, 4))
    layer.forward(ids)
    layer.backward(dy)
    one_hot = layer.W.grad.copy()
    monkeypatch.setattr(embedding, "ONE_HOT_LIMIT", 0)
    layer.backward(dy)
    np.testing.assert_allclose(layer.W.grad, one_hot, rtol=1e-13, atol=1e-13)
    expected = np.zeros((9, 4))
    for n in range(5):
        for t in range(6):
            expected[ids[n, t]] += dy[n, t]
    np.testing.assert_allclose(one_hot, expected, rtol=1e-13, atol=1e-13)
