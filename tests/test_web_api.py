"""The digit page's API over real HTTP, and the ``serve`` command a user starts it with.

A server runs in a thread on a free port for the whole module; requests go
through ``urllib.request`` as a browser's would (multipart forms and JSON
bodies), so routing, parsing, limits and error pages are all exercised.
"""
import base64
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import build_network
from nnscratch import Network, load_digit_image
from nnscratch.web.server import DIGIT_CLASSIFIERS, start_in_thread

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "pre-trained"
SCRIPT = ROOT / "src" / "build_network.py"
SHIPPED = [name for name in DIGIT_CLASSIFIERS if (MODELS / f"{name}.safetensors").is_file()]
# every shipped picture of a digit, its label in its name: mnist_test_0_label7, drawn_3, paper_4_chalk
PICTURES = sorted(p for p in (ROOT / "datasets" / "my_handwriting").iterdir() if p.suffix in (".png", ".jpg"))
SEVEN = ROOT / "datasets" / "my_handwriting" / "mnist_test_0_label7.png"


def label_of(path):
    return int(re.match(r"(?:mnist_test_\d+_label|drawn_|paper_)(\d)", path.name).group(1))


# -- talking to the server ---------------------------------------------------------------
def request(url, path, body=None, content_type=None, method=None):
    """``(status, JSON answer)`` of one request; an error status is an answer too, and must be JSON."""
    req = urllib.request.Request(url + path.lstrip("/"), data=body, method=method,
                                 headers={"Content-Type": content_type} if content_type else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            status, kind, text = response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as err:
        status, kind, text = err.code, err.headers["Content-Type"], err.read()
    assert kind.startswith("application/json"), (status, kind, text[:200])
    return status, json.loads(text)


def multipart(fields, files):
    """A multipart/form-data body: ``(body, content type)``; ``files`` maps a field to (filename, bytes)."""
    boundary = "nnscratch-test-boundary-7d1f"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
              f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
              for name, (filename, data) in files.items()]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post_file(url, data, model=None, filename="digit.png"):
    body, kind = multipart({"model": model} if model else {}, {"image": (filename, data)})
    return request(url, "/api/predict", body, kind)


def post_json(url, payload):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return request(url, "/api/predict", body, "application/json")


def data_url(data):
    return "data:image/png;base64," + base64.b64encode(data).decode()


def png(array, mode="L"):
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def url():
    server, address = start_in_thread(MODELS)
    yield address
    server.shutdown()


@pytest.fixture(scope="module")
def nets():
    return {name: Network.load(MODELS / f"{name}.safetensors") for name in SHIPPED}


@pytest.fixture(scope="module")
def digits():
    """What ``load_digit_image`` (the command line's ``predict``) makes of each picture: (784,)."""
    return {path: load_digit_image(path) for path in PICTURES}


# -- the models ----------------------------------------------------------------------------
def test_models_lists_the_shipped_classifiers_with_the_cnn_as_default(url, nets):
    status, answer = request(url, "/api/models")
    assert status == 200 and answer["default"] == "cnn"
    assert [m["name"] for m in answer["models"]] == SHIPPED
    assert {"mlp50", "mlp800", "cnn", "lstm", "gru", "rnn"} <= set(SHIPPED)
    for m in answer["models"]:
        net = nets[m["name"]]
        assert m["description"] == DIGIT_CLASSIFIERS[m["name"]]
        assert m["parameters"] == sum(p.data.size for p in net.parameters())
        assert tuple(m["input_shape"]) == net.input_shape
        assert m["has_feature_maps"] == m["name"].startswith("cnn")


# -- predictions -----------------------------------------------------------------------------
@pytest.mark.parametrize("model", SHIPPED)
def test_every_model_reads_the_shipped_pictures_the_same_from_a_form_and_a_data_url(url, nets, digits, model):
    net, right = nets[model], 0
    for path in PICTURES:
        data = path.read_bytes()
        status, answer = post_file(url, data, model, filename=path.name)
        assert status == 200, answer
        if path.suffix == ".png":                                    # (the photos' JPEGs come as files only)
            status, from_json = post_json(url, {"image": data_url(data), "model": model})
            assert status == 200 and from_json["digit"] == answer["digit"], from_json
            assert from_json["probabilities"] == answer["probabilities"]
            assert from_json["image"] == answer["image"]

        x = digits[path]
        assert answer["image"] == np.round(x.reshape(28, 28).astype(np.float64), 3).tolist()
        probabilities = np.array(answer["probabilities"])
        assert probabilities.shape == (10,) and abs(probabilities.sum() - 1) < 1e-5
        expected = net.predict_proba(x.reshape((1,) + net.input_shape))[0]
        np.testing.assert_allclose(probabilities, expected, atol=1e-6)
        assert answer["digit"] == int(np.argmax(probabilities)) and answer["model"] == model
        timings = answer["timings_ms"]
        assert set(timings) == {"decode", "preprocess", "predict", "total"} and min(timings.values()) >= 0
        assert timings["total"] >= timings["preprocess"] + timings["predict"]
        right += answer["digit"] == label_of(path)
    # every shipped network reads these; the recurrent ones misread one MNIST five as a six
    assert right >= len(PICTURES) - 2 and (model != "cnn" or right == len(PICTURES))


def test_the_cnn_reads_the_mnist_seven_and_is_used_when_no_model_is_named(url):
    status, answer = post_file(url, SEVEN.read_bytes())
    assert status == 200 and answer["model"] == "cnn" and answer["digit"] == 7
    status, answer = post_json(url, {"image": data_url(SEVEN.read_bytes())})
    assert status == 200 and answer["model"] == "cnn" and answer["digit"] == 7


def test_the_cnn_shows_its_first_convolutions_feature_maps_after_relu_each_scaled_to_1(url, nets):
    status, answer = post_file(url, SEVEN.read_bytes(), "cnn")
    maps = np.array(answer["feature_maps"])
    assert status == 200 and maps.shape == (32, 26, 26)
    net, x = nets["cnn"], load_digit_image(SEVEN).reshape(1, 1, 28, 28)
    relu = np.maximum(net.layers[0].forward(x)[0], 0).astype(np.float64)          # conv1 -> relu1
    peak = relu.max(axis=(1, 2), keepdims=True)
    expected = np.divide(relu, peak, out=np.zeros_like(relu), where=peak > 0)
    np.testing.assert_allclose(maps, expected, atol=5e-4 + 1e-6)                   # rounded to 3 decimals
    assert maps.min() >= 0 and set(np.round(maps.max(axis=(1, 2)), 3)) <= {0.0, 1.0}


def test_networks_without_a_first_convolution_send_no_feature_maps(url):
    for model in ("mlp50", "lstm"):
        status, answer = post_file(url, SEVEN.read_bytes(), model)
        assert status == 200 and "feature_maps" not in answer


# -- bad requests ------------------------------------------------------------------------------
WHITE = png(np.full((280, 280), 255))
CLEAR_CANVAS = png(np.zeros((280, 280, 4)), "RGBA")            # a browser canvas never drawn on
BIG = os.urandom(1_100_000)                                     # 1.1 MB


def huge_page():
    """A 4200 x 4200 one-bit PNG: a few kB that would unpack to 17.6 Mpx (141 MB as float64)."""
    buffer = io.BytesIO()
    Image.new("1", (4200, 4200), 1).save(buffer, "PNG")
    return buffer.getvalue()


def send(url, case):
    """One bad request of the table below."""
    kind, payload = case
    if kind == "form":
        body, content_type = multipart(*payload)
        return request(url, "/api/predict", body, content_type)
    if kind == "json":
        return post_json(url, payload)
    method, path, body, content_type = payload
    return request(url, path, body, content_type, method)


BAD_REQUESTS = [  # (what, request, status, words the error must contain)
    ("no image field", ("form", ({"model": "cnn"}, {})), 400, ["'image'", "the fields 'model'"]),
    ("an empty form", ("form", ({}, {})), 400, ["'image'", "no fields"]),
    ("a file in another field", ("form", ({}, {"picture": ("a.png", WHITE)})), 400, ["'image'", "'picture'"]),
    ("not an image", ("form", ({}, {"image": ("a.png", b"hello, I am text")})), 400, ["not an image"]),
    ("a truncated PNG", ("form", ({}, {"image": ("a.png", SEVEN.read_bytes()[:200])})), 400, ["image"]),
    ("an empty file", ("form", ({}, {"image": ("a.png", b"")})), 400, ["empty"]),
    ("bad base64", ("json", {"image": "data:image/png;base64,@@not base64@@"}), 400, ["base64"]),
    ("not a data URL", ("json", {"image": "hello"}), 400, ["data URL", "hello"]),
    ("no image in the JSON", ("json", {"model": "cnn"}), 400, ['"image"', "nothing"]),
    ("malformed JSON", ("json", b'{"image": "data:'), 400, ["JSON"]),
    ("a JSON list", ("json", [1, 2]), 400, ["JSON object", "a list"]),
    ("a model that is not a name", ("json", {"image": data_url(WHITE), "model": 5}), 400, ["model", "got 5"]),
    ("no content type", ("http", ("POST", "/api/predict", b"xyz", "text/plain")), 400, ["Content-Type"]),
    ("an unknown model", ("json", {"image": data_url(SEVEN.read_bytes()), "model": "resnet"}), 404,
     ["'resnet'", "mlp50", "cnn"]),
    ("a model named by a path", ("form", ({"model": "../pre-trained/cnn"}, {"image": ("a.png", WHITE)})), 404,
     ["unknown model"]),
    ("a blank white page", ("form", ({}, {"image": ("a.png", WHITE)})), 422, ["blank"]),
    ("a clear canvas", ("json", {"image": data_url(CLEAR_CANVAS)}), 422, ["blank"]),
    ("17.6 megapixels", ("form", ({}, {"image": ("huge.png", huge_page())})), 400,
     ["4200x4200", "16,777,216"]),
    ("1.1 MB in a form", ("form", ({}, {"image": ("big.png", BIG)})), 413, ["1 MB"]),
    ("1.1 MB in a data URL", ("json", {"image": data_url(BIG)}), 413, ["1 MB"]),
    ("3 MB in a form", ("form", ({}, {"image": ("big.png", BIG * 3)})), 413, ["1 MB"]),
    ("GET on predict", ("http", ("GET", "/api/predict", None, None)), 405, ["Method Not Allowed"]),
    ("an unknown API path", ("http", ("GET", "/api/nothing", None, None)), 404,
     ["Not Found", "/api/nothing"]),
]


@pytest.mark.parametrize("what, case, status, words", BAD_REQUESTS, ids=[row[0] for row in BAD_REQUESTS])
def test_a_bad_request_gets_its_status_and_a_clear_json_error_and_the_server_keeps_serving(
        url, what, case, status, words):
    got, answer = send(url, case)
    assert got == status and set(answer) == {"error"}, (got, answer)
    for word in words:
        assert word in answer["error"], answer["error"]
    got, answer = post_file(url, SEVEN.read_bytes(), "mlp50")
    assert got == 200 and answer["digit"] == 7


# -- the serve command ---------------------------------------------------------------------------
def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_prints_its_address_answers_and_stops_cleanly_on_ctrl_c():
    port = free_port()
    process = subprocess.Popen([sys.executable, str(SCRIPT), "serve", "--port", str(port)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first_line = []
        reader = threading.Thread(target=lambda: first_line.append(process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout=60)                           # imports and loading the networks
        assert first_line == [f"serving the digit page at http://127.0.0.1:{port}/ (Ctrl-C stops)\n"], \
            (first_line, process.poll())
        status, answer = request(f"http://127.0.0.1:{port}/", "/api/models")
        assert status == 200 and answer["default"] == "cnn"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "Traceback" not in err and "Traceback" not in out and "stopped" in out


def run_driver(capsys, *argv):
    status = build_network.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err.strip().splitlines()


@pytest.mark.parametrize("port", ["0", "70000", "http"])
def test_serve_refuses_a_port_outside_1_to_65535_in_one_line(capsys, port):
    status, out, err = run_driver(capsys, "serve", "--port", port)
    assert status == 2 and len(err) == 1 and err[0].startswith("error: argument --port: expected a port"), err
    assert repr(port) in err[0]


def test_serve_on_a_port_in_use_is_one_line_error_and_status_1(capsys):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        status, out, err = run_driver(capsys, "serve", "--port", str(port))
    assert status == 1 and err == [f"error: port {port} is in use: Address already in use "
                                   "(served already? try --port)"], err
