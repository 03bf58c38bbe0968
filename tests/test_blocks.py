"""Blocks: Sequential and Residual are layers.

Their backward (y = x + f(x), dx = dy + J_fᵀ dy) is checked in float64
against central differences written in the tests (``conftest.central_difference``,
not ``nnscratch.gradcheck``), for the input and every parameter, on awkward
shapes; then names, persistence, the flags that must reach inner layers, and
two residual networks trained on a few thousand MNIST images.
"""
import copy

import numpy as np
import pytest
from conftest import (assert_all_small, assert_rows_small, built, central_difference_errors, give_biases_values,
                      randn)

from nnscratch import (RNN, Adam, BatchNorm, Conv2D, Dropout, FullyConnected, LeakyReLU, Network, ReLU, Residual,
                       Sequential, Sigmoid, Tanh, load_mnist)
from nnscratch.layers import Layer


# (case, block factory, per-sample input shape, batch size, training). Batch norm in
# training never sits right after a biased layer: it subtracts the batch mean, so that
# bias's gradient is exactly 0 and a relative error of two zeros means nothing.
GRADIENT_CASES = [
    ("residual MLP block, batch of one",
     lambda: Residual(FullyConnected(5), Tanh(), FullyConnected(7)), (7,), 1, True),
    ("sequential of dense layers, odd sizes",
     lambda: Sequential(FullyConnected(4), Sigmoid(), FullyConnected(3)), (5,), 2, True),
    ("residual inside a sequential inside a residual",
     lambda: Residual(Sequential(FullyConnected(6), Tanh(), Residual(FullyConnected(6), Sigmoid(), FullyConnected(6))),
                      LeakyReLU(0.1), FullyConnected(5)), (5,), 3, True),
    ("residual conv block with padding 'same' and an even kernel",
     lambda: Residual(Conv2D(3, 3, padding="same"), ReLU(), Conv2D(3, (3, 2), padding="same")), (3, 5, 7), 2, True),
    ("residual conv block with batch norm over channels, batch of one",
     lambda: Residual(Conv2D(4, 3, padding="same"), ReLU(), BatchNorm(), Conv2D(4, 3, padding="same")),
     (4, 5, 3), 1, True),
    ("residual block with batch norm in training and dropout with a fixed mask",
     lambda: Residual(FullyConnected(6), Tanh(), BatchNorm(), Dropout(0.3), FullyConnected(6)), (6,), 5, True),
    ("residual block with batch norm and dropout in evaluation",
     lambda: Residual(FullyConnected(6), Tanh(), BatchNorm(), Dropout(0.3), FullyConnected(6)), (6,), 3, False),
    ("residual recurrent block over sequences",
     lambda: Residual(RNN(4, return_sequences=True)), (3, 4), 2, True),
]


@pytest.mark.parametrize("case,make,shape,batch,training", GRADIENT_CASES, ids=[c[0] for c in GRADIENT_CASES])
def test_block_input_and_parameter_gradients_match_central_differences(case, make, shape, batch, training):
    block = built(make(), shape)
    give_biases_values(block, 2, scale=0.3)
    errors = central_difference_errors(block, randn((batch,) + shape, 3), training)
    expected = {"input"} | {f"{leaf.name}.{p.name}" for leaf in block.leaves() for p in leaf.parameters()}
    assert len(expected) > 1
    assert_all_small(errors, expected)


def test_residual_output_is_the_input_plus_f_of_the_input():
    block = built(Residual(FullyConnected(4), Tanh(), FullyConnected(4)), (4,))
    x = randn((3, 4), 0)
    f = Sequential(*block.layers)  # the same children, now without the skip
    np.testing.assert_array_equal(block.forward(x), x + f.forward(x))


def test_a_residual_around_a_pass_through_doubles_the_gradient_and_leaves_dy_untouched():
    block = built(Residual(Dropout(0.5)), (3,))  # in evaluation dropout returns dy itself
    block.forward(randn((2, 3), 0), training=False)
    dy = randn((2, 3), 1)
    dy_before = dy.copy()
    np.testing.assert_array_equal(block.backward(dy), 2 * dy_before)
    np.testing.assert_array_equal(dy, dy_before)


# -- building ---------------------------------------------------------------------
def test_a_residual_whose_f_changes_the_shape_is_a_clear_value_error():
    net = Network(8)
    with pytest.raises(ValueError, match=r"block1 \(Residual\).*must keep the shape: input \(N, 8\), "
                                         r"f gives \(N, 4\) \(block1\.fc1 \(FullyConnected\)"):
        net.add(Residual(FullyConnected(4), ReLU()))


def test_a_nested_residual_that_changes_the_shape_is_named_by_its_path():
    net = Network(8)
    with pytest.raises(ValueError, match=r"block1\.block1 \(Residual\).*\(N, 8\).*\(N, 3\)"):
        net.add(Sequential(ReLU(), Residual(FullyConnected(3))))


@pytest.mark.parametrize("make,error", [
    (lambda: Sequential(), ValueError),
    (lambda: Residual([FullyConnected(3), ReLU()]), TypeError),
    (lambda: Sequential(FullyConnected(3), "relu"), TypeError),
    (lambda: (lambda fc: Residual(fc, ReLU(), fc))(FullyConnected(3)), ValueError),
])
def test_blocks_refuse_no_layers_a_list_a_non_layer_and_one_layer_twice(make, error):
    with pytest.raises(error):
        make()


def test_blocks_are_layers_exported_at_the_top_level():
    import nnscratch
    import nnscratch.layers
    for name in ("Sequential", "Residual"):
        assert name in nnscratch.__all__ and name in nnscratch.layers.__all__
        assert issubclass(getattr(nnscratch, name), Layer)
    assert FullyConnected(3).children() == [] and FullyConnected(3).leaves()[0].kind == "fc"


def residual_mlp(seed=0, dtype=np.float32):
    """fc1 relu1 block1=[fc1 relu1 fc2] relu2 block2=[batchnorm1 block1=[fc1 tanh1 fc2] dropout1] fc2 softmax1.

    The batch norm follows a ReLU, not a biased layer, whose bias would get a gradient of exactly 0."""
    net = Network(6, seed=seed, dtype=dtype)
    net.add_fc_layer(8)
    net.add_relu_layer()
    net.add(Residual(FullyConnected(8), ReLU(), FullyConnected(8)))
    net.add_relu_layer()
    net.add(Sequential(BatchNorm(), Residual(FullyConnected(8), Tanh(), FullyConnected(8)), Dropout(0.25)))
    net.add_fc_layer(3)
    net.add_softmax_layer()
    return net


def test_names_nest_as_pytorchs_do_in_named_layers_state_dict_and_summary():
    net = residual_mlp()
    assert [name for name, _ in net.named_layers()] == [
        "fc1", "relu1", "block1.fc1", "block1.relu1", "block1.fc2", "relu2",
        "block2.batchnorm1", "block2.block1.fc1", "block2.block1.tanh1", "block2.block1.fc2", "block2.dropout1",
        "fc2", "softmax1"]
    assert list(net.state_dict()) == [
        "fc1.W", "fc1.b", "block1.fc1.W", "block1.fc1.b", "block1.fc2.W", "block1.fc2.b",
        "block2.batchnorm1.gamma", "block2.batchnorm1.beta",
        "block2.batchnorm1.running_mean", "block2.batchnorm1.running_var",
        "block2.block1.fc1.W", "block2.block1.fc1.b", "block2.block1.fc2.W", "block2.block1.fc2.b", "fc2.W", "fc2.b"]
    rows = {line.split(" (")[0]: line for line in net.summary().splitlines()}
    assert "  block1.fc1" in rows and "    block2.block1.tanh1" in rows and "block2" in rows
    # a block's row holds its totals: 2 · (8·8 + 8) parameters, and the residual's 8 additions
    assert rows["block1"].split()[-2:] == ["144", f"{2 * 2 * 8 * 8 + 8 + 8:,}"]
    assert sum(p.data.size for p in net.parameters()) == sum(p.data.size for _, leaf in net.named_layers()
                                                              for p in leaf.parameters())


def test_a_network_without_blocks_keeps_its_flat_names_and_summary_rows():
    net = Network(4)
    net.add_fc_layer(5)
    net.add_relu_layer()
    net.add_fc_layer(2)
    net.add_softmax_layer()
    assert list(net.state_dict()) == ["fc1.W", "fc1.b", "fc2.W", "fc2.b"]
    assert [name for name, _ in net.named_layers()] == ["fc1", "relu1", "fc2", "softmax1"]
    assert [line.split()[0] for line in net.summary().splitlines()[2:6]] == ["input", "fc1", "relu1", "fc2"]


def test_only_the_very_first_leaf_of_the_network_skips_its_input_gradient():
    net = Network(5)
    net.add(Sequential(Residual(FullyConnected(5), ReLU()), FullyConnected(3)))
    net.add(Residual(FullyConnected(3), Tanh(), FullyConnected(3)))
    assert [leaf.needs_input_grad for _, leaf in net.named_layers()] == [False, True, True, True, True, True]
    # ...and the parameter gradients are the same as when every layer computes its dx
    X, dy = randn((4, 5), 0).astype(np.float32), randn((4, 3), 1).astype(np.float32)
    every = copy.deepcopy(net)
    for layer in every.layers:
        layer.needs_input_grad = True
    assert net.backward((net.forward(X, True), dy)[1]) is None
    assert every.backward((every.forward(X, True), dy)[1]).shape == X.shape
    for p, q in zip(net.parameters(), every.parameters()):
        np.testing.assert_array_equal(p.grad, q.grad)


def test_auto_init_follows_the_next_leaf_into_out_of_and_inside_blocks():
    net = Network(6)
    net.add_fc_layer(6)                                                      # next leaf: block1.tanh1
    net.add(Residual(Tanh(), FullyConnected(6), ReLU(), FullyConnected(6)))  # block1.fc2: next is sigmoid1
    net.add_sigmoid_layer()
    net.add(Sequential(FullyConnected(6), Residual(ReLU(), FullyConnected(6))))  # block2.fc1 before a ReLU
    schemes = {name: leaf._scheme for name, leaf in net.named_layers() if hasattr(leaf, "_scheme")}
    assert schemes == {"fc1": "glorot", "block1.fc1": "he", "block1.fc2": "glorot",
                       "block2.fc1": "he", "block2.block1.fc1": "he"}
    assert np.std(net.layers[0].W.data) == pytest.approx(np.sqrt(2 / 12), rel=0.25)  # Glorot, fan 6 + 6


def test_training_flags_reach_batch_norm_and_dropout_inside_blocks():
    net = residual_mlp()
    X = randn((20, 6), 0).astype(np.float32)
    bn = dict(net.named_layers())["block2.batchnorm1"]
    np.testing.assert_array_equal(net.forward(X), net.forward(X))  # evaluation: no dropout, fixed statistics
    assert bn.num_batches_tracked == 0
    assert not np.array_equal(net.forward(X, True), net.forward(X))
    assert bn.num_batches_tracked == 1


def test_reset_state_reaches_stateful_recurrent_layers_inside_blocks():
    net = Network((4, 3))
    net.add(Sequential(Residual(RNN(3, return_sequences=True, stateful=True)), RNN(5, stateful=True)))
    net.forward(randn((2, 4, 3), 0).astype(np.float32))
    recurrent = [leaf for _, leaf in net.named_layers()]
    assert all(leaf.carried_state is not None for leaf in recurrent)
    net.reset_state()
    assert all(leaf.carried_state is None for leaf in recurrent)


def test_astype_casts_parameters_and_running_statistics_inside_blocks():
    net = residual_mlp().astype(np.float64)
    bn = dict(net.named_layers())["block2.batchnorm1"]
    assert {p.data.dtype for p in net.parameters()} == {np.dtype(np.float64)}
    assert bn.running_mean.dtype == bn.running_var.dtype == np.float64
    assert net.forward(randn((3, 6), 0)).dtype == np.float64


def test_flops_of_a_block_are_its_childrens_plus_the_residual_additions():
    block = built(Residual(FullyConnected(4), ReLU(), FullyConnected(4)), (4,))
    assert block.flops() == 2 * 4 * 4 + 4 + 2 * 4 * 4 + 4
    assert built(Sequential(FullyConnected(4), ReLU()), (4,)).flops() == 2 * 4 * 4 + 4


# -- persistence ------------------------------------------------------------------
def trained_residual_mlp():
    net = residual_mlp()
    X = randn((60, 6), 0).astype(np.float32)
    net.fit(X, np.arange(60) % 3, epochs=2, batch_size=20, optimizer=Adam(lr=0.01), verbose=0)
    return net, X


def test_save_then_network_load_gives_identical_outputs_and_a_shared_generator(tmp_path):
    net, X = trained_residual_mlp()
    path = tmp_path / "residual.pickle"
    net.save(path)
    loaded = Network.load(path)  # the safe loader: blocks are nnscratch classes
    np.testing.assert_array_equal(loaded.forward(X), net.forward(X))
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[key], value)
    dropout = dict(loaded.named_layers())["block2.dropout1"]
    assert dropout.rng is loaded.rng
    assert [leaf.needs_input_grad for _, leaf in loaded.named_layers()][:2] == [False, True]


def test_load_state_dict_restores_weights_and_running_statistics_inside_blocks():
    net, X = trained_residual_mlp()
    other = residual_mlp(seed=7)
    assert not np.array_equal(other.forward(X), net.forward(X))
    other.load_state_dict(net.state_dict())
    np.testing.assert_array_equal(other.forward(X), net.forward(X))
    bn = dict(other.named_layers())["block2.batchnorm1"]
    np.testing.assert_array_equal(bn.running_var, net.state_dict()["block2.batchnorm1.running_var"])


# -- gradient checks through the network -------------------------------------------
def test_check_gradients_reports_every_inner_layer_by_its_qualified_name():
    net = residual_mlp()
    rows = net.check_gradients(randn((8, 6), 0), np.arange(8) % 3, verbose=False)
    reported = {(r["layer"], r["what"]) for r in rows}
    assert {("block1.fc1", "W"), ("block2.block1.fc2", "b"), ("block2.batchnorm1", "gamma")} <= reported
    assert_rows_small(rows, 1e-5)


# -- training on MNIST ----------------------------------------------------------------
@pytest.fixture(scope="module")
def mnist():
    X_train, y_train, X_test, y_test = load_mnist()
    return X_train[:5000], y_train[:5000], X_test[:2000], y_test[:2000]


def test_a_residual_mlp_learns_mnist_from_5000_images_in_seconds(mnist):
    X, y, X_test, y_test = mnist
    net = Network(784, seed=0)
    net.add_fc_layer(64)
    net.add_relu_layer()
    net.add(Residual(FullyConnected(64), ReLU(), FullyConnected(64)))
    net.add_relu_layer()
    net.add_fc_layer(10)
    net.add_softmax_layer()
    net.fit(X, y, epochs=6, batch_size=64, optimizer=Adam(lr=2e-3), verbose=0)
    # measured 0.9155 with seed 0 (0.911-0.916 over seeds 0-3); about 0.3 s on 2 cores
    assert net.evaluate(X_test, y_test)["accuracy"] > 0.89


def test_a_small_residual_cnn_learns_mnist_from_5000_images_in_seconds(mnist):
    X, y, X_test, y_test = mnist
    net = Network((1, 28, 28), seed=0)
    net.add_conv_layer(8, 3, padding="same")
    net.add_relu_layer()
    net.add_maxpool_layer(2)
    net.add(Residual(Conv2D(8, 3, padding="same"), BatchNorm(), ReLU(), Conv2D(8, 3, padding="same")))
    net.add_relu_layer()
    net.add_maxpool_layer(2)
    net.add_flatten_layer()
    net.add_fc_layer(10)
    net.add_softmax_layer()
    net.fit(X.reshape(-1, 1, 28, 28), y, epochs=2, batch_size=32, optimizer=Adam(lr=3e-3), verbose=0)
    # measured 0.9435 with seed 0 (0.933 with seed 1); about 2.5 s on 2 cores
    assert net.evaluate(X_test.reshape(-1, 1, 28, 28), y_test)["accuracy"] > 0.92
