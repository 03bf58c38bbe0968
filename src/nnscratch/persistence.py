"""Saving and loading networks: safetensors (recommended) and pickle.

``.safetensors`` files hold the weights as tensors and the architecture as
JSON in the header's metadata (``architecture.describe``): loading parses
the JSON, rebuilds the layers from a fixed table and copies the tensors in;
no code from the file runs, and nothing but nnscratch can be built. Other
tools read the tensors (safetensors is Hugging Face's format; the names are
``state_dict()``'s: ``fc1.W``, ``batchnorm1.running_mean``). The training
history and the optimizer are not kept: a file is the trained network.

Pickles keep the whole Python object (history included), as the seed did.

``pickle.load`` will call any function a file names, so a pickle from
someone else can run any code. ``load`` uses a restricted unpickler that
resolves exactly these globals and refuses every other one before it is
called (``UnsafePickleError``):

- classes defined in nnscratch's own modules (``nnscratch.network.Network``,
  the layers, costs, ...), looked up by their plain name in an nnscratch
  module (no dotted paths through a module to something else);
- the seed's four cost functions (``quadratic_cost``, ``quadratic_cost_prime``,
  ``cross_entropy_cost``, ``cross_entropy_cost_prime_SM``);
- NumPy's array machinery: ``numpy.ndarray``, ``numpy.dtype``, the
  ``_reconstruct``, ``scalar`` and ``_frombuffer`` rebuilders (under both
  ``numpy.core`` and ``numpy._core``), the scalar types float32, float64,
  int64, int32, bool_ and uint8 and their ``numpy.dtypes`` classes.

Nothing else: no NumPy random generators (a saved network stores its
generator's state as a plain dict, see ``Network.__getstate__``), no
builtins, no functions of other packages.
"""
import json
import os
import pickle

import numpy as np

from . import architecture, costs

# NumPy's (module, name) pairs that pickled arrays, scalars and dtypes need.
_NUMPY_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}
_NUMPY_ALLOWED |= {("numpy", name) for name in ("float32", "float64", "int64", "int32", "bool_", "uint8")}
_NUMPY_ALLOWED |= {("numpy.dtypes", name) for name in ("Float32DType", "Float64DType", "Int64DType",
                                                        "Int32DType", "BoolDType", "UInt8DType")}
_SEED_FUNCTIONS = {costs.quadratic_cost, costs.quadratic_cost_prime, costs.cross_entropy_cost,
                   costs.cross_entropy_cost_prime_SM}


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """The file names something outside nnscratch and NumPy's array machinery.

    Also a ``ValueError``, so one ``except ValueError`` catches every file
    that is not a loadable network.
    """


class NotANetworkFileError(ValueError):
    """The file is not an nnscratch network file: empty, cut short, or another format."""


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that resolves only nnscratch classes and NumPy's rebuilders."""

    def find_class(self, module, name):
        if (module, name) in _NUMPY_ALLOWED:
            return super().find_class(module, name)
        if (module == "nnscratch" or module.startswith("nnscratch.")) and "." not in name:
            obj = super().find_class(module, name)
            if isinstance(obj, type) and obj.__module__.startswith("nnscratch"):
                return obj
            if obj in _SEED_FUNCTIONS:
                return obj
        raise UnsafePickleError(
            f"refusing to load {module}.{name}: a network file may only name nnscratch classes "
            f"and NumPy arrays (this file may run code; only use pickle.load on files you trust)")


def _make_parent_folder(path):
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)


def save(obj, path):
    """Pickle ``obj`` to ``path``, creating parent folders."""
    _make_parent_folder(path)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)


def load(path):
    """Unpickle ``path`` with ``SafeUnpickler``.

    Raises ``FileNotFoundError`` or ``IsADirectoryError`` when ``path`` is not
    a file, ``UnsafePickleError`` when the pickle names anything but nnscratch
    and NumPy's array rebuilders, and ``NotANetworkFileError`` (a ``ValueError``)
    for anything else that does not load: an empty file, a cut-short pickle,
    a PNG or a text file. Each message names the file.
    """
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder, not an nnscratch network file")
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(f"no network file at {path}: check the path (a network is written "
                                f"by net.save(path))") from None
    with f:
        head = f.read(16)
        if not head:
            raise NotANetworkFileError(f"{path} is empty (0 bytes), not an nnscratch network file")
        f.seek(0)
        try:
            return SafeUnpickler(f).load()
        except UnsafePickleError:
            raise
        except Exception as e:  # a damaged or foreign file can fail in many ways; each means the same
            raise NotANetworkFileError(f"{path} is not an nnscratch network file: "
                                       f"{_what_it_looks_like(head, e)}") from e


def is_safetensors_path(path):
    """Is ``path`` named as a safetensors file (``.safetensors``)? The format is chosen by the name."""
    return os.fspath(path).lower().endswith(".safetensors")


def _safetensors():
    try:
        import safetensors.numpy
    except ImportError:
        raise ImportError("saving or loading .safetensors files needs the safetensors package: "
                          "pip install safetensors") from None
    return safetensors


def save_safetensors(net, path):
    """Write ``net``'s tensors (``state_dict()``) and its architecture (JSON, metadata key "nnscratch")."""
    safetensors = _safetensors()
    description = json.dumps(architecture.describe(net))
    tensors = {key: np.ascontiguousarray(value) for key, value in net.state_dict().items()}
    tensors.update({key: np.array(layer.num_batches_tracked, dtype=np.int64)
                    for key, layer in _batch_counters(net).items()})
    _make_parent_folder(path)
    safetensors.numpy.save_file(tensors, os.fspath(path), metadata={architecture.FORMAT: description})


def load_safetensors(path):
    """Rebuild the network a ``save_safetensors`` file describes and copy its tensors in.

    Raises ``NotANetworkFileError`` (a ``ValueError``) naming the file when it
    is not a safetensors file (truncated, another format), has no nnscratch
    architecture, describes layers the library does not have, or holds
    tensors that do not fit it (missing, unexpected, wrong shape or dtype).
    """
    safetensors = _safetensors()
    _require_file(path)
    try:
        with safetensors.safe_open(os.fspath(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except safetensors.SafetensorError as err:
        raise NotANetworkFileError(f"{path} is not a readable safetensors file: {err}") from None
    if architecture.FORMAT not in metadata:
        raise NotANetworkFileError(f"{path} is a safetensors file without an nnscratch architecture in its "
                                   f"metadata (keys: {sorted(metadata) or 'none'}): not written by net.save")
    try:
        net = architecture.rebuild(json.loads(metadata[architecture.FORMAT]))
    except json.JSONDecodeError as err:
        raise NotANetworkFileError(f"{path}: its architecture is not valid JSON ({err})") from None
    except architecture.ArchitectureError as err:
        raise NotANetworkFileError(f"{path}: {err}") from None
    counters = _batch_counters(net)
    expected = dict(net.state_dict(), **{key: np.array(0, dtype=np.int64) for key in counters})
    _check_tensors(expected, tensors, path)
    net.load_state_dict(tensors)
    for key, layer in counters.items():
        layer.num_batches_tracked = int(tensors[key])
    return net


def _batch_counters(net):
    """``{"<layer>.num_batches_tracked": layer}`` for the batch-norm layers: the one integer state a
    network has beside its arrays (PyTorch keeps it too), stored as a 0-d int64 tensor."""
    return {f"{name}.num_batches_tracked": layer for name, layer in net.named_layers()
            if hasattr(layer, "num_batches_tracked")}


def _check_tensors(expected, found, path):
    """Every tensor the architecture needs, of its shape and dtype, and no others."""
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or unexpected:
        raise NotANetworkFileError(f"{path}: the tensors do not fit the architecture: "
                                   f"missing {missing[:6] or 'none'}, unexpected {unexpected[:6] or 'none'}")
    for key, want in expected.items():
        got = found[key]
        if got.shape != want.shape or got.dtype != want.dtype:
            raise NotANetworkFileError(f"{path}: tensor {key} is {got.dtype} {got.shape}, the architecture "
                                       f"needs {want.dtype} {want.shape}")


def _require_file(path):
    """Clear errors for a missing path or a folder."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder, not an nnscratch network file")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no network file at {path}: check the path (a network is written "
                                f"by net.save(path))")


# The first bytes of formats people mistake for a network file.
_MAGIC = [(b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
          (b"\x1f\x8b", "gzip-compressed data"), (b"PK\x03\x04", "a zip archive (an .npz?)"),
          (b"\x93NUMPY", "a NumPy .npy array")]


def _what_it_looks_like(head, error):
    """A short guess at what a file that failed to unpickle holds, from its first bytes."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return f"it is {kind}"
    if head.startswith(b"\x80"):  # the PROTO opcode that starts every pickle of protocol 2 or later
        return (f"it is a pickle that does not load ({type(error).__name__}: {error}): "
                f"cut short, damaged, or written by another version of nnscratch")
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        text = ""
    if text and all(c.isprintable() or c.isspace() for c in text):
        return f"it holds text ({text!r}...)"
    return f"its first bytes are {head[:8]!r} ({type(error).__name__}: {error})"


__all__ = ["save", "load", "save_safetensors", "load_safetensors", "is_safetensors_path", "SafeUnpickler",
           "UnsafePickleError", "NotANetworkFileError"]
