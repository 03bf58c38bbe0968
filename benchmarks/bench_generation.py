"""Sampling from the shipped character GPT with and without the key/value cache.

Generates ``--length`` characters (default 500) after a prime, ``--reps``
times each way, alternating, and prints the median seconds, the speed-up and
whether both ways wrote the same characters (same generator seed). Without
the cache every new character runs the whole context (up to 128 positions)
through the network again; with it, one position attends to the cached keys
and values. The context holds at most 128 characters; when it is full, both
ways keep its newer half and carry on (see ``nnscratch.generation``).

Usage: python benchmarks/bench_generation.py [--length 500] [--reps 3] [--model PATH]
"""
import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
sys.path.insert(0, os.path.join(HERE, ".."))

import chargpt                                                       # noqa: E402
from nnscratch import Network, generation                           # noqa: E402

from benchmarks.machine import blas_info, cpu_model, describe_blas  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--length", type=int, default=500, help="characters to generate (default 500)")
    parser.add_argument("--reps", type=int, default=3, help="runs of each way (default 3)")
    parser.add_argument("--model", default=os.path.join(HERE, "..", "pre-trained", "chargpt.pickle"))
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-k", type=int, default=10)
    args = parser.parse_args(argv)
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; BLAS: {describe_blas(blas_info())}")
    vocab, _, _ = chargpt.load_corpus()
    net = Network.load(args.model)
    prime = "And the LORD spake"
    seconds, texts = {True: [], False: []}, {}
    for _ in range(args.reps):
        for cached in (True, False):
            started = time.perf_counter()
            texts[cached] = generation.sample_text(net, vocab, prime, args.length, args.temperature, args.top_k,
                                                   np.random.default_rng(0), kv_cache=cached)
            seconds[cached].append(time.perf_counter() - started)
    with_cache, without = float(np.median(seconds[True])), float(np.median(seconds[False]))
    print(f"{args.length} characters, median of {args.reps}: with the key/value cache {with_cache:.2f} s "
          f"({1000 * with_cache / args.length:.1f} ms a character), without {without:.2f} s "
          f"({1000 * without / args.length:.1f} ms a character): {without / with_cache:.1f}x faster")
    same = texts[True] == texts[False]
    print("both ways wrote the same characters" if same else
          "the two ways wrote different characters (float32 rounding moved a draw across a boundary)")
    print(texts[True])
    return 0


if __name__ == "__main__":
    sys.exit(main())
