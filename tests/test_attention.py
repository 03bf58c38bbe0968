"""Attention, positions and the transformer block beyond the gradient table
(tests/test_gradient_table.py checks every gradient against central differences
and autodiff): the two implementations agree, the mask hides the future
exactly, the parameter layout is PyTorch's, the key/value cache changes
nothing, and mistakes get clear errors."""
import numpy as np
import pytest
from conftest import randn, rel_err

from nnscratch import MultiHeadAttention, Network, PositionalEmbedding, generation
from nnscratch.layers.transformer import TORCH_ENCODER_LAYER_KEYS, transformer_block


def attention_net(heads=2, causal=True, dropout=0.0, impl="fast", T=5, E=6, seed=0):
    net = Network((T, E), cost="quadratic", seed=seed, dtype=np.float64)
    net.add_attention_layer(heads, causal=causal, dropout=dropout, impl=impl)
    return net


def per_head_reference(x, layer):
    """Attention from the equations, with the weights split as PyTorch documents them:
    W_q, W_k, W_v = the three (E, E) blocks of W_qkv, head h = features h·d .. (h+1)·d - 1."""
    N, T, E = x.shape
    H, d = layer.num_heads, E // layer.num_heads
    W_q, W_k, W_v = np.split(layer.W_qkv.data, 3)
    b_q, b_k, b_v = np.split(layer.b_qkv.data, 3)
    heads = []
    for h in range(H):
        f = slice(h * d, (h + 1) * d)
        q, k, v = x @ W_q[f].T + b_q[f], x @ W_k[f].T + b_k[f], x @ W_v[f].T + b_v[f]   # (N, T, d)
        s = np.einsum("nid,njd->nij", q, k) / np.sqrt(d)
        if layer.causal:
            s = np.where(np.tril(np.ones((T, T), bool)), s, -np.inf)
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        heads.append(np.einsum("nij,njd->nid", p, v))
    return np.concatenate(heads, axis=-1) @ layer.W_out.data.T + layer.b_out.data


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("heads, E", [(1, 5), (3, 9)])
def test_forward_matches_the_per_head_equations_in_pytorchs_layout(causal, heads, E):
    net = attention_net(heads, causal, E=E)
    layer = net.layers[0]
    assert layer.W_qkv.data.shape == (3 * E, E) and layer.b_qkv.data.shape == (3 * E,)
    assert layer.W_out.data.shape == (E, E) and layer.b_out.data.shape == (E,)
    layer.b_qkv.data[:] = randn(3 * E, 4)                        # nonzero biases: their place counts too
    layer.b_out.data[:] = randn(E, 5)
    x = randn((2, 5, E), 1)
    assert rel_err(net.forward(x), per_head_reference(x, layer)) < 1e-12


@pytest.mark.parametrize("dropout", [0.0, 0.4])
@pytest.mark.parametrize("causal", [False, True])
def test_naive_twin_and_batched_attention_agree(causal, dropout):
    """Outputs and every gradient, in training mode with the same dropout masks."""
    x, target = randn((3, 5, 6), 1), randn((3, 5, 6), 2)
    results = []
    for impl in ("fast", "naive"):
        net = attention_net(2, causal, dropout, impl, seed=7)
        loss, out = net.train_step(x, target, return_output=True)
        results.append((loss, out, [p.grad.copy() for p in net.parameters()]))
    (loss_f, out_f, grads_f), (loss_n, out_n, grads_n) = results
    assert rel_err(out_f, out_n) < 1e-12 and abs(loss_f - loss_n) < 1e-12
    for g_f, g_n in zip(grads_f, grads_n):
        assert rel_err(g_f, g_n) < 1e-11


@pytest.mark.parametrize("impl", ["fast", "naive"])
def test_masked_positions_get_exactly_zero_weight_and_rows_sum_to_one(impl):
    layer = attention_net(3, True, impl=impl, E=6).layers[0]
    P = layer.attention_weights(randn((2, 5, 6), 1))
    assert P.shape == (2, 3, 5, 5)
    assert np.all(P[..., np.triu_indices(5, 1)[0], np.triu_indices(5, 1)[1]] == 0.0)
    assert np.all(P[..., np.tril_indices(5)[0], np.tril_indices(5)[1]] > 0)
    assert np.allclose(P.sum(-1), 1.0, atol=1e-14)


@pytest.mark.parametrize("impl", ["fast", "naive"])
def test_a_future_token_cannot_change_an_earlier_output(impl):
    """Through a whole causal block: changing positions t+1.. leaves outputs 0..t bit for bit."""
    net = Network((6, 4), cost="quadratic", seed=2, dtype=np.float64)
    net.add_positional_embedding_layer(6)
    net.add_transformer_block(2, impl=impl)
    x = randn((2, 6, 4), 3)
    y = net.forward(x)
    for t in range(5):
        changed = x.copy()
        changed[:, t + 1:] = randn(changed[:, t + 1:].shape, 10 + t)
        y2 = net.forward(changed)
        np.testing.assert_array_equal(y2[:, :t + 1], y[:, :t + 1])
        assert np.abs(y2[:, t + 1:] - y[:, t + 1:]).min() > 0      # and the later ones do change


def test_without_the_mask_an_earlier_output_does_see_the_future():
    """The check above can fail: the same change moves every output of a non-causal layer."""
    net = attention_net(2, causal=False)
    x = randn((1, 5, 6), 1)
    changed = x.copy()
    changed[:, 4] += 1.0
    assert np.abs(net.forward(changed)[:, 0] - net.forward(x)[:, 0]).max() > 1e-3


def test_attention_dropout_uses_the_networks_generator_and_only_in_training():
    x = randn((2, 5, 6), 1)
    a, b = attention_net(2, dropout=0.5, seed=3), attention_net(2, dropout=0.5, seed=3)
    np.testing.assert_array_equal(a.layers[0].forward(x, True), b.layers[0].forward(x, True))  # same seed
    layer = a.layers[0]
    P = layer.attention_weights()
    kept = layer._cache_keep
    assert 0.3 < kept.mean() < 0.7                               # about half of the weights dropped
    np.testing.assert_array_equal(layer.forward(x, False), layer.forward(x, False))  # evaluation: no mask
    assert P.dtype == np.float64 and kept.dtype == bool


def test_the_attention_weights_are_kept_once():
    """Between forward and backward the layer holds the weights P once (and the dropout mask as
    bools): for a causal layer over 64 positions, only the blocks at or below the diagonal,
    (1 + 2 + 3 + 4) / 16 of the (N, H, T, T) array."""
    layer = attention_net(2, dropout=0.3, T=64).layers[0]
    layer.forward(randn((3, 64, 6), 1), True)
    x, heads, blocks, kept, out = layer._cache
    assert kept.shape == (3, 2, 64, 64) and kept.dtype == bool
    assert sum(block.size for block in blocks) == 3 * 2 * 64 * 64 * 10 // 16
    assert all(block.dtype == np.float64 for block in blocks)
    P = layer.attention_weights()
    assert np.all(np.triu(np.ones((64, 64)), 1)[None, None] * P == 0) and np.allclose(P.sum(-1), 1)


@pytest.mark.parametrize("T", [64, 67])
def test_skipping_the_masked_blocks_changes_nothing(T):
    """A causal layer long enough to be split into query blocks (64 and 67 positions: blocks of
    16 and of 17, 17, 17, 16) against the naive loops: outputs and gradients, with dropout."""
    x, target = randn((1, T, 4), 1), randn((1, T, 4), 2)
    results = []
    for impl in ("fast", "naive"):
        net = attention_net(2, True, 0.2, impl, T=T, E=4, seed=7)
        loss, out = net.train_step(x, target, return_output=True)
        results.append((out, [p.grad.copy() for p in net.parameters()]))
    assert len(net.layers[0]._query_blocks(T)) == 4
    assert rel_err(results[0][0], results[1][0]) < 1e-12
    for g_f, g_n in zip(results[0][1], results[1][1]):
        assert rel_err(g_f, g_n) < 1e-11


def test_transformer_block_has_pytorchs_encoder_layer_layout():
    block = transformer_block(8, 2)
    net = Network((3, 8), cost="quadratic")
    net.add(block)
    shapes = {key: value.shape for key, value in net.state_dict().items()}
    torch_shapes = {"norm1.weight": (8,), "norm1.bias": (8,), "self_attn.in_proj_weight": (24, 8),
                    "self_attn.in_proj_bias": (24,), "self_attn.out_proj.weight": (8, 8),
                    "self_attn.out_proj.bias": (8,), "norm2.weight": (8,), "norm2.bias": (8,),
                    "linear1.weight": (32, 8), "linear1.bias": (32,), "linear2.weight": (8, 32),
                    "linear2.bias": (8,)}                        # nn.TransformerEncoderLayer(8, 2), F = 4E
    assert len(shapes) == len(torch_shapes)
    for torch_key, shape in torch_shapes.items():
        assert shapes["block1." + TORCH_ENCODER_LAYER_KEYS[torch_key]] == shape, torch_key


def small_gpt(context=16):
    net = Network((None,), cost="cross_entropy_logits", seed=4, dtype=np.float64)
    net.add_embedding_layer(11, 6)
    net.add_positional_embedding_layer(context)
    net.add_transformer_block(2)
    net.add_transformer_block(3)
    net.add_layernorm_layer()
    net.add_fc_layer(11)
    return net


@pytest.mark.parametrize("T", [12, 70])
def test_cached_logits_equal_a_full_forward_at_every_position(T):
    """A prime of 5 tokens, then one token at a time through the cache: the logits of every
    position are those of one forward over the whole sequence (70: in query blocks)."""
    net = small_gpt(context=T)
    ids = np.random.default_rng(1).integers(0, 11, (2, T))
    full = net.forward(ids)                                          # (2, T, 11)
    with generation.KeyValueCache(net):
        steps = [net.forward(ids[:, :5])] + [net.forward(ids[:, t:t + 1]) for t in range(5, T)]
    assert rel_err(np.concatenate(steps, axis=1), full) < 1e-12


@pytest.mark.parametrize("length", [7, 40])
def test_cached_and_uncached_sampling_give_the_same_characters(length):
    """40 tokens overflow the 16-position context twice: the cache is rebuilt, the same way."""
    net = small_gpt()
    runs = [generation.generate(net, [1, 2, 3], length, temperature=1.3, top_k=8, rng=np.random.default_rng(9),
                                kv_cache=cache) for cache in (True, False)]
    assert runs[0] == runs[1] and len(runs[0]) == length
    assert len(set(runs[0])) > 3                                 # it really samples, not one token
    attention = [leaf for _, leaf in net.named_layers() if isinstance(leaf, MultiHeadAttention)]
    assert all("_cache_kv" not in a.__dict__ for a in attention)  # the cache is gone afterwards


def test_top_k_and_temperature():
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    rng = np.random.default_rng(0)
    picks = [generation.pick_token(logits, 1.0, 2, rng) for _ in range(2000)]
    assert set(picks) == {0, 1} and abs(np.mean(np.array(picks) == 0) - 0.5 / 0.8) < 0.04
    cold = [generation.pick_token(logits, 0.05, None, rng) for _ in range(200)]
    assert set(cold) == {0}
    with pytest.raises(ValueError, match="temperature"):
        generation.pick_token(logits, 0.0)
    with pytest.raises(ValueError, match="top_k"):
        generation.pick_token(logits, 1.0, 0)


# -- errors -----------------------------------------------------------------------------------------
def test_embedding_size_not_divisible_by_heads_names_the_layer_and_shapes():
    net = Network((4, 10), cost="quadratic")
    with pytest.raises(ValueError, match=r"attention1 \(MultiHeadAttention\).*E = 10.*num_heads = 3"):
        net.add_attention_layer(3)
    with pytest.raises(ValueError, match="E = 10 is not divisible by num_heads = 4"):
        net.add_transformer_block(4)


def test_wrong_input_rank_is_a_clear_error():
    net = Network(6, cost="quadratic")
    with pytest.raises(ValueError, match=r"\(MultiHeadAttention\) expects a sequence \(N, T, E\)"):
        net.add_attention_layer(2)
    with pytest.raises(ValueError, match=r"transformer block needs a sequence"):
        net.add_transformer_block(2)
    layer = attention_net(2, T=None).layers[0]
    with pytest.raises(ValueError, match=r"attention1 \(MultiHeadAttention\) expects input of shape \(N, T, 6\)"):
        layer.forward(randn((2, 6), 1))


def test_a_sequence_longer_than_max_len_is_a_clear_error():
    net = Network((None, 4), cost="quadratic")
    net.add_positional_embedding_layer(8)
    with pytest.raises(ValueError, match=r"positional1 \(PositionalEmbedding\).*9 positions.*max_len = 8"):
        net.forward(randn((1, 9, 4), 1))
    with pytest.raises(ValueError, match="longer than max_len"):
        Network((9, 4)).add(PositionalEmbedding(8))


def test_a_key_value_cache_needs_a_causal_layer():
    with pytest.raises(ValueError, match="not causal"):
        attention_net(2, causal=False).layers[0].start_kv_cache()
