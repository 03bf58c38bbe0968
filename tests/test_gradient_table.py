"""Every layer's gradients, from one table: a new layer joins by adding a row.

Each row of ``ROWS`` names a layer configuration: an id, a factory making the
(unbuilt) layer, the per-sample input shape, the batch size, the dtype, whether
it runs in training mode and how its input is drawn. For every row, in float64:

(a) the layer's ``backward`` (its dx and every parameter's ``.grad``) agrees
    with central differences of ``L = Σ y ⊙ R`` written in the tests
    (``conftest.central_difference_errors``, not ``nnscratch.gradcheck``);
(b) the second path: autodiff of the layer's Tensor-op form
    (``nnscratch.layers.tensor_forms``) gives the same forward value and the
    same gradients as the hand-written backward.

A dropout's mask is fixed: (a) rewinds its generator before every forward,
and (b)'s form reuses the mask of the layer's own last forward. A last test
checks that the table has a row for every layer class the library exports
(and for both ``impl``s of the layers that have two).
"""
import inspect
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest
from conftest import TOL, assert_all_small, away_from_zero, built, central_difference_errors, randn, rel_err

import nnscratch
from nnscratch import AutodiffLayer
from nnscratch import autodiff as ad
from nnscratch import layers
from nnscratch.autodiff import Tensor
from nnscratch.layers import (GELU, GRU, LSTM, RNN, AvgPool2D, BatchNorm, Conv2D, Dropout, Embedding, Flatten,
                              FullyConnected, Layer, LayerNorm, LeakyReLU, MaxPool2D, MultiHeadAttention,
                              PositionalEmbedding, ReLU, Residual, Sequential, Sigmoid, Softmax, Tanh)
from nnscratch.layers.transformer import transformer_block
from nnscratch.layers.tensor_forms import parameter_tensors, tensor_forward

AUTODIFF_TOL = 1e-10  # hand-written against autodiff: the same function, so only rounding separates them


# -- how a row's input is drawn: inputs(layer, shape, seed) -> x -------------------------------
def normal(layer, shape, seed):
    return randn(shape, seed)


def off_the_kink(layer, shape, seed):
    """|x| > 0.1: central differences never straddle ReLU's kink at 0."""
    return away_from_zero(shape, seed)


def free_length(layer, shape, seed):
    """A layer built for a free length (None) gets sequences of 5."""
    return randn(tuple(5 if s is None else s for s in shape), seed)


def token_ids(layer, shape, seed):
    return np.random.default_rng(seed).integers(0, layer.vocab_size, shape)


def relu_rnn_pre_activations(layer, x):
    """a_t = x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh of a ReLU RNN, h_0 = 0: (N, T, H)."""
    h, pre = np.zeros((x.shape[0], layer.hidden)), []
    for t in range(x.shape[1]):
        a = x[:, t] @ layer.W_ih.data.T + layer.b_ih.data + h @ layer.W_hh.data.T + layer.b_hh.data
        h = np.maximum(a, 0.0)
        pre.append(a)
    return np.stack(pre, axis=1)


def off_the_relu_kink(layer, shape, seed):
    """The first normal input whose ReLU-RNN pre-activations all keep 1e-3 away from the kink."""
    return next(x for x in (randn(shape, s) for s in range(seed, seed + 50))
                if np.abs(relu_rnn_pre_activations(layer, x)).min() > 1e-3)


def tanh_residual(x, W, b):
    """An ``AutodiffLayer``'s forward: ``x + tanh(x Wᵀ + b)``."""
    return x + ad.tanh(x @ W.T + b)


def tanh_residual_params(shape, rng, dtype):
    return {"W": 0.5 * rng.standard_normal((shape[-1], shape[-1])), "b": rng.standard_normal(shape[-1])}


# -- the table ------------------------------------------------------------------------------------
@dataclass
class Row:
    id: str
    make: Callable[[], Layer]       # a fresh, unbuilt layer
    input_shape: tuple              # per sample (no batch axis)
    batch: int
    dtype: type = np.float64
    training: bool = True
    inputs: Callable = field(default=normal)


def recurrent_rows():
    """RNN (tanh, relu), LSTM, GRU: both impls, one step and four, both return modes."""
    kinds = {"rnn_tanh": lambda **kw: RNN(3, activation="tanh", **kw),
             "rnn_relu": lambda **kw: RNN(3, activation="relu", **kw),
             "lstm": lambda **kw: LSTM(3, **kw),
             "gru": lambda **kw: GRU(3, **kw)}
    rows = []
    for kind, make in kinds.items():
        for impl in ("fast", "naive"):
            for T, batch in ((1, 1), (4, 3)):
                for return_sequences in (False, True):
                    rows.append(Row(f"{kind}_{impl}_T{T}_{'seq' if return_sequences else 'last'}",
                                    lambda make=make, impl=impl, rs=return_sequences:
                                        make(impl=impl, return_sequences=rs),
                                    (T, 2), batch,
                                    inputs=off_the_relu_kink if kind == "rnn_relu" else normal))
    return rows


def image_rows():
    """Conv2D, MaxPool2D, AvgPool2D: both impls; strides that leave gaps, non-square kernels, windows
    that do not tile the image."""
    rows = []
    for impl in ("fast", "naive"):
        rows += [
            Row(f"conv_stride2_pad1_{impl}", lambda impl=impl: Conv2D(3, 3, stride=2, padding=1, impl=impl),
                (2, 5, 6), 2),
            Row(f"conv_kernel_2x3_{impl}", lambda impl=impl: Conv2D(2, (2, 3), impl=impl), (3, 4, 5), 1),
            Row(f"conv_same_{impl}", lambda impl=impl: Conv2D(2, (2, 3), padding="same", impl=impl),
                (2, 4, 5), 3),
            Row(f"maxpool_2_leftover_{impl}", lambda impl=impl: MaxPool2D(2, impl=impl), (2, 5, 5), 3),
            Row(f"maxpool_3_stride2_{impl}", lambda impl=impl: MaxPool2D(3, 2, impl=impl), (1, 6, 5), 1),
            Row(f"avgpool_2_leftover_{impl}", lambda impl=impl: AvgPool2D(2, impl=impl), (2, 5, 5), 3),
            Row(f"avgpool_3_stride2_{impl}", lambda impl=impl: AvgPool2D(3, 2, impl=impl), (1, 6, 5), 1),
        ]
    return rows


def attention_rows():
    """MultiHeadAttention, both impls: one head and several, causal on and off, T = 1, odd E, a batch
    of one, dropout on the weights; the positional embedding; whole transformer blocks."""
    rows = []
    for impl in ("fast", "naive"):
        rows += [
            Row(f"attention_2_heads_{impl}", lambda impl=impl: MultiHeadAttention(2, impl=impl), (4, 6), 2),
            Row(f"attention_1_head_T1_batch1_{impl}", lambda impl=impl: MultiHeadAttention(1, impl=impl),
                (1, 5), 1),
            Row(f"attention_causal_odd_E_{impl}", lambda impl=impl: MultiHeadAttention(3, causal=True, impl=impl),
                (5, 9), 3),
            Row(f"attention_causal_T1_{impl}", lambda impl=impl: MultiHeadAttention(1, causal=True, impl=impl),
                (1, 3), 2),
            Row(f"attention_causal_dropout_{impl}",
                lambda impl=impl: MultiHeadAttention(2, causal=True, dropout=0.3, impl=impl), (4, 4), 2),
        ]
    return rows + [
        Row("attention_causal_query_blocks", lambda: MultiHeadAttention(2, causal=True), (64, 2), 1),
        Row("positional", lambda: PositionalEmbedding(6), (4, 3), 2),
        Row("positional_T1_batch1", lambda: PositionalEmbedding(1), (1, 5), 1),
        Row("positional_free_length", lambda: PositionalEmbedding(7), (None, 3), 2, inputs=free_length),
        Row("transformer_block_causal", lambda: transformer_block(6, 2, ff_dim=5), (4, 6), 2),
        Row("transformer_block_T1_batch1_tanh", lambda: transformer_block(5, 1, approximate="tanh"), (1, 5), 1),
        Row("transformer_block_dropout_not_causal",
            lambda: transformer_block(4, 2, ff_dim=3, dropout=0.2, causal=False), (3, 4), 3),
    ]


ROWS = [
    # dense layers and activations
    Row("fc_2d_batch1", lambda: FullyConnected(4), (5,), 1),
    Row("fc_2d", lambda: FullyConnected(3), (7,), 5),
    Row("fc_per_time_step", lambda: FullyConnected(3), (4, 2), 3),
    Row("sigmoid", lambda: Sigmoid(), (6,), 1),
    Row("tanh", lambda: Tanh(), (2, 3), 3),
    Row("relu", lambda: ReLU(), (7,), 5, inputs=off_the_kink),
    Row("leaky_relu", lambda: LeakyReLU(0.2), (3, 4), 2, inputs=off_the_kink),
    Row("gelu", lambda: GELU(), (6,), 3),
    Row("gelu_per_time_step", lambda: GELU(), (2, 3), 2),
    Row("gelu_tanh", lambda: GELU(approximate="tanh"), (6,), 3),
    Row("gelu_tanh_per_time_step", lambda: GELU(approximate="tanh"), (2, 3), 2),
    Row("softmax", lambda: Softmax(), (5,), 3),
    Row("softmax_per_time_step", lambda: Softmax(), (2, 4), 1),
    # dropout (a fixed mask) and batch norm (training: batch statistics)
    Row("dropout", lambda: Dropout(0.4), (6,), 3),
    Row("dropout_images", lambda: Dropout(0.5), (2, 3, 2), 1),
    Row("dropout_eval", lambda: Dropout(0.5), (5,), 3, training=False),
    Row("batchnorm_features", lambda: BatchNorm(), (4,), 5),
    Row("batchnorm_channels", lambda: BatchNorm(), (2, 3, 2), 3),
    # layer norm: per position, over the last axis (the same in training and evaluation)
    Row("layernorm_batch1_odd_E", lambda: LayerNorm(), (5,), 1),
    Row("layernorm_features", lambda: LayerNorm(), (4,), 3, training=False),
    Row("layernorm_per_time_step_T1", lambda: LayerNorm(), (1, 3), 2),
    Row("layernorm_per_time_step", lambda: LayerNorm(eps=1e-3), (4, 5), 2),
    # images
    *image_rows(),
    Row("flatten", lambda: Flatten(), (2, 3, 2), 3),
    # sequences
    Row("embedding", lambda: Embedding(5, 3), (4,), 3, inputs=token_ids),
    *recurrent_rows(),
    *attention_rows(),
    # blocks, and a layer whose backward is autodiff's
    Row("sequential_mlp", lambda: Sequential(FullyConnected(4), Sigmoid(), FullyConnected(3)), (5,), 3),
    Row("residual_mlp", lambda: Residual(FullyConnected(5), Tanh(), FullyConnected(4)), (4,), 1),
    Row("residual_with_dropout_and_batchnorm",
        lambda: Residual(FullyConnected(4), Tanh(), Dropout(0.3), BatchNorm()), (4,), 5),
    Row("sequential_cnn", lambda: Sequential(Conv2D(2, 3, padding=1), Tanh(), MaxPool2D(2), Flatten(),
                                             FullyConnected(3)), (1, 4, 5), 2),
    Row("nested_blocks", lambda: Sequential(Residual(FullyConnected(3), Tanh()), Residual(Sequential(
        FullyConnected(2), Sigmoid(), FullyConnected(3)))), (3,), 3),
    Row("residual_recurrent", lambda: Residual(GRU(2, return_sequences=True, impl="naive"), Tanh()),
        (3, 2), 2),
    Row("transformer_mlp_block", lambda: Residual(LayerNorm(), FullyConnected(6), GELU(), FullyConnected(3)),
        (2, 3), 2),
    Row("autodiff_layer", lambda: AutodiffLayer(tanh_residual, tanh_residual_params), (3,), 3),
]


def made(row, seed=0):
    """The row's layer, built, with every parameter that starts constant (a bias at 0, a scale
    at 1) moved off it, so a backward that mixed such parameters up could not pass."""
    layer = built(row.make(), row.input_shape, seed, row.dtype)
    for i, p in enumerate(layer.parameters()):
        if np.ptp(p.data) == 0:
            p.data[...] += 0.5 * randn(p.data.shape, 100 + i)
    return layer


def expected_keys(layer, x):
    """"input" (unless x is token ids) and "<leaf name>.<parameter>" for every parameter."""
    keys = {f"{leaf.name}.{p.name}" for leaf in layer.leaves() for p in leaf.parameters()}
    return keys if np.issubdtype(x.dtype, np.integer) else keys | {"input"}


def autodiff_errors(layer, x, training, seed=2):
    """Relative errors between ``layer``'s forward and backward and autodiff of its Tensor-op form,
    for L = Σ y ⊙ R: ``{"forward": err, "input": err, "<leaf name>.<parameter>": err, ...}``."""
    y = layer.forward(x, training)                   # a dropout draws the mask its form reuses
    R = randn(y.shape, seed)
    dx = layer.backward(R)
    hand = {f"{leaf.name}.{p.name}": p.grad.copy() for leaf in layer.leaves() for p in leaf.parameters()}

    differentiable = np.issubdtype(x.dtype, np.floating)
    x_t = Tensor(x, requires_grad=True) if differentiable else x
    params = parameter_tensors(layer)                # {Parameter: Tensor leaf on its array}
    y_t = tensor_forward(layer, x_t, params, training)
    assert y_t.shape == y.shape, (y_t.shape, y.shape)
    (y_t * R).sum().backward()

    def grad(t):
        return np.zeros_like(t.data) if t.grad is None else t.grad.data

    errors = {"forward": rel_err(y, y_t.data)}
    if differentiable:
        errors["input"] = rel_err(dx, grad(x_t))
    for leaf in layer.leaves():
        for p in leaf.parameters():
            errors[f"{leaf.name}.{p.name}"] = rel_err(hand[f"{leaf.name}.{p.name}"], grad(params[p]))
    return errors


@pytest.mark.parametrize("row", [pytest.param(row, id=row.id) for row in ROWS])
def test_backward_matches_central_differences_and_autodiff_of_the_tensor_form(row):
    assert row.dtype == np.float64, "central differences need float64"
    layer = made(row)
    x = row.inputs(layer, (row.batch,) + row.input_shape, 3)     # R is drawn with seed 1 (a), 2 (b)
    keys = expected_keys(layer, x)
    assert_all_small(central_difference_errors(layer, x, row.training), keys, TOL)
    assert_all_small(autodiff_errors(layer, x, row.training), keys | {"forward"}, AUTODIFF_TOL)


def exported_layer_classes():
    """Every concrete Layer subclass that ``nnscratch.layers`` or ``nnscratch`` exports."""
    names = {(m, n) for m in (layers, nnscratch) for n in getattr(m, "__all__", dir(m))}
    return {getattr(m, n) for m, n in names
            if inspect.isclass(getattr(m, n, None)) and issubclass(getattr(m, n), Layer)
            and getattr(m, n) is not Layer}


def test_the_table_has_a_row_for_every_layer_class_and_both_impls():
    ids = [row.id for row in ROWS]
    assert len(ids) == len(set(ids)), "two rows share an id"
    made_layers = [row.make() for row in ROWS]
    missing = exported_layer_classes() - {type(layer) for layer in made_layers}
    assert not missing, (f"no row for {sorted(c.__name__ for c in missing)}: add a row to ROWS in "
                         "tests/test_gradient_table.py for each new layer class")
    for cls in exported_layer_classes():
        if "impl" in inspect.signature(cls).parameters:
            impls = {layer.impl for layer in made_layers if type(layer) is cls}
            assert impls == {"fast", "naive"}, (f"{cls.__name__} rows cover impl {sorted(impls)}: add a row "
                                                "to ROWS in tests/test_gradient_table.py for each impl")
