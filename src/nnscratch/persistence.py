"""Saving and loading networks with pickle, and loading them safely.

``pickle.load`` will call any function a file names, so a pickle from
someone else can run any code. ``load`` uses a restricted unpickler: the
only globals it will resolve are nnscratch's own classes (and the seed's cost
functions) and the handful of NumPy callables that rebuild arrays, dtypes and
random generators. Anything else is refused before it is called.
"""
import os
import pickle

from . import costs

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


class UnsafePickleError(pickle.UnpicklingError):
    """The file names something outside nnscratch and NumPy's array machinery."""


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


def save(obj, path):
    """Pickle ``obj`` to ``path``, creating parent folders."""
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)


def load(path):
    """Unpickle ``path`` with ``SafeUnpickler``; raises ``UnsafePickleError`` on anything else."""
    with open(path, "rb") as f:
        try:
            return SafeUnpickler(f).load()
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as e:
            raise ValueError(f"{path} is not a readable nnscratch network: {e}") from e


__all__ = ["save", "load", "SafeUnpickler", "UnsafePickleError"]
