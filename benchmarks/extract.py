"""Main-text extraction: quality and single-core speed of pagecat against trafilatura and resiliparse.

Quality, on the gold sets in ``<data>/extraction``: per page, token-level precision, recall and F1
of the extracted text against the gold text, then averaged over the set. Tokens are lower-cased
word tokens (``\\w+``), counted as a multiset (bag of words): the measure used for these sets
(Bevendorff et al., SIGIR 2023). The same tokeniser scores all three systems.

- scrapinghub: the Zyte article extraction benchmark (181 pages, ``articleBody`` gold).
- cleaneval: CleanEval 2007 dev (57 pages; the organisers' ``<text>`` wrapper stripped, the gold's
  URL line and ``<p>/<h>/<l>`` markers dropped).
- readability: Mozilla Readability.js test pages (130; gold = text of ``expected.html``).

Speed: pages/s and MB/s (of decoded HTML, UTF-8 bytes) on one core, each system over the same
pages in the same process: the gold pages and the WebKB pages (the full archive in ``<data>/webkb``
when present, else the bundled sample). The systems take turns in three rounds and are timed in
the process's CPU seconds, so the load of other processes on a shared machine falls on none of
them. Every system gets the same decoded ``str``; pagecat's time includes its parse, clean-up,
scoring and text assembly.

Peers: ``trafilatura.extract(html)`` with default settings; resiliparse's
``extract_plain_text(HTMLTree.parse(html), main_content=True)``. ``pagecat`` is the extractor as
the parse stage runs it (its compiled walk when built); ``--systems pagecat,pagecat-python`` adds
its pure-Python path (the same output) for comparison.

    python benchmarks/extract.py [--quick] [--json out.json] [--webkb-pages N]
"""

from __future__ import annotations

import gc
import gzip
import io
import json
import re
import sys
import tarfile
import time
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):  # run as a script (python benchmarks/<name>.py): the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import Result, parse_args, report

_TOKEN = re.compile(r"\w+")


def tokens(text: str) -> Counter:
    return Counter(_TOKEN.findall(text.lower()))


def prf(predicted: str, gold: str) -> tuple[float, float, float]:
    """Bag-of-words precision, recall, F1. Both empty: a perfect score; one empty: zero."""
    p, g = tokens(predicted), tokens(gold)
    np_, ng = sum(p.values()), sum(g.values())
    if np_ == 0 and ng == 0:
        return 1.0, 1.0, 1.0
    overlap = sum((p & g).values())
    prec = overlap / np_ if np_ else 0.0
    rec = overlap / ng if ng else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return prec, rec, f1


# -- gold sets ---------------------------------------------------------------------------

def _decode(raw: bytes) -> str:
    from pagecat.etl.parse.decode import decode_html

    return decode_html(raw)[0]


def load_scrapinghub(folder: Path) -> list[tuple[str, str, str]]:
    """(id, html, gold) for the 181 article pages."""
    truth = json.loads((folder / "ground-truth.json").read_text())
    out = []
    for key in sorted(truth):
        html = gzip.decompress((folder / "html" / f"{key}.html.gz").read_bytes()).decode("utf-8")
        out.append((key, html, truth[key]["articleBody"]))
    return out


_CLEANEVAL_MARK = re.compile(r"^\s*<[phl]>", re.MULTILINE)


def load_cleaneval(folder: Path) -> list[tuple[str, str, str]]:
    """(id, html, gold): the ``<text ...>`` wrapper lines stripped, gold markers and URL line dropped."""
    pages: dict[str, dict[str, bytes]] = {}
    with tarfile.open(folder / "cleaneval_dev.tar.xz") as tar:
        for m in tar:
            if not m.isfile():
                continue
            kind, name = m.name.split("/")[-2:]
            pages.setdefault(name.split(".")[0], {})[kind] = tar.extractfile(m).read()
    out = []
    for key in sorted(pages, key=lambda k: int(k) if k.isdigit() else 0):
        p = pages[key]
        if "html" not in p or "gold" not in p:
            continue
        lines = p["html"].split(b"\n")
        if lines and lines[0].lstrip().startswith(b"<text "):
            lines = lines[1:]
        while lines and not lines[-1].strip():
            lines.pop()
        if lines and lines[-1].strip() == b"</text>":
            lines = lines[:-1]
        gold = _decode(p["gold"]).split("\n", 1)
        gold_text = gold[1] if gold[0].startswith("URL:") and len(gold) > 1 else "\n".join(gold)
        out.append((key, _decode(b"\n".join(lines)), _CLEANEVAL_MARK.sub(" ", gold_text)))
    return out


def load_readability(folder: Path) -> list[tuple[str, str, str]]:
    """(case, source html, text of expected.html)."""
    import lxml.html

    files: dict[str, dict[str, bytes]] = {}
    with tarfile.open(folder / "mozilla_readability_test_pages.tar.xz") as tar:
        for m in tar:
            if m.isfile() and m.name.endswith(("/source.html", "/expected.html")):
                case, name = m.name.split("/")[-2:]
                files.setdefault(case, {})[name] = tar.extractfile(m).read()
    out = []
    for case in sorted(files):
        f = files[case]
        if "source.html" not in f or "expected.html" not in f:
            continue
        expected = lxml.html.fromstring(f["expected.html"].decode("utf-8"))
        gold = " ".join(expected.itertext())
        out.append((case, f["source.html"].decode("utf-8"), gold))
    return out


# Gold set -> (its folder under ``<data>/extraction``, its loader).
GOLD_SETS = {"scrapinghub": ("scrapinghub_article_extraction_benchmark", load_scrapinghub),
             "cleaneval": ("cleaneval_dev", load_cleaneval),
             "readability": ("mozilla_readability_test_pages", load_readability)}


def load_webkb(data: Path, limit: int) -> list[str]:
    from pagecat.data.webkb import load_sample, read_archive, split_http_response
    from pagecat.etl.parse.decode import decode_html

    records = read_archive(data / "webkb") if (data / "webkb" / "webkb_raw_html.tar.gz").exists() else load_sample()
    out = []
    for rec in records:
        headers, body = split_http_response(rec["raw"])
        ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
        out.append(decode_html(body, ctype)[0])
        if len(out) >= limit:
            break
    return out


# -- systems -----------------------------------------------------------------------------

def systems() -> dict:
    import trafilatura
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    from pagecat.etl.parse.extract import HtmlExtractor

    pagecat, pagecat_python = HtmlExtractor(), HtmlExtractor(compiled=False)
    if not pagecat.compiled:
        print("note: pagecat's compiled walk is not built; pagecat runs its pure-Python path", file=sys.stderr)
    return {
        "pagecat": lambda html: pagecat.extract(html).text,
        "pagecat-python": lambda html: pagecat_python.extract(html).text,
        "trafilatura": lambda html: trafilatura.extract(html) or "",
        "resiliparse": lambda html: extract_plain_text(HTMLTree.parse(html), main_content=True),
    }


def speed(fns: dict, pages: list[str], min_seconds: float, rounds: int = 3) -> dict[str, tuple[float, float]]:
    """System -> (pages/s, MB/s) over ``pages``: the systems take turns, ``rounds`` times, each
    turn whole passes over the pages until ``min_seconds / rounds`` have passed. Time is this
    process's CPU time: on a shared machine, other processes' load counts against no system, and
    a change of load during the run falls on all of them alike."""
    mb = sum(len(p.encode("utf-8")) for p in pages) / 1e6
    passes = dict.fromkeys(fns, 0)
    spent = dict.fromkeys(fns, 0.0)
    for _ in range(rounds):
        for system, fn in fns.items():
            gc.collect()
            t0 = time.process_time()
            while True:
                for html in pages:
                    fn(html)
                passes[system] += 1
                elapsed = time.process_time() - t0
                if elapsed >= min_seconds / rounds:
                    break
            spent[system] += elapsed
    return {s: (passes[s] * len(pages) / spent[s], passes[s] * mb / spent[s]) for s in fns}


def main() -> None:
    def extra(p):
        p.add_argument("--webkb-pages", type=int, default=2000, help="WebKB pages for the speed part")
        p.add_argument("--systems", default="pagecat,trafilatura,resiliparse")
        p.add_argument("--sets", default="scrapinghub,cleaneval,readability")
        p.add_argument("--no-speed", action="store_true")
        p.add_argument("--dump", metavar="FILE", help="per-page scores as JSONL (for error analysis)")

    args = parse_args("extract", "Main-text quality and speed against trafilatura and resiliparse", extra)
    data = Path(args.data)
    ex = data / "extraction"
    wanted = args.systems.split(",")
    fns = {k: v for k, v in systems().items() if k in wanted}
    results: list[Result] = []
    dump = open(args.dump, "w") if args.dump else io.StringIO()  # noqa: SIM115
    speed_sets: dict[str, list[str]] = {}
    for name in args.sets.split(","):
        folder, load = GOLD_SETS[name]
        pages = load(ex / folder)
        if args.quick:
            pages = pages[::4]
        speed_sets[name] = [html for _, html, _ in pages]
        for system, fn in fns.items():
            scores = []
            for key, html, gold in pages:
                s = prf(fn(html), gold)
                scores.append(s)
                dump.write(json.dumps({"set": name, "page": key, "system": system, "p": s[0], "r": s[1],
                                       "f1": s[2]}) + "\n")
            n = len(scores)
            for i, metric in enumerate(("precision", "recall", "f1")):
                results.append(Result(system, name, metric, sum(s[i] for s in scores) / n))
    dump.close()
    if not args.no_speed:
        speed_sets["webkb"] = load_webkb(data, 300 if args.quick else args.webkb_pages)
        for name, pages in speed_sets.items():
            for system, (pps, mbps) in speed(fns, pages, 1.0 if args.quick else 3.0).items():
                results.append(Result(system, name, "pages_per_s", pps, "pages/s"))
                results.append(Result(system, name, "mb_per_s", mbps, "MB/s"))
    ratios = [("pagecat", "trafilatura", "f1"), ("pagecat", "trafilatura", "pages_per_s"),
              ("pagecat", "resiliparse", "pages_per_s")]
    report("extract", results, args, ratios=ratios)


if __name__ == "__main__":
    main()
