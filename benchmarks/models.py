"""What each benchmark name trains: the nnscratch network, its PyTorch twin, and the seed's loop.

Every model is trained on the 60,000 MNIST training images with
cross-entropy on a softmax output. ``torch_ref.py`` builds the same network
under the same name (``torch_name``); the GRU and RNN rows (``--also``) have
no PyTorch twin.

- ``mlp50``: 784-50-10 ReLU MLP; batch 32; SGD lr 0.1.
  Target: <= 0.35 s per epoch and <= 0.4x PyTorch.
- ``mlp800``: ``build_mlp800()`` (784-800-800-10, dropout 0.2); batch 128;
  Adam lr 1e-3. Target: <= 1.0x PyTorch.
- ``cnn``: ``build_cnn()`` on (N, 1, 28, 28); batch 64; Adam lr 1e-3. Target:
  <= 1.0x PyTorch. Variant ``"naive"``: ``build_cnn(impl="naive")``.
- ``lstm``: ``build_sequence_classifier("lstm", 128)`` on (N, 28, 28); batch
  64; Adam lr 1e-3. Target: <= 1.0x PyTorch. Variants ``"gru"``, ``"rnn"``.
- the seed baseline (``seed_baseline``, mlp50 only): the original code's
  per-sample loop on (784, 1) columns, reimplemented here as it was.
"""
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import benchmarks  # noqa: F401  (puts src/ on sys.path)
import nnscratch
from model_zoo import build_cnn, build_mlp800, build_sequence_classifier

N_TRAIN = 60000


@dataclass(frozen=True)
class Model:
    """One benchmarked model.

    Attributes
    ----------
    name : str
        The ``--model`` name, also ``torch_ref.py``'s.
    description : str
        One line for the header.
    build : function (seed, variant) -> Network
        A fresh network; ``variant`` is None for the model itself, else the
        CNN's ``impl`` ("naive") or the recurrent kind ("gru", "rnn").
    input_shape : tuple
        The per-sample shape the MNIST images are reshaped to.
    batch : int
    optimizer : function () -> Optimizer
        A fresh optimizer for each training.
    reps : int
        Default repetitions.
    target_ratio : float
        The most its seconds per epoch may be, over PyTorch's.
    target_seconds : float or None
        An absolute target in seconds per epoch, where there is one.
    torch_name : str or None
        The model ``torch_ref.py`` builds for it.
    """

    name: str
    description: str
    build: Callable
    input_shape: tuple[int, ...]
    batch: int
    optimizer: Callable
    reps: int
    target_ratio: float
    target_seconds: float | None = None
    torch_name: str | None = None


def build_mlp50(seed):
    """FC 50, ReLU, FC 10, softmax on (N, 784): the seed's network, on the library's API."""
    net = nnscratch.Network(784, cost="cross_entropy", seed=seed)
    net.add_fc_layer(50)
    net.add_relu_layer()
    net.add_fc_layer(10)
    net.add_softmax_layer()
    return net


MODELS = {
    "mlp50": Model("mlp50", "784-50-10 ReLU MLP, batch 32, SGD lr 0.1",
                   lambda seed, variant=None: build_mlp50(seed), (784,), 32,
                   lambda: nnscratch.SGD(lr=0.1), reps=5, target_ratio=0.4, target_seconds=0.35,
                   torch_name="mlp50"),
    "mlp800": Model("mlp800", "784-800-800-10 ReLU MLP, dropout 0.2, batch 128, Adam lr 1e-3",
                    lambda seed, variant=None: build_mlp800(seed=seed), (784,), 128,
                    lambda: nnscratch.Adam(lr=1e-3), reps=3, target_ratio=1.0, torch_name="mlp800"),
    "cnn": Model("cnn", "conv 32 3x3, max-pool 2, conv 64 3x3, max-pool 2, FC 128, dropout 0.5, FC 10 "
                        "(ReLUs), batch 64, Adam lr 1e-3",
                 lambda seed, variant=None: build_cnn(seed=seed, impl=variant or "fast"), (1, 28, 28), 64,
                 lambda: nnscratch.Adam(lr=1e-3), reps=3, target_ratio=1.0, torch_name="cnn"),
    "lstm": Model("lstm", "LSTM 128 over the 28 rows of 28 pixels, last state, FC 10, batch 64, Adam lr 1e-3",
                  lambda seed, variant=None: build_sequence_classifier(variant or "lstm", 128, seed=seed),
                  (28, 28), 64, lambda: nnscratch.Adam(lr=1e-3), reps=3, target_ratio=1.0,
                  torch_name="lstm"),
}
ALSO_KINDS = ("gru", "rnn")  # ``--also`` rows beside the LSTM: nnscratch only, torch_ref.py has no twin


# -- the seed's per-sample loop (mlp50 only) ------------------------------------------
class SeedFC:
    """The seed's dense layer on one column: ``z = W x + b``, gradients summed over the batch."""

    def __init__(self, n_in, n_out, rng, dtype):
        self.W = (rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / n_in)).astype(dtype)
        self.b = np.zeros((n_out, 1), dtype=dtype)
        self.nabla_W = np.zeros_like(self.W)
        self.nabla_b = np.zeros_like(self.b)

    def forward(self, x):
        self.x = x
        return np.dot(self.W, x) + self.b                   # (n_out, 1)

    def backward(self, delta):
        self.nabla_W += np.dot(delta, self.x.T)             # (n_out, n_in)
        self.nabla_b += delta
        return np.dot(self.W.T, delta)                      # (n_in, 1)

    def update(self, eta, m):
        self.W -= (eta / m) * self.nabla_W
        self.b -= (eta / m) * self.nabla_b
        self.nabla_W[...] = 0
        self.nabla_b[...] = 0


class SeedReLU:
    """The seed's ReLU on one column."""

    def forward(self, z):
        self.z = z
        return np.maximum(0, z)

    def backward(self, delta):
        return delta * (self.z > 0)


class SeedSoftmax:
    """The seed's softmax on one column (its backward is fused with the cost's: ``delta = a - y``)."""

    def forward(self, z):
        e = np.exp(z - np.max(z))
        return e / np.sum(e)


def seed_baseline(X, y, n_samples, rng, dtype):
    """Train the seed-style mlp50 (SGD lr 0.1, batch 32) on ``n_samples`` random images.

    Per mini-batch: each sample, a (784, 1) column with a one-hot (10, 1)
    target as the seed's tuples, is forwarded alone; ``delta = a - y`` (the
    seed's cross_entropy_cost_prime_SM, fused with the softmax) is
    backpropagated alone and its gradients added to the layer's sums; then
    ``W -= eta/m * nabla_W``.

    Parameters
    ----------
    X : array (60000, 784)
    y : int array (60000,)
    n_samples : int
    rng : np.random.Generator
    dtype : np.dtype

    Returns
    -------
    (seconds extrapolated to 60,000 samples, seconds measured)
    """
    layers = [SeedFC(784, 50, rng, dtype), SeedReLU(), SeedFC(50, 10, rng, dtype), SeedSoftmax()]
    order = rng.permutation(len(X))[:n_samples]   # the seed shuffled its list each epoch
    data = [(x.reshape(-1, 1), t.reshape(-1, 1))  # the seed's tuples, made before the clock starts
            for x, t in zip(X[order].astype(dtype), nnscratch.data.one_hot(y[order], 10).astype(dtype))]
    batch, lr = MODELS["mlp50"].batch, 0.1
    start = time.perf_counter()
    for k in range(0, len(data), batch):
        mini_batch = data[k:k + batch]
        for x, target in mini_batch:
            a = x
            for layer in layers:
                a = layer.forward(a)
            delta = a - target                  # ∂C/∂z at the softmax input
            for layer in reversed(layers[:-1]):
                delta = layer.backward(delta)
        for layer in (layers[0], layers[2]):     # the two FC layers
            layer.update(lr, len(mini_batch))
    elapsed = time.perf_counter() - start
    return elapsed * N_TRAIN / len(data), elapsed
