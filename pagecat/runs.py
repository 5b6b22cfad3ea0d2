"""The run directory, stage manifests and atomic part writes, all through fsspec.

A run directory holds every dataset of one pipeline run::

    <run>/raw/            crawl WARC files          <run>/crawl_log/   crawl log parts
    <run>/pages/          parsed pages              <run>/rejects/<stage>/
    <run>/dedup/pages/    deduplicated pages        <run>/duplicates/
    <run>/docs/v1/        labelled docs             <run>/features/tfidf/
    <run>/models/<name>/  model + card              <run>/predictions/
    <run>/manifests/<stage>.json                    <run>/report.html

Parts are written to ``<name>.tmp-<random>`` and renamed when complete, so a reader (or a
resumed stage) never sees half a part.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

import pagecat


def temporary_path(fs, path: str) -> str:
    """The name a file is written under before it is renamed to ``path`` (``list_files`` skips
    such names); its folder is made on ``fs``."""
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    return f"{path}.tmp-{uuid.uuid4().hex[:8]}"


def write_bytes_atomic(fs, path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` on the fsspec filesystem ``fs`` under a temporary name, then
    rename it: a reader never sees half a file."""
    tmp = temporary_path(fs, path)
    with fs.open(tmp, "wb") as f:
        f.write(data)
    fs.mv(tmp, path)


class RunDir:
    """A run directory on any fsspec filesystem. Picklable: workers rebuild the filesystem."""

    def __init__(self, root: str):
        self.root = str(root).rstrip("/")
        self.fs, self._root_path = fsspec.core.url_to_fs(self.root)

    def __reduce__(self):
        return (RunDir, (self.root,))

    def path(self, *parts: str) -> str:
        return "/".join([self._root_path, *parts])

    def url(self, *parts: str) -> str:
        """The path with its protocol, for printing and for other libraries."""
        p = self.path(*parts)
        return p if self.is_local else f"{self._protocol}://{p}"

    def exists(self, *parts: str) -> bool:
        return self.fs.exists(self.path(*parts))

    def makedirs(self, *parts: str) -> str:
        p = self.path(*parts)
        self.fs.makedirs(p, exist_ok=True)
        return p

    def remove(self, *parts: str) -> None:
        p = self.path(*parts)
        if self.fs.exists(p):
            self.fs.rm(p, recursive=True)

    def list_files(self, *parts: str, suffix: str = "") -> list[str]:
        """Complete files under a folder (temporary parts excluded), sorted."""
        return [f for f, _ in self.file_sizes(*parts, suffix=suffix)]

    def file_sizes(self, *parts: str, suffix: str = "") -> list[tuple[str, int]]:
        """``list_files`` with each file's size in bytes, from the same one listing."""
        p = self.path(*parts)
        if not self.fs.exists(p):
            return []
        found = self.fs.find(p, detail=True)
        return sorted((f, int(info.get("size") or 0)) for f, info in found.items()
                      if f.endswith(suffix) and ".tmp-" not in f.rsplit("/", 1)[-1])

    # -- atomic writes -------------------------------------------------------------------
    def write_bytes_atomic(self, path: str, data: bytes) -> None:
        write_bytes_atomic(self.fs, path, data)

    @contextlib.contextmanager
    def atomic_sink(self, path: str) -> Iterator[pa.NativeFile]:
        """An Arrow output stream whose bytes become ``path`` when the block ends, all at once.

        On a local disk Arrow writes straight to a temporary file that is then renamed (no
        buffer of the whole file in between); elsewhere the bytes are gathered in Arrow's buffer
        and written by ``write_bytes_atomic``. A block that raises leaves nothing behind."""
        if not self.is_local:
            sink = pa.BufferOutputStream()
            yield sink
            self.write_bytes_atomic(path, sink.getvalue())
            return
        tmp = temporary_path(self.fs, path)
        try:
            with pa.OSFile(tmp, "wb") as sink:
                yield sink
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def write_json(self, path: str, obj: Any) -> None:
        self.write_bytes_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str).encode())

    def read_json(self, path: str) -> Any:
        with self.fs.open(path, "rb") as f:
            return json.loads(f.read())

    def write_table(self, path: str, table: pa.Table, row_group_size: int = 50_000) -> None:
        """Write a Parquet part (zstd) atomically."""
        with self.atomic_sink(path) as sink:
            pq.write_table(table, sink, compression="zstd", row_group_size=row_group_size)

    def part_name(self, folder: str, path: str) -> str:
        """A part's id from its path under a dataset folder, unique even in hive-partitioned
        datasets: ``pages/bucket=07/part-00001.parquet`` -> ``bucket=07__part-00001``."""
        rel = path[len(self.path(folder)) + 1:] if path.startswith(self.path(folder) + "/") else path
        return rel.rsplit(".", 1)[0].replace("/", "__")

    @property
    def _protocol(self) -> str:
        return self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]

    @property
    def is_local(self) -> bool:
        """Whether the run directory is on this machine's file system."""
        return self._protocol in ("file", "local")

    def read_part(self, path: str, columns: list[str] | None = None) -> pa.Table:
        """Read one Parquet part (a path as ``list_files`` gives it), on the calling thread.

        One task runs per core, so decoding a part on Arrow's thread pool as well only adds
        threads competing for the same cores; a local file is read by Arrow's own reader, not
        through a Python file object (each of whose reads takes the GIL and copies the bytes
        once more): tasks reading parts side by side keep their speed."""
        if self.is_local:
            with pq.ParquetFile(path) as pf:
                return pf.read(columns=columns, use_threads=False)
        with self.fs.open(path, "rb") as fh, pq.ParquetFile(fh) as pf:
            return pf.read(columns=columns, use_threads=False)

    def read_dataset(self, *folder: str, columns: list[str] | None = None,
                     schema: pa.Schema | None = None) -> pa.Table:
        """All complete parts of a dataset folder as one table (for small datasets and tests).

        An empty folder gives an empty table of ``schema``.
        """
        tables = [self.read_part(f, columns) for f in self.list_files(*folder, suffix=".parquet")]
        if not tables:
            if schema is None:
                raise FileNotFoundError(f"no Parquet parts in {self.url(*folder)}")
            s = schema if columns is None else pa.schema([schema.field(c) for c in columns])
            return s.empty_table()
        return pa.concat_tables(tables, promote_options="default")


def versions() -> dict[str, str]:
    """Versions recorded in every manifest, so a result can be traced to its software."""
    import importlib.metadata as md

    out = {"pagecat": pagecat.__version__, "python": platform.python_version()}
    for name in ("dask", "distributed", "pyarrow", "lxml", "aiohttp", "scikit-learn", "xgboost"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


@dataclass
class Manifest:
    """``manifests/<stage>.json``: what a stage read, wrote and counted, and the parts done."""

    stage: str
    config_hash: str = ""
    input_fingerprint: str = ""
    status: str = "new"  # new | running | complete
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    parts: dict[str, dict] = field(default_factory=dict)  # part id -> its counts and seconds
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    started_at: str = ""
    finished_at: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def path(run: RunDir, stage: str) -> str:
        return run.path("manifests", f"{stage}.json")

    @classmethod
    def load(cls, run: RunDir, stage: str) -> Manifest:
        p = cls.path(run, stage)
        if not run.fs.exists(p):
            return cls(stage=stage)
        data = run.read_json(p)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def save(self, run: RunDir) -> None:
        run.write_json(self.path(run, self.stage), self.__dict__)

    @property
    def output_fingerprint(self) -> str:
        """What a downstream stage records as its input: changes whenever this stage re-runs."""
        return f"{self.stage}:{self.config_hash}:{self.input_fingerprint}:{self.finished_at}"


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def file_fingerprint(path: str) -> str:
    """path + size + modification time of an input file (or every file under a folder)."""
    fs, p = fsspec.core.url_to_fs(path)
    if not fs.exists(p):
        return f"{path}:missing"
    files = fs.find(p) if fs.isdir(p) else [p]
    parts = []
    for f in sorted(files):
        info = fs.info(f)
        parts.append(f"{f}:{info.get('size')}:{info.get('mtime', info.get('LastModified', ''))}")
    return "|".join(parts)
