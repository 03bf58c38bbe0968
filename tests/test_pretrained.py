"""The networks shipped in pre-trained/ are the ones build_network.py trains, and they work."""
import os
import subprocess
import sys

import numpy as np
import pytest

from nnscratch import Network, load_digit_image, load_mnist

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
MLP50 = os.path.join(ROOT, "pre-trained", "mlp50.pickle")
HANDWRITING = os.path.join(ROOT, "datasets", "my_handwriting")


@pytest.fixture(scope="module")
def mlp50():
    return Network.load(MLP50)


SHIPPED = sorted(name for name in os.listdir(os.path.join(ROOT, "pre-trained")) if not name.startswith("."))


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_file_loads_with_the_safe_loader(name):
    net = Network.load(os.path.join(ROOT, "pre-trained", name))
    assert net.layers and net.parameters()
    batch = np.zeros((2,) + tuple(4 if s is None else s for s in net.input_shape),
                     dtype=np.int64 if net.layers[0].kind == "embedding" else np.float32)
    assert np.all(np.isfinite(net.predict_proba(batch)))


def test_shipped_mlp50_reaches_the_seeds_accuracy(mlp50):
    _, _, X_test, y_test = load_mnist()
    accuracy = np.mean(mlp50.predict(X_test) == y_test)
    assert accuracy >= 0.9728, f"test accuracy {accuracy:.4f} is below the seed's 0.9728"


def test_shipped_mlp50_has_the_seeds_architecture(mlp50):
    assert [layer.kind for layer in mlp50.layers] == ["fc", "relu", "fc", "relu", "softmax"]
    assert mlp50.input_shape == (784,) and mlp50.output_shape == (10,)


def test_shipped_mlp50_reads_the_mnist_pngs(mlp50):
    names = sorted(n for n in os.listdir(HANDWRITING) if n.startswith("mnist_test_"))
    assert len(names) >= 10
    correct = 0
    for name in names:
        label = int(name.rsplit("label", 1)[1].split(".")[0])
        x = load_digit_image(os.path.join(HANDWRITING, name))
        correct += int(mlp50.predict(x[None])[0] == label)
    assert correct >= len(names) - 1  # 97% accurate: at most one of ten may be missed


def test_predict_command_prints_digit_and_ten_probabilities():
    png = os.path.join(HANDWRITING, "mnist_test_0_label7.png")
    out = subprocess.run([sys.executable, os.path.join(ROOT, "src", "build_network.py"), "predict", png],
                         capture_output=True, text=True, check=True).stdout
    lines = out.strip().splitlines()
    assert lines[0] == "It is a .... 7"
    probabilities = [float(part.split(": ")[1]) for part in lines[1].split("  ")]
    assert len(probabilities) == 10 and abs(sum(probabilities) - 1) < 0.01
    assert np.argmax(probabilities) == 7


def test_shipped_mlp800_reaches_98_5_percent():
    net = Network.load(os.path.join(ROOT, "pre-trained", "mlp800.pickle"))
    assert [layer.kind for layer in net.layers].count("dropout") == 2
    _, _, X_test, y_test = load_mnist()
    accuracy = np.mean(net.predict(X_test) == y_test)
    assert accuracy >= 0.985, f"test accuracy {accuracy:.4f} is below 0.985"


def test_shipped_cnn_reaches_99_3_percent_and_predicts_pngs():
    net = Network.load(os.path.join(ROOT, "pre-trained", "cnn.pickle"))
    assert [layer.kind for layer in net.layers][:3] == ["conv", "relu", "maxpool"]
    _, _, X_test, y_test = load_mnist()
    accuracy = np.mean(net.predict(X_test.reshape(-1, 1, 28, 28)) == y_test)
    assert accuracy >= 0.993, f"test accuracy {accuracy:.4f} is below 0.993"
    png = os.path.join(HANDWRITING, "mnist_test_0_label7.png")
    out = subprocess.run([sys.executable, os.path.join(ROOT, "src", "build_network.py"), "predict", png,
                          "--model", os.path.join(ROOT, "pre-trained", "cnn.pickle")],
                         capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[0] == "It is a .... 7"


def test_shipped_augmented_cnn_reaches_99_6_percent():
    # the safe file: this is the network the README recommends loading
    net = Network.load(os.path.join(ROOT, "pre-trained", "cnn-aug.safetensors"))
    kinds = [layer.kind for layer in net.layers]
    assert kinds.count("conv") == 3 and kinds.count("batchnorm") == 4
    _, _, X_test, y_test = load_mnist()
    accuracy = np.mean(net.predict(X_test.reshape(-1, 1, 28, 28)) == y_test)
    assert accuracy >= 0.996, f"test accuracy {accuracy:.4f} is below 0.996"


def test_shipped_lstm_reads_mnist_rows_at_98_5_percent():
    net = Network.load(os.path.join(ROOT, "pre-trained", "lstm.pickle"))
    assert [layer.kind for layer in net.layers] == ["lstm", "fc", "softmax"]
    _, _, X_test, y_test = load_mnist()
    accuracy = np.mean(net.predict(X_test.reshape(-1, 28, 28)) == y_test)
    assert accuracy >= 0.985, f"test accuracy {accuracy:.4f} is below 0.985"


def test_shipped_character_model_beats_two_bits_per_character_on_held_out_text():
    from nnscratch import text
    net = Network.load(os.path.join(ROOT, "pre-trained", "charlm.pickle"))
    with open(os.path.join(ROOT, "datasets", "kjv", "pentateuch.txt"), encoding="utf-8") as f:
        corpus = f.read()
    vocab = text.Vocabulary(corpus)
    held_out = vocab.encode(corpus)[int(len(corpus) * 0.9):]     # as build_network.py charlm holds out
    uniform = np.log2(len(vocab))                                  # 6.2 bits for 74 characters
    assert text.bits_per_character(net, held_out[:20000]) < min(2.0, uniform)


def test_shipped_cluster_classifier_tells_the_seeds_clusters_apart():
    from nnscratch import gen_clusters
    net = Network.load(os.path.join(ROOT, "pre-trained", "clusters.pickle"))
    _, test_data, choices = gen_clusters()
    correct = sum(int(np.argmax(net.forward_pass(x)) == np.argmax(t)) for x, t in test_data)
    assert correct / len(test_data) >= 0.99                       # the README reports 749 / 750
    assert choices[np.argmax(net.forward_pass(np.array([[150 / 500], [150 / 500]])))] == "red"
