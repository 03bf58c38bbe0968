"""Export a trained network to an ONNX file, to run it without nnscratch (onnxruntime, a browser, a phone).

``export(net, path)`` (or ``net.export_onnx(path)``) writes one file whose graph
computes ``net.predict_proba``: input ``"input"`` (N, *input_shape), output
``"probabilities"`` (N, K), with a free batch size N. It is built with the
``onnx`` package (``pip install onnx``), which nnscratch itself does not need.

Each layer becomes the ONNX operators below, in evaluation mode; the weights
go in as initializers named as in ``net.state_dict()`` (``fc1.W``), in the
layouts ONNX expects, which are PyTorch's and ours::

    nnscratch layer   ONNX nodes
    ---------------   ------------------------------------------------------------
    FullyConnected    Gemm(x, W, b, transB=1) on (N, D);  MatMul(x, Wᵀ), Add(b) on (N, T, D)
    ReLU              Relu
    Sigmoid           Sigmoid
    Tanh              Tanh
    LeakyReLU         LeakyRelu(alpha=negative_slope)
    Softmax           Softmax(axis=-1)
    Dropout           none: evaluation is y = x
    BatchNorm         BatchNormalization(x, gamma, beta, running_mean, running_var, epsilon)
                      on (N, D) or (N, C, H, W): the inference form, running statistics
    Conv2D            Conv(x, W, b, kernel_shape, strides, pads=[top, left, bottom, right])
    MaxPool2D         MaxPool(kernel_shape=size, strides)
    AvgPool2D         AveragePool(kernel_shape=size, strides)   (no padding: nothing to count)
    Flatten           Flatten(axis=1), C-H-W order, as ours and PyTorch's

    cost              after the last layer
    ---------------   ------------------------------------------------------------
    cross_entropy_logits   Softmax(axis=-1): predict_proba's softmax of the logits
    the others        none: predict_proba is the last layer's output

Any other layer (recurrent layers, attention, Embedding, LayerNorm, GELU, the
blocks Sequential and Residual) is refused with a ValueError naming it, before
anything is written.

The graph keeps the network's dtype: float32 gives a float32 graph, float64 a
float64 one (within ~1e-10: ONNX stores the attributes ``epsilon`` and
``alpha`` as float32). onnxruntime's CPU Conv runs float32 only, so for it
export a float32 copy of a float64 CNN: ``copy.deepcopy(net).astype(np.float32)``.
"""
import os

from . import __version__
from .costs import Cost, CrossEntropyLogits
from .layers import (AvgPool2D, BatchNorm, Conv2D, Dropout, Flatten, FullyConnected, LeakyReLU, MaxPool2D,
                     ReLU, Sigmoid, Softmax, Tanh)

#: Opsets from 14 on: there BatchNormalization runs the inference form by default
#: (``training_mode=0``). Before 14 the form follows from its number of outputs, and
#: onnx's own reference evaluator runs the training form at opset 13 (batch statistics:
#: probabilities off by 7e-3 in the tests' image net; onnxruntime gets it right).
MIN_OPSET = 14


# -- each layer as steps: (ONNX op, {initializer suffix: array}, {attribute: value}) ----------
def _fully_connected(layer):
    if len(layer.input_shape) == 1:  # (N, D): y = x Wᵀ + b in one Gemm
        return [("Gemm", {"W": layer.W.data, "b": layer.b.data}, {"transB": 1})]
    return [("MatMul", {"W_T": layer.W.data.T}, {}), ("Add", {"b": layer.b.data}, {})]  # (N, T, D) @ (D, U)


def _batch_norm(layer):
    weights = {"gamma": layer.gamma.data, "beta": layer.beta.data,
               "running_mean": layer.running_mean, "running_var": layer.running_var}
    return [("BatchNormalization", weights, {"epsilon": layer.eps})]


def _conv(layer):
    (top, bottom), (left, right) = layer.pads
    attributes = {"kernel_shape": list(layer.kernel), "strides": list(layer.stride),
                  "pads": [top, left, bottom, right]}  # ONNX: every axis' start, then every axis' end
    return [("Conv", {"W": layer.W.data, "b": layer.b.data}, attributes)]


def _pool(op):
    return lambda layer: [(op, {}, {"kernel_shape": list(layer.size), "strides": list(layer.stride)})]


def _plain(op, **attributes):
    return lambda layer: [(op, {}, attributes)]


STEPS = {
    FullyConnected: _fully_connected,
    ReLU: _plain("Relu"),
    Sigmoid: _plain("Sigmoid"),
    Tanh: _plain("Tanh"),
    LeakyReLU: lambda layer: [("LeakyRelu", {}, {"alpha": layer.negative_slope})],
    Softmax: _plain("Softmax", axis=-1),
    Dropout: lambda layer: [],
    BatchNorm: _batch_norm,
    Conv2D: _conv,
    MaxPool2D: _pool("MaxPool"),
    AvgPool2D: _pool("AveragePool"),
    Flatten: _plain("Flatten", axis=1),
}

#: What ``cost.probabilities`` does, as steps after the last layer (looked up by the method itself,
#: so a cost class that redefines it is refused rather than guessed at).
OUTPUT_STEPS = {
    Cost.probabilities: [],
    CrossEntropyLogits.probabilities: [("Softmax", {}, {"axis": -1})],
}


# -- checks before any work ---------------------------------------------------------------------
def _require_onnx():
    try:
        import onnx
    except ImportError as error:
        raise ImportError("ONNX export needs the onnx package: pip install onnx") from error
    return onnx


def _check_exportable(net, opset, newest_opset):
    """Raise a ValueError for an opset out of range, a network without layers,
    a layer with no ONNX form (named, with the kinds that have one) or a cost
    whose probabilities have none."""
    if not MIN_OPSET <= opset <= newest_opset:
        raise ValueError(f"opset must be between {MIN_OPSET} and {newest_opset} (this onnx), got {opset!r}")
    if not net.layers:
        raise ValueError("the network has no layers: there is nothing to export")
    supported = ", ".join(sorted(kind.__name__ for kind in STEPS))
    for layer in net.layers:
        if type(layer) not in STEPS:  # exact classes: a subclass may compute something else
            raise ValueError(f"{layer.name} ({type(layer).__name__}) has no ONNX export; "
                             f"supported layers: {supported}")
    if type(net.cost).probabilities not in OUTPUT_STEPS:
        raise ValueError(f"cost {net.cost.name} ({type(net.cost).__name__}) defines its own probabilities, "
                         f"which have no ONNX export; costs that do: cross_entropy_logits and those "
                         f"whose probabilities are the outputs")


# -- building the graph -------------------------------------------------------------------------
def _dims(shape):
    """ONNX dimensions of a batch: "N", then the per-sample shape (a free length as "T")."""
    return ["N"] + ["T" if size is None else size for size in shape]


def _named_steps(net):
    """``(node name, op, {initializer name: array}, attributes)`` for the whole network, in order."""
    named = []
    for layer in net.layers:
        steps = STEPS[type(layer)](layer)
        for op, weights, attributes in steps:
            node = layer.name if len(steps) == 1 else f"{layer.name}.{op}"
            named.append((node, op, {f"{layer.name}.{k}": w for k, w in weights.items()}, attributes))
    for op, weights, attributes in OUTPUT_STEPS[type(net.cost).probabilities]:
        named.append(("probabilities", op, weights, attributes))
    return named


def _graph(net):
    """The ONNX graph: one node per step, each reading the previous one's output."""
    from onnx import helper, numpy_helper

    nodes, initializers, current = [], [], "input"
    for node, op, weights, attributes in _named_steps(net):
        initializers += [numpy_helper.from_array(w.astype(net.dtype), name) for name, w in weights.items()]
        nodes.append(helper.make_node(op, [current, *weights], [node], name=node, **attributes))
        current = node
    if nodes:
        nodes[-1].output[0] = "probabilities"  # the last step's output is the graph's
    else:  # only dropouts: the probabilities are the input
        nodes.append(helper.make_node("Identity", ["input"], ["probabilities"], name="probabilities"))
    element = helper.np_dtype_to_tensor_dtype(net.dtype)
    inputs = [helper.make_tensor_value_info("input", element, _dims(net.input_shape))]
    outputs = [helper.make_tensor_value_info("probabilities", element, _dims(net.output_shape))]
    return helper.make_graph(nodes, "nnscratch", inputs, outputs, initializers)


def _model(net, opset):
    """The graph as a model: the opset, the oldest IR version that carries it (so older
    runtimes load the file), the producer, the summary (``doc_string``) and the cost."""
    from onnx import helper

    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(_graph(net), opset_imports=opsets, producer_name="nnscratch",
                              producer_version=__version__, ir_version=helper.find_min_ir_version_for(opsets),
                              doc_string=str(net.summary()))
    helper.set_model_props(model, {"cost": net.cost.name})
    return model


def export(net, path, opset=17):
    """Write ``net`` as an ONNX model computing ``net.predict_proba``.

    Parameters
    ----------
    net : Network
        A network of the layers in this module's table (top level, no blocks).
    path : str or os.PathLike
        The file to write (``.onnx``); parent folders are created.
    opset : int
        The ONNX operator set, from 14 to the newest this ``onnx`` knows (17 by default).

    Returns
    -------
    path : the ``path`` given

    Raises
    ------
    ImportError
        ``onnx`` is not installed (``pip install onnx``).
    ValueError
        A layer or cost with no ONNX form (the layer named), no layers, or an
        opset out of range; nothing is written.
    """
    onnx = _require_onnx()
    _check_exportable(net, opset, onnx.defs.onnx_opset_version())
    model = _model(net, opset)
    onnx.checker.check_model(model, full_check=True)  # shapes too: a bad attribute fails here, not later
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    onnx.save_model(model, os.fspath(path))
    return path
