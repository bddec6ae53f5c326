"""The Lambda artifacts themselves, built by the same bundlers CDK runs, then imported and run.

The layers are built for CPython 3.13 (the newest interpreter on this machine; Lambda runs 3.14
with the same wheels one minor version on) and laid out as Lambda does: the function's code on
``sys.path`` first, then the layers' ``python/`` directories (``/opt/python``), then the runtime's
own boto3. A fresh ``python3.13 -I`` (no site-packages, no PYTHONPATH) must then import every
handler, embed with ONNX Runtime from the model layer, and agree with the local embedder, with no
torch anywhere. This is the check that the pruning in ``stacks/bundling.py`` removed nothing needed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stacks import bundling

pytestmark = [pytest.mark.infrastructure, pytest.mark.slow]

PYTHON = "3.13"
ROOT = Path(__file__).resolve().parents[2]


def find_python() -> str | None:
    """A real python3.13 (pyenv's shim refuses to run a version that is not selected)."""
    for candidate in sorted(Path.home().glob(f".pyenv/versions/{PYTHON}*/bin/python{PYTHON}")):
        return str(candidate)
    found = shutil.which(f"python{PYTHON}")
    return found if found and "/shims/" not in found else None


@pytest.fixture(scope="module")
def lambda_layout(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    python = find_python()
    if python is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"python{PYTHON} is needed to run the bundled layers")
        pytest.skip(f"python{PYTHON} not installed")
    base = tmp_path_factory.mktemp("lambda")
    layout = {"python": Path(python), "deps": base / "deps", "runtime": base / "runtime", "model": base / "model",
              "aws_runtime": base / "aws-runtime"}
    assert bundling.PipDependencies(python_version=PYTHON).try_bundle(str(layout["deps"]))
    assert bundling.CopyRuntime().try_bundle(str(layout["runtime"]))
    assert bundling.ExportModel().try_bundle(str(layout["model"]))
    # what the Lambda runtime itself provides (/var/runtime): boto3 and botocore
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--only-binary=:all:",
                    "--python-version", PYTHON, "--target", str(layout["aws_runtime"]), "boto3"],
                   check=True, capture_output=True)
    return layout


SCRIPT = r"""
import importlib.util, json, os, sys, time
started = time.perf_counter()
layout = json.loads(sys.argv[1])
sys.path[:0] = [layout["deps"] + "/python", layout["runtime"] + "/python", layout["aws_runtime"]]
os.environ.update({"QUERIO_EMBEDDER": "onnx", "QUERIO_MODEL_DIR": layout["model"] + "/model",
                   "HF_HUB_OFFLINE": "1", "QUERIO_DATA_DIR": layout["tmp"]})
assert importlib.util.find_spec("torch") is None and importlib.util.find_spec("sentence_transformers") is None
handlers = {}
for name in ("query", "ingest", "archive", "migrate"):
    spec = importlib.util.spec_from_file_location(f"{name}_handler", f"{layout['functions']}/{name}/handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handlers[name] = module
imported = time.perf_counter()
from querio.embedding import get_embedder
embedder = get_embedder(16)
vector = embedder.embed_query("How do I give a LaTeX command an optional argument?")
first = time.perf_counter()
import cryptography, pinecone, psycopg, pypdf, redis
from psycopg import pq
print(json.dumps({"embedder": type(embedder).__name__, "vector": [float(x) for x in vector],
                  "libpq": pq.version(), "handlers": sorted(handlers),
                  "import_s": imported - started, "first_embedding_s": first - imported}))
"""


def test_bundled_layers_import_every_handler_and_embed_without_torch(lambda_layout: dict[str, Path],
                                                                       tmp_path: Path) -> None:
    args = {k: str(v) for k, v in lambda_layout.items()} | {"functions": str(ROOT / "functions"),
                                                            "tmp": str(tmp_path)}
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    proc = subprocess.run([str(lambda_layout["python"]), "-I", "-c", SCRIPT, json.dumps(args)], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["embedder"] == "OnnxEmbedder"
    assert out["handlers"] == ["archive", "ingest", "migrate", "query"]
    assert out["libpq"] >= 160000  # psycopg's bundled libpq speaks to RDS PostgreSQL 16
    from querio.embedding import get_embedder

    query = "How do I give a LaTeX command an optional argument?"
    vector = np.asarray(out["vector"], dtype=np.float32)
    # the layer ships the qint8 export: the same vector as the local qint8 model, close to torch's
    shipped = get_embedder(16, "onnx", None, "qint8").embed_query(query)
    assert float(np.dot(shipped, vector)) >= 0.9999
    reference = get_embedder(16, "torch", None).embed_query(query)
    assert float(np.dot(reference, vector)) >= 0.95
    print(f"\nLambda layout ({PYTHON}): handlers imported in {out['import_s']:.2f} s, "
          f"first embedding after {out['first_embedding_s']:.2f} s")


def test_layers_fit_lambda_with_room(lambda_layout: dict[str, Path]) -> None:
    from querio.tiers import LAMBDA_UNZIPPED_LIMIT_BYTES
    from stacks.asset_sizes import tree_bytes

    total = sum(tree_bytes(lambda_layout[k]) for k in ("deps", "runtime", "model"))
    total += tree_bytes(ROOT / "functions" / "ingest")
    assert total < LAMBDA_UNZIPPED_LIMIT_BYTES * 0.95, f"{total / 2**20:.1f} MB"
