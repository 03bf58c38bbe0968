"""The layer contract shared by every layer, and the `Parameter` they hold.

A layer maps a batch ``x`` to ``y = f(x; θ)`` in ``forward`` and, given the
upstream gradient ``dy = ∂C/∂y``, returns ``dx = ∂C/∂x`` in ``backward`` while
storing ``∂C/∂θ`` in each parameter's ``.grad``. Layers are built once their
input shape is known (``build``), so sizes never have to be typed twice.
"""
import numpy as np

from .workspace import Workspace


class Parameter:
    """A trainable array and the gradient of the cost with respect to it.

    Parameters
    ----------
    data : ndarray
        The values: one array for the parameter's whole life, updated in place
        by the optimizer (so a reference to it sees every step).
    name : str
        Short name such as ``"W"`` or ``"b"``; the network prefixes the layer name.
    decay : bool
        Whether L2 weight decay applies to it (weights yes; biases and
        normalization parameters no, by default).
    """

    __slots__ = ("data", "grad", "name", "decay")

    def __init__(self, data, name="", decay=True):
        self.data = data
        self.grad = np.zeros_like(data)
        self.name = name
        self.decay = decay

    def __repr__(self):
        return f"Parameter({self.name}, shape={self.data.shape}, dtype={self.data.dtype})"

    def __getstate__(self):
        # The gradient is not part of a saved model (and the optimizer's buffers live in the optimizer).
        return {"data": self.data, "name": self.name, "decay": self.decay}

    def __setstate__(self, state):
        # Old pickles hold these same three keys (``spare`` was never stored).
        self.data = state["data"]
        self.name = state["name"]
        self.decay = state["decay"]
        self.grad = np.zeros_like(self.data)


def shape_str(shape):
    """Format a per-sample shape as a batch shape: ``(784,)`` -> ``"(N, 784)"``;
    a free sequence length (None) shows as T."""
    return "(N, " + ", ".join("T" if s is None else str(s) for s in shape) + ")"


def shape_matches(actual, expected):
    """Does a per-sample shape fit ``expected``, where None accepts any length?"""
    return len(actual) == len(expected) and all(e is None or a == e for a, e in zip(actual, expected))


def size_of(shape):
    """Elements in a per-sample shape, counting a free length (None) as 1 (per step)."""
    return int(np.prod([1 if s is None else s for s in shape]))


def column_sums(rows):
    """``Σ_i rows[i, :]`` of a 2-D array, as the product ``1ᵀ rows`` (a bias's gradient).

    *Column sums by BLAS*: on (4096, 512) float32 rows (a transformer block's
    feed-forward) the product takes 0.17 ms against 0.30 ms for
    ``rows.sum(axis=0)``, which NumPy runs as one pass per row; (128, 800):
    8.4 against 12.8 µs. Below ``SMALL_SUM`` elements the call costs more than
    the sum ((32, 50): 2.4 against 2.3 µs), and NumPy sums.
    """
    if rows.size < SMALL_SUM:
        return rows.sum(axis=0)
    return np.ones(len(rows), dtype=rows.dtype) @ rows


SMALL_SUM = 16384


def numbered_name(layer, counts, parent=""):
    """Name ``layer`` after its kind and its number among its siblings, counting it in ``counts``.

    ``counts`` maps kind -> layers of that kind seen so far among the siblings
    (the network's top level, or one block's children). Top-level names are
    ``fc1, relu1, fc2, block1...``; inside a block named ``parent`` they are
    qualified by it, as PyTorch's ``named_modules`` are: ``block1.fc1``,
    ``block1.block1.conv2``. So a name is also a path, and a state_dict key
    is ``<name>.<parameter>`` (``block1.fc1.W``).
    """
    counts[layer.kind] = counts.get(layer.kind, 0) + 1
    stem = f"{layer.kind}{counts[layer.kind]}"
    return f"{parent}.{stem}" if parent else stem


def link_auto_init(previous, layer):
    """Apply the auto-init rule between two consecutive layers (``previous`` may be None).

    A dense or conv layer built with ``init="auto"`` (He) is rescaled to the
    ``init_family`` of the layer that reads its output: He before ReLU,
    Glorot before sigmoid, tanh or softmax. Across block boundaries "the
    layer that reads it" is taken in the order the leaves run: the last leaf
    of ``previous`` looks at the first leaf of ``layer``. So in
    ``Residual(fc, relu, fc)`` followed by a tanh the second fc is Glorot
    (its output, plus x, goes to the tanh); a residual sum changes nothing.
    """
    if previous is None:
        return
    before, after = previous.leaves()[-1], layer.leaves()[0]
    if hasattr(before, "set_auto_init") and hasattr(after, "init_family"):
        before.set_auto_init(after.init_family)


class Layer:
    """Base class: ``forward``, ``backward``, ``parameters`` and shape bookkeeping.

    Subclasses implement ``_build`` (create parameters, return the output
    shape), ``forward`` and ``backward``. Whatever ``forward`` caches for
    ``backward`` lives in attributes starting with ``_cache`` so that saving a
    network never stores the last batch.

    Attributes
    ----------
    input_shape, output_shape : tuple of int
        Per-sample shapes (no batch axis), set by ``build``.
    name : str
        Set by the network (``"fc1"``, ``"relu2"``...); inside a block it is
        qualified by the block's name (``"block1.fc1"``, see ``numbered_name``).
    needs_input_grad : bool
        False for the first layer of a network: its ``backward`` may skip
        computing ``dx``, which nobody reads (for a dense layer that is one of
        its three matrix products). Inside blocks only the network's very
        first leaf gets False.
    """

    kind = "layer"
    uses_rng = False  # True for layers that draw random numbers from the network's generator

    def __init__(self):
        self.input_shape = None
        self.output_shape = None
        self.name = self.kind
        self.needs_input_grad = True

    # -- construction ----------------------------------------------------
    def build(self, input_shape, rng, dtype):
        """Fix the input shape, create parameters; returns the output shape."""
        self.input_shape = tuple(None if s is None else int(s) for s in input_shape)
        self.output_shape = tuple(self._build(self.input_shape, rng, np.dtype(dtype)))
        return self.output_shape

    def _build(self, input_shape, rng, dtype):
        return input_shape  # shape-preserving layers need nothing else

    def parameters(self):
        """The layer's trainable parameters (empty for activations; a block's children's, depth first)."""
        return []

    def children(self):
        """The layers this one holds, in forward order: ``[]`` for a leaf layer,
        the ``layers`` list of a block (``Sequential``, ``Residual``)."""
        return []

    def leaves(self):
        """The leaf layers at or under this one, depth first in forward order:
        ``[self]`` for a leaf, every non-block layer inside a block."""
        children = self.children()
        if not children:
            return [self]
        return [leaf for child in children for leaf in child.leaves()]

    def buffers(self):
        """Names of the layer's non-trainable state arrays (BatchNorm's running statistics)."""
        return ()

    def astype(self, dtype):
        """Cast parameters (and any float state) to ``dtype`` in place; returns self."""
        for p in self.parameters():
            p.data = p.data.astype(dtype)
            p.grad = np.zeros_like(p.data)
        return self

    # -- the contract ----------------------------------------------------
    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    # -- helpers -----------------------------------------------------------
    def buffer(self, name, shape, dtype):
        """This layer's reusable scratch array ``name``: uninitialized, the same memory
        on every call (see workspace.py: large per-batch arrays cost page faults)."""
        if "_cache_workspace" not in self.__dict__:
            self._cache_workspace = Workspace()
        return self._cache_workspace(name, shape, dtype)

    def check_input(self, x):
        """Raise a ValueError naming this layer when ``x`` is not a float array (N, *input_shape)."""
        if not shape_matches(x.shape[1:], self.input_shape):
            raise ValueError(
                f"{self.name} ({type(self).__name__}) expects input of shape "
                f"{shape_str(self.input_shape)}, got {tuple(x.shape)}")
        if x.dtype.kind != "f":
            raise ValueError(f"{self.name} ({type(self).__name__}) expects a floating-point array, "
                             f"got dtype {x.dtype}")

    def flops(self):
        """Floating-point operations of a forward pass for one sample (approximate)."""
        return 0

    def __getstate__(self):
        state = {k: v for k, v in self.__dict__.items() if not k.startswith("_cache")}
        if isinstance(state.get("rng"), np.random.Generator):
            # Stored as a plain dict so the safe loader needs no NumPy random classes;
            # a network re-attaches its own shared generator after loading.
            state["rng"] = state["rng"].bit_generator.state
        return state

    def __setstate__(self, state):
        if isinstance(state.get("rng"), dict):
            rng = np.random.default_rng()
            rng.bit_generator.state = state["rng"]
            state["rng"] = rng
        self.__dict__.update(state)

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r}, in={self.input_shape}, out={self.output_shape})"
