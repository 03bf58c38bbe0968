"""The driver: train the examples, or classify a picture of a digit with a shipped network.

    python src/build_network.py                 # the main job: the seed's MNIST net (784-50-10), 20 epochs
    python src/build_network.py clusters        # the seed's Example 2: a cluster classifier
    python src/build_network.py mlp800          # 784-800-800-10 with dropout, Adam: 98.5%+
    python src/build_network.py cnn             # the reference CNN: 99.3%+
    python src/build_network.py cnn-aug         # a CNN with batch norm on augmented digits: 99.6%
    python src/build_network.py lstm            # sequential MNIST with an LSTM (also gru, rnn)
    python src/build_network.py charlm          # a character-level LSTM on the KJV Pentateuch
    python src/build_network.py chargpt         # a character-level GPT on the same text
    python src/build_network.py predict datasets/my_handwriting/drawn_3.png [--model cnn]
    python src/build_network.py serve [--port 8000]   # a page to draw digits on, read by the shipped networks
    mpirun -n 2 python src/build_network.py cnn --distributed   # data-parallel over MPI (also --resume)

Every training example takes --epochs, --batch-size, --lr, --seed, --limit N
(train on the first N samples, for a quick try), --out DIR and --quiet;
`python src/build_network.py EXAMPLE --help` shows its defaults and how long
it takes. A run writes its network, its curves (.png) and a table of
per-epoch metrics (.csv) to --out (by default runs/EXAMPLE/, which git
ignores); only --update-shipped writes over the shipped pre-trained/ and
plots/ files. The network is written twice: as .safetensors (the weights and
the architecture, loaded without running any code: the file to share) and as
.pickle (the seed's format). A mistake on the command line prints one line `error: ...` and
exits with status 2 (1 for a failure while running); set NNSCRATCH_TRACEBACK=1
to see the full traceback instead.
"""
import argparse
import os
import sys
import time

import numpy as np

from nnscratch import (Adam, Callback, CosineAnnealingLR, Network, UnsafePickleError, cross_entropy_cost,
                       cross_entropy_cost_prime_SM, gen_clusters, get_mnist, load_digit_image, load_mnist,
                       quadratic_cost, quadratic_cost_prime)
from model_zoo import build_char_gpt, build_char_lm, build_cnn, build_cnn_aug, build_mlp800, build_sequence_classifier

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SHIPPED_PLOTS = os.path.join(ROOT, "plots")
SHIPPED_NETWORKS = os.path.join(ROOT, "pre-trained")
RUNS = os.path.join(ROOT, "runs")          # the default output folder (in .gitignore)
DIGIT_CLASSIFIERS = ("mlp50", "mlp800", "cnn", "cnn-aug", "lstm", "gru", "rnn")
DATA_PARALLEL = ("mlp800", "cnn", "cnn-aug", "lstm", "gru", "rnn")   # the examples with --distributed, --resume


class UserError(Exception):
    """A mistake the user can fix: printed as one line ``error: ...``, exit status 2."""


# -- where a run writes ---------------------------------------------------------
class Outputs:
    """The files of one run: the network, its plots and its metrics table.

    By default everything goes to ``runs/<example>/`` (or ``--out``); with
    ``--update-shipped`` the network goes to ``pre-trained/`` and the figures and
    metrics to ``plots/``, replacing the shipped files.
    """

    def __init__(self, args):
        self.name = args.network_name
        self.shipped = args.update_shipped
        if self.shipped:
            self.networks, self.plots = SHIPPED_NETWORKS, SHIPPED_PLOTS
        else:
            folder = os.path.abspath(args.out or os.path.join(RUNS, args.example))
            if os.path.exists(folder) and not os.path.isdir(folder):
                raise UserError(f"--out {folder} exists and is not a folder")
            self.networks = self.plots = folder

    def plot(self, suffix):
        return os.path.join(self.plots, f"{self.name}_{suffix}")

    def networks_files(self):
        """The network in both formats: .safetensors (the safe one) and .pickle (the seed's)."""
        return [os.path.join(self.networks, f"{self.name}{extension}") for extension in (".safetensors", ".pickle")]


def finish(net, history, args, title, extra_plots=()):
    """Save the network, its curves and its per-epoch metrics; print where they went.

    An interrupted run (Ctrl-C) never replaces the shipped files: it is saved
    to the output folder even with ``--update-shipped``.
    """
    from nnscratch.plotting import plot_history
    if not args.root:               # a distributed run: rank 0 alone writes the files and prints
        return
    if history.interrupted and args.update_shipped:
        print("interrupted: not replacing the shipped files; saving this run to the output folder instead")
        args.update_shipped = False
    outputs = Outputs(args)
    os.makedirs(outputs.networks, exist_ok=True)
    os.makedirs(outputs.plots, exist_ok=True)
    saved = [plot_history(history, outputs.plot("curves.png"), title=title)]
    metrics = outputs.plot("metrics.csv")
    history.to_dataframe().to_csv(metrics, index=False, float_format="%.6g")
    saved.append(metrics)
    for suffix, draw in extra_plots:
        saved.append(draw(outputs.plot(suffix)))
    for path in outputs.networks_files():
        net.save(path)
        saved.append(path)
    if history["val_accuracy"]:
        print(f"final test accuracy {history['val_accuracy'][-1]:.4f}"
              f"{' (interrupted after epoch %d)' % history.epochs if history.interrupted else ''}")
    print("saved:\n  " + "\n  ".join(os.path.abspath(path) for path in saved))


def say(args, *lines):
    """Print unless --quiet (and, in a distributed run, on rank 0 only)."""
    if not args.quiet and args.root:
        print(*lines, sep="\n")


def limit(args, *arrays):
    """The first ``--limit`` samples of each array (all of them without --limit)."""
    return tuple(a[:args.limit] for a in arrays) if args.limit else arrays


def epochs_and_schedule(args):
    return args.epochs, [CosineAnnealingLR(T_max=args.epochs)]


# -- the examples -------------------------------------------------------------------
def train_mnist(args):
    """The seed's Example 1: 784-50 ReLU-10 ReLU-softmax, cross-entropy, plain SGD."""
    training_data, testing_data = get_mnist()
    training_data, = limit(args, training_data)
    net = Network(784, cross_entropy_cost, cross_entropy_cost_prime_SM, seed=args.seed)
    net.add_fc_layer(50)
    net.add_relu_layer(50)
    net.add_fc_layer(10)
    net.add_relu_layer(10)
    net.add_softmax_layer(10)
    say(args, net.summary())
    start = time.perf_counter()
    history = net.stochastic_gradient_descent(training_data, args.epochs, args.batch_size, args.lr, testing_data,
                                              verbose=0 if args.quiet else 1)
    say(args, f"trained in {time.perf_counter() - start:.1f} s "
              f"({np.median(history['time']):.2f} s per epoch of training, median)")
    finish(net, history, args, f"MNIST 784-50-10, SGD eta {args.lr:g}, batch {args.batch_size}")


def train_clusters(args):
    """The seed's Example 2: 2-4 sigmoid-3 sigmoid, quadratic cost, plain SGD."""
    from nnscratch.plotting import plot_clusters
    training_data, test_data, choices = gen_clusters(seed=args.seed)
    training_data, = limit(args, training_data)
    net = Network(2, quadratic_cost, quadratic_cost_prime, seed=args.seed)
    net.add_fc_layer(4)
    net.add_sigmoid_layer(4)
    net.add_fc_layer(3)
    net.add_sigmoid_layer(3)
    history = net.stochastic_gradient_descent(training_data, args.epochs, args.batch_size, args.lr, test_data,
                                              verbose=0 if args.quiet else 1)
    for x in ([[0.3], [0.3]], [[0.6], [0.5]]):
        point = np.array(x)
        say(args, f"point ({point[0, 0] * 500:.0f}, {point[1, 0] * 500:.0f}) is "
                  f"{choices[np.argmax(net.forward_pass(point))]}")
    finish(net, history, args, "clusters 2-4-3 sigmoid, quadratic cost",
           [("regions.png", lambda path: plot_clusters(net, test_data, choices, path))])


def fit_mnist_model(args, net, X_train, y_train, X_test, y_test, clip_norm=None, augment=None):
    """Adam with a cosine schedule over the run: the recipe of mlp800, cnn, cnn-aug, lstm, gru and rnn."""
    say(args, net.summary())
    epochs, schedule = epochs_and_schedule(args)
    X_train, y_train = limit(args, X_train, y_train)
    start = time.perf_counter()
    history = net.fit(X_train, y_train, epochs=epochs, batch_size=args.batch_size,
                      optimizer=Adam(lr=args.lr, clip_norm=clip_norm), validation_data=(X_test, y_test),
                      callbacks=schedule, verbose=0 if args.quiet else 1, augment=augment,
                      distributed=args.distributed, checkpoint=checkpoint_path(args), resume=args.resume)
    say(args, f"trained in {(time.perf_counter() - start) / 60:.1f} min, "
              f"{np.median(history['time']):.2f} s per epoch of training (median)")
    return history


def checkpoint_path(args):
    """Where a run keeps its last finished epoch for --resume: the output folder (never the shipped ones)."""
    folder = os.path.abspath(args.out or os.path.join(RUNS, args.example))
    return os.path.join(folder, f"{args.network_name}_resume.pickle")


def train_mlp800(args):
    """784-800-800-10 ReLU with dropout 0.2, Adam annealed by a cosine over the run."""
    net = build_mlp800(args.seed)
    history = fit_mnist_model(args, net, *load_mnist())
    finish(net, history, args, f"MNIST 784-800-800-10, dropout 0.2, Adam + cosine, batch {args.batch_size}")


def train_cnn(args):
    """The reference CNN (conv32-pool-conv64-pool-fc128-dropout-fc10), Adam annealed by a cosine."""
    from nnscratch.plotting import plot_feature_maps, plot_filters
    X_train, y_train, X_test, y_test = load_mnist()
    X_train, X_test = X_train.reshape(-1, 1, 28, 28), X_test.reshape(-1, 1, 28, 28)   # (N, C, H, W)
    net = build_cnn(args.seed)
    history = fit_mnist_model(args, net, X_train, y_train, X_test, y_test)
    finish(net, history, args, f"MNIST CNN (conv32-pool-conv64-pool-fc128), Adam + cosine, batch {args.batch_size}",
           [("filters.png", lambda path: plot_filters(net.layers[0], path)),
            ("feature_maps.png", lambda path: plot_feature_maps(net, X_test[0], path))])


def train_cnn_aug(args):
    """A CNN with batch norm trained on randomly rotated, scaled and shifted digits (never the test digits)."""
    from nnscratch.augment import mnist_augmentation
    from nnscratch.plotting import plot_feature_maps, plot_filters
    X_train, y_train, X_test, y_test = load_mnist()
    X_train, X_test = X_train.reshape(-1, 1, 28, 28), X_test.reshape(-1, 1, 28, 28)   # (N, C, H, W)
    net = build_cnn_aug(args.seed)
    augment = mnist_augmentation()
    say(args, f"augmentation: {augment}")
    history = fit_mnist_model(args, net, X_train, y_train, X_test, y_test, augment=augment)
    finish(net, history, args, f"MNIST CNN with batch norm on augmented digits, Adam + cosine, "
                               f"batch {args.batch_size}",
           [("filters.png", lambda path: plot_filters(net.layers[0], path)),
            ("feature_maps.png", lambda path: plot_feature_maps(net, X_test[0], path))])


def train_sequence(args):
    """Sequential MNIST: each image read as 28 rows of 28 pixels by a recurrent layer of 128."""
    X_train, y_train, X_test, y_test = load_mnist()
    X_train, X_test = X_train.reshape(-1, 28, 28), X_test.reshape(-1, 28, 28)    # (N, T=28, D=28)
    net = build_sequence_classifier(args.example, 128, seed=args.seed)
    history = fit_mnist_model(args, net, X_train, y_train, X_test, y_test, clip_norm=5.0)
    finish(net, history, args, f"sequential MNIST, {args.example.upper()}(128), Adam + cosine, "
                               f"batch {args.batch_size}")


def train_charlm(args):
    """A character-level LSTM on the KJV Pentateuch, truncated BPTT over 100 characters."""
    from nnscratch import text
    from nnscratch.plotting import plot_curves
    corpus = open(os.path.join(ROOT, "datasets", "kjv", "pentateuch.txt"), encoding="utf-8").read()
    vocab = text.Vocabulary(corpus)
    ids = vocab.encode(corpus)
    split = int(len(ids) * 0.9)
    train_ids, held_out = ids[:split], ids[split:]                 # the last tenth (most of Deuteronomy)
    streams, seq_len = args.batch_size, 100                        # a batch is `streams` parallel streams
    X, Y = text.bptt_batches(train_ids, streams, seq_len)
    if args.limit:                                                 # whole batches, so the streams stay continuous
        rows = max(streams, args.limit // streams * streams)
        X, Y = X[:rows], Y[:rows]
    net = build_char_lm(len(vocab), seed=args.seed)
    say(args, net.summary(), f"{len(corpus):,} characters, {len(vocab)} distinct; {len(X) // streams} batches "
                             f"of {streams} x {seq_len} per epoch")
    bits = []

    class Report(Callback):
        def on_epoch_begin(self, run):
            run.net.reset_state()

        def on_epoch_end(self, run):
            bits.append(text.bits_per_character(run.net, held_out))
            sample = text.sample(run.net, vocab, "1:1 ", 240, 0.7, np.random.default_rng(run.epoch))
            say(args, f"  held-out: {bits[-1]:.3f} bits per character; sample at temperature 0.7:",
                "  " + sample.replace("\n", "\n  "))

    epochs, schedule = epochs_and_schedule(args)
    history = net.fit(X, Y, epochs=epochs, batch_size=streams, shuffle=False,
                      optimizer=Adam(lr=args.lr, clip_norm=5.0), callbacks=[Report()] + schedule,
                      verbose=0 if args.quiet else 1)
    history["bits_per_character"] = bits
    for temperature in (0.5, 1.0):
        say(args, f"--- temperature {temperature} ---",
            text.sample(net, vocab, "And the LORD spake", 400, temperature, np.random.default_rng(1)))
    if bits:
        print(f"final held-out bits per character {bits[-1]:.3f}")
    curves = {"training (cost / ln 2)": np.array(history["loss"]) / np.log(2), "held-out bits per character": bits}
    finish(net, history, args, "character LSTM(256), KJV Pentateuch",
           [("bits.png", lambda path: plot_curves(curves, path, "bits per character",
                                                  "character LSTM on the KJV Pentateuch"))])


def train_chargpt(args):
    """A character-level GPT on the KJV Pentateuch: random windows, AdamW, warm-up + cosine, clipping."""
    import chargpt
    from nnscratch import generation
    from nnscratch.plotting import plot_attention_maps, plot_curves
    vocab, train_ids, held_out = chargpt.load_corpus()
    context = chargpt.CONTEXT
    if args.limit:                                      # N windows' worth of text, an eighth as much held out
        train_ids = train_ids[:args.limit * context + 1]
        held_out = held_out[:max(4 * context, args.limit * context // 8) + 1]
    net = build_char_gpt(len(vocab), seed=args.seed)
    steps = max(1, round(args.epochs * (len(train_ids) - 1) / (args.batch_size * context)))
    budget = f"{args.minutes:g} minutes of training" if args.minutes else f"{steps} steps ({args.epochs} epochs)"
    say(args, net.summary(), f"{len(vocab)} distinct characters, {len(train_ids):,} to train on, "
                             f"{len(held_out):,} held out; batches of {args.batch_size} x {context}; {budget}")

    def report(history):
        say(args, f"  {history['seconds'][-1]:6.0f} s, step {history['steps'][-1]}: held-out "
                  f"{history['bits_per_character'][-1]:.3f} bits per character (training "
                  f"{history['loss'][-1] / np.log(2):.3f})")

    history = chargpt.train(net, train_ids, held_out, context=context, batch=args.batch_size, lr=args.lr,
                            steps=None if args.minutes else steps,
                            seconds=args.minutes * 60 if args.minutes else None, seed=args.seed,
                            verbose=0 if args.quiet else 1, on_evaluation=report)
    for temperature in (0.5, 0.8):
        say(args, f"--- temperature {temperature}, top-k 10 ---",
            generation.sample_text(net, vocab, "And the LORD spake", 400, temperature, 10, np.random.default_rng(1)))
    if history["bits_per_character"]:
        print(f"final held-out bits per character {history['bits_per_character'][-1]:.3f}")
    curves = {"training (cost / ln 2)": np.array(history["loss"]) / np.log(2),
              "held-out bits per character": history["bits_per_character"]}
    sentence = "And the LORD spake unto Moses, saying,"
    maps = chargpt.attention_maps(net, vocab.encode(sentence))
    say(args, "what the heads attend to, in the sentence " + repr(sentence) + ":", *chargpt.describe_heads(maps))
    finish(net, history, args, "character GPT, KJV Pentateuch",
           [("bits.png", lambda path: plot_curves(curves, path, "bits per character",
                                                  "character GPT on the KJV Pentateuch",
                                                  x=history["steps"], xlabel="training step")),
            ("attention.png", lambda path: plot_attention_maps(maps, sentence, path,
                                                               "attention weights, every block and head"))])


# -- predict --------------------------------------------------------------------------
def find_network(model):
    """``--model``: a shipped name (``cnn``: its .safetensors file) or a path to a network file."""
    if model in DIGIT_CLASSIFIERS or model in ("charlm", "chargpt"):
        return os.path.join(SHIPPED_NETWORKS, f"{model}.safetensors")
    if not os.path.exists(model):
        raise UserError(f"--model {model}: no such file (shipped networks: {', '.join(DIGIT_CLASSIFIERS)})")
    if os.path.isdir(model):
        raise UserError(f"--model {model} is a folder, not a network file")
    return model


def load_digit_classifier(model):
    """Load a network and check that it maps a 28x28 image to ten classes."""
    path = find_network(model)
    try:
        net = Network.load(path)
    except (ValueError, OSError, UnsafePickleError) as err:
        raise UserError(f"--model {model}: {err}") from None
    fixed = None not in net.input_shape
    if not (fixed and int(np.prod(net.input_shape)) == 784 and net.output_shape == (10,)):
        raise UserError(f"--model {model} is not a digit classifier: it takes input {net.input_shape} and gives "
                        f"{net.output_shape}; predict needs 784 pixels in and 10 classes out "
                        f"(shipped: {', '.join(DIGIT_CLASSIFIERS)})")
    return net


def predict(args):
    """Classify a picture of a digit; print the digit and the ten probabilities."""
    net = load_digit_classifier(args.model)
    if not os.path.exists(args.image):
        raise UserError(f"{args.image}: no such file")
    if os.path.isdir(args.image):
        raise UserError(f"{args.image} is a folder, not an image file")
    try:
        image = load_digit_image(args.image)
    except (ValueError, OSError) as err:
        raise UserError(str(err)) from None
    probabilities = net.predict_proba(image.reshape((1,) + net.input_shape))[0]   # (784,) -> (1, *input_shape)
    print(f"It is a .... {int(np.argmax(probabilities))}")
    print("  ".join(f"{d}: {p:.3f}" for d, p in enumerate(probabilities)))
    if args.plot:
        from nnscratch.plotting import plot_digit_probabilities
        print("saved", os.path.abspath(plot_digit_probabilities(image, probabilities, args.plot)))


# -- serve -----------------------------------------------------------------------------
def serve(args):
    """Serve the digit page on ``--host:--port`` until Ctrl-C (nnscratch.web.server, on Flask)."""
    try:
        from nnscratch.web.server import serve as serve_page
    except ImportError as err:
        raise UserError(f"serve needs Flask: pip install -r requirements.txt ({err})") from None
    serve_page(SHIPPED_NETWORKS, args.host, args.port)


# -- the command line ------------------------------------------------------------------
# name: (function, shipped file name, epochs, batch size, learning rate, what it trains, expected time)
EXAMPLES = {
    "mnist": (train_mnist, "mlp50", 20, 32, 0.04, "the seed's MNIST net 784-50-10, plain SGD (the main job)",
              "about 20 s"),
    "clusters": (train_clusters, "clusters", 30, 50, 0.9, "the seed's 2-4-3 sigmoid cluster classifier, SGD",
                 "a few seconds"),
    "mlp800": (train_mlp800, "mlp800", 20, 128, 1e-3, "784-800-800-10 ReLU with dropout 0.2, Adam + cosine",
               "about 2 minutes"),
    "cnn": (train_cnn, "cnn", 15, 64, 1e-3, "the reference CNN, Adam + cosine", "about 7 minutes"),
    "cnn-aug": (train_cnn_aug, "cnn-aug", 25, 64, 2e-3, "a CNN with batch norm on augmented digits (rotation, "
                "scale, shift), Adam + cosine", "about 26 minutes"),
    "lstm": (train_sequence, "lstm", 12, 64, 1e-3, "sequential MNIST with an LSTM(128), Adam + cosine",
             "about 3 minutes"),
    "gru": (train_sequence, "gru", 12, 64, 1e-3, "sequential MNIST with a GRU(128), Adam + cosine",
            "about 2.5 minutes"),
    "rnn": (train_sequence, "rnn", 12, 64, 1e-3, "sequential MNIST with a tanh RNN(128), Adam + cosine",
            "about 1 minute"),
    "charlm": (train_charlm, "charlm", 8, 64, 2e-3, "a character LSTM(256) on the KJV Pentateuch, Adam + cosine "
               "(a batch is 64 streams of 100 characters)", "about 3 minutes"),
    "chargpt": (train_chargpt, "chargpt", 12, 32, 2e-3, "a character GPT (4 blocks of 128, 4 heads, 128 characters "
                "of context) on the KJV Pentateuch, AdamW + warm-up + cosine", "about 15 minutes"),
}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a mistake is one line ``error: ...`` on stderr (exit status 2), without the usage."""

    def error(self, message):
        raise UserError(f"{message} (see: python src/build_network.py {self.prog.split()[-1]} --help)"
                        if " " in self.prog else f"{message} (see --help)")


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def port_number(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number 1-65535, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 1-65535, got {text!r}")
    return value


def make_parser():
    parser = OneLineParser(prog="build_network.py", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="example", metavar="EXAMPLE", parser_class=OneLineParser)
    for name, (function, network_name, epochs, batch_size, lr, what, duration) in EXAMPLES.items():
        sub = commands.add_parser(name, help=f"{what} ({duration})", description=(
            f"Train {what}.\nWith the defaults it takes {duration} on 2 cores. Writes the network, its curves and "
            f"a per-epoch metrics table to --out (default runs/{name}/)."),
            formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.add_argument("--epochs", type=positive_int, default=epochs, help=f"epochs to train (default {epochs})")
        sub.add_argument("--batch-size", type=positive_int, default=batch_size,
                         help=f"mini-batch size (default {batch_size})")
        sub.add_argument("--lr", type=positive_float, default=lr, help=f"learning rate (default {lr:g})")
        sub.add_argument("--seed", type=int, default=0, help="random seed: weights, shuffling, dropout (default 0)")
        sub.add_argument("--limit", type=positive_int, default=None, metavar="N",
                         help="train on the first N training samples only, for a quick try (default: all)")
        sub.add_argument("--out", metavar="DIR", help=f"output folder (default runs/{name}/, ignored by git)")
        sub.add_argument("--quiet", action="store_true", help="print only the result")
        sub.add_argument("--update-shipped", action="store_true",
                         help=f"replace the shipped pre-trained/{network_name}.safetensors and .pickle and "
                              f"plots/{network_name}_* "
                              "(to refresh them on purpose)")
        if name in DATA_PARALLEL:
            sub.add_argument("--distributed", action="store_true",
                             help="data-parallel over MPI, each rank training on its share of every batch: "
                                  f"mpirun -n 2 python src/build_network.py {name} --distributed "
                                  "(pip install mpi4py mpich); rank 0 alone prints and writes the files")
            sub.add_argument("--resume", action="store_true",
                             help=f"continue from the last finished epoch, kept in the output folder "
                                  f"({network_name}_resume.pickle): the same result as an uninterrupted run")
        if name == "chargpt":
            sub.add_argument("--minutes", type=positive_float, default=None, metavar="M",
                             help="train for M minutes instead of --epochs (the clock stops while evaluating)")
        sub.set_defaults(run=function, network_name=network_name)
    sub = commands.add_parser("predict", help="classify a picture of a digit with a shipped network",
                              description="Classify a picture of a handwritten digit (PNG, JPEG, BMP, ... any "
                                          "image Pillow reads) and print the ten class probabilities.")
    sub.add_argument("image", help="the image file of a digit")
    sub.add_argument("--model", default="mlp50",
                     help=f"a shipped digit classifier ({', '.join(DIGIT_CLASSIFIERS)}) or the path of a "
                          "network file (default mlp50, the shipped pre-trained/mlp50.safetensors)")
    sub.add_argument("--plot", metavar="PNG", help="also save the digit as the network sees it and its "
                                                   "probabilities to this PNG")
    sub.set_defaults(run=predict)
    sub = commands.add_parser("serve", help="a page to draw a digit on and watch the shipped networks read it",
                              description="Serve a local web page: draw a digit (or drop an image) and see "
                                          "the shipped classifiers' probabilities, the 28x28 image they see "
                                          "and the CNN's feature maps. Ctrl-C stops the server.")
    sub.add_argument("--port", type=port_number, default=8000, help="the port to listen on (default 8000)")
    sub.add_argument("--host", default="127.0.0.1",
                     help="the address to listen on (default 127.0.0.1: this computer only)")
    sub.set_defaults(run=serve)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["mnist"] + argv               # no example named: the main job
    try:
        args = make_parser().parse_args(argv)
        args.root = True
        if getattr(args, "distributed", False):
            from nnscratch import distributed
            try:
                args.root = distributed.is_root()
            except ImportError as err:
                raise UserError(err) from None
        args.run(args)
    except UserError as err:
        return fail(err, 2)
    except (ValueError, OSError, UnsafePickleError) as err:
        return fail(err, 1)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


def fail(err, status):
    if os.environ.get("NNSCRATCH_TRACEBACK"):
        raise err
    print(f"error: {err}", file=sys.stderr)
    return status


if __name__ == "__main__":
    if "--distributed" in sys.argv[1:]:     # a failure on one rank stops every rank (not a hang)
        from nnscratch.distributed import run_guard
        with run_guard():
            sys.exit(main())
    sys.exit(main())
