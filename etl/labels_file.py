"""The labels file, an input the etl stages share (label joins it; dedup keeps labelled pages first):
read once per process, checked against ``LabelSettings``, a lookup by join key."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import fsspec
import pyarrow as pa

from pagecat.config import LabelSettings
from pagecat.errors import UsageError
from pagecat.etl.label_keys import KEYS, plain_key
from pagecat.runs import file_fingerprint


@dataclass(frozen=True)
class LabelRow:
    label: str | None
    group: str | None
    held_out: bool
    row: int = 0  # 1-based data row in the file
    fields: dict | None = None  # the row's other columns, for rules (only when rules are configured)


class LabelsFile:
    """A labels file checked against ``LabelSettings``; ``lookup`` maps join keys to ``LabelRow``.

    Raises UsageError naming the file and the rows to fix: missing file or column, a key given
    conflicting labels, a label outside ``classes``. Rows with an empty key carry nothing and are
    skipped; a row with a key but no label is kept for its columns (rules may read them) but tags
    nothing. With ``rules`` configured the label column may be absent (a file of fields only).
    """

    def __init__(self, settings: LabelSettings):
        self.settings = settings
        self.path = settings.labels
        self.lookup: dict[str, LabelRow] = {}

    def load(self) -> LabelsFile:
        s = self.settings
        if not self.path:  # no labels file: every doc is untagged
            return self
        columns = self._read()
        where = f"label.labels: {self.path}"
        if s.label_column not in columns and s.rules and s.join_on in columns:
            columns[s.label_column] = [None] * len(columns[s.join_on])
        wanted = {"label.join_on": s.join_on, "label.label_column": s.label_column,
                  "label.group_column": s.group_column, "label.holdout_column": s.holdout_column}
        for field_name, col in wanted.items():
            if col is not None and col not in columns:
                raise UsageError(f"{where} has no column {col!r} ({field_name}); columns found: "
                                 f"{', '.join(columns)}. Add the column or set {field_name}")
        to_key = KEYS[s.join_on][0]
        classes = set(s.classes)
        first_row: dict[str, int] = {}
        for i in range(len(columns[s.join_on])):
            row = i + 1  # 1-based data row, header excluded
            key = to_key(columns[s.join_on][i])
            label = plain_key(columns[s.label_column][i])
            if key is None:
                continue
            if label is not None and classes and label not in classes:
                raise UsageError(f"{where} row {row} has label {label!r}, not one of label.classes "
                                 f"({', '.join(s.classes)}); fix the row or add the class")
            group = plain_key(columns[s.group_column][i]) if s.group_column else None
            held = s.holdout_column is not None and (columns[s.holdout_column][i] or "").strip() == s.holdout_value
            seen = self.lookup.get(key)
            if seen is not None:
                if label is not None and seen.label is not None and seen.label != label:
                    raise UsageError(f"{where} rows {first_row[key]} and {row} give {key!r} different labels "
                                     f"({seen.label!r}, {label!r}); keep one")
                if seen.label is not None or label is None:
                    continue
            fields = {c: v[i] for c, v in columns.items()} if s.rules else None
            first_row[key] = row
            self.lookup[key] = LabelRow(label=label, group=group, held_out=held, row=row, fields=fields)
        return self

    @property
    def labels(self) -> set[str]:
        """Every label the file gives."""
        return {r.label for r in self.lookup.values() if r.label is not None}

    def unknown_keys(self, matched: set[str], examples: int = 5) -> dict:
        """Labelled keys no doc matched: {"count", "examples": [{"row", "key"}]} (the file's order)."""
        missing = sorted((r.row, k) for k, r in self.lookup.items() if r.label is not None and k not in matched)
        return {"count": len(missing), "examples": [{"row": row, "key": k} for row, k in missing[:examples]]}

    def _read(self) -> dict[str, list[str | None]]:
        """Every column of the file as strings (None for empty cells)."""
        fs, p = fsspec.core.url_to_fs(self.path)
        if not fs.exists(p):
            raise UsageError(f"label.labels: {self.path} not found; fix the path or leave label.labels unset")
        try:
            with fs.open(p, "rb") as fh:
                if p.lower().endswith(".parquet"):
                    import pyarrow.parquet as pq

                    table = pq.read_table(fh)
                else:
                    import pyarrow.csv as pacsv

                    head = pacsv.open_csv(fh).schema.names
                    fh.seek(0)
                    table = pacsv.read_csv(fh, convert_options=pacsv.ConvertOptions(
                        column_types={n: pa.string() for n in head}, strings_can_be_null=True, null_values=[""]))
        except (pa.ArrowException, OSError) as e:
            raise UsageError(f"label.labels: {self.path} cannot be read as CSV or Parquet ({e}); "
                             "fix the file") from None
        return {name: [None if v is None else str(v) for v in table.column(name).to_pylist()]
                for name in table.column_names}


# The settings LabelsFile reads; the cache is keyed on them and on the file's fingerprint.
FILE_SETTINGS = ("labels", "join_on", "label_column", "group_column", "holdout_column", "holdout_value")


@functools.lru_cache(maxsize=4)
def _load_labels(items: tuple, classes: tuple, with_fields: bool, fingerprint: str) -> LabelsFile:
    from pagecat.config import LabelRule

    settings = LabelSettings(**dict(items), classes=list(classes), rules=[LabelRule()] if with_fields else [])
    return LabelsFile(settings).load()


def load_labels(settings: LabelSettings) -> LabelsFile:
    """The checked labels file, read once per process (per file version and settings)."""
    items = tuple((k, getattr(settings, k)) for k in FILE_SETTINGS)
    return _load_labels(items, tuple(settings.classes), bool(settings.rules),
                        file_fingerprint(settings.labels) if settings.labels else "")
