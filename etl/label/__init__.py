"""Label: deduplicated pages to docs, each label kept with its source, in immutable versions.

Public API: ``LabelStage``; ``LabelsFile`` / ``load_labels`` (the checked labels file);
``canonical_url``, ``domain_key`` (join keys); ``page_docs``; ``read_docs``.
"""

from pagecat.etl.label_keys import KEYS, canonical_url, domain_key
from pagecat.etl.labels_file import LabelRow, LabelsFile, load_labels

from .docs import page_docs
from .stage import LabelStage, read_docs

__all__ = ["KEYS", "LabelRow", "LabelStage", "LabelsFile", "canonical_url", "domain_key", "load_labels",
           "page_docs", "read_docs"]
