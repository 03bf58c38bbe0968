"""Turn a picture of a handwritten digit into an MNIST-style input vector.

MNIST digits were made from scanned black-and-white NIST digits: each was
size-normalised to fit a 20x20 box keeping its aspect ratio (anti-aliasing
turns it into grey levels), then put in a 28x28 field and translated so its
centre of mass is at the centre of the field.  The result is bright ink on a
black (0) background.  A network trained on MNIST works best on inputs made
the same way, so :func:`load_digit_image` repeats these steps for any image
Pillow can read.

A digit pencilled on real paper and photographed or scanned is not clean
black on white: the paper is grey, unevenly lit and noisy, and has specks.
Before the MNIST steps, :func:`preprocess_digit_array` therefore finds the
ink: it measures the paper's noise, fits and removes its shading, keeps what
stands out of the noise in large connected pieces, and sets everything else
to exactly 0.  On a clean drawing these steps change nothing but stray
specks.

NumPy does all the work; Pillow reads the files and does the Lanczos
resize.  Pillow is imported only when it is needed, so ``import nnscratch``
works without it.
"""

import math
from collections import deque
from pathlib import Path

import numpy as np

SIZE = 28            # side of the output image
BOX = 20             # the longer side of the digit is scaled to this
INK_FRACTION = 0.05  # a pixel is ink if brighter than this fraction of the max
MIN_CONTRAST = 0.04  # weaker ink than this (0..1 scale) counts as a blank image
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601 weights, as Pillow's "L"
DRAFT_SIDE = 1024    # a big JPEG is decoded smaller, but not below this many pixels a side

# Finding the ink on real paper (see preprocess_digit_array, steps 1-5).
WORK_SIDE = 128          # steps 1-4 work on a copy averaged down to at most this side
PAPER_DEGREE = 4         # degree of the polynomial surface fitted to the paper's shading
FIT_SIDE = 64            # ... fitted to a sample of at most this many pixels a side
PAPER_FIT_ROUNDS = 6     # rounds of "pick the paper, fit it": degrees 1, 2, 3, 4, 4, 4
TRIM_SIGMAS = 3.0        # a pixel further than this many noise sigmas from the fit is not paper
MAD_TO_SIGMA = 1.4826    # sigma = 1.4826 * median absolute deviation, for Gaussian noise
MIN_SIGMA = 0.29 / 255   # the least noise assumed: 8-bit rounding alone has sigma = 1/sqrt(12) level
NOISE_SIGMAS = 4.0       # ink stands out from the paper by more than this many noise sigmas
MIN_LIGHT = 0.2          # ink in shade is strengthened by 1 / light, but by at most 1 / MIN_LIGHT
PART_FRACTION = 0.05     # a piece with less than this fraction of the biggest piece's ink is a speck
MIN_DIGIT_PIXELS = 4     # a digit's biggest piece has at least this many (block) pixels; noise has fewer
BLANK = "image is blank (no ink that differs from the background was found)"


def _pillow():
    """Import Pillow's Image module, or say clearly that it is needed."""
    try:
        from PIL import Image
    except ImportError as err:
        raise ImportError("nnscratch.digit_image needs Pillow to read and resize images: "
                          "pip install Pillow") from err
    return Image


# -- reading a file ---------------------------------------------------------------

def _to_gray(img):
    """Return a 2-D grey array for a Pillow image of any mode: uint8 (0..255) or float (0..1).

    Images with transparency (RGBA, LA, PA, P with a transparent colour) are
    composited onto a plain background, because transparent pixels are
    background by definition.  The background colour is chosen to contrast
    with the ink: if the (mostly) opaque pixels are dark on average, e.g.
    black strokes on a transparent canvas, we composite over white;
    otherwise (light strokes) over black.  (So a light opaque "paper" with
    dark writing on a transparent surround is not supported.)  Integer
    modes with more than 8 bits ("I;16" PNGs, "I" TIFFs) are scaled by
    their range, which Pillow's own conversion to "L" would clip.
    """
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float64) / 255.0
        lum, alpha = rgba[..., :3] @ LUMA, rgba[..., 3]
        opaque = alpha >= 0.5
        dark_ink = opaque.any() and lum[opaque].mean() < 0.5
        background = 1.0 if dark_ink else 0.0
        return alpha * lum + (1.0 - alpha) * background
    if img.mode.startswith("I"):  # "I;16..." are 16-bit; "I" (32-bit) may hold 8 or 16 bits
        values = np.asarray(img, dtype=np.float64)
        sixteen_bits = img.mode.startswith("I;16") or values.max() > 255
        return values / (65535.0 if sixteen_bits else 255.0)
    if img.mode == "F":  # 32-bit floats: preprocess_digit_array reads their scale
        return np.asarray(img, dtype=np.float64)
    return np.asarray(img.convert("L"))  # uint8: preprocess_digit_array scales it in one pass


def _read_gray(path):
    """Read the first frame of any image Pillow reads, upright, as in ``_to_gray``."""
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not an image file")
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    Image = _pillow()
    from PIL import ImageOps
    try:
        with Image.open(path) as img:  # an animation opens at its first frame
            # a JPEG decodes at 1/2, 1/4 or 1/8 size straight from its DCT blocks: a 12 Mpx
            # phone photo then loads in about half the time (the other formats ignore this)
            img.draft(None, (DRAFT_SIDE, DRAFT_SIDE))
            img.load()
            # a phone saves a photo as the sensor saw it, with an EXIF note of how to
            # turn it upright: follow it, or a digit shot sideways is read sideways
            return _to_gray(ImageOps.exif_transpose(img))
    except Image.UnidentifiedImageError:
        raise ValueError(f"{path}: not an image file (Pillow does not recognise its "
                         "format)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"{path}: cannot read the image ({err})") from err


def load_digit_image(path):
    """Load a picture of a handwritten digit as an MNIST-style vector.

    Parameters
    ----------
    path : str or pathlib.Path
        Any still image Pillow reads (PNG, JPEG, BMP, GIF, TIFF, WebP, ...;
        of an animation the first frame), of any size and mode: a clean
        drawing, or a photo or scan of a digit written on paper, dark ink on
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
        If the path is missing or a directory, the file is not an image
        Pillow can read, or the image shows no digit.  The message names
        the file.
    ImportError
        If Pillow is not installed.
    """
    path = Path(path)
    gray = _read_gray(path)
    try:
        return preprocess_digit_array(gray)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def digit_from_bytes(data, name="the upload", max_pixels=None):
    """:func:`load_digit_image` for an image file's bytes (an upload) instead of its path.

    Parameters
    ----------
    data : bytes
        The whole image file, in any format Pillow reads.
    name : str
        What to call the image in error messages.
    max_pixels : int, optional
        Refuse an image with more pixels than this (after a JPEG's reduced
        decoding), before decoding it: a server's guard against a small file
        that unpacks into a huge array.  None: only Pillow's own limit.

    Returns
    -------
    ndarray, shape (784,), float32, as :func:`load_digit_image`.

    Raises
    ------
    ValueError
        If ``data`` is empty or not an image Pillow can read (the message
        names ``name``), or the image shows no digit (the message ends with
        ``BLANK``).
    """
    import io
    Image = _pillow()
    from PIL import ImageOps
    if not data:
        raise ValueError(f"{name}: is empty (0 bytes), not an image file")
    gray = None
    try:  # the steps of _read_gray, on an in-memory file
        with Image.open(io.BytesIO(data)) as img:  # reads the header only
            img.draft(None, (DRAFT_SIDE, DRAFT_SIDE))
            width, height = img.size
            if max_pixels is None or width * height <= max_pixels:
                img.load()
                gray = _to_gray(ImageOps.exif_transpose(img))
    except Image.UnidentifiedImageError:
        raise ValueError(f"{name}: not an image file (Pillow does not recognise its format)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"{name}: cannot read the image ({err})") from err
    if gray is None:
        raise ValueError(f"{name}: the image is {width}x{height} pixels, "
                         f"more than the {max_pixels:,} accepted")
    try:
        return preprocess_digit_array(gray)
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None


# -- the preprocessing ----------------------------------------------------------------

def preprocess_digit_array(gray):
    """Apply the MNIST preprocessing to a 2-D grayscale image.

    Parameters
    ----------
    gray : ndarray, shape (H, W)
        Grayscale image.  Integer arrays are read as 0..255; float and bool
        arrays as 0..1 (or as 0..255 if their maximum exceeds 1).  Either
        polarity (dark ink on light paper or light ink on dark) is accepted,
        on clean paper or on grey, shaded, noisy paper.

    Returns
    -------
    ndarray, shape (784,), float32
        The 28x28 digit, flattened row by row: ink near 1, background 0.

    Raises
    ------
    ValueError
        If the array is not 2-D, holds NaN or infinite values, or the image
        contains no visible ink.

    Notes
    -----
    Steps 1-5 find the ink (``_find_ink``); on a clean page (flat paper, no
    noise) they reduce to "subtract the paper level, clip at 0".
    Steps 1-4 decide on a copy g_c averaged over k x k blocks,
    k = ceil(max(H, W) / WORK_SIDE) (which also divides white noise by k);
    step 5 goes back to full resolution.  Steps 6-7 are MNIST's own.

    1. *Noise.*  For independent noise of deviation sigma, the difference
       of two neighbouring pixels has deviation sqrt(2) sigma, while the
       paper's smooth shading cancels in it, so

           sigma = 1.4826 * median(|D - median(D)|) / sqrt(2),

       D running over all horizontal and vertical neighbour differences
       (1.4826 * median absolute deviation is the standard deviation of a
       Gaussian, robustly: the ink's edges are too few to move it).  A
       clean page has sigma = 0.
    2. *Shading.*  The paper's brightness is a polynomial surface of degree
       d = ``PAPER_DEGREE`` in coordinates u, v in [-1, 1],

           P(u, v) = sum_{i + j <= d} c_ij u^i v^j,

       fitted by least squares to the paper pixels only: start from the
       median level (which the ink, a minority, cannot move), call paper
       every pixel within ``TRIM_SIGMAS`` sigmas of the current fit, fit
       again, ``PAPER_FIT_ROUNDS`` times, raising the degree from 1 (a
       plane) by one a round so the surface cannot bend round a bold digit.
       The residual r = g - P is then ink (of either sign) plus noise on
       flat paper at 0: gradients, vignettes and dark corners are gone.
    3. *Polarity.*  The ink is the side of the residual with more mass
       beyond the noise, t = ``NOISE_SIGMAS`` * sigma: dark ink if
       sum(max(-r - t, 0)) >= sum(max(r - t, 0)), then ink = -r; else
       light ink, ink = +r.
    4. *Specks.*  Noise crosses t in lone pixels here and there, dirt in
       small spots, a digit in long strokes.  The pixels with
       ink > max(t, ``INK_FRACTION`` * max ink) and at least one such
       neighbour are grown by one pixel (which keeps the strokes' soft
       edges and joins pieces of a broken stroke) and split into
       8-connected pieces; a piece holding less than ``PART_FRACTION`` of
       the ink of the biggest piece is dropped, and if the biggest has
       fewer than ``MIN_DIGIT_PIXELS`` such pixels the image is blank.  The
       kept pieces are the digit's mask.
    5. *Clean ink.*  At full resolution, ink = max(+-r, 0) inside the mask
       and exactly 0 outside it, divided by the light falling there,
       P / max P (at least ``MIN_LIGHT``), so that a stroke in a shadow
       counts as much as one in the light.  It is scaled so that its
       maximum is 1 and cropped to the smallest rectangle holding every
       pixel above ``INK_FRACTION``.
    6. *Scale.*  The crop is resized with Lanczos anti-aliasing so that its
       longer side is 20 pixels and the aspect ratio is kept.
    7. *Centre.*  The 20-pixel digit is pasted in the middle of a 28x28
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
    g = g / 255.0 if np.issubdtype(g.dtype, np.integer) else g.astype(np.float64)
    low, high = g.min(), g.max()
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError("image contains NaN or infinite values")
    if high > 1.0:  # a float image given on the 0..255 scale
        g /= 255.0
    return _centre_in_28x28(_fit_in_box(_find_ink(g)))


def _find_ink(g):
    """Steps 1-5: the ink of ``g`` (H, W) in [0, 1], bright on exactly 0, cropped to it."""
    k = max(1, math.ceil(max(g.shape) / WORK_SIDE))
    g_c = _block_mean(g, k)                                          # (H // k, W // k)
    rows_c, cols_c = _block_centres(g_c.shape[0], k), _block_centres(g_c.shape[1], k)
    sigma = _noise_sigma(g_c)                                        # 1.
    # 2. the shading is smooth: a sample of at most FIT_SIDE x FIT_SIDE pixels fixes it
    step = max(1, math.ceil(max(g_c.shape) / FIT_SIDE))
    paper = _fit_paper(g_c[::step, ::step], rows_c[::step], cols_c[::step], g.shape, sigma)
    paper_c = _paper_at(paper, rows_c, cols_c, g.shape)              # (H // k, W // k)
    r_c = g_c - paper_c
    # 3. which side of the paper the ink is on
    t = NOISE_SIGMAS * sigma
    sign = -1.0 if np.clip(-r_c - t, 0, None).sum() >= np.clip(r_c - t, 0, None).sum() else 1.0
    ink_c = sign * r_c
    if ink_c.max() < MIN_CONTRAST or ink_c.max() <= t:
        raise ValueError(BLANK)
    # 4. the digit: the big pieces of what stands out of the noise
    mask_c = _digit_pieces(ink_c, ink_c > max(t, INK_FRACTION * ink_c.max()))
    # 5. back at full resolution
    return _clean_ink(g, paper, sign, mask_c, k, paper_c.max())


def _clean_ink(g, paper, sign, mask_c, k, brightest):
    """Step 5: the ink of ``g`` inside the block mask ``mask_c``, 0 elsewhere, cropped.

    ``brightest`` is the paper's level where the light is strongest.
    """
    top, bottom, left, right = _bounding_box(mask_c)                 # in blocks
    top, left = top * k, left * k
    bottom = g.shape[0] if bottom == mask_c.shape[0] else bottom * k  # (the last block takes the
    right = g.shape[1] if right == mask_c.shape[1] else right * k     # rows _block_mean left out)
    mask = _upsample(mask_c, k)[top:bottom, left:right]
    mask = np.pad(mask, ((0, bottom - top - mask.shape[0]), (0, right - left - mask.shape[1])), mode="edge")
    paper_here = _paper_at(paper, np.arange(top, bottom), np.arange(left, right), g.shape)
    ink = np.where(mask, np.clip(sign * (g[top:bottom, left:right] - paper_here), 0.0, None), 0.0)
    if brightest > MIN_CONTRAST:       # a black page has no light to compare with
        ink /= np.clip(paper_here / brightest, MIN_LIGHT, 1.0)
    if ink.max() <= 0.0:
        raise ValueError(BLANK)
    ink /= ink.max()
    top, bottom, left, right = _bounding_box(ink > INK_FRACTION)
    return ink[top:bottom, left:right]


def _fit_in_box(ink):
    """Step 6: resize so the longer side is BOX pixels, keeping the aspect ratio."""
    Image = _pillow()
    h, w = ink.shape
    scale = BOX / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    small = Image.fromarray(ink.astype(np.float32))  # mode "F"
    small = small.resize((new_w, new_h), Image.Resampling.LANCZOS)
    digit = np.clip(np.asarray(small, dtype=np.float64), 0.0, None)
    return digit / digit.max()  # Lanczos can ring a little above 1; undo dimming


def _centre_in_28x28(digit):
    """Step 7: paste in the middle of a 28x28 canvas, then centre the mass."""
    new_h, new_w = digit.shape
    canvas = np.zeros((SIZE, SIZE))
    top, left = (SIZE - new_h) // 2, (SIZE - new_w) // 2
    canvas[top:top + new_h, left:left + new_w] = digit
    idx = np.arange(SIZE)
    mass = canvas.sum()
    cy = (canvas.sum(axis=1) * idx).sum() / mass
    cx = (canvas.sum(axis=0) * idx).sum() / mass
    canvas = _shift(canvas, round(SIZE / 2 - cy), round(SIZE / 2 - cx))
    return canvas.astype(np.float32).ravel()


def _shift(img, dy, dx):
    """Move `img` down by `dy` and right by `dx` pixels, filling with zeros."""
    h, w = img.shape
    padded = np.pad(img, ((h, h), (w, w)))
    return padded[h - dy:2 * h - dy, w - dx:2 * w - dx]


# -- helpers for finding the ink ------------------------------------------------------

def _block_mean(g, k):
    """Average ``g`` (H, W) over k x k blocks; the last H % k rows and W % k columns are left out."""
    h, w = g.shape[0] // k, g.shape[1] // k
    return g[:h * k, :w * k].reshape(h, k, w, k).mean(axis=(1, 3))   # (h, w)


def _block_centres(n, k):
    """Full-resolution coordinate of the centre of each of ``n`` blocks of ``k`` pixels."""
    return np.arange(n) * k + (k - 1) / 2


def _upsample(mask_c, k):
    """Each pixel of a block mask (h, w) becomes a k x k block: shape (h*k, w*k)."""
    return np.repeat(np.repeat(mask_c, k, axis=0), k, axis=1)


def _bounding_box(mask):
    """(top, bottom, left, right) of the True pixels of ``mask``; bottom and right exclusive."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


def _powers(t, degree):
    """Columns 1, t, t^2, ..., t^degree: shape (len(t), degree + 1)."""
    return t[:, None] ** np.arange(degree + 1)


def _uv_powers(rows, cols, shape, degree):
    """Powers of u and v in [-1, 1] for pixel ``rows`` and ``cols`` of an image of ``shape``."""
    u = 2 * rows / max(shape[0] - 1, 1) - 1
    v = 2 * cols / max(shape[1] - 1, 1) - 1
    return _powers(u, degree), _powers(v, degree)                 # (len(rows), d+1), (len(cols), d+1)


def _paper_at(c, rows, cols, shape):
    """P(u, v) = sum_ij c[i, j] u^i v^j on the grid ``rows`` x ``cols``: shape (len(rows), len(cols))."""
    U, V = _uv_powers(rows, cols, shape, c.shape[0] - 1)
    return U @ c @ V.T                                            # (h, d+1) @ (d+1, d+1) @ (d+1, w)


def _fit_paper(g_c, rows, cols, shape, sigma):
    """Step 2: least-squares polynomial surface through the paper pixels of ``g_c``.

    ``g_c`` (h, w) holds the pixels at ``rows`` (h,) and ``cols`` (w,) of an
    image of ``shape``; ``sigma`` is its noise.  Returns the coefficients
    c (d+1, d+1) of P, with c[i, j] = 0 for i + j > d.  On a small image the
    degree d drops, so that there are at least four samples a side per
    degree of freedom.
    """
    top_degree = max(0, min(PAPER_DEGREE, min(g_c.shape) // 4 - 1))
    terms = sorted(((i, j) for i in range(top_degree + 1) for j in range(top_degree + 1 - i)), key=sum)
    U, V = _uv_powers(rows, cols, shape, top_degree)
    design = np.stack([np.outer(U[:, i], V[:, j]).ravel() for i, j in terms], axis=1)  # (h*w, n_terms)
    values = g_c.ravel()                                          # (h*w,)
    # Start from the median, which the ink cannot move while it covers less than half
    # the image; round a mere level the shading spreads the paper too, so the first cut
    # is wider.  Then fit a plane, and raise the degree by one each round: a stiff
    # surface cannot bend round a bold digit, and each freer one starts from the paper
    # the stiffer one found (a quartic fitted at once sank under a fat "0" in our tests).
    residual = values - np.median(values)
    spread = max(sigma, _mad_sigma(residual))
    for round_ in range(PAPER_FIT_ROUNDS):
        degree = min(round_ + 1, top_degree)
        n_terms = (degree + 1) * (degree + 2) // 2                # the terms with i + j <= degree
        is_paper = np.abs(residual) <= TRIM_SIGMAS * max(spread, MIN_SIGMA)
        # normal equations (A^T A) c = A^T g over the paper pixels, a 15x15 system at
        # most: 3.3x faster than lstsq on A itself (0.12 vs 0.40 ms for 2500 x 15, one
        # thread, AMD EPYC), and safe, as monomials of degree 4 on [-1, 1] give A^T A a
        # condition number of about 440
        a = design[is_paper, :n_terms]                            # (n_paper, n_terms)
        coef = np.linalg.lstsq(a.T @ a, a.T @ values[is_paper], rcond=None)[0]
        residual = values - design[:, :n_terms] @ coef
        spread = sigma
    c = np.zeros((top_degree + 1, top_degree + 1))
    for (i, j), value in zip(terms, coef):
        c[i, j] = value
    return c


def _mad_sigma(x):
    """Robust standard deviation: 1.4826 * median(|x - median(x)|), exact for Gaussian x."""
    return MAD_TO_SIGMA * float(np.median(np.abs(x - np.median(x))))


def _noise_sigma(g_c):
    """Step 1: the noise of image ``g_c``, from the differences of neighbouring pixels.

    For independent noise of deviation sigma, n[y, x+1] - n[y, x] has deviation
    sqrt(2) sigma, while smooth shading (and any smooth error in fitting it)
    cancels, and the edges of the ink are too few to move the median.
    """
    differences = np.concatenate([np.diff(g_c, axis=1).ravel(), np.diff(g_c, axis=0).ravel()])
    return _mad_sigma(differences) / math.sqrt(2) if differences.size else 0.0


def _label_pieces(mask):
    """Label the 8-connected pieces of a boolean mask (h, w) by flood fill.

    Returns (labels, n): labels (h, w) int, 0 off the mask and 1..n on it.
    A plain breadth-first search over Python lists: the mask is at most
    WORK_SIDE pixels a side, so this takes about 2 ms.
    """
    h, w = mask.shape
    inside = np.pad(mask, 1).tolist()            # (h+2, w+2): a frame of False, so no bounds checks
    labels = [[0] * (w + 2) for _ in range(h + 2)]
    n = 0
    for y0, x0 in zip(*np.nonzero(mask)):
        y0, x0 = int(y0) + 1, int(x0) + 1
        if labels[y0][x0]:
            continue
        n += 1
        labels[y0][x0] = n
        queue = deque([(y0, x0)])
        while queue:
            y, x = queue.popleft()
            for ny in (y - 1, y, y + 1):
                for nx in (x - 1, x, x + 1):
                    if inside[ny][nx] and not labels[ny][nx]:
                        labels[ny][nx] = n
                        queue.append((ny, nx))
    return np.array(labels, dtype=np.int32)[1:-1, 1:-1], n


def _digit_pieces(ink, stands_out):
    """Step 4: the mask (h, w) of the digit's pieces, from the pixels that stand out.

    Lone pixels are dropped, the rest grown by one pixel and labelled; a piece is
    kept if it holds at least PART_FRACTION of the ink of the biggest piece.
    """
    stands_out = stands_out & (_neighbours(stands_out) > 0)      # noise crosses t in lone pixels
    labels, n = _label_pieces(_grow(stands_out))                 # grown: pieces 2 px apart join
    if n == 0:
        raise ValueError(BLANK)
    ink_per_piece = np.bincount(labels.ravel(), weights=ink.ravel(), minlength=n + 1)
    ink_per_piece[0] = 0.0                                        # label 0 is the paper
    biggest = np.argmax(ink_per_piece)
    if np.count_nonzero(stands_out & (labels == biggest)) < MIN_DIGIT_PIXELS:
        raise ValueError(BLANK)
    kept = ink_per_piece >= PART_FRACTION * ink_per_piece[biggest]
    kept[0] = False
    return kept[labels]


def _neighbours(mask):
    """How many of each pixel's eight neighbours are in the boolean ``mask`` (h, w)."""
    h, w = mask.shape
    padded = np.pad(mask, 1).astype(np.int8)
    count = sum(padded[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3))
    return count - mask


def _grow(mask):
    """Grow a boolean mask by one pixel in all eight directions (a 3x3 dilation)."""
    return mask | (_neighbours(mask) > 0)
