"""The Network: a list of layers, a cost, and what you do with them."""
import math

import numpy as np

from . import checks, persistence, training
from .costs import get_cost
from .builders import LayerBuilders
from .exports import WeightExports
from .layers import Embedding
from .layers.base import Layer, link_auto_init, numbered_name, shape_matches, shape_str


class Summary(str):
    """A string that shows as itself at the prompt (so ``net.summary()`` prints a table)."""

    def __repr__(self):
        return str(self)


class Network(LayerBuilders, WeightExports):
    """A feed-forward stack of layers trained by backpropagation.

    Layers are appended with ``add(layer)`` or the ``add_*_layer`` builders
    (builders.py, one per layer kind).

    Parameters
    ----------
    input_shape : int or tuple of int
        Shape of one sample: ``784`` or ``(784,)`` for flat vectors,
        ``(1, 28, 28)`` for images, ``(T, D)`` for sequences.
    cost : str, Cost or function
        ``"cross_entropy"`` (default), ``"quadratic"``, ``"binary_cross_entropy"``,
        a ``Cost``, or the seed's function pair ``(cost, cost_prime)``.
    cost_prime : function, optional
        The seed's derivative function, e.g. ``cross_entropy_cost_prime_SM``.
    seed : int
        Seeds the network's ``np.random.Generator``: initial weights, shuffling
        and dropout masks all come from it, so one seed gives one run, bit for bit.
    dtype : numpy dtype
        Parameter and activation dtype; float32 (default) or float64.

    Examples
    --------
    >>> net = Network(784, cost="cross_entropy", seed=0)
    >>> net.add_fc_layer(50); net.add_relu_layer(); net.add_fc_layer(10); net.add_softmax_layer()
    """

    def __init__(self, input_shape, cost="cross_entropy", cost_prime=None, *, seed=0, dtype=np.float32):
        shape = (input_shape,) if np.isscalar(input_shape) or input_shape is None else tuple(input_shape)
        if not shape or any(s is not None and (int(s) != s or s < 1) for s in shape):
            raise ValueError(f"input_shape must be positive integers (None for a free sequence length), "
                             f"got {input_shape!r}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        self.input_shape = tuple(None if s is None else int(s) for s in shape)
        self.cost = get_cost(cost, cost_prime)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.layers = []
        self.history = None
        self._kind_counts = {}

    # -- building ------------------------------------------------------------
    @property
    def output_shape(self):
        """Per-sample shape of the last layer's output (the input shape when empty)."""
        return self.layers[-1].output_shape if self.layers else self.input_shape

    def add(self, layer, size=None):
        """Append a layer (or a block: ``Sequential``, ``Residual``), building it for the current output shape.

        The layer is named after its kind and number (``fc2``, ``block1``; a
        block's children ``block1.fc1``...), and an ``init="auto"`` layer
        before it takes its weight scale from its first leaf (see
        ``layers.base.link_auto_init``). ``size`` is the seed's redundant size
        argument: when given, it must equal the number of features the layer receives.
        """
        if not isinstance(layer, Layer):
            raise TypeError(f"add() expects a Layer, got {type(layer).__name__}")
        if size is not None and (self.output_shape[-1] != size):
            raise ValueError(f"{layer.kind} layer of size {size} does not fit the previous output "
                             f"{shape_str(self.output_shape)}")
        layer.name = numbered_name(layer, self._kind_counts)
        previous = self.layers[-1] if self.layers else None
        layer.build(self.output_shape, self.rng, self.dtype)
        layer.needs_input_grad = bool(self.layers)  # a block passes it on to its first leaf only
        link_auto_init(previous, layer)
        self.layers.append(layer)
        return layer

    def reset_state(self):
        """Forget the state that stateful recurrent layers carry between batches (inside blocks too)."""
        for _, layer in self.named_layers():
            if hasattr(layer, "reset_state"):
                layer.reset_state()

    def parameters(self):
        """Every trainable ``Parameter``, layer by layer (a block's depth first)."""
        return [p for layer in self.layers for p in layer.parameters()]

    def named_layers(self):
        """``(qualified name, layer)`` for every leaf layer, depth first in the order they run.

        Blocks are not yielded themselves, their leaves are:
        ``("fc1", FullyConnected), ("block1.fc1", ...), ("block1.relu1", ...), ("relu1", ...)``.
        A network without blocks yields its layers.
        """
        for layer in self.layers:
            for leaf in layer.leaves():
                yield leaf.name, leaf

    def state_dict(self):
        """Copies of every parameter and buffer, by name: ``{"fc1.W": ..., "batchnorm1.running_mean": ...}``.

        Keys are ``<qualified layer name>.<parameter>``: ``block1.fc1.W`` inside
        a block. The names and layouts match PyTorch's where the layers do
        (``W`` is ``weight``, ``b`` is ``bias``), so weights can be moved by renaming.
        """
        state = {}
        for name, layer in self.named_layers():
            for p in layer.parameters():
                state[f"{name}.{p.name}"] = p.data.copy()
            for buffer in layer.buffers():
                state[f"{name}.{buffer}"] = getattr(layer, buffer).copy()
        return state

    def load_state_dict(self, state):
        """Set parameters and buffers from ``state_dict()`` output; shapes must match."""
        for layer_name, layer in self.named_layers():
            for p in layer.parameters():
                key = f"{layer_name}.{p.name}"
                value = np.asarray(state[key])
                if value.shape != p.data.shape:
                    raise ValueError(f"{key}: expected shape {p.data.shape}, got {value.shape}")
                np.copyto(p.data, value)
            for buffer in layer.buffers():
                setattr(layer, buffer, np.array(state[f"{layer_name}.{buffer}"], dtype=self.dtype))

    # -- forward and backward ------------------------------------------------------
    def _require_layers(self):
        if not self.layers:
            raise ValueError("the network has no layers: add some with add_fc_layer(...) / net.add(...)")

    def _as_batch(self, X):
        """``X`` as an array of the network's dtype, after checking its per-sample shape (cheap)."""
        X = np.asarray(X)
        if not np.issubdtype(X.dtype, np.number):
            raise ValueError(f"input must be numeric, got dtype {X.dtype}")
        if not shape_matches(X.shape[1:], self.input_shape):
            first = self.layers[0].name if self.layers else "input"
            raise ValueError(f"{first} expects input of shape {shape_str(self.input_shape)}, "
                             f"got {tuple(X.shape)}")
        if self._takes_token_ids:
            return X  # token ids stay integers
        return X.astype(self.dtype, copy=False)

    def _checked_batch(self, X, name="X"):
        """``_as_batch`` plus what guards ``fit``, ``evaluate`` and ``predict`` before any work.

        Refuses a network without layers, an empty ``X`` and NaN or infinite
        values (counted and located); warns when integer pixels above 1 go to
        a network whose first layer is not an Embedding. ``name`` names ``X``
        in the messages (``"X_val"`` for validation data).

        Returns
        -------
        ndarray (N, *input_shape), the network's dtype (token ids stay as given)
        """
        self._require_layers()
        X = np.asarray(X)
        checks.require_samples(X, name, shape_str(self.input_shape))
        if not self._takes_token_ids:
            checks.warn_if_integer_pixels(X, name)
        may_hold_nan = X.dtype.kind in "fc"  # integers cannot, and none overflows float32
        X = self._as_batch(X)
        if may_hold_nan:  # checked after the cast, so float64 values too large for float32 count too
            checks.require_finite(X, name)
        return X

    @property
    def _takes_token_ids(self):
        """True when the first leaf layer (inside blocks too) is an Embedding, which takes integer token ids."""
        first = next(self.named_layers(), (None, None))[1]
        return isinstance(first, Embedding)

    def forward(self, X, training=False):
        """Run a batch ``X`` (N, *input_shape) through every layer; returns the output."""
        self._require_layers()
        out = self._as_batch(X)
        for layer in self.layers:
            out = layer.forward(out, training)
        return out

    def backward(self, grad, stop=None):
        """Backpropagate ``grad`` = ∂C/∂output through the layers in reverse (all, or those before ``stop``).

        Each layer's ``backward`` fills its parameters' ``.grad``; returns ∂C/∂X
        (None when the first layer does not compute it).
        """
        for layer in reversed(self.layers[:stop]):
            grad = layer.backward(grad)
        return grad

    @property
    def fused_output(self):
        """True when the cost fuses with the output layer (softmax + cross-entropy,
        sigmoid + binary cross-entropy): the cost says so, ``cost.fuses_with_layer``."""
        return bool(self.layers) and self.cost.fuses_with_layer(self.layers[-1])

    def loss_gradient(self, out, targets):
        """Backpropagate the cost at ``out`` through the whole network (the
        second half of ``train_step``); returns ∂C/∂X.

        With a fused output the gradient ``∂C/∂z = (a - t)/N`` enters below the
        output layer, whose backward is skipped; otherwise ``∂C/∂out`` enters at the top.
        """
        if self.fused_output:
            return self.backward(self.cost.fused_gradient(out, targets), stop=-1)
        return self.backward(self.cost.gradient(out, targets))

    def train_step(self, X, targets, *, return_output=False):
        """One training step's gradients: forward in training mode, the cost, backward.

        The only place that sequence is written (``fit``, the gradient checks,
        the autodiff bridge and the benchmarks call it)::

            out = f_L(... f_1(X))       each layer's forward, in order, training=True
            C   = cost(out, targets)    the loss, returned
            ∂C/∂out, or ∂C/∂z below a fused output layer, then each layer's
            backward in reverse, filling every parameter's ``.grad``

        It does not step the optimizer. When ``C`` is not finite (a diverging
        run) the backward is skipped: there is nothing to learn from it, and
        ``fit`` stops.

        Parameters
        ----------
        X : ndarray (N, *input_shape), already checked (as ``fit`` checks it)
        targets : ndarray shaped like the output, (N, K) or (N, T, K), of the
            network's dtype: as the cost wants them (``training.prepare_targets``)
        return_output : bool
            Also return the output (``fit`` counts the correct predictions on it).

        Returns
        -------
        float, the batch's cost at the weights before any step; or ``(cost, out)``
        """
        out = X
        for layer in self.layers:  # forward(X, training=True) without its input checks (X is checked):
            out = layer.forward(out, True)  # they cost 3 µs a batch, 1.7% of mlp50's 175 µs
        loss = self.cost.value(out, targets)
        if math.isfinite(loss):
            self.loss_gradient(out, targets)
        return (loss, out) if return_output else loss

    def forward_pass(self, x):
        """The seed's single-sample forward: ``x`` (784, 1) -> output column (10, 1).

        A flat ``x`` (784,) gives a flat output.
        """
        x = np.asarray(x)
        column = x.ndim == 2 and x.shape[1] == 1 and self.input_shape == (x.shape[0],)
        out = self.forward(x.reshape((1,) + self.input_shape))[0]
        return out.reshape(-1, 1) if column else out

    # -- using a trained network ---------------------------------------------
    def predict_proba(self, X, batch_size=1000):
        """Outputs (class probabilities for a softmax net) for ``X`` (N, *input_shape), in evaluation mode.

        A network trained on logits (``cost="cross_entropy_logits"``, no softmax
        layer) gives probabilities too: the cost's ``probabilities`` (softmax of
        the logits); ``forward`` gives the logits themselves.

        Raises ``ValueError`` before any work for an empty ``X``, NaN or
        infinite values, a wrong shape, or a network without layers.
        """
        return self.cost.probabilities(self._outputs(self._checked_batch(X), batch_size))

    def predict(self, X, batch_size=1000):
        """Class ids (N,): the argmax of the outputs, or ``output > 0.5`` for a single output."""
        return training.classes_of(self.predict_proba(X, batch_size))

    def evaluate(self, X, y, batch_size=1000):
        """``{"loss": mean cost, "accuracy": fraction correct}`` on ``(X, y)``.

        ``X`` and ``y`` are checked as in ``fit`` before any work.
        """
        X = self._checked_batch(X)
        targets, labels = training.prepare_targets(self, y, len(X))
        return self._scores(X, targets, labels, batch_size)

    def _outputs(self, X, batch_size):
        """Outputs for an already checked ``X``, ``batch_size`` samples at a time."""
        return np.concatenate([self.forward(X[i:i + batch_size]) for i in range(0, len(X), batch_size)])

    def _scores(self, X, targets, labels, batch_size=1000):
        """``evaluate`` on already checked arrays (``fit`` calls it after each epoch)."""
        out = self._outputs(X, batch_size)
        return {"loss": self.cost.value(out, targets),
                "accuracy": float(np.mean(training.classes_of(out) == labels))}

    # -- training ---------------------------------------------------------------
    def fit(self, X, y, epochs=1, batch_size=32, optimizer=None, validation_data=None,
            callbacks=(), shuffle=True, verbose=1, threads="auto", validation_split=None, augment=None, *,
            distributed=False, checkpoint=None, resume=False):
        """Train with mini-batch gradient descent; see ``training.fit`` (``distributed=True``: data-parallel
        over MPI; ``checkpoint=path, resume=True``: continue after the last finished epoch)."""
        return training.fit(self, X, y, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                            validation_data=validation_data, callbacks=callbacks,
                            shuffle=shuffle, verbose=verbose, threads=threads,
                            validation_split=validation_split, augment=augment,
                            distributed=distributed, checkpoint=checkpoint, resume=resume)

    def stochastic_gradient_descent(self, training_data, epochs, mini_batch_size, eta, test_data=None,
                                    verbose=1):
        """The seed's trainer on lists of ``(x (784,1), one_hot (10,1))`` tuples.

        Prints ``Epoch e: Test_data: c / n Train Cost = ... Test Cost = ...``
        per epoch, counting from 0 as the seed did (plain SGD with learning
        rate ``eta``); returns the history. ``verbose=0`` prints nothing.
        """
        return training.seed_sgd(self, training_data, epochs, mini_batch_size, eta, test_data,
                                 verbose=verbose)

    # -- inspection ----------------------------------------------------------------
    def summary(self):
        """A table of layers, output shapes, parameter counts and forward FLOPs per sample.

        A block's row holds its totals (its children's, plus a residual's
        addition), and its children follow, indented, under their qualified names.
        """
        rows = [("layer", "output shape", "params", "FLOPs")]
        rows.append(("input", shape_str(self.input_shape), "0", "0"))

        def add_rows(layer, depth):
            n = sum(p.data.size for p in layer.parameters())
            rows.append((f"{'  ' * depth}{layer.name} ({type(layer).__name__})", shape_str(layer.output_shape),
                         f"{n:,}", f"{layer.flops():,}"))
            for child in layer.children():
                add_rows(child, depth + 1)

        for layer in self.layers:
            add_rows(layer, 0)
        total = sum(p.data.size for p in self.parameters())
        flops = sum(layer.flops() for layer in self.layers)
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        line = "-" * (sum(widths) + 6)
        fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        body = [fmt(rows[0]), line] + [fmt(r) for r in rows[1:]] + [line]
        body.append(f"total: {total:,} parameters ({self.dtype.name}), {flops:,} FLOPs per sample, "
                    f"cost {self.cost.name}")
        return Summary("\n".join(body))

    def check_gradients(self, X, y=None, eps=1e-6, max_entries=30, verbose=True, method="finite_differences"):
        """Check every layer's backward, in float64, and report per layer.

        ``method="finite_differences"`` (default) compares with central
        differences of the full cost (``gradcheck.check_network``; needs ``y``);
        ``method="autodiff"`` compares every layer's forward and backward (blocks,
        and the layers inside them, included) with autodiff of the same forward
        written in Tensor ops (``layers.tensor_forms``), then the whole
        training step's parameter gradients with autodiff of the network's and
        the cost's forms (``autodiff.bridge.check_network_with_autodiff``; ``y``
        optional there: random soft targets by default). Returns rows
        ``{"layer", "what", "rel_error"}``.
        """
        if method == "autodiff":
            from .autodiff.bridge import check_network_with_autodiff
            return check_network_with_autodiff(self, X, y, verbose=verbose)
        if method != "finite_differences":
            raise ValueError(f"method must be 'finite_differences' or 'autodiff', got {method!r}")
        if y is None:
            raise ValueError("finite-difference checks need the labels y")
        from .gradcheck import check_network
        return check_network(self, X, y, eps=eps, max_entries=max_entries, verbose=verbose)

    # -- persistence ---------------------------------------------------------------
    def save(self, path):
        """Write the network to ``path``, in the format its extension names (parent folders are created).

        ``.safetensors`` (recommended): the weights, and the architecture as
        JSON; loading it runs no code (``persistence.save_safetensors``).
        Anything else: a pickle of the whole object, history included, as the seed did.
        """
        if persistence.is_safetensors_path(path):
            persistence.save_safetensors(self, path)
        else:
            persistence.save(self, path)

    @staticmethod
    def load(path):
        """Load a network saved by ``save``: a ``.safetensors`` file, or a pickle refusing anything but
        nnscratch and NumPy objects.

        Parameters
        ----------
        path : str or os.PathLike, a file written by ``save`` (or ``pickle.dump`` of a Network);
            the format is chosen by the extension, as in ``save``

        Returns
        -------
        Network

        Raises
        ------
        FileNotFoundError
            No file at ``path`` (an ``OSError``).
        IsADirectoryError
            ``path`` is a folder (an ``OSError``).
        nnscratch.persistence.NotANetworkFileError
            The file is not an nnscratch network file: empty, cut short, another
            format (a PNG, text...), or a pickle of something else (a ``ValueError``).
        UnsafePickleError
            The pickle names code outside nnscratch and NumPy's array rebuilders;
            nothing it names has run (a ``pickle.UnpicklingError`` and a ``ValueError``).

        A ``.safetensors`` file that is cut short, has no nnscratch architecture,
        names an unknown layer, or holds missing, extra or misshapen tensors is a
        ``NotANetworkFileError`` naming the file and what is wrong.
        Other ``OSError`` s (permission denied, say) come through unchanged.
        """
        if persistence.is_safetensors_path(path):
            return persistence.load_safetensors(path)
        net = persistence.load(path)
        if not isinstance(net, Network):
            raise persistence.NotANetworkFileError(
                f"{path} is not an nnscratch network file: it holds a {type(net).__name__}, not a Network")
        return net

    def __getstate__(self):
        # The generator is stored as its plain state dict, so a saved network
        # names no NumPy random classes and the safe loader can stay strict.
        state = self.__dict__.copy()
        state["rng"] = self.rng.bit_generator.state
        state.pop("optimizer", None)  # a saved network is its weights, not the optimizer's moments
        return state

    def __setstate__(self, state):
        rng_state = state.pop("rng")
        self.__dict__.update(state)
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = rng_state
        for _, layer in self.named_layers():  # dropout inside blocks shares the generator too
            if layer.uses_rng:
                layer.rng = self.rng

    def astype(self, dtype):
        """Cast every parameter (and batch-norm statistics, inside blocks too) to ``dtype`` in place; returns self."""
        self.dtype = np.dtype(dtype)
        for layer in self.layers:
            layer.astype(self.dtype)
        return self

    def __repr__(self):
        return f"Network(input_shape={self.input_shape}, layers={[l.name for l in self.layers]}, cost={self.cost.name})"
