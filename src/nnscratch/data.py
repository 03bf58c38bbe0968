"""Data: MNIST from the shipped files, toy clusters, the seed's tuple lists.

MNIST ships in ``datasets/mnist/`` as the four gzipped IDX files with their
SHA-256 sums; every load checks the sums first, so a corrupt or truncated file
fails with its name instead of training on garbage. python-mnist parses the
files (about 3 s); the parsed uint8 arrays are then cached beside them in
``.cache/`` so later loads take a fraction of a second.
"""
import hashlib
import os

import numpy as np

from .digit_image import load_digit_image

#: The repository's ``datasets/mnist`` (src/nnscratch/ -> ../../datasets/mnist).
MNIST_DIR = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "datasets", "mnist"))
MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


class DatasetError(ValueError):
    """A dataset file is missing, corrupt or truncated."""


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_checksums(folder=MNIST_DIR, names=MNIST_FILES):
    """Check each file against ``SHA256SUMS`` in ``folder``; returns the train-images digest."""
    sums_path = os.path.join(folder, "SHA256SUMS")
    if not os.path.exists(sums_path):
        raise DatasetError(f"{sums_path} is missing: cannot check the MNIST files")
    with open(sums_path) as f:
        expected = {name: digest for digest, name in (line.split() for line in f if line.strip())}
    digests = {}
    for name in names:
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            raise DatasetError(f"MNIST file {path} is missing")
        digests[name] = _sha256(path)
        if digests[name] != expected.get(name):
            raise DatasetError(f"MNIST file {path} fails its SHA-256 checksum (corrupt or truncated): "
                               f"expected {expected.get(name)}, got {digests[name]}")
    return digests[names[0]]


def _parse_with_python_mnist(folder):
    from mnist import MNIST  # python-mnist
    reader = MNIST(folder, gz=True)
    arrays = {}
    for split, loader in (("train", reader.load_training), ("test", reader.load_testing)):
        images, labels = loader()
        arrays[f"X_{split}"] = np.array(images, dtype=np.uint8)     # (N, 784)
        arrays[f"y_{split}"] = np.array(labels, dtype=np.uint8)     # (N,)
    return arrays


def _load_uint8(folder, cache):
    digest = verify_checksums(folder)
    cache_path = os.path.join(folder, ".cache", f"mnist-{digest[:16]}.npz")
    if cache and os.path.exists(cache_path):
        try:
            with np.load(cache_path) as z:
                arrays = {k: z[k] for k in ("X_train", "y_train", "X_test", "y_test")}
            if arrays["X_train"].shape == (60000, 784) and arrays["X_test"].shape == (10000, 784):
                return arrays
        except (OSError, ValueError, KeyError):
            pass  # an unreadable cache is rebuilt below
    arrays = _parse_with_python_mnist(folder)
    if cache:
        try:
            os.makedirs(os.path.dirname(cache_path), exist_ok=True)
            np.savez(cache_path, **arrays)
        except OSError:
            pass  # a read-only checkout still works, just without the cache
    return arrays


def load_mnist(folder=MNIST_DIR, cache=True, dtype=np.float32):
    """MNIST as arrays.

    Returns
    -------
    X_train : (60000, 784) ``dtype`` in [0, 1]
    y_train : (60000,) int64 class ids
    X_test : (10000, 784)
    y_test : (10000,)

    Raises ``DatasetError`` naming the file when a checksum fails.
    """
    a = _load_uint8(folder, cache)
    scale = np.asarray(1 / 255, dtype=dtype)
    return (a["X_train"].astype(dtype) * scale, a["y_train"].astype(np.int64),
            a["X_test"].astype(dtype) * scale, a["y_test"].astype(np.int64))


def one_hot(labels, classes):
    """Class ids (N,) to one-hot rows (N, classes)."""
    out = np.zeros((len(labels), classes), dtype=np.float32)
    out[np.arange(len(labels)), labels] = 1
    return out


def to_tuples(X, y, classes):
    """Arrays to the seed's list of ``(x (D,1), one_hot (classes,1))`` tuples."""
    targets = one_hot(y, classes)
    return [(x.reshape(-1, 1), t.reshape(-1, 1)) for x, t in zip(X, targets)]


def get_mnist(folder=MNIST_DIR):
    """The seed's MNIST: ``training_data, test_data`` as lists of
    ``(x (784,1) float32 in [0,1], one_hot (10,1))`` tuples."""
    X_train, y_train, X_test, y_test = load_mnist(folder)
    return to_tuples(X_train, y_train, 10), to_tuples(X_test, y_test, 10)


def make_clusters(n_samples=1000, centers=4, cluster_std=1.0, test_fraction=0.2, seed=0):
    """Gaussian blobs in 2-D for a classifier to separate (scikit-learn's ``make_blobs``).

    Returns ``X_train (N, 2), y_train (N,), X_test, y_test, centres (k, 2)``;
    features are scaled to roughly [0, 1] so a sigmoid net trains quickly.
    """
    from sklearn.datasets import make_blobs
    X, y, centres = make_blobs(n_samples=n_samples, centers=centers, cluster_std=cluster_std,
                               random_state=seed, return_centers=True)
    low, high = X.min(axis=0), X.max(axis=0)
    X = ((X - low) / (high - low)).astype(np.float32)
    centres = ((centres - low) / (high - low)).astype(np.float32)
    n_test = int(round(n_samples * test_fraction))
    return X[n_test:], y[n_test:], X[:n_test], y[:n_test], centres


def gen_clusters(n_samples=1000, centers=4, cluster_std=1.0, seed=0):
    """The seed's toy data: ``training_data, test_data, choices``.

    ``training_data`` and ``test_data`` are lists of ``(x (2,1), one_hot (k,1))``
    tuples; ``choices`` holds the cluster centres (k, 2), one per class.
    """
    X_train, y_train, X_test, y_test, centres = make_clusters(n_samples, centers, cluster_std, seed=seed)
    k = centres.shape[0]
    return to_tuples(X_train, y_train, k), to_tuples(X_test, y_test, k), centres


__all__ = ["load_mnist", "get_mnist", "gen_clusters", "make_clusters", "load_digit_image", "one_hot",
           "to_tuples", "verify_checksums", "DatasetError", "MNIST_DIR"]
