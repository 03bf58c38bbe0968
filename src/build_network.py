"""The driver: train the examples, or classify a PNG digit with a shipped network.

    python src/build_network.py                 # Example 1: the seed's MNIST net (784-50-10), 20 epochs
    python src/build_network.py clusters        # Example 2: the seed's cluster classifier
    python src/build_network.py mlp800          # 784-800-800-10 with dropout, Adam: 98.5%+
    python src/build_network.py cnn             # the reference CNN: 99.3%+
    python src/build_network.py lstm            # sequential MNIST with an LSTM (also gru, rnn)
    python src/build_network.py charlm          # a character-level LSTM on the KJV Pentateuch
    python src/build_network.py predict datasets/my_handwriting/drawn_3.png

Each training example prints one line per epoch (with a progress bar within
the epoch), saves its cost/accuracy curves to plots/ and the trained network
to pre-trained/.
"""
import argparse
import os
import sys
import time

import numpy as np

from nnscratch import (Adam, Callback, CosineAnnealingLR, Network, cross_entropy_cost, cross_entropy_cost_prime_SM,
                       gen_clusters, get_mnist, load_digit_image, load_mnist, quadratic_cost, quadratic_cost_prime)
from model_zoo import build_char_lm, build_cnn, build_mlp800, build_sequence_classifier
from nnscratch.plotting import (plot_clusters, plot_curves, plot_digit_probabilities, plot_feature_maps,
                                plot_filters, plot_history)

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
PLOTS = os.path.join(ROOT, "plots")
PRE_TRAINED = os.path.join(ROOT, "pre-trained")
DEFAULT_MODEL = os.path.join(PRE_TRAINED, "mlp50.pickle")


def train_mnist(args):
    """Example 1, the seed's: 784-50 ReLU-10 ReLU-softmax, cross-entropy, SGD 20 epochs, batch 32, eta 0.04."""
    training_data, testing_data = get_mnist()
    net = Network(784, cross_entropy_cost, cross_entropy_cost_prime_SM, seed=args.seed)
    net.add_fc_layer(50)
    net.add_relu_layer(50)
    net.add_fc_layer(10)
    net.add_relu_layer(10)
    net.add_softmax_layer(10)
    print(net.summary())
    start = time.perf_counter()
    history = net.stochastic_gradient_descent(training_data, args.epochs or 20, 32, 0.04, testing_data)
    print(f"trained in {time.perf_counter() - start:.1f} s "
          f"({np.median(history['time']):.2f} s per epoch of training, median)")
    finish(net, history, "mlp50", "MNIST 784-50-10, SGD eta 0.04, batch 32")


def train_clusters(args):
    """Example 2, the seed's: 2-4 sigmoid-3 sigmoid, quadratic cost, SGD 30 epochs, batch 50, eta 0.9."""
    training_data, test_data, choices = gen_clusters(seed=args.seed)
    net = Network(2, quadratic_cost, quadratic_cost_prime, seed=args.seed)
    net.add_fc_layer(4)
    net.add_sigmoid_layer(4)
    net.add_fc_layer(3)
    net.add_sigmoid_layer(3)
    history = net.stochastic_gradient_descent(training_data, args.epochs or 30, 50, 0.9, test_data)
    for x in ([[0.3], [0.3]], [[0.6], [0.5]]):
        point = np.array(x)
        print(f"point ({point[0, 0] * 500:.0f}, {point[1, 0] * 500:.0f}) is {choices[np.argmax(net.forward_pass(point))]}")
    print("saved", plot_clusters(net, test_data, choices, os.path.join(PLOTS, "clusters_regions.png")))
    finish(net, history, "clusters", "clusters 2-4-3 sigmoid, quadratic cost")


def finish(net, history, name, title):
    """Save the curves and the network; print where they went."""
    curves = plot_history(history, os.path.join(PLOTS, f"{name}_curves.png"), title=title)
    path = os.path.join(PRE_TRAINED, f"{name}.pickle")
    net.save(path)
    print(f"saved {os.path.relpath(curves, ROOT)} and {os.path.relpath(path, ROOT)}")
    if history["val_accuracy"]:
        print(f"final test accuracy {history['val_accuracy'][-1]:.4f}")


def train_mlp800(args):
    """784-800-800-10 with dropout 0.2, Adam 1e-3 annealed by a cosine over the run, batch 128."""
    X_train, y_train, X_test, y_test = load_mnist()
    net = build_mlp800(args.seed)
    print(net.summary())
    epochs = args.epochs or 20
    history = net.fit(X_train, y_train, epochs=epochs, batch_size=128, optimizer=Adam(lr=1e-3),
                      validation_data=(X_test, y_test), callbacks=[CosineAnnealingLR(T_max=epochs)])
    print(f"{np.median(history['time']):.2f} s per epoch of training (median)")
    finish(net, history, "mlp800", "MNIST 784-800-800-10, dropout 0.2, Adam + cosine, batch 128")


def train_cnn(args):
    """The reference CNN, Adam 1e-3 annealed by a cosine over the run, batch 64."""
    X_train, y_train, X_test, y_test = load_mnist()
    X_train, X_test = X_train.reshape(-1, 1, 28, 28), X_test.reshape(-1, 1, 28, 28)   # (N, C, H, W)
    net = build_cnn(args.seed)
    print(net.summary())
    epochs = args.epochs or 15
    start = time.perf_counter()
    history = net.fit(X_train, y_train, epochs=epochs, batch_size=64, optimizer=Adam(lr=1e-3),
                      validation_data=(X_test, y_test), callbacks=[CosineAnnealingLR(T_max=epochs)])
    print(f"trained in {(time.perf_counter() - start) / 60:.1f} min, "
          f"{np.median(history['time']):.1f} s per epoch of training (median)")
    finish(net, history, "cnn", "MNIST CNN (conv32-pool-conv64-pool-fc128), Adam + cosine, batch 64")
    print("saved", os.path.relpath(plot_filters(net.layers[0], os.path.join(PLOTS, "cnn_filters.png")), ROOT),
          "and", os.path.relpath(plot_feature_maps(net, X_test[0], os.path.join(PLOTS, "cnn_feature_maps.png")), ROOT))


def train_sequence(args, kind):
    """Sequential MNIST: each image read as 28 rows of 28 pixels by an LSTM, GRU or RNN of 128."""
    X_train, y_train, X_test, y_test = load_mnist()
    X_train, X_test = X_train.reshape(-1, 28, 28), X_test.reshape(-1, 28, 28)    # (N, T=28, D=28)
    net = build_sequence_classifier(kind, 128, seed=args.seed)
    print(net.summary())
    epochs = args.epochs or 12
    history = net.fit(X_train, y_train, epochs=epochs, batch_size=64, optimizer=Adam(lr=1e-3, clip_norm=5.0),
                      validation_data=(X_test, y_test), callbacks=[CosineAnnealingLR(T_max=epochs)])
    print(f"{np.median(history['time']):.1f} s per epoch of training (median)")
    finish(net, history, kind, f"sequential MNIST, {kind.upper()}(128), Adam + cosine, batch 64")


def train_charlm(args):
    """A character-level LSTM on the KJV Pentateuch, truncated BPTT over 100 characters."""
    from nnscratch import text
    corpus = open(os.path.join(ROOT, "datasets", "kjv", "pentateuch.txt"), encoding="utf-8").read()
    vocab = text.Vocabulary(corpus)
    ids = vocab.encode(corpus)
    split = int(len(ids) * 0.9)
    train_ids, held_out = ids[:split], ids[split:]                 # the last tenth (most of Deuteronomy)
    streams, seq_len = 64, 100
    X, Y = text.bptt_batches(train_ids, streams, seq_len)
    net = build_char_lm(len(vocab), seed=args.seed)
    print(net.summary())
    print(f"{len(corpus):,} characters, {len(vocab)} distinct; {len(X) // streams} batches of "
          f"{streams} x {seq_len} per epoch")
    bits = {"held-out bits per character": []}

    class Report(Callback):
        def on_epoch_begin(self, net, epoch):
            net.reset_state()

        def on_epoch_end(self, net, epoch, history):
            bpc = text.bits_per_character(net, held_out)
            bits["held-out bits per character"].append(bpc)
            print(f"  held-out: {bpc:.3f} bits per character; sample at temperature 0.7:")
            print("  " + text.sample(net, vocab, "1:1 ", 240, 0.7, np.random.default_rng(epoch)).replace("\n", "\n  "))

    epochs = args.epochs or 8
    history = net.fit(X, Y, epochs=epochs, batch_size=streams, shuffle=False,
                      optimizer=Adam(lr=2e-3, clip_norm=5.0), callbacks=[Report(), CosineAnnealingLR(epochs)])
    history["bits_per_character"] = bits["held-out bits per character"]
    for temperature in (0.5, 1.0):
        print(f"--- temperature {temperature} ---")
        print(text.sample(net, vocab, "And the LORD spake", 400, temperature, np.random.default_rng(1)))
    print("saved", os.path.relpath(plot_curves(
        {"training (cost / ln 2)": np.array(history["loss"]) / np.log(2), **bits},
        os.path.join(PLOTS, "charlm_bits.png"), "bits per character",
        "character LSTM on the KJV Pentateuch"), ROOT))
    finish(net, history, "charlm", "character LSTM(256), KJV Pentateuch")


def predict(args):
    """Classify a PNG digit with a shipped network; print the digit and the ten probabilities."""
    net = Network.load(args.model)
    image = load_digit_image(args.png)
    x = image.reshape((1,) + net.input_shape)
    probabilities = net.predict_proba(x)[0]
    digit = int(np.argmax(probabilities))
    print(f"It is a .... {digit}")
    print("  ".join(f"{d}: {p:.3f}" for d, p in enumerate(probabilities)))
    if args.plot:
        print("saved", plot_digit_probabilities(image, probabilities, args.plot))


EXAMPLES = {"mnist": train_mnist, "clusters": train_clusters, "mlp800": train_mlp800, "cnn": train_cnn,
            "lstm": lambda args: train_sequence(args, "lstm"), "gru": lambda args: train_sequence(args, "gru"),
            "rnn": lambda args: train_sequence(args, "rnn"), "charlm": train_charlm}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("example", nargs="?", default="mnist", choices=sorted(EXAMPLES) + ["predict"],
                        help="what to run (default: mnist)")
    parser.add_argument("png", nargs="?", help="for predict: the PNG file of a digit")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="for predict: the network file")
    parser.add_argument("--plot", help="for predict: also save the digit and its probabilities to this PNG")
    parser.add_argument("--epochs", type=int, default=None, help="override the example's epoch count")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    if args.example == "predict":
        if not args.png:
            parser.error("predict needs a PNG file: build_network.py predict path/to/digit.png")
        return predict(args)
    return EXAMPLES[args.example](args)


if __name__ == "__main__":
    sys.exit(main())
