"""Immutable docs versions: ``docs/v1``, ``docs/v2``, ... one per label run that did work.

A label run writes its docs parts to a staging folder (``docs/_work``) and, when every part is
done, publishes them as the next free version. A published version is never written again;
the label manifest's ``extra["docs_version"]`` names the current one (features and train read
it there, and a model card records it).
"""

from __future__ import annotations

import re

from pagecat.runs import RunDir

VERSION = re.compile(r"^v(\d+)$")


def published_versions(run: RunDir) -> list[str]:
    """Versions under ``docs/``, oldest first."""
    root = run.path("docs")
    if not run.fs.exists(root):
        return []
    names = [p.rstrip("/").rsplit("/", 1)[-1] for p in run.fs.ls(root, detail=False)]
    found = sorted((int(m.group(1)), n) for n in names if (m := VERSION.match(n)))
    return [n for _, n in found]


def next_version(run: RunDir) -> str:
    """The first version name after every published one (v1 for a new run directory)."""
    versions = published_versions(run)
    return f"v{int(versions[-1][1:]) + 1}" if versions else "v1"
