"""Write the example digit PNGs in datasets/my_handwriting/.

Two kinds of file are made:

* ``mnist_test_<index>_label<d>.png`` -- the first MNIST test image of each
  class 0-9, saved as a 28x28 grayscale PNG the way a person would draw it:
  dark ink on a white background (255 - pixel).
* ``drawn_<d>.png`` -- digits drawn with Pillow's ImageDraw using a thick
  pen on larger canvases, in different image modes and colours (RGB, RGBA
  with a transparent background, light ink on dark, non-square, ...).

Run from the repository root:  python datasets/my_handwriting/make_digits.py
"""

import gzip
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
MNIST = HERE.parent / "mnist"


def read_mnist_test():
    """Return (images uint8 (N, 28, 28), labels uint8 (N,)) of MNIST test."""
    with gzip.open(MNIST / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(MNIST / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return images, labels


def write_mnist_examples():
    images, labels = read_mnist_test()
    for digit in range(10):
        index = int(np.flatnonzero(labels == digit)[0])
        dark_on_white = 255 - images[index]
        name = f"mnist_test_{index}_label{digit}.png"
        Image.fromarray(dark_on_white).save(HERE / name)


def canvas(mode, size, paper):
    img = Image.new(mode, size, paper)
    return img, ImageDraw.Draw(img)


def write_drawn_examples():
    # 0: grayscale, an ellipse, 200x200
    img, d = canvas("L", (200, 200), 255)
    d.ellipse((55, 25, 145, 175), outline=0, width=16)
    img.save(HERE / "drawn_0.png")

    # 1: RGB, blue ink on cream paper, tall non-square canvas (120x240)
    img, d = canvas("RGB", (120, 240), (250, 245, 225))
    ink = (20, 40, 160)
    d.line([(40, 70), (70, 30), (70, 210)], fill=ink, width=14, joint="curve")
    img.save(HERE / "drawn_1.png")

    # 2: RGBA, black strokes on a fully transparent background
    img, d = canvas("RGBA", (200, 200), (0, 0, 0, 0))
    ink = (0, 0, 0, 255)
    d.arc((50, 25, 150, 115), start=180, end=30, fill=ink, width=15)
    d.line([(143, 95), (55, 172), (155, 172)], fill=ink, width=15,
           joint="curve")
    img.save(HERE / "drawn_2.png")

    # 3: light-on-dark: white chalk on a dark green board, RGB, 300x200
    img, d = canvas("RGB", (300, 200), (20, 50, 30))
    ink = (235, 235, 235)
    d.arc((110, 20, 190, 100), start=200, end=90, fill=ink, width=14)
    d.arc((105, 95, 195, 180), start=270, end=160, fill=ink, width=14)
    img.save(HERE / "drawn_3.png")

    # 4: RGB, red ink on white, drawn small in a corner of a big canvas
    img, d = canvas("RGB", (240, 240), (255, 255, 255))
    ink = (200, 30, 30)
    d.line([(60, 20), (25, 90), (95, 90)], fill=ink, width=10, joint="curve")
    d.line([(78, 45), (78, 130)], fill=ink, width=10)
    img.save(HERE / "drawn_4.png")

    # 7: palette ("P") image with a wide canvas (260x180)
    img, d = canvas("L", (260, 180), 255)
    d.line([(95, 30), (170, 30), (115, 160)], fill=0, width=14, joint="curve")
    d.line([(110, 95), (155, 95)], fill=0, width=10)
    img.convert("P").save(HERE / "drawn_7.png")

    # 8: bilevel ("1") image, two circles
    img, d = canvas("L", (200, 200), 255)
    d.ellipse((65, 20, 135, 95), outline=0, width=13)
    d.ellipse((55, 88, 145, 180), outline=0, width=13)
    img.convert("1").save(HERE / "drawn_8.png")

    # 5: grayscale-with-alpha ("LA"), dark gray pencil on transparent paper
    img, d = canvas("LA", (200, 200), (0, 0))
    ink = (60, 255)
    d.line([(140, 30), (70, 30), (62, 95)], fill=ink, width=14, joint="curve")
    d.arc((55, 75, 145, 175), start=220, end=150, fill=ink, width=14)
    img.save(HERE / "drawn_5.png")


if __name__ == "__main__":
    write_mnist_examples()
    write_drawn_examples()
    print("wrote", len(list(HERE.glob("*.png"))), "PNG files to", HERE)
