"""MinHash signatures and LSH band keys, vectorised with numpy over whole batches of texts.

Nothing here loops over words in Python. For a batch of texts (a pyarrow string array):

1. ``tokenize``: one table lookup over the texts' UTF-8 bytes lower-cases ASCII letters and
   turns every ASCII byte that is not a letter or digit into a space, and so do the no-break
   space and the common non-ASCII punctuation (``_SEPARATOR_RANGES``: curly quotes, dashes,
   ellipses, CJK and full-width punctuation), so "don’t" splits as "don't" does and Chinese
   text splits at its commas and full stops; pyarrow splits on spaces. Other non-ASCII bytes
   are word bytes, compared as written (no case folding beyond ASCII). Each distinct token gets
   a stable 64-bit hash (``hash_strings``: a random-weight linear hash of its bytes, finalised
   with splitmix64). Python's ``hash()`` is salted per process and never used: signatures must
   agree between workers and runs.
2. ``shingle_hashes``: word n-gram hashes from consecutive token hashes (an order-sensitive
   multiply-add of ``n`` token hashes, finalised); a text shorter than ``n`` words is one
   shingle of all its words.
3. ``MinHasher``: one-permutation hashing (Li, Owen & Zhang 2012) with optimal densification
   (Shrivastava 2017): each shingle is hashed once, to one of ``num_perm`` bins and a 32-bit
   value; a bin keeps its minimum (``np.minimum.at``), and an empty bin takes the value of the
   first non-empty bin along a fixed pseudo-random probe sequence. Every position of two
   signatures is equal with probability equal to the texts' Jaccard similarity, as with
   ``num_perm`` independent permutations, at the cost of one hash per shingle instead of
   ``num_perm``.

The compiled kernel ``_minhash`` (from _minhash.c, built when a C compiler is there) does
steps 1-3 in one pass over each text's bytes, several times faster, with the same numbers bit
for bit: workers with and without it give the same signatures. This numpy path is the
reference and the fallback where it is not built (``MinHasher(compiled=False)`` forces it).

LSH: ``lsh_params`` picks ``bands`` x ``rows`` as datasketch's MinHashLSH does (minimising the
equally weighted false-positive and false-negative areas), so both find the same candidates
at the same threshold; ``band_keys`` hashes each band of a signature to one uint64 key.
"""

from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

try:
    from . import _minhash
except ImportError:  # not built: the numpy path below does the same work
    _minhash = None

MAX_HASH = np.uint32(0xFFFFFFFF)  # an empty bin; the signature of a text with no words
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MASK64 = 0xFFFFFFFFFFFFFFFF
# byte -> byte: ASCII letters lower-cased, digits kept, other ASCII a space, non-ASCII kept
_BYTE_MAP = np.full(256, 0x20, np.uint8)
_BYTE_MAP[48:58] = np.arange(48, 58)
_BYTE_MAP[97:123] = np.arange(97, 123)
_BYTE_MAP[65:91] = np.arange(97, 123)
_BYTE_MAP[128:] = np.arange(128, 256)
_BYTE_TABLE = _BYTE_MAP.tobytes()
# Three-byte UTF-8 punctuation read as a space: (lead byte, second byte, lowest and highest third byte).
_SEPARATOR_RANGES = (
    (0xE2, 0x80, 0x80, 0xBF), (0xE2, 0x81, 0x80, 0xAF),  # U+2000-U+206F general punctuation, odd spaces
    (0xE3, 0x80, 0x80, 0xBF),                            # U+3000-U+303F CJK symbols and punctuation
    (0xEF, 0xBC, 0x81, 0x8F), (0xEF, 0xBC, 0x9A, 0xA0),  # full-width ! to / and : to @
    (0xEF, 0xBC, 0xBB, 0xBF), (0xEF, 0xBD, 0x80, 0x80),  # full-width [ to ` (not the letters)
    (0xEF, 0xBD, 0x9B, 0xA5),                            # full-width { to ~ and half-width CJK punctuation
)
_DENSIFY_PROBES = 8  # probe rounds per bin before the rotation fallback: x num_perm
_LSH_POINTS = 1001  # Simpson's rule grid of lsh_params (odd)


def splitmix64(x: np.ndarray, copy: bool = True) -> np.ndarray:
    """The splitmix64 finaliser, element-wise on uint64 (wrapping arithmetic): a good mix.
    ``copy=False`` mixes a uint64 array in place (for a temporary: one array less to fill)."""
    x = x.astype(np.uint64, copy=copy)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


@functools.lru_cache(maxsize=8)
def _byte_weights(length: int) -> np.ndarray:
    """Fixed random odd uint64 weights for byte positions 0..length-1 (the same in every process)."""
    return np.random.default_rng(0x5EED).integers(0, 2**63, size=length, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


def hash_strings(strings: pa.Array) -> np.ndarray:
    """Stable 64-bit hashes of a pyarrow string array: (n,) uint64. Equal strings, equal hashes."""
    strings = pc.cast(strings, pa.large_string()) if strings.type == pa.string() else strings
    strings = strings.combine_chunks() if isinstance(strings, pa.ChunkedArray) else strings
    n = len(strings)
    if n == 0:
        return np.zeros(0, np.uint64)
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int64)[strings.offset:strings.offset + n + 1]
    data = np.frombuffer(strings.buffers()[2], dtype=np.uint8) if strings.buffers()[2] is not None else (
        np.zeros(0, np.uint8))
    lengths = np.diff(offsets)
    lo, hi = int(offsets[0]), int(offsets[-1])
    out = lengths.astype(np.uint64) * _GOLDEN
    if hi > lo:
        data = data[lo:hi].astype(np.uint64)
        starts = offsets[:-1] - lo
        # position of every byte inside its own string
        pos = np.arange(hi - lo, dtype=np.int64) - np.repeat(starts, lengths)
        weights = _byte_weights(int(lengths.max()))
        terms = data * weights[pos]
        nonempty = lengths > 0
        out[nonempty] += np.add.reduceat(terms, starts[nonempty])
    return splitmix64(out, copy=False)


def _as_large_strings(texts) -> pa.LargeStringArray:
    texts = texts if isinstance(texts, (pa.Array, pa.ChunkedArray)) else pa.array(list(texts), pa.string())
    texts = pc.fill_null(pc.cast(texts, pa.large_string()), "")
    return texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts


def tokenize(texts) -> tuple[np.ndarray, np.ndarray]:
    """Texts (str list or pyarrow strings) to (token hashes (n_tokens,) uint64, offsets
    (n_texts + 1,) int64). Null texts have no words."""
    texts = _as_large_strings(texts)
    n = len(texts)
    offsets_buf, data_buf = texts.buffers()[1], texts.buffers()[2]
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    # bytes.translate maps a byte a cycle, several times faster than numpy's table lookup
    mapped = np.frombuffer(bytearray(data_buf).translate(_BYTE_TABLE) if data_buf is not None else bytearray(),
                           np.uint8)
    # the separators' lead bytes only (C2, E2, E3, EF: few even in CJK or Cyrillic text, where
    # most bytes are >= C2); the separator tests run on these
    lead = np.flatnonzero((data == 0xC2) | (data == 0xE2) | (data == 0xE3) | (data == 0xEF))
    nbsp = lead[(data[lead] == 0xC2) & (lead < len(data) - 1)]  # U+00A0 is C2 A0: a space between words
    nbsp = nbsp[data[nbsp + 1] == 0xA0]
    mapped[nbsp] = mapped[nbsp + 1] = 0x20
    lead = lead[(data[lead] != 0xC2) & (lead < len(data) - 2)]
    if len(lead):
        b0, b1, b2 = data[lead], data[lead + 1], data[lead + 2]
        sep = np.zeros(len(lead), bool)
        for first, second, lo, hi in _SEPARATOR_RANGES:
            sep |= (b0 == first) & (b1 == second) & (b2 >= lo) & (b2 <= hi)
        lead = lead[sep]
        mapped[lead] = mapped[lead + 1] = mapped[lead + 2] = 0x20
    cleaned = pa.LargeStringArray.from_buffers(n, offsets_buf, pa.py_buffer(mapped), offset=texts.offset)
    words = pc.ascii_split_whitespace(cleaned)
    encoded = pc.dictionary_encode(words.flatten())
    codes = np.asarray(encoded.indices)  # int32 indexes as well as int64, without a copy
    token_hash = hash_strings(encoded.dictionary)[codes] if len(codes) else np.zeros(0, np.uint64)
    offsets = np.asarray(words.offsets, dtype=np.int64)
    offsets = offsets - offsets[0]
    # an empty or all-separator text splits into one empty string: drop empty tokens
    empty = np.flatnonzero(np.asarray(pc.equal(pc.binary_length(encoded.dictionary), 0), dtype=bool))
    if len(empty):
        keep = codes != empty[0]
        return token_hash[keep], np.concatenate([[0], np.cumsum(keep)])[offsets]
    return token_hash, offsets


def shingle_hashes(token_hash: np.ndarray, offsets: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Word n-gram hashes: (shingle hashes (m,) uint64, offsets (n_texts + 1,) int64).

    A shingle's hash depends on its words and their order; a text with fewer than ``n``
    (but some) words gives one shingle of all of them, an empty text none.
    """
    total = len(token_hash)
    counts = np.diff(offsets)
    weights = _byte_weights(max(n, 1))
    # window sums over the whole flat array; windows that cross a text's end are dropped below
    combined = token_hash * weights[0]
    for j in range(1, n):
        combined[:total - j] += token_hash[j:] * weights[j]
    valid = np.ones(total, bool)
    for k in range(1, n):  # the last n-1 positions of a text start no full window
        last = offsets[1:] - k
        valid[last[last >= offsets[:-1]]] = False
    short = np.flatnonzero((counts > 0) & (counts < n))
    if len(short):  # one shingle of all the words of a short text
        starts = offsets[:-1][short]
        acc = np.zeros(len(short), np.uint64)
        for j in range(n - 1):
            inside = j < counts[short]
            acc[inside] += token_hash[starts[inside] + j] * weights[j]
        combined[starts] = acc
        valid[starts] = True
    per_doc = np.where(counts >= n, counts - n + 1, (counts > 0).astype(np.int64))
    return splitmix64(combined[valid], copy=False), np.concatenate([[0], np.cumsum(per_doc)]).astype(np.int64)


@functools.lru_cache(maxsize=8)
def _probe_table(num_perm: int, seed: int) -> np.ndarray:
    """(num_perm, rounds) int64: the bins an empty bin borrows from, in order (never itself)."""
    rounds = _DENSIFY_PROBES * num_perm
    base = np.arange(num_perm, dtype=np.uint64)[:, None] * np.uint64(rounds) + np.arange(
        1, rounds + 1, dtype=np.uint64)[None, :]
    h = splitmix64(base ^ np.uint64((seed * 0xD6E8FEB86659FD93) & _MASK64))
    probes = ((h >> np.uint64(32)) * np.uint64(num_perm - 1) >> np.uint64(32)).astype(np.int64)
    # values 0..num_perm-2, shifted past the bin itself
    return probes + (probes >= np.arange(num_perm)[:, None])


SHINGLE_OUTPUTS = (None, "hashes", "fingerprints")  # MinHasher.sign's choices; the kernel's keep = index


def shingle_fingerprints(shingle_hashes: np.ndarray) -> np.ndarray:
    """32-bit fingerprints of 64-bit shingle hashes (their high half): (m,) uint32. Exact
    verification compares these (see ``verify``)."""
    return (shingle_hashes >> np.uint64(32)).astype(np.uint32)


class MinHasher:
    """Texts to MinHash signatures, shape (n_texts, num_perm), uint32.

    Parameters
    ----------
    num_perm : signature length (bins of the one-permutation hash).
    shingle_words : words per shingle (word n-grams).
    seed : picks the hash; signatures compare only under the same seed.
    compiled : sign with the compiled kernel when it is built (the same numbers, several times
        faster); False: the numpy path.

    A text with no words gets a row of ``MAX_HASH`` (``is_empty`` tells them apart).
    """

    def __init__(self, num_perm: int = 128, shingle_words: int = 5, seed: int = 1, compiled: bool = True):
        self.num_perm = num_perm
        self.shingle_words = shingle_words
        self.seed = seed
        self.compiled = compiled and _minhash is not None

    def sign(self, texts, shingles: str | None = "hashes") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(signatures (n_texts, num_perm) uint32, shingles (m,), their offsets (n_texts + 1,)
        int64) of ``texts`` (str list or Arrow): ``transform`` and ``shingles`` at once.

        ``shingles``: ``"hashes"``, the shingle hashes (uint64); ``"fingerprints"``, their
        ``shingle_fingerprints`` (uint32, made as the kernel goes: no 64-bit copy of them all);
        None, none (an empty array; the offsets still count each text's shingles, and the
        kernel keeps one text's shingles at a time)."""
        if shingles not in SHINGLE_OUTPUTS:
            raise ValueError(f"shingles must be one of {', '.join(map(repr, SHINGLE_OUTPUTS))}, got {shingles!r}")
        if not self.compiled:
            hashes, offsets = self.shingles(texts)
            sig = self.signatures_from_shingles(hashes, offsets)
            out = {"hashes": hashes, "fingerprints": shingle_fingerprints(hashes), None: hashes[:0]}[shingles]
            return sig, out, offsets
        texts = _as_large_strings(texts)
        n = len(texts)
        text_offsets = np.frombuffer(texts.buffers()[1], np.int64)[texts.offset:texts.offset + n + 1]
        longest = int(np.diff(text_offsets).max()) if n else 0
        # a power of two covering the longest text covers every token: few sizes to cache
        byte_weights = _byte_weights(max(64, 1 << (longest - 1).bit_length()))
        # a single bin is never empty in a text with shingles: its probe table is never read
        probes = _probe_table(self.num_perm, self.seed) if self.num_perm > 1 else np.zeros((1, 1), np.int64)
        sig = np.empty((n, self.num_perm), np.uint32)
        offsets = np.empty(n + 1, np.int64)
        keep = SHINGLE_OUTPUTS.index(shingles)
        out = _minhash.sign(texts.buffers()[2] or b"", text_offsets, byte_weights,
                            _byte_weights(self.shingle_words), self._seed_mix, probes, sig, offsets, keep)
        return sig, np.frombuffer(out, np.uint32 if shingles == "fingerprints" else np.uint64), offsets

    @property
    def _seed_mix(self) -> int:
        """The seed's word, xor-ed into every shingle hash before it picks a bin and a value."""
        return (self.seed * int(_GOLDEN)) & _MASK64

    def shingles(self, texts) -> tuple[np.ndarray, np.ndarray]:
        """(shingle hashes (m,) uint64, offsets (n_texts + 1,) int64) of ``texts`` (str list or Arrow)."""
        return shingle_hashes(*tokenize(texts), self.shingle_words)

    def signatures_from_shingles(self, hashes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Signatures (n_texts, num_perm) uint32 from shingle hashes grouped by ``offsets``."""
        p = self.num_perm
        n_docs = len(offsets) - 1
        counts = np.diff(offsets)
        h = splitmix64(hashes ^ np.uint64(self._seed_mix), copy=False)
        bins = ((h >> np.uint64(32)) * np.uint64(p) >> np.uint64(32)).astype(np.int64)
        values = np.minimum(h & np.uint64(0xFFFFFFFF), np.uint64(MAX_HASH) - np.uint64(1)).astype(np.uint32)
        doc = np.repeat(np.arange(n_docs, dtype=np.int64), counts)
        sig = np.full(n_docs * p, MAX_HASH, np.uint32)
        np.minimum.at(sig, doc * p + bins, values)
        sig = sig.reshape(n_docs, p)
        self._densify(sig, counts > 0)
        return sig

    def _densify(self, sig: np.ndarray, has_words: np.ndarray) -> None:
        """Fill the empty bins of non-empty texts in place (optimal densification, then rotation)."""
        filled = sig != MAX_HASH
        empty_doc, empty_bin = np.nonzero(~filled & has_words[:, None])
        if len(empty_doc) == 0:
            return
        source = sig.copy()
        probes = _probe_table(sig.shape[1], self.seed)
        for r in range(probes.shape[1]):
            j = probes[empty_bin, r]
            hit = filled[empty_doc, j]
            sig[empty_doc[hit], empty_bin[hit]] = source[empty_doc[hit], j[hit]]
            empty_doc, empty_bin = empty_doc[~hit], empty_bin[~hit]
            if len(empty_doc) == 0:
                return
        # the rare bin no probe reached: the next non-empty bin to its right (wrapping)
        for d, i in zip(empty_doc.tolist(), empty_bin.tolist()):
            order = np.roll(np.arange(sig.shape[1]), -i)
            sig[d, i] = source[d, order[filled[d, order]][0]]

    def transform(self, texts) -> np.ndarray:
        """Signatures of ``texts`` (a list of str, or a pyarrow string array): (n, num_perm) uint32."""
        return self.sign(texts, shingles=None)[0]


def is_empty(signatures: np.ndarray) -> np.ndarray:
    """Rows of texts with no words: (n,) bool."""
    return (signatures == MAX_HASH).all(axis=1)


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Share of equal signature values, row by row: (n,) float32 from two (n, num_perm) arrays."""
    return (a == b).mean(axis=-1).astype(np.float32)


@functools.lru_cache(maxsize=64)
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) with bands * rows <= num_perm, minimising the false-positive area
    below ``threshold`` plus the false-negative area above it: datasketch's choice (equal weights).

    The areas are integrated by Simpson's rule on a fine grid, for every (bands, rows) at once
    (datasketch calls scipy's adaptive ``quad`` for each: slow to import and to run in every
    worker); the integrands are polynomials, so the error is far below the gaps between choices.
    """
    choices = [(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)]
    bands = np.array([b for b, _ in choices], np.float64)[:, None]
    rows = np.array([r for _, r in choices], np.float64)[:, None]
    weights = np.ones(_LSH_POINTS)
    weights[1:-1:2], weights[2:-1:2] = 4, 2

    def area(lo: float, hi: float, false_negative: bool) -> np.ndarray:
        s = np.linspace(lo, hi, _LSH_POINTS)[None, :]
        miss = (1 - s ** rows) ** bands  # probability that no band matches at similarity s
        return ((miss if false_negative else 1 - miss) @ weights) * (hi - lo) / (3 * (_LSH_POINTS - 1))

    error = 0.5 * area(0.0, threshold, False) + 0.5 * area(threshold, 1.0, True)
    return choices[int(np.argmin(error))]  # the first minimum, in datasketch's loop order


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One uint64 key per (text, band): (n, bands). Two texts share a key in band ``i`` exactly
    when their signatures agree on that band's ``rows`` values (up to 64-bit hash collisions);
    keys of different bands differ."""
    n = signatures.shape[0]
    keys = np.empty((n, bands), np.uint64)
    sig = signatures.astype(np.uint64)
    weights = _byte_weights(rows)
    for band in range(bands):
        acc = np.full(n, np.uint64(((band + 1) * int(_GOLDEN)) & 0xFFFFFFFFFFFFFFFF), np.uint64)
        for j in range(rows):
            acc += sig[:, band * rows + j] * weights[j]
        keys[:, band] = splitmix64(acc, copy=False)
    return keys
