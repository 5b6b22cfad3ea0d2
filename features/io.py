"""Reading the docs contract, sparse rows to and from Arrow, and safe file writes.

Shared by the features stage and by ``pagecat.train`` (which may import ``pagecat.features``).
Sparse rows are stored as the TFIDF schema: one row per doc, ``indices`` list<int32> and
``values`` list<float32>, which maps one-to-one onto a CSR matrix's ``indptr/indices/data``.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import safetensors.numpy
import scipy.sparse as sp

from pagecat.errors import UsageError
from pagecat.runs import Manifest, RunDir, write_bytes_atomic
from pagecat.schemas import TFIDF


# -- the docs written by the label stage ---------------------------------------------------
def docs_version(run: RunDir) -> str:
    """The docs version the label stage wrote (``docs/<version>/``), from its manifest."""
    m = Manifest.load(run, "label")
    version = (m.extra or {}).get("docs_version")
    if not version:
        raise UsageError("manifests/label.json has no extra.docs_version; re-run `pagecat label`")
    return str(version)


def docs_parts(run: RunDir) -> dict[str, str]:
    """{part id: path} of every docs part; the part id (file stem) names every derived part."""
    version = docs_version(run)
    paths = run.list_files("docs", version, suffix=".parquet")
    return {p.rsplit("/", 1)[-1].removesuffix(".parquet"): p for p in paths}


def parquet_columns(run: RunDir, path: str) -> list[str]:
    """Column names of a Parquet part, from its footer (optional docs columns: fields, weights)."""
    with run.fs.open(path, "rb") as fh:
        return pq.ParquetFile(fh).schema_arrow.names


# -- sparse rows <-> Arrow ------------------------------------------------------------------
def csr_to_table(doc_ids: list[str], matrix: sp.csr_matrix) -> pa.Table:
    """A CSR matrix (n_docs, n_features) and its row ids to a TFIDF-schema table."""
    matrix = matrix.tocsr()
    if len(doc_ids) != matrix.shape[0]:
        raise ValueError(f"{len(doc_ids)} doc ids for {matrix.shape[0]} rows")
    offsets = pa.array(matrix.indptr.astype(np.int32), pa.int32())
    indices = pa.ListArray.from_arrays(offsets, pa.array(matrix.indices.astype(np.int32), pa.int32()))
    values = pa.ListArray.from_arrays(offsets, pa.array(matrix.data.astype(np.float32), pa.float32()))
    return pa.Table.from_arrays([pa.array(doc_ids, pa.string()), indices, values], schema=TFIDF)


def table_to_csr(table: pa.Table, n_features: int) -> tuple[list[str], sp.csr_matrix]:
    """A TFIDF-schema table back to (doc ids, CSR matrix (n_rows, n_features) float32)."""
    doc_ids = table.column("doc_id").to_pylist()
    if table.num_rows == 0:
        return doc_ids, sp.csr_matrix((0, n_features), dtype=np.float32)
    indices = table.column("indices").combine_chunks()
    values = table.column("values").combine_chunks()
    offsets = np.asarray(indices.offsets, dtype=np.int64)
    indptr = offsets - offsets[0]  # a sliced list array does not start at offset 0
    cols = np.asarray(indices.flatten(), dtype=np.int32)
    data = np.asarray(values.flatten(), dtype=np.float32)
    if len(cols) != len(data):
        raise ValueError("sparse rows: indices and values differ in length")
    return doc_ids, sp.csr_matrix((data, cols, indptr), shape=(len(doc_ids), n_features))


# -- safe files -----------------------------------------------------------------------------
def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_bytes(fs, path: str) -> bytes:
    with fs.open(path, "rb") as f:
        return f.read()


def save_arrays(fs, path: str, arrays: dict[str, np.ndarray]) -> bytes:
    """Write named arrays as safetensors (no code runs on load); returns the bytes written."""
    data = safetensors.numpy.save({k: np.ascontiguousarray(v) for k, v in arrays.items()})
    write_bytes_atomic(fs, path, data)
    return data


def load_arrays(data: bytes) -> dict[str, np.ndarray]:
    return safetensors.numpy.load(data)
