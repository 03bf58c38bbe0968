"""Every shipped network moves into PyTorch through ``net.to_torch_state_dict()``, and back.

Run under the Python of PyTorch's own virtual environment (PyTorch is never
a dependency of the project; nnscratch is imported from this checkout's
``src/``, and NumPy is all it needs):

    /tmp/torchvenv/bin/python benchmarks/torch_transfer.py [--networks mlp50 cnn ...] [--verbose] [--fastpath]
    /tmp/torchvenv/bin/python benchmarks/torch_transfer.py --readme    # the README's PyTorch blocks

For each network in ``pre-trained/*.pickle`` (all of them by default):

1. **the model**: ``torch_model(net)`` builds the equivalent ``nn.Sequential``
   by walking ``net.layers``, one module per layer, in order (activations,
   dropout and flatten included: they take their index, as the key table of
   ``nnscratch/torch_names.py`` says). Nothing is taken from the model zoo:
   every size comes from the nnscratch layer itself.
2. **strict loading**: ``model.load_state_dict({k: torch.from_numpy(v) ...},
   strict=True)``; a missing, unexpected or misshapen key is a FAIL.
3. **the forward pass**: ``model.eval()`` and ``model(X)`` against
   ``net.forward(X)`` (training=False, after ``net.reset_state()``) on a fixed
   batch: the first 64 MNIST test digits for the MNIST networks, 64 uniform
   points in [0, 1]² for clusters (the canvas / 500 the seed drew on), 8
   sequences of 128 uniform random token ids (int64) for the char models.
   PASS when ``max |diff| <= 1e-5 x max(1, max |PyTorch|)``: float32 rounding,
   summed differently by two libraries (the networks are float32).
4. **the round trip**: ``Network.from_torch_state_dict(model.state_dict(), net)``
   must hold the very same weights, bit for bit (dtype, shape and bytes of
   every array of ``state_dict()``).

PyTorch's ``TransformerEncoderLayer`` has a fused inference fast path (taken
in eval mode under ``torch.no_grad()``) that computes the exact GELU whatever
``activation=nn.GELU(approximate="tanh")`` says; the shipped char-GPT uses the
tanh form, so the fast path is switched off here
(``torch.backends.mha.set_fastpath_enabled(False)``) and the module computes
what its ``activation`` says. ``--fastpath`` leaves it on, to see the gap.

Exits 1 if any check fails.
"""
import argparse
import glob
import os
import re
import sys
import time

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, os.path.join(ROOT, "src"))

import nnscratch  # noqa: E402
from nnscratch import layers as L  # noqa: E402
from nnscratch.torch_names import is_transformer_block  # noqa: E402

PRE_TRAINED = os.path.join(ROOT, "pre-trained")
TOLERANCE = 1e-5
BATCH, SEQUENCES, SEQUENCE_LENGTH = 64, 8, 128


# --- PyTorch modules for the nnscratch layers that nn.Sequential cannot hold as they are -----------

class PositionalEmbedding(nn.Module):
    """``y[n, t] = x[n, t] + weight[t]``, weight (max_len, E): nnscratch's PositionalEmbedding."""

    def __init__(self, max_len, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(max_len, dim))

    def forward(self, x):                                     # x (N, T, E)
        return x + self.weight[:x.shape[1]]


def _last_or_all(output, return_sequences):
    """The recurrent module's output (N, T, H): all steps, or the last one (N, H)."""
    return output if return_sequences else output[:, -1]


class LSTM(nn.LSTM):
    """``nn.LSTM(batch_first=True)`` returning the hidden states only, from a zero state.
    A subclass, not a holder, so that the keys stay ``<index>.weight_ih_l0``."""

    def __init__(self, input_size, hidden, return_sequences):
        super().__init__(input_size, hidden, batch_first=True)
        self.return_sequences = return_sequences

    def forward(self, x):                                     # x (N, T, D)
        return _last_or_all(super().forward(x)[0], self.return_sequences)


class GRU(nn.GRU):
    """``nn.GRU(batch_first=True)``, as ``LSTM`` above."""

    def __init__(self, input_size, hidden, return_sequences):
        super().__init__(input_size, hidden, batch_first=True)
        self.return_sequences = return_sequences

    def forward(self, x):
        return _last_or_all(super().forward(x)[0], self.return_sequences)


class RNN(nn.RNN):
    """``nn.RNN(batch_first=True, nonlinearity=...)``, as ``LSTM`` above."""

    def __init__(self, input_size, hidden, activation, return_sequences):
        super().__init__(input_size, hidden, nonlinearity=activation, batch_first=True)
        self.return_sequences = return_sequences

    def forward(self, x):
        return _last_or_all(super().forward(x)[0], self.return_sequences)


class SelfAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention(batch_first=True)`` as self-attention on one input, causal or not."""

    def __init__(self, dim, heads, causal):
        super().__init__(dim, heads, batch_first=True)
        self.causal = causal

    def forward(self, x):                                     # x (N, T, E)
        T = x.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(T, dtype=x.dtype) if self.causal else None
        return super().forward(x, x, x, attn_mask=mask, is_causal=self.causal, need_weights=False)[0]


class EncoderLayer(nn.TransformerEncoderLayer):
    """``nn.TransformerEncoderLayer(norm_first=True, batch_first=True)`` run with its causal mask."""

    def __init__(self, dim, heads, ff_dim, approximate, eps, causal):
        super().__init__(dim, heads, ff_dim, dropout=0.0, activation=nn.GELU(approximate=approximate),
                         layer_norm_eps=eps, batch_first=True, norm_first=True)
        self.causal = causal

    def forward(self, x):                                     # x (N, T, E)
        T = x.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(T, dtype=x.dtype) if self.causal else None
        return super().forward(x, src_mask=mask, is_causal=self.causal)


class Residual(nn.Sequential):
    """``y = x + f(x)``, f the children in sequence: nnscratch's Residual."""

    def forward(self, x):
        return x + super().forward(x)


# --- the walk over the network ----------------------------------------------------------------

def encoder_layer(block):
    """The ``EncoderLayer`` for a block that ``torch_names.is_transformer_block`` recognises."""
    leaves = [leaf for leaf in block.leaves() if not isinstance(leaf, L.Dropout)]
    norm1, attention, norm2, fc1, gelu, _ = leaves
    if norm1.eps != norm2.eps:
        raise ValueError(f"{block.name} (transformer block): its two LayerNorms have eps {norm1.eps} and "
                         f"{norm2.eps}; nn.TransformerEncoderLayer has one layer_norm_eps")
    return EncoderLayer(block.input_shape[-1], attention.num_heads, fc1.units, gelu.approximate, norm1.eps,
                        attention.causal)


def conv2d(layer):
    """``nn.Conv2d`` for a Conv2D; its ``pads`` are ((top, bottom), (left, right))."""
    (top, bottom), (left, right) = layer.pads
    if top != bottom or left != right:
        raise ValueError(f"{layer.name} (Conv2D) pads (top, bottom) = {(top, bottom)}, (left, right) = "
                         f"{(left, right)}: nn.Conv2d pads both sides alike, and an nn.ZeroPad2d before it "
                         f"would shift the indices of every later module's keys")
    return nn.Conv2d(layer.input_shape[0], layer.filters, layer.kernel, layer.stride, padding=(top, left))


def torch_module(layer):
    """The ``torch.nn`` module that computes what the nnscratch ``layer`` computes (in evaluation)."""
    shape = layer.input_shape                                  # per sample, without N
    if isinstance(layer, L.Sequential) and is_transformer_block(layer):
        return encoder_layer(layer)
    if isinstance(layer, L.Residual):
        return Residual(*[torch_module(child) for child in layer.layers])
    if isinstance(layer, L.Sequential):
        return nn.Sequential(*[torch_module(child) for child in layer.layers])
    simple = {L.ReLU: nn.ReLU, L.Sigmoid: nn.Sigmoid, L.Tanh: nn.Tanh, L.Flatten: nn.Flatten}
    if type(layer) in simple:
        return simple[type(layer)]()
    if isinstance(layer, L.FullyConnected):
        return nn.Linear(shape[-1], layer.units)
    if isinstance(layer, L.Conv2D):
        return conv2d(layer)
    if isinstance(layer, L.LeakyReLU):
        return nn.LeakyReLU(layer.negative_slope)
    if isinstance(layer, L.GELU):
        return nn.GELU(approximate=layer.approximate)
    if isinstance(layer, L.Softmax):
        return nn.Softmax(dim=-1)
    if isinstance(layer, L.Dropout):
        return nn.Dropout(layer.p)
    if isinstance(layer, L.MaxPool2D):
        return nn.MaxPool2d(layer.size, layer.stride)
    if isinstance(layer, L.AvgPool2D):
        return nn.AvgPool2d(layer.size, layer.stride)
    if isinstance(layer, L.BatchNorm):
        norm = nn.BatchNorm1d if len(shape) == 1 else nn.BatchNorm2d
        return norm(shape[0], eps=layer.eps, momentum=layer.momentum)
    if isinstance(layer, L.LayerNorm):
        return nn.LayerNorm(shape[-1], eps=layer.eps)
    if isinstance(layer, L.Embedding):
        return nn.Embedding(layer.vocab_size, layer.dim)
    if isinstance(layer, L.PositionalEmbedding):
        return PositionalEmbedding(layer.max_len, shape[-1])
    if isinstance(layer, L.LSTM):
        return LSTM(shape[-1], layer.hidden, layer.return_sequences)
    if isinstance(layer, L.GRU):
        return GRU(shape[-1], layer.hidden, layer.return_sequences)
    if isinstance(layer, L.RNN):
        return RNN(shape[-1], layer.hidden, layer.activation, layer.return_sequences)
    if isinstance(layer, L.MultiHeadAttention):
        return SelfAttention(shape[-1], layer.num_heads, layer.causal)
    raise ValueError(f"{layer.name} ({type(layer).__name__}) has no torch.nn module in this script")


def torch_model(net):
    """``nn.Sequential`` of one module per layer of ``net``, in the network's dtype (weights unset)."""
    dtype = torch.from_numpy(np.zeros(0, dtype=net.dtype)).dtype
    return nn.Sequential(*[torch_module(layer) for layer in net.layers]).to(dtype)


# --- the checks ---------------------------------------------------------------------------------

def sample_batch(name, net):
    """The fixed input batch for ``net``: MNIST digits, cluster points or token ids."""
    first = net.layers[0]
    if isinstance(first, L.Embedding):
        rng = np.random.default_rng(0)
        return rng.integers(0, first.vocab_size, size=(SEQUENCES, SEQUENCE_LENGTH), dtype=np.int64)
    if net.input_shape == (2,):
        return np.random.default_rng(0).uniform(0, 1, size=(BATCH, 2)).astype(net.dtype)
    if int(np.prod(net.input_shape)) == 784:
        if "mnist" not in _cache:
            _cache["mnist"] = nnscratch.load_mnist()[2][:BATCH]      # the first 64 test digits (64, 784)
        return _cache["mnist"].reshape(BATCH, *net.input_shape).astype(net.dtype)
    raise SystemExit(f"{name}: no sample batch for input shape {net.input_shape}")


_cache = {}


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def check_network(name, verbose):
    """The checks for ``pre-trained/<name>.pickle``; returns the number that failed."""
    net = nnscratch.Network.load(os.path.join(PRE_TRAINED, f"{name}.pickle"))
    kinds = ", ".join(type(layer).__name__ for layer in net.layers)
    print(f"\n{name}: {kinds}")
    try:
        model = torch_model(net)
    except ValueError as error:
        print(f"  FAIL  the PyTorch model: {error}")
        return 1
    state = net.to_torch_state_dict()
    if verbose:
        print(model)
        for key, value in state.items():
            print(f"        {key:<40} {str(value.shape):<16} {value.dtype}")
    try:
        model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    except RuntimeError as error:
        print(f"  FAIL  load_state_dict(strict=True) of {len(state)} keys: {error}")
        return 1
    model.eval()
    print(f"  PASS  load_state_dict(strict=True): {len(state)} keys, "
          f"{sum(v.size for v in state.values()):,} numbers")

    X = sample_batch(name, net)
    net.reset_state()
    ours = net.forward(X, training=False)
    with torch.no_grad():
        theirs = model(torch.from_numpy(X)).numpy()
    failed = 0
    if ours.shape != theirs.shape:
        print(f"  FAIL  output shapes differ: nnscratch {ours.shape}, PyTorch {theirs.shape}")
        failed += 1
    else:
        diff, size = float(np.max(np.abs(ours - theirs))), float(np.max(np.abs(theirs)))
        ok = diff <= TOLERANCE * max(1.0, size)
        failed += not ok
        print(f"  {'PASS' if ok else 'FAIL'}  output {str(ours.shape):<14} on X {str(X.shape):<15} "
              f"max |diff| {diff:.2e}  (max |PyTorch| {size:.2e})")

    back = nnscratch.Network.from_torch_state_dict(model.state_dict(), net)
    before, after = net.state_dict(), back.state_dict()
    differing = sorted(k for k in before if k not in after or not same_bits(before[k], after[k]))
    differing += sorted(set(after) - set(before))
    ok = not differing
    failed += not ok
    detail = "" if ok else f": differing {differing[:8]}"
    print(f"  {'PASS' if ok else 'FAIL'}  round trip from_torch_state_dict(model.state_dict(), net): "
          f"{len(before)} arrays bit for bit{detail}")
    return failed


def run_readme_blocks():
    """Run the README's python blocks that import torch (tests/test_readme.py runs the others), as scripts
    from the repository root; returns the number that failed."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        blocks = re.findall(r"^```(\w*)\n(.*?)^```", f.read(), flags=re.M | re.S)
    torch_blocks = [code for lang, code in blocks if lang == "python" and "import torch" in code]
    failed = 0
    os.chdir(ROOT)
    for i, code in enumerate(torch_blocks, 1):
        print(f"README block {i} of {len(torch_blocks)} that import torch:")
        try:
            exec(compile(code, f"README.md torch block {i}", "exec"), {"__name__": "__main__"})
            print("  PASS  ran")
        except Exception as error:  # any failure of a README block is a FAIL line, not a traceback
            print(f"  FAIL  {type(error).__name__}: {error}")
            failed += 1
    return failed


def main(argv=None):
    available = sorted(os.path.splitext(os.path.basename(path))[0]
                       for path in glob.glob(os.path.join(PRE_TRAINED, "*.pickle")))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--networks", nargs="+", default=available, choices=available, metavar="NAME",
                   help=f"the networks of pre-trained/ to check (default: all, {' '.join(available)})")
    p.add_argument("--verbose", action="store_true", help="print each PyTorch model and its keys")
    p.add_argument("--fastpath", action="store_true", help="leave TransformerEncoderLayer's inference "
                   "fast path on (it ignores approximate='tanh')")
    p.add_argument("--readme", action="store_true", help="run the README's python blocks that import torch")
    a = p.parse_args(argv)
    torch.backends.mha.set_fastpath_enabled(a.fastpath)
    if a.readme:
        failed = run_readme_blocks()
        print(f"{'PASS' if not failed else 'FAIL'}: {failed} README block(s) failed")
        return 1 if failed else 0
    print(f"torch {torch.__version__}, numpy {np.__version__}, nnscratch {nnscratch.__version__} "
          f"from {os.path.dirname(os.path.abspath(nnscratch.__file__))}")
    print(f"tolerance: max |diff| <= {TOLERANCE:g} x max(1, max |PyTorch|)")
    start, failed = time.perf_counter(), 0
    for name in a.networks:
        failed += check_network(name, a.verbose)
    print(f"\n{'PASS' if not failed else 'FAIL'}: {len(a.networks)} network(s), {failed} check(s) failed "
          f"({time.perf_counter() - start:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
