"""Why regularization matters: a large MLP on a small training set, with and without it.

The same 784-800-800-10 ReLU network (``build_mlp800`` from src/model_zoo.py,
about 1.3 million parameters) is trained on the first ``--subset`` MNIST
training images (default 2,000: far too few for that many parameters), three
ways, from the same initial weights (one ``--seed``), batch 64:

- no regularization: ``build_mlp800(dropout=0)``, ``Adam(lr=3e-4)``;
- dropout: ``build_mlp800(dropout=0.5)`` (``--dropout``), ``Adam(lr=3e-4)``;
- weight decay: ``build_mlp800(dropout=0)``, ``AdamW(lr=3e-4, weight_decay=2)``
  (``--weight-decay``; decoupled, on the weights only: each step multiplies
  them by ``1 - lr·λ`` = 0.9994 before the Adam update, so λ looks large
  beside PyTorch's default 0.01 but is a gentle pull towards zero).

After every epoch each network is evaluated, in evaluation mode (no dropout,
no L2 penalty: plain cross-entropy), on its training subset and on the 10,000
MNIST test images. Without regularization the training cost falls to about 0
while the test cost, after a few epochs, climbs: the network memorizes the
2,000 images. The regularized networks keep a lower test cost and a higher
test accuracy.

Writes runs/regularization.png, or --out (cost and accuracy per epoch; training
dashed, test solid; ``--out plots/regularization.png`` refreshes the shipped figure) and prints a table of final and best test accuracy and final
training and test cost per variant.

It takes about 2 minutes on 2 cores (about 0.5 s per epoch and variant).

Usage:
    python benchmarks/regularization_curves.py [--subset 2000] [--epochs 60] [--seed 0]
        [--batch 64] [--lr 3e-4] [--dropout 0.5] [--weight-decay 2] [--out runs/regularization.png]
"""
import argparse
import os
import sys
import time

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(REPO, "src"))

import nnscratch  # noqa: E402
from model_zoo import build_mlp800  # noqa: E402


class EvaluateEachEpoch(nnscratch.Callback):
    """Records the training-subset cost and accuracy in evaluation mode after each epoch
    (``fit``'s own ``loss`` is the mean over the epoch's batches, with dropout on and the
    L2 penalty added, so it is not comparable with the test cost)."""

    def __init__(self, X, y):
        self.X, self.y, self.loss, self.accuracy = X, y, [], []

    def on_epoch_end(self, run):
        result = run.net.evaluate(self.X, self.y)
        self.loss.append(result["loss"])
        self.accuracy.append(result["accuracy"])


def train(label, dropout, optimizer, data, epochs, batch, seed):
    """Train one variant; returns ``{"label", "train_loss", "train_acc", "test_loss", "test_acc", "seconds"}``."""
    X, y, X_test, y_test = data
    net = build_mlp800(seed=seed, dropout=dropout)
    on_train = EvaluateEachEpoch(X, y)
    start = time.perf_counter()
    history = net.fit(X, y, epochs=epochs, batch_size=batch, optimizer=optimizer,
                      validation_data=(X_test, y_test), callbacks=[on_train], verbose=0)
    seconds = time.perf_counter() - start
    print(f"{label}: {seconds:.0f} s; final training cost {on_train.loss[-1]:.4f}, test cost "
          f"{history['val_loss'][-1]:.4f}, test accuracy {history['val_accuracy'][-1]:.4f}", flush=True)
    return {"label": label, "train_loss": on_train.loss, "train_acc": on_train.accuracy,
            "test_loss": list(history["val_loss"]), "test_acc": list(history["val_accuracy"]),
            "seconds": seconds}


def plot(runs, path, title):
    """Cost (left) and accuracy (right) per epoch: training dashed, test solid, one colour per run."""
    fig = Figure(figsize=(11, 4.8))
    colors = ["tab:red", "tab:blue", "tab:green", "tab:purple"]
    for i, (key, label) in enumerate((("loss", "cost (cross-entropy)"), ("acc", "accuracy"))):
        ax = fig.add_subplot(1, 2, i + 1)
        for run, color in zip(runs, colors):
            epochs = np.arange(1, len(run["test_" + key]) + 1)
            ax.plot(epochs, run["train_" + key], "--", color=color)
            ax.plot(epochs, run["test_" + key], "-", color=color)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if key == "loss":  # from 0, so training runs to the floor; the early epochs' large costs cut off
            ax.set_ylim(0, 1.5 * max(max(run["test_loss"][len(run["test_loss"]) // 4:]) for run in runs))
        else:  # from just below the lowest test accuracy after the first few epochs
            ax.set_ylim(min(min(run["test_acc"][len(run["test_acc"]) // 4:]) for run in runs) - 0.02, 1.003)
    # One legend for both panels: a colour per variant, a line style for training / test.
    handles = [Line2D([], [], color=c, lw=2) for c in colors[:len(runs)]]
    handles += [Line2D([], [], color="k", ls="--"), Line2D([], [], color="k", ls="-")]
    fig.legend(handles, [run["label"] for run in runs] + ["training set", "test set"],
               loc="lower center", ncol=len(handles), frameon=False, bbox_to_anchor=(0.5, -0.06))
    fig.suptitle(title)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    FigureCanvasAgg(fig)  # off-screen, as nnscratch.plotting: no pyplot, no window
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def print_table(runs):
    header = ("variant", "final test acc", "best test acc (epoch)", "final train cost", "final test cost",
              "best test cost (epoch)")
    lines = []
    for r in runs:
        best = int(np.argmax(r["test_acc"]))
        lowest = int(np.argmin(r["test_loss"]))
        lines.append((r["label"], f"{r['test_acc'][-1]:.4f}", f"{r['test_acc'][best]:.4f} ({best + 1})",
                      f"{r['train_loss'][-1]:.4f}", f"{r['test_loss'][-1]:.4f}",
                      f"{r['test_loss'][lowest]:.4f} ({lowest + 1})"))
    widths = [max(len(row[i]) for row in [header] + lines) for i in range(len(header))]
    out = lambda row: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
    print("\n".join([out(header), "-" * (sum(widths) + 2 * (len(widths) - 1))] + [out(row) for row in lines]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--subset", type=int, default=2000, help="training images, the first N (default 2000)")
    p.add_argument("--epochs", type=int, default=60, help="epochs per variant (default 60)")
    p.add_argument("--seed", type=int, default=0, help="the networks' seed: weights, shuffles, masks (default 0)")
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--lr", type=float, default=3e-4, help="Adam's (and AdamW's) learning rate (default 3e-4)")
    p.add_argument("--dropout", type=float, default=0.5, help="drop probability of the dropout variant (default 0.5)")
    p.add_argument("--weight-decay", type=float, default=2.0,
                   help="AdamW weight_decay λ of the weight-decay variant (default 2)")
    p.add_argument("--out", default=os.path.join(REPO, "runs", "regularization.png"),
                   help="the PNG to write (default runs/regularization.png; the shipped one is plots/regularization.png)")
    a = p.parse_args(argv)
    if not 0 < a.subset <= 60000 or a.epochs < 1 or a.batch < 1 or not 0 < a.dropout < 1:
        p.error("--subset must be in 1..60000, --epochs and --batch >= 1, --dropout in (0, 1)")

    X, y, X_test, y_test = nnscratch.load_mnist()
    data = (X[:a.subset], y[:a.subset], X_test, y_test)
    print(f"784-800-800-10 ReLU MLP on the first {a.subset:,} MNIST training images, tested on "
          f"{len(X_test):,}; {a.epochs} epochs, batch {a.batch}, Adam lr {a.lr:g}, seed {a.seed}")
    variants = [("no regularization", 0, nnscratch.Adam(lr=a.lr)),
                (f"dropout {a.dropout:g}", a.dropout, nnscratch.Adam(lr=a.lr)),
                (f"weight decay {a.weight_decay:g} (AdamW)", 0, nnscratch.AdamW(lr=a.lr, weight_decay=a.weight_decay))]
    runs = [train(label, dropout, optimizer, data, a.epochs, a.batch, a.seed) for label, dropout, optimizer in variants]
    print()
    print_table(runs)
    title = (f"784-800-800-10 ReLU MLP trained on {a.subset:,} MNIST images, tested on {len(X_test):,} "
             f"(Adam lr {a.lr:g}, batch {a.batch}, seed {a.seed}; evaluation mode)")
    path = plot(runs, a.out, title)
    print(f"\nsaved {os.path.relpath(path, REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
