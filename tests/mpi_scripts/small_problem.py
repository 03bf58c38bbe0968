"""The problem tests/test_distributed.py trains in one process and under mpiexec: 136 samples in
batches of 15 (odd: shards of 8 and 7 over 2 ranks; the last batch of 1 leaves rank 1 an empty shard)."""
import numpy as np

from nnscratch import Network


def make_data(n=136, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n + 40, 8))
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int) + (X[:, 3] > 1)
    return X[:n], y[:n], X[n:], y[n:]


def make_net(dropout=False, batchnorm=False, seed=3):
    net = Network(8, cost="cross_entropy", seed=seed, dtype=np.float64)
    net.add_fc_layer(16)
    if batchnorm:
        net.add_batchnorm_layer()
    net.add_relu_layer()
    if dropout:
        net.add_dropout_layer(0.3)
    net.add_fc_layer(3)
    net.add_softmax_layer()
    return net
