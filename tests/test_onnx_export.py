"""An exported ONNX file computes what ``net.predict_proba`` computes, for the shipped
networks and for small ones that use every exportable layer; the rest is refused.

The files are run by ONNX's own reference evaluator (``onnx.reference``, plain
NumPy written by the ONNX project), so the reference for every comparison is
``predict_proba`` and the check does not share code with the exporter.
"""
import os
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx.reference import ReferenceEvaluator  # noqa: E402

from nnscratch import GELU, FullyConnected, Network, Residual, Tanh, load_mnist  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
SHIPPED = ("mlp50", "mlp800", "cnn", "cnn-aug")

# float32: the evaluator sums the same products in another order (its own Conv, its
# own Gemm), so a pre-activation may differ by a few float32 roundings (~1e-7 relative,
# on sums of up to 1600 terms), and a probability by about as much: measured 0 for the
# MLPs, 1.2e-6 for the CNN on 1000 digits. 1e-5 leaves room for that; a wrong weight,
# layout or attribute moves probabilities far more (each one tried failed these tests).
# float64 graphs agree to ~1e-16 here: 1e-10.
TOLERANCE = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}


def run_onnx(path, x):
    """The exported file's "probabilities" for ``x``, from ONNX's reference evaluator."""
    return ReferenceEvaluator(str(path)).run(["probabilities"], {"input": x})[0]


def assert_same_probabilities(net, path, x):
    """The file at ``path`` gives ``net.predict_proba(x)``, shape and dtype included."""
    expected = net.predict_proba(x)
    got = run_onnx(path, x)
    assert got.shape == expected.shape and got.dtype == net.dtype, (got.shape, got.dtype)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE[net.dtype])


@pytest.fixture(scope="module")
def digits():
    """The first 32 MNIST test digits, (32, 784) float32 in [0, 1]."""
    _, _, X_test, _ = load_mnist()
    return X_test[:32]


@pytest.fixture(scope="module", params=SHIPPED)
def shipped(request, tmp_path_factory, digits):
    """``(network, exported file, its digits)`` for each shipped network, exported once."""
    net = Network.load(os.path.join(ROOT, "pre-trained", f"{request.param}.pickle"))
    path = net.export_onnx(tmp_path_factory.mktemp(request.param) / f"{request.param}.onnx")
    return net, path, digits.reshape((-1,) + net.input_shape)  # the CNN takes (N, 1, 28, 28)


def test_a_shipped_network_exports_to_a_file_the_onnx_checker_accepts(shipped):
    _, path, _ = shipped
    assert os.path.isfile(path)
    onnx.checker.check_model(str(path), full_check=True)


def test_a_shipped_network_gives_predict_proba_on_32_digits(shipped):
    net, path, x = shipped
    assert_same_probabilities(net, path, x)


@pytest.mark.parametrize("batch", [1, 7])
def test_one_file_takes_any_batch_size(shipped, batch):
    net, path, x = shipped
    assert_same_probabilities(net, path, x[:batch])


def test_the_file_names_its_producer_and_holds_the_summary(shipped):
    net, path, _ = shipped
    model = onnx.load(str(path))
    assert model.producer_name == "nnscratch"
    assert model.doc_string == str(net.summary())
    assert {p.key: p.value for p in model.metadata_props}["cost"] == net.cost.name
    assert [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim][:1] == ["N"]


# -- small random networks that use every exportable layer -------------------------------------
def randomize_statistics(net, rng):
    """Random biases, batch-norm scales, shifts and running statistics (they start at 0 and 1,
    where a mix-up between them, or a bias left out, would not show)."""
    for _, layer in net.named_layers():
        for p in layer.parameters():
            if p.name in ("b", "beta"):
                p.data[...] = rng.normal(0, 0.5, p.data.shape)
            if p.name == "gamma":
                p.data[...] = rng.uniform(0.5, 2.0, p.data.shape)
        if layer.kind == "batchnorm":
            layer.running_mean = rng.normal(0, 1, layer.running_mean.shape).astype(net.dtype)
            layer.running_var = rng.uniform(0.2, 3.0, layer.running_var.shape).astype(net.dtype)
    return net


def images_net():
    """Batch norm on images and on (N, D), asymmetric kernel, stride and padding, "same"
    padding with an even kernel (pads (0, 1): top/left and bottom/right must not swap),
    both poolings with non-square or overlapping windows, every activation, dropout."""
    net = Network((2, 11, 10), seed=3)
    net.add_conv_layer(4, (3, 2), stride=(2, 1), padding=(1, 0))      # (4, 6, 9)
    net.add_batchnorm_layer(eps=1e-3)
    net.add_leaky_relu_layer(negative_slope=0.2)
    net.add_conv_layer(3, 2, padding="same")                          # (3, 6, 9)
    net.add_tanh_layer()
    net.add_avgpool_layer((2, 3))                                     # (3, 3, 3)
    net.add_maxpool_layer(2, stride=1)                                # (3, 2, 2)
    net.add_flatten_layer()                                           # (12,)
    net.add_fc_layer(8)
    net.add_batchnorm_layer()                                         # on (N, D)
    net.add_sigmoid_layer()
    net.add_dropout_layer(0.3)
    net.add_fc_layer(5)
    net.add_softmax_layer()
    return net


def logits_net():
    """Cost "cross_entropy_logits" and no Softmax layer: the file must add the softmax."""
    net = Network(6, cost="cross_entropy_logits", seed=4)
    net.add_fc_layer(7); net.add_relu_layer(); net.add_fc_layer(4)
    return net


def sequence_net():
    """Dense layers on (N, T, D), one distribution per time step: MatMul + Add, not Gemm."""
    net = Network((5, 6), seed=5)
    net.add_fc_layer(4); net.add_tanh_layer(); net.add_fc_layer(3); net.add_softmax_layer()
    return net


def float64_net():
    """A float64 network exports a float64 graph."""
    net = Network(6, seed=6, dtype=np.float64)
    net.add_fc_layer(5); net.add_sigmoid_layer(); net.add_fc_layer(3); net.add_softmax_layer()
    return net


SMALL = {"images": images_net, "logits": logits_net, "sequence": sequence_net, "float64": float64_net}


@pytest.mark.parametrize("batch", [1, 9])
@pytest.mark.parametrize("kind", sorted(SMALL))
def test_a_small_network_of_every_exportable_kind_gives_predict_proba(kind, batch, tmp_path):
    rng = np.random.default_rng(10)
    net = randomize_statistics(SMALL[kind](), rng)
    x = rng.normal(0, 1, (batch,) + net.input_shape).astype(net.dtype)
    path = net.export_onnx(tmp_path / "nested" / "folder" / f"{kind}.onnx")  # folders are created
    onnx.checker.check_model(str(path), full_check=True)
    assert_same_probabilities(net, path, x)


def test_the_logits_file_outputs_probabilities_not_logits(tmp_path):
    net = logits_net()
    x = np.random.default_rng(11).normal(0, 1, (9, 6)).astype(np.float32)
    got = run_onnx(net.export_onnx(tmp_path / "logits.onnx"), x)
    np.testing.assert_allclose(got.sum(axis=1), 1, atol=1e-6)
    assert not np.allclose(got, net.forward(x), atol=1e-2)


# -- what is refused -----------------------------------------------------------------------------
def lstm_net():
    net = Network((5, 3), seed=7)
    net.add_lstm_layer(4); net.add_fc_layer(2); net.add_softmax_layer()
    return net


def residual_net():
    net = Network(4, seed=8)
    net.add(Residual(FullyConnected(4), Tanh())); net.add_fc_layer(2); net.add_softmax_layer()
    return net


def gelu_net():
    net = Network(4, seed=9)
    net.add_fc_layer(3); net.add(GELU()); net.add_fc_layer(2); net.add_softmax_layer()
    return net


@pytest.mark.parametrize("build, named", [(lstm_net, "lstm1 (LSTM)"), (residual_net, "block1 (Residual)"),
                                          (gelu_net, "gelu1 (GELU)")])
def test_a_layer_with_no_onnx_form_is_refused_by_name_before_anything_is_written(build, named, tmp_path):
    net = build()
    folder = tmp_path / "out"
    with pytest.raises(ValueError) as refused:
        net.export_onnx(folder / "net.onnx")
    assert named in str(refused.value) and "Conv2D" in str(refused.value)  # it lists what is supported
    assert not folder.exists()


@pytest.mark.parametrize("opset", [14, onnx.defs.onnx_opset_version()])
def test_the_oldest_and_newest_opsets_give_predict_proba_too(opset, tmp_path):
    rng = np.random.default_rng(12)
    net = randomize_statistics(images_net(), rng)
    x = rng.normal(0, 1, (3,) + net.input_shape).astype(np.float32)
    assert_same_probabilities(net, net.export_onnx(tmp_path / "images.onnx", opset=opset), x)


def test_an_opset_before_14_is_refused(tmp_path):
    # before 14, BatchNormalization picks its training or inference form from its outputs;
    # onnx's own reference evaluator runs the training form there
    with pytest.raises(ValueError, match="opset must be between 14"):
        images_net().export_onnx(tmp_path / "x.onnx", opset=13)
    assert not any(tmp_path.iterdir())


def test_without_onnx_the_error_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    with pytest.raises(ImportError, match="pip install onnx"):
        logits_net().export_onnx(tmp_path / "x.onnx")
