"""fit(..., validation_split=f): the last fraction of the data, as given, is the validation set."""
import numpy as np
import pytest

from nnscratch import SGD, EarlyStopping, Network


def small_net(seed=0):
    net = Network(6, seed=seed, dtype=np.float64)
    net.add_fc_layer(5)
    net.add_relu_layer()
    net.add_fc_layer(3)
    net.add_softmax_layer()
    return net


def data(n=50, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 6))
    return X, (X[:, 0] > 0).astype(int) + (X[:, 1] > 1)


def test_validation_split_holds_out_the_last_fraction_as_given():
    """The same run as training on the first 40 and validating on the last 10 by hand
    (Keras's rule: the first int(50 x 0.8) = 40 train)."""
    X, y = data()
    split = small_net().fit(X, y, epochs=3, batch_size=8, optimizer=SGD(lr=0.1), verbose=0,
                            validation_split=0.2)
    by_hand = small_net().fit(X[:40], y[:40], epochs=3, batch_size=8, optimizer=SGD(lr=0.1), verbose=0,
                              validation_data=(X[40:], y[40:]))
    assert len(split["val_loss"]) == 3
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert split[key] == by_hand[key], key
    other = small_net().fit(X[10:], y[10:], epochs=3, batch_size=8, optimizer=SGD(lr=0.1), verbose=0,
                            validation_data=(X[:10], y[:10]))
    assert other["val_loss"] != split["val_loss"]      # the first tenth would give another run


def test_validation_split_is_never_trained_on():
    """Changing the held-out samples changes the validation scores but not the training."""
    X, y = data()
    X2 = X.copy()
    X2[45:] += 5.0
    a = small_net().fit(X, y, epochs=2, batch_size=8, verbose=0, validation_split=0.2)
    b = small_net().fit(X2, y, epochs=2, batch_size=8, verbose=0, validation_split=0.2)
    assert a["loss"] == b["loss"] and a["val_loss"] != b["val_loss"]


def test_early_stopping_monitors_the_split_off_validation_loss():
    X, y = data()
    history = small_net().fit(X, y, epochs=4, batch_size=8, verbose=0, validation_split=0.3,
                              callbacks=[EarlyStopping(monitor="val_loss", patience=10)])
    assert len(history["val_loss"]) == 4


@pytest.mark.parametrize("fraction, match", [
    (0.0, "between 0 and 1"), (1.0, "between 0 and 1"), (-0.1, "between 0 and 1"), ("0.1", "between 0 and 1"),
    (True, "between 0 and 1"), (0.999, "leaves 0 to train on and 50"), (1e-17, "leaves 50 to train on and 0"),
])
def test_bad_validation_splits_are_refused_before_training(fraction, match):
    X, y = data()
    with pytest.raises(ValueError, match=match):
        small_net().fit(X, y, epochs=1, verbose=0, validation_split=fraction)


def test_a_split_of_one_sample_is_fine():
    X, y = data()
    history = small_net().fit(X, y, epochs=1, verbose=0, validation_split=0.01)   # int(49.5) = 49 train
    assert len(history["val_loss"]) == 1


def test_validation_split_and_validation_data_together_are_refused():
    X, y = data()
    with pytest.raises(ValueError, match="not both"):
        small_net().fit(X, y, verbose=0, validation_split=0.1, validation_data=(X, y))
