"""``net.save("x.safetensors")`` / ``Network.load``: the weights as tensors, the architecture as JSON,
rebuilt without running anything from the file; damaged and tampered files are clear errors."""
import json
import os

import numpy as np
import pytest

from nnscratch import Network
from nnscratch.layers import (GELU, LSTM, BatchNorm, Conv2D, Dropout, FullyConnected, LeakyReLU, ReLU, Residual,
                              Sequential)
from nnscratch.persistence import NotANetworkFileError

safetensors_numpy = pytest.importorskip("safetensors.numpy")

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
PRE_TRAINED = os.path.join(ROOT, "pre-trained")
PICKLES = sorted(name[:-len(".pickle")] for name in os.listdir(PRE_TRAINED) if name.endswith(".pickle"))


def sample_batch(net, n=3, seed=0):
    """A batch the network takes: token ids for an Embedding first, floats otherwise; free lengths are 7."""
    rng = np.random.default_rng(seed)
    shape = (n,) + tuple(7 if s is None else s for s in net.input_shape)
    if net._takes_token_ids:
        return rng.integers(0, net.layers[0].vocab_size, shape)
    return rng.random(shape).astype(net.dtype)


def every_kind_image_net(dtype=np.float32):
    """Convolutions with stride, an even kernel with 'same' padding (uneven widths), batch norm with
    moved statistics, both pools, a residual block, leaky ReLU and dropout."""
    net = Network((2, 9, 8), seed=3, dtype=dtype)
    net.add_conv_layer(4, 3, stride=2, padding=1)
    net.add_batchnorm_layer(momentum=0.3, eps=1e-3)
    net.add_leaky_relu_layer(negative_slope=0.2)
    net.add_conv_layer(3, 2, padding="same")
    net.add_avgpool_layer(2, stride=1)
    net.add_maxpool_layer(2)
    net.add_flatten_layer()
    net.add(Residual(FullyConnected(6), ReLU(), Dropout(0.25), FullyConnected(6)))
    net.add_fc_layer(5)
    net.add_softmax_layer()
    net.fit(sample_batch(net, 16), np.arange(16) % 5, epochs=2, batch_size=4, optimizer="adam", verbose=0)
    return net


def every_kind_sequence_net(dtype=np.float32):
    """Token ids -> embedding, positions, a causal transformer block, a stateful LSTM, a GRU, an RNN."""
    net = Network((None,), cost="cross_entropy_logits", seed=5, dtype=dtype)
    net.add_embedding_layer(11, 8)
    net.add_positional_embedding_layer(16)
    net.add_transformer_block(2, ff_dim=12, dropout=0.1, approximate="tanh")
    net.add_layernorm_layer(eps=1e-4)
    net.add_lstm_layer(6, return_sequences=True, stateful=True)
    net.add_gru_layer(5, return_sequences=True)
    net.add_rnn_layer(4, activation="relu", return_sequences=True)
    net.add(Sequential(FullyConnected(7), GELU()))
    net.add_fc_layer(11)
    return net


@pytest.mark.parametrize("build", [every_kind_image_net, every_kind_sequence_net])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_rebuilds_the_same_network(tmp_path, build, dtype):
    net = build(dtype)
    path = tmp_path / "net.safetensors"
    net.save(path)
    back = Network.load(path)
    assert [name for name, _ in back.named_layers()] == [name for name, _ in net.named_layers()]
    assert [type(layer) for _, layer in back.named_layers()] == [type(layer) for _, layer in net.named_layers()]
    assert back.input_shape == net.input_shape and back.dtype == net.dtype and back.cost.name == net.cost.name
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[key], value, err_msg=key)
        assert back.state_dict()[key].dtype == value.dtype
    X = sample_batch(net)
    np.testing.assert_array_equal(back.forward(X), net.forward(X))
    # the generator goes on where it was: the same dropout masks in the next training step
    assert back.rng.random() == net.rng.random()


def test_layer_settings_come_back(tmp_path):
    net = every_kind_image_net()
    net.save(tmp_path / "a.safetensors")
    back = Network.load(tmp_path / "a.safetensors")
    conv1, conv2 = back.layers[0], back.layers[3]
    assert (conv1.stride, conv1.pads) == ((2, 2), ((1, 1), (1, 1)))
    assert conv2.pads == ((0, 1), (0, 1))            # 'same' with a 2x2 kernel pads bottom/right only
    assert back.layers[1].momentum == 0.3 and back.layers[1].eps == 1e-3
    assert back.layers[1].num_batches_tracked == net.layers[1].num_batches_tracked == 8   # 2 epochs of 4 batches
    assert back.layers[2].negative_slope == 0.2
    assert (back.layers[4].size, back.layers[4].stride) == ((2, 2), (1, 1))
    assert back.layers[7].layers[2].p == 0.25
    assert back.layers[7].layers[2].rng is back.rng  # dropout draws from the loaded network's generator


@pytest.mark.parametrize("name", PICKLES)
def test_every_shipped_network_is_shipped_as_safetensors_too(name):
    pickled = Network.load(os.path.join(PRE_TRAINED, f"{name}.pickle"))
    safe = Network.load(os.path.join(PRE_TRAINED, f"{name}.safetensors"))
    X = sample_batch(pickled, n=4)
    pickled.reset_state(), safe.reset_state()
    np.testing.assert_array_equal(safe.forward(X), pickled.forward(X))


def test_the_format_follows_the_extension(tmp_path):
    net = every_kind_image_net()
    net.save(tmp_path / "n.safetensors")
    net.save(tmp_path / "n.pickle")
    head = (tmp_path / "n.safetensors").read_bytes()[:9]
    assert int.from_bytes(head[:8], "little") > 0 and head[8:9] == b"{"   # safetensors: header size, then JSON
    assert (tmp_path / "n.pickle").read_bytes()[:1] == b"\x80"                # pickle's PROTO opcode
    with safetensors_numpy.safe_open(str(tmp_path / "n.safetensors"), framework="numpy") as f:
        # other tools read the tensors: state_dict()'s, and batch norm's counter as PyTorch keeps it
        assert set(f.keys()) == set(net.state_dict()) | {"batchnorm1.num_batches_tracked"}
        assert f.get_tensor("batchnorm1.num_batches_tracked").dtype == np.int64
        assert json.loads(f.metadata()["nnscratch"])["layers"][0]["class"] == "Conv2D"


# -- damaged and tampered files ---------------------------------------------------------------
@pytest.fixture
def saved(tmp_path):
    """A small saved network and its parts, to tamper with: (path, tensors, description)."""
    net = Network(6, seed=0)
    net.add_fc_layer(4)
    net.add_relu_layer()
    net.add_fc_layer(3)
    net.add_softmax_layer()
    path = tmp_path / "small.safetensors"
    net.save(path)
    tensors = safetensors_numpy.load_file(str(path))
    with safetensors_numpy.safe_open(str(path), framework="numpy") as f:
        description = json.loads(f.metadata()["nnscratch"])
    return path, tensors, description


def rewrite(path, tensors, description=None, raw=None):
    metadata = {} if description is None and raw is None else {"nnscratch": raw or json.dumps(description)}
    safetensors_numpy.save_file(tensors, str(path), metadata=metadata)


def refused(path, *fragments):
    with pytest.raises(NotANetworkFileError) as err:
        Network.load(path)
    message = str(err.value)
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message


def test_a_truncated_file_is_refused(saved):
    path, _, _ = saved
    data = path.read_bytes()
    for cut in (4, 40, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        refused(path, "not a readable safetensors file")


def test_another_format_is_refused(tmp_path):
    path = tmp_path / "image.safetensors"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    refused(path, "not a readable safetensors file")


def test_tensors_without_an_architecture_are_refused(saved):
    path, tensors, _ = saved
    rewrite(path, tensors)
    refused(path, "without an nnscratch architecture")


def test_a_wrong_shape_is_refused(saved):
    path, tensors, description = saved
    tensors["fc1.W"] = np.zeros((5, 6), dtype=np.float32)
    rewrite(path, tensors, description)
    refused(path, "fc1.W", "(5, 6)", "(4, 6)")


def test_a_wrong_dtype_is_refused(saved):
    path, tensors, description = saved
    tensors["fc2.b"] = tensors["fc2.b"].astype(np.float64)
    rewrite(path, tensors, description)
    refused(path, "fc2.b", "float64", "float32")


def test_missing_and_unexpected_tensors_are_refused(saved):
    path, tensors, description = saved
    rewrite(path, {k: v for k, v in tensors.items() if k != "fc2.W"}, description)
    refused(path, "missing ['fc2.W']")
    rewrite(path, dict(tensors, extra=np.zeros(2, dtype=np.float32)), description)
    refused(path, "unexpected ['extra']")


def test_an_architecture_that_disagrees_with_the_tensors_is_refused(saved):
    path, tensors, description = saved
    description["layers"][0]["units"] = 5             # the file's fc1.W is (4, 6)
    rewrite(path, tensors, description)
    refused(path, "fc1.W")


@pytest.mark.parametrize("change, fragment", [
    (lambda d: d["layers"][1].update({"class": "os.system"}), "unknown layer class 'os.system'"),
    (lambda d: d["layers"][1].update({"class": "Layer"}), "unknown layer class 'Layer'"),
    (lambda d: d["layers"][0].update({"units": "ten"}), "layers[0] (FullyConnected)"),
    (lambda d: d["layers"][0].update({"units": -4}), "units must be a positive integer"),
    (lambda d: d["layers"][0].update({"activation": "relu"}), "expected the fields"),
    (lambda d: d["layers"][0].pop("init"), "expected the fields"),
    (lambda d: d.update({"cost": "hinge"}), "cost must be one of"),
    (lambda d: d.update({"version": 99}), "newer than this nnscratch reads"),
    (lambda d: d.update({"format": "keras"}), "not an nnscratch architecture"),
    (lambda d: d.pop("layers"), "missing 'layers'"),
])
def test_a_tampered_architecture_is_refused_with_the_reason(saved, change, fragment):
    path, tensors, description = saved
    change(description)
    rewrite(path, tensors, description)
    refused(path, fragment)


def test_an_architecture_that_is_not_json_is_refused(saved):
    path, tensors, _ = saved
    rewrite(path, tensors, raw="{'layers': [")
    refused(path, "not valid JSON")


def test_missing_files_and_folders_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no network file"):
        Network.load(tmp_path / "none.safetensors")
    folder = tmp_path / "folder.safetensors"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder"):
        Network.load(folder)


def test_a_custom_cost_cannot_be_described(tmp_path):
    net = Network(3, cost=lambda a, t: float(np.sum((a - t) ** 2)), cost_prime=lambda a, t: 2 * (a - t))
    net.add(FullyConnected(2))
    with pytest.raises(ValueError, match="custom cost"):
        net.save(tmp_path / "custom.safetensors")
    assert not (tmp_path / "custom.safetensors").exists()


def test_layers_are_the_librarys_own_classes_only(tmp_path):
    class MyReLU(ReLU):
        pass

    net = Network(3)
    net.add(FullyConnected(2))
    net.add(MyReLU())
    with pytest.raises(ValueError, match="MyReLU"):
        net.save(tmp_path / "mine.safetensors")


def test_the_description_lists_plain_json_values_only():
    from nnscratch import architecture
    description = architecture.describe(every_kind_sequence_net())
    assert json.loads(json.dumps(description)) == description    # nothing JSON would change or refuse
    kinds = [entry["class"] for entry in description["layers"]]
    assert kinds[:3] == ["Embedding", "PositionalEmbedding", "Sequential"]
    assert description["layers"][4] == {"class": "LSTM", "hidden": 6, "return_sequences": True, "stateful": True,
                                        "impl": "fast"}
    assert {BatchNorm, Conv2D, LSTM, LeakyReLU} <= set(architecture.LAYER_ARGUMENTS)
