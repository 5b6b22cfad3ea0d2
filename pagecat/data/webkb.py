"""The WebKB pages: reading the full archive, and the compact sample bundled for the demo.

A WebKB file is the page's 1997 HTTP response headers, a blank line, then the HTML (a few
files are bare HTML). Its name is the URL with ``/`` written as ``^``. Each record here is::

    {"url": str, "label": str, "university": str, "raw": bytes}

The bundled sample (``webkb_sample.jsonl.gz``) stores ``raw`` as latin-1 text, which maps
every byte to one character and back, so the archived bytes come back exactly.

Rebuild the sample from the full archive with::

    python -m pagecat.data.webkb --source <dir with webkb_raw_html.tar.gz> --out pagecat/data
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import tarfile
from collections import defaultdict
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from urllib.parse import urldefrag

SAMPLE_NAME = "webkb_sample.jsonl.gz"
# Pages per class in the sample: the small classes are kept nearly whole, the large cut down.
SAMPLE_PER_LABEL = {"course": 250, "department": 100, "faculty": 250, "other": 300,
                    "project": 150, "staff": 100, "student": 350}


def url_from_name(name: str) -> str:
    """``http^^www.cs.wisc.edu^~naim^naim.html`` -> ``http://www.cs.wisc.edu/~naim/naim.html``."""
    name = name.replace("\uf03a", ":")  # some names carry a private-use colon
    if name.startswith("http:^^"):
        name = "http://" + name[len("http:^^"):]
    elif name.startswith("http^^"):
        name = "http://" + name[len("http^^"):]
    url = name.replace("^", "/")
    return urldefrag(url)[0]


def split_http_response(raw: bytes) -> tuple[dict[str, str], bytes]:
    """Split an archived file into (headers, body). Bare HTML gives no headers."""
    head_end = -1
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = raw.find(sep)
        if i != -1 and (head_end == -1 or i < head_end):
            head_end, sep_len = i, len(sep)
    if head_end <= 0:
        return {}, raw
    head = raw[:head_end].decode("latin-1")
    lines = [ln for ln in head.replace("\r\n", "\n").split("\n") if ln.strip()]
    # A header block is 'Name: value' lines (an optional status line first); HTML is not.
    if lines and lines[0].startswith("HTTP/"):
        lines = lines[1:]
    if not lines or not all(":" in ln and not ln.lstrip().startswith("<") for ln in lines):
        return {}, raw
    headers = {}
    for ln in lines:
        k, _, v = ln.partition(":")
        headers[k.strip()] = v.strip()
    return headers, raw[head_end + sep_len:]


def read_archive(source_dir: str | Path) -> Iterator[dict]:
    """Every page of the full WebKB archive (``webkb_raw_html.tar.gz``)."""
    with tarfile.open(Path(source_dir) / "webkb_raw_html.tar.gz", "r:gz") as tar:
        for member in tar:
            if not member.isfile():
                continue
            parts = member.name.split("/")
            if len(parts) != 4:
                continue
            _, label, university, name = parts
            yield {"url": url_from_name(name), "label": label, "university": university,
                   "raw": tar.extractfile(member).read()}


def load_sample(path: str | Path | None = None) -> list[dict]:
    """The bundled sample (or a sample file at ``path``) as records with ``raw`` bytes."""
    if path is None:
        ref = resources.files("pagecat.data") / SAMPLE_NAME
        data = ref.read_bytes()
    else:
        data = Path(path).read_bytes()
    out = []
    for line in gzip.decompress(data).decode("utf-8").splitlines():
        rec = json.loads(line)
        rec["raw"] = rec["raw"].encode("latin-1")
        out.append(rec)
    return out


def write_sample(records: list[dict], path: str | Path) -> None:
    lines = []
    for r in records:
        rec = dict(r, raw=r["raw"].decode("latin-1"))
        lines.append(json.dumps(rec, ensure_ascii=True))
    Path(path).write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=9, mtime=0))


def build_sample(source_dir: str | Path, per_label: dict[str, int] = SAMPLE_PER_LABEL,
                 seed: int = 0) -> list[dict]:
    """A stratified sample: ``per_label[label]`` pages, spread over universities by their share."""
    cells: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    seen = set()
    for rec in read_archive(source_dir):
        if rec["url"] in seen or not rec["url"].startswith("http://"):  # one file per URL; web pages only
            continue
        seen.add(rec["url"])
        cells[rec["label"]][rec["university"]].append(rec)
    rng = random.Random(seed)
    out = []
    for label in sorted(cells):
        by_uni = cells[label]
        total = sum(len(v) for v in by_uni.values())
        want = min(per_label.get(label, 0), total)
        for uni in sorted(by_uni):
            pages = sorted(by_uni[uni], key=lambda r: r["url"])
            k = min(len(pages), max(1, round(want * len(pages) / total)))
            out.extend(rng.sample(pages, k))
    out.sort(key=lambda r: r["url"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description="Build the bundled WebKB sample from the full archive.")
    ap.add_argument("--source", required=True, help="folder with webkb_raw_html.tar.gz")
    ap.add_argument("--out", default=str(Path(__file__).parent), help="folder to write the sample to")
    args = ap.parse_args()
    records = build_sample(args.source)
    write_sample(records, Path(args.out) / SAMPLE_NAME)
    print(f"{len(records)} pages -> {Path(args.out) / SAMPLE_NAME}")


if __name__ == "__main__":
    main()
