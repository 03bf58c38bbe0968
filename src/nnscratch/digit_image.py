"""Turn a picture of a handwritten digit into an MNIST-style input vector.

MNIST digits were made from scanned black-and-white NIST digits: each was
size-normalised to fit a 20x20 box keeping its aspect ratio (anti-aliasing
turns it into grey levels), then put in a 28x28 field and translated so its
centre of mass is at the centre of the field.  The result is bright ink on a
black (0) background.  A network trained on MNIST works best on inputs made
the same way, so :func:`load_digit_image` repeats these steps for any PNG.
Uses Pillow and NumPy only.
"""

from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 28            # side of the output image
BOX = 20             # the longer side of the digit is scaled to this
INK_FRACTION = 0.05  # a pixel is ink if brighter than this fraction of the max
MIN_CONTRAST = 0.04  # weaker ink than this (0..1 scale) counts as a blank image
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601 weights, as Pillow's "L"


def _to_gray(img):
    """Return a 2-D float array in [0, 1] for a Pillow image of any mode.

    Images with transparency (RGBA, LA, PA, P with a transparent colour) are
    composited onto a plain background, because transparent pixels are
    background by definition.  The background colour is chosen to contrast
    with the ink: if the (mostly) opaque pixels are dark on average, e.g.
    black strokes on a transparent canvas, we composite over white;
    otherwise (light strokes) over black.  (So a light opaque "paper" with
    dark writing on a transparent surround is not supported.)
    """
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float64) / 255.0
        lum, alpha = rgba[..., :3] @ LUMA, rgba[..., 3]
        opaque = alpha >= 0.5
        dark_ink = opaque.any() and lum[opaque].mean() < 0.5
        background = 1.0 if dark_ink else 0.0
        return alpha * lum + (1.0 - alpha) * background
    return np.asarray(img.convert("L"), dtype=np.float64) / 255.0


def _shift(img, dy, dx):
    """Move `img` down by `dy` and right by `dx` pixels, filling with zeros."""
    h, w = img.shape
    padded = np.pad(img, ((h, h), (w, w)))
    return padded[h - dy:2 * h - dy, w - dx:2 * w - dx]


def preprocess_digit_array(gray):
    """Apply the MNIST preprocessing to a 2-D grayscale image.

    Parameters
    ----------
    gray : ndarray, shape (H, W)
        Grayscale image.  Integer arrays are read as 0..255; float and bool
        arrays as 0..1 (or as 0..255 if their maximum exceeds 1).  Either
        polarity (dark ink on light paper or light ink on dark) is accepted.

    Returns
    -------
    ndarray, shape (784,), float32
        The 28x28 digit, flattened row by row: ink near 1, background 0.

    Raises
    ------
    ValueError
        If the array is not 2-D, or the image contains no visible ink.

    Notes
    -----
    1. *Polarity.*  The median of the border pixels is taken to be the
       paper colour.  If it is light (> 0.5) the image is inverted so that
       ink is bright.  The paper level is then subtracted (and negative
       values clipped) so the background becomes exactly 0, and the image
       is divided by its maximum so the darkest ink becomes 1.
    2. *Crop.*  Pixels above ``INK_FRACTION`` of the maximum are ink; the
       image is cropped to the smallest rectangle containing all of them.
    3. *Scale.*  The crop is resized with Lanczos anti-aliasing so that its
       longer side is 20 pixels and the aspect ratio is kept.
    4. *Centre.*  The 20-pixel digit is pasted in the middle of a 28x28
       canvas.  Its centre of mass, with pixel intensities I[y, x] as
       weights,

           c_y = sum_{y,x} y * I[y, x] / sum_{y,x} I[y, x]
           c_x = sum_{y,x} x * I[y, x] / sum_{y,x} I[y, x]

       is moved to (14, 14) by the integer shift
       (round(14 - c_y), round(14 - c_x)).  MNIST's own digits have their
       centre of mass within half a pixel of (14, 14) in these row/column
       index coordinates.
    """
    g = np.asarray(gray)
    if g.ndim != 2 or g.size == 0:
        raise ValueError(f"expected a non-empty 2-D image, got shape {g.shape}")
    integer = np.issubdtype(g.dtype, np.integer)
    g = g.astype(np.float64) / (255.0 if integer else 1.0)
    if g.max() > 1.0:  # a float image given on the 0..255 scale
        g /= 255.0

    # 1. polarity: make the ink bright and the paper exactly 0
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    paper = np.median(border)
    if paper > 0.5:
        g, paper = 1.0 - g, 1.0 - paper
    g = np.clip(g - paper, 0.0, None)
    if g.max() < MIN_CONTRAST:
        raise ValueError("image is blank (no ink that differs from the "
                         "background was found)")
    g /= g.max()

    # 2. crop to the bounding box of the ink
    rows = np.flatnonzero((g > INK_FRACTION).any(axis=1))
    cols = np.flatnonzero((g > INK_FRACTION).any(axis=0))
    g = g[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]

    # 3. scale so the longer side is BOX pixels, keeping the aspect ratio
    h, w = g.shape
    scale = BOX / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    small = Image.fromarray(g.astype(np.float32))  # mode "F"
    small = small.resize((new_w, new_h), Image.Resampling.LANCZOS)
    digit = np.clip(np.asarray(small, dtype=np.float64), 0.0, None)
    digit /= digit.max()  # Lanczos can ring a little above 1; undo dimming

    # 4. paste in the middle of a 28x28 canvas, then centre the mass
    canvas = np.zeros((SIZE, SIZE))
    top, left = (SIZE - new_h) // 2, (SIZE - new_w) // 2
    canvas[top:top + new_h, left:left + new_w] = digit
    idx = np.arange(SIZE)
    mass = canvas.sum()
    cy = (canvas.sum(axis=1) * idx).sum() / mass
    cx = (canvas.sum(axis=0) * idx).sum() / mass
    canvas = _shift(canvas, round(SIZE / 2 - cy), round(SIZE / 2 - cx))
    return canvas.astype(np.float32).ravel()


def load_digit_image(path):
    """Load a PNG of a handwritten digit as an MNIST-style vector.

    Parameters
    ----------
    path : str or pathlib.Path
        A PNG of any size and mode (RGB, RGBA, L, LA, P, 1), dark ink on
        light paper or light ink on dark.  Transparent pixels count as
        background (see ``_to_gray`` for the compositing rule).

    Returns
    -------
    ndarray, shape (784,), float32
        Values in [0, 1], ink bright and background 0, preprocessed like
        MNIST (see :func:`preprocess_digit_array`).

    Raises
    ------
    ValueError
        If the file cannot be read, is not a PNG, or shows no digit.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            if img.format != "PNG":
                raise ValueError(f"{path}: not a PNG file "
                                 f"(Pillow reads it as {img.format})")
            gray = _to_gray(img)
    except (OSError, SyntaxError, Image.DecompressionBombError) as err:
        raise ValueError(f"{path}: cannot read as a PNG image ({err})") from err
    try:
        return preprocess_digit_array(gray)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
