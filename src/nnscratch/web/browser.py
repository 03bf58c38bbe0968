"""Driving the digit page in the distribution's headless Chromium (for the browser test and the
README's screenshot): the browser, and digits drawn with the mouse stroke by stroke.

Needs Selenium and Debian's ``chromium`` and ``chromium-driver`` (at the paths below); nothing
is downloaded: Selenium is told to use these binaries (``SE_OFFLINE``) and never to fetch a driver.
"""
import math
import os

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# This machine's network is closed: every flag after --disable-gpu stops a background
# connection (QUIC, updates, sync) that would only wait and time out.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")


def headless_chromium(profile_dir, width=1200, height=900, extra_flags=()):
    """A Selenium ``webdriver.Chrome`` on Chromium, headless, with a fresh profile in ``profile_dir``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    os.environ["SE_OFFLINE"] = "true"   # the binaries named here, never a download
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS + (f"--window-size={width},{height}", f"--user-data-dir={profile_dir}") + tuple(extra_flags):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


# -- digits as strokes on the 280x280 canvas: lists of (x, y) canvas pixels ------------------------
def line(start, end, step=8):
    """Points from ``start`` to ``end`` at most ``step`` pixels apart: a pen drawn along it."""
    n = max(1, math.ceil(math.dist(start, end) / step))
    return [(start[0] + (end[0] - start[0]) * i / n, start[1] + (end[1] - start[1]) * i / n)
            for i in range(n + 1)]


def ellipse(cx, cy, rx, ry, n=40):
    """A closed loop clockwise from the top, ``n`` steps."""
    return [(cx + rx * math.sin(2 * math.pi * i / n), cy - ry * math.cos(2 * math.pi * i / n))
            for i in range(n + 1)]


def bezier(p0, p1, p2, p3, n=24):
    """n + 1 points along the cubic Bézier curve p0 -> p3 pulled towards p1 and p2."""
    return [tuple((1 - t) ** 3 * a + 3 * (1 - t) ** 2 * t * b + 3 * (1 - t) * t ** 2 * c + t ** 3 * d
                  for a, b, c, d in zip(p0, p1, p2, p3))
            for t in (i / n for i in range(n + 1))]


def draw(browser, strokes):
    """Draw ``strokes`` on #canvas with the mouse: press, move in small steps, release.

    The points are rounded to whole pixels first so that the relative moves add
    up exactly; ``duration=0`` sends each move at once (the default spends
    250 ms on every move).
    """
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    canvas = browser.find_element(By.ID, "canvas")
    half_w, half_h = canvas.size["width"] / 2, canvas.size["height"] / 2
    actions = ActionChains(browser, duration=0)
    for stroke in strokes:
        points = [(round(x), round(y)) for x, y in stroke]
        # move_to_element_with_offset counts from the element's centre
        x0, y0 = points[0]
        actions.move_to_element_with_offset(canvas, round(x0 - half_w), round(y0 - half_h))
        actions.click_and_hold()
        for (xa, ya), (xb, yb) in zip(points, points[1:]):
            actions.move_by_offset(xb - xa, yb - ya)
        actions.release()
    actions.perform()
