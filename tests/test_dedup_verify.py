"""dedup verification: candidate pairs whose MinHash estimate is too close to the threshold are
decided by the exact Jaccard of their shingle fingerprints, in one process (NearDuplicateFinder)
and in the stage on a LocalCluster; the fingerprint Jaccard itself against Python sets; the
tokenizer's non-ASCII punctuation."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest
from test_dedup import edit, page_row, page_text, write_pages

from pagecat.config import config_from_dict
from pagecat.data.webkb import load_sample
from pagecat.etl.dedup import MinHasher, NearDuplicateFinder, band_keys, estimated_jaccard, lsh_params
from pagecat.etl.dedup import verify as verify_module
from pagecat.etl.dedup.minhash import tokenize
from pagecat.etl.dedup.stage import DedupStage
from pagecat.etl.dedup.verify import exact_jaccard, triage, verify_margin
from pagecat.runs import RunDir
from pagecat.schemas import DUPLICATES
from pagecat.stage import execute

THRESHOLD, NUM_PERM, SHINGLE = 0.8, 128, 5


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """Distinct real WebKB page texts of at least 150 words."""
    out, seen = [], set()
    for r in load_sample():
        text = page_text(r["raw"])
        if len(text.split()) >= 150 and text not in seen:
            seen.add(text)
            out.append(text)
        if len(out) == 60:
            break
    return out


def shingle_sets(texts: list[str]) -> list[set[int]]:
    hashes, offsets = MinHasher(NUM_PERM, SHINGLE).shingles(texts)
    return [set(hashes[offsets[i]:offsets[i + 1]].tolist()) for i in range(len(texts))]


def true_jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


def test_exact_jaccard_matches_python_sets(monkeypatch):
    rng = np.random.default_rng(0)
    sets = [rng.integers(0, 60, rng.integers(0, 50)).astype(np.uint32) for _ in range(40)]  # repeats, empties
    values = np.concatenate(sets)
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sets])]).astype(np.int64)
    pairs = rng.integers(0, 40, (300, 2))
    want = np.array([true_jaccard(set(sets[a].tolist()), set(sets[b].tolist())) for a, b in pairs])
    for chunk in (1 << 22, 64, 1):  # one chunk, several, one pair per chunk
        monkeypatch.setattr(verify_module, "PAIRS_CHUNK_VALUES", chunk)
        assert np.allclose(exact_jaccard(values, offsets, pairs), want, atol=1e-6)
    assert exact_jaccard(values, offsets, np.zeros((0, 2), np.int64)).shape == (0,)


def test_triage_bands_around_the_threshold():
    margin = verify_margin(0.8, 128)
    assert 0.10 < margin < 0.11  # 3 standard deviations of the estimate at J = 0.8
    est = np.array([0.5, 0.8 - margin - 0.01, 0.8 - margin + 0.01, 0.79, 0.8, 0.85, 0.8 + margin + 0.01],
                   np.float32)
    accepted, borderline = triage(est, 0.8, 128)
    assert accepted.tolist() == [False] * 6 + [True]
    assert borderline.tolist() == [False, False, True, True, True, True, False]
    # a threshold of 1: every pair estimated at 1 is checked, none accepted on the estimate
    accepted, borderline = triage(np.array([1.0, 0.99], np.float32), 1.0, 128)
    assert not accepted.any() and borderline.tolist() == [True, False]


def test_tokenizer_splits_at_non_ascii_punctuation():
    pairs = [("don’t stop—now…ok", "don t stop now ok"), ("你好，世界。再见", "你好 世界 再见"),
             ("ｆｕｌｌ：ｗｉｄｔｈ「ｘ」", "ｆｕｌｌ ｗｉｄｔｈ ｘ"), ("naïve café", "naïve café")]
    hashes, offsets = tokenize(pa.array([t for p in pairs for t in p]))
    runs = [hashes[offsets[i]:offsets[i + 1]].tolist() for i in range(len(offsets) - 1)]
    for k in range(len(pairs)):
        assert runs[2 * k] == runs[2 * k + 1] and len(runs[2 * k]) > 1
    assert runs[6] != tokenize(pa.array(["naive cafe"]))[0].tolist()  # other non-ASCII letters are word bytes


@pytest.fixture(scope="module")
def borderline_pairs(texts):
    """Edited copies of real pages whose estimate falls on the wrong side of the threshold, and
    which LSH makes candidates: (a text estimated >= 0.8 at true Jaccard < 0.8, one estimated
    < 0.8 at true Jaccard >= 0.8), each as (original index, copy text, true Jaccard, estimate)."""
    hasher = MinHasher(NUM_PERM, SHINGLE)
    bands, rows = lsh_params(THRESHOLD, NUM_PERM)
    rng = random.Random(5)
    over = under = None
    for trial in range(4000):
        i = trial % len(texts)
        n_words = len(texts[i].split())
        copy = edit(texts[i], rng, max(1, round(n_words * rng.uniform(0.02, 0.05))))
        sig = hasher.transform([texts[i], copy])
        est = float(estimated_jaccard(sig[0], sig[1]))
        keys = band_keys(sig, bands, rows)
        if not (keys[0] == keys[1]).any():
            continue
        j = true_jaccard(*shingle_sets([texts[i], copy]))
        if over is None and est >= THRESHOLD and j < THRESHOLD:
            over = (i, copy, j, est)
        if under is None and est < THRESHOLD and j >= THRESHOLD:
            under = (i, copy, j, est)
        if over and under:
            return over, under
    pytest.fail("no borderline pair among the edited pages")


def test_finder_decides_borderline_pairs_exactly(texts, borderline_pairs):
    rng = random.Random(9)
    corpus = list(texts[:40])
    for i in range(0, 40, 2):  # edited copies from clearly similar to clearly not
        corpus.append(edit(texts[i], rng, max(1, round(len(texts[i].split()) * rng.uniform(0.005, 0.06)))))
    (i_over, copy_over, j_over, _), (i_under, copy_under, j_under, _) = borderline_pairs
    corpus += [texts[i_over], copy_over, texts[i_under], copy_under]
    over, under = (len(corpus) - 4, len(corpus) - 3), (len(corpus) - 2, len(corpus) - 1)

    kw = {"threshold": THRESHOLD, "num_perm": NUM_PERM, "shingle_words": SHINGLE}
    candidates = NearDuplicateFinder(verify=False, **kw).fit(corpus)
    exact = NearDuplicateFinder(**kw).fit(corpus)
    estimate = NearDuplicateFinder(exact=False, **kw).fit(corpus)
    sets = shingle_sets(corpus)
    truth = {tuple(p): true_jaccard(sets[p[0]], sets[p[1]]) for p in candidates.pairs_.tolist()}
    margin = verify_margin(THRESHOLD, NUM_PERM)
    est = dict(zip(map(tuple, candidates.pairs_.tolist()), candidates.similarity_.tolist()))
    want = {p for p, e in est.items()
            if e >= THRESHOLD + margin - 1e-6 or (e >= THRESHOLD - margin - 1e-6 and truth[p] >= THRESHOLD)}
    got = dict(zip(map(tuple, exact.pairs_.tolist()), exact.similarity_.tolist()))
    assert set(got) == want
    for p, sim in got.items():  # checked pairs carry their exact Jaccard, the others their estimate
        assert sim == pytest.approx(truth[p] if abs(est[p] - THRESHOLD) <= margin else est[p], abs=1e-5)
    found_by_estimate = {tuple(p) for p in estimate.pairs_.tolist()}
    assert over in found_by_estimate and over not in got and j_over < THRESHOLD
    assert under not in found_by_estimate and under in got and j_under >= THRESHOLD


def test_stage_rejects_a_pair_estimated_over_the_threshold(tmp_path, client, texts, borderline_pairs):
    """The stage drops the copy that is truly >= 0.8 similar and keeps the one the estimate alone
    would have dropped."""
    (i_over, copy_over, _, _), (i_under, copy_under, _, _) = borderline_pairs
    rows = [page_row(f"http://site.example/p{i}", t) for i, t in enumerate(texts[:30])]
    if i_over >= 30:
        rows.append(page_row("http://site.example/over", texts[i_over]))
    if i_under >= 30 and i_under != i_over:
        rows.append(page_row("http://site.example/under", texts[i_under]))
    rows_b = [page_row("http://copy.example/over", copy_over), page_row("http://copy.example/under", copy_under)]
    run = RunDir(str(tmp_path / "run"))
    write_pages(run, {"part-0.parquet": rows, "part-1.parquet": rows_b})
    m = execute(DedupStage(), config_from_dict({"dedup": {"exact": False, "url": False}}), run, client,
                progress=False)
    dropped = {r["url"] for r in run.read_dataset("duplicates", schema=DUPLICATES).to_pylist()}
    assert m.extra["exact_checked_pairs"] >= 2
    assert "http://copy.example/over" not in dropped
    under_pair = {"http://copy.example/under", f"http://site.example/p{i_under}", "http://site.example/under"}
    assert len(dropped & under_pair) == 1 and m.counts["near"] == len(dropped)
