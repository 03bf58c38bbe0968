"""Figures with matplotlib, drawn off-screen.

Everything here uses ``matplotlib.figure.Figure`` with the Agg canvas, never
``pyplot``: nothing opens a window, blocks, or needs a display.
"""
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _save(fig, path):
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def _label_axes(ax, xlabel, ylabel):
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()


def plot_history(history, path, title=None):
    """Cost (left) and accuracy (right) per epoch, training and validation; saved to ``path``.
    A history without accuracies (a language model's) gets the cost panel only."""
    panels = [(key, label) for key, label in (("loss", "cost"), ("accuracy", "accuracy")) if history.get(key)]
    fig = Figure(figsize=(5 * len(panels), 4))
    epochs = np.arange(1, len(history["loss"]) + 1)
    for i, (key, label) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        ax.plot(epochs, history[key], "o-", label="training (mean over the epoch)")
        if history.get("val_" + key):
            ax.plot(epochs, history["val_" + key], "s-", label="test")
        _label_axes(ax, "epoch", label)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_curves(curves, path, ylabel, title=None, x=None, xlabel="epoch"):
    """Several named series on one axis: ``{"label": [values...]}``, against the epoch
    (1, 2, ...) or against ``x`` (one value per point: seconds, steps), or per curve
    ``{"label": (x, values)}``."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot(1, 1, 1)
    for label, values in curves.items():
        xs, ys = values if isinstance(values, tuple) else (x, values)
        ax.plot(np.arange(1, len(ys) + 1) if xs is None else xs, ys, label=label,
                marker=None if xs is None else ".")
    _label_axes(ax, xlabel, ylabel)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_digit_probabilities(image, probabilities, path):
    """A 28x28 digit beside a bar chart of the network's ten class probabilities."""
    fig = Figure(figsize=(7, 3))
    ax = fig.add_subplot(1, 2, 1)
    ax.imshow(np.asarray(image).reshape(28, 28), cmap="gray_r")
    ax.set_axis_off()
    ax = fig.add_subplot(1, 2, 2)
    ax.bar(range(len(probabilities)), probabilities)
    ax.set_xticks(range(len(probabilities)))
    ax.set_ylim(0, 1)
    ax.set_xlabel("digit")
    ax.set_ylabel("probability")
    return _save(fig, path)


def plot_clusters(net, data, names, path):
    """Decision regions of a 2-input classifier with the labelled points on top.

    ``data`` is the seed's list of ``(x (2,1), one_hot (k,1))`` tuples;
    ``names[i]`` is a matplotlib colour for class ``i``.
    """
    X = np.stack([np.ravel(x) for x, _ in data])
    y = np.array([int(np.argmax(t)) for _, t in data])
    low, high = X.min(axis=0) - 0.05, X.max(axis=0) + 0.05
    gx, gy = np.meshgrid(np.linspace(low[0], high[0], 200), np.linspace(low[1], high[1], 200))
    regions = net.predict(np.column_stack([gx.ravel(), gy.ravel()])).reshape(gx.shape)
    from matplotlib.colors import ListedColormap
    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot(1, 1, 1)
    cmap = ListedColormap(list(names))
    ax.contourf(gx * 500, gy * 500, regions, levels=np.arange(len(names) + 1) - 0.5, cmap=cmap, alpha=0.25)
    ax.scatter(X[:, 0] * 500, X[:, 1] * 500, c=y, cmap=cmap, vmin=-0.5, vmax=len(names) - 0.5,
               edgecolors="k", linewidths=0.3, s=18)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("test points and the network's decision regions")
    return _save(fig, path)


def _image_grid(fig, images, columns, titles=None, cmap="gray"):
    """Draw 2-D ``images`` in a grid of ``columns``, each scaled to its own range."""
    rows = int(np.ceil(len(images) / columns))
    for k, image in enumerate(images):
        ax = fig.add_subplot(rows, columns, k + 1)
        ax.imshow(image, cmap=cmap, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(titles[k], fontsize=7)


def plot_filters(layer, path, title="first-layer filters"):
    """Every filter of a Conv2D layer (channels averaged), one small image each."""
    kernels = layer.W.data.mean(axis=1)                      # (F, kh, kw)
    columns = min(8, len(kernels))
    fig = Figure(figsize=(columns * 1.1, np.ceil(len(kernels) / columns) * 1.2))
    _image_grid(fig, kernels, columns, titles=[str(f) for f in range(len(kernels))], cmap="RdBu_r")
    fig.suptitle(title)
    return _save(fig, path)


def plot_feature_maps(net, image, path, layers=None):
    """The input image and the channels each chosen layer makes of it.

    ``image`` is one sample (C, H, W); ``layers`` the names of layers whose
    outputs to draw (default: every Conv2D and pooling layer), up to 16
    channels each.
    """
    from .layers import AvgPool2D, Conv2D, MaxPool2D
    x = np.asarray(image, dtype=net.dtype)[None]
    outputs = []
    for layer in net.layers:
        x = layer.forward(x)
        wanted = isinstance(layer, (Conv2D, MaxPool2D, AvgPool2D)) if layers is None else layer.name in layers
        if wanted and x.ndim == 4:
            outputs.append((layer.name, x[0, :16]))
    columns = 16
    fig = Figure(figsize=(columns * 0.9, (len(outputs) + 1) * 1.1))
    ax = fig.add_subplot(len(outputs) + 1, columns, 1)
    ax.imshow(np.asarray(image)[0], cmap="gray_r")
    ax.set_title("input", fontsize=7)
    ax.set_axis_off()
    for row, (name, maps) in enumerate(outputs, start=1):
        for k, feature_map in enumerate(maps):
            ax = fig.add_subplot(len(outputs) + 1, columns, row * columns + k + 1)
            ax.imshow(feature_map, cmap="viridis", interpolation="nearest")
            ax.set_axis_off()
            if k == 0:
                ax.set_title(name, fontsize=7, loc="left")
    return _save(fig, path)


def plot_attention_maps(weights, labels, path, title=None):
    """Attention weights as a grid of heat maps: one row per layer, one column per head.

    ``weights`` (L, H, T, T): entry [l, h, i, j] is how much position i takes
    from position j in head h of layer l; ``labels`` the T tokens (characters),
    shown along both axes (queries down, keys across).
    """
    weights = np.asarray(weights)
    L, H, T, _ = weights.shape
    fig = Figure(figsize=(3.2 * H, 3.2 * L))
    shown = ["␣" if c == " " else "⏎" if c == "\n" else c for c in labels]
    for l in range(L):
        for h in range(H):
            ax = fig.add_subplot(L, H, l * H + h + 1)
            ax.imshow(weights[l, h], cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks(range(T))
            ax.set_yticks(range(T))
            ax.set_xticklabels(shown, fontsize=5, fontfamily="monospace")
            ax.set_yticklabels(shown, fontsize=5, fontfamily="monospace")
            ax.tick_params(length=0, pad=1)
            ax.set_title(f"block {l + 1}, head {h + 1}", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_augmentations(images, transform, rng, path, versions=6, title=None):
    """Each of ``images`` (n, 28, 28) in its first column, then ``versions`` draws of
    ``transform`` (an ``nnscratch.augment`` transform) on it: one row per image."""
    images = np.asarray(images, dtype=np.float32)
    rows = [images] + [transform(images, rng) for _ in range(versions)]      # each (n, H, W)
    grid = [rows[v][k] for k in range(len(images)) for v in range(versions + 1)]
    titles = [("original" if v == 0 else f"draw {v}") if k == 0 else ""
              for k in range(len(images)) for v in range(versions + 1)]
    fig = Figure(figsize=((versions + 1) * 1.0, len(images) * 1.05))
    _image_grid(fig, grid, versions + 1, titles=titles)
    fig.suptitle(title or "augmented training digits")
    return _save(fig, path)
