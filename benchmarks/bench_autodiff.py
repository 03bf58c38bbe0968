"""The same MLP trained through the layer path and through the autodiff path.

Layer path: FC 128 (``--hidden``), ReLU, FC 10, softmax, every backward
written by hand. Autodiff path: one ``AutodiffLayer`` computing
``relu(x W1ᵀ + b1) W2ᵀ + b2`` in Tensor ops (its backward derived by autodiff), then the same softmax. Both
start from the same weights and the same generator state, so they see the
same shuffles; the cost (cross-entropy fused with the softmax) is the same.

The paths are trained one epoch at a time in turn (the machines are shared
and noisy, so each sees the same load). Prints, per path, the test accuracy
after each epoch and the median seconds per epoch, then the two checks: accuracy within 0.2 points, autodiff epoch at
most 1.5 times the layer path's. Also times a residual MLP whose residual
block is an AutodiffLayer.

    python benchmarks/bench_autodiff.py [--epochs 3] [--batch 64] [--hidden 128]
    python benchmarks/bench_autodiff.py --hidden 800,800 --batch 128   # the project's large MLP

The autodiff path's extra cost is a fixed few microseconds per operation
(recording, the backward's ordering, Tensor wrappers), so it weighs most on
small layers and small batches.
"""
import argparse
import os
import statistics
import sys

import numpy as np

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(REPO, "src"))

from nnscratch import Adam, AutodiffLayer, Network, load_mnist  # noqa: E402
from nnscratch import autodiff as ad  # noqa: E402


def mlp(x, *params):
    """ReLU MLP in Tensor ops: params are W1, b1, W2, b2, ... (no ReLU after the last)."""
    pairs = list(zip(params[::2], params[1::2]))
    for W, b in pairs[:-1]:
        x = ad.relu(x @ W.T + b)
    W, b = pairs[-1]
    return x @ W.T + b


def residual(x, W, b):
    return x + ad.relu(x @ W.T + b)


def layer_net(seed, hidden=(128,)):
    net = Network(784, seed=seed)
    for units in hidden:
        net.add_fc_layer(units)
        net.add_relu_layer()
    net.add_fc_layer(10)
    net.add_softmax_layer()
    return net


def autodiff_twin(net):
    """The same function as ``layer_net`` with its weights, as one AutodiffLayer."""
    dense = [layer for layer in net.layers if layer.kind == "fc"]
    params = {}
    for k, layer in enumerate(dense, start=1):
        params[f"W{k}"], params[f"b{k}"] = layer.W.data, layer.b.data
    twin = Network(784, seed=net.seed)
    twin.add(AutodiffLayer(mlp, params, name="mlp"))
    twin.add_softmax_layer()
    twin.rng.bit_generator.state = net.rng.bit_generator.state   # same shuffles from here on
    return twin


def residual_net(seed):
    net = Network(784, seed=seed)
    net.add_fc_layer(128)
    net.add_relu_layer()
    net.add(AutodiffLayer(residual, lambda s, rng, dt: {"W": 0.05 * rng.standard_normal((s[-1], s[-1])),
                                                        "b": np.zeros(s[-1])}, name="residual"))
    net.add_fc_layer(10)
    net.add_softmax_layer()
    return net


def run_interleaved(nets, data, epochs, batch):
    """Train each net one epoch at a time, in turn, so all see the same machine load.

    Returns ``{name: (test accuracy per epoch, seconds per epoch)}``.
    """
    X, y, X_test, y_test = data
    optimizers = {name: Adam(lr=1e-3) for name in nets}
    results = {name: ([], []) for name in nets}
    for _ in range(epochs):
        for name, net in nets.items():
            h = net.fit(X, y, epochs=1, batch_size=batch, optimizer=optimizers[name],
                        validation_data=(X_test, y_test), verbose=0)
            results[name][0].append(h["val_accuracy"][0])
            results[name][1].append(h["time"][0])
    return results


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hidden", default="128", help="hidden layer sizes, comma-separated (default 128)")
    a = p.parse_args()
    hidden = tuple(int(h) for h in a.hidden.split(","))
    data = load_mnist()
    layers = layer_net(a.seed, hidden)
    twin = autodiff_twin(layers)             # built before training: same initial weights
    results = run_interleaved({"layer path": layers, "autodiff path": twin,
                               "residual MLP (autodiff block)": residual_net(a.seed)}, data, a.epochs, a.batch)
    print(f"MLP 784-{'-'.join(map(str, hidden))}-10 ReLU, Adam 1e-3, batch {a.batch}, {a.epochs} epochs, "
          f"seed {a.seed}")
    print(f"{'path':<32}{'test accuracy per epoch':<34}{'median s/epoch':>15}")
    for name, (acc, times) in results.items():
        print(f"{name:<32}{' '.join(f'{x:.4f}' for x in acc):<34}{statistics.median(times):>15.2f}")
    (acc_l, t_l), (acc_a, t_a) = results["layer path"], results["autodiff path"]
    gap = abs(acc_l[-1] - acc_a[-1]) * 100
    ratio = statistics.median(t_a) / statistics.median(t_l)
    print(f"accuracy gap {gap:.2f} points (target <= 0.2): {'PASS' if gap <= 0.2 else 'FAIL'}; "
          f"autodiff/layer epoch time {ratio:.2f} (target <= 1.5): {'PASS' if ratio <= 1.5 else 'FAIL'}")


if __name__ == "__main__":
    main()
