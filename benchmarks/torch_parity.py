"""Weights move between nnscratch and PyTorch: the transformer block and the char-GPT, number for number.

Run under the Python of PyTorch's own virtual environment (PyTorch is never
a dependency of the project; nnscratch is imported from this checkout's
``src/``, and NumPy is all it needs):

    /tmp/torchvenv/bin/python benchmarks/torch_parity.py [--dtype float64|float32|both] [--verbose]

Checks, for each dtype and each GELU form (exact "none" and "tanh"):

1. **one block**: PyTorch's ``nn.TransformerEncoderLayer(E, H, 4E, dropout=0,
   activation=nn.GELU(approximate=...), batch_first=True, norm_first=True)``,
   with every parameter jittered away from its initial value (so that LN's
   γ = 1, β = 0 and the zero biases hide nothing), is copied into
   ``transformer_block(E, H, causal=True)`` through ``ENCODER_LAYER_KEYS``
   (the layout of the plan; it must equal the library's own
   ``TORCH_ENCODER_LAYER_KEYS``). Both run forward on the same x (N, T, E)
   with a causal mask (PyTorch: the additive mask of
   ``generate_square_subsequent_mask``, and again with ``is_causal=True``,
   the path bench_chargpt.py times); then both backpropagate the same
   upstream gradient dy: the outputs, dx and every parameter's gradient
   are compared.
2. **the whole char-GPT**: ``torch_ref.CharGPT`` (the model bench_chargpt.py
   times) copied into ``model_zoo.build_char_gpt`` through ``chargpt_keys``;
   logits, the mean cross-entropy over all N x T positions and every
   parameter's gradient (``net.train_step`` against ``loss.backward()``).

Each line gives the largest absolute difference, the largest magnitude of
PyTorch's array, and PASS when ``difference <= tolerance x max(1, magnitude)``
(tolerance 1e-10 in float64, 2e-5 in float32); the parameter gradients are
one line, the worst of them (``--verbose``: one line each; a failing one is
always shown). Exits 1 if any check fails.
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
sys.path.insert(0, HERE)

import nnscratch  # noqa: E402
from model_zoo import build_char_gpt  # noqa: E402
from nnscratch.layers import transformer  # noqa: E402
from torch_ref import CharGPT  # noqa: E402

TOLERANCE = {"float64": 1e-10, "float32": 2e-5}

#: PyTorch's ``nn.TransformerEncoderLayer`` key -> the block's nnscratch key (issue 12's plan).
ENCODER_LAYER_KEYS = {
    "norm1.weight": "block1.layernorm1.gamma", "norm1.bias": "block1.layernorm1.beta",
    "self_attn.in_proj_weight": "block1.attention1.W_qkv",
    "self_attn.in_proj_bias": "block1.attention1.b_qkv",
    "self_attn.out_proj.weight": "block1.attention1.W_out",
    "self_attn.out_proj.bias": "block1.attention1.b_out",
    "norm2.weight": "block2.layernorm1.gamma", "norm2.bias": "block2.layernorm1.beta",
    "linear1.weight": "block2.fc1.W", "linear1.bias": "block2.fc1.b",
    "linear2.weight": "block2.fc2.W", "linear2.bias": "block2.fc2.b",
}


def chargpt_keys(layers):
    """``torch_ref.CharGPT``'s state-dict key -> ``build_char_gpt``'s, for ``layers`` blocks."""
    keys = {"embedding.weight": "embedding1.W", "positional": "positional1.W",
            "norm.weight": "layernorm1.gamma", "norm.bias": "layernorm1.beta",
            "head.weight": "fc1.W", "head.bias": "fc1.b"}
    for i in range(layers):
        keys.update({f"blocks.{i}.{t}": f"block{i + 1}.{n}" for t, n in ENCODER_LAYER_KEYS.items()})
    return keys


class Checks:
    """The comparison lines, and how many failed; ``verbose`` prints every parameter's line."""

    def __init__(self, verbose=False):
        self.failed, self.verbose = 0, verbose

    def difference(self, ours, theirs, dtype):
        """``(pass, max |diff|, max |PyTorch|)``, or ``(False, None, message)`` for shapes that differ."""
        theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
        ours = np.asarray(ours)
        if ours.shape != theirs.shape:
            return False, None, f"shapes differ, nnscratch {ours.shape}, PyTorch {theirs.shape}"
        diff, size = float(np.max(np.abs(ours - theirs))), float(np.max(np.abs(theirs)))
        return diff <= TOLERANCE[dtype] * max(1.0, size), diff, size

    def line(self, label, ok, diff, size):
        self.failed += not ok
        detail = size if diff is None else f"max |diff| {diff:.2e}  (max |PyTorch| {size:.2e})"
        print(f"  {'PASS' if ok else 'FAIL'}  {label:<40} {detail}")

    def compare(self, label, ours, theirs, dtype):
        self.line(label, *self.difference(ours, theirs, dtype))

    def compare_gradients(self, pairs, dtype):
        """``pairs``: ``[(torch name, nnscratch gradient, PyTorch gradient)]``; one line for the worst
        (relative to its tolerance), or one per parameter with ``verbose``."""
        results = [(name, *self.difference(ours, theirs, dtype)) for name, ours, theirs in pairs]
        if self.verbose:
            for name, *result in results:
                self.line(f"d {name}", *result)
            return
        bad = [r for r in results if not r[1]]
        for name, *result in bad:
            self.line(f"d {name}", *result)
        if not bad:
            name, ok, diff, size = max(results, key=lambda r: r[2] / max(1.0, r[3]))
            self.line(f"all {len(results)} parameter gradients", ok, diff, size)
            print(f"        (the largest: d {name})")


def copy_into(net, torch_module, keys):
    """Load ``torch_module``'s parameters into ``net`` by ``keys`` (torch key -> nnscratch key);
    every nnscratch parameter must get one."""
    state = net.state_dict()
    theirs = torch_module.state_dict()
    missing = sorted(set(state) - set(keys.values()))
    unused = sorted(set(theirs) - set(keys))
    if missing or unused:
        raise SystemExit(f"the key maps do not cover the models: nnscratch keys without a source {missing}, "
                         f"PyTorch keys not copied {unused}")
    net.load_state_dict({ours: theirs[t].detach().numpy() for t, ours in keys.items()})


def jitter(module, generator, scale=0.1):
    """Move every parameter away from its initial value (LN's 1 and 0, the zero biases)."""
    with torch.no_grad():
        for p in module.parameters():
            p += scale * torch.randn(p.shape, generator=generator, dtype=p.dtype)


def check_block(checks, dtype, gelu, N=3, T=7, E=16, H=4):
    torch_dtype = getattr(torch, dtype)
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(E, H, 4 * E, dropout=0.0, activation=nn.GELU(approximate=gelu),
                                       batch_first=True, norm_first=True).to(torch_dtype)
    jitter(layer, g)
    net = nnscratch.Network((T, E), dtype=dtype, seed=0)
    net.add_transformer_block(H, dropout=0.0, causal=True, approximate=gelu)
    copy_into(net, layer, {t: "block1." + n for t, n in ENCODER_LAYER_KEYS.items()})
    block = net.layers[0]
    block.needs_input_grad = True  # the network's first layer skips dx; here dx is checked

    x = torch.randn(N, T, E, generator=g, dtype=torch_dtype)
    dy = torch.randn(N, T, E, generator=g, dtype=torch_dtype)
    y = block.forward(x.numpy().copy(), True)
    dx = block.backward(dy.numpy().copy())
    grads = {f"{name}.{p.name}": p.grad for name, layer_ in net.named_layers() for p in layer_.parameters()}

    mask = nn.Transformer.generate_square_subsequent_mask(T, dtype=torch_dtype)
    for is_causal in (False, True):
        layer.zero_grad()
        x_t = x.clone().requires_grad_(True)
        y_t = layer(x_t, src_mask=mask, is_causal=is_causal)
        (y_t * dy).sum().backward()
        how = "mask + is_causal" if is_causal else "additive mask"
        checks.compare(f"output y ({how})", y, y_t, dtype)
        checks.compare(f"input gradient dx ({how})", dx, x_t.grad, dtype)
        if not is_causal:
            params = dict(layer.named_parameters())
            checks.compare_gradients([(t, grads["block1." + n], params[t].grad)
                                      for t, n in ENCODER_LAYER_KEYS.items()], dtype)


def check_chargpt(checks, dtype, gelu, N=3, T=12, E=32, H=4, L=2, V=73):
    torch_dtype = getattr(torch, dtype)
    g = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    model = CharGPT(V, E, H, L, T, dropout=0.0, gelu=gelu, mask="mask").to(torch_dtype)
    jitter(model, g)
    net = build_char_gpt(V, embed=E, heads=H, layers=L, context=T, dropout=0.0, seed=0, gelu=gelu)
    net.astype(dtype)
    copy_into(net, model, chargpt_keys(L))

    ids = torch.randint(0, V, (N, T), generator=g)
    targets = torch.randint(0, V, (N, T), generator=g)
    one_hot = np.zeros((N, T, V), dtype=dtype)
    np.put_along_axis(one_hot, targets.numpy()[..., None], 1, axis=-1)
    loss, logits = net.train_step(ids.numpy(), one_hot, return_output=True)
    logits_t = model(ids)
    loss_t = nn.functional.cross_entropy(logits_t.reshape(-1, V), targets.reshape(-1))
    loss_t.backward()
    checks.compare("logits (N, T, V)", logits, logits_t, dtype)
    checks.compare("cross-entropy (mean over N*T)", loss, loss_t, dtype)
    grads = {f"{name}.{p.name}": p.grad for name, layer in net.named_layers() for p in layer.parameters()}
    params = dict(model.named_parameters())
    checks.compare_gradients([(t, grads[n], params[t].grad) for t, n in chargpt_keys(L).items()], dtype)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dtype", default="both", choices=("float64", "float32", "both"))
    p.add_argument("--verbose", action="store_true", help="one line per parameter gradient")
    a = p.parse_args(argv)
    dtypes = ("float64", "float32") if a.dtype == "both" else (a.dtype,)
    print(f"torch {torch.__version__}, numpy {np.__version__}, nnscratch {nnscratch.__version__} "
          f"from {os.path.dirname(os.path.abspath(nnscratch.__file__))}")
    checks = Checks(a.verbose)
    library_keys = getattr(transformer, "TORCH_ENCODER_LAYER_KEYS", None)
    same = library_keys == ENCODER_LAYER_KEYS
    checks.failed += not same
    print(f"{'PASS' if same else 'FAIL'}  the plan's key map equals "
          f"layers.transformer.TORCH_ENCODER_LAYER_KEYS")
    for dtype in dtypes:
        for gelu in ("none", "tanh"):
            print(f"\n{dtype}, GELU approximate={gelu!r}: one transformer block "
                  f"(N=3, T=7, E=16, H=4, causal)")
            check_block(checks, dtype, gelu)
            print(f"{dtype}, GELU approximate={gelu!r}: char-GPT (V=73, E=32, H=4, L=2, T=12, N=3), "
                  f"logits, loss, every gradient")
            check_chargpt(checks, dtype, gelu)
    print(f"\n{'PASS' if not checks.failed else 'FAIL'}: {checks.failed} check(s) failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
