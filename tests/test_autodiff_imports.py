"""The import structure: any autodiff module can be imported first, the modules
import each other one way only, and ``import nnscratch`` needs none of the
optional libraries (Pillow, matplotlib, pandas, tqdm, scikit-learn).

Each import runs in a fresh interpreter (a subprocess), since within this test
session every module is already imported."""
import ast
import os
import subprocess
import sys
from pathlib import Path

import nnscratch.autodiff

AUTODIFF = Path(nnscratch.autodiff.__file__).parent
MODULES = sorted(f"nnscratch.autodiff.{p.stem}" for p in AUTODIFF.glob("*.py") if p.stem != "__init__")
MODULES += ["nnscratch.autodiff", "nnscratch.layers.tensor_forms"]


def run_fresh(code):
    """Start ``python -c code`` in a fresh interpreter (returns the running process)."""
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


# One fresh interpreter imports NumPy, then forks one child per module, all at
# once: each child imports its module before anything else of nnscratch is
# loaded, and the whole check takes about the time of two imports.
IMPORT_EACH_FIRST = """
import importlib, os, sys, traceback
import numpy                                   # shared by the children
assert not [m for m in sys.modules if m.startswith("nnscratch")]
children = {}
for module in MODULES:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(module)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    children[pid] = module
failed = [module for pid, module in children.items() if os.waitpid(pid, 0)[1] != 0]
print(failed)
"""


def test_every_autodiff_module_imports_first_in_a_fresh_interpreter():
    assert len(MODULES) >= 14
    if hasattr(os, "fork"):
        proc = run_fresh(f"MODULES = {MODULES!r}\n" + IMPORT_EACH_FIRST)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0 and out.strip() == "[]", err
        return
    procs = {m: run_fresh(f"import {m}") for m in MODULES}     # no fork: one interpreter each
    failures = {m: p.communicate(timeout=60)[1] for m, p in procs.items() if p.wait(timeout=60) != 0}
    assert not failures, failures


def module_imports(path):
    """The sibling modules that ``path`` imports when it is loaded (module-level ``from .x import``)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in tree.body:                                   # top level only: what runs at import
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found


def test_autodiff_modules_import_each_other_one_way_only():
    """A cycle would make the result depend on which module is imported first."""
    graph = {p.stem: module_imports(p) for p in AUTODIFF.glob("*.py") if p.stem != "__init__"}
    assert graph["mode"] == set() and graph["tensor"] == {"mode"}
    done, visiting = set(), []

    def visit(module):
        assert module not in visiting, f"import cycle: {' -> '.join(visiting + [module])}"
        if module in done:
            return
        visiting.append(module)
        for dep in graph[module]:
            visit(dep)
        visiting.pop()
        done.add(module)

    for module in graph:
        visit(module)
    assert done == set(graph)


def test_the_autodiff_engine_does_not_import_the_layers():
    """Only ``bridge`` (AutodiffLayer, the checks) uses the rest of nnscratch; the package
    itself is the engine and its operations, which may use ``nnscratch.special`` (NumPy-only
    math that imports nothing of nnscratch, as tests/test_special.py checks)."""
    for path in AUTODIFF.glob("*.py"):
        tree = ast.parse(path.read_text())
        outside = [node.module or ", ".join(alias.name for alias in node.names) for node in tree.body
                   if isinstance(node, ast.ImportFrom) and node.level >= 2]
        if path.stem == "bridge":
            assert outside
        else:
            assert set(outside) <= {"special"}, (path.name, outside)


BLOCK_OPTIONAL = """
import importlib.abc, sys

OPTIONAL = ("PIL", "matplotlib", "pandas", "tqdm", "sklearn")

class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in OPTIONAL:
            raise ImportError(f"No module named {name!r} (blocked by the test)")

sys.meta_path.insert(0, Missing())
"""

TRAIN_WITHOUT_OPTIONAL = BLOCK_OPTIONAL + """
import numpy as np
import nnscratch
from nnscratch import SGD, Network

rng = np.random.default_rng(0)
X = rng.standard_normal((200, 4)).astype(np.float32)
y = (X[:, 0] + X[:, 1] > 0).astype(int)
net = Network(4, seed=0)
net.add_fc_layer(8); net.add_relu_layer(); net.add_fc_layer(2); net.add_softmax_layer()
history = net.fit(X, y, epochs=20, batch_size=20, optimizer=SGD(lr=0.5), verbose=0)
accuracy = net.evaluate(X, y)["accuracy"]
assert history["loss"][-1] < history["loss"][0] and accuracy > 0.9, (history["loss"], accuracy)
try:                                        # a shipped PNG: only Pillow is missing
    nnscratch.load_digit_image(DIGIT)
except ImportError as err:
    assert "Pillow" in str(err), err
else:
    raise AssertionError("load_digit_image read an image without Pillow")
loaded = sorted(m for m in sys.modules if m.split(".")[0] in OPTIONAL)
assert not loaded, loaded
print("ok", round(accuracy, 3))
"""


def test_nnscratch_imports_and_trains_without_the_optional_libraries():
    digit = Path(__file__).resolve().parents[1] / "datasets" / "my_handwriting" / "drawn_0.png"
    assert digit.exists()
    proc = run_fresh(f"DIGIT = {str(digit)!r}\n" + TRAIN_WITHOUT_OPTIONAL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.startswith("ok")
