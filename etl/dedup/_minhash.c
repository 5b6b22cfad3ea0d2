/* MinHash signatures of a batch of texts in one pass over their bytes: the compiled kernel.
 *
 * minhash.py's numpy path is the reference and the fallback; this module gives the same
 * numbers bit for bit (signatures, shingle hashes), so workers with and without it agree. Per
 * text, without a Python object per word:
 *
 * 1. tokens: maximal runs of word bytes (tokenize: ASCII letters lower-cased and digits;
 *    non-ASCII bytes as written, except the no-break space C2 A0 and the three-byte UTF-8
 *    punctuation ranges, which separate words as the ASCII separators do), each hashed as
 *    hash_strings does: length * GOLDEN plus the sum of byte * weight[position], splitmix64;
 * 2. shingles: n consecutive token hashes times the shingle weights, summed, splitmix64 (a
 *    text of fewer than n words: one shingle of all of them), as shingle_hashes does;
 * 3. signature: each shingle hashed once to a bin and a 32-bit value, a bin keeping its
 *    minimum; empty bins of a text with shingles filled from the probe table, then from the
 *    next filled bin to the right (MinHasher._densify).
 *
 * And the exact check's step (verify.exact_jaccard): the intersections of pairs of sorted runs of
 * shingle fingerprints, one merge per pair.
 *
 * The weights and the probe table come from Python (the same arrays the numpy path uses).
 * Texts are Arrow strings, so valid UTF-8: no multi-byte sequence crosses a text's end.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define GOLDEN 0x9E3779B97F4A7C15ULL
#define EMPTY_BIN 0xFFFFFFFFu

static inline uint64_t splitmix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBULL;
    x ^= x >> 31;
    return x;
}

/* byte -> what tokenize maps it to; 0x20 is a separator. Bytes that may lead a non-ASCII
 * separator are flagged in maybe_separator. */
static unsigned char byte_map[256];
static unsigned char maybe_separator[256];

static void init_tables(void) {
    for (int b = 0; b < 256; b++) {
        byte_map[b] = b >= 128 ? (unsigned char)b : 0x20;
        maybe_separator[b] = b == 0xC2 || b == 0xE2 || b == 0xE3 || b == 0xEF;
    }
    for (int b = '0'; b <= '9'; b++) byte_map[b] = (unsigned char)b;
    for (int b = 'a'; b <= 'z'; b++) byte_map[b] = (unsigned char)b;
    for (int b = 'A'; b <= 'Z'; b++) byte_map[b] = (unsigned char)(b - 'A' + 'a');
}

/* The length of the non-ASCII separator at p (2 or 3 bytes), or 0: minhash._SEPARATOR_RANGES
 * and the no-break space. */
static inline int separator_length(const unsigned char *p, const unsigned char *end) {
    if (p[0] == 0xC2) return end - p >= 2 && p[1] == 0xA0 ? 2 : 0;
    if (end - p < 3) return 0;
    unsigned char b1 = p[1], b2 = p[2];
    switch (p[0]) {
    case 0xE2:
        return ((b1 == 0x80 && b2 >= 0x80 && b2 <= 0xBF) || (b1 == 0x81 && b2 >= 0x80 && b2 <= 0xAF)) ? 3 : 0;
    case 0xE3:
        return b1 == 0x80 && b2 >= 0x80 && b2 <= 0xBF ? 3 : 0;
    case 0xEF:
        if (b1 == 0xBC)
            return ((b2 >= 0x81 && b2 <= 0x8F) || (b2 >= 0x9A && b2 <= 0xA0) || (b2 >= 0xBB && b2 <= 0xBF)) ? 3 : 0;
        if (b1 == 0xBD) return (b2 == 0x80 || (b2 >= 0x9B && b2 <= 0xA5)) ? 3 : 0;
        return 0;
    default:
        return 0;
    }
}

/* The separator length at p: 1 for an ASCII separator, 2 or 3 for a non-ASCII one, 0 in a word. */
static inline int separator_at(const unsigned char *p, const unsigned char *end) {
    if (byte_map[*p] == 0x20) return 1;
    return maybe_separator[*p] ? separator_length(p, end) : 0;
}

/* Token hashes of the text [p, end) into tokens (room for (end - p + 1) / 2 of them); returns
 * their number, or -1 when a token is longer than the n_weights byte weights. */
static Py_ssize_t token_hashes(const unsigned char *p, const unsigned char *end, const uint64_t *weights,
                               Py_ssize_t n_weights, uint64_t *tokens) {
    Py_ssize_t n = 0;
    while (p < end) {
        int skip = separator_at(p, end);
        if (skip) {
            p += skip;
            continue;
        }
        uint64_t h = 0;
        Py_ssize_t k = 0;
        do {
            if (k == n_weights) return -1;
            h += (uint64_t)byte_map[*p] * weights[k];
            k++;
            p++;
        } while (p < end && !separator_at(p, end));
        tokens[n++] = splitmix64(h + (uint64_t)k * GOLDEN);
    }
    return n;
}

/* Shingle hashes of n_tokens token hashes into out; returns their number. */
static Py_ssize_t shingle_hashes(const uint64_t *tokens, Py_ssize_t n_tokens, Py_ssize_t words,
                                 const uint64_t *weights, uint64_t *out) {
    if (n_tokens == 0) return 0;
    if (n_tokens < words) {
        uint64_t h = 0;
        for (Py_ssize_t j = 0; j < n_tokens; j++) h += tokens[j] * weights[j];
        out[0] = splitmix64(h);
        return 1;
    }
    Py_ssize_t n = n_tokens - words + 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t h = 0;
        for (Py_ssize_t j = 0; j < words; j++) h += tokens[i + j] * weights[j];
        out[i] = splitmix64(h);
    }
    return n;
}

/* Fill the empty bins of a text's signature (one with shingles): from the first filled bin along
 * the bin's probe sequence, else the next filled bin to its right, wrapping. "Filled" is filled
 * by a shingle, never by an earlier densified bin (the numpy path reads a copy). */
static void densify(uint32_t *sig, Py_ssize_t num_perm, const int64_t *probes, Py_ssize_t rounds,
                    unsigned char *filled) {
    for (Py_ssize_t b = 0; b < num_perm; b++) filled[b] = sig[b] != EMPTY_BIN;
    for (Py_ssize_t b = 0; b < num_perm; b++) {
        if (filled[b]) continue;
        const int64_t *row = probes + b * rounds;
        Py_ssize_t r = 0;
        while (r < rounds && !filled[row[r]]) r++;
        if (r < rounds) {
            sig[b] = sig[row[r]];
            continue;
        }
        for (Py_ssize_t k = 1; k < num_perm; k++) {
            Py_ssize_t j = (b + k) % num_perm;
            if (filled[j]) {
                sig[b] = sig[j];
                break;
            }
        }
    }
}

/* One text's signature (num_perm bins) from its n shingle hashes. */
static void signature(const uint64_t *shingles, Py_ssize_t n, uint64_t seed_mix, Py_ssize_t num_perm,
                      const int64_t *probes, Py_ssize_t rounds, uint32_t *sig, unsigned char *filled) {
    for (Py_ssize_t b = 0; b < num_perm; b++) sig[b] = EMPTY_BIN;
    if (n == 0) return;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t h = splitmix64(shingles[i] ^ seed_mix);
        uint64_t bin = ((h >> 32) * (uint64_t)num_perm) >> 32;
        uint32_t value = (uint32_t)h;
        if (value == EMPTY_BIN) value = EMPTY_BIN - 1;
        if (value < sig[bin]) sig[bin] = value;
    }
    densify(sig, num_perm, probes, rounds, filled);
}

/* Why a batch could not be signed (set with the GIL released, raised after). */
enum failure { OK, NO_MEMORY, TOKEN_TOO_LONG, BAD_OFFSETS };

static int get_buffer(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, int writable, const char *name) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0) return -1;
    if (view->len % itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes, not a whole number of %zd-byte items", name, view->len,
                     itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(sign_doc,
"sign(data, offsets, byte_weights, shingle_weights, seed_mix, probes, signatures, shingle_offsets,\n"
"     keep=1)\n\n"
"Signs the texts data[offsets[i]:offsets[i + 1]] (UTF-8; offsets int64): fills signatures\n"
"(uint32, n_texts x num_perm, num_perm = len(probes) / rounds rows of the probe table) and\n"
"shingle_offsets (int64, n_texts + 1) and returns, as a bytearray, with keep=1 the shingle\n"
"hashes (uint64), with keep=2 their high halves (uint32 fingerprints), with keep=0 nothing\n"
"(each text's shingles are dropped once it is signed).\n"
"byte_weights (uint64) must cover the longest token; shingle_weights (uint64) has one weight\n"
"per word of a shingle; seed_mix is the seed's word mixed into every shingle hash.");

static PyObject *sign(PyObject *self, PyObject *args) {
    PyObject *objs[7];
    unsigned long long seed_mix;
    int keep = 1;
    if (!PyArg_ParseTuple(args, "OOOOKOOO|i", &objs[0], &objs[1], &objs[2], &objs[3], &seed_mix, &objs[4], &objs[5],
                          &objs[6], &keep))
        return NULL;
    if (keep < 0 || keep > 2) {
        PyErr_SetString(PyExc_ValueError, "sign: keep must be 0, 1 or 2");
        return NULL;
    }
    static const char *names[] = {"data", "offsets", "byte_weights", "shingle_weights", "probes", "signatures",
                                  "shingle_offsets"};
    static const Py_ssize_t sizes[] = {1, 8, 8, 8, 8, 4, 8};
    Py_buffer views[7];
    int got = 0;
    PyObject *result = NULL;
    for (; got < 7; got++)
        if (get_buffer(objs[got], &views[got], sizes[got], got >= 5, names[got]) < 0) goto done;
    const unsigned char *data = views[0].buf;
    const int64_t *offsets = views[1].buf, *probes = views[4].buf;
    const uint64_t *byte_weights = views[2].buf, *shingle_weights = views[3].buf;
    uint32_t *sigs = views[5].buf;
    int64_t *shingle_offsets = views[6].buf;
    Py_ssize_t n_texts = views[1].len / 8 - 1, n_weights = views[2].len / 8, words = views[3].len / 8;
    Py_ssize_t n_probes = views[4].len / 8;
    Py_ssize_t num_perm = n_texts > 0 ? views[5].len / 4 / n_texts : 0;
    if (n_texts < 0 || words < 1 || views[6].len / 8 != n_texts + 1 || (n_texts > 0 && (num_perm < 1 ||
        views[5].len / 4 != n_texts * num_perm || n_probes % num_perm || n_probes == 0))) {
        PyErr_SetString(PyExc_ValueError, "sign: the arrays' sizes do not agree");
        goto done;
    }
    Py_ssize_t rounds = num_perm > 0 ? n_probes / num_perm : 0;
    for (Py_ssize_t i = 0; i < n_probes && n_texts > 0; i++)
        if (probes[i] < 0 || probes[i] >= num_perm) {
            PyErr_SetString(PyExc_ValueError, "sign: a probe outside the signature");
            goto done;
        }

    enum failure failed = OK;
    uint64_t *tokens = NULL, *shingles = NULL;
    uint32_t *prints = NULL; /* keep=2: the fingerprints of every text so far */
    unsigned char *filled = NULL;
    Py_ssize_t n_shingles = 0, capacity = 0, total = 0; /* shingles in the buffer; of every text so far */
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t longest = 0;
    for (Py_ssize_t t = 0; t < n_texts && failed == OK; t++) {
        if (offsets[t] < 0 || offsets[t + 1] < offsets[t] || offsets[t + 1] > views[0].len) failed = BAD_OFFSETS;
        else if (offsets[t + 1] - offsets[t] > longest) longest = offsets[t + 1] - offsets[t];
    }
    if (failed == OK) {
        tokens = malloc(sizeof(uint64_t) * (longest / 2 + 1));
        filled = malloc(num_perm + 1);
        capacity = (keep && n_texts > 0 ? (offsets[n_texts] - offsets[0]) / 6 : 0) + 64;
        shingles = malloc(sizeof(uint64_t) * (keep == 1 ? capacity : longest / 2 + 1));
        if (keep == 2) prints = malloc(sizeof(uint32_t) * capacity);
        if (!tokens || !filled || !shingles || (keep == 2 && !prints)) failed = NO_MEMORY;
    }
    if (failed == OK) shingle_offsets[0] = 0;
    for (Py_ssize_t t = 0; t < n_texts && failed == OK; t++) {
        Py_ssize_t n_tokens = token_hashes(data + offsets[t], data + offsets[t + 1], byte_weights, n_weights, tokens);
        if (n_tokens < 0) {
            failed = TOKEN_TOO_LONG;
            break;
        }
        if (keep && n_shingles + n_tokens > capacity) { /* at most one shingle per token */
            capacity = 2 * capacity > n_shingles + n_tokens ? 2 * capacity : n_shingles + n_tokens;
            void *grown = keep == 1 ? realloc(shingles, sizeof(uint64_t) * capacity)
                                    : realloc(prints, sizeof(uint32_t) * capacity);
            if (!grown) {
                failed = NO_MEMORY;
                break;
            }
            if (keep == 1) shingles = grown;
            else prints = grown;
        }
        /* keep=1 keeps every text's hashes in shingles; else it holds one text's (the longest fits) */
        uint64_t *at = keep == 1 ? shingles + n_shingles : shingles;
        Py_ssize_t n = shingle_hashes(tokens, n_tokens, words, shingle_weights, at);
        signature(at, n, seed_mix, num_perm, probes, rounds, sigs + t * num_perm, filled);
        if (keep == 2)
            for (Py_ssize_t i = 0; i < n; i++) prints[n_shingles + i] = (uint32_t)(at[i] >> 32);
        if (keep) n_shingles += n;
        total += n;
        shingle_offsets[t + 1] = total;
    }
    Py_END_ALLOW_THREADS
    if (failed == OK)
        result = keep == 2 ? PyByteArray_FromStringAndSize((const char *)prints, n_shingles * 4)
                           : PyByteArray_FromStringAndSize((const char *)shingles, keep ? n_shingles * 8 : 0);
    else if (failed == NO_MEMORY) PyErr_NoMemory();
    else if (failed == TOKEN_TOO_LONG) PyErr_SetString(PyExc_ValueError, "sign: a token longer than byte_weights");
    else PyErr_SetString(PyExc_ValueError, "sign: offsets outside data or decreasing");
    free(tokens);
    free(shingles);
    free(prints);
    free(filled);
done:
    while (got-- > 0) PyBuffer_Release(&views[got]);
    return result;
}

PyDoc_STRVAR(intersections_doc,
"intersections(values, starts, pairs, out)\n\n"
"The sizes of the intersections of pairs of sorted runs of distinct values: values (uint32)\n"
"holds run d at values[starts[d]:starts[d + 1]] (starts int64), pairs (int64, k x 2) names\n"
"two runs each; out (int64, k) receives the number of values both runs hold.");

static PyObject *intersections(PyObject *self, PyObject *args) {
    PyObject *objs[4];
    if (!PyArg_ParseTuple(args, "OOOO", &objs[0], &objs[1], &objs[2], &objs[3])) return NULL;
    static const char *names[] = {"values", "starts", "pairs", "out"};
    static const Py_ssize_t sizes[] = {4, 8, 16, 8};
    Py_buffer views[4];
    int got = 0;
    PyObject *result = NULL;
    for (; got < 4; got++)
        if (get_buffer(objs[got], &views[got], sizes[got], got == 3, names[got]) < 0) goto done;
    const uint32_t *values = views[0].buf;
    const int64_t *starts = views[1].buf, *pairs = views[2].buf;
    int64_t *out = views[3].buf;
    Py_ssize_t n_values = views[0].len / 4, n_runs = views[1].len / 8 - 1, n_pairs = views[2].len / 16;
    if (views[3].len / 8 != n_pairs) {
        PyErr_SetString(PyExc_ValueError, "intersections: out must hold one count per pair");
        goto done;
    }
    for (Py_ssize_t d = 0; d < n_runs; d++)
        if (starts[d] < 0 || starts[d + 1] < starts[d] || starts[d + 1] > n_values) {
            PyErr_SetString(PyExc_ValueError, "intersections: runs outside values or decreasing");
            goto done;
        }
    for (Py_ssize_t i = 0; i < 2 * n_pairs; i++)
        if (pairs[i] < 0 || pairs[i] >= n_runs) {
            PyErr_SetString(PyExc_ValueError, "intersections: a pair names a run that is not there");
            goto done;
        }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t k = 0; k < n_pairs; k++) { /* one merge of the two sorted runs */
        const uint32_t *a = values + starts[pairs[2 * k]], *a_end = values + starts[pairs[2 * k] + 1];
        const uint32_t *b = values + starts[pairs[2 * k + 1]], *b_end = values + starts[pairs[2 * k + 1] + 1];
        int64_t both = 0;
        while (a < a_end && b < b_end) {
            if (*a < *b) a++;
            else if (*b < *a) b++;
            else {
                both++;
                a++;
                b++;
            }
        }
        out[k] = both;
    }
    Py_END_ALLOW_THREADS
    Py_INCREF(Py_None);
    result = Py_None;
done:
    while (got-- > 0) PyBuffer_Release(&views[got]);
    return result;
}

static PyMethodDef methods[] = {
    {"sign", sign, METH_VARARGS, sign_doc},
    {"intersections", intersections, METH_VARARGS, intersections_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_minhash",
                                    "MinHash signatures of texts in one pass (see minhash.py).", -1, methods};

PyMODINIT_FUNC PyInit__minhash(void) {
    init_tables();
    return PyModule_Create(&module);
}
