"""label through the runner on real WebKB pages: labels file joined by URL with a held-out group,
rules, votes and the review queue, immutable versions; then each piece on its own (rules, votes,
review file, class balance, labels-file bad input)."""

from __future__ import annotations

import csv
import hashlib
import json

import pyarrow.parquet as pq
import pytest
from lxml import html as lxml_html

from pagecat.config import LabelRule, LabelSettings, config_from_dict
from pagecat.data.webkb import load_sample, split_http_response
from pagecat.errors import UsageError
from pagecat.etl.label import LabelsFile, LabelStage, canonical_url, domain_key, read_docs
from pagecat.etl.label.balance import ClassBalance
from pagecat.etl.label.review import ReviewFile
from pagecat.etl.label.rules import RuleLabeler, parse_condition
from pagecat.etl.label.votes import Vote, decide
from pagecat.runs import Manifest, RunDir
from pagecat.schemas import DOCS, PAGES, table
from pagecat.stage import execute


def page_text(raw: bytes) -> str:
    try:
        return " ".join(lxml_html.fromstring(split_http_response(raw)[1]).text_content().split())
    except Exception:  # an empty or unparsable body
        return ""


def page_row(url: str, text: str, **kw) -> dict:
    host = url.split("/")[2].lower()
    row = {"page_id": hashlib.sha1(url.encode()).hexdigest(), "url": url, "host": host,
           "domain": domain_key(host), "title": text[:60], "text": text, "word_count": len(text.split()),
           "text_hash": hashlib.sha1(text.encode()).hexdigest(), "http_status": 200, "depth": 0}
    row.update(kw)
    return row


def write_dedup_output(run: RunDir, parts: list[list[dict]]) -> None:
    for i, rows in enumerate(parts):
        run.write_table(run.path("dedup", "pages", f"part-{i:05d}.parquet"), table(rows, PAGES))
    Manifest(stage="dedup", status="complete", config_hash="test", finished_at="now").save(run)


@pytest.fixture(scope="module")
def sample():
    """30 WebKB pages of two universities with text."""
    out = []
    for r in load_sample():
        if r["university"] in ("cornell", "texas") and len(page_text(r["raw"]).split()) >= 30:
            out.append(r)
        if len(out) == 30:
            break
    return out


def write_labels(path, sample, extra_rows=()):
    rows = ["url,label,university"]
    for i, r in enumerate(sample):
        url = r["url"]
        if i % 3 == 0:  # spelled differently: case, trailing slash, fragment
            url = url.replace("http://", "HTTP://").rstrip("/") + ("/#top" if i % 2 else "")
        rows.append(f"{url},{r['label']},{r['university']}")
    rows += list(extra_rows)
    path.write_text("\n".join(rows) + "\n")


def test_label_runner_versions_votes_and_review(tmp_path, client, sample):
    run = RunDir(str(tmp_path / "run"))
    pages = [page_row(r["url"], page_text(r["raw"])) for r in sample]
    write_dedup_output(run, [pages[:15], pages[15:]])
    labels = tmp_path / "labels.csv"
    write_labels(labels, sample, ["http://nowhere.example/a,course,cornell", "http://nowhere.example/b,course,cornell"])
    base = {"labels": str(labels), "group_column": "university", "holdout_column": "university",
            "holdout_value": "texas", "classes": ["course", "department", "faculty", "other", "project", "staff",
                                                   "student"]}
    cfg = config_from_dict({"label": base})
    m1 = execute(LabelStage(), cfg, run, client, progress=False)
    assert m1.counts["in"] == m1.counts["out"] == 30
    e = m1.extra
    assert e["docs_version"] == "v1" and e["versions"] == ["v1"]
    docs = read_docs(run).to_pylist()
    assert len(docs) == 30 and read_docs(run).schema == DOCS
    truth = {r["url"]: r for r in sample}
    for d in docs:
        src = truth[d["url"]]
        if src["university"] == "texas":
            assert d["label"] is None and d["group"] == "texas"
        else:
            assert d["label"] == src["label"] and d["label_source"] == "file"
            assert d["label_confidence"] == 1.0 and d["label_agreement"] == 1.0 and d["sample_weight"] == 1.0
            assert json.loads(d["label_votes"]) == [{"source": "file", "label": src["label"], "confidence": 1.0}]
    tagged = [d["label"] for d in docs if d["label"]]
    assert e["tagged"] == len(tagged) and e["untagged"] == 30 - len(tagged) and e["held_out"] == 30 - len(tagged)
    assert e["class_counts"] == {k: tagged.count(k) for k in set(tagged)}
    # labels-file rows that match no doc: counted and named, not silently ignored
    assert e["unknown_label_keys"]["count"] == 2
    assert e["unknown_label_keys"]["examples"][0] == {"row": 31, "key": "http://nowhere.example/a"}
    # classes with no doc: a warning in the manifest
    missing = sorted(set(base["classes"]) - set(tagged))
    assert e["warnings"] == [f"class {c!r} of label.classes has no tagged doc" for c in missing]
    assert (tmp_path / "run" / "review" / "queue.csv").read_text().strip() == ",".join(
        ["doc_id", "url", "title", "snippet", "candidates", "current_label", "label"])

    # unchanged: skipped, no new version
    assert execute(LabelStage(), cfg, run, client, progress=False).finished_at == m1.finished_at
    v1_files = {p: run.fs.info(p)["mtime"] for p in run.list_files("docs", "v1")}

    # a rule that disagrees with the file on some docs: v2, the file wins, the doc is queued
    cfg = config_from_dict({"label": {**base, "rules": [{"label": "course", "when": "text contains course"}]}})
    m2 = execute(LabelStage(), cfg, run, client, progress=False)
    assert m2.extra["docs_version"] == "v2" and m2.extra["versions"] == ["v1", "v2"]
    assert {p: run.fs.info(p)["mtime"] for p in run.list_files("docs", "v1")} == v1_files  # v1 untouched
    docs2 = {d["doc_id"]: d for d in read_docs(run).to_pylist()}
    disputed = [d for d in docs2.values() if d["label_source"] == "file"
                and any(v["source"] == "rules" and v["label"] != d["label"] for v in json.loads(d["label_votes"]))]
    assert disputed and all(d["label_agreement"] == 0.5 for d in disputed)
    with open(tmp_path / "run" / "review" / "queue.csv") as fh:
        queue = list(csv.DictReader(fh))
    assert {q["doc_id"] for q in queue} == {d["doc_id"] for d in disputed}
    assert m2.extra["review"]["queued"] == len(queue)

    # a person fills in the queue: their label wins (source person) and is not queued again
    queue[0]["label"] = "project"
    reviewed = tmp_path / "reviewed.csv"
    with open(reviewed, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(queue[0]))
        w.writeheader()
        w.writerows(queue)
    cfg.label.review_file = str(reviewed)
    m3 = execute(LabelStage(), cfg, run, client, progress=False)
    assert m3.extra["docs_version"] == "v3" and m3.extra["review"]["applied"] == 1
    person = {d["doc_id"]: d for d in read_docs(run).to_pylist()}[queue[0]["doc_id"]]
    assert person["label"] == "project" and person["label_source"] == "person"
    assert m3.extra["review"]["queued"] == len(queue) - 1

    # a review file naming a doc the run does not have: nothing applied, no new version
    queue[1]["doc_id"], queue[1]["label"] = "no-such-doc", "course"
    with open(reviewed, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(queue[0]))
        w.writeheader()
        w.writerows(queue)
    with pytest.raises(UsageError, match=r"rows 2 name doc ids this run has no doc for"):
        execute(LabelStage(), cfg, run, client, progress=False)
    assert Manifest.load(run, "label").status == "running"  # not complete: features will not read it
    assert sorted(p.rsplit("/", 1)[-1] for p in run.fs.ls(run.path("docs"))) == ["_work", "v1", "v2", "v3"]


def test_zero_shot_predictions_and_balance(tmp_path, client, sample):
    """Zero-shot votes from label descriptions, a previous model's predictions above the bar, and
    class weights, on a dozen docs with no labels file."""
    run = RunDir(str(tmp_path / "run"))
    picked = [r for r in sample if r["label"] == "course"][:6] + [r for r in sample if r["label"] == "student"][:6]
    pages = [page_row(r["url"], page_text(r["raw"])) for r in picked]
    write_dedup_output(run, [pages])
    preds = tmp_path / "preds.parquet"
    import pyarrow as pa

    pq.write_table(pa.table({"doc_id": [pages[0]["page_id"], pages[1]["page_id"]], "url": [None, None],
                             "label": ["student", "student"], "probability": [0.99, 0.5]}), preds)
    cfg = config_from_dict({"label": {
        "descriptions": {"course": "a university course page: syllabus, lectures, homework, exams, grading",
                         "student": "a student's personal home page: my name, hobbies, resume, friends"},
        "predictions": str(preds), "min_confidence": 0.6, "review_below": 0.95, "balance": "weights"}})
    m = execute(LabelStage(), cfg, run, client, progress=False)
    docs = {d["doc_id"]: d for d in read_docs(run).to_pylist()}
    first = docs[pages[0]["page_id"]]
    votes = json.loads(first["label_votes"])
    assert [v["source"] for v in votes] == ["model", "zero_shot"]
    # the most confident model vote wins among models
    best = max(votes, key=lambda v: v["confidence"])
    assert first["label"] == best["label"] and first["label_source"] == best["source"]
    zero = [d for d in docs.values() if d["label_source"] == "zero_shot"]
    truth = {r["url"]: r["label"] for r in picked}
    right = sum(d["label"] == truth[d["url"]] for d in zero)
    assert zero and right >= 0.75 * len(zero)
    assert all(d["label_confidence"] >= 0.6 for d in zero)
    counts = m.extra["class_counts"]
    weights = m.extra["balance"]["class_weights"]
    total = sum(counts.values())
    for label, n in counts.items():
        assert weights[label] == pytest.approx(total / (len(counts) * n))
        assert all(d["sample_weight"] == pytest.approx(weights[label]) for d in docs.values() if d["label"] == label)
    assert m.extra["label_sources"].get("zero_shot", 0) == len(zero)


def test_site_docs(tmp_path, client):
    """unit site: a site's first N pages by crawl rank, fields kept apart, names from the seeds file."""
    run = RunDir(str(tmp_path / "run"))
    pages, log = [], []
    for site, seed in (("acme-plumbing.co.uk", "s1"), ("bobsbakery.com", "s2")):
        for rank, path in enumerate(["", "about", "services", "products", "blog", "careers", "legal"]):
            url = f"https://www.{site}/{path}"
            text = f"{site} {path} page " + " ".join(f"word{rank}{k}" for k in range(30))
            pages.append(page_row(url, text, seed_id=seed, depth=0 if rank == 0 else 1, title=f"{path or 'home'}"))
            log.append({"seed_id": seed, "url": url, "outcome": "fetched", "rank": (rank * 5) % 7})
    write_dedup_output(run, [pages[::2], pages[1::2]])  # a site's pages spread over both parts
    from pagecat.schemas import CRAWL_LOG

    run.write_table(run.path("crawl_log", "part-0.parquet"), table(log, CRAWL_LOG))
    seeds = tmp_path / "seeds.csv"
    seeds.write_text("url_id,url,name\ns1,https://www.acme-plumbing.co.uk/,Acme Plumbing Ltd\n"
                     "s2,https://www.bobsbakery.com/,Bob's Bakery\n")
    labels = tmp_path / "labels.csv"
    labels.write_text("domain,label\nacme-plumbing.co.uk,trades\nbobsbakery.com,food\n")
    cfg = config_from_dict({"crawl": {"seeds": str(seeds)}, "label": {
        "unit": "site", "labels": str(labels), "join_on": "domain", "site_pages": 3, "site_text_chars": 40}})
    m = execute(LabelStage(), cfg, run, client, progress=False)
    assert m.counts["in"] == 14 and m.counts["out"] == 6 and m.counts["dropped"] == 8 and m.counts["docs"] == 2
    docs = {d["doc_id"]: d for d in read_docs(run).to_pylist()}
    assert set(docs) == {"acme-plumbing.co.uk", "bobsbakery.com"}
    acme = docs["acme-plumbing.co.uk"]
    fields = json.loads(acme["fields"])
    ranked = sorted(range(7), key=lambda r: (r * 5) % 7)[:3]  # the 3 best-ranked pages, in rank order
    names = ["", "about", "services", "products", "blog", "careers", "legal"]
    assert fields["titles"] == [names[r] or "home" for r in ranked]
    assert fields["name"] == "Acme Plumbing Ltd" and fields["domain_words"] == "acme plumbing"
    assert fields["tld"] == "co.uk" and all(len(t) <= 40 for t in fields["texts"])
    assert acme["text"].startswith("Acme Plumbing Ltd\nacme plumbing\n")
    assert acme["label"] == "trades" and docs["bobsbakery.com"]["label"] == "food"
    assert acme["group"] == "acme-plumbing.co.uk"


# -- the pieces ---------------------------------------------------------------------------------
def test_rules_are_parsed_not_evaluated():
    rules = RuleLabeler([LabelRule("negative", "stars <= 2"), LabelRule("neutral", "stars == 3"),
                         LabelRule("positive", "stars in 4, 5"),
                         LabelRule("course", "text contains syllabus and domain == cornell.edu")])
    assert [rules.vote({"stars": s}) for s in ["1", "2", "3", "4", "5", "6", None]] == [
        "negative", "negative", "neutral", "positive", "positive", None, None]
    assert rules.vote({"text": "The Syllabus, week 1", "domain": "Cornell.edu"}) == "course"
    assert rules.vote({"text": "syllabuses", "domain": "cornell.edu"}) is None  # whole words in text
    assert parse_condition("url not in 'a', \"b\"", "x")[0].value == ("a", "b")
    for bad in ("__import__('os').system('x')", "stars <=", "", "stars ~ 2"):
        with pytest.raises(UsageError, match="label.rules"):
            RuleLabeler([LabelRule("x", bad)])
    with pytest.raises(UsageError, match=r"label.rules\[0\].label: empty"):
        RuleLabeler([LabelRule("", "stars == 1")])


def test_votes_precedence_agreement_and_review():
    file, rules = Vote("file", "a"), Vote("rules", "b")
    weak, strong = Vote("zero_shot", "c", 0.55), Vote("model", "a", 0.97)
    d = decide([file, rules, strong], False, 0.8, 0.9)
    assert (d.label, d.source, d.agreement, d.needs_review) == ("a", "file", pytest.approx(2 / 3), True)
    d = decide([Vote("person", "b"), file], False, 0.8, 0.9)
    assert (d.label, d.source, d.needs_review) == ("b", "person", False)
    d = decide([weak], False, 0.8, 0.9)  # too weak to label, queued for a person
    assert d.label is None and d.needs_review
    d = decide([strong, weak], False, 0.5, 0.9)
    assert (d.label, d.source, d.confidence) == ("a", "model", pytest.approx(0.97)) and d.needs_review
    d = decide([Vote("model", "a", 0.85)], False, 0.8, 0.9)
    assert d.label == "a" and d.needs_review  # labelled, but below the review bar
    assert decide([file], True, 0.8, 0.9).label is None  # held out
    assert decide([], False, 0.8, 0.9).needs_review is False


def write_review(path, rows, columns=("doc_id", "url", "label")):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        w.writerows(rows)


def test_bad_review_files_name_the_rows(tmp_path):
    f = tmp_path / "review.csv"
    known = {"course", "student"}
    write_review(f, [("d1", "u", "course")], columns=("id", "url", "label"))
    with pytest.raises(UsageError, match=r"has no column 'doc_id'; columns found: id, url, label"):
        ReviewFile(str(f), known).load()
    write_review(f, [("d1", "u", "course"), ("d2", "u", "cooking"), ("d3", "u", ""), ("d4", "u", "chef")])
    with pytest.raises(UsageError, match=r"rows 2, 4 have a label that is not one of course, student"):
        ReviewFile(str(f), known).load()
    write_review(f, [("d1", "u", "course"), ("d1", "u", "student")])
    with pytest.raises(UsageError, match=r"rows 2 give a doc_id a second, different label"):
        ReviewFile(str(f), known).load()
    write_review(f, [("", "u", "course")])
    with pytest.raises(UsageError, match=r"rows 1 have a label but no doc_id"):
        ReviewFile(str(f), known).load()
    write_review(f, [("d1", "u", "course"), ("d2", "u", ""), ("d3", "u", "student")])
    review = ReviewFile(str(f), known).load()
    assert review.labels == {"d1": "course", "d3": "student"}
    with pytest.raises(UsageError, match=r"rows 3 name doc ids this run has no doc for"):
        review.check_ids({"d1", "d2"})


def test_class_balance_strategies():
    counts = {"a": 100, "b": 20, "c": 10}
    assert ClassBalance("none").fit(counts).weight("b", "x") == 1.0
    over = ClassBalance("oversample").fit(counts)
    assert over.weight("c", "x") == 10.0 and over.effective_counts() == {"a": 100, "b": 100, "c": 100}
    weights = ClassBalance("weights").fit(counts)
    assert weights.weight("a", "x") == pytest.approx(130 / 300)
    ratio = ClassBalance("ratio", max_ratio=4).fit(counts)
    eff = ratio.effective_counts()
    assert eff["a"] == 100 and eff["b"] == 25 and eff["c"] == 25 and max(eff.values()) / min(eff.values()) <= 4
    cap = ClassBalance("cap", cap=30).fit(counts)
    kept = sum(cap.weight("a", f"doc{i}") for i in range(100))
    assert 15 <= kept <= 45 and cap.weight("a", "doc1") == cap.weight("a", "doc1")  # fixed by the doc id
    assert all(cap.weight("b", f"d{i}") == 1.0 for i in range(20))
    assert cap.weight(None, "x") == 1.0


def test_canonical_url_and_domain_keys():
    assert canonical_url("HTTP://WWW.Ex.COM:80/A/b/#frag") == "http://www.ex.com/A/b"
    assert canonical_url("http://www.ex.com/A/b") == canonical_url("http://www.ex.com/A/b/")
    assert canonical_url("") is None
    assert canonical_url("http://ex.com/a%2fb?utm_source=x") == canonical_url("http://ex.com/a%2Fb")
    assert domain_key("https://www.Ex.co.uk/a") == "ex.co.uk" == domain_key("shop.ex.co.uk")


def test_bad_labels_files_name_the_row(tmp_path):
    f = tmp_path / "labels.csv"
    f.write_text("link,category\nhttp://a/,x\n")
    with pytest.raises(UsageError, match=r"has no column 'url' \(label.join_on\); columns found: link, category"):
        LabelsFile(LabelSettings(labels=str(f))).load()
    f.write_text("url,label\nhttp://a.example/x,course\nhttp://b.example/,faculty\nHTTP://A.example/x/,student\n")
    with pytest.raises(UsageError, match=r"rows 1 and 3 give 'http://a.example/x' different labels "
                                         r"\('course', 'student'\)"):
        LabelsFile(LabelSettings(labels=str(f))).load()
    f.write_text("url,label\nhttp://a.example/x,course\nhttp://b.example/,cooking\n")
    with pytest.raises(UsageError, match=r"row 2 has label 'cooking', not one of label.classes \(course, faculty\)"):
        LabelsFile(LabelSettings(labels=str(f), classes=["course", "faculty"])).load()
    with pytest.raises(UsageError, match=r"nothing\.csv not found"):
        LabelsFile(LabelSettings(labels=str(tmp_path / "nothing.csv"))).load()
    # the stage checks before any work: a bad file, a rule label outside the classes
    cfg = config_from_dict({"label": {"labels": str(f), "classes": ["course"]}})
    with pytest.raises(UsageError, match="row 2"):
        LabelStage().check(cfg, RunDir(str(tmp_path / "run")))
    cfg = config_from_dict({"label": {"classes": ["course"], "rules": [{"label": "news", "when": "text contains x"}]}})
    with pytest.raises(UsageError, match="label 'news' is not one of label.classes"):
        LabelStage().check(cfg, RunDir(str(tmp_path / "run")))
    # a file of fields only (no label column) is fine when rules read it
    f.write_text("url,stars\nhttp://a.example/x,1\nhttp://b.example/,5\n")
    rules = [LabelRule("negative", "stars <= 2"), LabelRule("positive", "stars >= 4")]
    lf = LabelsFile(LabelSettings(labels=str(f), rules=rules)).load()
    assert lf.labels == set() and lf.lookup["http://a.example/x"].fields["stars"] == "1"
