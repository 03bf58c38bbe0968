"""Figures for the README that no training run makes: `python readme_images/make_readme_images.py`.

- autodiff_graph.png: the computation graph of one sigmoid neuron and its
  quadratic cost, C = ½ (σ(w·x + b) - y)², as nnscratch.autodiff records it.
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))

from nnscratch import autodiff as ad  # noqa: E402


def neuron_graph(path):
    w = ad.Tensor(np.array([0.5, -0.3]), requires_grad=True, name="w")
    b = ad.Tensor(np.array(0.1), requires_grad=True, name="b")
    x = ad.Tensor(np.array([1.0, 2.0]), name="x")
    y = ad.Tensor(np.array(1.0), name="y")
    z = (w * x).sum() + b
    z.name = "z"
    a = ad.sigmoid(z)
    a.name = "a"
    cost = 0.5 * (a - y) ** 2
    cost.name = "C"
    ad.draw_graph(cost, path)
    cost.backward()
    print(f"dC/dw = {w.grad.numpy()}, dC/db = {b.grad.numpy():.4f}")
    return path


if __name__ == "__main__":
    print("saved", neuron_graph(os.path.join(HERE, "autodiff_graph.png")))
