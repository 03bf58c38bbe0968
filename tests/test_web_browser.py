"""The digit page in a real browser: a digit drawn stroke by stroke with the mouse is read right.

The server (``nnscratch.web.server``) runs in a thread on a free port with the
shipped networks; the distribution's headless Chromium, driven by Selenium
through the distribution's ChromeDriver, opens the page and draws on #canvas
with mouse events, as a person would. Nothing is downloaded: without the
browser, the driver or Selenium the module is skipped, except under CI (the
environment variable CI set), where that is a failure, so that CI cannot pass
by skipping.

The page says when the answer it shows is the answer for what is drawn:
``#status[data-state="ready"]``; ``#canvas[data-strokes]`` counts the strokes.
The tests wait on those two, never on a fixed sleep.
"""
import base64
import importlib.util
import os
import shutil

import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
MODEL_DIR = os.path.join(ROOT, "pre-trained")
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"   # as nnscratch.web.browser's


def _what_is_missing():
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return f"{path} is missing (apt-get install {package})"
    return None


_missing = _what_is_missing()
if _missing:
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"the browser test cannot run under CI: {_missing}", pytrace=False)
    pytest.skip(f"the browser test needs Chromium, ChromeDriver and Selenium: {_missing}",
                allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from nnscratch.web import server  # noqa: E402
from nnscratch.web.browser import draw, ellipse, headless_chromium, line  # noqa: E402

WAIT_S = 15   # for one answer; a prediction takes milliseconds, but this machine may be busy training


# -- digits as strokes on the 280x280 canvas (nnscratch.web.browser draws them) ---------------
# Each digit is a list of strokes, each a list of (x, y) canvas pixels; the shipped
# CNN reads each as intended with probability > 0.99 (rendered with Pillow, 20 px pen).
DIGITS = {
    1: [line((140, 50), (140, 230))],                                   # one vertical stroke
    7: [line((80, 60), (200, 60)), line((200, 60), (120, 230))],        # the top bar, then the diagonal
    0: [ellipse(140, 140, 55, 85)],                                     # an upright ellipse
}


# What the page shows, read in one script: the bars, the ink on #canvas, the lit
# pixels of #seen, the feature maps.
READ_PAGE = """
const bars = [...document.querySelectorAll('#bars > *')].map(
    (bar) => [Number(bar.dataset.digit), Number(bar.dataset.probability)]);
function count(canvas, test) {
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 0; i < data.length; i += 4) if (test(data[i])) n++;
    return n;
}
const status = document.getElementById('status');
const digit = document.getElementById('digit');
return {
    digit: digit.textContent.trim(),
    model: digit.dataset.model || null,
    bars: bars,
    state: status.dataset.state,
    status: status.textContent,
    strokes: Number(document.getElementById('canvas').dataset.strokes),
    ink: count(document.getElementById('canvas'), (red) => red < 128),       // dark ink on white
    seen_lit: count(document.getElementById('seen'), (red) => red > 64),     // bright ink on black
    feature_maps_shown: !document.getElementById('feature-section').hidden,
    feature_maps: document.querySelectorAll('#feature-maps canvas').length,
};
"""


def read_page(browser):
    return browser.execute_script(READ_PAGE)


def wait_for(browser, state, strokes, model=None):
    """Wait until #status has ``state`` with ``strokes`` strokes drawn (and, when
    given, the answer is ``model``'s); return what the page shows."""
    def settled(b):
        page = read_page(b)
        if page["state"] == "error":
            raise AssertionError(f"the page shows an error: {page['status']}")
        done = page["state"] == state and page["strokes"] == strokes and model in (None, page["model"])
        return page if done else False
    return WebDriverWait(browser, WAIT_S, poll_frequency=0.05).until(
        settled, f"the page did not reach state {state!r} with {strokes} strokes (model {model})")


def assert_reads(page, digit):
    probabilities = [p for _, p in sorted(page["bars"])]
    assert [d for d, _ in sorted(page["bars"])] == list(range(10)), page["bars"]
    assert page["digit"] == str(digit), f"the page reads {page['digit']}, not {digit}: {probabilities}"
    assert max(range(10), key=probabilities.__getitem__) == digit, probabilities
    assert abs(sum(probabilities) - 1) < 1e-3, f"the probabilities sum to {sum(probabilities)}"
    assert page["seen_lit"] > 20, "the 28x28 image the network sees (#seen) is blank"


# -- fixtures: one server and one browser for the module --------------------------------------
@pytest.fixture(scope="module")
def url():
    srv, base_url = server.start_in_thread(MODEL_DIR, port=0)
    yield base_url
    srv.shutdown()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    previous = os.environ.get("SE_OFFLINE")     # headless_chromium sets it; put it back afterwards
    profile = tmp_path_factory.mktemp("chromium-profile")
    driver = headless_chromium(profile)
    driver.set_script_timeout(WAIT_S)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)
    if previous is None:
        os.environ.pop("SE_OFFLINE", None)
    else:
        os.environ["SE_OFFLINE"] = previous


@pytest.fixture
def page(browser, url):
    """The page freshly loaded, its model list in (the picker is enabled then)."""
    browser.get(url)
    WebDriverWait(browser, WAIT_S).until(lambda b: b.find_element(By.ID, "model").is_enabled())
    assert read_page(browser)["state"] == "idle"
    return browser


# -- the tests -------------------------------------------------------------------------------
def test_the_page_lists_the_shipped_digit_classifiers_with_the_cnn_chosen(page):
    picker = Select(page.find_element(By.ID, "model"))
    names = [option.get_attribute("value") for option in picker.options]
    assert {"mlp50", "mlp800", "cnn", "lstm", "gru", "rnn"} <= set(names), names
    assert picker.first_selected_option.get_attribute("value") == "cnn"


@pytest.mark.parametrize("digit", sorted(DIGITS))
def test_a_digit_drawn_with_the_mouse_is_read_with_probabilities_summing_to_one(page, digit):
    draw(page, DIGITS[digit])
    shown = wait_for(page, "ready", len(DIGITS[digit]))
    assert_reads(shown, digit)
    assert shown["ink"] > 1000, "the strokes are not on the canvas"
    assert shown["feature_maps_shown"] and shown["feature_maps"] == 32, shown   # the CNN's conv1: 32 filters


def test_undo_removes_the_last_stroke_and_then_the_first(page):
    draw(page, DIGITS[7])
    seven = wait_for(page, "ready", 2)
    assert_reads(seven, 7)

    page.find_element(By.ID, "undo").click()
    bar_only = wait_for(page, "ready", 1)     # the top bar alone: the CNN does not read a 7 in it
    assert bar_only["digit"] != "7", bar_only["bars"]
    assert 0 < bar_only["ink"] < seven["ink"]

    page.find_element(By.ID, "undo").click()
    empty = wait_for(page, "idle", 0)
    assert empty["ink"] == 0 and empty["seen_lit"] == 0 and empty["digit"] == "?"


def test_clear_empties_the_canvas_and_the_answer(page):
    draw(page, DIGITS[0])
    wait_for(page, "ready", 1)
    page.find_element(By.ID, "clear").click()
    cleared = wait_for(page, "idle", 0)
    assert cleared["ink"] == 0, "Clear left ink on the canvas"
    assert cleared["digit"] == "?" and cleared["seen_lit"] == 0
    assert all(p == 0 for _, p in cleared["bars"])
    assert not cleared["feature_maps_shown"]


def test_the_feature_maps_show_for_the_cnn_and_hide_for_an_mlp(page):
    draw(page, DIGITS[1])
    cnn = wait_for(page, "ready", 1, model="cnn")
    assert cnn["feature_maps_shown"] and cnn["feature_maps"] == 32

    picker = Select(page.find_element(By.ID, "model"))
    picker.select_by_value("mlp50")
    mlp = wait_for(page, "ready", 1, model="mlp50")
    assert_reads(mlp, 1)
    assert not mlp["feature_maps_shown"], "an MLP has no feature maps, but the page shows some"

    picker.select_by_value("cnn")
    again = wait_for(page, "ready", 1, model="cnn")
    assert again["feature_maps_shown"] and again["feature_maps"] == 32


def test_an_image_file_dropped_on_the_canvas_is_read(page):
    png = os.path.join(ROOT, "datasets", "my_handwriting", "mnist_test_0_label7.png")
    with open(png, "rb") as f:
        data = base64.b64encode(f.read()).decode("ascii")
    # WebDriver cannot drag a file from the desktop: build the drop event the
    # browser would fire, with the file in its DataTransfer.
    page.execute_script("""
        const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], 'seven.png', {type: 'image/png'}));
        const zone = document.getElementById('drop-zone');
        const how = {dataTransfer: transfer, bubbles: true, cancelable: true};
        zone.dispatchEvent(new DragEvent('dragover', how));
        zone.dispatchEvent(new DragEvent('drop', how));
    """, data)
    dropped = wait_for(page, "ready", 1)
    assert_reads(dropped, 7)
    assert dropped["ink"] > 0, "the dropped picture is not shown on the canvas"
