"""Bad input gets a clear error before any work, and a real divergence is still told as one.

Each refusal is checked for what its message must say (what was expected,
what came, where) and for having done nothing: the weights stay as they
were and no history is started.
"""
import os
import pickle
import warnings
from functools import partial

import numpy as np
import pytest
from conftest import toy_classes

from nnscratch import SGD, Callback, Network, TrainingDiverged, UnsafePickleError, gen_clusters, load_mnist
from nnscratch.persistence import NotANetworkFileError

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
PNG = os.path.join(ROOT, "datasets", "my_handwriting", "mnist_test_0_label7.png")


small_data = partial(toy_classes, n=40, d=12, k=3)     # X (40, 12) uniform in [0, 1), y in {0, 1, 2}


def mlp(d=12, k=3, **kw):
    net = Network(d, seed=0, **kw)
    net.add_fc_layer(8)
    net.add_relu_layer()
    net.add_fc_layer(k)
    net.add_softmax_layer()
    return net


def regression_net(d=12, k=2):
    net = Network(d, cost="quadratic", seed=0)
    net.add_fc_layer(k)
    return net


def image_net():
    net = Network((1, 6, 6), seed=0)
    net.add_conv_layer(2, 3)
    net.add_flatten_layer()
    net.add_fc_layer(3)
    net.add_softmax_layer()
    return net


def token_net(vocab=5, steps=4):
    net = Network(steps, seed=0)
    net.add_embedding_layer(vocab, 3)
    net.add_rnn_layer(4)
    net.add_fc_layer(2)
    net.add_softmax_layer()
    return net


def weights(net):
    return [p.data.copy() for p in net.parameters()]


def untouched(net, before):
    return net.history is None and all(np.array_equal(b, p.data) for b, p in zip(before, net.parameters()))


# Each entry point as one call on (net, X, y), so one test covers them all.
CALLS = {
    "fit": lambda net, X, y: net.fit(X, y, epochs=1, verbose=0),
    "evaluate": lambda net, X, y: net.evaluate(X, y),
    "predict": lambda net, X, y: net.predict(X),
    "predict_proba": lambda net, X, y: net.predict_proba(X),
}
each_call = pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())


def with_bad_values(X, where, values):
    X = X.copy()
    for index, value in zip(where, values):
        X[index] = value
    return X


# -- empty data ---------------------------------------------------------------------------------
@each_call
def test_empty_data_is_refused_before_any_work(call):
    X, y = small_data()
    net = mlp()
    before = weights(net)
    with pytest.raises(ValueError, match=r"X is empty: expected at least one sample of shape \(N, 12\), "
                                         r"got an array of shape \(0, 12\)"):
        call(net, X[:0], y[:0])
    assert untouched(net, before)


def test_fit_on_an_empty_list_says_empty_rather_than_wrong_shape():
    with pytest.raises(ValueError, match=r"X is empty.*got an array of shape \(0,\)"):
        mlp().fit([], [], verbose=0)


# -- NaN and infinite values ------------------------------------------------------------------------
@each_call
def test_nan_and_infinite_values_in_x_are_counted_and_located(call):
    X, y = small_data()
    X = with_bad_values(X, [(12, 5), (20, 0), (30, 11), (15, 3)], [np.nan, np.nan, np.nan, np.inf])
    net = mlp()
    before = weights(net)
    with pytest.raises(ValueError,
                       match=r"X holds 3 NaN and 1 infinite values \(first at sample 12, feature 5\)"):
        call(net, X, y)
    assert untouched(net, before)


def test_nan_in_images_is_located_by_its_full_index():
    X = np.random.default_rng(0).random((5, 1, 6, 6))
    X[3, 0, 2, 4] = -np.inf
    with pytest.raises(ValueError, match=r"X holds 1 infinite value \(first at index \(3, 0, 2, 4\)\)"):
        image_net().predict(X)


def test_nan_in_x_during_fit_is_bad_data_not_a_divergence():
    X, y = small_data()
    X[7, 2] = np.nan
    with pytest.raises(ValueError, match="X holds 1 NaN value") as caught:
        mlp().fit(X, y, optimizer=SGD(lr=1e-3), verbose=0)
    assert not isinstance(caught.value, TrainingDiverged)
    assert "learning rate" not in str(caught.value)


def test_values_too_large_for_float32_are_refused_as_infinite():
    X, y = small_data()
    X = X.astype(np.float64)
    X[4, 1] = 1e300  # finite in float64, inf once cast to the network's float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's overflow warning from the cast
        with pytest.raises(ValueError, match=r"X holds 1 infinite value \(first at sample 4, feature 1\)"):
            mlp().fit(X, y, verbose=0)


def test_nan_in_validation_data_is_refused_before_training():
    X, y = small_data()
    net = mlp()
    before = weights(net)
    with pytest.raises(ValueError, match=r"X_val holds 1 NaN value \(first at sample 2, feature 3\)"):
        net.fit(X, y, validation_data=(with_bad_values(X[:10], [(2, 3)], [np.nan]), y[:10]), verbose=0)
    assert untouched(net, before)


def test_nan_in_real_valued_targets_is_refused_with_its_place():
    X, _ = small_data()
    T = np.zeros((len(X), 2))
    T[9, 1] = np.nan
    with pytest.raises(ValueError, match=r"y holds 1 NaN value \(first at sample 9, feature 1\)"):
        regression_net().fit(X, T, verbose=0)
    with pytest.raises(ValueError, match=r"y_val holds 1 NaN value"):
        regression_net().fit(X, np.zeros((len(X), 2)), validation_data=(X, T), verbose=0)


# -- labels --------------------------------------------------------------------------------------------
def test_string_labels_ask_for_integer_class_ids_and_show_one():
    X, _ = small_data()
    y = np.array(["cat", "dog", "bird", "cat"] * 10)
    with pytest.raises(ValueError, match=r"labels must be integer class ids in \[0, 2\].*'cat'.*np.unique"):
        mlp().fit(X, y, verbose=0)
    with pytest.raises(ValueError, match=r"labels must be integer class ids in \[0, 2\].*'cat'"):
        mlp().evaluate(X, y)


def test_python_objects_as_labels_show_the_first_that_is_not_a_number():
    X, y = small_data()
    labels = np.array(list(y[:5]) + [None] + list(y[6:]), dtype=object)
    with pytest.raises(ValueError, match=r"integer class ids in \[0, 2\].*None"):
        mlp().fit(X, labels, verbose=0)


def test_non_integer_labels_are_refused_as_non_integers_not_as_a_wrong_shape():
    X, y = small_data()
    labels = y.astype(np.float64)
    labels[7] = 1.5
    with pytest.raises(ValueError, match=r"labels must be integer class ids in \[0, 2\].*"
                                         r"non-integer values such as 1.5 \(first at sample 7\)") as caught:
        mlp().fit(X, labels, verbose=0)
    assert "targets must be" not in str(caught.value)  # the old message wrongly blamed the shape


def test_valid_labels_and_inputs_keep_working():
    X, y = small_data()
    ids = mlp().fit(X, y, epochs=2, verbose=0)
    float_ids = mlp().fit(X, y.astype(np.float64), epochs=2, verbose=0)  # 2.0 is a class id
    one_hot = mlp().fit(X, np.eye(3)[y], epochs=2, verbose=0)
    assert ids["loss"] == float_ids["loss"] == one_hot["loss"]
    tokens = np.random.default_rng(0).integers(0, 5, (16, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # token ids above 1 are not pixels: no warning
        token_net().fit(tokens, tokens[:, 0] % 2, epochs=1, verbose=0)
    training_data, test_data, _ = gen_clusters(n_samples=200)
    net = Network(2, cost="quadratic", seed=0)
    net.add_fc_layer(3)
    net.add_sigmoid_layer()
    history = net.stochastic_gradient_descent(training_data, 2, 10, 0.5, test_data, verbose=0)
    assert history.epochs == 2 and np.isfinite(history["loss"]).all()


# -- a network with no layers ----------------------------------------------------------------------------
@each_call
def test_a_network_with_no_layers_refuses_to_work(call):
    X, y = small_data()
    net = Network(12)
    with pytest.raises(ValueError, match=r"the network has no layers: add some with add_fc_layer\(\.\.\.\) / "
                                         r"net\.add\(\.\.\.\)"):
        call(net, X, y)
    assert net.history is None


# -- validation data --------------------------------------------------------------------------------------
def test_empty_validation_data_is_refused_by_name():
    X, y = small_data()
    net = mlp()
    with pytest.raises(ValueError, match=r"X_val is empty: expected at least one sample of shape \(N, 12\)"):
        net.fit(X, y, validation_data=(X[:0], y[:0]), verbose=0)
    assert net.history is None


@pytest.mark.parametrize("validation, got", [
    (lambda X, y: X, "a ndarray of length 40"),
    (lambda X, y: (X, y, y), "a tuple of length 3"),
    (lambda X, y: 0.2, "a float"),
])
def test_validation_data_must_be_a_pair(validation, got):
    X, y = small_data()
    with pytest.raises(ValueError, match=rf"validation_data must be a pair \(X_val, y_val\), got {got}"):
        mlp().fit(X, y, validation_data=validation(X, y), verbose=0)


# -- loading a file that is not a network ------------------------------------------------------------------
def _truncated_network(path):
    mlp().save(path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


NOT_NETWORKS = {
    "png": (lambda path: path.write_bytes(open(PNG, "rb").read()), "it is a PNG image"),
    "text": (lambda path: path.write_text("layers: 784 50 10\n"), "it holds text"),
    "empty": (lambda path: path.write_bytes(b""), "is empty (0 bytes)"),
    "truncated pickle": (_truncated_network, "cut short"),
    "pickle of a dict": (lambda path: path.write_bytes(pickle.dumps({"W": [1, 2]})), "it holds a dict"),
}


@pytest.mark.parametrize("make, says", NOT_NETWORKS.values(), ids=NOT_NETWORKS.keys())
def test_loading_a_file_that_is_not_a_network_names_the_file(tmp_path, make, says):
    path = tmp_path / "net.pickle"
    make(path)
    with pytest.raises(NotANetworkFileError) as caught:
        Network.load(path)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert str(path) in message and "not an nnscratch network file" in message and says in message
    assert "persistent load" not in message


def test_loading_a_folder_or_a_missing_file_is_an_os_error_naming_the_path(tmp_path):
    with pytest.raises(IsADirectoryError, match=rf"{tmp_path} is a folder, not an nnscratch network file"):
        Network.load(tmp_path)
    missing = tmp_path / "nope.pickle"
    with pytest.raises(FileNotFoundError, match=rf"no network file at {missing}"):
        Network.load(missing)


def test_a_malicious_pickle_is_still_an_unsafe_pickle_error_and_a_value_error(tmp_path):
    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps(print))  # names builtins.print
    with pytest.raises(UnsafePickleError, match="refusing to load builtins.print") as caught:
        Network.load(path)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, pickle.UnpicklingError)


# -- integer pixels -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("call", [CALLS[name] for name in ("fit", "evaluate", "predict")],
                         ids=["fit", "evaluate", "predict"])
def test_integer_pixels_above_one_warn_and_suggest_dividing_by_255(call):
    X, y = small_data()
    pixels = (X * 255).astype(np.uint8)
    with pytest.warns(UserWarning, match=r"X holds integers up to 25\d \(dtype uint8\), but the network "
                                         r"expects floats in \[0, 1\].*X / 255") as caught:
        call(mlp(), pixels, y)
    assert caught[0].filename == __file__  # the warning points at the caller's line, not the library's


def test_integer_inputs_of_zeros_and_ones_and_float_pixels_do_not_warn():
    X, y = small_data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mlp().predict((X > 0.5).astype(np.int64))
        mlp().predict(X * 255)  # floats are the caller's choice


# -- a real divergence is still told as one --------------------------------------------------------------
class BatchLosses(Callback):
    def __init__(self):
        self.losses = []

    def on_batch_end(self, run):
        self.losses.append(run.loss)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_a_linear_model_on_mnist_with_lr_1_really_diverges_and_keeps_finite_weights():
    # The README's example, unpatched: the quadratic cost's curvature along
    # x is about ‖x‖² ≈ 100 for an MNIST digit, so SGD is stable only for
    # lr < 2/100; at lr = 1 each step multiplies the error by about 100.
    X_train, y_train, _, _ = load_mnist()
    net = Network(784, cost="quadratic", seed=0)
    net.add_fc_layer(10)
    losses = BatchLosses()
    with pytest.raises(TrainingDiverged, match=r"cost became (inf|nan) at epoch 1, batch \d+: .*"
                                               r"Try a smaller learning rate or clip_norm\."):
        net.fit(X_train[:2000], y_train[:2000], epochs=5, optimizer=SGD(lr=1.0), callbacks=[losses],
                verbose=0)
    assert np.isfinite(losses.losses).all() and losses.losses[0] < 10  # it started finite and small...
    assert losses.losses[-1] > 1e30                                    # ...and grew until it overflowed
    assert all(np.isfinite(p.data).all() for p in net.parameters())
