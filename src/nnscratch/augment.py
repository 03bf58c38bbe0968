"""Random shifts, rotations and scaling of image batches, for training (``fit(..., augment=...)``).

Every transform is an affine map of the plane, one per image, so a chain of
them (``Compose``) is one 2 x 3 matrix per image and the batch is resampled
once. With output pixel (i, j) at centred coordinates p = (j - c_x, i - c_y),
the image is read at::

    q = A p + t          (A 2 x 2, t the shift; q in the input's centred coordinates)

by bilinear interpolation between the four pixels around q, zero outside
the image (``warp``). A shift by whole pixels reads whole pixels, so it is
exact. The parameters are drawn from the generator ``fit`` passes (the
network's), so one seed gives one run.

Shapes: a batch (N, C, H, W) or (N, H, W) in, the same shape and dtype out.
"""
import numpy as np


def warp(images, matrices):
    """Resample each image of ``images`` (N, C, H, W) through its own map ``matrices`` (N, 2, 3).

    Output pixel (i, j) takes the bilinear value of its image at
    ``q = A (j - c_x, i - c_y) + t + (c_x, c_y)`` (columns x, rows y, c the centre),
    zero outside the image: ``top = v00 + f_x (v01 - v00)``, ``bottom`` likewise one row
    down, ``value = top + f_y (bottom - top)``, with v the four pixels around q.
    """
    n, c, h, w = images.shape
    dtype = images.dtype
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    rows, cols = np.mgrid[0:h, 0:w]
    points = np.stack([cols.ravel() - cx, rows.ravel() - cy]).astype(dtype)     # (2, H·W) centred
    q = matrices[:, :, :2].astype(dtype) @ points + matrices[:, :, 2:].astype(dtype)   # (N, 2, H·W)
    x, y = q[:, 0] + dtype.type(cx), q[:, 1] + dtype.type(cy)                     # input column, row
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]                                # (N, 1, H·W) weights
    # Two zero pixels around the image: a point further out is clipped to where all four of
    # its pixels are zero, so every index is valid and the outside reads 0.
    width = w + 4
    x0 = np.clip(x0, -2, w).astype(np.intp) + 2
    y0 = np.clip(y0, -2, h).astype(np.intp) + 2
    padded = np.zeros((n, c, h + 4, width), dtype=dtype)
    padded[:, :, 2:-2, 2:-2] = images
    flat = padded.ravel()
    per_image = (h + 4) * width
    # index of pixel (y0, x0) of image k, channel ch in the flat array: (N, C, H·W)
    corner = ((np.arange(n * c) * per_image).reshape(n, c, 1) + (y0 * width + x0)[:, None, :])
    v00, v01, v10, v11 = (flat.take(corner + offset) for offset in (0, 1, width, width + 1))
    top = v01 - v00
    top *= fx
    top += v00
    bottom = v11 - v10
    bottom *= fx
    bottom += v10
    bottom -= top
    bottom *= fy
    bottom += top
    return bottom.reshape(n, c, h, w)


class Transform:
    """An image transform: ``matrices(n, rng)`` draws n maps (n, 2, 3); calling it on a batch
    draws and applies them."""

    def matrices(self, n, rng):
        raise NotImplementedError

    def __call__(self, images, rng):
        """``images`` (N, C, H, W) or (N, H, W), transformed with maps drawn from ``rng``."""
        images = np.asarray(images)
        if images.ndim not in (3, 4) or images.dtype.kind != "f":
            raise ValueError(f"augmentation expects float images (N, C, H, W) or (N, H, W), "
                             f"got {images.dtype} of shape {images.shape}")
        batch = images[:, None] if images.ndim == 3 else images
        out = warp(batch, self.matrices(len(batch), rng))
        return out[:, 0] if images.ndim == 3 else out

    def __repr__(self):
        settings = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({settings})"


def _identity(n):
    m = np.zeros((n, 2, 3))
    m[:, 0, 0] = m[:, 1, 1] = 1.0
    return m


class RandomShift(Transform):
    """Shift each image by whole pixels, drawn uniformly from -``pixels`` .. ``pixels`` on each axis."""

    def __init__(self, pixels=2):
        if int(pixels) != pixels or pixels < 0:
            raise ValueError(f"pixels must be a non-negative integer, got {pixels!r}")
        self.pixels = int(pixels)

    def matrices(self, n, rng):
        m = _identity(n)
        m[:, :, 2] = -rng.integers(-self.pixels, self.pixels + 1, (n, 2))        # read from p - shift
        return m


class RandomRotation(Transform):
    """Rotate each image about its centre by an angle drawn uniformly from ±``degrees``."""

    def __init__(self, degrees=10.0):
        if not degrees >= 0:
            raise ValueError(f"degrees must be >= 0, got {degrees!r}")
        self.degrees = float(degrees)

    def matrices(self, n, rng):
        angle = np.radians(rng.uniform(-self.degrees, self.degrees, n))
        cos, sin = np.cos(angle), np.sin(angle)
        m = np.zeros((n, 2, 3))
        m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = cos, sin, -sin, cos     # the inverse rotation
        return m


class RandomScale(Transform):
    """Zoom each image about its centre by a factor drawn uniformly from ``(low, high)``."""

    def __init__(self, low=0.9, high=1.1):
        if not 0 < low <= high:
            raise ValueError(f"scale factors must satisfy 0 < low <= high, got ({low!r}, {high!r})")
        self.low, self.high = float(low), float(high)

    def matrices(self, n, rng):
        m = np.zeros((n, 2, 3))
        m[:, 0, 0] = m[:, 1, 1] = 1.0 / rng.uniform(self.low, self.high, n)     # read closer in to zoom in
        return m


class Compose(Transform):
    """Several transforms, the first applied first, as one map per image (one resampling)."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        if not all(isinstance(t, Transform) for t in self.transforms):
            raise ValueError("Compose takes augment transforms (RandomShift, RandomRotation, RandomScale, ...)")

    def matrices(self, n, rng):
        total = _identity(n)
        for transform in self.transforms:
            # output = T_k(... T_1(x)): reading goes through the maps last first, so the
            # composed read map is M_1 ∘ ... ∘ M_k
            m = transform.matrices(n, rng)
            linear = total[:, :, :2] @ m[:, :, :2]
            shift = total[:, :, :2] @ m[:, :, 2:] + total[:, :, 2:]
            total = np.concatenate([linear, shift], axis=2)
        return total


def mnist_augmentation():
    """The CNN's default: rotation ±10°, scale 0.9-1.1, shift ±2 pixels."""
    return Compose([RandomRotation(10), RandomScale(0.9, 1.1), RandomShift(2)])


