"""MNIST loading (checked against python-mnist), checksums, the seed's data helpers."""
import os
import shutil
import time

import numpy as np
import pytest

from nnscratch import gen_clusters, get_mnist, load_mnist
from nnscratch.data import MNIST_DIR, MNIST_FILES, DatasetError, make_clusters


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


def test_mnist_shapes_dtypes_and_ranges(mnist):
    X_train, y_train, X_test, y_test = mnist
    assert X_train.shape == (60000, 784) and X_test.shape == (10000, 784)
    assert X_train.dtype == np.float32 and y_train.dtype == np.int64
    assert X_train.min() == 0.0 and X_train.max() == 1.0
    # MNIST's published class counts for the test set (digit 0 has 980 images, digit 1 has 1135)
    counts = np.bincount(y_test, minlength=10)
    assert counts[0] == 980 and counts[1] == 1135 and counts.sum() == 10000


def test_numpy_parser_agrees_with_python_mnist(mnist):
    from mnist import MNIST  # the independent parser
    images, labels = MNIST(MNIST_DIR, gz=True).load_testing()
    np.testing.assert_array_equal(np.array(labels), mnist[3])
    np.testing.assert_array_equal(np.array(images, dtype=np.uint8), np.rint(mnist[2] * 255).astype(np.uint8))


def test_loading_takes_under_three_seconds():
    start = time.perf_counter()
    load_mnist()
    assert time.perf_counter() - start < 3.0


def _copy_mnist(tmp_path):
    for name in MNIST_FILES + ("SHA256SUMS",):
        shutil.copy(os.path.join(MNIST_DIR, name), tmp_path / name)
    return tmp_path


def test_truncated_file_fails_its_checksum_with_its_name(tmp_path):
    folder = _copy_mnist(tmp_path)
    path = folder / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.gz.*checksum"):
        load_mnist(str(folder))


def test_corrupted_byte_fails_its_checksum_with_its_name(tmp_path):
    folder = _copy_mnist(tmp_path)
    path = folder / "train-images-idx3-ubyte.gz"
    data = bytearray(path.read_bytes())
    data[5000] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte.gz"):
        load_mnist(str(folder))


def test_missing_file_is_named(tmp_path):
    folder = _copy_mnist(tmp_path)
    os.remove(folder / "train-labels-idx1-ubyte.gz")
    with pytest.raises(DatasetError, match="train-labels-idx1-ubyte.gz.*missing"):
        load_mnist(str(folder))


def test_get_mnist_gives_the_seeds_tuples(mnist):
    training_data, test_data = get_mnist()
    assert len(training_data) == 60000 and len(test_data) == 10000
    x, t = test_data[0]
    assert x.shape == (784, 1) and t.shape == (10, 1)
    assert t.sum() == 1 and int(np.argmax(t)) == mnist[3][0]
    np.testing.assert_array_equal(x.ravel(), mnist[2][0])


def test_gen_clusters_gives_tuples_and_choices():
    training_data, test_data, choices = gen_clusters()
    assert len(choices) == 3 and len(training_data) + len(test_data) == 3000
    x, t = training_data[0]
    assert x.shape == (2, 1) and t.shape == (3, 1) and t.sum() == 1
    X = np.stack([x.ravel() for x, _ in training_data])
    assert 0 < X.mean() < 1  # canvas coordinates / 500


def test_clusters_are_centred_where_promised():
    X_train, y_train, _, _, centres = make_clusters(seed=1)
    for k in range(3):
        assert np.linalg.norm(X_train[y_train == k].mean(axis=0) - centres[k]) < 0.02
