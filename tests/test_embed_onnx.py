"""The ONNX Runtime path of ``TextEncoder``: the same vectors as PyTorch, the exported file kept
in a cache folder keyed by the model and checked against its sha256."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from test_features_train import webkb_docs

from pagecat.errors import UsageError
from pagecat.features.embed import QUANTIZED, TextEncoder, default_model_path, model_fingerprint
from pagecat.features.onnx_encoder import exported_model, onnx_runtime_available
from pagecat.features.tfidf import doc_text

pytestmark = pytest.mark.skipif(not onnx_runtime_available(), reason="onnxruntime is not installed")


@pytest.fixture(scope="module")
def texts() -> list[str]:
    docs = webkb_docs(step=20)[:40]
    # long pages, a title only, an empty text: batches of every width, padded and not
    return [doc_text(d["title"], d["text"]) for d in docs] + ["", "short", "a course page"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def torch_vectors(texts) -> np.ndarray:
    return TextEncoder(max_length=64, batch_size=8, backend="torch", precision="float32").encode(texts)


def test_onnx_gives_the_torch_vectors(texts, cache, torch_vectors):
    enc = TextEncoder(max_length=64, batch_size=8, cache_dir=cache, precision="float32")
    got = enc.encode(texts)
    assert enc.backend_ == "onnx"  # the CPU default for float32 when onnxruntime is installed
    assert got.shape == torch_vectors.shape == (len(texts), 384) and got.dtype == np.float32
    assert np.abs(got - torch_vectors).max() < 1e-5
    assert np.sum(got * torch_vectors, axis=1).min() > 0.99999
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    other = TextEncoder(max_length=64, batch_size=5, cache_dir=cache, precision="float32")
    other_batches = other.encode(texts[::-1])[::-1]
    assert np.abs(other_batches - got).max() < 1e-5
    assert enc.encode([]).shape == (0, 384)


def test_the_exported_file_is_reused_and_keyed_by_the_model(cache):
    path = default_model_path()
    first = exported_model(path, model_fingerprint(path), cache)
    stamp = os.stat(first).st_mtime_ns
    again = exported_model(path, model_fingerprint(path), cache)
    assert again == first and os.stat(again).st_mtime_ns == stamp  # not exported twice
    assert model_fingerprint(path) in os.path.basename(os.path.dirname(first))
    meta = json.loads(open(os.path.join(os.path.dirname(first), "model.json")).read())
    assert meta["model_fingerprint"] == model_fingerprint(path) and len(meta["sha256"]) == 64


def test_a_changed_cache_file_is_exported_again(texts, tmp_path, torch_vectors):
    path = default_model_path()
    onnx_path = exported_model(path, model_fingerprint(path), str(tmp_path))
    with open(onnx_path, "r+b") as f:  # corrupt a weight in the middle of the file
        f.seek(os.path.getsize(onnx_path) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    got = TextEncoder(max_length=64, batch_size=8, cache_dir=str(tmp_path), precision="float32").encode(texts)
    assert np.abs(got - torch_vectors).max() < 1e-5


def test_backend_errors():
    with pytest.raises(UsageError, match="embedding backend 'tensorrt': choose one of auto, onnx, torch"):
        TextEncoder(backend="tensorrt")
    with pytest.raises(UsageError, match="embedding backend onnx: it runs float32 on CPU only, without quantize"):
        TextEncoder(backend="onnx", quantize=True).encode(["x"])
    assert TextEncoder(quantize=True).settings()["quantized"] == QUANTIZED
    assert TextEncoder().settings()["quantized"] is False
