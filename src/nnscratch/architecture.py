"""A network's architecture as plain JSON data, and the network rebuilt from it.

``describe(net)`` gives a dict of strings, numbers, booleans and lists only:
the input shape, cost, dtype, seed and generator state, and one entry per
layer with its class and its constructor's arguments (a block lists its
children). ``rebuild(description)`` runs the builders again, so the network
comes out with the same layers, names and shapes (and fresh weights, which
a loader then replaces). Nothing in a description is ever executed or
imported: a layer's ``"class"`` is looked up in ``LAYER_ARGUMENTS``, a fixed
table, and anything not in it is refused. The safetensors format
(``persistence.save_safetensors``) keeps this description in its metadata.

Example: ``Network(784)`` with ``add_fc_layer(50)``, ``add_relu_layer()``::

    {"format": "nnscratch", "version": 1, "input_shape": [784], "cost": "cross_entropy",
     "dtype": "float32", "seed": 0, "rng_state": {...},
     "layers": [{"class": "FullyConnected", "units": 50, "init": "auto"}, {"class": "ReLU"}]}
"""
import numpy as np

from . import layers as L
from .costs import COSTS

FORMAT, VERSION = "nnscratch", 1

#: layer class -> its constructor's arguments, each read back from the attribute of the same name
#: (``(argument, attribute)`` where they differ). Conv2D's padding is its four widths, ``pads``,
#: set after construction, so that every padding ("same" with an even kernel too) comes back.
LAYER_ARGUMENTS = {
    L.FullyConnected: ("units", "init"),
    L.Conv2D: ("filters", ("kernel_size", "kernel"), "stride", "init", "impl"),
    L.MaxPool2D: ("size", "stride", "impl"),
    L.AvgPool2D: ("size", "stride", "impl"),
    L.Flatten: (),
    L.Sigmoid: (), L.Tanh: (), L.ReLU: (), L.Softmax: (),
    L.LeakyReLU: ("negative_slope",),
    L.GELU: ("approximate",),
    L.Dropout: ("p",),
    L.BatchNorm: ("momentum", "eps"),
    L.LayerNorm: ("eps",),
    L.Embedding: ("vocab_size", "dim"),
    L.PositionalEmbedding: ("max_len",),
    L.MultiHeadAttention: ("num_heads", "causal", "dropout", "impl"),
    L.RNN: ("hidden", "activation", "return_sequences", "stateful", "impl"),
    L.LSTM: ("hidden", "return_sequences", "stateful", "impl"),
    L.GRU: ("hidden", "return_sequences", "stateful", "impl"),
    L.Sequential: (), L.Residual: (),        # their children are listed under "layers"
}
CLASSES = {cls.__name__: cls for cls in LAYER_ARGUMENTS}
BLOCKS = (L.Sequential, L.Residual)


class ArchitectureError(ValueError):
    """A description that does not describe a network this library can build."""


def _plain(value):
    """Tuples (also nested) as lists, NumPy scalars as Python numbers: JSON's types."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def describe_layer(layer):
    """``{"class": ..., <argument>: <value>, ...}`` for one layer (children under ``"layers"``)."""
    cls = type(layer)
    if cls not in LAYER_ARGUMENTS:
        raise ArchitectureError(f"{layer.name} ({cls.__name__}) cannot be described: only the library's own "
                                f"layers can ({', '.join(CLASSES)})")
    entry = {"class": cls.__name__}
    for argument in LAYER_ARGUMENTS[cls]:
        argument, attribute = argument if isinstance(argument, tuple) else (argument, argument)
        entry[argument] = _plain(getattr(layer, attribute))
    if cls is L.Conv2D:
        entry["pads"] = _plain(layer.pads)
    if cls in BLOCKS:
        entry["layers"] = [describe_layer(child) for child in layer.layers]
    return entry


def describe(net):
    """The whole network as JSON-ready data (see the module docstring)."""
    if net.cost.name not in COSTS:
        raise ArchitectureError(f"a network with a custom cost ({type(net.cost).__name__}) cannot be described: "
                                f"only the named costs can ({', '.join(sorted(COSTS))})")
    return {"format": FORMAT, "version": VERSION, "input_shape": _plain(net.input_shape), "cost": net.cost.name,
            "dtype": net.dtype.name, "seed": _plain(net.seed), "rng_state": net.rng.bit_generator.state,
            "layers": [describe_layer(layer) for layer in net.layers]}


def _field(entry, key, kinds, where):
    """``entry[key]``, checked to be one of the JSON ``kinds``."""
    if not isinstance(entry, dict) or key not in entry:
        raise ArchitectureError(f"{where}: missing {key!r}")
    value = entry[key]
    if not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds:
        raise ArchitectureError(f"{where}: {key!r} must be {' or '.join(k.__name__ for k in kinds)}, "
                                f"got {value!r}")
    return value


def rebuild_layer(entry, where):
    """The layer an entry of ``describe_layer`` describes (not yet built)."""
    name = _field(entry, "class", (str,), where)
    if name not in CLASSES:
        raise ArchitectureError(f"{where}: unknown layer class {name!r} (known: {', '.join(CLASSES)})")
    cls = CLASSES[name]
    expected = {a[0] if isinstance(a, tuple) else a for a in LAYER_ARGUMENTS[cls]} | {"class"}
    expected |= {"pads"} if cls is L.Conv2D else {"layers"} if cls in BLOCKS else set()
    if set(entry) != expected:
        raise ArchitectureError(f"{where} ({name}): expected the fields {sorted(expected)}, got {sorted(entry)}")
    if cls in BLOCKS:
        children = _field(entry, "layers", (list,), where)
        return cls(*[rebuild_layer(child, f"{where}.layers[{i}]") for i, child in enumerate(children)])
    arguments = {k: tuple(v) if isinstance(v, list) else v for k, v in entry.items() if k not in ("class", "pads")}
    try:
        layer = cls(**arguments)
        if cls is L.Conv2D:
            pads = _field(entry, "pads", (list,), where)
            if not (len(pads) == 2 and all(isinstance(side, list) and len(side) == 2 and
                                           all(type(p) is int and p >= 0 for p in side) for side in pads)):
                raise ValueError(f"pads must be [[top, bottom], [left, right]] of non-negative integers, got {pads}")
            layer.pads = tuple(tuple(p) for p in pads)
    except (TypeError, ValueError) as err:
        raise ArchitectureError(f"{where} ({name}): {err}") from None
    return layer


def rebuild(description):
    """A ``Network`` with the described layers, freshly initialized; raises ``ArchitectureError``."""
    from .network import Network
    where = "architecture"
    if _field(description, "format", (str,), where) != FORMAT:
        raise ArchitectureError(f"not an nnscratch architecture (format {description['format']!r})")
    if _field(description, "version", (int,), where) > VERSION:
        raise ArchitectureError(f"architecture version {description['version']} is newer than this nnscratch "
                                f"reads ({VERSION}): update nnscratch")
    entries = _field(description, "layers", (list,), where)
    shape = _field(description, "input_shape", (list,), where)
    try:
        net = Network(tuple(shape), cost=_field(description, "cost", (str,), where),
                      seed=_field(description, "seed", (int,), where),
                      dtype=_field(description, "dtype", (str,), where))
    except (TypeError, ValueError) as err:
        raise ArchitectureError(f"{where}: {err}") from None
    for i, entry in enumerate(entries):
        layer = rebuild_layer(entry, f"layers[{i}]")
        try:
            net.add(layer)
        except (TypeError, ValueError, MemoryError) as err:
            raise ArchitectureError(f"layers[{i}] ({entry['class']}): {err}") from None
    state = description.get("rng_state")
    if isinstance(state, dict) and state.get("bit_generator") == type(net.rng.bit_generator).__name__:
        try:
            net.rng.bit_generator.state = state
        except (TypeError, ValueError, KeyError) as err:
            raise ArchitectureError(f"{where}: rng_state: {err}") from None
    return net
