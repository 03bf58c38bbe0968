"""The digit page's predict API under load: many requests from a few concurrent clients.

    python benchmarks/web_load.py [--requests 300] [--clients 8] [--models mlp50,cnn]

Starts the server (``nnscratch.web.server``, Werkzeug's threaded server) in a
thread on a free port, warms each model up, then sends ``--requests``
multipart ``POST /api/predict`` requests of one shipped picture
(``mnist_test_0_label7.png``, 280x280 canvases are about that size) from
``--clients`` threads at once, each waiting for its answer before sending
the next, as a page does. A request's latency runs from sending it to having
read the whole answer; a failure is an error status, a broken connection or
an answer that is not a valid prediction. Prints the median and the 95th
percentile per model, with the CPU and the load average: the clients run in
the same process as the server, on the same cores. NumPy's BLAS is held to
one thread, as ``build_network.py serve`` holds it.
"""
import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

if __package__ in (None, ""):  # run as a script: make the benchmarks package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import REPO, machine  # noqa: E402  (puts src/ on sys.path)
from nnscratch.web.server import one_blas_thread, start_in_thread  # noqa: E402

DIGIT = os.path.join(REPO, "datasets", "my_handwriting", "mnist_test_0_label7.png")
MODELS = os.path.join(REPO, "pre-trained")
BOUNDARY = "nnscratch-web-load"


@dataclass
class LoadResult:
    """What ``run_load`` measured: one latency per answered request, one line per failure."""
    model: str
    latencies_ms: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    digits: list = field(default_factory=list)      # the digit of each valid answer
    wall_s: float = 0.0

    def percentile(self, q):
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


def multipart_body(image_bytes, model):
    """The form a page sends: the file in the field ``image`` and the model's name."""
    return (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\n{model}\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="digit.png"\r\n'
            f"Content-Type: image/png\r\n\r\n").encode() + image_bytes + f"\r\n--{BOUNDARY}--\r\n".encode()


def problem_with(answer, model):
    """Why ``answer`` is not a valid prediction by ``model``, or None."""
    probabilities = answer.get("probabilities")
    if answer.get("model") != model:
        return f"answered by {answer.get('model')!r}"
    if not isinstance(answer.get("digit"), int) or not 0 <= answer["digit"] <= 9:
        return f"digit {answer.get('digit')!r}"
    if not (isinstance(probabilities, list) and len(probabilities) == 10
            and abs(sum(probabilities) - 1) < 1e-4 and int(np.argmax(probabilities)) == answer["digit"]):
        return f"probabilities {probabilities!r}"
    if np.shape(answer.get("image")) != (28, 28):
        return f"image of shape {np.shape(answer.get('image'))}"
    return None


def run_load(url, model, requests=300, clients=8, image_bytes=None, timeout=60):
    """Send ``requests`` predictions to ``url`` (the server's root) from ``clients`` threads at once.

    Parameters
    ----------
    url : str, e.g. ``"http://127.0.0.1:8000/"``
    model : str, a name from ``GET /api/models``
    requests, clients : int
    image_bytes : bytes, the image file to send (default: the shipped MNIST seven)
    timeout : float, seconds a client waits for one answer

    Returns
    -------
    LoadResult, with ``latencies_ms`` of the valid answers and ``failures``.
    """
    if image_bytes is None:
        with open(DIGIT, "rb") as f:
            image_bytes = f.read()
    body = multipart_body(image_bytes, model)
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    result = LoadResult(model)

    def one(_):
        start = time.perf_counter()
        try:
            req = urllib.request.Request(url.rstrip("/") + "/api/predict", data=body, headers=headers)
            with urllib.request.urlopen(req, timeout=timeout) as response:
                text = response.read()
            latency = 1000 * (time.perf_counter() - start)
            answer = json.loads(text)
        except urllib.error.HTTPError as err:
            return None, f"HTTP {err.code}: {err.read()[:200]!r}"
        except (OSError, ValueError) as err:
            return None, f"{type(err).__name__}: {err}"
        problem = problem_with(answer, model)
        return (latency, answer["digit"]), problem

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for answered, problem in pool.map(one, range(requests)):   # list.append is thread-safe, but
            if problem:                                            # map keeps this in one thread anyway
                result.failures.append(problem)
            else:
                result.latencies_ms.append(answered[0])
                result.digits.append(answered[1])
    result.wall_s = time.perf_counter() - start
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per model (default 300)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--models", default="mlp50,cnn", help="comma-separated models (default mlp50,cnn)")
    args = parser.parse_args(argv)
    models = args.models.split(",")
    server, url = start_in_thread(MODELS, names=models)
    blas = one_blas_thread()   # BLAS on one thread, as `build_network.py serve` runs
    try:
        print(f"CPU: {machine.cpu_model()}, {os.cpu_count()} cores; BLAS: "
              f"{machine.describe_blas(machine.blas_info())}; load average before: {machine.loadavg()}")
        print(f"{args.requests} POST /api/predict per model from {args.clients} concurrent clients "
              f"(multipart, {os.path.basename(DIGIT)}), server at {url}")
        print(f"{'model':<8} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} {'req/s':>7}  failures")
        for model in models:
            run_load(url, model, requests=2 * args.clients, clients=args.clients)   # warm-up
            r = run_load(url, model, requests=args.requests, clients=args.clients)
            print(f"{model:<8} {r.percentile(50):10.1f} {r.percentile(95):8.1f} "
                  f"{max(r.latencies_ms, default=0):8.1f}"
                  f" {len(r.latencies_ms) / r.wall_s:7.1f}  {len(r.failures)}")
            for failure in r.failures[:5]:
                print("   ", failure)
        print(f"load average after: {machine.loadavg()} (p95: numpy.percentile, linear interpolation)")
    finally:
        server.shutdown()
        blas.restore_original_limits()
    return 0


if __name__ == "__main__":
    sys.exit(main())
