"""dedup: exact, URL and near-duplicate pages on real WebKB text, through the stage runner on a
LocalCluster (hive-partitioned pages parts, counts, keep rule, resume), and the MinHash + LSH
pieces on their own, including agreement with datasketch's MinHashLSH."""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from lxml import html as lxml_html

from pagecat.config import config_from_dict
from pagecat.data.webkb import load_sample, split_http_response
from pagecat.errors import StageError, UsageError
from pagecat.etl.dedup import (
    KeepRule,
    MinHasher,
    NearDuplicateFinder,
    candidates,
    components,
    estimated_jaccard,
    lsh_params,
)
from pagecat.etl.dedup import stage as dedup_stage
from pagecat.etl.dedup.candidates import ACCEPTED, CHECKED, verified_edges
from pagecat.etl.dedup.minhash import hash_strings, tokenize
from pagecat.etl.dedup.shuffle import (
    EXACT,
    NEAR,
    band_rows,
    bucket_edges,
    read_slot_range,
    slot_ranges,
    unique_rows,
    write_band_rows,
)
from pagecat.etl.dedup.sigfiles import read_part_rows, shingles_path, sig_path, write_sig_table
from pagecat.etl.dedup.stage import BANDS_DIR, DedupStage, sign_part
from pagecat.runs import Manifest, RunDir
from pagecat.schemas import DUPLICATES, PAGES, table
from pagecat.stage import execute


def page_text(raw: bytes) -> str:
    body = split_http_response(raw)[1]
    try:
        return " ".join(lxml_html.fromstring(body).text_content().split())
    except Exception:  # an empty or unparsable body
        return ""


@pytest.fixture(scope="module")
def webkb_texts() -> list[tuple[str, str]]:
    """(url, text) of real WebKB pages with at least 120 words, distinct texts."""
    out, seen = [], set()
    for r in load_sample():
        text = page_text(r["raw"])
        if len(text.split()) >= 120 and text not in seen:
            seen.add(text)
            out.append((r["url"], text))
        if len(out) == 80:
            break
    return out


def edit(text: str, rng: random.Random, n_edits: int) -> str:
    """A few random word substitutions, insertions and deletions: a near-duplicate."""
    words = text.split()
    for _ in range(n_edits):
        i = rng.randrange(len(words))
        op = rng.choice(("sub", "ins", "del"))
        if op == "sub":
            words[i] = f"edit{rng.randrange(10**6)}"
        elif op == "ins":
            words.insert(i, f"new{rng.randrange(10**6)}")
        else:
            del words[i]
    return " ".join(words)


def page_row(url: str, text: str) -> dict:
    host = url.split("/")[2].lower()
    return {"page_id": hashlib.sha1(url.encode()).hexdigest(), "url": url, "host": host,
            "domain": ".".join(host.split(".")[-2:]), "title": text[:40], "text": text,
            "word_count": len(text.split()), "http_status": 200,
            "text_hash": hashlib.sha1(" ".join(text.lower().split()).encode()).hexdigest(),
            "seed_id": None, "depth": 0, "source": "test", "source_offset": 0}


def write_pages(run: RunDir, parts: dict[str, list[dict]]) -> None:
    for rel, rows in parts.items():
        run.write_table(run.path("pages", rel), table(rows, PAGES))
    Manifest(stage="parse", status="complete", config_hash="test", finished_at="now").save(run)


@pytest.fixture(scope="module")
def planted(webkb_texts):
    """Pages in two hive partitions with known duplicates of every kind."""
    rng = random.Random(7)
    base = [page_row(u, t) for u, t in webkb_texts[:40]]
    a, b = base[:20], base[20:]
    u0, t0 = webkb_texts[0]
    extra_a = [
        page_row("http://mirror.example/copy-of-3", webkb_texts[3][1]),                  # exact copy, same part
        page_row("http://mirror.example/near-of-5", edit(webkb_texts[5][1], rng, 2)),    # near, same part
    ]
    extra_b = [
        page_row("http://mirror.example/copy-of-25", webkb_texts[25][1]),                # exact, other part
        page_row("http://mirror.example/near-of-8", edit(webkb_texts[8][1], rng, 3)),    # near, across parts
        page_row("http://mirror2.example/near-of-8", edit(webkb_texts[8][1], rng, 2)),   # a 3-page cluster
        # the same page under a tracking parameter, its text changed since (a different page version)
        page_row(u0.replace("http://", "HTTP://") + ("&" if "?" in u0 else "?") + "utm_source=feed",
                 webkb_texts[60][1]),
    ]
    return {"bucket=0/part-0.parquet": a + extra_a, "bucket=1/part-0.parquet": b + extra_b}


def dups_by_url(run: RunDir) -> dict[str, dict]:
    return {r["url"]: r for r in run.read_dataset("duplicates", schema=DUPLICATES).to_pylist()}


def test_dedup_stage_finds_every_kind_and_reconciles(tmp_path, client, planted, webkb_texts):
    run = RunDir(str(tmp_path / "run"))
    write_pages(run, planted)
    cfg = config_from_dict({"dedup": {"rows_per_reducer": 200}})  # several reducer tasks even here
    m = execute(DedupStage(), cfg, run, client, progress=False)
    c = m.counts
    total = sum(len(v) for v in planted.values())
    assert c["in"] == total and c["in"] == c["out"] + c["rejected"] + c["dropped"]
    assert m.extra["reducers"] >= 2 and m.extra["lsh_bands"] * m.extra["lsh_rows"] <= 128

    ids = {r["url"]: r["page_id"] for rows in planted.values() for r in rows}
    urls = [u for u, _ in webkb_texts]
    url_of = {i: u for u, i in ids.items()}
    dups = dups_by_url(run)
    assert dups["http://mirror.example/copy-of-3"]["kind"] == "exact"
    assert dups["http://mirror.example/copy-of-3"]["kept_id"] == ids[urls[3]]
    assert dups["http://mirror.example/copy-of-3"]["similarity"] == 1.0
    assert dups["http://mirror.example/copy-of-25"]["kept_id"] == ids[urls[25]]
    near5 = dups.get("http://mirror.example/near-of-5")
    assert near5 is not None and near5["kind"] == "near" and near5["kept_id"] == ids[urls[5]]
    assert 0.8 <= near5["similarity"] < 1.0
    # the 3-page cluster keeps the longest page, the edited copies name it and share a cluster id
    cluster8 = [ids[urls[8]], ids["http://mirror.example/near-of-8"], ids["http://mirror2.example/near-of-8"]]
    words = {r["page_id"]: r["word_count"] for rows in planted.values() for r in rows}
    longest = max(cluster8, key=lambda i: (words[i], -cluster8.index(i)))
    members = [dups[url_of[i]] for i in cluster8 if i != longest]
    assert len(members) == 2 and {d["kept_id"] for d in members} == {longest}
    assert {d["cluster_id"] for d in members} == {ids[urls[8]]}  # the earliest page names the cluster
    # one URL, two versions of the page: the longer one is kept
    utm = next(u for u in ids if "utm_source" in u)
    url_dup = [d for d in dups.values() if d["kind"] == "url"]
    assert len(url_dup) == 1 and {url_dup[0]["page_id"], url_dup[0]["kept_id"]} == {ids[urls[0]], ids[utm]}
    # nothing else was dropped: the 40 distinct WebKB pages all stay (up to a longer near twin)
    assert m.counts["dropped"] == len(dups) == 6
    assert (m.counts["exact"], m.counts["url"], m.counts["near"]) == (2, 1, 3)

    kept = run.read_dataset("dedup", "pages", schema=PAGES)
    assert kept.num_rows == c["out"] and not set(kept["page_id"].to_pylist()) & {d["page_id"] for d in dups.values()}
    assert sorted(f.rsplit("/", 1)[-1] for f in run.list_files("dedup", "pages", suffix=".parquet")) == [
        "bucket=0__part-0.parquet", "bucket=1__part-0.parquet"]
    assert not run.exists("dedup", "_bands") and not run.exists("dedup", "_sig")

    # unchanged: skipped; near off: only exact and URL duplicates go
    assert execute(DedupStage(), cfg, run, client, progress=False).finished_at == m.finished_at
    cfg.dedup.near = False
    m2 = execute(DedupStage(), cfg, run, client, progress=False)
    assert (m2.counts["exact"], m2.counts["url"], m2.counts["near"]) == (2, 1, 0)
    # without signatures a URL duplicate has no similarity to report; an exact one is 1
    assert sorted((d["kind"], d["similarity"]) for d in dups_by_url(run).values()) == \
        [("exact", 1.0), ("exact", 1.0), ("url", None)]


def test_labelled_page_is_kept_first(tmp_path, client, planted):
    run = RunDir(str(tmp_path / "run"))
    write_pages(run, planted)
    labels = tmp_path / "labels.csv"
    labels.write_text("url,label\nhttp://mirror.example/copy-of-3,course\n")
    cfg = config_from_dict({"dedup": {"near": False}, "label": {"labels": str(labels)}})
    execute(DedupStage(), cfg, run, client, progress=False)
    dups = dups_by_url(run)
    assert "http://mirror.example/copy-of-3" not in dups  # the labelled copy stays, the original goes
    original = [d for d in dups.values() if d["kind"] == "exact" and d["page_id"] != d["kept_id"]]
    assert any(d["kept_id"] == hashlib.sha1(b"http://mirror.example/copy-of-3").hexdigest() for d in original)


class FailingDedup(DedupStage):
    """Pass 1 fails on one part, as a worker killed mid-stage would leave it."""

    @staticmethod
    def run_part(part, cfg, run):
        if part.id.startswith("bucket=1"):
            raise RuntimeError("worker lost")
        return DedupStage.run_part(part, cfg, run)


def test_interrupted_dedup_resumes_without_duplicates(tmp_path, client, planted):
    run = RunDir(str(tmp_path / "run"))
    write_pages(run, planted)
    cfg = config_from_dict({"dedup": {"task_bytes": 1}})  # a task per part: one fails, one is done
    with pytest.raises(StageError, match="worker lost"):
        execute(FailingDedup(), cfg, run, client, progress=False)
    assert list(Manifest.load(run, "dedup").parts) == ["bucket=0__part-0"]
    m = execute(DedupStage(), cfg, run, client, progress=False)
    assert m.counts["in"] == m.counts["out"] + m.counts["dropped"]
    kept = run.read_dataset("dedup", "pages", schema=PAGES)["page_id"].to_pylist()
    assert len(kept) == len(set(kept)) == m.counts["out"]
    assert len(run.read_dataset("duplicates", schema=DUPLICATES)) == m.counts["dropped"] == 6


def test_dedup_interrupted_while_applying_resumes_from_its_saved_decisions(tmp_path, client, planted,
                                                                           monkeypatch):
    """finish saves its decisions before the apply tasks run, and each apply task deletes its
    part's pass-1 files: a stage interrupted after some parts were applied finishes from the
    saved decisions, with the same outputs as an uninterrupted run, and leaves nothing behind."""
    clean = RunDir(str(tmp_path / "clean"))
    write_pages(clean, planted)
    want = execute(DedupStage(), config_from_dict({}), clean, client, progress=False)

    run = RunDir(str(tmp_path / "run"))
    write_pages(run, planted)

    def interrupted(decisions):  # the client stops once the decisions are saved; one part's files are gone
        part = DedupStage().plan(config_from_dict({}), run)[0]
        for path in DedupStage._intermediates(run, part):
            run.fs.rm(path)
        raise KeyboardInterrupt

    monkeypatch.setattr(dedup_stage, "by_part", interrupted)
    with pytest.raises(KeyboardInterrupt):
        execute(DedupStage(), config_from_dict({}), run, client, progress=False)
    assert run.exists("dedup", "_decisions.arrow") and Manifest.load(run, "dedup").status == "running"
    monkeypatch.undo()
    m = execute(DedupStage(), config_from_dict({}), run, client, progress=False)
    assert m.extra["resumed_at"] == "apply" and m.counts == want.counts
    assert {k: v for k, v in m.extra.items() if k not in ("resumed_at", "finish_seconds")} == \
        {k: v for k, v in want.extra.items() if k != "finish_seconds"}
    for folder in ("duplicates", "dedup/pages"):
        assert run.read_dataset(*folder.split("/")).sort_by("page_id").equals(
            clean.read_dataset(*folder.split("/")).sort_by("page_id"))
    assert not run.exists("dedup", "_sig") and not run.exists("dedup", "_bands")
    assert not run.exists("dedup", "_decisions.arrow")


def test_pack_parts_fills_each_task_up_to_its_bytes():
    assert dedup_stage.pack_parts([3, 3, 3, 10, 1, 1], 6) == [(0, 2), (2, 3), (3, 4), (4, 6)]
    assert dedup_stage.pack_parts([5, 5, 5], 1) == [(0, 1), (1, 2), (2, 3)]  # a part is never split
    assert dedup_stage.pack_parts([5, 5, 5], 100) == [(0, 3)]
    assert dedup_stage.pack_parts([], 100) == []


def test_parts_packed_into_tasks_give_the_same_outputs_as_a_task_per_part(tmp_path, client, planted):
    """Small pages parts share tasks (dedup.task_bytes): five parts (one empty) in two tasks
    give the same duplicates, kept pages and counts per part as five tasks, and each part's
    outputs keep its name."""
    parts = {**planted, "bucket=1/part-1.parquet": planted["bucket=0/part-0.parquet"][:5],
             "bucket=1/part-2.parquet": [], "bucket=2/part-0.parquet": planted["bucket=1/part-0.parquet"][3:9]}
    runs, ms = {}, {}
    for name, task_bytes in (("apart", 1), ("packed", None)):
        run = RunDir(str(tmp_path / name))
        write_pages(run, parts)
        sizes = [size for _, size in run.file_sizes("pages", suffix=".parquet")]
        task_bytes = task_bytes or sum(sizes[:3])  # the first three parts in one task, the last two in another
        cfg = config_from_dict({"dedup": {"task_bytes": task_bytes, "rows_per_reducer": 200}})
        runs[name], ms[name] = run, execute(DedupStage(), cfg, run, client, progress=False)
    apart, packed = ms["apart"], ms["packed"]
    assert len(apart.parts) == 5 and sorted(packed.parts) == ["bucket=0__part-0__3parts", "bucket=1__part-2__2parts"]
    assert packed.extra["final_parts"] == apart.extra["final_parts"] and len(packed.extra["final_parts"]) == 5
    assert packed.counts == apart.counts and packed.counts["dropped"] > 6  # the copies across parts too
    for key in ("clusters", "candidate_pairs", "verified_pairs", "exact_edges", "url_edges"):
        assert packed.extra[key] == apart.extra[key]
    for folder in ("duplicates", "dedup/pages"):
        want = runs["apart"].read_dataset(*folder.split("/")).sort_by("page_id")
        assert runs["packed"].read_dataset(*folder.split("/")).sort_by("page_id").equals(want)
        names = sorted(f.rsplit("/", 1)[-1] for f in runs["packed"].list_files(*folder.split("/")))
        assert names == sorted(f.rsplit("/", 1)[-1] for f in runs["apart"].list_files(*folder.split("/")))
    assert not runs["packed"].exists("dedup", "_sig")


def test_an_empty_pages_part_passes_through(tmp_path, client, planted):
    run = RunDir(str(tmp_path / "run"))
    write_pages(run, {**planted, "bucket=2/part-0.parquet": []})
    m = execute(DedupStage(), config_from_dict({}), run, client, progress=False)
    assert m.counts["in"] == sum(len(v) for v in planted.values()) == m.counts["out"] + m.counts["dropped"]
    assert m.extra["final_parts"]["bucket=2__part-0"] == {"in": 0, "out": 0, "rejected": 0, "dropped": 0,
                                                         "exact": 0, "url": 0, "near": 0}
    assert m.extra["exact_checked_pairs"] >= 0 and not run.exists("dedup", "_sig")


@pytest.mark.parametrize("where", ["local", "memory"])
def test_reducers_read_back_the_rows_they_ask_for(tmp_path, planted, where):
    """Pass 1's shingles files, on a local disk (memory-mapped) and on another fsspec filesystem
    (only the record batches holding the rows are fetched): the rows of the pages asked for,
    across two parts and several batches, come back in uid order, equal to the fingerprints of
    those pages' text."""
    run = RunDir(str(tmp_path / "run") if where == "local" else f"memory://pagecat-{uuid.uuid4().hex}")
    rows = planted["bucket=0/part-0.parquet"]
    cfg = config_from_dict({"dedup": {"batch_rows": 7}})  # several batches: a chunked column
    paths = [shingles_path(run, f"p{i}") for i in range(5)]
    for index in (3, 4):
        _, _, shingles = sign_part(table(rows, PAGES), index, cfg)
        write_sig_table(run, paths[index], shingles, 4)  # batches of 4 rows, not the 7 signed at once
    pick = {3: [0, 5, 11, 12], 4: [2]}
    uids = np.array([(i << 32) | r for i in (3, 4) for r in pick[i]])
    got = read_part_rows(paths, uids, run)
    assert got.column("uid").to_pylist() == uids.tolist()
    texts = [rows[r]["text"] for i in (3, 4) for r in pick[i]]
    _, want, offsets = MinHasher().sign(texts, "fingerprints")
    assert [np.asarray(v, np.uint32).tolist() for v in got.column("shingles").to_pylist()] == \
        [want[offsets[i]:offsets[i + 1]].tolist() for i in range(len(texts))]


@pytest.mark.parametrize("where", ["local", "memory"])
def test_reducers_verify_the_same_edges_however_the_slots_are_split(tmp_path, webkb_texts, where, monkeypatch):
    """Pass 1 in process on pages with near copies at 1 to 30 edits (some borderline, checked
    exactly), then the reducers over the whole slot space and over 4 ranges, and with the
    borderline pairs read 2 at a time: the same edges with the same verdicts (a pair found in two
    ranges is judged alike in both), and the member rows of every page an accepted edge joins,
    with its signature as pass 1 wrote it."""
    run = RunDir(str(tmp_path / "run") if where == "local" else f"memory://pagecat-{uuid.uuid4().hex}")
    rng = random.Random(3)
    rows = [page_row(u, t) for u, t in webkb_texts[:30]]
    rows += [page_row(f"http://copy.example/{i}", edit(t, rng, 1 + i)) for i, (_, t) in enumerate(webkb_texts[:30])]
    cfg = config_from_dict({"dedup": {"batch_rows": 8}})
    stage, sigs = DedupStage(), {}
    write_pages(run, {"part-0.parquet": rows[::2], "part-1.parquet": rows[1::2]})
    parts = stage.plan(cfg, run)
    for p in parts:
        stage.run_part(p, cfg, run)
        with run.fs.open(sig_path(run, p.id), "rb") as fh:
            written = pa.ipc.open_file(fh).read_all()
        sigs.update(zip(written.column("uid").to_pylist(), written.column("sig").to_pylist()))
    kw = {"run": run, "settings": cfg.dedup, "band_paths": [run.path(BANDS_DIR, f"{p.id}.parquet") for p in parts],
          "sig_paths": [sig_path(run, p.id) for p in parts], "shingle_paths": [shingles_path(run, p.id) for p in parts]}
    whole, members = verified_edges(0, 1 << 16, **kw)
    split = [verified_edges(lo, hi, **kw) for lo, hi in slot_ranges(4, 1)]
    assert np.array_equal(unique_rows(np.concatenate([e for e, _ in split])), unique_rows(whole))
    monkeypatch.setattr(candidates, "EXACT_PAIRS_PER_READ", 2)
    assert np.array_equal(verified_edges(0, 1 << 16, **kw)[0], whole)
    verdict = whole[:, 3]
    assert (verdict & CHECKED).any() and (verdict & ACCEPTED).any() and not (verdict & ACCEPTED).all()
    joined = np.unique(whole[(verdict & ACCEPTED) > 0, :2])
    assert members.column("uid").to_pylist() == joined.tolist()
    assert [sigs[u] for u in joined.tolist()] == members.column("sig").to_pylist()


def test_bad_dedup_config_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="dedup.keep: unknown criterion 'newest'"):
        DedupStage().check(config_from_dict({"dedup": {"keep": ["newest"]}}), RunDir(str(tmp_path)))
    with pytest.raises(UsageError, match="dedup.threshold"):
        DedupStage().check(config_from_dict({"dedup": {"threshold": 1.5}}), RunDir(str(tmp_path)))
    with pytest.raises(UsageError, match="dedup.task_bytes: must be at least 1, got 0"):
        DedupStage().check(config_from_dict({"dedup": {"task_bytes": 0}}), RunDir(str(tmp_path)))


# -- the pieces ---------------------------------------------------------------------------------
def test_tokens_and_hashes_are_stable_across_processes():
    texts = ["Hello, World! héllo   world", None, "", "a"]
    hashes, offsets = tokenize(pa.array(texts))
    assert offsets.tolist() == [0, 4, 4, 4, 5]
    assert hashes[1] == hashes[3] and hashes[0] != hashes[2]  # "world" twice; "hello" != "héllo"
    code = ("from pagecat.etl.dedup import MinHasher; "
            "print(MinHasher(16, 2).transform(['the quick brown fox jumps']).tolist())")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(outs) == 1
    assert MinHasher(16, 2).transform(["the quick brown fox jumps"]).tolist() == eval(outs.pop())
    assert hash_strings(pa.array(["abc", "abd", "abc"])).tolist()[0::2] == [hash_strings(pa.array(["abc"]))[0]] * 2


def test_minhash_estimates_jaccard(webkb_texts):
    rng = random.Random(3)
    hasher = MinHasher(256, 3)
    errors = []
    for _, text in webkb_texts[:40]:
        other = edit(text, rng, rng.randrange(1, 15))

        def shingles(t):
            w = t.lower().split()
            return {tuple(w[i:i + 3]) for i in range(len(w) - 2)}
        a, b = shingles(text), shingles(other)
        sig = hasher.transform([text, other])
        errors.append(float(estimated_jaccard(sig[0], sig[1])) - len(a & b) / len(a | b))
    assert abs(np.mean(errors)) < 0.03 and np.std(errors) < 0.05
    empty = hasher.transform(["", "   ...  "])
    assert (empty == 0xFFFFFFFF).all()


def test_lsh_params_match_datasketch():
    from datasketch import MinHashLSH

    for threshold, num_perm in ((0.8, 128), (0.5, 64), (0.9, 256)):
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        assert lsh_params(threshold, num_perm) == (lsh.b, lsh.r)


def test_pairs_agree_with_datasketch(webkb_texts):
    """Planted near-duplicates: pagecat's pairs and datasketch's MinHashLSH agree; distinct pages
    are never paired."""
    from datasketch import MinHash, MinHashLSH

    rng = random.Random(11)
    texts = [t for _, t in webkb_texts[:60]]
    planted = set()
    for i in range(0, 30):
        texts.append(edit(texts[i], rng, rng.randrange(1, 4)))
        planted.add((i, len(texts) - 1))
    threshold, num_perm, k = 0.7, 128, 5

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    sketches = []
    for i, t in enumerate(texts):
        words = t.lower().split()
        m = MinHash(num_perm=num_perm, seed=1)
        m.update_batch([" ".join(words[j:j + k]).encode() for j in range(max(len(words) - k + 1, 1))])
        lsh.insert(i, m)
        sketches.append(m)
    theirs = {tuple(sorted((i, j))) for i, m in enumerate(sketches) for j in lsh.query(m) if i != j}

    finder = NearDuplicateFinder(threshold=threshold, num_perm=num_perm, shingle_words=k, verify=False).fit(texts)
    ours = {tuple(p) for p in finder.pairs_.tolist()}
    assert len(ours & theirs) / len(ours | theirs) >= 0.9
    assert len(ours & planted) >= 0.95 * len(planted)
    verified = {tuple(p) for p in NearDuplicateFinder(threshold=threshold, num_perm=num_perm,
                                                      shingle_words=k).fit(texts).pairs_.tolist()}
    assert len(verified & planted) >= 0.9 * len(planted)

    # clear non-duplicates are never paired (WebKB itself holds a few real near-duplicates)
    def jaccard(i, j):
        a, b = ({tuple(t.lower().split()[x:x + k]) for x in range(len(t.split()) - k + 1)}
                for t in (texts[i], texts[j]))
        return len(a & b) / len(a | b)
    assert all(jaccard(i, j) >= threshold - 0.15 for i, j in verified)
    assert all(jaccard(i, j) >= 0.3 for i, j in ours)


def test_band_rows_group_by_slot_range(tmp_path):
    run = RunDir(str(tmp_path))
    rng = np.random.default_rng(0)
    keys = rng.integers(1, 2**63, size=(500, 4), dtype=np.uint64).astype(np.uint64)
    keys[10] = keys[3]  # page 10 shares every band with page 3
    uids = np.arange(500, dtype=np.int64)
    text_keys = np.arange(1, 501, dtype=np.uint64)
    t = band_rows(uids, text_keys, keys, extra={-1: np.where(uids == 7, text_keys[2], text_keys)})
    path = run.path("b.parquet")
    write_band_rows(run, path, t)
    ranges = slot_ranges(t.num_rows, 300)
    assert len(ranges) >= 7 and ranges[0][0] == 0 and ranges[-1][1] == 1 << 16
    pieces = [read_slot_range(run, [path], lo, hi) for lo, hi in ranges]
    assert sum(p.num_rows for p in pieces) == t.num_rows
    edges = np.concatenate([bucket_edges(p, True, 50) for p in pieces])
    # one bucket per band: the pair shows up once per band (finish takes the unique edges)
    assert sorted(set(map(tuple, edges.tolist()))) == [(2, 7, EXACT), (3, 10, NEAR)]
    assert unique_rows(edges).tolist() == [[2, 7, EXACT], [3, 10, NEAR]]
    rows = rng.integers(-2, 3, (300, 3)).astype(np.int64) + (np.int64(1) << 40)
    assert np.array_equal(unique_rows(rows), np.unique(rows, axis=0))


@pytest.mark.parametrize("nodes,edges", [(50, 30), (2000, 1500), (2000, 4000), (300, 299)])
def test_components_equal_scipys_connected_components(nodes, edges):
    """Random graphs (forests, one giant component, chains): the same partition and the same
    numbering as scipy's connected_components over the sorted uids."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    rng = np.random.default_rng(nodes + edges)
    ids = rng.choice(np.int64(1) << 40, nodes, replace=False)
    if edges == nodes - 1:  # a chain in shuffled order: the most rounds of hooking
        e = np.stack([ids[:-1], ids[1:]], 1)
    else:
        e = ids[rng.integers(0, nodes, (edges, 2))]
    uids, comp = components(e)
    want_uids, idx = np.unique(e, return_inverse=True)
    idx = idx.reshape(-1, 2)
    graph = sp.coo_matrix((np.ones(len(idx)), (idx[:, 0], idx[:, 1])), shape=(len(want_uids),) * 2)
    assert np.array_equal(uids, want_uids)
    assert comp.tolist() == connected_components(graph, directed=False)[1].tolist()


def test_big_buckets_become_stars_and_clusters_keep_by_rule():
    t = band_rows(np.arange(6, dtype=np.int64), np.arange(1, 7, dtype=np.uint64),
                  np.full((6, 1), 99, np.uint64))
    assert len(bucket_edges(t, True, 50)) == 15  # every pair
    star = bucket_edges(t, True, 3)
    assert star[:, 0].tolist() == [0] * 5 and star[:, 1].tolist() == [1, 2, 3, 4, 5]
    uids, comp = components(np.array([[1, 2], [2, 3], [7, 8]]))
    assert uids.tolist() == [1, 2, 3, 7, 8] and len(set(comp[:3])) == 1 and comp[3] == comp[4] != comp[0]
    length = np.array([10, 30, 30, 5, 5])
    labelled = np.array([False, False, False, False, True])
    assert KeepRule().kept(comp, uids, length, labelled).tolist() == [2, 2, 2, 8, 8]
    assert KeepRule(["earliest"]).kept(comp, uids, length, labelled).tolist() == [1, 1, 1, 7, 7]
    assert KeepRule(["longest"]).kept(comp, uids, length, labelled).tolist() == [2, 2, 2, 7, 7]
    with pytest.raises(ValueError, match="unknown keep criteria"):
        KeepRule(["newest"])


def test_url_keys_fast_path_agrees_with_canonicalize():
    """URLs matched by CANONICAL_URL skip canonicalize: for every one of them it must be the
    identity, and url_keys must equal hashing canonicalize's output for every URL."""
    from pagecat.etl.dedup.stage import url_keys
    from pagecat.urls import CANONICAL_URL, MalformedURL, canonicalize

    rng = random.Random(4)
    pieces = ["http", "HTTP", "https", "ftp", "://", "www", "a", "B", ".", "..", "/", "/", "/", "%41", "%7e", "%",
              "?", "q=1", "&", "#", ":80", ":8080", "@", "_", "-", "~", " ", "é", "utm_source=x", "!", "'", "=",
              ";", "\t"]
    urls = [r["url"] for r in load_sample()][:300]
    urls += ["http://a.example/./x", "http://a.example/x/..", "http://a.example/...", "http://a.example/..a",
             "http://a.example/.b/", "http://a.example//", "http://a.example", "http://a.example./x",
             "http://a..example/x", "http://Ex.com/x", "http://a.example/x?", "http://a.example/x#",
             "http://a.example/%7E", "http://u@a.example/", "http://a.example:80/", None, ""]
    for _ in range(4000):
        start = rng.choice(["http://", "https://", "HTTP://", "http://a.example/", "https://b-c.example/x/"])
        urls.append(start + "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 9))))
    fast = np.asarray(pc.fill_null(pc.match_substring_regex(pa.array(urls, pa.string()), CANONICAL_URL), False))
    for u in np.array(urls, object)[fast]:
        assert canonicalize(u) == u, u

    def slow(u):
        try:
            return canonicalize(u) if u else None
        except MalformedURL:
            return None
    assert 500 < fast.sum() < len(urls) - 500
    want = hash_strings(pa.array([slow(u) or "" for u in urls], pa.string()))
    want[want == 0] = 1
    want[np.array([slow(u) is None for u in urls])] = 0
    assert url_keys(pa.array(urls, pa.string())).tolist() == want.tolist()


def test_dedup_output_is_the_same_with_one_or_two_workers_and_as_the_finder(tmp_path, client, webkb_texts):
    """The stage's duplicates/ with 1 worker and with 2 are equal, and its near-duplicate clusters
    are those of NearDuplicateFinder (the same steps in one process) on the same texts."""
    from distributed import Client, LocalCluster

    rng = random.Random(21)
    texts = [t for _, t in webkb_texts[:60]]
    for i in range(0, 60, 3):  # edited copies, some borderline, across parts
        texts.append(edit(texts[i], rng, max(1, round(len(texts[i].split()) * rng.uniform(0.002, 0.05)))))
    texts.append(edit(texts[60], rng, 1))  # a copy of a copy: a 3-page cluster
    rows = [page_row(f"http://site{i % 7}.example/p{i}", t) for i, t in enumerate(texts)]
    parts = {f"part-{k}.parquet": rows[k * 27:(k + 1) * 27] for k in range(3)}
    cfg = config_from_dict({"dedup": {"exact": False, "url": False, "rows_per_reducer": 300}})

    def duplicates(c, name):
        run = RunDir(str(tmp_path / name))
        write_pages(run, parts)
        m = execute(DedupStage(), cfg, run, c, progress=False)
        return run.read_dataset("duplicates", schema=DUPLICATES).sort_by("page_id"), m

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as one:
        dups1, m1 = duplicates(one, "one")
    dups2, m2 = duplicates(client, "two")
    assert dups1.equals(dups2) and m1.counts == m2.counts
    assert m1.extra["exact_checked_pairs"] == m2.extra["exact_checked_pairs"] > 0

    finder = NearDuplicateFinder(threshold=0.8, num_perm=128, shingle_words=5).fit(texts)
    uids, comp = components(finder.pairs_)
    length = np.array([len(texts[u].split()) for u in uids])
    kept = KeepRule(["longest", "earliest"]).kept(comp, uids, length, np.zeros(len(uids), bool))
    page_id = [r["page_id"] for r in rows]
    want = {page_id[u]: page_id[k] for u, k in zip(uids.tolist(), kept.tolist()) if u != k}
    assert len(want) >= 10
    assert dict(zip(dups1["page_id"].to_pylist(), dups1["kept_id"].to_pylist())) == want


def test_roomy_heap_reuses_large_blocks_under_a_pinned_trim_threshold():
    """Under Dask's MALLOC_TRIM_THRESHOLD_ a task's large temporaries are reused, not mapped and
    page-faulted afresh; after the task the worker's own thresholds are back."""
    code = """
import resource, numpy as np
from pagecat.etl.dedup.heap import roomy_heap

def churn():
    for _ in range(40):
        a = np.ones(1 << 18)  # 2 MB: far above the pinned 128 KiB mmap threshold, below numpy's huge pages
        del a

def faults(fn):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    fn()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

print(faults(churn), faults(roomy_heap(churn)), faults(churn))
"""
    env = {"MALLOC_TRIM_THRESHOLD_": "65536", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    plain, roomy, after = map(int, out.split())
    assert plain > 40 * 400  # every array faulted in anew (512 pages each)
    assert roomy < plain / 5
    assert after > plain / 2  # the thresholds were set back
