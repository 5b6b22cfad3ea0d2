"""The compiled MinHash kernel (etl/dedup/_minhash.c) against the numpy path, bit for bit: the
signatures, shingle hashes and exact Jaccards of real WebKB and Common Crawl texts and of texts
made to hit every tokenizer rule; and the numpy fallback where the kernel is not there."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest
from test_dedup import page_text

from pagecat.data.webkb import load_sample
from pagecat.etl.dedup import NearDuplicateFinder, band_keys, lsh_params, minhash, verify
from pagecat.etl.dedup.minhash import MinHasher, shingle_fingerprints
from pagecat.etl.dedup.verify import exact_jaccard

SETTINGS = [(128, 5, 1), (16, 2, 3), (1, 1, 0), (7, 9, 2), (256, 3, 11)]  # num_perm, shingle words, seed
# every separator rule, both sides of each range's ends, words of other scripts, edge lengths
EDGE_TEXTS = [
    "", " ", "one", "two words", None, "   ...   ", "x" * 5000, "Don’t stop — “quoted”… ok",
    "中文，测试。文本！还有「引号」", "Ｈｅｌｌｏ，ｗｏｒｌｄ！ ｛ａ｝ ｡ ｦ", "a\u00a0b\u3000c\u00a0", "\u00a0",
    "naïve café ÉCOLE straße", "Привет мир как дела сегодня", "emoji 😀 words 😀 here", "tab\tnew\nline\r\x00nul",
    "end with lead \u00c2", "\u2000\u203f\u2040\u206f\u2070 \u3000\u303f\u3040 \uff01\uff0f\uff10\uff1a\uff20\uff21",
    "\uff3b\uff3f\uff40\uff41\uff5b\uff65\uff66 mixed",
]


def webkb_texts(limit: int) -> list[str]:
    out = []
    for r in load_sample():
        out.append(page_text(r["raw"]))
        if len(out) == limit:
            break
    return out


def common_crawl_texts(shared_data) -> list[str]:
    """The Common Crawl samples' texts: the WET file's plain text and the text of the WARCs' HTML
    responses (pages of several languages), whitespace kept as it comes."""
    from lxml import html as lxml_html
    from warcio.archiveiterator import ArchiveIterator

    texts = []
    for path in sorted((shared_data / "warc_samples").glob("*.warc*.gz")):
        with open(path, "rb") as fh:
            for rec in ArchiveIterator(fh):
                if rec.rec_type == "conversion":
                    texts.append(rec.content_stream().read().decode("utf-8", "replace"))
                elif rec.rec_type == "response" and "html" in (rec.http_headers.get_header("Content-Type") or ""):
                    body = rec.content_stream().read()
                    texts.append(lxml_html.fromstring(body).text_content() if body.strip() else "")
    return texts


def assert_same_signing(texts, settings=SETTINGS) -> None:
    """Both paths give equal signatures, shingle hashes, offsets and band keys, also on a slice."""
    arr = pa.array(texts, pa.string())
    for num_perm, words, seed in settings:
        for batch in (arr, arr.slice(len(arr) // 3, len(arr) // 2)):
            fast = MinHasher(num_perm, words, seed).sign(batch)
            slow = MinHasher(num_perm, words, seed, compiled=False).sign(batch)
            for a, b in zip(fast, slow):
                assert a.dtype == b.dtype and a.shape == b.shape
                np.testing.assert_array_equal(a, b)
            # the other shingle outputs: the same signatures and offsets, the hashes' fingerprints or none
            for compiled in (True, False):
                hasher = MinHasher(num_perm, words, seed, compiled=compiled)
                sig, prints, offsets = hasher.sign(batch, "fingerprints")
                assert prints.dtype == np.uint32
                np.testing.assert_array_equal(prints, shingle_fingerprints(fast[1]))
                sig_only, none, offsets_only = hasher.sign(batch, None)
                assert len(none) == 0
                for a, b in ((sig, fast[0]), (offsets, fast[2]), (sig_only, fast[0]), (offsets_only, fast[2])):
                    np.testing.assert_array_equal(a, b)
            if num_perm > 1:
                lsh = lsh_params(0.8, num_perm)
                np.testing.assert_array_equal(band_keys(fast[0], *lsh), band_keys(slow[0], *lsh))


def test_the_compiled_kernel_is_built():
    assert minhash._minhash is not None, "build it: pip install --no-deps -e . (needs a C compiler and Python headers)"
    assert MinHasher().compiled and not MinHasher(compiled=False).compiled


def test_compiled_and_numpy_paths_sign_webkb_and_edge_texts_alike():
    pages = webkb_texts(300)
    texts = pages + EDGE_TEXTS
    assert_same_signing(texts)
    sig, hashes, offsets = MinHasher().sign(texts)
    assert len(hashes) > 50_000 and offsets[-1] == len(hashes)
    edge = slice(len(pages), None)
    empty = np.isin(np.arange(len(EDGE_TEXTS)), [0, 1, 4, 5, 11])  # "", " ", None, "   ...   ", "\u00a0"
    assert (minhash.is_empty(sig[edge]) == empty).all() and (np.diff(offsets)[edge][empty] == 0).all()


def test_compiled_and_numpy_paths_sign_common_crawl_texts_alike(shared_data):
    texts = common_crawl_texts(shared_data)
    assert len(texts) > 10 and sum(any(ord(c) > 0x2E80 for c in t) for t in texts) > 3  # CJK among them
    assert_same_signing(texts, SETTINGS[:2])


def test_compiled_and_numpy_paths_agree_on_random_separator_soup():
    rng = random.Random(5)
    alphabet = list("aB9 .,-'\t") + list("\u00a0\u00c2\u2000\u203f\u2040\u206f\u2070\u3000\u303f\u3040\uff01"
                                        "\uff0f\uff10\uff1a\uff20\uff21\uff3b\uff3f\uff40\uff41\uff5b\uff65\uff66"
                                        "é中😀\u00a1\u0100")
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40))) for _ in range(3000)]
    assert_same_signing(texts, [(8, 1, 1), (8, 2, 1), (32, 3, 1)])


def test_compiled_exact_jaccard_equals_the_numpy_one():
    texts = webkb_texts(120) + EDGE_TEXTS
    _, hashes, offsets = MinHasher().sign(texts)
    pairs = np.random.default_rng(0).integers(0, len(texts), (2000, 2))
    pairs[:50, 1] = pairs[:50, 0]  # a page with itself: 1, or 0 for an empty one
    fast = exact_jaccard(shingle_fingerprints(hashes), offsets, pairs)
    slow = exact_jaccard(shingle_fingerprints(hashes), offsets, pairs, compiled=False)
    assert fast.dtype == slow.dtype == np.float32 and (fast > 0.5).sum() >= 50
    np.testing.assert_array_equal(fast, slow)


def test_without_the_kernel_the_numpy_path_gives_the_same_pairs(monkeypatch):
    texts = webkb_texts(200)
    rng = random.Random(2)
    texts += [" ".join(w for w in t.split() if rng.random() > 0.02) for t in texts[:60]]  # near copies
    built = NearDuplicateFinder(0.8, 128, 5).fit(texts)
    monkeypatch.setattr(minhash, "_minhash", None)
    monkeypatch.setattr(verify, "_minhash", None)
    assert not MinHasher().compiled
    fallback = NearDuplicateFinder(0.8, 128, 5).fit(texts)
    assert len(built.pairs_) >= 30
    np.testing.assert_array_equal(built.signatures_, fallback.signatures_)
    np.testing.assert_array_equal(built.pairs_, fallback.pairs_)
    np.testing.assert_array_equal(built.similarity_, fallback.similarity_)


def test_the_kernel_refuses_arrays_that_do_not_fit():
    kernel = minhash._minhash
    weights, probes = np.ones(64, np.uint64), np.zeros((4, 8), np.int64)
    data, offsets = b"ab cd", np.array([0, 5], np.int64)
    sig, out = np.empty((1, 4), np.uint32), np.empty(2, np.int64)
    with pytest.raises(ValueError, match="offsets outside"):
        kernel.sign(data, np.array([0, 9], np.int64), weights, weights[:2], 0, probes, sig, out)
    with pytest.raises(ValueError, match="sizes"):
        kernel.sign(data, offsets, weights, weights[:2], 0, probes, sig, np.empty(3, np.int64))
    with pytest.raises(ValueError, match="probe outside"):
        kernel.sign(data, offsets, weights, weights[:2], 0, probes + 4, sig, out)
    with pytest.raises(ValueError, match="keep must be"):
        kernel.sign(data, offsets, weights, weights[:2], 0, probes, sig, out, 3)
    with pytest.raises(ValueError, match="shingles must be"):
        MinHasher().sign(["a b"], "all")
    with pytest.raises(ValueError, match="longer than byte_weights"):
        kernel.sign(data, offsets, weights[:1], weights[:2], 0, probes, sig, out)
    with pytest.raises(ValueError, match="not there"):
        kernel.intersections(np.zeros(3, np.uint32), np.array([0, 3], np.int64), np.array([[0, 1]], np.int64),
                             np.empty(1, np.int64))


def test_a_process_without_the_kernel_signs_alike():
    """A worker whose install could not build the kernel imports the numpy path and signs alike."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['pagecat.etl.dedup._minhash'] = None  # as if never built\n"
            "from pagecat.etl.dedup import MinHasher\n"
            "print(MinHasher().compiled, MinHasher(16, 2).transform(['Don’t stop — the quick brown fox']).tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split(" ", 1)[0] == "False"
    assert eval(out.split(" ", 1)[1]) == MinHasher(16, 2).transform(["Don’t stop — the quick brown fox"]).tolist()
