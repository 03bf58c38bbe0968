"""Labels and targets, checked against the network's output: what ``fit`` and ``evaluate`` train and
score on (``prepare_targets``), and the classes an output predicts (``classes_of``)."""
import numbers

import numpy as np

from . import checks
from .layers.base import shape_matches, shape_str


def classes_of(out):
    """Predicted class ids from outputs (N, ..., K): argmax over K, or ``> 0.5`` when K = 1."""
    return (out[..., 0] > 0.5).astype(np.int64) if out.shape[-1] == 1 else out.argmax(axis=-1)


def prepare_targets(net, y, n, name="y"):
    """Check labels against the network and return ``(targets float, labels int)``.

    ``y`` may hold integer class ids, one per prediction ((N,) for an output
    (N, K), (N, T) for a sequence output (N, T, K)), or one-hot / real targets
    shaped like the output. Strings, non-integer class ids, NaN or infinite
    targets, a wrong length or shape raise ``ValueError`` naming ``name``.
    """
    out_shape = net.output_shape
    k = out_shape[-1]
    y = _numeric_labels(np.asarray(y), out_shape, name)
    if y.ndim == 0:
        raise ValueError(f"{name} must hold one label per sample, got the single value {y.item()!r}")
    if len(y) != n:
        raise ValueError(f"got {n} samples but {len(y)} labels")
    checks.require_finite(y, name)
    id_shape = (n,) + out_shape[:-1]
    is_ids = shape_matches(y.shape, id_shape)
    if is_ids and k > 1 and not np.issubdtype(y.dtype, np.integer):
        _require_integral(y, out_shape, name)
    integral = np.issubdtype(y.dtype, np.integer) or (is_ids and k > 1)
    if is_ids and integral:
        id_shape = y.shape
        y = y.astype(np.int64)
        classes = max(k, 2)
        if y.size and (y.min() < 0 or y.max() >= classes):
            raise ValueError(f"labels must be class ids in [0, {classes - 1}] for an output of "
                             f"shape {shape_str(out_shape)}, got values in [{y.min()}, {y.max()}]")
        if k == 1:
            return y.astype(net.dtype).reshape(id_shape + (1,)), y
        targets = np.zeros(id_shape + (k,), dtype=net.dtype)
        np.put_along_axis(targets, y[..., None], 1, axis=-1)
        return targets, y
    if y.ndim == 1 and out_shape == (1,):
        y = y.reshape(n, 1)
    if not shape_matches(y.shape[1:], out_shape):
        ids = "(N,)" if len(id_shape) == 1 else shape_str(id_shape[1:])
        raise ValueError(f"targets must be class ids of shape {ids} or shaped like the output "
                         f"{shape_str(out_shape)}, got {tuple(y.shape)}")
    targets = y.astype(net.dtype, copy=False)
    return targets, classes_of(targets)


def _class_ids_wanted(out_shape):
    return f"labels must be integer class ids in [0, {max(out_shape[-1], 2) - 1}]"


def _numeric_labels(y, out_shape, name):
    """``y`` as a numeric array; strings and other objects are refused, showing one of them."""
    if y.dtype.kind in "biuf":
        return y
    if y.dtype.kind == "O":
        odd = [v for v in y.flat if not isinstance(v, numbers.Real)][:1]
        if not odd:  # Python numbers in an object array
            return y.astype(np.float64)
        odd = odd[0]
    else:
        odd = y.reshape(-1)[0].item() if y.size else None
    raise ValueError(f"{name}: {_class_ids_wanted(out_shape)} (or one-hot / real targets), got "
                     f"values such as {odd!r} (dtype {y.dtype}); map class names "
                     f"to ids first, e.g. names, {name} = np.unique({name}, return_inverse=True)")


def _require_integral(y, out_shape, name):
    """Refuse real numbers where class ids are expected, showing the first one."""
    fractional = np.mod(y, 1) != 0
    if fractional.any():
        first = np.unravel_index(int(np.argmax(fractional)), y.shape)
        raise ValueError(f"{name}: {_class_ids_wanted(out_shape)} for an output of shape "
                         f"{shape_str(out_shape)}, got non-integer values such as {y[first].item()!r} "
                         f"(first at {checks.describe_index(first)})")
