"""The digit page's server: a Flask app running the shipped digit classifiers on drawings.

``GET /`` is the page (``static/index.html``, the rest under ``/static/``);
``GET /api/models`` lists the networks; ``POST /api/predict`` takes an image
(a multipart form's field ``image``, or JSON ``{"image": "data:...;base64,..."}``)
and an optional ``model``, and answers the digit, the ten probabilities, the
28x28 image the network saw, timings and, for a CNN, its first feature maps.
A bad request gets a 4xx and ``{"error": "..."}`` saying what was expected.

The networks are loaded once, by the safe loader (``.safetensors``: no code
runs); a request's model name is only ever a key of that dict, never a path.

A lock per network: a forward pass is not re-entrant. Layers keep ``_cache*``
attributes, and the fast paths write into reused scratch arrays
(``Layer.buffer``: Conv2D's im2col matrix, the recurrent gates). Without the
locks, 8 threads predicting the shipped digits gave 236 wrong answers of 800
with the CNN and 98 of 800 with the LSTM. One request at a time runs in each
network; the reading, preprocessing and JSON encoding of requests, and
requests to different networks, run in parallel in Werkzeug's threads.
"""
import base64
import binascii
import errno
import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import WSGIRequestHandler, make_server

from ..digit_image import BLANK, digit_from_bytes
from ..layers import BatchNorm, Conv2D
from ..layers.activations import Activation, Softmax
from ..network import Network

# The shipped digit classifiers (build_network.DIGIT_CLASSIFIERS), in the order the page lists them.
DIGIT_CLASSIFIERS = {
    "mlp50": "MLP 784-50-10, plain SGD (the seed's network)",
    "mlp800": "MLP 784-800-800-10, dropout, Adam",
    "cnn": "CNN conv32-pool-conv64-pool-fc128",
    "cnn-aug": "CNN, batch norm, augmented",
    "lstm": "LSTM(128) reading the 28 rows",
    "gru": "GRU(128) reading the 28 rows",
    "rnn": "tanh RNN(128) reading the 28 rows",
}
DEFAULT_MODEL = "cnn"
MAX_IMAGE_BYTES = 1_000_000                          # "larger than 1 MB" is refused (413)
MAX_BODY_BYTES = MAX_IMAGE_BYTES * 4 // 3 + 65_536   # room for the image in base64 and the form's framing
MAX_PIXELS = 4096 * 4096                             # a 1 MB PNG can unpack to 100 Mpx: refused unread
STATIC = Path(__file__).parent / "static"


class ApiError(Exception):
    """A bad request: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class LoadedModel:
    """A digit classifier loaded once, with the lock that keeps its forward passes apart."""

    def __init__(self, name, net):
        self.name, self.net = name, net
        self.lock = threading.Lock()
        self.has_feature_maps = isinstance(next(net.named_layers())[1], Conv2D)

    def describe(self):
        return {"name": self.name, "description": DIGIT_CLASSIFIERS.get(self.name, self.name),
                "parameters": int(sum(p.data.size for p in self.net.parameters())),
                "input_shape": list(self.net.input_shape), "has_feature_maps": self.has_feature_maps}

    def predict(self, x):
        """Probabilities (10,) for one preprocessed digit ``x`` (784,), and the feature maps or None."""
        with self.lock:
            probabilities = self.net.predict_proba(x.reshape((1,) + self.net.input_shape))[0]
            maps = self._first_feature_maps(x) if self.has_feature_maps else None
        return probabilities, maps

    def _first_feature_maps(self, x):
        """The first convolution's output (C, H, W), through the batch norm and activation right after it.

        Those are what the next layer sees; each map is scaled by its own
        maximum into [0, 1] (negative values, possible without an activation, show as 0).
        """
        conv, *after = [layer for _, layer in self.net.named_layers()][:3]
        out = conv.forward(x.reshape((1,) + self.net.input_shape).astype(self.net.dtype))  # (1, C, H, W)
        if after and isinstance(after[0], BatchNorm):
            out = after.pop(0).forward(out)
        if after and isinstance(after[0], Activation) and not isinstance(after[0], Softmax):
            out = after[0].forward(out)
        maps = np.clip(out[0].astype(np.float64), 0.0, None)                 # (C, H, W)
        peak = maps.max(axis=(1, 2), keepdims=True)                           # (C, 1, 1)
        return np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0)


def load_models(model_dir, names=None):
    """``{name: LoadedModel}`` from ``<model_dir>/<name>.safetensors``.

    ``names`` defaults to the shipped classifiers whose files exist there;
    a name given explicitly must have its file.
    """
    model_dir = Path(model_dir)
    if names is None:
        names = [name for name in DIGIT_CLASSIFIERS if (model_dir / f"{name}.safetensors").is_file()]
    models = {}
    for name in names:
        net = Network.load(model_dir / f"{name}.safetensors")   # FileNotFoundError names a missing one
        if None in net.input_shape or int(np.prod(net.input_shape)) != 784 or net.output_shape != (10,):
            raise ValueError(f"{name}: not a digit classifier: it takes {net.input_shape} and gives "
                             f"{net.output_shape}; expected 784 pixels in and 10 classes out")
        models[name] = LoadedModel(name, net)
    if not models:
        raise ValueError(f"no digit classifiers found in {model_dir} (looked for "
                         f"{', '.join(name + '.safetensors' for name in DIGIT_CLASSIFIERS)})")
    return models


def create_app(model_dir, names=None):
    """The Flask app serving the page and the API, with the networks of ``model_dir`` loaded once."""
    models = load_models(model_dir, names)
    default = DEFAULT_MODEL if DEFAULT_MODEL in models else next(iter(models))
    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False

    @app.get("/")
    def page():
        return app.send_static_file("index.html")

    @app.get("/api/models")
    def list_models():
        return jsonify(models=[model.describe() for model in models.values()], default=default)

    @app.post("/api/predict")
    def predict():
        start = time.perf_counter()
        data, name = _read_upload()
        model = models.get(name or default)        # a name is only ever a key here, never a path
        if model is None:
            raise ApiError(404, f"unknown model {name!r}: the models are {', '.join(models)}")
        decoded = time.perf_counter()
        try:
            x = digit_from_bytes(data, "the upload", max_pixels=MAX_PIXELS)   # (784,)
        except ValueError as err:
            if str(err).endswith(BLANK):
                raise ApiError(422, "no digit found: the image is blank (draw a digit, or send a "
                                    "picture with one)") from None
            raise ApiError(400, f"{err}; expected an image (PNG, JPEG, ...)") from None
        preprocessed = time.perf_counter()
        probabilities, maps = model.predict(x)
        predicted = time.perf_counter()
        answer = {"digit": int(np.argmax(probabilities)),
                  "probabilities": probabilities.astype(np.float64).tolist(),
                  "image": np.round(x.reshape(28, 28).astype(np.float64), 3).tolist(), "model": model.name}
        if maps is not None:
            answer["feature_maps"] = np.round(maps, 3).tolist()
        milliseconds = lambda a, b: round(1000 * (b - a), 3)  # noqa: E731
        answer["timings_ms"] = {"decode": milliseconds(start, decoded),
                                "preprocess": milliseconds(decoded, preprocessed),
                                "predict": milliseconds(preprocessed, predicted),
                                "total": milliseconds(start, time.perf_counter())}
        return jsonify(answer)

    @app.errorhandler(ApiError)
    def api_error(err):
        return jsonify(error=str(err)), err.status

    @app.errorhandler(HTTPException)
    def http_error(err):
        if err.code == 413:
            size = f"{request.content_length:,} bytes" if request.content_length else "too large"
            return jsonify(error=f"the request is {size}, more than the {MAX_BODY_BYTES:,} accepted "
                                 "(images up to 1 MB)"), 413
        if request.path.startswith("/api/"):   # the API answers in JSON; the page's 404s stay HTML
            return jsonify(error=f"{err.name}: {request.method} {request.path} ({err.description})"), err.code
        return err

    return app


def _read_upload():
    """``(image bytes, model name or None)`` from a multipart form or a JSON body, else an ApiError."""
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("image")
        if upload is None:
            fields = ", ".join(map(repr, [*request.form, *request.files]))
            raise ApiError(400, "expected the image file in the form field 'image'; the form has "
                                + (f"the fields {fields}" if fields else "no fields"))
        data, name = upload.read(), request.form.get("model")
    elif request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            came = "not valid JSON" if body is None else f"a {type(body).__name__}"
            raise ApiError(400, 'expected a JSON object {"image": "data:image/png;base64,...", '
                                f'"model": ...}}; the body is {came}')
        data, name = _from_data_url(body.get("image")), body.get("model")
    else:
        raise ApiError(400, "expected multipart/form-data with the file in the field 'image', or a JSON "
                            f"body; got Content-Type {request.content_type or 'none'}")
    if name is not None and not isinstance(name, str):
        raise ApiError(400, f"expected the model as a name (a string such as \"cnn\"), got {name!r}")
    if len(data) > MAX_IMAGE_BYTES:
        raise ApiError(413, f"the image is {len(data):,} bytes; images up to 1 MB "
                            f"({MAX_IMAGE_BYTES:,} bytes) are accepted")
    return data, name


def _from_data_url(url):
    """The bytes of a ``data:<type>;base64,<data>`` URL, else an ApiError(400)."""
    if not isinstance(url, str):
        raise ApiError(400, 'expected "image" as a data URL string "data:image/png;base64,...", got '
                            f"{'nothing' if url is None else type(url).__name__}")
    header, comma, payload = url.partition(",")
    if not (header.startswith("data:") and header.endswith(";base64") and comma):
        raise ApiError(400, 'expected "image" as a data URL "data:image/png;base64,...", got one '
                            f"starting {url[:30]!r}")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as err:
        raise ApiError(400, f"the image's data URL is not valid base64 ({err})") from None


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's handler, logging only failed requests: the page predicts several times a second."""

    def log_request(self, code="-", size="-"):
        if not str(code).startswith(("1", "2", "3")):
            super().log_request(code, size)


def _listen(host, port):
    """A listening socket on ``host:port`` (0: a free port), or an OSError of one sentence.

    Bound here rather than by Werkzeug, which prints to stderr and calls
    ``sys.exit(1)`` when it cannot bind; and before the networks load, so a
    port in use fails at once.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as err:   # (create_server's own message repeats the address)
        reason = os.strerror(err.errno) if (err.errno or 0) > 0 else err.strerror or str(err)
        if err.errno == errno.EADDRINUSE:
            raise OSError(f"port {port} is in use: {reason} (served already? try --port)") from None
        raise OSError(f"cannot listen on {host}:{port}: {reason}") from None


def _make_server(app, host, sock):
    """Werkzeug's threaded server (a thread per request) on the listening socket ``sock``."""
    return make_server(host, sock.getsockname()[1], app, threaded=True,
                       request_handler=_QuietHandler, fd=sock.fileno())


def _url(server):
    host = f"[{server.host}]" if ":" in server.host else server.host
    return f"http://{host}:{server.port}/"


def start_in_thread(model_dir, host="127.0.0.1", port=0, names=None):
    """Serve in a background thread (for tests and benchmarks); returns ``(server, url)``.

    ``port=0`` picks a free port. ``server.shutdown()`` stops it.
    """
    with _listen(host, port) as sock:   # the server works on a duplicate of its descriptor
        server = _make_server(create_app(model_dir, names), host, sock)
    threading.Thread(target=server.serve_forever, name="digit-page-server", daemon=True).start()
    return server, _url(server)


def one_blas_thread():
    """A context holding NumPy's BLAS to one thread, as ``serve`` runs (process-wide).

    The server's parallelism is its requests, a thread each; BLAS threads on
    top only fight them for the cores. Measured with benchmarks/web_load.py
    (300 CNN requests from 8 clients, 2 cores, AMD EPYC, OpenBLAS Haswell,
    beside a training job): median 262-336 ms with OpenBLAS's 2 threads, 149-173 ms with one.
    """
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=1, user_api="blas")


def serve(model_dir, host="127.0.0.1", port=8000):
    """Serve the page until Ctrl-C, then shut down and return.

    Raises ``OSError`` (one sentence) when the port is in use or cannot be bound.
    """
    with _listen(host, port) as sock:   # the server works on a duplicate of its descriptor
        server = _make_server(create_app(model_dir), host, sock)
    print(f"serving the digit page at {_url(server)} (Ctrl-C stops)", flush=True)
    try:
        with one_blas_thread():
            server.serve_forever()   # Werkzeug's returns on KeyboardInterrupt and closes the socket
    except KeyboardInterrupt:        # (one that lands between the lines above)
        pass
    finally:
        server.server_close()
    print("stopped", flush=True)
