"""The label stage: deduplicated pages to docs, each label kept with its source, published as an
immutable version ``docs/vN``.

Passes:

1. ``run_part`` (one task per pages part, or per site bucket for ``unit: site``) builds the docs
   and collects every labeler's vote: the labels file (``file``), config rules (``rules``), a
   previous run's predictions (``model``), the zero-shot labeler (``zero_shot``). It writes them
   to ``docs/_work/<part>.parquet`` (DOCS columns plus the votes and the join key).
2. ``finish`` checks the review file's doc ids against every part (nothing is applied when one
   is unknown), adds the person's votes, decides each doc's label (``votes.decide``), counts the
   classes, fits the class balance, and writes ``docs/_next/<part>.parquet`` with the label,
   its source, confidence, agreement, the votes (JSON) and ``sample_weight``; then renames
   ``docs/_next`` to the next free version and writes the review queue (``review/queue.csv``).

The runner clears only ``docs/_work`` on a fresh start: published versions stay. A re-run with
the same inputs and config is skipped by the runner, so it makes no new version; any change
(config, labels file, review file, predictions, upstream pages) makes the next one.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pyarrow as pa

from pagecat.config import Config
from pagecat.errors import StageError, UsageError
from pagecat.etl.labels_file import LabelsFile, load_labels
from pagecat.runs import Manifest, RunDir
from pagecat.schemas import DOCS
from pagecat.stage import Part, Stage

from .balance import ClassBalance
from .docs import PAGE_COLUMNS, page_docs
from .models import ZeroShotLabeler, load_predictions
from .review import ReviewFile, load_review, queue_csv, queue_row
from .rules import RuleLabeler
from .versions import next_version, published_versions
from .votes import Vote, decide, votes_from_json, votes_json

WORK_DIR = "docs/_work"
NEXT_DIR = "docs/_next"
QUEUE_PATH = ("review", "queue.csv")
# docs/_work columns beyond DOCS: what finish needs to decide a doc's label.
WORK = pa.schema([*DOCS, ("_key", pa.string()), ("_held", pa.bool_()), ("_votes", pa.string())])


def known_labels(cfg: Config, labels: LabelsFile) -> set[str]:
    """The labels a doc may get: label.classes, else every label some source can give."""
    s = cfg.label
    if s.classes:
        return set(s.classes)
    return labels.labels | {r.label for r in s.rules} | set(s.descriptions)


def collect_votes(docs: list[dict], cfg: Config, labels: LabelsFile) -> list[list[Vote]]:
    """Every configured labeler's vote for each doc (the person's votes are added in finish)."""
    s = cfg.label
    votes: list[list[Vote]] = [[] for _ in docs]
    rules = RuleLabeler(s.rules) if s.rules else None
    predictions = load_predictions(s.predictions) if s.predictions else None
    for doc, mine in zip(docs, votes):
        row = labels.lookup.get(doc["key"]) if doc["key"] is not None else None
        if row is not None and row.label is not None:
            mine.append(Vote("file", row.label, 1.0))
        if rules is not None:
            fields = {**(row.fields or {}), **doc["rule_fields"]} if row is not None else doc["rule_fields"]
            label = rules.vote(fields)
            if label is not None:
                mine.append(Vote("rules", label, 1.0))
        if predictions is not None:
            found = predictions.vote(doc["doc_id"], doc["url"])
            if found is not None:
                mine.append(Vote("model", found[0], found[1]))
    if s.descriptions and docs:
        zero = ZeroShotLabeler(s.descriptions, s.zero_shot_model)
        got, conf = zero.vote([f"{d['title'] or ''}\n{d['text'] or ''}" for d in docs])
        for mine, label, c in zip(votes, got, conf):
            mine.append(Vote("zero_shot", label, float(c)))
    return votes


def work_table(docs: list[dict], votes: list[list[Vote]], labels: LabelsFile) -> pa.Table:
    rows = []
    for doc, mine in zip(docs, votes):
        row = labels.lookup.get(doc["key"]) if doc["key"] is not None else None
        rows.append({"doc_id": doc["doc_id"], "url": doc["url"], "host": doc["host"], "title": doc["title"],
                     "text": doc["text"], "fields": doc["fields"],
                     "group": (row.group if row is not None and row.group else doc.get("default_group")),
                     "_key": doc["key"], "_held": bool(row is not None and row.held_out), "_votes": votes_json(mine)})
    return pa.Table.from_pylist(rows, schema=WORK)


def _review(cfg: Config) -> ReviewFile | None:
    if not cfg.label.review_file:
        return None
    return load_review(cfg.label.review_file, known_labels(cfg, load_labels(cfg.label)))


def part_facts(path: str, *, review_ids: list[str], run: RunDir) -> tuple[set[str], set[str]]:
    """(review ids this part has a doc for, labels-file keys its docs matched)."""
    t = run.read_part(path, columns=["doc_id", "_key"])
    ids = set(t["doc_id"].to_pylist())
    return {d for d in review_ids if d in ids}, {k for k in t["_key"].to_pylist() if k is not None}


def resolve_part(part_id: str, *, cfg: Config, balance: ClassBalance | None, run: RunDir) -> dict:
    """Decide every doc of a part. Without ``balance``: count only (class counts, queue size).
    With it: write ``docs/_next/<part>`` and return the part's queue rows too."""
    s = cfg.label
    work = run.read_part(run.path(WORK_DIR, f"{part_id}.parquet"))
    review = _review(cfg)
    classes: Counter = Counter()
    sources: Counter = Counter()
    out, queue = [], []
    held = 0
    for doc in work.to_pylist():
        votes = votes_from_json(doc.pop("_votes"))
        person = review.vote(doc["doc_id"]) if review is not None else None
        if person is not None:
            votes = [person, *votes]
        held += bool(doc["_held"])
        d = decide(votes, doc.pop("_held"), s.min_confidence, s.review_below)
        doc.pop("_key")
        doc.update(label=d.label, label_source=d.source, label_confidence=d.confidence,
                   label_agreement=d.agreement, label_votes=votes_json(votes))
        if d.label is not None:
            classes[d.label] += 1
            sources[d.source] += 1
        if d.needs_review:
            queue.append(queue_row(doc, votes, d.label))
        if balance is not None:
            doc["sample_weight"] = balance.weight(d.label, doc["doc_id"])
            out.append(doc)
    result = {"classes": dict(classes), "sources": dict(sources), "queued": len(queue), "held_out": held,
              "docs": work.num_rows, "person": sum(1 for r in out if r.get("label_source") == "person")}
    if balance is not None:
        run.write_table(run.path(NEXT_DIR, f"{part_id}.parquet"), pa.Table.from_pylist(out, schema=DOCS))
        result["queue"] = queue
    return result


def _sum(results: list[dict], key: str) -> Counter:
    total: Counter = Counter()
    for r in results:
        total.update(r[key])
    return total


class LabelStage(Stage):
    """``dedup/pages/`` to ``docs/vN/<part id>.parquet`` (schema DOCS) and ``review/queue.csv``."""

    name = "label"
    sections = ("label",)
    upstream = ("dedup",)
    outputs = (WORK_DIR, NEXT_DIR)  # never docs/: published versions are immutable and kept
    unit = "docs"

    def external_inputs(self, cfg: Config, run: RunDir) -> list[str]:
        s = cfg.label
        paths = [s.labels, s.review_file, s.predictions]
        if s.unit == "site":
            paths.append(cfg.crawl.seeds)
        return [p for p in paths if p]

    def check(self, cfg: Config, run: RunDir) -> None:
        s = cfg.label
        labels = load_labels(s)
        if s.rules:
            RuleLabeler(s.rules)
        if s.classes:
            extra = sorted(({r.label for r in s.rules} | set(s.descriptions)) - set(s.classes))
            if extra:
                raise UsageError(f"config field label.rules/label.descriptions: label {extra[0]!r} is not one of "
                                 f"label.classes ({', '.join(s.classes)}); fix it or add the class")
        for key in ("min_confidence", "review_below"):
            if not 0 <= getattr(s, key) <= 1:
                raise UsageError(f"config field label.{key}: must be between 0 and 1, got {getattr(s, key)}")
        if s.balance == "cap" and s.balance_cap < 1:
            raise UsageError("config field label.balance_cap: set it (docs per class) when label.balance is cap")
        if s.balance == "ratio" and s.balance_max_ratio < 1:
            raise UsageError(f"config field label.balance_max_ratio: must be at least 1, got {s.balance_max_ratio}")
        if s.site_pages < 1:
            raise UsageError(f"config field label.site_pages: must be at least 1, got {s.site_pages}")
        if s.predictions:
            load_predictions(s.predictions)
        if s.review_file:
            load_review(s.review_file, known_labels(cfg, labels))

    def plan(self, cfg: Config, run: RunDir) -> list[Part]:
        files = run.list_files("dedup", "pages", suffix=".parquet")
        if cfg.label.unit != "site":
            return [Part(id=run.part_name("dedup/pages", f), inputs=[f]) for f in files]
        buckets = max(1, len(files))
        return [Part(id=f"sites-{k:05d}", inputs=files, args={"bucket": k, "buckets": buckets})
                for k in range(buckets)]

    @staticmethod
    def run_part(part: Part, cfg: Config, run: RunDir) -> dict[str, int]:
        labels = load_labels(cfg.label)
        if cfg.label.unit == "site":
            from .sites import crawl_ranks, read_bucket, seed_names, site_docs

            pages = read_bucket(run, part.inputs, part.args["bucket"], part.args["buckets"])
            n_pages = pages.num_rows if pages is not None else 0
            docs, beyond = site_docs(pages, cfg, crawl_ranks(run), seed_names(cfg)) if n_pages else ([], 0)
            # counted in pages: those beyond a site's first N are left out on purpose
            counts = {"in": n_pages, "out": n_pages - beyond, "rejected": 0, "dropped": beyond, "docs": len(docs)}
        else:
            pages = run.read_part(part.inputs[0], columns=PAGE_COLUMNS)
            docs = page_docs(pages, cfg.label.join_on)
            counts = {"in": pages.num_rows, "out": len(docs), "rejected": 0, "dropped": 0, "docs": len(docs)}
        votes = collect_votes(docs, cfg, labels)
        run.write_table(run.path(WORK_DIR, f"{part.id}.parquet"), work_table(docs, votes, labels))
        for source in ("file", "rules", "model", "zero_shot"):
            counts[f"votes_{source}"] = sum(v.source == source for vs in votes for v in vs)
        return counts

    def finish(self, cfg: Config, run: RunDir, client, manifest: Manifest) -> dict[str, Any]:
        s = cfg.label
        part_ids = sorted(manifest.parts)
        paths = [run.path(WORK_DIR, f"{pid}.parquet") for pid in part_ids]
        missing = [p for p in paths if not run.fs.exists(p)]
        if missing:
            raise StageError(self.name, f"{missing[0]} is gone (published already?); run `pagecat label --force`")
        labels = load_labels(s)
        review = _review(cfg)
        review_ids = sorted(review.labels) if review is not None else []
        facts = client.gather(client.map(part_facts, paths, review_ids=review_ids, run=run, pure=False))
        found = set().union(*(f[0] for f in facts)) if facts else set()
        matched = set().union(*(f[1] for f in facts)) if facts else set()
        if review is not None:
            review.check_ids(found)  # UsageError naming the rows; nothing written yet

        counted = client.gather(client.map(resolve_part, part_ids, cfg=cfg, balance=None, run=run, pure=False))
        class_counts = _sum(counted, "classes")
        balance = ClassBalance(s.balance, s.balance_cap, s.balance_max_ratio).fit(dict(class_counts))
        run.remove(NEXT_DIR)
        written = client.gather(client.map(resolve_part, part_ids, cfg=cfg, balance=balance, run=run, pure=False))

        version = next_version(run)
        if run.exists(NEXT_DIR):
            run.fs.mv(run.path(NEXT_DIR), run.path("docs", version), recursive=True)
        else:  # no parts at all: an empty version
            run.makedirs("docs", version)
        queue = [r for w in written for r in w["queue"]]
        run.write_bytes_atomic(run.path(*QUEUE_PATH), queue_csv(queue))
        run.remove(WORK_DIR)

        classes = sorted(class_counts)
        warnings = [f"class {c!r} of label.classes has no tagged doc" for c in s.classes if not class_counts.get(c)]
        for w in warnings:
            print(f"[label] warning: {w}")
        tagged = sum(class_counts.values())
        n_docs = sum(w["docs"] for w in written)
        unknown = labels.unknown_keys(matched) if s.labels else {"count": 0, "examples": []}
        if unknown["count"]:
            print(f"[label] {unknown['count']} labels-file rows matched no doc (first: row "
                  f"{unknown['examples'][0]['row']}, {unknown['examples'][0]['key']!r}); see manifests/label.json")
        return {
            "docs_version": version, "versions": published_versions(run), "unit": s.unit, "docs": n_docs,
            "classes": classes, "tagged": tagged, "untagged": n_docs - tagged,
            "held_out": sum(w["held_out"] for w in written), "class_counts": dict(sorted(class_counts.items())),
            "label_sources": dict(sorted(_sum(written, "sources").items())),
            "review": {"queued": len(queue), "queue": run.url(*QUEUE_PATH), "applied": len(review_ids)},
            "balance": {"strategy": s.balance, "class_weights": balance.class_weights_,
                        "effective_counts": balance.effective_counts()},
            "unknown_label_keys": unknown, "warnings": warnings,
        }


def read_docs(run: RunDir, version: str | None = None) -> pa.Table:
    """Every doc of a version (default: the label manifest's current one), for tests and notebooks."""
    version = version or Manifest.load(run, "label").extra["docs_version"]
    return run.read_dataset("docs", version, schema=DOCS)

