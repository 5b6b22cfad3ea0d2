"""dedup and label: exact duplicates on real WebKB pages, labels joined by url with a held-out group,
bad labels files; parse -> dedup -> label run through the stage runner on a LocalCluster."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from distributed import Client, LocalCluster
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pagecat.config import LabelSettings, config_from_dict
from pagecat.data.webkb import load_sample, split_http_response
from pagecat.errors import UsageError
from pagecat.etl.dedup import DedupStage, ExactTextDedup, decide_duplicates
from pagecat.etl.label import LabelsFile, LabelStage, build_docs, canonical_url, domain_key
from pagecat.etl.parse import ParseStage
from pagecat.runs import Manifest, RunDir
from pagecat.schemas import DOCS, DUPLICATES, PAGES
from pagecat.stage import execute


def write_warc(path: Path, pages: list[tuple[str, bytes]]) -> None:
    with open(path, "wb") as f:
        w = WARCWriter(f, gzip=True)
        for url, body in pages:
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.0")
            w.write_record(w.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http))


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two WARCs of WebKB pages with known duplicates, and a labels file for them."""
    d = tmp_path_factory.mktemp("corpus")
    sample = [r for r in load_sample() if r["university"] in ("cornell", "texas")][:40]
    bodies = [(r["url"], split_http_response(r["raw"])[1]) for r in sample]
    # In a.warc: page 12 again under another URL, re-cased and re-spaced (same normalised text).
    respaced = bodies[12][1].upper().replace(b"\n", b"\n\n  ")
    write_warc(d / "a.warc.gz", bodies[:30] + [("http://mirror.example/shouting", respaced)])
    # In b.warc (a later part): page 3 copied byte for byte under another URL.
    write_warc(d / "b.warc.gz", bodies[30:] + [("http://mirror.example/copy", bodies[3][1])])
    rows = ["url,label,university"]
    for i, r in enumerate(sample):
        url = r["url"]
        if i % 3 == 0:  # the labels file spells some URLs differently: case, trailing slash, fragment
            url = url.replace("http://", "HTTP://").rstrip("/") + ("/#top" if i % 2 else "")
        rows.append(f"{url},{r['label']},{r['university']}")
    (d / "labels.csv").write_text("\n".join(rows) + "\n")
    return {"dir": d, "sample": sample}


def test_parse_dedup_label_through_the_runner(tmp_path, client, corpus):
    d = corpus["dir"]
    cfg = config_from_dict({
        "parse": {"inputs": [str(d / "b.warc.gz"), str(d / "a.warc.gz")]},
        "label": {"labels": str(d / "labels.csv"), "group_column": "university",
                  "holdout_column": "university", "holdout_value": "texas"},
    })
    run = RunDir(str(tmp_path / "run"))
    parsed = execute(ParseStage(), cfg, run, client, progress=False)
    deduped = execute(DedupStage(), cfg, run, client, progress=False)
    labelled = execute(LabelStage(), cfg, run, client, progress=False)

    # Counts reconcile in every manifest.
    for m in (parsed, deduped, labelled):
        c = m.counts
        assert c["in"] == c["out"] + c["rejected"] + c["dropped"], m.stage
    assert parsed.counts["in"] == 42 and deduped.counts["in"] == parsed.counts["out"]
    assert labelled.counts["in"] == labelled.counts["out"] == deduped.counts["out"]

    # Exact duplicates: the two copies dropped, the first occurrence (part-00000, earlier row) kept.
    pages = run.read_dataset("pages", schema=PAGES)
    ids = {u: i for u, i in zip(pages["url"].to_pylist(), pages["page_id"].to_pylist())}
    dups = run.read_dataset("duplicates", schema=DUPLICATES).to_pylist()
    sample = corpus["sample"]
    got = {(r["url"], r["kept_id"], r["kind"], r["similarity"]) for r in dups}
    assert {("http://mirror.example/shouting", ids[sample[12]["url"]], "exact", 1.0),
            ("http://mirror.example/copy", ids[sample[3]["url"]], "exact", 1.0)} <= got
    assert all(r["page_id"] == ids[r["url"]] for r in dups)
    assert deduped.counts["dropped"] == len(dups) >= 2
    kept = run.read_dataset("dedup", "pages", schema=PAGES)
    assert kept.num_rows == deduped.counts["out"]
    assert len(set(kept["text_hash"].to_pylist())) == kept.num_rows
    assert sample[3]["url"] in kept["url"].to_pylist() and "http://mirror.example/copy" not in kept["url"].to_pylist()
    assert [f.rsplit("/", 1)[-1] for f in run.list_files("duplicates", suffix=".parquet")] == [
        "part-00000.parquet", "part-00001.parquet"]

    # Labels joined by url (despite spelling), Texas held out: untagged but grouped.
    docs = run.read_dataset("docs", "v1", schema=DOCS).to_pylist()
    truth = {r["url"]: r for r in sample}
    assert all(d["doc_id"] in set(kept["page_id"].to_pylist()) for d in docs)
    for doc in docs:
        src = truth.get(doc["url"])
        if src is None:
            assert doc["label"] is None and doc["group"] is None
        elif src["university"] == "texas":
            assert doc["label"] is None and doc["label_source"] is None and doc["group"] == "texas"
        else:
            assert doc["label"] == src["label"] and doc["label_source"] == "file" and doc["group"] == "cornell"
    tagged = [d["label"] for d in docs if d["label"] is not None]
    extra = labelled.extra
    assert extra["docs_version"] == "v1" and extra["tagged"] == len(tagged) > 0
    assert extra["untagged"] == len(docs) - len(tagged) and extra["held_out"] > 0
    assert extra["classes"] == sorted(set(tagged))
    assert extra["class_counts"] == {k: tagged.count(k) for k in sorted(set(tagged))}
    assert Manifest.load(run, "label").extra == extra

    # Unchanged config and inputs: the runner skips; a changed dedup setting re-runs it.
    assert execute(DedupStage(), cfg, run, client, progress=False).finished_at == deduped.finished_at
    cfg.dedup.exact = False
    again = execute(DedupStage(), cfg, run, client, progress=False)
    assert again.counts["dropped"] == 0 and again.counts["out"] == parsed.counts["out"]


def test_exact_dedup_keeps_the_first_in_order():
    index = pa.table({"_pos": pa.array([0, 1, 2, 3, 4, 5], pa.int64()),
                      "page_id": ["a", "b", "c", "d", "e", "f"],
                      "text_hash": ["h1", "h2", "h1", None, "h2", "h1"]})
    dec = decide_duplicates(index, [ExactTextDedup()]).sort_by("_pos").to_pylist()
    assert [(r["_pos"], r["kept_id"], r["kind"], r["similarity"]) for r in dec] == [
        (2, "a", "exact", 1.0), (4, "b", "exact", 1.0), (5, "a", "exact", 1.0)]
    assert decide_duplicates(index, []).num_rows == 0


def test_canonical_url_and_domain_keys():
    assert canonical_url("HTTP://WWW.Ex.COM:80/A/b/#frag") == "http://www.ex.com/A/b"
    assert canonical_url("http://www.ex.com/A/b") == canonical_url("http://www.ex.com/A/b/")
    assert canonical_url("https://ex.com:8443/?q=1") == "https://ex.com:8443?q=1"
    assert canonical_url("") is None
    # the crawler's canonical form: escapes upper-cased, tracking parameters dropped
    assert canonical_url("http://ex.com/a%2fb?utm_source=x") == canonical_url("http://ex.com/a%2Fb")
    assert domain_key("https://www.Ex.co.uk/a") == "ex.co.uk" == domain_key("shop.ex.co.uk")


def labels_settings(path: Path, **kw) -> LabelSettings:
    return LabelSettings(labels=str(path), **kw)


def test_bad_labels_files_name_the_row(tmp_path):
    f = tmp_path / "labels.csv"
    f.write_text("link,category\nhttp://a/,x\n")
    with pytest.raises(UsageError, match=r"has no column 'url' \(label.join_on\); columns found: link, category"):
        LabelsFile(labels_settings(f)).load()
    f.write_text("url,category\nhttp://a/,x\n")
    with pytest.raises(UsageError, match=r"no column 'label' \(label.label_column\)"):
        LabelsFile(labels_settings(f)).load()
    with pytest.raises(UsageError, match=r"no column 'uni' \(label.group_column\)"):
        LabelsFile(labels_settings(f, label_column="category", group_column="uni")).load()

    f.write_text("url,label\nhttp://a.example/x,course\nhttp://b.example/,faculty\nHTTP://A.example/x/,student\n")
    with pytest.raises(UsageError, match=r"rows 1 and 3 give 'http://a.example/x' different labels "
                                         r"\('course', 'student'\)"):
        LabelsFile(labels_settings(f)).load()

    f.write_text("url,label\nhttp://a.example/x,course\nhttp://b.example/,cooking\n")
    with pytest.raises(UsageError, match=r"row 2 has label 'cooking', not one of label.classes \(course, faculty\)"):
        LabelsFile(labels_settings(f, classes=["course", "faculty"])).load()

    with pytest.raises(UsageError, match=r"nothing\.csv not found"):
        LabelsFile(labels_settings(tmp_path / "nothing.csv")).load()

    cfg = config_from_dict({"label": {"unit": "site"}})
    with pytest.raises(UsageError, match="label.unit site: not supported yet; use page or entry"):
        LabelStage().check(cfg, RunDir(str(tmp_path / "run")))
    cfg = config_from_dict({"label": {"labels": str(f), "classes": ["course"]}})
    with pytest.raises(UsageError, match="row 2"):
        LabelStage().check(cfg, RunDir(str(tmp_path / "run")))


def test_labels_join_on_url_id_and_domain(tmp_path):
    pages = pa.table({"page_id": ["p1", "p2", "p3"], "url": ["http://www.a.com/x", "http://b.org/", None],
                      "host": ["www.a.com", "b.org", None], "domain": ["a.com", "b.org", None],
                      "title": ["A", "B", None], "text": ["ta", "tb", "tc"], "seed_id": ["7", "8", None]})
    pq.write_table(pa.table({"url_id": [7, 8], "label": ["shop", "blog"], "site": ["a", "b"]}),
                   tmp_path / "ids.parquet")
    labels = LabelsFile(labels_settings(tmp_path / "ids.parquet", join_on="url_id", group_column="site")).load()
    docs, counts = build_docs(pages, labels, "url_id")
    assert docs.schema == DOCS
    assert docs["label"].to_pylist() == ["shop", "blog", None] and docs["group"].to_pylist() == ["a", "b", None]
    assert counts == {"tagged": 2, "untagged": 1, "held_out": 0}

    (tmp_path / "dom.csv").write_text("domain,label,split\nhttps://shop.a.com/,shop,test\nb.org,blog,train\n")
    labels = LabelsFile(labels_settings(tmp_path / "dom.csv", join_on="domain", holdout_column="split",
                                        holdout_value="test")).load()
    docs, counts = build_docs(pages, labels, "domain")
    assert docs["label"].to_pylist() == [None, "blog", None]
    assert docs["label_source"].to_pylist() == [None, "file", None]
    assert counts == {"tagged": 1, "untagged": 2, "held_out": 1}

    # No labels file: every doc untagged.
    docs, counts = build_docs(pages, LabelsFile(LabelSettings()).load(), "url")
    assert docs["label"].null_count == 3 and counts["tagged"] == 0
