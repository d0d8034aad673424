// data/tokenizer.c - HF tokenizer.json reader and BPE tokenizer. Contract: data/tokenizer.h.
//
// Encode pipeline (as HF tokenizers runs it):
//   1. invalid UTF-8 -> U+FFFD (maximal subparts)
//   2. split out added tokens with normalized=false from the raw text (leftmost-longest),
//      honouring single_word / lstrip / rstrip
//   3. normalize every remaining piece, then split out normalized=true added tokens (their
//      patterns are the normalized token contents)
//   4. pre-tokenize each remaining piece (Metaspace / LLaMA-3 regex Split / ByteLevel)
//   5. BPE each word (ignore_merges check, word cache, heap-driven merge loop)
//   6. optional template / BOS / EOS
#include "tokenizer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/fileio.h"
#include "../core/json_util.h"
#include "unicode_tables.h"

// ---- small utilities -----------------------------------------------------------------------

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    ET_ASSERT(p, "tokenizer: out of memory allocating %zu bytes", n);
    return p;
}
static void *xrealloc(void *p, size_t n) {
    p = realloc(p, n ? n : 1);
    ET_ASSERT(p, "tokenizer: out of memory allocating %zu bytes", n);
    return p;
}
static void *xcalloc(size_t n, size_t sz) {
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    ET_ASSERT(p, "tokenizer: out of memory");
    return p;
}

void et_ids_push(et_ids *v, int32_t id) {
    if (v->len == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 64;
        v->data = xrealloc(v->data, v->cap * sizeof(int32_t));
    }
    v->data[v->len++] = id;
}

void et_ids_free(et_ids *v) {
    free(v->data);
    v->data = NULL;
    v->len = v->cap = 0;
}

// A growable byte buffer.
typedef struct {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_reserve(sbuf *b, size_t extra) {
    if (b->len + extra + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 64;
        while (c < b->len + extra + 1) c *= 2;
        b->p = xrealloc(b->p, c);
        b->cap = c;
    }
}
static void sb_add(sbuf *b, const char *s, size_t n) {
    sb_reserve(b, n);
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}
static void sb_addc(sbuf *b, char c) { sb_add(b, &c, 1); }

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

// UTF-8: length of the valid sequence starting at s[0] (n bytes available), or the number of
// bytes of its maximal valid prefix negated (-1..-3) if invalid.
static int utf8_seq(const uint8_t *s, size_t n) {
    uint8_t b = s[0];
    if (b < 0x80) return 1;
    int need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
        need = 1;
    } else if (b == 0xE0) {
        need = 2, lo = 0xA0;
    } else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) {
        need = 2;
    } else if (b == 0xED) {
        need = 2, hi = 0x9F;
    } else if (b == 0xF0) {
        need = 3, lo = 0x90;
    } else if (b >= 0xF1 && b <= 0xF3) {
        need = 3;
    } else if (b == 0xF4) {
        need = 3, hi = 0x8F;
    } else {
        return -1;
    }
    for (int k = 1; k <= need; k++) {
        if ((size_t)k >= n) return -k;
        uint8_t c = s[k];
        if (k == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF)) return -k;
    }
    return need + 1;
}

static bool utf8_valid(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        int k = utf8_seq((const uint8_t *)s + i, n - i);
        if (k < 0) return false;
        i += (size_t)k;
    }
    return true;
}

// Append s to b with every maximal invalid subsequence replaced by U+FFFD.
static void utf8_lossy(sbuf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        int k = utf8_seq((const uint8_t *)s + i, n - i);
        if (k > 0) {
            sb_add(b, s + i, (size_t)k);
            i += (size_t)k;
        } else {
            sb_add(b, "\xEF\xBF\xBD", 3);
            i += (size_t)-k;
        }
    }
}

// Decode one code point of valid UTF-8 at s[i]; returns the index after it.
static size_t utf8_next(const char *s, size_t n, size_t i, uint32_t *cp) {
    const uint8_t *u = (const uint8_t *)s;
    uint8_t b = u[i];
    if (b < 0x80 || i + 1 >= n) {
        *cp = b;
        return i + 1;
    }
    if (b < 0xE0) {
        *cp = ((uint32_t)(b & 0x1F) << 6) | (u[i + 1] & 0x3F);
        return i + 2;
    }
    if (b < 0xF0 && i + 2 < n) {
        *cp = ((uint32_t)(b & 0x0F) << 12) | ((uint32_t)(u[i + 1] & 0x3F) << 6) | (u[i + 2] & 0x3F);
        return i + 3;
    }
    if (i + 3 < n) {
        *cp = ((uint32_t)(b & 0x07) << 18) | ((uint32_t)(u[i + 1] & 0x3F) << 12) |
              ((uint32_t)(u[i + 2] & 0x3F) << 6) | (u[i + 3] & 0x3F);
        return i + 4;
    }
    *cp = 0xFFFD;
    return n;
}

// Start index of the code point that ends at s[i-1] (i > 0).
static size_t utf8_prev(const char *s, size_t i) {
    do i--;
    while (i > 0 && ((uint8_t)s[i] & 0xC0) == 0x80);
    return i;
}

static int utf8_put(char *o, uint32_t cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static bool uc_letter(uint32_t c) {
    if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
    return et_uc_in(et_uc_letter, et_uc_letter_len, c);
}
static bool uc_number(uint32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    return et_uc_in(et_uc_number, et_uc_number_len, c);
}
static bool uc_space(uint32_t c) {
    if (c < 0x80) return c == ' ' || (c >= 9 && c <= 13);
    return et_uc_in(et_uc_space, et_uc_space_len, c);
}
static bool uc_word(uint32_t c) {
    if (c < 0x80) return uc_letter(c) || uc_number(c) || c == '_';
    return et_uc_in(et_uc_word, et_uc_word_len, c);
}

// ---- hash maps -----------------------------------------------------------------------------

// String -> int32. Keys live in an append-only arena (offsets stay valid while it grows).
typedef struct {
    uint32_t off, len;
    int32_t val;
    uint32_t used;
} smap_slot;
typedef struct {
    smap_slot *slots;
    size_t cap, n;  // cap is a power of two
    sbuf keys;
} smap;

static void smap_grow(smap *m);
static smap_slot *smap_find(const smap *m, const char *s, size_t n) {
    if (!m->cap) return NULL;
    size_t i = hash_bytes(s, n) & (m->cap - 1);
    for (;;) {
        smap_slot *sl = &m->slots[i];
        if (!sl->used) return NULL;
        if (sl->len == n && memcmp(m->keys.p + sl->off, s, n) == 0) return sl;
        i = (i + 1) & (m->cap - 1);
    }
}
static bool smap_get(const smap *m, const char *s, size_t n, int32_t *val) {
    smap_slot *sl = smap_find(m, s, n);
    if (sl && val) *val = sl->val;
    return sl != NULL;
}
// Insert or overwrite.
static void smap_put(smap *m, const char *s, size_t n, int32_t val) {
    smap_slot *sl = smap_find(m, s, n);
    if (sl) {
        sl->val = val;
        return;
    }
    if ((m->n + 1) * 4 >= m->cap * 3) smap_grow(m);
    size_t i = hash_bytes(s, n) & (m->cap - 1);
    while (m->slots[i].used) i = (i + 1) & (m->cap - 1);
    uint32_t off = (uint32_t)m->keys.len;
    sb_add(&m->keys, s, n);
    sb_addc(&m->keys, 0);
    m->slots[i] = (smap_slot){off, (uint32_t)n, val, 1};
    m->n++;
}
static void smap_grow(smap *m) {
    size_t oc = m->cap, nc = oc ? oc * 2 : 64;
    smap_slot *old = m->slots;
    m->slots = xcalloc(nc, sizeof(smap_slot));
    m->cap = nc;
    for (size_t j = 0; j < oc; j++) {
        if (!old[j].used) continue;
        size_t i = hash_bytes(m->keys.p + old[j].off, old[j].len) & (nc - 1);
        while (m->slots[i].used) i = (i + 1) & (nc - 1);
        m->slots[i] = old[j];
    }
    free(old);
}
static void smap_free(smap *m) {
    free(m->slots);
    free(m->keys.p);
    memset(m, 0, sizeof(*m));
}

// (id, id) pair -> (rank, new id).
typedef struct {
    uint64_t key;  // UINT64_MAX = empty
    uint32_t rank;
    int32_t new_id;
} pmap_slot;
typedef struct {
    pmap_slot *slots;
    size_t cap, n;
} pmap;

static uint64_t pair_key(int32_t a, int32_t b) {
    return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
}
static size_t pmap_hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (size_t)k;
}
static const pmap_slot *pmap_get(const pmap *m, uint64_t key) {
    if (!m->cap) return NULL;
    size_t i = pmap_hash(key) & (m->cap - 1);
    for (;;) {
        const pmap_slot *sl = &m->slots[i];
        if (sl->key == UINT64_MAX) return NULL;
        if (sl->key == key) return sl;
        i = (i + 1) & (m->cap - 1);
    }
}
static void pmap_put(pmap *m, uint64_t key, uint32_t rank, int32_t new_id) {
    if ((m->n + 1) * 4 >= m->cap * 3) {
        size_t oc = m->cap, nc = oc ? oc * 2 : 64;
        pmap_slot *old = m->slots;
        m->slots = xmalloc(nc * sizeof(pmap_slot));
        for (size_t j = 0; j < nc; j++) m->slots[j].key = UINT64_MAX;
        m->cap = nc;
        for (size_t j = 0; j < oc; j++) {
            if (old[j].key == UINT64_MAX) continue;
            size_t i = pmap_hash(old[j].key) & (nc - 1);
            while (m->slots[i].key != UINT64_MAX) i = (i + 1) & (nc - 1);
            m->slots[i] = old[j];
        }
        free(old);
    }
    size_t i = pmap_hash(key) & (m->cap - 1);
    while (m->slots[i].key != UINT64_MAX && m->slots[i].key != key) i = (i + 1) & (m->cap - 1);
    if (m->slots[i].key == UINT64_MAX) m->n++;
    m->slots[i] = (pmap_slot){key, rank, new_id};  // a repeated merge: the later rank wins
}

// ---- the tokenizer -------------------------------------------------------------------------

typedef enum { NORM_PREPEND, NORM_REPLACE } norm_kind;
typedef struct {
    norm_kind kind;
    char *a, *b;  // PREPEND: a; REPLACE: a -> b
    size_t alen, blen;
} norm_op;

typedef enum { PRE_METASPACE, PRE_SPLIT_LLAMA3, PRE_BYTELEVEL } pre_kind;
typedef enum { SCHEME_ALWAYS, SCHEME_FIRST, SCHEME_NEVER } prepend_scheme;
typedef struct {
    pre_kind kind;
    char repl[8];
    size_t repl_len;
    prepend_scheme scheme;
    bool split;             // Metaspace
    bool add_prefix_space;  // ByteLevel
} pre_op;

typedef enum {
    DEC_REPLACE,
    DEC_BYTEFALLBACK,
    DEC_FUSE,
    DEC_STRIP,
    DEC_BYTELEVEL,
    DEC_METASPACE
} dec_kind;
typedef struct {
    dec_kind kind;
    char *a, *b;  // REPLACE a -> b; METASPACE a = replacement
    size_t alen, blen;
    uint32_t strip_cp;
    int start, stop;
    prepend_scheme scheme;
} dec_op;

typedef struct {
    char *content;
    size_t len;
    int32_t id;
    bool special, lstrip, rstrip, single_word, normalized;
} added_tok;

typedef struct {
    char *pat;  // pattern bytes (the content, normalized for normalized tokens)
    size_t len;
    int32_t id;
} added_pat;

typedef struct {
    added_pat *p;
    int n;
    int *by_byte[256];  // indices of patterns by first byte
    int n_by_byte[256];
} matcher;

#define CACHE_MAX_ENTRIES 100000
#define CACHE_MAX_WORD 256

struct et_tokenizer {
    // model
    smap vocab;
    char **id_tok;  // id -> token (NUL-terminated, points into vocab keys or added contents)
    uint32_t *id_len;
    int32_t n_ids;  // one past the largest id of the model vocab and the added tokens
    int32_t vocab_count;
    pmap merges;
    int32_t unk_id;
    bool fuse_unk, byte_fallback, ignore_merges;
    int32_t byte_ids[256];
    // added tokens (by id, after HF's id assignment)
    added_tok *added;
    int n_added;
    smap added_map;        // content -> id
    smap special_set;      // content -> 1
    int32_t *added_by_id;  // id -> index into added or -1 (size n_ids)
    matcher raw_m, norm_m;
    // pipeline
    norm_op *norm;
    int n_norm;
    pre_op *pre;
    int n_pre;
    dec_op *dec;
    int n_dec;
    bool has_decoder;
    int32_t *tpl_pre, *tpl_suf;
    int n_tpl_pre, n_tpl_suf;
    int32_t bos, eos;
    // ByteLevel byte -> UTF-8 of its char
    char bl_enc[256][3];
    uint8_t bl_len[256];
    int16_t bl_dec[0x144];  // char -> byte, -1 if not a ByteLevel char
    // word cache
    pthread_mutex_t cache_mu;
    smap cache;  // word -> offset into cache_ids (count stored first)
    int32_t *cache_ids;
    size_t cache_ids_len, cache_ids_cap;
};

// ---- loading -------------------------------------------------------------------------------

typedef struct {
    const char *name;
} lctx;

// fmt starts with ": " and follows the tokenizer file's name.
#define LERR(code, fmt, ...) et_err(code, "%s" fmt, c->name, ##__VA_ARGS__)

static char *xstrndup(const char *s, size_t n) {
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

// A JSON string field: returns its value or NULL (sets *err) when missing or not a string.
static const char *jstr(const lctx *c, const cJSON *o, const char *key, const char *field,
                        bool required, et_status *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) *err = LERR(ET_ERR_MISSING, ": %s.%s is missing", field, key);
        return NULL;
    }
    if (!cJSON_IsString(v)) {
        *err = LERR(ET_ERR_FORMAT, ": %s.%s must be a string", field, key);
        return NULL;
    }
    if (!utf8_valid(v->valuestring, strlen(v->valuestring))) {
        *err = LERR(ET_ERR_FORMAT, ": %s.%s is not valid UTF-8", field, key);
        return NULL;
    }
    return v->valuestring;
}

static bool jbool(const cJSON *o, const char *key, bool dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || !cJSON_IsBool(v)) return dflt;
    return cJSON_IsTrue(v);
}

static et_status jint(const lctx *c, const cJSON *v, const char *field, int32_t lo, int32_t hi,
                      int32_t *out) {
    // range first: casting an out-of-range double to an integer is undefined
    if (!v || !cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi) ||
        v->valuedouble != (double)(int32_t)v->valuedouble)
        return LERR(ET_ERR_FORMAT, ": %s must be an integer in [%d, %d]", field, lo, hi);
    *out = (int32_t)v->valuedouble;
    return NULL;
}

#define MAX_ID (1 << 26)

static void set_id_token(et_tokenizer *tk, int32_t id, char *s, size_t len) {
    if (id >= tk->n_ids) {
        int32_t nn = tk->n_ids ? tk->n_ids : 1024;
        while (nn <= id) nn *= 2;
        tk->id_tok = xrealloc(tk->id_tok, (size_t)nn * sizeof(char *));
        tk->id_len = xrealloc(tk->id_len, (size_t)nn * sizeof(uint32_t));
        for (int32_t i = tk->n_ids; i < nn; i++) tk->id_tok[i] = NULL, tk->id_len[i] = 0;
        tk->n_ids = nn;
    }
    tk->id_tok[id] = s;
    tk->id_len[id] = (uint32_t)len;
}

static et_status load_model(et_tokenizer *tk, const lctx *c, const cJSON *model) {
    et_status err = NULL;
    if (!model || cJSON_IsNull(model)) return LERR(ET_ERR_MISSING, ": model is missing");
    if (!cJSON_IsObject(model)) return LERR(ET_ERR_FORMAT, ": model must be an object");
    const char *type = jstr(c, model, "type", "model", false, &err);
    if (err) return err;
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (type && strcmp(type, "BPE") != 0)
        return LERR(ET_ERR_UNSUPPORTED, ": model.type \"%s\" is not supported (only BPE)", type);
    if (!type && !cJSON_GetObjectItemCaseSensitive(model, "merges"))
        return LERR(ET_ERR_UNSUPPORTED,
                    ": model.type is missing and model has no merges "
                    "(only BPE is supported)");
    if (!vocab) return LERR(ET_ERR_MISSING, ": model.vocab is missing");
    if (!cJSON_IsObject(vocab)) return LERR(ET_ERR_FORMAT, ": model.vocab must be an object");
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (dropout && !cJSON_IsNull(dropout) &&
        !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0))
        return LERR(ET_ERR_UNSUPPORTED, ": model.dropout is not supported");
    const char *pfx = jstr(c, model, "continuing_subword_prefix", "model", false, &err);
    if (err) return err;
    const char *sfx = jstr(c, model, "end_of_word_suffix", "model", false, &err);
    if (err) return err;
    if ((pfx && *pfx) || (sfx && *sfx))
        return LERR(ET_ERR_UNSUPPORTED,
                    ": model.continuing_subword_prefix / end_of_word_suffix are not supported");
    tk->fuse_unk = jbool(model, "fuse_unk", false);
    tk->byte_fallback = jbool(model, "byte_fallback", false);
    tk->ignore_merges = jbool(model, "ignore_merges", false);

    // vocab
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        int32_t id;
        char field[96];
        snprintf(field, sizeof(field), "model.vocab[\"%.60s\"]", e->string);
        ET_TRY(jint(c, e, field, 0, MAX_ID - 1, &id));
        size_t n = strlen(e->string);
        if (!utf8_valid(e->string, n))
            return LERR(ET_ERR_FORMAT, ": %s: the token is not valid UTF-8", field);
        if (smap_get(&tk->vocab, e->string, n, NULL))
            return LERR(ET_ERR_FORMAT, ": %s: duplicate token", field);
        if (id < tk->n_ids && tk->id_tok[id])
            return LERR(ET_ERR_FORMAT, ": %s: id %d is used twice", field, id);
        smap_put(&tk->vocab, e->string, n, id);
        set_id_token(tk, id, (char *)"", n);  // pointer set below (the arena may move)
        tk->vocab_count++;
    }
    for (size_t i = 0; i < tk->vocab.cap; i++) {
        smap_slot *sl = &tk->vocab.slots[i];
        if (sl->used) tk->id_tok[sl->val] = tk->vocab.keys.p + sl->off;
    }
    tk->unk_id = -1;
    const char *unk = jstr(c, model, "unk_token", "model", false, &err);
    if (err) return err;
    if (unk && !smap_get(&tk->vocab, unk, strlen(unk), &tk->unk_id))
        return LERR(ET_ERR_FORMAT, ": model.unk_token \"%s\" is not in model.vocab", unk);
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof(name), "<0x%02X>", b);
        if (!smap_get(&tk->vocab, name, 6, &tk->byte_ids[b])) tk->byte_ids[b] = -1;
    }

    // merges
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!merges || cJSON_IsNull(merges)) return LERR(ET_ERR_MISSING, ": model.merges is missing");
    if (!cJSON_IsArray(merges)) return LERR(ET_ERR_FORMAT, ": model.merges must be an array");
    uint32_t rank = 0;
    sbuf cat = {0};
    cJSON_ArrayForEach(e, merges) {
        const char *a, *b;
        size_t al, bl;
        if (cJSON_IsString(e)) {
            const char *sp = strchr(e->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                free(cat.p);
                return LERR(ET_ERR_FORMAT,
                            ": model.merges[%u] \"%.80s\" must be two tokens "
                            "separated by one space",
                            rank, e->valuestring);
            }
            a = e->valuestring, al = (size_t)(sp - a);
            b = sp + 1, bl = strlen(b);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            a = cJSON_GetArrayItem(e, 0)->valuestring, al = strlen(a);
            b = cJSON_GetArrayItem(e, 1)->valuestring, bl = strlen(b);
        } else {
            free(cat.p);
            return LERR(ET_ERR_FORMAT,
                        ": model.merges[%u] must be a \"a b\" string or a pair "
                        "of strings",
                        rank);
        }
        int32_t ia, ib, inew;
        if (!smap_get(&tk->vocab, a, al, &ia) || !smap_get(&tk->vocab, b, bl, &ib)) {
            bool bad_a = !smap_get(&tk->vocab, a, al, NULL);
            free(cat.p);
            return LERR(ET_ERR_FORMAT, ": model.merges[%u]: token \"%.*s\" is not in model.vocab",
                        rank, (int)(bad_a ? (al > 80 ? 80 : al) : (bl > 80 ? 80 : bl)),
                        bad_a ? a : b);
        }
        cat.len = 0;
        sb_add(&cat, a, al);
        sb_add(&cat, b, bl);
        if (!smap_get(&tk->vocab, cat.p, cat.len, &inew)) {
            et_status s = LERR(ET_ERR_FORMAT,
                               ": model.merges[%u]: the merged token \"%.80s\" is "
                               "not in model.vocab",
                               rank, cat.p);
            free(cat.p);
            return s;
        }
        pmap_put(&tk->merges, pair_key(ia, ib), rank, inew);
        rank++;
    }
    free(cat.p);
    return NULL;
}

static void norm_apply(const et_tokenizer *tk, const char *s, size_t n, sbuf *out);

static et_status load_added(et_tokenizer *tk, const lctx *c, const cJSON *arr) {
    if (!arr || cJSON_IsNull(arr)) return NULL;
    if (!cJSON_IsArray(arr)) return LERR(ET_ERR_FORMAT, ": added_tokens must be an array");
    int n = cJSON_GetArraySize(arr);
    tk->added = xcalloc((size_t)n, sizeof(added_tok));
    // Order of the patterns as HF builds them: special tokens first, then the others.
    added_tok *specials = xcalloc((size_t)n, sizeof(added_tok));
    added_tok *others = xcalloc((size_t)n, sizeof(added_tok));
    int n_spec = 0, n_oth = 0, i = 0;
    const cJSON *e;
    et_status err = NULL;
    cJSON_ArrayForEach(e, arr) {
        char field[48];
        snprintf(field, sizeof(field), "added_tokens[%d]", i);
        if (!cJSON_IsObject(e)) {
            err = LERR(ET_ERR_FORMAT, ": %s must be an object", field);
            break;
        }
        const char *content = jstr(c, e, "content", field, true, &err);
        if (err) break;
        added_tok t = {.content = (char *)content,
                       .len = strlen(content),
                       .special = jbool(e, "special", false),
                       .lstrip = jbool(e, "lstrip", false),
                       .rstrip = jbool(e, "rstrip", false),
                       .single_word = jbool(e, "single_word", false),
                       .normalized = jbool(e, "normalized", !jbool(e, "special", false))};
        int32_t json_id;
        char idf[64];
        snprintf(idf, sizeof(idf), "%s.id", field);
        err = jint(c, cJSON_GetObjectItemCaseSensitive(e, "id"), idf, 0, MAX_ID - 1, &json_id);
        if (err) break;
        i++;
        if (t.len == 0) continue;
        if (t.special && !smap_get(&tk->special_set, t.content, t.len, NULL)) {
            smap_put(&tk->special_set, t.content, t.len, 1);
            specials[n_spec++] = t;
        }
        // HF ignores a token identical (content and flags) to one already registered.
        bool dup = false;
        for (int k = 0; k < tk->n_added; k++) {
            added_tok *o = &tk->added[k];
            if (o->id >= 0 && o->len == t.len && !memcmp(o->content, t.content, t.len) &&
                o->special == t.special && o->lstrip == t.lstrip && o->rstrip == t.rstrip &&
                o->single_word == t.single_word && o->normalized == t.normalized) {
                dup = true;
                break;
            }
        }
        if (dup) continue;
        int32_t id;
        if (!smap_get(&tk->added_map, t.content, t.len, &id) &&
            !smap_get(&tk->vocab, t.content, t.len, &id)) {
            int32_t max = -1;
            for (int k = 0; k < tk->n_added; k++)
                if (tk->added[k].id > max) max = tk->added[k].id;
            if (max < 0)
                id = tk->vocab_count;
            else
                id = (max >= tk->vocab_count || tk->vocab_count == 0) ? max + 1 : tk->vocab_count;
            (void)json_id;  // HF only warns when the file's id differs
        }
        smap_put(&tk->added_map, t.content, t.len, id);
        // id -> token: overwrite a previous entry with this id
        for (int k = 0; k < tk->n_added; k++)
            if (tk->added[k].id == id) tk->added[k].id = -1;
        t.id = id;
        t.content = xstrndup(t.content, t.len);
        tk->added[tk->n_added++] = t;
        if (!smap_get(&tk->special_set, t.content, t.len, NULL)) others[n_oth++] = t;
    }
    if (!err) {
        // Build the two matchers.
        added_tok *all = xcalloc((size_t)(n_spec + n_oth) + 1, sizeof(added_tok));
        memcpy(all, specials, (size_t)n_spec * sizeof(added_tok));
        memcpy(all + n_spec, others, (size_t)n_oth * sizeof(added_tok));
        for (int k = 0; k < n_spec + n_oth; k++) {
            added_tok *t = &all[k];
            int32_t id = -1;
            if (!smap_get(&tk->added_map, t->content, t->len, &id)) continue;
            matcher *m = t->normalized ? &tk->norm_m : &tk->raw_m;
            m->p = xrealloc(m->p, (size_t)(m->n + 1) * sizeof(added_pat));
            added_pat *p = &m->p[m->n++];
            p->id = id;
            if (t->normalized) {
                sbuf nb = {0};
                norm_apply(tk, t->content, t->len, &nb);
                p->pat = nb.p ? nb.p : xstrndup("", 0);
                p->len = nb.len;
            } else {
                p->pat = xstrndup(t->content, t->len);
                p->len = t->len;
            }
        }
        free(all);
        matcher *ms[2] = {&tk->raw_m, &tk->norm_m};
        for (int mi = 0; mi < 2; mi++) {
            matcher *m = ms[mi];
            for (int k = 0; k < m->n; k++) {
                if (m->p[k].len == 0) continue;
                uint8_t b0 = (uint8_t)m->p[k].pat[0];
                m->by_byte[b0] =
                    xrealloc(m->by_byte[b0], (size_t)(m->n_by_byte[b0] + 1) * sizeof(int));
                m->by_byte[b0][m->n_by_byte[b0]++] = k;
            }
        }
    }
    free(specials);
    free(others);
    return err;
}

typedef et_status (*component_loader)(et_tokenizer *, const lctx *, const cJSON *, const char *);

// The head shared by normalizers, pre-tokenizers, decoders and post-processors: n must be an
// object with a string "type" (*type). A "Sequence" loads every element of n[list] with fn
// and leaves *type NULL, as does an absent (null) n.
static et_status load_component(et_tokenizer *tk, const lctx *c, const cJSON *n, const char *field,
                                const char *list, component_loader fn, const char **type) {
    *type = NULL;
    if (!n || cJSON_IsNull(n)) return NULL;
    et_status err = NULL;
    if (!cJSON_IsObject(n)) return LERR(ET_ERR_FORMAT, ": %s must be an object", field);
    const char *t = jstr(c, n, "type", field, true, &err);
    if (err) return err;
    if (strcmp(t, "Sequence")) {
        *type = t;
        return NULL;
    }
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(n, list);
    if (!cJSON_IsArray(arr)) return LERR(ET_ERR_FORMAT, ": %s.%s must be an array", field, list);
    int i = 0;
    const cJSON *e;
    char sub[96];
    cJSON_ArrayForEach(e, arr) {
        snprintf(sub, sizeof(sub), "%.60s.%s[%d]", field, list, i++);
        ET_TRY(fn(tk, c, e, sub));
    }
    return NULL;
}

static et_status load_normalizer(et_tokenizer *tk, const lctx *c, const cJSON *n,
                                 const char *field) {
    const char *type = NULL;
    ET_TRY(load_component(tk, c, n, field, "normalizers", load_normalizer, &type));
    if (!type) return NULL;  // absent, or a Sequence (loaded)
    et_status err = NULL;
    char sub[96];
    norm_op op = {0};
    if (!strcmp(type, "Prepend")) {
        const char *p = jstr(c, n, "prepend", field, true, &err);
        if (err) return err;
        op.kind = NORM_PREPEND, op.a = xstrndup(p, strlen(p)), op.alen = strlen(p);
    } else if (!strcmp(type, "Replace")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
        snprintf(sub, sizeof(sub), "%.60s.pattern", field);
        const char *s = cJSON_IsObject(pat) ? jstr(c, pat, "String", sub, false, &err) : NULL;
        if (err) return err;
        if (!s)
            return LERR(ET_ERR_UNSUPPORTED,
                        ": %s.pattern: only {\"String\": ...} patterns are "
                        "supported",
                        field);
        const char *r = jstr(c, n, "content", field, true, &err);
        if (err) return err;
        if (!*s) return LERR(ET_ERR_UNSUPPORTED, ": %s.pattern: empty pattern", field);
        op.kind = NORM_REPLACE;
        op.a = xstrndup(s, strlen(s)), op.alen = strlen(s);
        op.b = xstrndup(r, strlen(r)), op.blen = strlen(r);
    } else {
        return LERR(ET_ERR_UNSUPPORTED, ": %s.type \"%s\" is not supported", field, type);
    }
    tk->norm = xrealloc(tk->norm, (size_t)(tk->n_norm + 1) * sizeof(norm_op));
    tk->norm[tk->n_norm++] = op;
    return NULL;
}

static const char *LLAMA3_PATTERN =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static et_status parse_scheme(const lctx *c, const cJSON *n, const char *field, prepend_scheme *s) {
    et_status err = NULL;
    const char *ps = jstr(c, n, "prepend_scheme", field, false, &err);
    if (err) return err;
    if (!ps) {
        // older files: add_prefix_space true/false
        *s = jbool(n, "add_prefix_space", true) ? SCHEME_ALWAYS : SCHEME_NEVER;
    } else if (!strcmp(ps, "always")) {
        *s = SCHEME_ALWAYS;
    } else if (!strcmp(ps, "first")) {
        *s = SCHEME_FIRST;
    } else if (!strcmp(ps, "never")) {
        *s = SCHEME_NEVER;
    } else {
        return LERR(ET_ERR_FORMAT, ": %s.prepend_scheme \"%s\" is not always/first/never", field,
                    ps);
    }
    return NULL;
}

static et_status parse_replacement(const lctx *c, const cJSON *n, const char *field, char *out,
                                   size_t *len) {
    et_status err = NULL;
    const char *r = jstr(c, n, "replacement", field, false, &err);
    if (err) return err;
    if (!r) r = "\xE2\x96\x81";
    size_t rl = strlen(r);
    uint32_t cp;
    if (rl == 0 || rl > 4 || utf8_next(r, rl, 0, &cp) != rl)
        return LERR(ET_ERR_FORMAT, ": %s.replacement must be one character", field);
    memcpy(out, r, rl);
    out[rl] = 0;
    *len = rl;
    return NULL;
}

static et_status load_pretok(et_tokenizer *tk, const lctx *c, const cJSON *n, const char *field) {
    const char *type = NULL;
    ET_TRY(load_component(tk, c, n, field, "pretokenizers", load_pretok, &type));
    if (!type) return NULL;  // absent, or a Sequence (loaded)
    et_status err = NULL;
    char sub[96];
    pre_op op = {0};
    if (!strcmp(type, "Metaspace")) {
        op.kind = PRE_METASPACE;
        ET_TRY(parse_replacement(c, n, field, op.repl, &op.repl_len));
        ET_TRY(parse_scheme(c, n, field, &op.scheme));
        op.split = jbool(n, "split", true);
    } else if (!strcmp(type, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
        snprintf(sub, sizeof(sub), "%.60s.pattern", field);
        const char *re = cJSON_IsObject(pat) ? jstr(c, pat, "Regex", sub, false, &err) : NULL;
        if (err) return err;
        if (!re || strcmp(re, LLAMA3_PATTERN) != 0)
            return LERR(ET_ERR_UNSUPPORTED, ": %s.pattern: only the LLaMA-3 regex is supported",
                        field);
        const char *beh = jstr(c, n, "behavior", field, true, &err);
        if (err) return err;
        if (strcmp(beh, "Isolated") != 0 || jbool(n, "invert", false))
            return LERR(ET_ERR_UNSUPPORTED,
                        ": %s: only behavior Isolated without invert is "
                        "supported",
                        field);
        op.kind = PRE_SPLIT_LLAMA3;
    } else if (!strcmp(type, "ByteLevel")) {
        if (jbool(n, "use_regex", true))
            return LERR(ET_ERR_UNSUPPORTED,
                        ": %s.use_regex true (the GPT-2 regex) is not "
                        "supported",
                        field);
        op.kind = PRE_BYTELEVEL;
        op.add_prefix_space = jbool(n, "add_prefix_space", true);
    } else {
        return LERR(ET_ERR_UNSUPPORTED, ": %s.type \"%s\" is not supported", field, type);
    }
    tk->pre = xrealloc(tk->pre, (size_t)(tk->n_pre + 1) * sizeof(pre_op));
    tk->pre[tk->n_pre++] = op;
    return NULL;
}

static et_status load_decoder(et_tokenizer *tk, const lctx *c, const cJSON *n, const char *field) {
    const char *type = NULL;
    ET_TRY(load_component(tk, c, n, field, "decoders", load_decoder, &type));
    if (n && !cJSON_IsNull(n)) tk->has_decoder = true;
    if (!type) return NULL;  // absent, or a Sequence (loaded)
    et_status err = NULL;
    char sub[96];
    dec_op op = {0};
    if (!strcmp(type, "Replace")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
        snprintf(sub, sizeof(sub), "%.60s.pattern", field);
        const char *s = cJSON_IsObject(pat) ? jstr(c, pat, "String", sub, false, &err) : NULL;
        if (err) return err;
        if (!s || !*s)
            return LERR(ET_ERR_UNSUPPORTED,
                        ": %s.pattern: only non-empty {\"String\": ...} "
                        "patterns are supported",
                        field);
        const char *r = jstr(c, n, "content", field, true, &err);
        if (err) return err;
        op.kind = DEC_REPLACE;
        op.a = xstrndup(s, strlen(s)), op.alen = strlen(s);
        op.b = xstrndup(r, strlen(r)), op.blen = strlen(r);
    } else if (!strcmp(type, "ByteFallback")) {
        op.kind = DEC_BYTEFALLBACK;
    } else if (!strcmp(type, "Fuse")) {
        op.kind = DEC_FUSE;
    } else if (!strcmp(type, "Strip")) {
        const char *s = jstr(c, n, "content", field, true, &err);
        if (err) return err;
        size_t sl = strlen(s);
        if (sl == 0 || utf8_next(s, sl, 0, &op.strip_cp) != sl)
            return LERR(ET_ERR_FORMAT, ": %s.content must be one character", field);
        op.kind = DEC_STRIP;
        snprintf(sub, sizeof(sub), "%.60s.start", field);
        ET_TRY(jint(c, cJSON_GetObjectItemCaseSensitive(n, "start"), sub, 0, 1 << 20, &op.start));
        snprintf(sub, sizeof(sub), "%.60s.stop", field);
        ET_TRY(jint(c, cJSON_GetObjectItemCaseSensitive(n, "stop"), sub, 0, 1 << 20, &op.stop));
    } else if (!strcmp(type, "ByteLevel")) {
        op.kind = DEC_BYTELEVEL;
    } else if (!strcmp(type, "Metaspace")) {
        char r[8];
        size_t rl;
        ET_TRY(parse_replacement(c, n, field, r, &rl));
        ET_TRY(parse_scheme(c, n, field, &op.scheme));
        op.kind = DEC_METASPACE;
        op.a = xstrndup(r, rl), op.alen = rl;
    } else {
        return LERR(ET_ERR_UNSUPPORTED, ": %s.type \"%s\" is not supported", field, type);
    }
    tk->dec = xrealloc(tk->dec, (size_t)(tk->n_dec + 1) * sizeof(dec_op));
    tk->dec[tk->n_dec++] = op;
    return NULL;
}

static et_status template_ids(et_tokenizer *tk, const lctx *c, const cJSON *pp, const char *field,
                              const cJSON *item, int32_t **ids, int *n) {
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(item, "SpecialToken");
    const cJSON *idv = st ? cJSON_GetObjectItemCaseSensitive(st, "id") : NULL;
    if (!cJSON_IsString(idv))
        return LERR(ET_ERR_FORMAT, ": %s.single: SpecialToken without a string id", field);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(pp, "special_tokens");
    const cJSON *ent = map ? cJSON_GetObjectItemCaseSensitive(map, idv->valuestring) : NULL;
    const cJSON *arr = ent ? cJSON_GetObjectItemCaseSensitive(ent, "ids") : NULL;
    if (!cJSON_IsArray(arr))
        return LERR(ET_ERR_MISSING, ": %s.special_tokens[\"%.60s\"].ids is missing", field,
                    idv->valuestring);
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        int32_t id;
        char sub[128];
        snprintf(sub, sizeof(sub), "%.40s.special_tokens[\"%.40s\"].ids", field, idv->valuestring);
        ET_TRY(jint(c, e, sub, 0, MAX_ID - 1, &id));
        *ids = xrealloc(*ids, (size_t)(*n + 1) * sizeof(int32_t));
        (*ids)[(*n)++] = id;
    }
    (void)tk;
    return NULL;
}

static et_status load_post(et_tokenizer *tk, const lctx *c, const cJSON *n, const char *field) {
    const char *type = NULL;
    ET_TRY(load_component(tk, c, n, field, "processors", load_post, &type));
    if (!type) return NULL;                       // absent, or a Sequence (loaded)
    if (!strcmp(type, "ByteLevel")) return NULL;  // offsets only
    if (strcmp(type, "TemplateProcessing") != 0)
        return LERR(ET_ERR_UNSUPPORTED, ": %s.type \"%s\" is not supported", field, type);
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(n, "single");
    if (!cJSON_IsArray(single)) return LERR(ET_ERR_MISSING, ": %s.single is missing", field);
    bool seen_a = false;
    const cJSON *e;
    cJSON_ArrayForEach(e, single) {
        if (cJSON_GetObjectItemCaseSensitive(e, "Sequence")) {
            seen_a = true;
        } else if (seen_a) {
            ET_TRY(template_ids(tk, c, n, field, e, &tk->tpl_suf, &tk->n_tpl_suf));
        } else {
            ET_TRY(template_ids(tk, c, n, field, e, &tk->tpl_pre, &tk->n_tpl_pre));
        }
    }
    return NULL;
}

static void init_bytelevel(et_tokenizer *tk) {
    for (int i = 0; i < 0x144; i++) tk->bl_dec[i] = -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        uint32_t cp;
        if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))
            cp = (uint32_t)b;
        else
            cp = 256u + (uint32_t)n++;
        tk->bl_len[b] = (uint8_t)utf8_put(tk->bl_enc[b], cp);
        tk->bl_dec[cp] = (int16_t)b;
    }
}

static int json_line(const char *json, size_t len, const char *at) {
    int line = 1;
    if (!at || at < json || at > json + len) return 0;
    for (const char *p = json; p < at; p++) line += *p == '\n';
    return line;
}

et_status et_tokenizer_from_json(const char *json, size_t len, const char *name,
                                 et_tokenizer **out) {
    *out = NULL;
    lctx cc = {name ? name : "tokenizer.json"}, *c = &cc;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, false);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        return LERR(ET_ERR_FORMAT, ": invalid JSON near line %d", json_line(json, len, at));
    }
    // Anything but whitespace after the value is refused, as HF's tokenizers (serde_json:
    // "trailing characters") does: a file with two documents or appended junk is a mistake.
    const char *tail = end ? end : json + len;
    while (tail < json + len && (*tail == ' ' || *tail == '\t' || *tail == '\n' || *tail == '\r'))
        tail++;
    if (tail < json + len) {
        cJSON_Delete(root);
        return LERR(ET_ERR_FORMAT,
                    ": trailing data after the JSON object at line %d (byte %td of %zu); the file "
                    "must hold one JSON object only",
                    json_line(json, len, tail), tail - json, len);
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return LERR(ET_ERR_FORMAT, ": the top level must be a JSON object");
    }
    et_status dup = et_json_check_unique(root, c->name);  // Python / serde: the last one wins
    if (dup) {
        cJSON_Delete(root);
        return dup;
    }
    et_tokenizer *tk = xcalloc(1, sizeof(et_tokenizer));
    pthread_mutex_init(&tk->cache_mu, NULL);
    init_bytelevel(tk);
    tk->bos = tk->eos = -1;
    et_status s = load_model(tk, c, cJSON_GetObjectItemCaseSensitive(root, "model"));
    // the normalizer before the added tokens: normalized tokens' patterns are normalized
    if (!s)
        s = load_normalizer(tk, c, cJSON_GetObjectItemCaseSensitive(root, "normalizer"),
                            "normalizer");
    if (!s) s = load_added(tk, c, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"));
    if (!s)
        s = load_pretok(tk, c, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"),
                        "pre_tokenizer");
    if (!s)
        s = load_post(tk, c, cJSON_GetObjectItemCaseSensitive(root, "post_processor"),
                      "post_processor");
    if (!s) s = load_decoder(tk, c, cJSON_GetObjectItemCaseSensitive(root, "decoder"), "decoder");
    cJSON_Delete(root);
    if (s) {
        et_tokenizer_free(tk);
        return s;
    }
    // id tables for added tokens
    int32_t maxid = tk->n_ids - 1;
    for (int k = 0; k < tk->n_added; k++)
        if (tk->added[k].id > maxid) maxid = tk->added[k].id;
    if (maxid >= tk->n_ids) set_id_token(tk, maxid, NULL, 0);
    tk->added_by_id = xmalloc((size_t)tk->n_ids * sizeof(int32_t));
    for (int32_t i = 0; i < tk->n_ids; i++) tk->added_by_id[i] = -1;
    for (int k = 0; k < tk->n_added; k++)
        if (tk->added[k].id >= 0) tk->added_by_id[tk->added[k].id] = k;
    // bos / eos
    if (tk->n_tpl_pre) tk->bos = tk->tpl_pre[0];
    if (tk->n_tpl_suf) tk->eos = tk->tpl_suf[0];
    if (tk->bos < 0) tk->bos = et_tokenizer_token_to_id(tk, "<s>", 3);
    if (tk->bos < 0) tk->bos = et_tokenizer_token_to_id(tk, "<|begin_of_text|>", 17);
    if (tk->eos < 0) tk->eos = et_tokenizer_token_to_id(tk, "</s>", 4);
    if (tk->eos < 0) tk->eos = et_tokenizer_token_to_id(tk, "<|end_of_text|>", 15);
    *out = tk;
    return NULL;
}

et_status et_tokenizer_load(const char *path, et_tokenizer **out) {
    *out = NULL;
    char *buf = NULL;
    size_t len = 0;
    ET_TRY(et_read_file(path, (size_t)1 << 30, &buf, &len));
    et_status s = et_tokenizer_from_json(buf, len, path, out);
    free(buf);
    return s;
}

void et_tokenizer_free(et_tokenizer *tk) {
    if (!tk) return;
    smap_free(&tk->vocab);
    free(tk->id_tok);
    free(tk->id_len);
    free(tk->merges.slots);
    for (int k = 0; k < tk->n_added; k++) free(tk->added[k].content);
    free(tk->added);
    smap_free(&tk->added_map);
    smap_free(&tk->special_set);
    free(tk->added_by_id);
    matcher *ms[2] = {&tk->raw_m, &tk->norm_m};
    for (int mi = 0; mi < 2; mi++) {
        for (int k = 0; k < ms[mi]->n; k++) free(ms[mi]->p[k].pat);
        free(ms[mi]->p);
        for (int b = 0; b < 256; b++) free(ms[mi]->by_byte[b]);
    }
    for (int k = 0; k < tk->n_norm; k++) free(tk->norm[k].a), free(tk->norm[k].b);
    free(tk->norm);
    free(tk->pre);
    for (int k = 0; k < tk->n_dec; k++) free(tk->dec[k].a), free(tk->dec[k].b);
    free(tk->dec);
    free(tk->tpl_pre);
    free(tk->tpl_suf);
    pthread_mutex_destroy(&tk->cache_mu);
    smap_free(&tk->cache);
    free(tk->cache_ids);
    free(tk);
}

// ---- lookups -------------------------------------------------------------------------------

int32_t et_tokenizer_token_to_id(const et_tokenizer *tk, const char *tok, size_t len) {
    int32_t id;
    if (smap_get(&tk->added_map, tok, len, &id)) return id;
    if (smap_get(&tk->vocab, tok, len, &id)) return id;
    return -1;
}

const char *et_tokenizer_id_to_token(const et_tokenizer *tk, int32_t id, size_t *len) {
    if (id < 0 || id >= tk->n_ids) return NULL;
    int32_t k = tk->added_by_id[id];
    if (k >= 0) {
        if (len) *len = tk->added[k].len;
        return tk->added[k].content;
    }
    if (!tk->id_tok[id]) return NULL;
    if (len) *len = tk->id_len[id];
    return tk->id_tok[id];
}

bool et_tokenizer_is_special(const et_tokenizer *tk, int32_t id) {
    size_t n;
    const char *s = et_tokenizer_id_to_token(tk, id, &n);
    return s && smap_get(&tk->special_set, s, n, NULL);
}

int32_t et_tokenizer_bos_id(const et_tokenizer *tk) { return tk->bos; }
int32_t et_tokenizer_eos_id(const et_tokenizer *tk) { return tk->eos; }
int32_t et_tokenizer_unk_id(const et_tokenizer *tk) { return tk->unk_id; }
int32_t et_tokenizer_vocab_size(const et_tokenizer *tk) {
    int32_t n = tk->n_ids;
    while (n > 0 && !et_tokenizer_id_to_token(tk, n - 1, NULL)) n--;
    return n;
}
void et_tokenizer_set_bos_eos(et_tokenizer *tk, int32_t bos, int32_t eos) {
    tk->bos = bos;
    tk->eos = eos;
}

// ---- normalizer ----------------------------------------------------------------------------

static void replace_all(const char *s, size_t n, const char *a, size_t al, const char *b, size_t bl,
                        sbuf *out) {
    size_t i = 0;
    while (i < n) {
        if (i + al <= n && memcmp(s + i, a, al) == 0) {
            sb_add(out, b, bl);
            i += al;
        } else {
            sb_addc(out, s[i]);
            i++;
        }
    }
}

// out = normalize(s). out->len may be 0.
static void norm_apply(const et_tokenizer *tk, const char *s, size_t n, sbuf *out) {
    out->len = 0;
    sb_add(out, s, n);
    sbuf tmp = {0};
    for (int k = 0; k < tk->n_norm; k++) {
        const norm_op *op = &tk->norm[k];
        tmp.len = 0;
        if (op->kind == NORM_PREPEND) {
            if (out->len == 0) continue;
            sb_add(&tmp, op->a, op->alen);
            sb_add(&tmp, out->p, out->len);
        } else {
            replace_all(out->p, out->len, op->a, op->alen, op->b, op->blen, &tmp);
        }
        sbuf t = *out;
        *out = tmp;
        tmp = t;
    }
    free(tmp.p);
}

// ---- added-token splitting -----------------------------------------------------------------

typedef struct {
    size_t start, end;
    int32_t id;  // -1: text
} seg;
typedef struct {
    seg *s;
    size_t n, cap;
} segs;
static void segs_push(segs *v, size_t a, size_t b, int32_t id) {
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 16;
        v->s = xrealloc(v->s, v->cap * sizeof(seg));
    }
    v->s[v->n++] = (seg){a, b, id};
}

// HF AddedVocabulary::find_matches: leftmost-longest matches, filtered by single_word, widened
// by lstrip/rstrip. Segments cover [0, n) (text segments may be empty only if n == 0).
static void find_matches(const et_tokenizer *tk, const matcher *m, const char *s, size_t n,
                         segs *out) {
    out->n = 0;
    size_t start_offset = 0, i = 0;
    while (m->n && i < n) {
        uint8_t b0 = (uint8_t)s[i];
        int best = -1;
        size_t best_len = 0;
        for (int k = 0; k < m->n_by_byte[b0]; k++) {
            const added_pat *p = &m->p[m->by_byte[b0][k]];
            if (p->len > best_len && p->len <= n - i && memcmp(s + i, p->pat, p->len) == 0) {
                best = m->by_byte[b0][k];
                best_len = p->len;
            }
        }
        if (best < 0) {
            i++;
            continue;
        }
        size_t start = i, stop = i + best_len;
        i = stop;
        int32_t id = m->p[best].id;
        const added_tok *t = &tk->added[tk->added_by_id[id]];
        if (t->single_word) {
            uint32_t cp;
            bool start_space = true, stop_space = true;
            if (start > 0) {
                utf8_next(s, n, utf8_prev(s, start), &cp);
                start_space = !uc_word(cp);
            }
            if (stop < n) {
                utf8_next(s, n, stop, &cp);
                stop_space = !uc_word(cp);
            }
            if (!start_space || !stop_space) continue;
        }
        if (t->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                uint32_t cp;
                size_t p = utf8_prev(s, ns);
                utf8_next(s, n, p, &cp);
                if (!uc_space(cp)) break;
                ns = p;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (t->rstrip) {
            while (stop < n) {
                uint32_t cp;
                size_t q = utf8_next(s, n, stop, &cp);
                if (!uc_space(cp)) break;
                stop = q;
            }
            i = stop;
        }
        if (start > start_offset) segs_push(out, start_offset, start, -1);
        segs_push(out, start, stop, id);
        start_offset = stop;
    }
    if (start_offset != n || n == 0) segs_push(out, start_offset, n, -1);
}

// ---- LLaMA-3 pre-tokenizer regex -----------------------------------------------------------

static bool is_crlf(uint32_t c) { return c == '\r' || c == '\n'; }

// End of the match of the LLaMA-3 pattern starting at s[i] (alternatives tried in order, as a
// backtracking engine does); i < n. Never returns i (the pattern matches any character).
static size_t llama3_match(const char *s, size_t n, size_t i) {
    uint32_t c0, c1, c2;
    size_t j = utf8_next(s, n, i, &c0);
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)   (U+017F LONG S case-folds to s)
    if (c0 == '\'' && j < n) {
        size_t k = utf8_next(s, n, j, &c1);
        uint32_t l1 = c1 < 0x80 ? (c1 | 0x20) : c1;
        if (l1 == 's' || c1 == 0x17F || l1 == 't' || l1 == 'm' || l1 == 'd') return k;
        if (k < n && (l1 == 'r' || l1 == 'v' || l1 == 'l')) {
            size_t k2 = utf8_next(s, n, k, &c2);
            uint32_t l2 = c2 < 0x80 ? (c2 | 0x20) : c2;
            if ((l1 == 'l' && l2 == 'l') || (l1 != 'l' && l2 == 'e')) return k2;
        }
    }
    bool L0 = uc_letter(c0), N0 = uc_number(c0), S0 = uc_space(c0);
    // [^\r\n\p{L}\p{N}]?\p{L}+
    size_t st = (size_t)-1;
    if (!is_crlf(c0) && !L0 && !N0 && j < n) {
        size_t k = utf8_next(s, n, j, &c1);
        if (uc_letter(c1)) st = k;
    }
    if (st == (size_t)-1 && L0) st = j;
    if (st != (size_t)-1) {
        while (st < n) {
            size_t k = utf8_next(s, n, st, &c1);
            if (!uc_letter(c1)) break;
            st = k;
        }
        return st;
    }
    // \p{N}{1,3}
    if (N0) {
        size_t e = j;
        for (int r = 1; r < 3 && e < n; r++) {
            size_t k = utf8_next(s, n, e, &c1);
            if (!uc_number(c1)) break;
            e = k;
        }
        return e;
    }
    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    {
        size_t k = c0 == ' ' ? j : i, e = k;
        while (e < n) {
            size_t q = utf8_next(s, n, e, &c1);
            if (uc_space(c1) || uc_letter(c1) || uc_number(c1)) break;
            e = q;
        }
        if (e > k) {
            while (e < n && (s[e] == '\r' || s[e] == '\n')) e++;
            return e;
        }
    }
    if (!S0) return j;  // unreachable: every non-space char matched above
    // whitespace run [i, e) and the start of its last character / last \r\n
    size_t e = i, last = i, crlf_end = 0;
    while (e < n) {
        size_t q = utf8_next(s, n, e, &c1);
        if (!uc_space(c1)) break;
        if (is_crlf(c1)) crlf_end = q;
        last = e;
        e = q;
    }
    // \s*[\r\n]+
    if (crlf_end) return crlf_end;
    // \s+(?!\S)
    if (e == n) return e;
    if (last > i) return last;
    // \s+
    return e;
}

size_t et_tokenizer_llama3_match(const char *s, size_t n, size_t i) {
    return llama3_match(s, n, i);
}

// ---- BPE -----------------------------------------------------------------------------------

typedef struct {
    int32_t id;
    int32_t prev, next;
    uint32_t len;  // bytes; 0 = merged away
} sym;

typedef struct {
    uint32_t rank, pos;
    int32_t new_id;
} hitem;

static bool h_less(hitem a, hitem b) {
    return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static void h_push(hitem *h, size_t *n, hitem x) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!h_less(x, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}
static hitem h_pop(hitem *h, size_t *n) {
    hitem top = h[0], x = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        hitem best = x;
        if (l < *n && h_less(h[l], best)) m = l, best = h[l];
        if (r < *n && h_less(h[r], best)) m = r;
        if (m == i) break;
        h[i] = h[m];
        i = m;
    }
    if (*n) h[i] = x;
    return top;
}

static void sym_add(sym **v, size_t *n, size_t *cap, int32_t id, uint32_t len) {
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 32;
        *v = xrealloc(*v, *cap * sizeof(sym));
    }
    (*v)[*n] = (sym){id, (int32_t)*n - 1, (int32_t)*n + 1, len};
    (*n)++;
}

// HF BPE::merge_word + Word::merge_all. Appends the ids to out.
static void bpe_word(const et_tokenizer *tk, const char *w, size_t n, et_ids *out) {
    sym *sy = NULL;
    size_t ns = 0, cap = 0;
    int32_t unk_pending = -1;
    uint32_t unk_len = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t e = utf8_next(w, n, i, &cp);
        int32_t id;
        if (smap_get(&tk->vocab, w + i, e - i, &id)) {
            if (unk_pending >= 0) {
                sym_add(&sy, &ns, &cap, unk_pending, unk_len);
                unk_pending = -1;
            }
            sym_add(&sy, &ns, &cap, id, (uint32_t)(e - i));
        } else {
            bool done = false;
            if (tk->byte_fallback) {
                bool all = true;
                for (size_t k = i; k < e; k++) all = all && tk->byte_ids[(uint8_t)w[k]] >= 0;
                if (all) {
                    for (size_t k = i; k < e; k++)
                        sym_add(&sy, &ns, &cap, tk->byte_ids[(uint8_t)w[k]], 1);
                    done = true;
                }
            }
            if (!done && tk->unk_id >= 0) {
                if (unk_pending >= 0 && tk->fuse_unk) {
                    unk_len += (uint32_t)(e - i);
                } else {
                    if (unk_pending >= 0) sym_add(&sy, &ns, &cap, unk_pending, unk_len);
                    unk_pending = tk->unk_id;
                    unk_len = (uint32_t)(e - i);
                }
            }
        }
        i = e;
    }
    if (unk_pending >= 0) sym_add(&sy, &ns, &cap, unk_pending, unk_len);
    if (ns) sy[ns - 1].next = -1;

    hitem *heap = xmalloc((ns + 1) * 2 * sizeof(hitem) + sizeof(hitem));
    size_t hn = 0, hcap = (ns + 1) * 2 + 1;
    for (size_t i = 0; i + 1 < ns; i++) {
        const pmap_slot *m = pmap_get(&tk->merges, pair_key(sy[i].id, sy[i + 1].id));
        if (m) h_push(heap, &hn, (hitem){m->rank, (uint32_t)i, m->new_id});
    }
    while (hn) {
        hitem top = h_pop(heap, &hn);
        sym *cur = &sy[top.pos];
        if (cur->len == 0 || cur->next < 0) continue;
        sym right = sy[cur->next];
        const pmap_slot *m = pmap_get(&tk->merges, pair_key(cur->id, right.id));
        if (!m || m->new_id != top.new_id) continue;
        int32_t rpos = cur->next;
        cur->id = top.new_id;
        cur->len += right.len;
        cur->next = right.next;
        sy[rpos].len = 0;
        if (right.next >= 0) sy[right.next].prev = (int32_t)top.pos;
        if (hn + 2 > hcap) {
            hcap *= 2;
            heap = xrealloc(heap, hcap * sizeof(hitem));
        }
        if (cur->prev >= 0) {
            m = pmap_get(&tk->merges, pair_key(sy[cur->prev].id, cur->id));
            if (m) h_push(heap, &hn, (hitem){m->rank, (uint32_t)cur->prev, m->new_id});
        }
        if (cur->next >= 0) {
            m = pmap_get(&tk->merges, pair_key(cur->id, sy[cur->next].id));
            if (m) h_push(heap, &hn, (hitem){m->rank, top.pos, m->new_id});
        }
    }
    free(heap);
    for (size_t i = 0; i < ns; i++)
        if (sy[i].len) et_ids_push(out, sy[i].id);
    free(sy);
}

static void model_tokenize(const et_tokenizer *tk_c, const char *w, size_t n, et_ids *out) {
    et_tokenizer *tk = (et_tokenizer *)tk_c;  // only the cache (under its mutex) is mutated
    if (n == 0) return;
    int32_t id;
    if (tk->ignore_merges && smap_get(&tk->vocab, w, n, &id)) {
        et_ids_push(out, id);
        return;
    }
    bool cacheable = n <= CACHE_MAX_WORD;
    if (cacheable) {
        pthread_mutex_lock(&tk->cache_mu);
        int32_t off;
        if (smap_get(&tk->cache, w, n, &off)) {
            int32_t cnt = tk->cache_ids[off];
            for (int32_t k = 0; k < cnt; k++) et_ids_push(out, tk->cache_ids[off + 1 + k]);
            pthread_mutex_unlock(&tk->cache_mu);
            return;
        }
        pthread_mutex_unlock(&tk->cache_mu);
    }
    size_t before = out->len;
    bpe_word(tk, w, n, out);
    if (cacheable) {
        pthread_mutex_lock(&tk->cache_mu);
        size_t cnt = out->len - before;
        if (tk->cache.n < CACHE_MAX_ENTRIES && !smap_get(&tk->cache, w, n, NULL)) {
            if (tk->cache_ids_len + cnt + 1 > tk->cache_ids_cap) {
                size_t c = tk->cache_ids_cap ? tk->cache_ids_cap : 4096;
                while (c < tk->cache_ids_len + cnt + 1) c *= 2;
                tk->cache_ids = xrealloc(tk->cache_ids, c * sizeof(int32_t));
                tk->cache_ids_cap = c;
            }
            int32_t off = (int32_t)tk->cache_ids_len;
            tk->cache_ids[tk->cache_ids_len++] = (int32_t)cnt;
            if (cnt)
                memcpy(tk->cache_ids + tk->cache_ids_len, out->data + before,
                       cnt * sizeof(int32_t));
            tk->cache_ids_len += cnt;
            smap_put(&tk->cache, w, n, off);
        }
        pthread_mutex_unlock(&tk->cache_mu);
    }
}

// ---- pre-tokenizers ------------------------------------------------------------------------

// Apply pre-tokenizer step k.. to the piece s[0, n) and BPE the resulting words.
static void pretok(const et_tokenizer *tk, int k, const char *s, size_t n, bool at_start,
                   et_ids *out) {
    if (n == 0) return;
    if (k == tk->n_pre) {
        model_tokenize(tk, s, n, out);
        return;
    }
    const pre_op *op = &tk->pre[k];
    sbuf b = {0};
    if (op->kind == PRE_METASPACE) {
        sbuf r = {0};
        replace_all(s, n, " ", 1, op->repl, op->repl_len, &r);
        bool starts = r.len >= op->repl_len && memcmp(r.p, op->repl, op->repl_len) == 0;
        if (!starts && (op->scheme == SCHEME_ALWAYS || (op->scheme == SCHEME_FIRST && at_start)))
            sb_add(&b, op->repl, op->repl_len);
        sb_add(&b, r.p, r.len);
        free(r.p);
        if (!op->split) {
            pretok(tk, k + 1, b.p, b.len, at_start, out);
        } else {
            // MergedWithNext: each replacement char starts a new piece
            size_t st = 0;
            for (size_t i = 0; i < b.len;) {
                if (i > st && i + op->repl_len <= b.len &&
                    !memcmp(b.p + i, op->repl, op->repl_len)) {
                    pretok(tk, k + 1, b.p + st, i - st, at_start && st == 0, out);
                    st = i;
                }
                i += (i + op->repl_len <= b.len && !memcmp(b.p + i, op->repl, op->repl_len))
                         ? op->repl_len
                         : 1;
            }
            pretok(tk, k + 1, b.p + st, b.len - st, at_start && st == 0, out);
        }
    } else if (op->kind == PRE_SPLIT_LLAMA3) {
        for (size_t i = 0; i < n;) {
            size_t e = llama3_match(s, n, i);
            pretok(tk, k + 1, s + i, e - i, at_start && i == 0, out);
            i = e;
        }
    } else {  // PRE_BYTELEVEL
        if (op->add_prefix_space && s[0] != ' ') sb_add(&b, tk->bl_enc[' '], tk->bl_len[' ']);
        for (size_t i = 0; i < n; i++)
            sb_add(&b, tk->bl_enc[(uint8_t)s[i]], tk->bl_len[(uint8_t)s[i]]);
        pretok(tk, k + 1, b.p, b.len, at_start, out);
    }
    free(b.p);
}

// ---- encode --------------------------------------------------------------------------------

void et_tokenizer_encode(const et_tokenizer *tk, const char *text, size_t len, unsigned flags,
                         et_ids *out) {
    sbuf fixed = {0};
    if (!utf8_valid(text, len)) {
        utf8_lossy(&fixed, text, len);
        text = fixed.p;
        len = fixed.len;
    }
    if (flags & ET_TOK_TEMPLATE)
        for (int k = 0; k < tk->n_tpl_pre; k++) et_ids_push(out, tk->tpl_pre[k]);
    if ((flags & ET_TOK_ADD_BOS) && tk->bos >= 0) et_ids_push(out, tk->bos);
    segs raw = {0}, nsg = {0};
    sbuf norm = {0};
    find_matches(tk, &tk->raw_m, text, len, &raw);
    for (size_t a = 0; a < raw.n; a++) {
        seg sa = raw.s[a];
        if (sa.id >= 0) {
            et_ids_push(out, sa.id);
            continue;
        }
        if (sa.end == sa.start) continue;
        norm_apply(tk, text + sa.start, sa.end - sa.start, &norm);
        if (norm.len == 0) continue;
        find_matches(tk, &tk->norm_m, norm.p, norm.len, &nsg);
        for (size_t b = 0; b < nsg.n; b++) {
            seg sb = nsg.s[b];
            if (sb.id >= 0)
                et_ids_push(out, sb.id);
            else
                pretok(tk, 0, norm.p + sb.start, sb.end - sb.start, sa.start == 0 && sb.start == 0,
                       out);
        }
    }
    if ((flags & ET_TOK_ADD_EOS) && tk->eos >= 0) et_ids_push(out, tk->eos);
    if (flags & ET_TOK_TEMPLATE)
        for (int k = 0; k < tk->n_tpl_suf; k++) et_ids_push(out, tk->tpl_suf[k]);
    free(raw.s);
    free(nsg.s);
    free(norm.p);
    free(fixed.p);
}

// ---- decode --------------------------------------------------------------------------------

typedef struct {
    sbuf *t;
    size_t n, cap;
} toklist;

static void tl_push(toklist *l, const char *s, size_t n) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->t = xrealloc(l->t, l->cap * sizeof(sbuf));
    }
    sbuf b = {0};
    sb_add(&b, s, n);
    l->t[l->n++] = b;
}
static void tl_free(toklist *l) {
    for (size_t i = 0; i < l->n; i++) free(l->t[i].p);
    free(l->t);
    memset(l, 0, sizeof(*l));
}

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

// Rust u8::from_str_radix(tok[3..5], 16) on a "<0x??>" token: -1 if not a byte token.
static int byte_token(const sbuf *t) {
    if (t->len != 6 || memcmp(t->p, "<0x", 3) != 0 || t->p[5] != '>') return -1;
    int h = hexval(t->p[3]), l = hexval(t->p[4]);
    if (t->p[3] == '+' && l >= 0) return l;
    if (h < 0 || l < 0) return -1;
    return h * 16 + l;
}

static void flush_bytes(toklist *nl, sbuf *bytes) {
    if (!bytes->len) return;
    if (utf8_valid(bytes->p, bytes->len)) {
        tl_push(nl, bytes->p, bytes->len);
    } else {
        for (size_t i = 0; i < bytes->len; i++) tl_push(nl, "\xEF\xBF\xBD", 3);
    }
    bytes->len = 0;
}

static void dec_apply(const et_tokenizer *tk, const dec_op *op, toklist *l) {
    toklist nl = {0};
    sbuf acc = {0};
    switch (op->kind) {
        case DEC_REPLACE:
            for (size_t i = 0; i < l->n; i++) {
                acc.len = 0;
                replace_all(l->t[i].p, l->t[i].len, op->a, op->alen, op->b, op->blen, &acc);
                tl_push(&nl, acc.p ? acc.p : "", acc.len);
            }
            break;
        case DEC_BYTEFALLBACK:
            for (size_t i = 0; i < l->n; i++) {
                int b = byte_token(&l->t[i]);
                if (b >= 0) {
                    sb_addc(&acc, (char)b);
                } else {
                    flush_bytes(&nl, &acc);
                    tl_push(&nl, l->t[i].p, l->t[i].len);
                }
            }
            flush_bytes(&nl, &acc);
            break;
        case DEC_FUSE:
            sb_add(&acc, "", 0);
            for (size_t i = 0; i < l->n; i++) sb_add(&acc, l->t[i].p, l->t[i].len);
            tl_push(&nl, acc.p, acc.len);
            break;
        case DEC_STRIP:
            for (size_t i = 0; i < l->n; i++) {
                const char *s = l->t[i].p;
                size_t n = l->t[i].len, a = 0, e = n;
                for (int k = 0; k < op->start && a < n; k++) {
                    uint32_t cp;
                    size_t q = utf8_next(s, n, a, &cp);
                    if (cp != op->strip_cp) break;
                    a = q;
                }
                for (int k = 0; k < op->stop && e > a; k++) {
                    uint32_t cp;
                    size_t p = utf8_prev(s, e);
                    utf8_next(s, n, p, &cp);
                    if (cp != op->strip_cp) break;
                    e = p;
                }
                tl_push(&nl, s + a, e - a);
            }
            break;
        case DEC_BYTELEVEL:
            sb_add(&acc, "", 0);
            for (size_t i = 0; i < l->n; i++) {
                const char *s = l->t[i].p;
                size_t n = l->t[i].len, mark = acc.len;
                bool ok = true;
                for (size_t j = 0; j < n;) {
                    uint32_t cp;
                    j = utf8_next(s, n, j, &cp);
                    if (cp >= 0x144 || tk->bl_dec[cp] < 0) {
                        ok = false;
                        break;
                    }
                    sb_addc(&acc, (char)tk->bl_dec[cp]);
                }
                if (!ok) {
                    acc.len = mark;
                    sb_add(&acc, s, n);
                }
            }
            {
                sbuf fixed = {0};
                sb_add(&fixed, "", 0);
                utf8_lossy(&fixed, acc.p, acc.len);
                tl_push(&nl, fixed.p, fixed.len);
                free(fixed.p);
            }
            break;
        case DEC_METASPACE:
            for (size_t i = 0; i < l->n; i++) {
                acc.len = 0;
                sb_add(&acc, "", 0);
                const char *s = l->t[i].p;
                size_t n = l->t[i].len;
                for (size_t j = 0; j < n;) {
                    if (j + op->alen <= n && !memcmp(s + j, op->a, op->alen)) {
                        if (!(i == 0 && op->scheme != SCHEME_NEVER)) sb_addc(&acc, ' ');
                        j += op->alen;
                    } else {
                        sb_addc(&acc, s[j++]);
                    }
                }
                tl_push(&nl, acc.p, acc.len);
            }
            break;
    }
    free(acc.p);
    tl_free(l);
    *l = nl;
}

char *et_tokenizer_decode(const et_tokenizer *tk, const int32_t *ids, size_t n, bool skip_special,
                          size_t *out_len) {
    toklist l = {0};
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *s = et_tokenizer_id_to_token(tk, ids[i], &len);
        if (!s) continue;
        if (skip_special && smap_get(&tk->special_set, s, len, NULL)) continue;
        tl_push(&l, s, len);
    }
    for (int k = 0; k < tk->n_dec; k++) dec_apply(tk, &tk->dec[k], &l);
    sbuf out = {0};
    sb_add(&out, "", 0);
    for (size_t i = 0; i < l.n; i++) {
        if (!tk->has_decoder && i > 0) sb_addc(&out, ' ');
        sb_add(&out, l.t[i].p, l.t[i].len);
    }
    tl_free(&l);
    if (out_len) *out_len = out.len;
    return out.p;
}
