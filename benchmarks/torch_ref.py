"""Reference numbers from PyTorch (CPU) for the same models the project trains.

Needs PyTorch in its own virtual environment, never a dependency of the
library or its tests (nothing in the project imports this file):

    python3 -m venv ~/torchref && ~/torchref/bin/pip install torch numpy

Usage: ~/torchref/bin/python benchmarks/torch_ref.py MODEL [--epochs E] [--data DIR] [--batches N]
                                                     [--warmup-batches W]
MODEL: mlp50 | mlp800 | cnn | lstm (the networks of benchmarks/models.py, built the PyTorch way)
       | mlp [--hidden H] [--batch-size B] (784-H-10 ReLU, SGD lr 0.1; scaling.py's sweeps)

Prints first one line ``torch_info {json}``: the PyTorch version, its CPU
kernels (capability, MKL, oneDNN / MKL-DNN, OpenMP) and thread counts; then
per epoch ``MODEL epoch E sec_per_epoch S test_acc A threads T``: seconds
of the training loop (extrapolated from --batches when given) and the
accuracy on the test set of ``--data``. ``bench.py`` runs it and reads both.
``--warmup-batches W`` trains W batches, untimed, before the first epoch's
clock starts (default 0, as bench.py has always run it). ``mlp``'s line has
four decimals (its epochs are fractions of a second) and ends with
``hidden H batch_size B batches N`` (N the batches timed).

MODEL chargpt: ``model_zoo.build_char_gpt``'s character-level GPT (``CharGPT``
below) on random windows of the KJV text, timed step by step; ``bench_chargpt.py``
runs it:

    torch_ref.py chargpt [--embed 128] [--heads 4] [--layers 4] [--context 128] [--batch-size 32]
                         [--dropout 0] [--gelu tanh|none] [--mask causal|mask] [--warmup 5] [--steps 20]

prints ``torch_info``, then ``chargpt step_seconds [...]`` (each timed step: forward,
cross-entropy, backward, AdamW step) and ``chargpt steps N sec_per_step S loss L threads T``
(S the median step, L the last step's loss, P the number of parameters).
"""
import argparse
import gzip
import json
import os
import re
import statistics
import struct
import time

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
KJV = os.path.join(HERE, "..", "datasets", "kjv", "pentateuch.txt")


def load(data):
    """The four MNIST files of folder ``data`` as float32 images in [0, 1] (N, 28, 28) and int64 labels."""
    def arr(name):
        with gzip.open(os.path.join(data, name), "rb") as f:
            b = f.read()
        magic = struct.unpack(">I", b[:4])[0]
        nd = magic & 0xFF
        dims = struct.unpack(">" + "I" * nd, b[4:4 + 4 * nd])
        return np.frombuffer(b, np.uint8, offset=4 + 4 * nd).reshape(dims)
    xtr = arr("train-images-idx3-ubyte.gz").astype(np.float32) / 255
    ytr = arr("train-labels-idx1-ubyte.gz").astype(np.int64)
    xte = arr("t10k-images-idx3-ubyte.gz").astype(np.float32) / 255
    yte = arr("t10k-labels-idx1-ubyte.gz").astype(np.int64)
    return xtr, ytr, xte, yte


def model(name, hidden=100, batch_size=32):
    """``(network, batch size, optimizer name, learning rate)`` for the benchmark model ``name``;
    ``hidden`` and ``batch_size`` are the sizes of ``mlp`` (the others have theirs fixed)."""
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10)), \
            batch_size, "sgd", 0.1
    if name == "mlp50":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 50), nn.ReLU(), nn.Linear(50, 10)), 32, "sgd", 0.1
    if name == "mlp800":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 800), nn.ReLU(), nn.Dropout(0.2),
                             nn.Linear(800, 800), nn.ReLU(), nn.Dropout(0.2), nn.Linear(800, 10)), 128, "adam", 1e-3
    if name == "cnn":
        return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(1600, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10)), 64, "adam", 1e-3
    if name == "lstm":
        class M(nn.Module):
            def __init__(s):
                super().__init__(); s.rnn = nn.LSTM(28, 128, batch_first=True); s.fc = nn.Linear(128, 10)
            def forward(s, x):
                out, _ = s.rnn(x.reshape(-1, 28, 28)); return s.fc(out[:, -1])
        return M(), 64, "adam", 1e-3
    raise SystemExit("unknown model")


class CharGPT(nn.Module):
    """``model_zoo.build_char_gpt``'s network, parameter for parameter (torch_parity.py copies them over).

    Token ids (N, T) -> Embedding(V, E) + learned positions (T, E) -> ``layers`` x pre-norm
    ``nn.TransformerEncoderLayer`` (feed-forward 4E, GELU, causal) -> LayerNorm -> Linear(E, V):
    logits (N, T, V). ``mask``: "causal" passes the (T, T) mask *and* ``is_causal=True``, so that
    attention runs as ``scaled_dot_product_attention(is_causal=True)`` without the mask (the
    fastest on CPU, see benchmarks/README.md); "mask" passes the additive mask alone.
    """

    def __init__(self, vocab, embed=128, heads=4, layers=4, context=128, dropout=0.0, gelu="tanh",
                 mask="causal"):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        nn.init.normal_(self.embedding.weight, std=0.02)                          # as build_char_gpt (GPT-2)
        self.positional = nn.Parameter(torch.randn(context, embed) * 0.02)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(embed, heads, 4 * embed, dropout, activation=nn.GELU(approximate=gelu),
                                       batch_first=True, norm_first=True) for _ in range(layers))
        self.norm = nn.LayerNorm(embed)
        self.head = nn.Linear(embed, vocab)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(context), persistent=False)
        self.is_causal = mask == "causal"

    def forward(self, ids):
        T = ids.shape[1]
        x = self.embedding(ids) + self.positional[:T]                                # (N, T, E)
        for block in self.blocks:
            x = block(x, src_mask=self.mask[:T, :T], is_causal=self.is_causal)
        return self.head(self.norm(x))                                               # (N, T, V)


def kjv_windows(path, context, batch, steps, seed):
    """``(V, X, Y)``: the vocabulary size of the text at ``path`` (its sorted characters) and ``steps``
    batches of ``batch`` random windows of ``context + 1`` characters, X the first ``context`` ids,
    Y the next ones: int64 (steps, batch, context) each. bench_chargpt.py draws the same ones."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    index = {c: i for i, c in enumerate(sorted(set(text)))}
    ids = np.array([index[c] for c in text], dtype=np.int64)
    starts = np.random.default_rng(seed).integers(0, len(ids) - context, size=(steps, batch))
    windows = ids[starts[..., None] + np.arange(context + 1)]                  # (steps, batch, T + 1)
    return len(index), windows[..., :-1], windows[..., 1:]


def train_chargpt(a):
    """Time ``a.warmup`` untimed, then ``a.steps`` timed training steps of ``CharGPT``; print two lines."""
    V, X, Y = kjv_windows(a.text, a.context, a.batch_size, a.warmup + a.steps, a.seed)
    X, Y = torch.from_numpy(X), torch.from_numpy(Y)
    net = CharGPT(V, a.embed, a.heads, a.layers, a.context, a.dropout, a.gelu, a.mask)
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-4)
    lossf = nn.CrossEntropyLoss()
    times = []
    for i in range(a.warmup + a.steps):
        t = time.perf_counter()
        opt.zero_grad()
        loss = lossf(net(X[i]).reshape(-1, V), Y[i].reshape(-1))               # mean over N*T positions
        loss.backward()
        opt.step()
        if i >= a.warmup:
            times.append(time.perf_counter() - t)
    print("chargpt step_seconds " + json.dumps(times))
    print(f"chargpt steps {a.steps} sec_per_step {statistics.median(times):.6f} loss {loss.item():.4f} "
          f"params {sum(p.numel() for p in net.parameters())} threads {torch.get_num_threads()}", flush=True)


def torch_info():
    """PyTorch's version, CPU kernels and threads, as a dict (what makes its times differ between CPUs)."""
    config = torch.__config__.show()

    def found(pattern):
        m = re.search(pattern, config)
        return m.group(1) if m else None

    cpu = getattr(torch.backends, "cpu", None)
    return {
        "version": torch.__version__,
        "cpu_capability": cpu.get_cpu_capability() if cpu and hasattr(cpu, "get_cpu_capability") else None,
        "mkldnn_available": torch.backends.mkldnn.is_available(),
        "onednn_version": found(r"MKL-DNN (v[\d.]+)") or found(r"oneDNN (v[\d.]+)"),
        "mkl_available": torch.backends.mkl.is_available(),
        "mkl_version": found(r"Math Kernel Library Version ([\d.]+)"),
        "blas": found(r"BLAS_INFO=(\w+)"),
        "openmp_available": torch.backends.openmp.is_available(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batches", type=int, default=0)
    p.add_argument("--data", default=os.path.join(HERE, "..", "datasets", "mnist"))
    p.add_argument("--warmup-batches", type=int, default=0)
    p.add_argument("--hidden", type=int, default=100)  # mlp's width; its batch is --batch-size (below)
    chargpt = p.add_argument_group("chargpt")
    for flag, default in (("--embed", 128), ("--heads", 4), ("--layers", 4), ("--context", 128),
                          ("--batch-size", 32), ("--warmup", 5), ("--steps", 20), ("--seed", 0)):
        chargpt.add_argument(flag, type=int, default=default)
    chargpt.add_argument("--dropout", type=float, default=0.0)
    chargpt.add_argument("--gelu", default="tanh", choices=("tanh", "none"))
    chargpt.add_argument("--mask", default="causal", choices=("causal", "mask"))
    chargpt.add_argument("--text", default=KJV)
    a = p.parse_args()
    print("torch_info " + json.dumps(torch_info()), flush=True)
    torch.manual_seed(0)
    if a.model == "chargpt":
        return train_chargpt(a)
    xtr, ytr, xte, yte = load(a.data)
    net, bs, opt_name, lr = model(a.model, a.hidden, a.batch_size)
    if a.model in ("cnn",):
        xtr, xte = xtr[:, None], xte[:, None]
    xtr, ytr, xte, yte = map(torch.from_numpy, (xtr, ytr, xte, yte))
    opt = torch.optim.SGD(net.parameters(), lr) if opt_name == "sgd" else torch.optim.Adam(net.parameters(), lr)
    lossf = nn.CrossEntropyLoss()
    n = len(xtr)
    nb = n // bs

    def train_step(idx):
        opt.zero_grad()
        loss = lossf(net(xtr[idx]), ytr[idx])
        loss.backward()
        opt.step()

    if a.warmup_batches:  # untimed, on the same network: first-call costs and allocations out of the clock
        net.train()
        warm = torch.randperm(n)
        for i in range(a.warmup_batches):
            train_step(warm[i * bs:(i + 1) * bs])
    for ep in range(a.epochs):
        net.train()
        perm = torch.randperm(n)
        t = time.perf_counter()
        steps = a.batches or nb
        for i in range(steps):
            train_step(perm[i * bs:(i + 1) * bs])
        el = time.perf_counter() - t
        per_epoch = el * nb / steps
        net.eval()
        with torch.no_grad():
            acc = (net(xte).argmax(1) == yte).float().mean().item()
        if a.model == "mlp":  # sub-second epochs: two decimals would round away the differences
            print(f"mlp epoch {ep} sec_per_epoch {per_epoch:.4f} test_acc {acc:.4f} threads "
                  f"{torch.get_num_threads()} hidden {a.hidden} batch_size {bs} batches {steps}", flush=True)
            continue
        print(f"{a.model} epoch {ep} sec_per_epoch {per_epoch:.2f} test_acc {acc:.4f} threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
