"""The README's picture of the digit page: `python readme_images/make_page_screenshot.py`.

Starts the page's server (``nnscratch.web.server``, the shipped networks) on
a free port, opens the page in the distribution's headless Chromium through
Selenium and ChromeDriver (as tests/test_web_browser.py does: nothing is
downloaded), draws a "2" on the canvas with the mouse, waits until the page
shows the CNN's answer for it, and saves digit_page.png (1200 px wide, the
whole page).
"""
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(ROOT, "src"))

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from nnscratch.web import server  # noqa: E402
from nnscratch.web.browser import bezier, draw, headless_chromium, line  # noqa: E402
WIDTH, HEIGHT = 1200, 900


# A "2" in one stroke on the 280x280 canvas: the hook, the diagonal, the base.
TWO = [bezier((90, 95), (100, 35), (200, 40), (185, 110))
       + bezier((185, 110), (175, 150), (110, 190), (85, 225))[1:]
       + line((85, 225), (205, 222))[1:]]


def screenshot(path):
    srv, url = server.start_in_thread(os.path.join(ROOT, "pre-trained"), port=0)
    with tempfile.TemporaryDirectory() as profile:
        browser = headless_chromium(profile, WIDTH, HEIGHT, extra_flags=("--hide-scrollbars",))
        try:
            browser.get(url)
            WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "model").is_enabled())
            # Twice: the first request pays for one-off warm-ups (imports, buffers) and the
            # picture should show the timings of every later one.
            for attempt in range(2):
                if attempt:
                    browser.find_element(By.ID, "clear").click()
                draw(browser, TWO)
                WebDriverWait(browser, 30).until(lambda b: b.execute_script(
                    "return document.getElementById('status').dataset.state === 'ready'"
                    " && !document.getElementById('feature-section').hidden"))
            browser.execute_script("document.activeElement.blur()")   # no focus ring in the picture
            # the bars grow with a 0.12 s transition: let it finish
            browser.execute_script("return new Promise((done) => setTimeout(done, 400))")
            digit = browser.find_element(By.ID, "digit").text
            # The headless window's viewport is shorter than the window (757 of 900 px):
            # set it to exactly the page's size, so the picture holds the page and no more.
            height = browser.execute_script("return document.documentElement.scrollHeight")
            browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False})
            browser.save_screenshot(path)
        finally:
            browser.quit()
            srv.shutdown()
    return path, digit


if __name__ == "__main__":
    path, digit = screenshot(os.path.join(HERE, "digit_page.png"))
    print(f"saved {path} (the CNN reads a {digit})")
