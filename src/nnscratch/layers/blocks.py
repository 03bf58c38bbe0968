"""Blocks: layers made of layers. ``Sequential`` runs its children in order;
``Residual`` adds its input back, ``y = x + f(x)``, the unit of ResNets and
transformers.

For children ``l_1 ... l_k`` and a batch ``x`` (N, *S)::

    Sequential:   y = f(x) = l_k(... l_2(l_1(x)))
                  dx = J_f^T dy = J_1^T (... J_k^T dy)        (each child's backward, in reverse)

    Residual:     y = x + f(x)                                  (f must keep the shape S)
                  dx = dy + J_f^T dy                            (the identity path plus f's path)

A block is a layer: ``net.add(Residual(FullyConnected(64), ReLU(), FullyConnected(64)))``
builds it for the running shape, and blocks nest (a Residual inside a
Sequential inside a Residual). Its parameters are its children's, depth
first; it has none of its own.

Names (see ``base.numbered_name``): a block counts as kind ``block`` among
its siblings, so the network's blocks are ``block1, block2...`` beside
``fc1, relu1``; each block numbers its own children from 1 and qualifies
them with its name, so ``layer.name`` is the layer's full path:
``block1.fc1``, ``block1.block2.conv1``. Parameter keys add the parameter's
name: ``block1.fc1.W``. Networks without blocks keep their flat names.

Weight init across blocks (see ``base.link_auto_init``): an ``init="auto"``
dense or conv layer takes its scale from the next leaf in the order the
leaves run, inside a block, into one and out of one.
"""
import numpy as np

from .base import Layer, link_auto_init, numbered_name, shape_str, size_of


class Block(Layer):
    """What ``Sequential`` and ``Residual`` share: children built in order, parameters that recurse.

    Parameters
    ----------
    *layers : Layer
        The children, in forward order; at least one, each object once.

    Attributes
    ----------
    layers : list of Layer
        The children (``children()`` returns this list).
    """

    kind = "block"

    def __init__(self, *layers):
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            raise TypeError(f"{type(self).__name__} takes layers as arguments: "
                            f"{type(self).__name__}(a, b, c), or {type(self).__name__}(*layer_list)")
        if not layers:
            raise ValueError(f"{type(self).__name__} needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"{type(self).__name__} argument {i} must be a Layer, got {type(layer).__name__}")
        if len({id(layer) for layer in layers}) != len(layers):
            raise ValueError(f"{type(self).__name__} got the same layer object twice: "
                             f"create one layer per position (a layer holds its own weights and cache)")
        self.layers = list(layers)  # before Layer.__init__, whose needs_input_grad = True reaches layers[0]
        super().__init__()

    def children(self):
        return self.layers

    # Only the first child can be the network's very first leaf, so only it
    # inherits the block's flag; the others always compute their dx.
    @property
    def needs_input_grad(self):
        return self._needs_input_grad

    @needs_input_grad.setter
    def needs_input_grad(self, value):
        self._needs_input_grad = bool(value)
        self.layers[0].needs_input_grad = bool(value)

    def _build(self, input_shape, rng, dtype):
        """Build each child for the shape the one before it gives; returns the last one's output shape."""
        counts, shape, previous = {}, input_shape, None
        for layer in self.layers:
            layer.name = numbered_name(layer, counts, self.name)
            shape = layer.build(shape, rng, dtype)
            layer.needs_input_grad = True
            link_auto_init(previous, layer)
            previous = layer
        self.layers[0].needs_input_grad = self.needs_input_grad
        return shape

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]

    def astype(self, dtype):
        for layer in self.layers:  # each child casts its own state too (BatchNorm's running statistics)
            layer.astype(dtype)
        return self

    def flops(self):
        return sum(layer.flops() for layer in self.layers)

    def _forward_children(self, x, training):
        """f(x): each child's forward in order."""
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def _backward_children(self, dy):
        """J_f^T dy: each child's backward in reverse (None when the first child skips its dx)."""
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r}, layers={[layer.name for layer in self.layers]})"


class Sequential(Block):
    """The children in sequence, as one layer: ``y = l_k(... l_1(x))``.

    Shapes: ``x`` (N, *S_in) -> ``y`` (N, *S_out), whatever the children make
    of it. Backward: ``dx = J_1^T (... J_k^T dy)``, each child's backward in
    reverse order.

    Examples
    --------
    >>> net.add(Sequential(Conv2D(8, 3, padding="same"), BatchNorm(), ReLU()))
    """

    def forward(self, x, training=False):
        return self._forward_children(x, training)

    def backward(self, dy):
        return self._backward_children(dy)


class Residual(Block):
    """A skip connection around the children: ``y = x + f(x)``, f the children in sequence.

    Shapes: ``x``, ``f(x)`` and ``y`` are all (N, *S): f must keep the shape,
    which ``build`` checks. Backward, with ``dy`` (N, *S)::

        dx = dy + J_f^T dy      (the gradient flows both through f and around it)

    Examples
    --------
    >>> net.add_fc_layer(64); net.add_relu_layer()
    >>> net.add(Residual(FullyConnected(64), ReLU(), FullyConnected(64))); net.add_relu_layer()
    """

    def _build(self, input_shape, rng, dtype):
        shape = super()._build(input_shape, rng, dtype)
        if shape != input_shape:
            changer = next(layer for layer in self.layers if layer.output_shape != input_shape)
            raise ValueError(
                f"{self.name} (Residual) computes x + f(x), so f must keep the shape: input "
                f"{shape_str(input_shape)}, f gives {shape_str(shape)} ({changer.name} "
                f"({type(changer).__name__}) outputs {shape_str(changer.output_shape)})")
        return shape

    def forward(self, x, training=False):
        # A new array, not fx += x: f's last layer may hold fx as its cache
        # (ReLU, sigmoid keep their output), and a dropout in evaluation returns x itself.
        return x + self._forward_children(x, training)

    def backward(self, dy):
        dfx = self._backward_children(dy)           # J_f^T dy
        if dfx is None:                              # the network's first layer: nobody reads dx
            return None
        # dfx is a fresh array that only we hold, so the sum goes into it (no new
        # array) unless it is dy itself or a view of it (a dropout in evaluation
        # passes dy through), which the caller may still read.
        if dfx.flags.writeable and not np.may_share_memory(dfx, dy):
            dfx += dy
            return dfx                               # dx = dy + J_f^T dy
        return dy + dfx

    def flops(self):
        return super().flops() + size_of(self.output_shape)  # one addition per element
