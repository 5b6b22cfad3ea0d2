/* The extractor's tree work in C, on the lexbor tree that selectolax built.
 *
 * selectolax hands out each node's address (``LexborNode.mem_id``); this module reads lexbor's
 * node, element, attribute, text and hash-entry structs at those addresses, with the layouts of
 * the lexbor that selectolax 1.0.2 bundles (lexbor 3.1; selectolax/lexbor.pxd declares them).
 * Other lexbor versions lay them out differently: extract.py enables this module only for that
 * version and after reading back a probe element as selectolax reads it; the tests compare every
 * node of real pages with selectolax's API, and the whole output with the pure-Python path.
 *
 * It never writes to the tree and never calls lexbor: removal is a flag in its own arrays, and
 * every read skips what is flagged, which is what reading the tree after unlinking those nodes
 * gives.
 *
 * Each step follows etl/parse/extract.py (HtmlExtractor.extract, _drop_furniture,
 * _main_container, block_text) and etl/parse/furniture.py rule for rule; attribute values that
 * are not ASCII go to the Python functions given to configure(), whose Unicode case and space
 * rules are not copied here.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- lexbor's structs (selectolax 1.0.2) ------------------------------------------------ */

typedef struct lxnode {
    void *events;
    uintptr_t local_name; /* tag id (element), attribute id (attribute) */
    uintptr_t prefix;
    uintptr_t ns;
    void *owner_document;
    struct lxnode *next, *prev, *parent, *first_child, *last_child;
    void *user;
    int type;
} lxnode;

typedef struct {
    unsigned char *data;
    size_t length;
} lxstr;

typedef struct {
    lxnode node;
    lxstr data;
} lxchardata;

typedef struct lxattr lxattr;

typedef struct {
    lxnode node;
    uintptr_t upper_name, qualified_name;
    lxstr *is_value;
    lxattr *first_attr, *last_attr, *attr_id, *attr_class;
} lxelement;

struct lxattr {
    lxnode node;
    uintptr_t upper_name, qualified_name;
    lxstr *value;
    lxelement *owner;
    lxattr *next, *prev;
};

/* An attribute name outside lexbor's static table: its id is the address of its hash entry. */
typedef struct {
    union {
        unsigned char *long_str;
        unsigned char short_str[17];
    } u;
    size_t length;
    void *next;
} lxhash_entry;

_Static_assert(sizeof(lxnode) == 96, "lxb_dom_node_t is 96 bytes");
_Static_assert(offsetof(lxnode, type) == 88, "lxb_dom_node_t.type");
_Static_assert(offsetof(lxchardata, data) == 96, "lxb_dom_character_data_t.data");
_Static_assert(offsetof(lxelement, first_attr) == 120, "lxb_dom_element_t.first_attr");
_Static_assert(offsetof(lxattr, value) == 112, "lxb_dom_attr_t.value");
_Static_assert(offsetof(lxattr, next) == 128, "lxb_dom_attr_t.next");
_Static_assert(offsetof(lxhash_entry, length) == 24, "lexbor_hash_entry_t.length");

#define NODE_ELEMENT 1
#define NODE_TEXT 3
#define HASH_SHORT 16
#define STATIC_ID_LIMIT 65536 /* static attribute ids are small; interned names are addresses */

/* ---- configuration (from Python, once) ----------------------------------------------- */

#define TAGS 4096
enum {
    B_NON_TEXT = 1 << 0, B_CONTAINER = 1 << 1, B_ALWAYS_FURNITURE = 1 << 2, B_HEADING = 1 << 3,
    B_BLOCK = 1 << 4, B_CELL = 1 << 5, B_PARAGRAPH = 1 << 6, B_ARTICLE = 1 << 7, B_PAGE = 1 << 8,
    B_ABOVE_PAGE = 1 << 9,
};
static const char *BIT_NAMES[] = {"non_text", "container", "always_furniture", "heading", "block", "cell",
                                  "paragraph", "article", "page", "above_page", NULL};
static uint16_t tag_bits[TAGS];
static int tag_weight[TAGS];
enum { T_TEXT, T_A, T_HEADER, T_FIGCAPTION, T_BODY, T_HTML, T_P, T_DIV, T_TITLE, T_META, T_LINK,
       T_ARTICLE_ONLY, T_COUNT };
static const char *TAG_NAMES[] = {"#text", "a", "header", "figcaption", "body", "html", "p", "div", "title", "meta",
                                  "link", "article", NULL};
static uintptr_t tag_id[T_COUNT];

enum { A_CLASS, A_ID, A_HREF, A_ROLE, A_HIDDEN, A_ARIA_HIDDEN, A_STYLE, A_ITEMPROP, A_NAME, A_CONTENT, A_REL,
       A_LANG, A_COUNT };
static const char *ATTR_NAMES[] = {"class", "id", "href", "role", "hidden", "aria-hidden", "style", "itemprop",
                                   "name", "content", "rel", "lang", NULL};
static intptr_t attr_static[A_COUNT]; /* static id, or -1: the name is interned per document */
static size_t attr_len[A_COUNT];
static PyObject *py_word_flags;      /* furniture.word_flags, for values that are not ASCII */
static PyObject *py_value_weight;    /* extract.value_weight, the same */
static int configured;

#define FURNITURE_WORD 1
#define CONTENT_WORD 2

static inline unsigned tag_of(const lxnode *n) { return n->local_name < TAGS ? (unsigned)n->local_name : 0; }
static inline uint16_t bits_of(const lxnode *n) { return n->local_name < TAGS ? tag_bits[n->local_name] : 0; }

/* ---- growable byte buffer ---------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t n, cap;
} buf_t;

static int buf_add(buf_t *b, const void *data, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        char *p = PyMem_Realloc(b->p, cap);
        if (!p) {
            PyErr_NoMemory();
            return -1;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
    return 0;
}

/* ---- UTF-8 and Python's notions of space ------------------------------------------------- */

static int is_ascii(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] & 0x80) return 0;
    return 1;
}

/* Python's str.isspace() */
static inline int py_space(uint32_t c) {
    if (c < 128) return (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20);
    return c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
           c == 0x202f || c == 0x205f || c == 0x3000;
}

/* Code point at s[*i] (valid UTF-8 assumed), *i advanced past it. */
static uint32_t next_cp(const unsigned char *s, size_t n, size_t *i) {
    unsigned char c = s[*i];
    uint32_t cp;
    int k;
    if (c < 0x80) {
        (*i)++;
        return c;
    } else if (c < 0xe0) {
        cp = c & 0x1f;
        k = 1;
    } else if (c < 0xf0) {
        cp = c & 0x0f;
        k = 2;
    } else {
        cp = c & 0x07;
        k = 3;
    }
    (*i)++;
    while (k-- && *i < n) cp = (cp << 6) | (s[(*i)++] & 0x3f);
    return cp;
}

/* Code point ending at s[*j - 1], *j moved to its start. */
static uint32_t prev_cp(const unsigned char *s, size_t *j) {
    size_t start = *j - 1;
    while (start > 0 && (s[start] & 0xc0) == 0x80) start--;
    size_t i = start;
    uint32_t cp = next_cp(s, *j, &i);
    *j = start;
    return cp;
}

/* str.strip(): [*a, *b) without leading and trailing Unicode space. */
static void ustrip(const unsigned char *s, size_t n, size_t *a, size_t *b) {
    size_t i = 0, j = n;
    while (i < j) {
        size_t k = i;
        if (!py_space(next_cp(s, n, &k))) break;
        i = k;
    }
    while (j > i) {
        size_t k = j;
        if (!py_space(prev_cp(s, &k))) break;
        j = k;
    }
    *a = i;
    *b = j;
}

static size_t n_chars(const unsigned char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += (s[i] & 0xc0) != 0x80;
    return c;
}

/* extract.collapse() (lines = 0) or extract.lines_of() (lines = 1) of UTF-8 text, as a str.
 *
 * collapse(): text that is all ASCII has its \t \n \v \f \r and spaces collapsed to one space;
 * other text is split on Python's Unicode spaces and joined (str.isascii() picks the branch, so
 * \x1c-\x1f are spaces only in the second). lines_of(): U+200B and U+FEFF are spaces first; NUL
 * marks a block boundary; each block collapsed, empty ones dropped, the rest one per line. */
static PyObject *collapsed(const unsigned char *s, size_t n, int lines) {
    int ascii = 1;
    for (size_t i = 0; i < n && ascii; i++)
        if (s[i] & 0x80) {
            if (!lines) {
                ascii = 0;
            } else {
                size_t k = i;
                uint32_t c = next_cp(s, n, &k);
                if (c != 0x200b && c != 0xfeff) ascii = 0;
                i = k - 1;
            }
        }
    char small[1024] = "", *out = n <= sizeof(small) ? small : PyMem_Malloc(n);
    if (!out) return PyErr_NoMemory();
    size_t o = 0;
    int pending = 0, in_block = 0, blocks = 0;
    for (size_t i = 0; i < n;) {
        size_t start = i;
        if (s[i] >= 0x80 || s[i] == 0 || s[i] <= ' ') {
            /* fall through to the general case below */
        } else { /* a run of plain ASCII characters */
            if (!in_block && blocks++) out[o++] = '\n';
            else if (in_block && pending) out[o++] = ' ';
            in_block = 1;
            pending = 0;
            while (i < n && s[i] > ' ' && s[i] < 0x80) out[o++] = (char)s[i++];
            continue;
        }
        uint32_t c = s[i] < 0x80 ? s[i++] : next_cp(s, n, &i);
        int space = ascii ? (c == ' ' || (c >= 9 && c <= 13)) : py_space(c);
        if (lines && (c == 0x200b || c == 0xfeff)) space = 1;
        if (space) {
            pending = 1;
        } else if (lines && c == 0) {
            in_block = pending = 0;
        } else {
            if (!in_block && blocks++) out[o++] = '\n';
            else if (in_block && pending) out[o++] = ' ';
            in_block = 1;
            pending = 0;
            while (start < i) out[o++] = (char)s[start++];
        }
    }
    PyObject *r = PyUnicode_DecodeUTF8(out, (Py_ssize_t)o, "replace");
    if (out != small) PyMem_Free(out);
    return r;
}

/* ASCII-only s equals lower-case word w, ignoring ASCII case. */
static int ascii_ieq(const unsigned char *s, size_t n, const char *w) {
    size_t m = strlen(w);
    if (n != m) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c >= 'A' && c <= 'Z') c += 32;
        if (c != (unsigned char)w[i]) return 0;
    }
    return 1;
}

/* ASCII lower-case copy into out (n + 1 bytes) */
static void ascii_lower(const unsigned char *s, size_t n, char *out) {
    for (size_t i = 0; i < n; i++) out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] + 32) : (char)s[i];
    out[n] = 0;
}

/* Whether needle occurs in hay: class and id values are short, a plain scan beats memmem's set-up. */
static int contains(const char *hay, size_t n, const char *needle) {
    size_t m = strlen(needle);
    if (m > n) return 0;
    char first = needle[0];
    for (size_t i = 0, last = n - m; i <= last; i++)
        if (hay[i] == first && memcmp(hay + i + 1, needle + 1, m - 1) == 0) return 1;
    return 0;
}

/* ---- attributes ------------------------------------------------------------------------ */

typedef struct {
    const unsigned char *v[A_COUNT]; /* NULL: absent or no value (Python's None) */
    size_t n[A_COUNT];
    char present[A_COUNT];
} attrs_t;

/* The name an attribute is listed under in ``node.attributes`` (its qualified name). */
static int attr_which(const lxattr *a) {
    uintptr_t id = a->qualified_name ? a->qualified_name : a->node.local_name;
    if (id < STATIC_ID_LIMIT) {
        for (int w = 0; w < A_COUNT; w++)
            if (attr_static[w] >= 0 && (uintptr_t)attr_static[w] == id) return w;
        return -1;
    }
    const lxhash_entry *e = (const lxhash_entry *)id;
    const unsigned char *s = e->length <= HASH_SHORT ? e->u.short_str : e->u.long_str;
    for (int w = 0; w < A_COUNT; w++)
        if (attr_static[w] < 0 && attr_len[w] == e->length && memcmp(s, ATTR_NAMES[w], e->length) == 0)
            return w;
    return -1;
}

/* The attributes the rules read; a repeated name keeps its last value, as a dict does. */
static void read_attrs(const lxnode *n, attrs_t *at) {
    memset(at, 0, sizeof(*at));
    if (n->type != NODE_ELEMENT) return;
    for (const lxattr *a = ((const lxelement *)n)->first_attr; a; a = a->next) {
        int w = attr_which(a);
        if (w < 0) continue;
        at->present[w] = 1;
        if (a->value && a->value->data) {
            at->v[w] = a->value->data;
            at->n[w] = a->value->length;
        } else {
            at->v[w] = NULL;
            at->n[w] = 0;
        }
    }
}

/* ---- furniture rules (furniture.py) ------------------------------------------------------ */

static const char *FURNITURE_WORDS[] = {
    "nav", "navbar", "navigation", "menu", "menubar", "submenu", "footer", "cookie", "cookies", "consent", "gdpr",
    "banner", "sidebar", "breadcrumb", "breadcrumbs", "share", "sharing", "social", "skip", "toolbar", "masthead",
    "pagination", "pager", "advert", "advertisement", "ads", "ad", "sponsor", "sponsored", "popup", "modal",
    "newsletter", "subscribe", "related", "widget", "widgets", "topbar", "comment", "comments", "disqus",
    "outbrain", "taboola", "promo", "recommended", "trending", "tags", "byline", "signup", "login", "rss",
    "sitemap", "copyright", NULL};
static const char *AFFIXES[] = {"nav", "menu", "footer", "cookie", "sidebar", "breadcrumb", "banner", "comment",
                                "share", "social", "related", "promo", "newsletter", "advert", NULL};
static const char *CONTENT_MARKS[] = {"article", "body", "column", "content", "main", "story", "entry",
                                      "posttext", "post-text", NULL};
static const char *ROLES[] = {"navigation", "banner", "contentinfo", "complementary", "search", "menu",
                              "menubar", "dialog", "alertdialog", "toolbar", NULL};

static size_t furniture_len[64], affix_len[32];

static int word_is_furniture(const char *w, size_t n) {
    for (int k = 0; FURNITURE_WORDS[k]; k++)
        if (furniture_len[k] == n && FURNITURE_WORDS[k][0] == w[0] && memcmp(FURNITURE_WORDS[k], w, n) == 0) return 1;
    if (n > 4)
        for (int k = 0; AFFIXES[k]; k++) {
            size_t m = affix_len[k];
            if (m <= n && (memcmp(w, AFFIXES[k], m) == 0 || memcmp(w + n - m, AFFIXES[k], m) == 0)) return 1;
        }
    return 0;
}

/* word_flags() of an ASCII value */
static int ascii_word_flags(const unsigned char *s, size_t n) {
    char low[512], *l = low;
    while (n > 0 && s[n - 1] >= '0' && s[n - 1] <= '9') n--; /* the stem decides */
    if (n + 1 > sizeof(low)) {
        l = PyMem_Malloc(n + 1);
        if (!l) return -1;
    }
    ascii_lower(s, n, l);
    int flags = 0;
    size_t i = 0;
    while (i < n && !(flags & FURNITURE_WORD)) {
        while (i < n && !((l[i] >= 'a' && l[i] <= 'z') || (l[i] >= '0' && l[i] <= '9'))) i++;
        size_t start = i;
        while (i < n && ((l[i] >= 'a' && l[i] <= 'z') || (l[i] >= '0' && l[i] <= '9'))) i++;
        if (i > start && word_is_furniture(l + start, i - start)) flags |= FURNITURE_WORD;
    }
    for (const char **c = CONTENT_MARKS; *c; c++)
        if (contains(l, n, *c)) {
            flags |= CONTENT_WORD;
            break;
        }
    if (l != low) PyMem_Free(l);
    return flags;
}

static long call_py_int(PyObject *fn, const unsigned char *s, size_t n) {
    PyObject *value = PyUnicode_DecodeUTF8((const char *)s, (Py_ssize_t)n, "replace");
    if (!value) return -1000;
    PyObject *r = PyObject_CallOneArg(fn, value);
    Py_DECREF(value);
    if (!r) return -1000;
    long v = PyLong_AsLong(r);
    Py_DECREF(r);
    if (v == -1 && PyErr_Occurred()) return -1000;
    return v;
}

/* Pages of one site repeat their class and id values hundreds of times: each distinct value is
 * decided once and kept in a table indexed by its hash (a newer value takes an older one's slot). */
#define CACHE_SLOTS 8192
#define CACHE_MAX_LEN 64
typedef struct {
    uint64_t hash;
    int flags;
    uint8_t len;
    char key[CACHE_MAX_LEN];
} cache_slot;
static cache_slot *flag_cache;

static int cached_word_flags(const unsigned char *s, size_t n) {
    if (n > CACHE_MAX_LEN || !flag_cache) return ascii_word_flags(s, n);
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ULL;
    h |= 1; /* 0 marks an empty slot */
    cache_slot *slot = &flag_cache[(h >> 17) & (CACHE_SLOTS - 1)];
    if (slot->hash == h && slot->len == n && memcmp(slot->key, s, n) == 0) return slot->flags;
    int flags = ascii_word_flags(s, n);
    if (flags >= 0) {
        slot->hash = h;
        slot->len = (uint8_t)n;
        slot->flags = flags;
        memcpy(slot->key, s, n);
    }
    return flags;
}

static int word_flags(const unsigned char *s, size_t n) {
    if (is_ascii(s, n)) return cached_word_flags(s, n);
    long v = call_py_int(py_word_flags, s, n);
    return v == -1000 ? -1 : (int)v;
}

/* marked_furniture(): an ARIA role of furniture or a hidden marker */
static int marked_furniture(const attrs_t *at) {
    if (at->v[A_ROLE] && at->n[A_ROLE]) {
        size_t a, b;
        ustrip(at->v[A_ROLE], at->n[A_ROLE], &a, &b);
        /* Unicode lower-casing maps no other character onto these words' letters */
        if (is_ascii(at->v[A_ROLE] + a, b - a))
            for (const char **r = ROLES; *r; r++)
                if (ascii_ieq(at->v[A_ROLE] + a, b - a, *r)) return 1;
    }
    if (at->present[A_HIDDEN]) return 1;
    if (at->v[A_ARIA_HIDDEN]) {
        size_t a, b;
        ustrip(at->v[A_ARIA_HIDDEN], at->n[A_ARIA_HIDDEN], &a, &b);
        if (ascii_ieq(at->v[A_ARIA_HIDDEN] + a, b - a, "true")) return 1;
    }
    if (at->v[A_STYLE] && at->n[A_STYLE]) {
        const unsigned char *s = at->v[A_STYLE];
        size_t n = at->n[A_STYLE], k = 0;
        char low[1024], *l = n + 1 > sizeof(low) ? PyMem_Malloc(n + 1) : low;
        if (!l) return -1;
        for (size_t i = 0; i < n; i++)
            if (s[i] != ' ') l[k++] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] + 32) : (char)s[i];
        int hit = contains(l, k, "display:none") || contains(l, k, "visibility:hidden");
        if (l != low) PyMem_Free(l);
        return hit;
    }
    return 0;
}

/* attrs_furniture(); -1 on a Python error */
static int attrs_furniture(const attrs_t *at) {
    int flags = 0;
    for (int w = A_CLASS; w <= A_ID; w++)
        if (at->v[w] && at->n[w]) {
            int f = word_flags(at->v[w], at->n[w]);
            if (f < 0) return -1;
            flags |= f;
        }
    if (flags == FURNITURE_WORD) return 1;
    return marked_furniture(at);
}

/* ---- Readability's class/id weight (extract.py NEGATIVE / POSITIVE) ---------------------- */

static const char *NEGATIVE_WORDS[] = {"-ad-", "hidden", "banner", "combx", "comment", "com-", "contact", "foot",
                                       "gdpr", "masthead", "media", "meta", "outbrain", "promo", "related",
                                       "scroll", "share", "shoutbox", "sidebar", "skyscraper", "sponsor",
                                       "shopping", "tags", "tool", "widget", NULL};
static const char *POSITIVE_WORDS[] = {"article", "body", "content", "entry", "main", "page", "pagination",
                                       "post", "text", "blog", "story", NULL};

/* re's ``$``: the end, or just before a final newline */
static int at_end(const char *l, size_t n, size_t i) { return i == n || (i == n - 1 && l[i] == '\n'); }

static int ascii_value_weight(const unsigned char *s, size_t n) {
    char low[512], *l = n + 1 > sizeof(low) ? PyMem_Malloc(n + 1) : low;
    if (!l) return -1000;
    ascii_lower(s, n, l);
    int neg = 0, pos = 0;
    for (const char **w = NEGATIVE_WORDS; *w && !neg; w++) neg = contains(l, n, *w);
    if (!neg && n >= 3 && memcmp(l, "hid", 3) == 0 && (at_end(l, n, 3) || l[3] == ' ')) neg = 1; /* ^hid$ ^hid */
    for (size_t i = 0; !neg && i + 4 <= n; i++)                                            /*  hid$  hid  */
        if (memcmp(l + i, " hid", 4) == 0 && (at_end(l, n, i + 4) || l[i + 4] == ' ')) neg = 1;
    for (const char **w = POSITIVE_WORDS; *w && !pos; w++) pos = contains(l, n, *w);
    if (l != low) PyMem_Free(l);
    return (neg ? -25 : 0) + (pos ? 25 : 0);
}

/* _class_weight(); -1000 on a Python error */
static int class_weight(const lxnode *node) {
    attrs_t at;
    read_attrs(node, &at);
    int weight = 0;
    for (int w = A_CLASS; w <= A_ID; w++)
        if (at.v[w] && at.n[w]) {
            long v = is_ascii(at.v[w], at.n[w]) ? ascii_value_weight(at.v[w], at.n[w])
                                                 : call_py_int(py_value_weight, at.v[w], at.n[w]);
            if (v == -1000) return -1000;
            weight += (int)v;
        }
    return weight;
}

/* ---- the page: its nodes in document order --------------------------------------------- */

typedef struct {
    int n, cap;
    lxnode **node;
    int *parent; /* index, -1 above the walk's root */
    int *end;    /* one past the node's subtree */
    uint8_t *removed;
    double *score;
    uint8_t *scored;
    int *para; /* paragraph length, 0 for none */
    int *furniture, n_furniture;
    /* Per node, for the tree as it stands (stamp == epoch; other nodes are measured by walking):
     * its text length, the text length of the <a> in it (itself included), its paragraph text. */
    size_t *chars, *link_chars;
    long *held;
    int *stamp, epoch;
    int *attached; /* scratch: the nodes not removed, in document order */
} page_t;

/* The page's arrays (not the page itself). */
static void page_release(page_t *p) {
    PyMem_Free(p->node);
    PyMem_Free(p->parent);
    PyMem_Free(p->end);
    PyMem_Free(p->removed);
    PyMem_Free(p->score);
    PyMem_Free(p->scored);
    PyMem_Free(p->para);
    PyMem_Free(p->furniture);
    PyMem_Free(p->chars);
    PyMem_Free(p->link_chars);
    PyMem_Free(p->held);
    PyMem_Free(p->stamp);
    PyMem_Free(p->attached);
}

static void page_free(page_t *p) {
    page_release(p);
    PyMem_Free(p);
}

static void page_capsule_free(PyObject *capsule) {
    page_t *p = PyCapsule_GetPointer(capsule, "pagecat.lexwalk.page");
    if (p) page_free(p);
}

static int page_push(page_t *p, lxnode *node, int parent) {
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 1024;
        lxnode **nn = PyMem_Realloc(p->node, cap * sizeof(*nn));
        if (!nn) return -1;
        p->node = nn;
        int *pp = PyMem_Realloc(p->parent, cap * sizeof(int));
        if (!pp) return -1;
        p->parent = pp;
        int *ee = PyMem_Realloc(p->end, cap * sizeof(int));
        if (!ee) return -1;
        p->end = ee;
        p->cap = cap;
    }
    p->node[p->n] = node;
    p->parent[p->n] = parent;
    p->end[p->n] = p->n + 1;
    return p->n++;
}

/* All nodes under root (root first), iteratively: the depth of a page costs no stack. */
static int page_build(page_t *p, lxnode *root) {
    lxnode *node = root;
    int cur = -1;
    for (;;) {
        int idx = page_push(p, node, cur);
        if (idx < 0) return -1;
        if (node->first_child) {
            cur = idx;
            node = node->first_child;
            continue;
        }
        for (;;) {
            if (node == root) goto done;
            if (node->next) {
                node = node->next;
                break;
            }
            node = node->parent;
            p->end[cur] = p->n;
            cur = p->parent[cur];
        }
    }
done:
    p->removed = PyMem_Calloc(p->n, 1);
    p->score = PyMem_Calloc(p->n, sizeof(double));
    p->scored = PyMem_Calloc(p->n, 1);
    p->para = PyMem_Calloc(p->n, sizeof(int));
    p->furniture = PyMem_Malloc((size_t)p->n * sizeof(int));
    if (!p->removed || !p->score || !p->scored || !p->para || !p->furniture) return -1;
    return 0;
}

/* chars, link_chars and held of every node in the tree as it stands, children before parents. */
static int page_measure(page_t *p) {
    if (!p->chars) {
        p->chars = PyMem_Malloc((size_t)p->n * sizeof(size_t));
        p->link_chars = PyMem_Malloc((size_t)p->n * sizeof(size_t));
        p->held = PyMem_Malloc((size_t)p->n * sizeof(long));
        p->stamp = PyMem_Calloc((size_t)p->n, sizeof(int));
        p->attached = PyMem_Malloc((size_t)p->n * sizeof(int));
        if (!p->chars || !p->link_chars || !p->held || !p->stamp || !p->attached) return -1;
    }
    int epoch = ++p->epoch, n = 0;
    for (int j = 0; j < p->n;) {
        if (j && p->removed[j]) {
            j = p->end[j];
            continue;
        }
        const lxnode *node = p->node[j];
        size_t own = 0;
        if (node->local_name == tag_id[T_TEXT] && ((const lxchardata *)node)->data.data)
            own = n_chars(((const lxchardata *)node)->data.data, ((const lxchardata *)node)->data.length);
        p->chars[j] = own;
        p->link_chars[j] = 0;
        p->held[j] = p->para[j];
        p->stamp[j] = epoch;
        p->attached[n++] = j++;
    }
    for (int k = n - 1; k > 0; k--) {
        int j = p->attached[k], up = p->parent[j];
        if (p->node[j]->type == NODE_ELEMENT && p->node[j]->local_name == tag_id[T_A]) p->link_chars[j] += p->chars[j];
        p->chars[up] += p->chars[j];
        p->link_chars[up] += p->link_chars[j];
        p->held[up] += p->held[j];
    }
    if (p->node[0]->type == NODE_ELEMENT && p->node[0]->local_name == tag_id[T_A]) p->link_chars[0] += p->chars[0];
    return 0;
}

static inline int is_text(const lxnode *n) { return n->local_name == tag_id[T_TEXT]; }

/* Text of node i's subtree as the tree reads with the removed nodes unlinked (i itself counts
 * even when removed: a node in hand keeps its own subtree). ``sep`` between fragments. */
static int subtree_text(const page_t *p, int i, buf_t *b, const char *sep) {
    int count = 0;
    for (int j = i + 1; j < p->end[i];) {
        if (p->removed[j]) {
            j = p->end[j];
            continue;
        }
        const lxnode *n = p->node[j];
        if (is_text(n)) {
            const lxchardata *t = (const lxchardata *)n;
            if (t->data.data) {
                if (count++ && sep && buf_add(b, sep, strlen(sep)) < 0) return -1;
                if (buf_add(b, t->data.data, t->data.length) < 0) return -1;
            }
        }
        j++;
    }
    return 0;
}

/* len(node.text()) */
static size_t text_len(const page_t *p, int i) {
    if (p->stamp && p->stamp[i] == p->epoch) return p->chars[i];
    size_t c = 0;
    for (int j = i + 1; j < p->end[i];) {
        if (p->removed[j]) {
            j = p->end[j];
            continue;
        }
        const lxnode *n = p->node[j];
        if (is_text(n)) {
            const lxchardata *t = (const lxchardata *)n;
            if (t->data.data) c += n_chars(t->data.data, t->data.length);
        }
        j++;
    }
    return c;
}

/* link_density(): share of the text inside <a> (the node itself included, as css("a") does) */
static double link_density(const page_t *p, int i) {
    size_t total = text_len(p, i);
    if (total == 0) return 1.0;
    size_t links = 0;
    if (p->stamp && p->stamp[i] == p->epoch) {
        double d = (double)p->link_chars[i] / (double)total;
        return d < 1.0 ? d : 1.0;
    }
    for (int j = i; j < p->end[i];) {
        if (j != i && p->removed[j]) {
            j = p->end[j];
            continue;
        }
        if (p->node[j]->type == NODE_ELEMENT && p->node[j]->local_name == tag_id[T_A]) links += text_len(p, j);
        j++;
    }
    double d = (double)links / (double)total;
    return d < 1.0 ? d : 1.0;
}

static int class_has(const attrs_t *at, const char *needle) {
    if (!at->v[A_CLASS]) return 0;
    size_t n = at->n[A_CLASS];
    char low[512], *l = n + 1 > sizeof(low) ? PyMem_Malloc(n + 1) : low;
    if (!l) return 0;
    ascii_lower(at->v[A_CLASS], n, l);
    int hit = contains(l, n, needle);
    if (l != low) PyMem_Free(l);
    return hit;
}

static int class_word(const attrs_t *at, const char *word) {
    const unsigned char *s = at->v[A_CLASS];
    if (!s) return 0;
    size_t n = at->n[A_CLASS], i = 0;
    while (i < n) {
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\f' || s[i] == '\r')) i++;
        size_t start = i;
        while (i < n && !(s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\f' || s[i] == '\r')) i++;
        if (i > start && ascii_ieq(s + start, i - start, word)) return 1;
    }
    return 0;
}

/* node.css_first(ARTICLE_BODY_SELECTOR) is not None, the node itself included */
static int has_article_body(const page_t *p, int i) {
    for (int j = i; j < p->end[i];) {
        if (j != i && p->removed[j]) {
            j = p->end[j];
            continue;
        }
        const lxnode *n = p->node[j++];
        if (n->type != NODE_ELEMENT) continue;
        attrs_t at;
        read_attrs(n, &at);
        if (at.v[A_ITEMPROP] && ascii_ieq(at.v[A_ITEMPROP], at.n[A_ITEMPROP], "articlebody")) return 1;
        if (n->local_name == tag_id[T_ARTICLE_ONLY] && !class_has(&at, "comment")) return 1;
        if (class_has(&at, "post-body") || class_has(&at, "entry-content") || class_has(&at, "article-body") ||
            class_word(&at, "hentry") || class_word(&at, "h-entry"))
            return 1;
    }
    return 0;
}

static int in_article(const lxnode *n) {
    for (n = n->parent; n; n = n->parent)
        if (bits_of(n) & B_ARTICLE) return 1;
    return 0;
}

static const char *NOT_OUTLINK[] = {"#", "javascript:", "mailto:", "tel:", NULL};

/* An <a href> that leads to a page: href.lstrip().lower() not empty and not #, javascript: ... */
static int is_outlink(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t k = i;
        if (!py_space(next_cp(s, n, &k))) break;
        i = k;
    }
    if (i == n) return 0;
    for (const char **pre = NOT_OUTLINK; *pre; pre++) {
        size_t m = strlen(*pre);
        if (n - i >= m) {
            size_t q = 0;
            for (; q < m; q++) {
                unsigned char c = s[i + q];
                if (c >= 'A' && c <= 'Z') c += 32;
                if (c != (unsigned char)(*pre)[q]) break;
            }
            if (q == m) return 0;
        }
    }
    return 1;
}

/* The buffer's text collapsed, appended unless empty; the buffer emptied. */
static int append_collapsed(PyObject *list, buf_t *b) {
    PyObject *s = collapsed((const unsigned char *)b->p, b->n, 0);
    b->n = 0;
    if (!s) return -1;
    int r = PyUnicode_GET_LENGTH(s) ? PyList_Append(list, s) : 0;
    Py_DECREF(s);
    return r;
}

static int append_value(PyObject *list, const unsigned char *s, size_t n, int collapse) {
    PyObject *v = collapse ? collapsed(s, s ? n : 0, 0)
                           : PyUnicode_DecodeUTF8(s ? (const char *)s : "", (Py_ssize_t)(s ? n : 0), "replace");
    if (!v) return -1;
    int r = PyList_Append(list, v);
    Py_DECREF(v);
    return r;
}

/* Whether a rel value holds the word "canonical" (str.lower().split()) */
static int rel_canonical(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t k = i;
        while (k < n) {
            size_t q = k;
            if (!py_space(next_cp(s, n, &q))) break;
            k = q;
        }
        size_t start = k;
        while (k < n) {
            size_t q = k;
            if (py_space(next_cp(s, n, &q))) break;
            k = q;
        }
        if (k > start && is_ascii(s + start, k - start) && ascii_ieq(s + start, k - start, "canonical")) return 1;
        i = k;
    }
    return 0;
}

/* ---- walk(root, head, html): step 1 of HtmlExtractor.extract ----------------------------- */

static PyObject *walk(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (!configured) return PyErr_Format(PyExc_RuntimeError, "configure() first");
    if (nargs != 3) return PyErr_Format(PyExc_TypeError, "walk(root, head, html)");
    lxnode *root = PyLong_AsVoidPtr(args[0]);
    lxnode *head = args[1] == Py_None ? NULL : PyLong_AsVoidPtr(args[1]);
    lxnode *html = args[2] == Py_None ? NULL : PyLong_AsVoidPtr(args[2]);
    if (PyErr_Occurred()) return NULL;
    if (!root) return PyErr_Format(PyExc_ValueError, "no root");
    page_t *p = PyMem_Calloc(1, sizeof(page_t));
    buf_t b = {0};
    PyObject *headings = NULL, *titles = NULL, *descriptions = NULL, *canonicals = NULL, *full = NULL;
    PyObject *lang = NULL, *capsule = NULL;
    int *non_text = NULL, *captions = NULL, *heads = NULL;
    int n_non_text = 0, n_captions = 0, n_heads = 0;
    long outlinks = 0;
    if (!p || page_build(p, root) < 0) {
        PyErr_NoMemory();
        goto fail;
    }
    non_text = PyMem_Malloc((size_t)p->n * sizeof(int));
    captions = PyMem_Malloc((size_t)p->n * sizeof(int));
    heads = PyMem_Malloc((size_t)p->n * sizeof(int));
    if (!non_text || !captions || !heads) {
        PyErr_NoMemory();
        goto fail;
    }
    for (int i = 0; i < p->n; i++) {
        const lxnode *n = p->node[i];
        if (n->type == NODE_TEXT) continue;
        uint16_t bits = bits_of(n);
        if (bits & B_NON_TEXT) {
            non_text[n_non_text++] = i;
        } else if (bits & B_CONTAINER) {
            attrs_t at;
            read_attrs(n, &at);
            if (n->local_name == tag_id[T_A] && at.v[A_HREF] && at.n[A_HREF])
                outlinks += is_outlink(at.v[A_HREF], at.n[A_HREF]);
            int furniture = (bits & B_ALWAYS_FURNITURE) != 0;
            if (!furniture) {
                furniture = attrs_furniture(&at);
                if (furniture < 0) goto fail;
            }
            if (!furniture && n->local_name == tag_id[T_HEADER]) furniture = !in_article(n);
            if (furniture) p->furniture[p->n_furniture++] = i;
        } else if (bits & B_HEADING) {
            heads[n_heads++] = i;
        } else if (n->local_name == tag_id[T_FIGCAPTION]) {
            captions[n_captions++] = i;
        }
    }
    for (int k = 0; k < n_non_text; k++) p->removed[non_text[k]] = 1;
    if (!(headings = PyList_New(0))) goto fail;
    for (int k = 0; k < n_heads; k++)
        if (subtree_text(p, heads[k], &b, NULL) < 0 || append_collapsed(headings, &b) < 0) goto fail;
    if (subtree_text(p, 0, &b, " ") < 0 || !(full = collapsed((const unsigned char *)b.p, b.n, 0))) goto fail;
    b.n = 0;
    for (int k = 0; k < n_captions; k++) p->removed[captions[k]] = 1;
    /* <head>'s children: titles, descriptions, canonical links, in order */
    if (!(titles = PyList_New(0)) || !(descriptions = PyList_New(0)) || !(canonicals = PyList_New(0))) goto fail;
    for (lxnode *n = head ? head->first_child : NULL; n; n = n->next) {
        if (n->type == NODE_TEXT) continue;
        if (n->local_name == tag_id[T_TITLE]) {
            page_t one = {0};
            if (page_build(&one, n) < 0) {
                page_release(&one);
                PyErr_NoMemory();
                goto fail;
            }
            int r = subtree_text(&one, 0, &b, NULL);
            page_release(&one);
            if (r < 0 || append_collapsed(titles, &b) < 0) goto fail;
        } else if (n->local_name == tag_id[T_META] || n->local_name == tag_id[T_LINK]) {
            attrs_t at;
            read_attrs(n, &at);
            if (n->local_name == tag_id[T_META]) {
                if (at.v[A_NAME]) {
                    size_t a, z;
                    ustrip(at.v[A_NAME], at.n[A_NAME], &a, &z);
                    if (is_ascii(at.v[A_NAME] + a, z - a) && ascii_ieq(at.v[A_NAME] + a, z - a, "description") &&
                        append_value(descriptions, at.v[A_CONTENT], at.n[A_CONTENT], 1) < 0)
                        goto fail;
                }
            } else if (at.v[A_REL] && rel_canonical(at.v[A_REL], at.n[A_REL]) &&
                       append_value(canonicals, at.v[A_HREF], at.n[A_HREF], 0) < 0) {
                goto fail;
            }
        }
    }
    if (html && html->local_name == tag_id[T_HTML]) {
        attrs_t at;
        read_attrs(html, &at);
        if (at.v[A_LANG] && !(lang = PyUnicode_DecodeUTF8((const char *)at.v[A_LANG], (Py_ssize_t)at.n[A_LANG],
                                                          "replace")))
            goto fail;
    }
    if (!lang) lang = Py_NewRef(Py_None);
    PyMem_Free(non_text);
    PyMem_Free(captions);
    PyMem_Free(heads);
    PyMem_Free(b.p);
    capsule = PyCapsule_New(p, "pagecat.lexwalk.page", page_capsule_free);
    if (!capsule) {
        page_free(p);
        p = NULL;
        goto fail2;
    }
    return Py_BuildValue("(NlNNNNNN)", capsule, outlinks, headings, full, titles, descriptions, canonicals, lang);
fail:
    if (p) page_free(p);
fail2:
    PyMem_Free(non_text);
    PyMem_Free(captions);
    PyMem_Free(heads);
    PyMem_Free(b.p);
    Py_XDECREF(headings);
    Py_XDECREF(titles);
    Py_XDECREF(descriptions);
    Py_XDECREF(canonicals);
    Py_XDECREF(full);
    Py_XDECREF(lang);
    return NULL;
}

/* ---- block text (extract.block_text before lines_of) ------------------------------------- */

/* Text under node i with a NUL before each block element, after each one whose next sibling is
 * not a block, and a space before each table cell: what block_text marks in the tree. */
static int block_text(const page_t *p, int i, buf_t *b) {
    int stack_cap = 64, depth = 0;
    int *ends = PyMem_Malloc(stack_cap * sizeof(int));
    if (!ends) return -1;
    for (int j = i + 1;;) {
        while (depth && ends[depth - 1] <= j) { /* a block closed: its trailing mark */
            depth--;
            if (buf_add(b, "", 1) < 0) goto fail;
        }
        if (j >= p->end[i]) break;
        if (p->removed[j]) {
            j = p->end[j];
            continue;
        }
        const lxnode *n = p->node[j];
        if (is_text(n)) {
            const lxchardata *t = (const lxchardata *)n;
            if (t->data.data && buf_add(b, t->data.data, t->data.length) < 0) goto fail;
        } else {
            uint16_t bits = bits_of(n);
            if (bits & B_BLOCK) {
                if (buf_add(b, "", 1) < 0) goto fail;
                int parent_end = p->end[p->parent[j]], s = p->end[j];
                while (s < parent_end && p->removed[s]) s = p->end[s];
                if (s < parent_end && !(bits_of(p->node[s]) & B_BLOCK)) {
                    if (depth == stack_cap) {
                        stack_cap *= 2;
                        int *e = PyMem_Realloc(ends, stack_cap * sizeof(int));
                        if (!e) goto fail;
                        ends = e;
                    }
                    ends[depth++] = p->end[j];
                }
            } else if (bits & B_CELL) {
                if (buf_add(b, " ", 1) < 0) goto fail;
            }
        }
        j++;
    }
    PyMem_Free(ends);
    return 0;
fail:
    PyMem_Free(ends);
    return -1;
}

static PyObject *block_str(const page_t *p, int i) {
    buf_t b = {0};
    if (block_text(p, i, &b) < 0) {
        PyMem_Free(b.p);
        return PyErr_NoMemory();
    }
    PyObject *s = collapsed((const unsigned char *)b.p, b.n, 1);
    PyMem_Free(b.p);
    return s;
}

/* ---- main text: steps 2 and 3 ------------------------------------------------------------ */

static page_t *page_of(PyObject *capsule) { return PyCapsule_GetPointer(capsule, "pagecat.lexwalk.page"); }

/* Parent index of i, or -2 above the page (None, <html>, the document) ... */
#define ABOVE -2
/* ... or -3 for a parent outside the walk that is not above the page: not handled here. */
#define OUTSIDE -3
static int parent_of(const page_t *p, int i) {
    if (p->parent[i] >= 0) return p->parent[i];
    const lxnode *up = p->node[i]->parent;
    if (!up || (bits_of(up) & B_ABOVE_PAGE)) return ABOVE;
    return OUTSIDE;
}

static const page_t *sort_page;
static int *sort_rank;

static int by_score(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    double sx = sort_page->score[x], sy = sort_page->score[y];
    if (sx > sy) return -1;
    if (sx < sy) return 1;
    return sort_rank[x] - sort_rank[y]; /* a stable sort keeps first-scored first */
}

static long held(const page_t *p, int i) {
    if (p->stamp && p->stamp[i] == p->epoch) return p->held[i];
    long s = 0;
    for (int j = i; j < p->end[i];) {
        if (j != i && p->removed[j]) {
            j = p->end[j];
            continue;
        }
        s += p->para[j++];
    }
    return s;
}

/* main_text(page, furniture_limit, find_container, min_paragraph_chars, min_article_chars,
 *           sibling_share, climb_share, max_climb) -> list of lines_of() block texts | None | False
 * None: no main container; False: a page this code does not handle (the caller uses Python). */
static PyObject *main_text(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 8) return PyErr_Format(PyExc_TypeError, "main_text takes 8 arguments");
    page_t *p = page_of(args[0]);
    if (!p) return NULL;
    double limit = PyFloat_AsDouble(args[1]);
    int find = PyObject_IsTrue(args[2]);
    long min_chars = PyLong_AsLong(args[3]), min_article = PyLong_AsLong(args[4]);
    double sibling_share = PyFloat_AsDouble(args[5]), climb_share = PyFloat_AsDouble(args[6]);
    long max_climb = PyLong_AsLong(args[7]);
    if (PyErr_Occurred()) return NULL;

    /* furniture: every verdict on the page as it is, then all removed */
    if (page_measure(p) < 0) return PyErr_NoMemory();
    int *doomed = PyMem_Malloc((size_t)(p->n_furniture + 1) * sizeof(int)), n_doomed = 0;
    if (!doomed) return PyErr_NoMemory();
    for (int k = 0; k < p->n_furniture; k++) {
        int i = p->furniture[k];
        const lxnode *n = p->node[i];
        uint16_t bits = bits_of(n);
        if (bits & B_PAGE) continue;
        double size = (double)text_len(p, i);
        if (size > limit) {
            if (link_density(p, i) > 0.5) doomed[n_doomed++] = i;
        } else {
            int keep = size > limit * 0.5 && !(bits & B_ALWAYS_FURNITURE);
            if (keep) {
                attrs_t at;
                read_attrs(n, &at);
                int marked = marked_furniture(&at);
                if (marked < 0) {
                    PyMem_Free(doomed);
                    return NULL;
                }
                keep = !marked && link_density(p, i) <= 0.5 && has_article_body(p, i);
            }
            if (!keep) doomed[n_doomed++] = i;
        }
    }
    for (int k = 0; k < n_doomed; k++) p->removed[doomed[k]] = 1;
    p->epoch++; /* the measures are of the tree before */
    PyMem_Free(doomed);
    if (!find) Py_RETURN_NONE;

    /* paragraphs score their parent and grandparent */
    int *order = PyMem_Malloc((size_t)p->n * sizeof(int)), n_order = 0;
    int *rank = PyMem_Malloc((size_t)p->n * sizeof(int));
    if (!order || !rank) {
        PyMem_Free(order);
        PyMem_Free(rank);
        return PyErr_NoMemory();
    }
    PyObject *result = NULL;
    buf_t b = {0};
    long total = 0;
    for (int i = 0; i < p->n;) {
        if (i != 0 && p->removed[i]) {
            i = p->end[i];
            continue;
        }
        const lxnode *n = p->node[i];
        if (n->type != NODE_ELEMENT || !(bits_of(n) & B_PARAGRAPH)) {
            i++;
            continue;
        }
        b.n = 0;
        if (n->local_name == tag_id[T_DIV]) { /* a <div> votes with its own text only */
            for (const lxnode *c = n->first_child; c; c = c->next)
                if (c->type == NODE_TEXT && ((const lxchardata *)c)->data.data &&
                    buf_add(&b, ((const lxchardata *)c)->data.data, ((const lxchardata *)c)->data.length) < 0)
                    goto nomem;
        } else if (subtree_text(p, i, &b, NULL) < 0) {
            goto nomem;
        }
        size_t a, z;
        ustrip((const unsigned char *)b.p, b.n, &a, &z);
        long len = (long)n_chars((const unsigned char *)b.p + a, z - a);
        if (len < min_chars) {
            i++;
            continue;
        }
        p->para[i] = (int)len;
        total += len;
        long commas = 0;
        for (size_t k = 0; k < b.n; k++) {
            if (b.p[k] == ',') commas++;
            else if (k + 2 < b.n && (unsigned char)b.p[k] == 0xef && (unsigned char)b.p[k + 1] == 0xbc &&
                     (unsigned char)b.p[k + 2] == 0x8c)
                commas++;
        }
        double score = (double)(1 + commas + (len / 100 < 3 ? len / 100 : 3));
        int up = parent_of(p, i);
        for (int level = 0; level < 2; level++) {
            double share = level == 0 ? 1.0 : 0.5;
            if (up == ABOVE) break;
            if (up == OUTSIDE) goto unhandled;
            if (!p->scored[up]) {
                int w = class_weight(p->node[up]);
                if (w == -1000) goto error;
                p->scored[up] = 1;
                p->score[up] = (double)(tag_weight[tag_of(p->node[up])] + w);
                rank[up] = n_order;
                order[n_order++] = up;
            }
            p->score[up] = p->score[up] + score * share;
            up = parent_of(p, up);
        }
        i++;
    }
    if (n_order == 0) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    if (page_measure(p) < 0) goto nomem; /* furniture gone, paragraphs known */
    sort_page = p;
    sort_rank = rank;
    qsort(order, n_order, sizeof(int), by_score);
    /* link density only for the leading candidates; it only lowers a positive score */
    int top = -1;
    double top_score = -INFINITY;
    for (int k = 0; k < n_order && k < 8; k++) {
        double s = p->score[order[k]];
        if (0 <= s && s <= top_score) break;
        s *= 1 - link_density(p, order[k]);
        if (s > top_score) {
            top = order[k];
            top_score = s;
        }
    }
    long inside = held(p, top);
    int node = top;
    for (long k = 0; k < max_climb; k++) {
        if ((double)inside >= climb_share * (double)total) break;
        int up = parent_of(p, node);
        if (up == ABOVE) break;
        if (up == OUTSIDE) goto unhandled;
        node = up;
        if ((bits_of(p->node[node]) & B_ABOVE_PAGE) || p->node[node]->local_name == tag_id[T_BODY]) break;
        long node_inside = held(p, node);
        if (node_inside <= inside) continue;
        if (link_density(p, node) > 0.35) break;
        top = node;
        inside = node_inside;
    }
    if ((long)text_len(p, top) < min_article) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    if (!(result = PyList_New(0))) goto error;
    int parent = p->parent[top];
    if (parent < 0) { /* the page's root: <body>'s siblings under <html> hold no text */
        if (top != 0 || (p->node[0]->parent && p->node[0]->local_name != tag_id[T_BODY])) goto unhandled;
        PyObject *s = block_str(p, top);
        if (!s || PyList_Append(result, s) < 0) {
            Py_XDECREF(s);
            goto error;
        }
        Py_DECREF(s);
        goto done;
    }
    double threshold = top_score * sibling_share > 10.0 ? top_score * sibling_share : 10.0;
    for (int j = parent + 1; j < p->end[parent]; j = p->end[j]) {
        if (p->removed[j] || p->node[j]->type == NODE_TEXT) continue;
        int chosen = j == top;
        if (!chosen && p->scored[j] && p->score[j] >= threshold && link_density(p, j) < 0.5) chosen = 1;
        if (!chosen && p->node[j]->local_name == tag_id[T_P] && text_len(p, j) > 80 && link_density(p, j) < 0.25)
            chosen = 1;
        if (chosen) {
            PyObject *s = block_str(p, j);
            if (!s || PyList_Append(result, s) < 0) {
                Py_XDECREF(s);
                goto error;
            }
            Py_DECREF(s);
        }
    }
    goto done;
unhandled:
    Py_XDECREF(result);
    result = Py_NewRef(Py_False);
    goto done;
nomem:
    PyErr_NoMemory();
error:
    Py_XDECREF(result);
    result = NULL;
done:
    PyMem_Free(order);
    PyMem_Free(rank);
    PyMem_Free(b.p);
    return result;
}

/* page_text(page) -> lines_of() block text of the whole page (its root) */
static PyObject *page_text(PyObject *self, PyObject *capsule) {
    page_t *p = page_of(capsule);
    return p ? block_str(p, 0) : NULL;
}

/* ---- checks and configuration ------------------------------------------------------------ */

/* nodes(mem_id) -> [(kind, tag id, parent mem_id, text | None, {name: value} of the rule attributes)]
 * for every node under mem_id, in document order: what the layout test compares with selectolax. */
static PyObject *nodes(PyObject *self, PyObject *arg) {
    lxnode *root = PyLong_AsVoidPtr(arg);
    if (!root) return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "no node");
    page_t *p = PyMem_Calloc(1, sizeof(page_t));
    if (!p || page_build(p, root) < 0) {
        if (p) page_free(p);
        return PyErr_NoMemory();
    }
    PyObject *out = PyList_New(0);
    for (int i = 0; out && i < p->n; i++) {
        const lxnode *n = p->node[i];
        PyObject *text = Py_NewRef(Py_None), *attrs = PyDict_New();
        if (is_text(n) && ((const lxchardata *)n)->data.data) {
            Py_DECREF(text);
            text = PyUnicode_DecodeUTF8((const char *)((const lxchardata *)n)->data.data,
                                        (Py_ssize_t)((const lxchardata *)n)->data.length, "replace");
        }
        attrs_t at;
        read_attrs(n, &at);
        for (int w = 0; attrs && w < A_COUNT; w++)
            if (at.present[w]) {
                PyObject *v = at.v[w] ? PyUnicode_DecodeUTF8((const char *)at.v[w], (Py_ssize_t)at.n[w], "replace")
                                      : Py_NewRef(Py_None);
                if (!v || PyDict_SetItemString(attrs, ATTR_NAMES[w], v) < 0) Py_CLEAR(attrs);
                Py_XDECREF(v);
            }
        PyObject *row = text && attrs ? Py_BuildValue("(iKKNN)", n->type, (unsigned long long)n->local_name,
                                                      (unsigned long long)(uintptr_t)n->parent, text, attrs)
                                      : NULL;
        if (!row) {
            Py_XDECREF(text);
            Py_XDECREF(attrs);
            Py_CLEAR(out);
            break;
        }
        if (PyList_Append(out, row) < 0) Py_CLEAR(out);
        Py_DECREF(row);
    }
    page_free(p);
    return out;
}

static PyObject *text_py(PyObject *arg, int lines) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(arg, &n);
    return s ? collapsed((const unsigned char *)s, (size_t)n, lines) : NULL;
}
static PyObject *collapse_py(PyObject *self, PyObject *arg) { return text_py(arg, 0); }
static PyObject *lines_py(PyObject *self, PyObject *arg) { return text_py(arg, 1); }

/* attribute_ids(mem_id) -> the id of each attribute of an element, in order */
static PyObject *attribute_ids(PyObject *self, PyObject *arg) {
    lxnode *n = PyLong_AsVoidPtr(arg);
    if (!n) return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "no node");
    PyObject *out = PyList_New(0);
    for (const lxattr *a = ((const lxelement *)n)->first_attr; out && a; a = a->next) {
        PyObject *v = PyLong_FromSize_t(a->qualified_name ? a->qualified_name : a->node.local_name);
        if (!v || PyList_Append(out, v) < 0) Py_CLEAR(out);
        Py_XDECREF(v);
    }
    return out;
}

/* tag_count(bytes, stop) -> the number of "<", counting stopped at stop */
static PyObject *tag_count(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    char *s;
    Py_ssize_t n;
    if (nargs != 2 || PyBytes_AsStringAndSize(args[0], &s, &n) < 0) return NULL;
    long stop = PyLong_AsLong(args[1]), count = 0;
    if (stop == -1 && PyErr_Occurred()) return NULL;
    for (const char *q = s, *end = s + n; count < stop && (q = memchr(q, '<', (size_t)(end - q))); q++) count++;
    return PyLong_FromLong(count);
}

/* utf8_valid(bytes) -> whether the bytes are well-formed UTF-8 */
static PyObject *utf8_valid(PyObject *self, PyObject *arg) {
    char *s;
    Py_ssize_t n;
    if (PyBytes_AsStringAndSize(arg, &s, &n) < 0) return NULL;
    const unsigned char *u = (const unsigned char *)s;
    for (Py_ssize_t i = 0; i < n;) {
        unsigned char c = u[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int k;
        uint32_t cp, min;
        if (c >= 0xc2 && c <= 0xdf) k = 1, cp = c & 0x1f, min = 0x80;
        else if (c >= 0xe0 && c <= 0xef) k = 2, cp = c & 0x0f, min = 0x800;
        else if (c >= 0xf0 && c <= 0xf4) k = 3, cp = c & 0x07, min = 0x10000;
        else Py_RETURN_FALSE;
        for (int q = 1; q <= k; q++) {
            if (i + q >= n || (u[i + q] & 0xc0) != 0x80) Py_RETURN_FALSE;
            cp = (cp << 6) | (u[i + q] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) Py_RETURN_FALSE;
        i += k + 1;
    }
    Py_RETURN_TRUE;
}

/* configure(tag_ids: {name: id}, tag_sets: {bit name: ids}, tag_weights: {id: weight},
 *           attribute_ids: {name: static id or -1}, word_flags, value_weight) */
static PyObject *configure(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6) return PyErr_Format(PyExc_TypeError, "configure takes 6 arguments");
    memset(tag_bits, 0, sizeof(tag_bits));
    memset(tag_weight, 0, sizeof(tag_weight));
    for (int t = 0; t < T_COUNT; t++) {
        PyObject *v = PyDict_GetItemString(args[0], TAG_NAMES[t]);
        if (!v) return PyErr_Format(PyExc_KeyError, "tag id of %s", TAG_NAMES[t]);
        tag_id[t] = (uintptr_t)PyLong_AsSize_t(v);
    }
    for (int bit = 0; BIT_NAMES[bit]; bit++) {
        PyObject *ids = PyDict_GetItemString(args[1], BIT_NAMES[bit]);
        if (!ids) return PyErr_Format(PyExc_KeyError, "tag set %s", BIT_NAMES[bit]);
        PyObject *it = PyObject_GetIter(ids), *item;
        if (!it) return NULL;
        while ((item = PyIter_Next(it))) {
            size_t id = PyLong_AsSize_t(item);
            Py_DECREF(item);
            if (id >= TAGS) {
                Py_DECREF(it);
                return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "tag id %zu", id);
            }
            tag_bits[id] |= (uint16_t)(1 << bit);
        }
        Py_DECREF(it);
        if (PyErr_Occurred()) return NULL;
    }
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(args[2], &pos, &key, &value)) {
        size_t id = PyLong_AsSize_t(key);
        if (id >= TAGS) return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "tag id %zu", id);
        tag_weight[id] = (int)PyLong_AsLong(value);
    }
    for (int w = 0; w < A_COUNT; w++) {
        PyObject *v = PyDict_GetItemString(args[3], ATTR_NAMES[w]);
        if (!v) return PyErr_Format(PyExc_KeyError, "attribute id of %s", ATTR_NAMES[w]);
        attr_static[w] = (intptr_t)PyLong_AsSsize_t(v);
        attr_len[w] = strlen(ATTR_NAMES[w]);
    }
    if (PyErr_Occurred()) return NULL;
    for (int k = 0; FURNITURE_WORDS[k]; k++) furniture_len[k] = strlen(FURNITURE_WORDS[k]);
    for (int k = 0; AFFIXES[k]; k++) affix_len[k] = strlen(AFFIXES[k]);
    if (!flag_cache && !(flag_cache = PyMem_Calloc(CACHE_SLOTS, sizeof(cache_slot)))) return PyErr_NoMemory();
    Py_XSETREF(py_word_flags, Py_NewRef(args[4]));
    Py_XSETREF(py_value_weight, Py_NewRef(args[5]));
    configured = 1;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", (PyCFunction)(void (*)(void))configure, METH_FASTCALL, "Tag ids, tag sets, attribute ids."},
    {"walk", (PyCFunction)(void (*)(void))walk, METH_FASTCALL,
     "walk(root, head, html) -> (page, outlinks, headings, full text, titles, descriptions, canonicals, lang)"},
    {"main_text", (PyCFunction)(void (*)(void))main_text, METH_FASTCALL,
     "Furniture removed; the main container's blocks (None: no container; False: not handled here)."},
    {"page_text", page_text, METH_O, "The block text of the whole page."},
    {"collapse", collapse_py, METH_O, "extract.collapse() of a str."},
    {"lines_of", lines_py, METH_O, "extract.lines_of() of a str."},
    {"nodes", nodes, METH_O, "Every node under an address as this module reads it (for tests)."},
    {"attribute_ids", attribute_ids, METH_O, "The attribute ids of an element."},
    {"tag_count", (PyCFunction)(void (*)(void))tag_count, METH_FASTCALL, "tag_count(bytes, stop): the '<' in it."},
    {"utf8_valid", utf8_valid, METH_O, "Whether bytes are well-formed UTF-8."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_lexwalk", "The extractor's tree work on lexbor's tree.",
                                    -1, methods};

PyMODINIT_FUNC PyInit__lexwalk(void) { return PyModule_Create(&module); }
