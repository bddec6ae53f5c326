"""all-MiniLM-L6-v2 on ONNX Runtime: the same vectors as the torch embedder, without torch.

Run time needs only ``onnxruntime``, ``tokenizers`` and numpy, and a model directory with
``model.onnx`` and ``tokenizer.json`` (written by ``python -m querio.model_export``; in Lambda
a layer at ``/opt/model``). The graph already holds the mean pooling and the L2
normalisation; a ``model.onnx`` that returns token vectors instead (rank 3, e.g. an export by
sentence-transformers) is mean-pooled here with the attention mask.

Same contract as :class:`querio.embedding.SentenceTransformerEmbedder`: 384-d, L2-normalised
float32, a 256-word-piece window, token counts from ``tokenizers`` on ``tokenizer.json``
without truncation or padding, batches sorted by token length, input order kept, lazy
loading under a lock, ``warm()`` and ``load_seconds``. Differences that matter:

* each text is tokenized once: the ids that give the sort order also feed the model;
* a batch holds texts of one token length, so nothing is padded and the graph needs no
  attention mask (``querio.model_export`` exports it without one: the mask added to every
  head's scores cost 1.37x in throughput). A graph with an ``attention_mask`` input (e.g. an
  export by sentence-transformers) gets length-sorted batches padded to their longest text;
* one single-threaded ``InferenceSession`` (sequential execution, all graph optimisations),
  run concurrently: ONNX Runtime allows ``run`` from several threads, and with one intra-op
  thread each run computes on its caller's thread. A query runs on the caller's thread and
  never waits behind a document batch; document batches are spread over a pool of one worker
  per usable core (data-parallel instead of ``intra_op`` threads). Why: an ``intra_op`` run
  synchronises its threads after every operator, so when anything else needs a core (the
  next file's parse, the database) the whole run waits for its slowest thread, and the cores
  took turns (issue 13: parsing the next file beside a two-thread session gained 1-5 %).
  Independent batches have no such barrier. Measured in one process (2 cores, the 2,242 eval
  chunks, ``qint8``, two rounds): alone the two are within noise, 64.0 / 56.0 chunks/s on two
  intra-op threads (batch 32) against 59.7 / 56.7 data-parallel at batch 32 and 67.6 / 56.8 at
  batch 16, with the same vectors at the same batch size; with the next file parsed beside
  it, see ``querio.ingest.bulk``. A ~15-word-piece query takes as long on one thread
  as on two (p50 4.0 against 3.9 ms), so the other core stays free for the database's BM25
  read that a search overlaps with it;
* tokenization is shared too (the tokenizer is never reconfigured after load).

Measured 2026-11-29 on this 2-core machine while other jobs shared it (load average 3-7, so
absolute numbers swing 3-50x; every column ran in the same process, alternating, and the
"quiet" figures are the rounds when the load dropped). 300 chunks of R-intro, gnuplot and
clsguide from querio's own chunker (mean 713 characters, 202 tokens), batch 16; queries are
single calls of up to 80 characters; cold start is a fresh ``python -c`` (interpreter, imports,
model load, one query vector), wall time.

=============================================  ============  ===========  ===========  ===========
                                               torch + s-t   ONNX fp32    ONNX fp16    ONNX int8
=============================================  ============  ===========  ===========  ===========
query p50, quiet rounds (ms)                   12.7, 9.4     3.9, 3.8     4.2, 3.5     3.7, 3.4
query p50 / p95, all 400 per column (ms)       59 / 695      4.9 / 22     6.9 / 36     12 / 54
chunks/s, quiet rounds                         39.8, 45.2    27.4, 42.0   40.9, 43.8   44.3, 44.4
chunks/s, median of 4 rounds                   26.7          19.8         26.1         26.2
ONNX / torch chunks/s, 6 alternating pairs     1             1.04 (median; 0.75-1.35)
cold start, 2 quiet runs (s)                   5.6, 6.5      0.47, 0.47   0.45, 0.43   0.43, 0.43
cold start, median of 5 (s)                    9.2           1.13         0.91         1.52
cosine to torch, 300 chunks, min / mean        (0.9999998)   0.9999998/1  0.9999994/1  0.9978/0.99990
top-10 overlap, 50 queries x 300 chunks        1             1.000        0.998        0.994
model directory (MB, 10^6 bytes)               90.9          90.8         67.4         55.8
=============================================  ============  ===========  ===========  ===========

fp16 and int8 shrink only the word-embedding table (compute stays fp32, so their speed is
fp32's; the differences above are noise); on 600 chunks of the six eval manuals int8's
cosine min is 0.990 (table-of-contents leaders), fp16's 0.99999. Conclusions: queries are
2.5-3x faster than torch and stay fast under CPU contention (torch's p50 went to 270-600 ms
when the machine was busy, ONNX's to 16-28 ms); cold start is ~10x shorter; ingest
throughput is on a par with torch, not higher. Hence what ships since issue 13 is ``qint8``
(int8 MatMul weights per output channel): ~1.8x the fp32 throughput, cosine to torch min 0.965,
judged by recall on the eval questions instead (README "Embeddings"). Run time needs
onnxruntime (78 MB installed), tokenizers (12 MB) and numpy (73 MB with numpy.libs), against torch's 1+ GB.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from querio.embedding import DIMENSION, MAX_TOKENS, MODEL_NAME, _l2_normalise, _usable_cores, variant_of
from querio.errors import ConfigurationError
from querio.ports import Vector

if TYPE_CHECKING:  # pragma: no cover
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
MANIFEST_FILE = "querio-model.json"
_HINT = "set QUERIO_MODEL_DIR to a directory written by `python -m querio.model_export --out DIR`"


class OnnxEmbedder:
    """``ports.Embedder`` for all-MiniLM-L6-v2 on ONNX Runtime (CPU)."""

    model_name: str = MODEL_NAME
    dimension: int = DIMENSION
    max_tokens: int = MAX_TOKENS

    def __init__(self, model_dir: str | Path, *, batch_size: int = 32, threads: int | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model_dir = Path(model_dir)
        self.batch_size = batch_size
        #: document batches embedded at once (one core each)
        self.threads = threads or _usable_cores()
        self._session: Any = None  # onnxruntime.InferenceSession (one intra-op thread), loaded lazily
        self._workers: ThreadPoolExecutor | None = None  # runs document batches, ``threads`` at once
        self._input_names: tuple[str, ...] = ()
        self._masked = False  # the graph takes an attention mask, so a batch may mix lengths (padded)
        self._pooled = True  # the graph returns sentence vectors (rank 2), not token vectors
        self._tokenizer: Tokenizer | None = None
        self._cls = self._sep = 0
        self._load_lock = threading.Lock()
        #: Seconds the last model load took (import + session + a probe run), for logs and benchmarks.
        self.load_seconds: float | None = None
        #: The manifest's ``precision`` ("fp32", "int8"), once loaded; ``None`` without a manifest.
        self.precision: str | None = None
        self._variant: str | None = None

    # --- public API ------------------------------------------------------------------------------

    @property
    def model_path(self) -> Path:
        return self.model_dir

    @property
    def variant(self) -> str:
        """Model, quantization and export hash (:func:`querio.embedding.variant_of`), from the
        manifest; a model without one is identified by hashing ``model.onnx``."""
        if self._variant is None:
            manifest = self._read_manifest()
            if manifest is not None and manifest.get("precision"):
                self._variant = variant_of(str(manifest["precision"]), manifest.get("model_sha256"))
            else:
                from querio.model_export import sha256_file

                path = self.model_dir / MODEL_FILE
                if not path.is_file():
                    raise ConfigurationError(f"ONNX embedding model not found: {path} ({_HINT})")
                self._variant = variant_of(None, sha256_file(path))
        return self._variant

    @property
    def loaded(self) -> bool:
        """Whether the ONNX session exists (the tokenizer alone does not count)."""
        return self._session is not None

    def embed_documents(self, texts: Sequence[str]) -> Vector:
        """Embed ``texts``; shape ``(len(texts), 384)``, float32, rows of L2 norm 1.

        Texts over 254 word pieces are truncated (the chunker prevents it). Input order is kept
        although batches run in token-length order, ``threads`` batches at once; a batch's
        vectors depend only on its texts, so they are the same whichever worker runs it. Without
        a mask input a batch holds one token length; real chunks have ~200 distinct lengths, so
        most batches still hold several texts (batch sizes 4 to 64 embed within noise of each
        other here).
        """
        n = len(texts)
        if n == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        self._ensure_session()
        pieces = self._pieces(texts)
        lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=n)
        capped = np.minimum(lengths, self.max_tokens - 2)
        order = np.argsort(capped, kind="stable")
        groups = [order] if self._masked else np.split(order, np.flatnonzero(np.diff(capped[order])) + 1)
        batches = [g[lo:lo + self.batch_size] for g in groups for lo in range(0, len(g), self.batch_size)]
        out = np.empty((n, self.dimension), dtype=np.float32)
        if len(batches) == 1 or self.threads == 1:
            for idx in batches:
                out[idx] = self._run([pieces[i] for i in idx])
        else:
            workers = self._ensure_workers()
            # in order of submission: a concurrent caller's batches queue behind these, not between
            runs = [workers.submit(self._run, [pieces[i] for i in idx]) for idx in batches]
            for idx, run in zip(batches, runs, strict=True):
                out[idx] = run.result()
        return _l2_normalise(out)

    def embed_query(self, text: str) -> Vector:
        """Embed one query; shape ``(384,)``, float32, L2 norm 1 (on the caller's thread)."""
        self._ensure_session()
        return _l2_normalise(self._run(self._pieces([text])))[0]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word pieces per text: the model's own tokenizer, no special tokens, no truncation."""
        if not texts:
            return []
        return [len(p) for p in self._pieces(texts)]

    def warm(self) -> None:
        """Load the tokenizer and the model now (e.g. before a server starts listening)."""
        self._ensure_tokenizer()
        self._ensure_session()

    # --- encoding --------------------------------------------------------------------------------

    def _pieces(self, texts: Sequence[str]) -> list[list[int]]:
        """Word-piece ids of each text, without special tokens, truncation or padding."""
        encodings = self._ensure_tokenizer().encode_batch(list(texts), add_special_tokens=False)
        return [e.ids for e in encodings]

    def _run(self, batch: Sequence[Sequence[int]], session: Any = None) -> np.ndarray:
        """Sentence vectors (not yet re-normalised) for one batch of word-piece id lists:
        ``[CLS] ids[:254] [SEP]``, padded with 0 to the batch's longest (only a graph with a
        mask input is given rows of several lengths), as the Hugging Face tokenizer with
        ``truncation=True, max_length=256, padding=True`` would give."""
        keep = self.max_tokens - 2
        width = min(max(len(p) for p in batch), keep) + 2
        if not self._masked and min(len(p) for p in batch) + 2 < width:
            raise ValueError("a batch for a graph without an attention mask must hold one token length")
        ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, p in enumerate(batch):
            m = min(len(p), keep)
            ids[row, 0] = self._cls
            ids[row, 1:m + 1] = p[:m]
            ids[row, m + 1] = self._sep
            mask[row, :m + 2] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        feed = {name: feed[name] for name in self._input_names}
        result = (session or self._session).run(None, feed)[0]
        if not self._pooled:  # token vectors: attention-masked mean
            weights = mask[:, :, None].astype(np.float32)
            result = (result * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return np.asarray(result, dtype=np.float32)

    # --- loading ---------------------------------------------------------------------------------

    def _ensure_tokenizer(self) -> Tokenizer:
        tokenizer = self._tokenizer
        if tokenizer is None:
            with self._load_lock:
                if self._tokenizer is None:
                    self._tokenizer = self._load_tokenizer()
                tokenizer = self._tokenizer
        return tokenizer

    def _load_tokenizer(self) -> Tokenizer:
        from tokenizers import Tokenizer

        path = self.model_dir / TOKENIZER_FILE
        if not path.is_file():
            raise ConfigurationError(f"embedding tokenizer not found: {path} ({_HINT})")
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as exc:
            raise ConfigurationError(f"embedding tokenizer {path} is unreadable: {exc}") from exc
        # the shipped file truncates and pads to 128: both off, or every count would be 128
        tok.no_truncation()
        tok.no_padding()
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        if cls is None or sep is None:
            raise ConfigurationError(f"embedding tokenizer {path} has no [CLS]/[SEP] token")
        self._cls, self._sep = cls, sep
        return tok

    def _ensure_session(self) -> Any:
        session = self._session
        if session is None:
            self._ensure_tokenizer()
            with self._load_lock:
                if self._session is None:
                    self._session = self._load()
                session = self._session
        return session

    def _ensure_workers(self) -> ThreadPoolExecutor:
        workers = self._workers
        if workers is None:
            with self._load_lock:
                if self._workers is None:
                    self._workers = ThreadPoolExecutor(self.threads, thread_name_prefix="querio-embed")
                workers = self._workers
        return workers

    def _load(self) -> Any:
        """Create the session, check the manifest and the output width with one probe run.
        Called under ``_load_lock``; the caller publishes the session only when all is well."""
        started = time.perf_counter()
        path = self.model_dir / MODEL_FILE
        if not path.is_file():
            raise ConfigurationError(f"ONNX embedding model not found: {path} ({_HINT})")
        manifest = self._read_manifest()
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - a broken install
            raise ConfigurationError("the ONNX embedder needs the 'onnxruntime' package") from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # each run on its caller's thread; parallel runs (above)
        options.inter_op_num_threads = 1
        # never busy-wait (moot with one intra-op thread, kept should that change): on a shared
        # CPU spinning threads steal the time the work needs (load 3.5: query p50 22 ms spinning,
        # 10 ms without; eval chunks, qint8: 101 chunks/s without spinning, 73 with)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ConfigurationError(f"ONNX embedding model {path} cannot be loaded: {exc}") from exc
        names = tuple(i.name for i in session.get_inputs())
        unknown = set(names) - {"input_ids", "attention_mask", "token_type_ids"}
        if "input_ids" not in names or unknown:
            raise ConfigurationError(
                f"ONNX embedding model {path} has inputs {list(names)}; expected input_ids and optionally"
                " attention_mask and token_type_ids")
        self._input_names = names
        self._masked = "attention_mask" in names
        self._pooled = len(session.get_outputs()[0].shape) == 2
        try:
            probe = self._run([[]], session)  # [CLS] [SEP]: checks the width, warms the session
        except Exception as exc:
            raise ConfigurationError(f"ONNX embedding model {path} fails to run: {exc}") from exc
        if probe.shape != (1, self.dimension) or not np.isfinite(probe).all():
            raise ConfigurationError(
                f"ONNX embedding model {path} gives vectors of shape {probe.shape[1:]}, expected ({self.dimension},)")
        self.precision = manifest.get("precision") if manifest else None
        self.load_seconds = time.perf_counter() - started
        log.info("embedding model %s (onnx %s) loaded from %s in %.2f s (%d batches at once)", self.model_name,
                 self.precision or "unknown precision", self.model_dir, self.load_seconds, self.threads)
        return session

    def _read_manifest(self) -> dict[str, Any] | None:
        path = self.model_dir / MANIFEST_FILE
        if not path.exists():
            return None
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(manifest, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"embedding model manifest {path} is unreadable: {exc}") from exc
        for key, expected in (("model_name", self.model_name), ("dimension", self.dimension)):
            if key in manifest and manifest[key] != expected:
                raise ConfigurationError(
                    f"embedding model at {self.model_dir} is {key}={manifest[key]!r}, expected {expected!r}")
        return manifest
