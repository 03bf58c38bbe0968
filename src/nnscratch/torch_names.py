"""A network's weights under the names and layouts of the equivalent ``torch.nn`` model, and back.

The equivalent model is an ``nn.Sequential`` with one module per layer of
the network, in order, activations, dropout and flatten included (they hold
no weights, but they take their index), so a key is ``<index>.<name>``:

    ========================  ==================================  =========================================
    nnscratch layer           torch.nn module                     keys (nnscratch parameter)
    ========================  ==================================  =========================================
    FullyConnected            Linear(D, U)                        weight (W, (U, D)), bias (b)
    Conv2D                    Conv2d(C, F, k, stride, padding)    weight (W, (F, C, kh, kw)), bias (b)
    BatchNorm                 BatchNorm1d / BatchNorm2d           weight (gamma), bias (beta), running_mean,
                                                                  running_var, num_batches_tracked
    LayerNorm                 LayerNorm(E)                        weight (gamma), bias (beta)
    Embedding                 Embedding(V, E)                     weight (W)
    PositionalEmbedding       (a module holding the table)        weight (W, (max_len, E))
    RNN / LSTM / GRU          RNN / LSTM / GRU(batch_first=True)  weight_ih_l0, weight_hh_l0, bias_ih_l0,
                                                                  bias_hh_l0 (W_ih, W_hh, b_ih, b_hh)
    MultiHeadAttention        MultiheadAttention(batch_first)     in_proj_weight (W_qkv), in_proj_bias,
                                                                  out_proj.weight (W_out), out_proj.bias
    transformer block         TransformerEncoderLayer             layers.transformer.TORCH_ENCODER_LAYER_KEYS
    other Sequential/Residual nested nn.Sequential                <index>.<child index>.<name>
    ========================  ==================================  =========================================

The layouts already are PyTorch's (weights (out, in), gates in PyTorch's
order: LSTM i, f, g, o; GRU r, z, n), so only the names change. In PyTorch
a recurrent module returns a tuple and attention takes (query, key, value),
so they need a thin wrapper in a real ``nn.Sequential``; the keys are the
same. Values are NumPy arrays: ``{k: torch.from_numpy(v) for k, v in ...}``.
"""
import copy

import numpy as np

from . import layers as L
from .layers.transformer import TORCH_ENCODER_LAYER_KEYS

_RECURRENT = {"W_ih": "weight_ih_l0", "W_hh": "weight_hh_l0", "b_ih": "bias_ih_l0", "b_hh": "bias_hh_l0"}
#: leaf layer class -> {nnscratch parameter or buffer: PyTorch name}
TORCH_NAMES = {
    L.FullyConnected: {"W": "weight", "b": "bias"},
    L.Conv2D: {"W": "weight", "b": "bias"},
    L.BatchNorm: {"gamma": "weight", "beta": "bias", "running_mean": "running_mean", "running_var": "running_var",
                  "num_batches_tracked": "num_batches_tracked"},
    L.LayerNorm: {"gamma": "weight", "beta": "bias"},
    L.Embedding: {"W": "weight"},
    L.PositionalEmbedding: {"W": "weight"},
    L.RNN: _RECURRENT, L.LSTM: _RECURRENT, L.GRU: _RECURRENT,
    L.MultiHeadAttention: {"W_qkv": "in_proj_weight", "b_qkv": "in_proj_bias", "W_out": "out_proj.weight",
                           "b_out": "out_proj.bias"},
}


def _slots(layer, prefix):
    """``{torch key: (leaf layer, attribute)}`` for ``layer`` as the module at ``prefix``."""
    if isinstance(layer, L.Sequential) and is_transformer_block(layer):
        leaves = {leaf.name[len(layer.name) + 1:]: leaf for leaf in layer.leaves()}
        slots = {}
        for torch_key, ours in TORCH_ENCODER_LAYER_KEYS.items():
            leaf_name, attribute = ours.rsplit(".", 1)
            slots[f"{prefix}.{torch_key}"] = (leaves[leaf_name], attribute)
        return slots
    if layer.children():
        return {key: slot for i, child in enumerate(layer.children())
                for key, slot in _slots(child, f"{prefix}.{i}").items()}
    names = TORCH_NAMES.get(type(layer))
    if names is None:
        if layer.parameters() or layer.buffers():
            raise ValueError(f"{layer.name} ({type(layer).__name__}) has no PyTorch equivalent here")
        return {}
    return {f"{prefix}.{torch_name}": (layer, ours) for ours, torch_name in names.items()}


def is_transformer_block(block):
    """Is ``block`` laid out as ``transformer_block`` builds it (so that TORCH_ENCODER_LAYER_KEYS applies)?"""
    if len(block.layers) != 2 or not all(isinstance(child, L.Residual) for child in block.layers):
        return False
    kinds = [type(leaf) for leaf in block.leaves() if not isinstance(leaf, L.Dropout)]
    return kinds == [L.LayerNorm, L.MultiHeadAttention, L.LayerNorm, L.FullyConnected, L.GELU, L.FullyConnected]


def slots(net):
    """Every PyTorch key of ``net`` and the (layer, attribute) that holds it, in the network's order."""
    return {key: slot for i, layer in enumerate(net.layers) for key, slot in _slots(layer, str(i)).items()}


def _value(layer, attribute):
    value = getattr(layer, attribute)
    if attribute == "num_batches_tracked":
        return np.array(value, dtype=np.int64)              # PyTorch keeps it as a 0-d int64 tensor
    return (value.data if isinstance(value, L.Parameter) else value).copy()


def to_torch_state_dict(net):
    """``{PyTorch key: NumPy array}``, the ``state_dict()`` of the equivalent ``torch.nn`` model."""
    return {key: _value(layer, attribute) for key, (layer, attribute) in slots(net).items()}


def _as_array(value):
    """A NumPy array from a torch tensor (on any device, with or without grad) or anything array-like."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def load_torch_state_dict(net, state):
    """Copy a PyTorch ``state_dict`` into ``net`` in place, as ``load_state_dict(strict=True)`` would.

    Raises a ``ValueError`` naming the missing and unexpected keys, or the key
    whose shape differs, before anything is copied.
    """
    targets = slots(net)
    missing, unexpected = sorted(set(targets) - set(state)), sorted(set(state) - set(targets))
    if missing or unexpected:
        raise ValueError(f"the state dict does not fit {net!r}: missing keys {missing[:8] or 'none'}, "
                         f"unexpected keys {unexpected[:8] or 'none'}")
    values = {key: _as_array(state[key]) for key in targets}
    for key, (layer, attribute) in targets.items():
        expected = np.shape(_value(layer, attribute))
        if values[key].shape != expected:
            raise ValueError(f"{key} ({layer.name}.{attribute}): expected shape {expected}, got {values[key].shape}")
    for key, (layer, attribute) in targets.items():
        current = getattr(layer, attribute)
        if attribute == "num_batches_tracked":
            layer.num_batches_tracked = int(values[key])
        elif isinstance(current, L.Parameter):
            np.copyto(current.data, values[key], casting="unsafe")
        else:
            setattr(layer, attribute, values[key].astype(net.dtype))
    return net


def from_torch_state_dict(state, like):
    """A copy of the network ``like`` (the same architecture) holding the weights of ``state``."""
    net = copy.deepcopy(like)
    return load_torch_state_dict(net, state)
