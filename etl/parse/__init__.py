"""The parse stage: raw web content (WARC, html folders, tables) to the pages dataset.

Modules: ``readers`` (input files to raw records), ``decode`` (bytes to text), ``extract``
(main text and metadata on lexbor), ``lang`` (offline language guess), ``keys`` (word count,
text hash, page id), ``pages`` (a raw record to a PAGES row, and the filters), ``writer``
(batched, partitioned Parquet parts), ``stage`` (the Stage).
"""

from .stage import ParseStage

__all__ = ["ParseStage"]
