"""Data: MNIST from the shipped files, toy clusters, the seed's tuple lists.

MNIST ships in ``datasets/mnist/`` as the four gzipped IDX files with their
SHA-256 sums; every load checks the sums first, so a corrupt or truncated file
fails with its name instead of training on garbage. The IDX format is parsed
with NumPy straight from the decompressed bytes (about 0.3 s for all four
files; python-mnist, which builds Python lists, takes about 3 s and serves as
the independent check in the tests).
"""
import gzip
import hashlib
import os
import struct

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


def read_idx(path):
    """Parse one gzipped IDX file into a uint8 array.

    IDX layout: a big-endian header ``0x00 0x00 <type 0x08 = uint8> <ndim>``,
    then ``ndim`` big-endian uint32 dimensions, then the data, row-major.
    """
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise DatasetError(f"{path} is not an IDX file of unsigned bytes")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DatasetError(f"{path} holds {data.size} bytes of data, its header promises {dims}")
    return data.reshape(dims)


def load_mnist(folder=MNIST_DIR, dtype=np.float32):
    """MNIST as arrays, after checking every file's SHA-256 sum.

    Returns
    -------
    X_train : (60000, 784) ``dtype`` in [0, 1]
    y_train : (60000,) int64 class ids
    X_test : (10000, 784)
    y_test : (10000,)

    Raises ``DatasetError`` naming the file when a checksum fails.
    """
    verify_checksums(folder)
    arrays = [read_idx(os.path.join(folder, name)) for name in MNIST_FILES]
    X_train, y_train, X_test, y_test = arrays
    pixels = lambda images: images.reshape(len(images), -1).astype(dtype) / np.dtype(dtype).type(255)  # (N, 784)
    return pixels(X_train), y_train.astype(np.int64), pixels(X_test), y_test.astype(np.int64)


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


#: Where the seed-style clusters sit on the 500 x 500 canvas.
CLUSTER_CENTRES = ((125, 125), (375, 150), (250, 375), (400, 400), (100, 400), (250, 250))


def make_clusters(n_samples=3000, centers=3, cluster_std=40.0, test_fraction=0.25, seed=0):
    """Gaussian blobs on a 500 x 500 canvas, scaled by 1/500 as the seed did.

    ``centers`` is a count (the first ones of ``CLUSTER_CENTRES``) or an array
    of centre coordinates (k, 2) in canvas units.

    Returns ``X_train (N, 2), y_train (N,), X_test, y_test, centres (k, 2)``
    (features and centres in canvas units / 500, so roughly in [0, 1]).
    Uses scikit-learn's ``make_blobs``.
    """
    from sklearn.datasets import make_blobs
    if np.isscalar(centers):
        centers = np.array(CLUSTER_CENTRES[:int(centers)], dtype=float)
    X, y, centres = make_blobs(n_samples=n_samples, centers=centers, cluster_std=cluster_std,
                               random_state=seed, return_centers=True)
    X, centres = (X / 500).astype(np.float32), (centres / 500).astype(np.float32)
    n_test = int(round(n_samples * test_fraction))
    return X[n_test:], y[n_test:], X[:n_test], y[:n_test], centres


#: Names of the seed's cluster classes, indexed by class id.
CLUSTER_NAMES = ("red", "green", "blue", "orange", "purple", "brown")


def gen_clusters(n_samples=3000, centers=3, cluster_std=40.0, seed=0):
    """The seed's toy data: ``training_data, test_data, choices``.

    ``training_data`` and ``test_data`` are lists of ``(x (2,1), one_hot (k,1))``
    tuples, ``x`` being canvas coordinates / 500; ``choices[i]`` names class
    ``i`` (a colour), so ``choices[np.argmax(net.forward_pass(x))]`` reads as a
    prediction, as in the seed's example.
    """
    X_train, y_train, X_test, y_test, centres = make_clusters(n_samples, centers, cluster_std, seed=seed)
    k = centres.shape[0]
    return to_tuples(X_train, y_train, k), to_tuples(X_test, y_test, k), list(CLUSTER_NAMES[:k])


__all__ = ["load_mnist", "get_mnist", "gen_clusters", "make_clusters", "load_digit_image", "one_hot",
           "to_tuples", "verify_checksums", "DatasetError", "MNIST_DIR"]
