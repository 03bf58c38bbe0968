"""The digit page's server under load: 300 CNN predictions from 8 concurrent clients, none failing."""
import os
import sys

from nnscratch.web.server import one_blas_thread, start_in_thread

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
if ROOT not in sys.path:   # benchmarks/ is a package at the repository's root
    sys.path.insert(0, ROOT)

from benchmarks.web_load import run_load  # noqa: E402


def test_300_cnn_predictions_from_8_concurrent_clients_all_succeed():
    server, url = start_in_thread(os.path.join(ROOT, "pre-trained"), names=["cnn"])
    try:
        with one_blas_thread():   # as `build_network.py serve` runs
            result = run_load(url, "cnn", requests=300, clients=8)
    finally:
        server.shutdown()
    assert result.failures == [], result.failures[:5]
    assert len(result.latencies_ms) == 300 and set(result.digits) == {7}
    print(f"cnn, 300 requests from 8 clients: median {result.percentile(50):.0f} ms, "
          f"p95 {result.percentile(95):.0f} ms, {300 / result.wall_s:.0f} requests/s")
