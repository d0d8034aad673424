// train/eval/metrics.c - EmoLA's answer parsing, ROUGE-L (rouge 1.0.1), WAR/UAR/F1/REGE, the
// evaluation accumulator, metrics JSON and the confusion-matrix PNG. See train/eval/metrics.h.
#include "metrics.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "data/unicode_tables.h"
#include "plot.h"

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    ET_ASSERT(p, "metrics: out of memory allocating %zu bytes", n);
    return p;
}
static void *xcalloc(size_t n, size_t sz) {
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    ET_ASSERT(p, "metrics: out of memory");
    return p;
}

// ---- characters (Python re on str) ---------------------------------------------------------

#define CP_INVALID 0x110000u  // a byte that is not valid UTF-8: no class at all

// Decode the code point at s[*i] (n bytes in all) and advance *i.
static uint32_t utf8_next(const unsigned char *s, size_t n, size_t *i) {
    size_t k = *i;
    unsigned c = s[k];
    if (c < 0x80) {
        *i = k + 1;
        return c;
    }
    int len;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        *i = k + 1;
        return CP_INVALID;
    }
    if (k + (size_t)len > n) {
        *i = k + 1;
        return CP_INVALID;
    }
    for (int j = 1; j < len; j++) {
        unsigned d = s[k + j];
        if ((d & 0xC0) != 0x80) {
            *i = k + 1;
            return CP_INVALID;
        }
        cp = (cp << 6) | (d & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        *i = k + 1;
        return CP_INVALID;
    }
    *i = k + (size_t)len;
    return cp;
}

// Python's str.isspace() (= re \s on str), Unicode 14.
static bool py_space(uint32_t c) {
    if (c <= 0x20) return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
    if (c < 0x85) return false;
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
           c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// Python's re \w on str: str.isalnum() or '_' (= general category L or N, checked over all
// code points for Unicode 14).
static bool py_word(uint32_t c) {
    if (c < 0x80)
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               c == '_';
    if (c >= CP_INVALID) return false;
    return et_uc_in(et_uc_letter, et_uc_letter_len, c) ||
           et_uc_in(et_uc_number, et_uc_number_len, c);
}

// Python's re \d on str: general category Nd, which Unicode lays out as blocks of ten
// consecutive digits 0..9; these are the code points of the zeros (Unicode 14).
static const uint32_t nd_zero[] = {
    0x30,    0x660,   0x6f0,   0x7c0,   0x966,   0x9e6,   0xa66,   0xae6,   0xb66,   0xbe6,
    0xc66,   0xce6,   0xd66,   0xde6,   0xe50,   0xed0,   0xf20,   0x1040,  0x1090,  0x17e0,
    0x1810,  0x1946,  0x19d0,  0x1a80,  0x1a90,  0x1b50,  0x1bb0,  0x1c40,  0x1c50,  0xa620,
    0xa8d0,  0xa900,  0xa9d0,  0xa9f0,  0xaa50,  0xabf0,  0xff10,  0x104a0, 0x10d30, 0x11066,
    0x110f0, 0x11136, 0x111d0, 0x112f0, 0x11450, 0x114d0, 0x11650, 0x116c0, 0x11730, 0x118e0,
    0x11950, 0x11c50, 0x11d50, 0x11da0, 0x16a60, 0x16ac0, 0x16b50, 0x1d7ce, 0x1d7d8, 0x1d7e2,
    0x1d7ec, 0x1d7f6, 0x1e140, 0x1e2f0, 0x1e950, 0x1fbf0};
static bool py_digit(uint32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    for (size_t i = 1; i < sizeof nd_zero / sizeof nd_zero[0]; i++)
        if (c >= nd_zero[i] && c < nd_zero[i] + 10) return true;
    return false;
}

// ---- EmoLA's emotion rule ------------------------------------------------------------------

const char *const et_emola_emotion_names[ET_EMOLA_NUM_EMOTIONS] = {
    "Happiness", "Sadness", "Surprise", "Anger", "Neutral", "Disgust", "Fear"};

// EmoLA's keyword lists (emotion_list), indexed by class id.
static const char *const emola_words[ET_EMOLA_NUM_EMOTIONS][21] = {
    {"happiness",  "happy",      "smiling",     "smile",
     "pleasant",   "content",    "contentment", "relaxed",
     "relaxation", "cheerful",   "joy",         "amusement",
     "amused",     "positivity", "positive",    "lightheartedness",
     "joyful",     "friendly",   "warmth",      "bright",
     NULL},
    {"sadness", "crying", "distress", "concern", "discomfort", "anguish", "somber", NULL},
    {"surprise", "surprised", "startled", "puzzled", "astonishment", "disbelief", "wonder",
     "curiosity", "curious", "confusion", "bewilderment", "skepticism", "excitement", "uncertainty",
     NULL},
    {"anger", "mad", "irate", "outraged", "agitation", "irritated", "enraged", "annoyed",
     "incensed", "serious", "frustration", "displeased", "stern", NULL},
    {"neutral", "neutrality", "calm", "contemplative", "concerned", "thoughtful", "focused",
     "solemn", "mild", NULL},
    {"disgust", "distaste", "disgusted", "discomfort", "displeasure", "displeased", "disapproval",
     "disdain", "contempt", NULL},
    {"fear", "shock", "anxiety", "apprehension", "tension", "panic", "alertness", "focus", "worry",
     "alarm", "curiosity", "contemplation", NULL},
};

// remove_neg_sentences' negative words, tested as substrings of the lower-cased sentence.
static const char *const negative_words[] = {"not",   "no",        "isn't ",  "nothing", "cannot",
                                             "won't", "shouldn't", "neither", "nor"};

// Bit k set: the lower-case ASCII word w is in class k's list.
static unsigned word_classes(const char *w) {
    unsigned m = 0;
    for (int k = 0; k < ET_EMOLA_NUM_EMOTIONS; k++)
        for (int j = 0; emola_words[k][j]; j++)
            if (strcmp(emola_words[k][j], w) == 0) m |= 1u << k;
    return m;
}

// Does s[0..n) lower-cased contain a negative word? Only ASCII letters change under
// str.lower() in a way that can matter: the only non-ASCII characters whose lower case holds
// ASCII are U+212A ('k', in no negative word) and U+0130 ('i' + U+0307; no negative word has
// an 'i' that ends it or is followed by U+0307).
static bool has_negative_word(const char *s, size_t n) {
    for (size_t w = 0; w < sizeof negative_words / sizeof negative_words[0]; w++) {
        const char *nw = negative_words[w];
        size_t L = strlen(nw);
        for (size_t i = 0; i + L <= n; i++) {
            size_t j = 0;
            while (j < L) {
                char c = s[i + j];
                if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
                if (c != nw[j]) break;
                j++;
            }
            if (j == L) return true;
        }
    }
    return false;
}

typedef struct {
    uint32_t *cp;  // (n) code points
    size_t *off;   // (n + 1) byte offset of each code point, off[n] = byte length
    size_t n;
} cp_text;

static cp_text decode(const char *s, size_t len) {
    cp_text t = {xmalloc((len + 1) * sizeof(uint32_t)), xmalloc((len + 1) * sizeof(size_t)), 0};
    size_t i = 0;
    while (i < len) {
        t.off[t.n] = i;
        t.cp[t.n++] = utf8_next((const unsigned char *)s, len, &i);
    }
    t.off[t.n] = len;
    return t;
}
static void cp_text_free(cp_text *t) {
    free(t->cp);
    free(t->off);
}

// remove_neg_sentences: re.split(r'(?<!\w\.\w.)(?<![A-Z][a-z]\.)(?<=\.|\?)\s', text), drop
// the sentences with a negative word, join the rest with " ". Writes into out (>= len + 1
// bytes: each split removed at least one byte and the join adds one) and returns the length.
static size_t remove_neg_sentences(const char *text, size_t len, char *out) {
    cp_text t = decode(text, len);
    size_t n_out = 0, start = 0;
    bool first_kept = true;
    for (size_t p = 0; p <= t.n; p++) {
        bool split = false;
        if (p < t.n && py_space(t.cp[p]) && p >= 1 && (t.cp[p - 1] == '.' || t.cp[p - 1] == '?')) {
            split = true;
            if (p >= 4 && py_word(t.cp[p - 4]) && t.cp[p - 3] == '.' && py_word(t.cp[p - 2]))
                split = false;  // (?<!\w\.\w.): the last '.' is '.' or '?', never '\n'
            if (p >= 3 && t.cp[p - 3] >= 'A' && t.cp[p - 3] <= 'Z' && t.cp[p - 2] >= 'a' &&
                t.cp[p - 2] <= 'z' && t.cp[p - 1] == '.')
                split = false;
        }
        if (!split && p < t.n) continue;
        size_t end = t.off[p];
        if (!has_negative_word(text + start, end - start)) {
            if (!first_kept) out[n_out++] = ' ';
            memcpy(out + n_out, text + start, end - start);
            n_out += end - start;
            first_kept = false;
        }
        if (p < t.n) start = t.off[p + 1];
    }
    out[n_out] = '\0';
    cp_text_free(&t);
    return n_out;
}

// Iterate the words of re.findall(r'\b\w+\b', s.lower()) over s[0..n): calls fn with each
// word that is all ASCII after lower-casing (the only ones that can be in a list), at most
// 31 characters (longer ones are in no list). Returns early when fn returns true.
typedef bool (*word_fn)(const char *w, void *ctx);
static bool for_each_word(const char *s, size_t n, word_fn fn, void *ctx) {
    char w[32];
    size_t wl = 0;
    bool in_word = false, ascii = true;
    size_t i = 0;
    while (i <= n) {
        uint32_t c = 0;
        bool word = false;
        uint32_t lc = 0;  // the lower-case ASCII byte, or 0 for a non-ASCII word character
        bool dotted_i = false;
        if (i < n) {
            c = utf8_next((const unsigned char *)s, n, &i);
            if (c == 0x212A) {  // KELVIN SIGN lowers to 'k'
                word = true, lc = 'k';
            } else if (c == 0x130) {  // lowers to 'i' + U+0307 (a mark, not \w)
                word = true, lc = 'i', dotted_i = true;
            } else {
                word = py_word(c);
                if (word && c < 0x80) lc = (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
            }
        } else {
            i++;
        }
        if (word) {
            if (!in_word) in_word = true, wl = 0, ascii = true;
            if (lc == 0) {
                ascii = false;
            } else if (wl < sizeof w - 1) {
                w[wl++] = (char)lc;
            } else {
                ascii = false;
            }
        }
        if ((!word || dotted_i) && in_word) {
            in_word = false;
            if (ascii) {
                w[wl] = '\0';
                if (fn(w, ctx)) return true;
            }
        }
    }
    return false;
}

typedef struct {
    int found;
    int64_t counts[ET_EMOLA_NUM_EMOTIONS];
} emo_scan;

static bool first_sentence_word(const char *w, void *ctx) {
    unsigned m = word_classes(w);
    if (!m) return false;
    emo_scan *e = ctx;
    for (int k = 0; k < ET_EMOLA_NUM_EMOTIONS; k++)
        if (m & (1u << k)) {
            e->found = k;
            return true;
        }
    return false;
}
static bool count_word(const char *w, void *ctx) {
    unsigned m = word_classes(w);
    emo_scan *e = ctx;
    for (int k = 0; k < ET_EMOLA_NUM_EMOTIONS; k++)
        if (m & (1u << k)) e->counts[k]++;
    return false;
}

int et_emola_emotion(const char *text) {
    ET_ASSERT(text, "et_emola_emotion: text is NULL");
    size_t len = strlen(text);
    char *pos = xmalloc(len + 1);
    size_t plen = remove_neg_sentences(text, len, pos);
    const char *t = pos;
    if (plen == 0) t = text, plen = len;  // "if positive_text == '': positive_text = description"
    // re.match(r'^(.*?)[.!?]'): the first '.', '!' or '?', with no '\n' before it
    // (all ASCII, so a byte scan finds the same place).
    size_t end = 0;
    while (end < plen && t[end] != '.' && t[end] != '!' && t[end] != '?' && t[end] != '\n') end++;
    int result;
    if (end == plen || t[end] == '\n') {
        result = ET_EMOLA_NO_ANSWER;  // EmoLA: AttributeError on None.group(1)
    } else {
        emo_scan e = {.found = -1};
        if (for_each_word(t, end, first_sentence_word, &e)) {
            result = e.found;
        } else {
            for_each_word(t + end + 1, plen - end - 1, count_word, &e);
            result = 0;  // max() keeps the first of equal counts, in class order
            for (int k = 1; k < ET_EMOLA_NUM_EMOTIONS; k++)
                if (e.counts[k] > e.counts[result]) result = k;
        }
    }
    free(pos);
    return result;
}

// ---- AUs ------------------------------------------------------------------------------------

int et_emola_aus(const char *text, int *out, int max) {
    ET_ASSERT(text && (out || max == 0), "et_emola_aus: NULL argument");
    const unsigned char *s = (const unsigned char *)text;
    size_t n = strlen(text);
    int count = 0;
    uint8_t seen[10000 / 8 + 1] = {0};  // AU numbers already returned (at most 4 digits)
    size_t i = 0;
    while (i < n) {
        if (!(s[i] == 'A' && i + 1 < n && s[i + 1] == 'U')) {
            i++;
            continue;
        }
        // AU(\d+): a greedy run of Unicode decimal digits
        size_t j = i + 2, dstart = j;
        bool ascii = true;
        int ndig = 0;
        while (j < n) {
            size_t k = j;
            uint32_t c = utf8_next(s, n, &k);
            if (!py_digit(c)) break;
            if (c >= 0x80) ascii = false;
            ndig++;
            j = k;
        }
        if (ndig == 0) {
            i++;
            continue;
        }
        // EmoLA looks the digit string up as str(AU): only canonical ASCII numbers can match
        if (ascii && ndig <= 4 && !(ndig > 1 && s[dstart] == '0')) {
            int v = 0;
            for (size_t k = dstart; k < j; k++) v = v * 10 + (s[k] - '0');
            if (!(seen[v >> 3] & (1u << (v & 7)))) {
                seen[v >> 3] |= (uint8_t)(1u << (v & 7));
                if (count < max) out[count] = v;
                count++;
            }
        }
        i = j;
    }
    return count;
}

static const int aus_faba[] = {1, 2, 4, 5, 6, 10, 12, 17, 24, 25, 26, 43};
static const int aus_disfa[] = {1, 2, 4, 6, 9, 12, 25, 26};
static const int aus_bp4d[] = {1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24};
static const int aus_gft[] = {1, 2, 4, 6, 10, 12, 14, 15, 23, 24};
static const int aus_emotionet[] = {1, 2, 4, 5, 6, 9, 12, 17, 20, 25, 26, 43};
static const struct {
    const char *name;
    const int *aus;
    int n;
} au_sets[ET_AUS_COUNT] = {
    {"FABA", aus_faba, 12}, {"DISFA", aus_disfa, 8},          {"BP4D", aus_bp4d, 12},
    {"GFT", aus_gft, 10},   {"EmotioNet", aus_emotionet, 12},
};

int et_au_set_list(et_au_set set, const int **aus) {
    ET_ASSERT(set >= 0 && set < ET_AUS_COUNT, "et_au_set_list: unknown AU set %d", (int)set);
    *aus = au_sets[set].aus;
    return au_sets[set].n;
}

et_status et_au_set_by_name(const char *name, et_au_set *out) {
    for (int k = 0; k < ET_AUS_COUNT; k++)
        if (name && strcasecmp(name, au_sets[k].name) == 0) {
            *out = (et_au_set)k;
            return NULL;
        }
    return et_err(ET_ERR_INVALID,
                  "unknown AU set \"%s\" (expected FABA, DISFA, BP4D, GFT or EmotioNet)",
                  name ? name : "(null)");
}

// ---- ROUGE-L (rouge 1.0.1, exclusive=True) --------------------------------------------------

typedef struct {
    const char *p;
    size_t len;
} tok;

typedef struct {
    tok *toks;  // all tokens, sentence after sentence
    int64_t n;  // tokens
    int64_t cap;
    int64_t *sent;  // (n_sent + 1) start index of each sentence
    int64_t n_sent, sent_cap;
} tok_text;

static void tok_push(tok_text *t, const char *p, size_t len) {
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->toks = realloc(t->toks, (size_t)t->cap * sizeof(tok));
        ET_ASSERT(t->toks, "metrics: out of memory");
    }
    t->toks[t->n++] = (tok){p, len};
}
static void sent_push(tok_text *t) {
    if (t->n_sent + 1 >= t->sent_cap) {
        t->sent_cap = t->sent_cap ? t->sent_cap * 2 : 16;
        t->sent = realloc(t->sent, (size_t)t->sent_cap * sizeof(int64_t));
        ET_ASSERT(t->sent, "metrics: out of memory");
    }
    t->sent[t->n_sent++] = t->n;
}

// [" ".join(s.split()) for s in text.split(".") if len(s) > 0], then each sentence
// .split(" "): a sentence of only whitespace is one empty token.
static tok_text tokenize(const char *text) {
    tok_text t = {0};
    const unsigned char *s = (const unsigned char *)text;
    size_t n = strlen(text), a = 0;
    while (a <= n) {
        size_t b = a;
        while (b < n && s[b] != '.') b++;
        if (b > a) {
            sent_push(&t);
            int64_t before = t.n;
            size_t i = a, wstart = 0;
            bool in = false;
            while (i < b) {
                size_t k = i;
                uint32_t c = utf8_next(s, b, &k);
                if (py_space(c)) {
                    if (in) tok_push(&t, text + wstart, i - wstart);
                    in = false;
                } else if (!in) {
                    in = true, wstart = i;
                }
                i = k;
            }
            if (in) tok_push(&t, text + wstart, b - wstart);
            if (t.n == before) tok_push(&t, text + a, 0);
        }
        a = b + 1;
    }
    if (t.n_sent + 1 > t.sent_cap) {
        t.sent = realloc(t.sent, (size_t)(t.n_sent + 1) * sizeof(int64_t));
        ET_ASSERT(t.sent, "metrics: out of memory");
    }
    t.sent[t.n_sent] = t.n;
    return t;
}
static void tok_text_free(tok_text *t) {
    free(t->toks);
    free(t->sent);
}

static uint64_t tok_hash(tok t) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < t.len; i++) h = (h ^ (unsigned char)t.p[i]) * 1099511628211ull;
    return h;
}

// Give every token an id (equal text, equal id); returns the number of distinct tokens.
static int64_t intern(tok_text *a, tok_text *b, int32_t *ida, int32_t *idb) {
    int64_t total = a->n + b->n;
    size_t cap = 16;
    while (cap < (size_t)total * 2) cap *= 2;
    int32_t *slot = xmalloc(cap * sizeof(int32_t));  // id + 1, 0 = empty
    tok *first = xmalloc((size_t)(total ? total : 1) * sizeof(tok));
    memset(slot, 0, cap * sizeof(int32_t));
    int32_t next = 0;
    for (int side = 0; side < 2; side++) {
        tok_text *t = side ? b : a;
        int32_t *ids = side ? idb : ida;
        for (int64_t i = 0; i < t->n; i++) {
            tok k = t->toks[i];
            size_t h = (size_t)tok_hash(k) & (cap - 1);
            for (;;) {
                if (!slot[h]) {
                    first[next] = k;
                    slot[h] = ++next;
                    ids[i] = next - 1;
                    break;
                }
                tok f = first[slot[h] - 1];
                if (f.len == k.len && memcmp(f.p, k.p, k.len) == 0) {
                    ids[i] = slot[h] - 1;
                    break;
                }
                h = (h + 1) & (cap - 1);
            }
        }
    }
    free(slot);
    free(first);
    return next;
}

#define ROUGE_MAX_CELLS ((int64_t)1 << 28)

et_status et_rouge_l(const char *hyp, const char *ref, et_rouge_l_scores *out) {
    ET_ASSERT(hyp && ref && out, "et_rouge_l: NULL argument");
    memset(out, 0, sizeof *out);
    tok_text th = tokenize(hyp), tr = tokenize(ref);
    if (th.n_sent == 0 || tr.n_sent == 0) {  // "Hypothesis is empty." / "Reference is empty."
        tok_text_free(&th);
        tok_text_free(&tr);
        return NULL;
    }
    int32_t *ih = xmalloc((size_t)th.n * sizeof(int32_t));
    int32_t *ir = xmalloc((size_t)tr.n * sizeof(int32_t));
    int64_t n_ids = intern(&th, &tr, ih, ir);
    uint8_t *seen = xcalloc((size_t)n_ids, 1);  // bit 0: in hyp, bit 1: in ref, bit 2: in LCS
    for (int64_t i = 0; i < th.n; i++) seen[ih[i]] |= 1;
    for (int64_t i = 0; i < tr.n; i++) seen[ir[i]] |= 2;
    int64_t n = 0, m = 0;
    for (int64_t i = 0; i < n_ids; i++) n += seen[i] & 1, m += (seen[i] >> 1) & 1;

    et_status st = NULL;
    int32_t *prev = NULL, *cur = NULL;
    uint8_t *up = NULL;  // (a, b) bits: table[i-1][j] > table[i][j-1] at a mismatch
    size_t up_cap = 0, row_cap = 0;
    // _union_lcs over every reference sentence x and prediction sentence y; _recon_lcs(x, y)
    for (int64_t rs = 0; rs < tr.n_sent && !st; rs++) {
        const int32_t *x = ir + tr.sent[rs];
        int64_t a = tr.sent[rs + 1] - tr.sent[rs];
        for (int64_t hs = 0; hs < th.n_sent; hs++) {
            const int32_t *y = ih + th.sent[hs];
            int64_t b = th.sent[hs + 1] - th.sent[hs];
            if (a * b > ROUGE_MAX_CELLS) {
                st = et_err(ET_ERR_NOMEM,
                            "ROUGE-L: a sentence pair of %lld x %lld words exceeds the LCS "
                            "limit of %lld cells",
                            (long long)a, (long long)b, (long long)ROUGE_MAX_CELLS);
                break;
            }
            size_t bytes = (size_t)((a * b + 7) / 8);
            if (bytes > up_cap) {
                free(up);
                up = xmalloc(bytes);
                up_cap = bytes;
            }
            if ((size_t)b + 1 > row_cap) {
                free(prev);
                free(cur);
                row_cap = (size_t)b + 1;
                prev = xmalloc(row_cap * sizeof(int32_t));
                cur = xmalloc(row_cap * sizeof(int32_t));
            }
            memset(up, 0, bytes);
            for (int64_t j = 0; j <= b; j++) prev[j] = 0;
            for (int64_t i = 1; i <= a; i++) {
                cur[0] = 0;
                for (int64_t j = 1; j <= b; j++) {
                    if (x[i - 1] == y[j - 1]) {
                        cur[j] = prev[j - 1] + 1;
                    } else {
                        if (prev[j] > cur[j - 1]) {
                            int64_t bit = (i - 1) * b + (j - 1);
                            up[bit >> 3] |= (uint8_t)(1u << (bit & 7));
                            cur[j] = prev[j];
                        } else {
                            cur[j] = cur[j - 1];
                        }
                    }
                }
                int32_t *tmp = prev;
                prev = cur, cur = tmp;
            }
            // _recon: diagonal on a match, else up when table[i-1][j] > table[i][j-1]
            int64_t i = a, j = b;
            while (i > 0 && j > 0) {
                if (x[i - 1] == y[j - 1]) {
                    seen[x[i - 1]] |= 4;
                    i--, j--;
                } else {
                    int64_t bit = (i - 1) * b + (j - 1);
                    if (up[bit >> 3] & (1u << (bit & 7)))
                        i--;
                    else
                        j--;
                }
            }
        }
    }
    if (!st) {
        int64_t llcs = 0;
        for (int64_t i = 0; i < n_ids; i++) llcs += (seen[i] >> 2) & 1;
        double r = (double)llcs / (double)m, p = (double)llcs / (double)n;
        out->defined = true;
        out->r = r;
        out->p = p;
        out->f = 2.0 * ((p * r) / (p + r + 1e-8));
        out->hyp_words = n;
        out->ref_words = m;
        out->lcs_words = llcs;
    }
    free(prev);
    free(cur);
    free(up);
    free(seen);
    free(ih);
    free(ir);
    tok_text_free(&th);
    tok_text_free(&tr);
    return st;
}

double et_f1_binary(int64_t tp, int64_t fp, int64_t fn) {
    if (tp == 0) return 0.0;
    double p = (double)tp / (double)(tp + fp), r = (double)tp / (double)(tp + fn);
    return 2 * p * r / (p + r);
}

// ---- labels ---------------------------------------------------------------------------------

static const struct {
    const char *alias, *canon;
} emotion_aliases[] = {
    {"happy", "happiness"}, {"sad", "sadness"},       {"surprised", "surprise"},
    {"angry", "anger"},     {"fearful", "fear"},      {"afraid", "fear"},
    {"scared", "fear"},     {"disgusted", "disgust"}, {"contemptuous", "contempt"},
};

// Lower-cased, trimmed, alias-resolved form of s[0..n) into buf (size cap); false if too long.
static bool canon_name(const char *s, size_t n, char *buf, size_t cap) {
    while (n && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r')) n--;
    if (n + 1 > cap) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        buf[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    buf[n] = '\0';
    for (size_t k = 0; k < sizeof emotion_aliases / sizeof emotion_aliases[0]; k++)
        if (strcmp(buf, emotion_aliases[k].alias) == 0) {
            snprintf(buf, cap, "%s", emotion_aliases[k].canon);
            break;
        }
    return true;
}

et_status et_parse_emotion_label(const char *label, const char *const *names, int n_names,
                                 int *out) {
    if (!names) names = et_emola_emotion_names, n_names = ET_EMOLA_NUM_EMOTIONS;
    ET_ASSERT(out && n_names > 0, "et_parse_emotion_label: no classes");
    if (!label) return et_err(ET_ERR_FORMAT, "emotion label is missing");
    const char *s = label;
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r')) n--;
    if (n == 0) return et_err(ET_ERR_FORMAT, "emotion label is empty");
    size_t d = (s[0] == '+' || s[0] == '-') ? 1 : 0;
    bool numeric = d < n;
    for (size_t i = d; i < n; i++) numeric &= s[i] >= '0' && s[i] <= '9';
    if (numeric) {
        long long v = 0;
        for (size_t i = d; i < n && v < 1000000; i++) v = v * 10 + (s[i] - '0');
        if (s[0] == '-') v = -v;
        if (v < 0 || v >= n_names)
            return et_err(ET_ERR_INVALID, "emotion label \"%s\": class id out of range 0..%d",
                          label, n_names - 1);
        *out = (int)v;
        return NULL;
    }
    char want[64], have[64];
    if (canon_name(s, n, want, sizeof want))
        for (int k = 0; k < n_names; k++)
            if (names[k] && canon_name(names[k], strlen(names[k]), have, sizeof have) &&
                strcmp(want, have) == 0) {
                *out = k;
                return NULL;
            }
    char list[512];
    size_t used = 0;
    list[0] = '\0';
    for (int k = 0; k < n_names && used < sizeof list; k++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", k ? ", " : "",
                                 names[k] ? names[k] : "?");
    return et_err(ET_ERR_FORMAT, "unknown emotion label \"%.200s\" (expected an id or one of %s)",
                  label, list);
}

et_status et_parse_au_label(const char *label, int *out, int max, int *n_out) {
    ET_ASSERT(n_out && (out || max == 0), "et_parse_au_label: NULL argument");
    *n_out = 0;
    if (!label) return et_err(ET_ERR_FORMAT, "AU label is missing");
    const char *s = label;
    while (*s == ' ' || *s == '\t') s++;
    if (*s == '\0') return NULL;  // no AU
    int count = 0, field = 0;
    for (;;) {
        while (*s == ' ' || *s == '\t') s++;
        const char *d = s;
        while (*s >= '0' && *s <= '9') s++;
        size_t nd = (size_t)(s - d);
        const char *e = s;
        while (*s == ' ' || *s == '\t') s++;
        if (nd == 0 || (*s != ',' && *s != '\0'))
            return et_err(ET_ERR_FORMAT,
                          "AU label \"%.200s\": item %d is not an AU number (expected "
                          "comma-separated numbers like \"4, 9, 15\")",
                          label, field);
        if (nd > 1 && d[0] == '0')
            return et_err(ET_ERR_FORMAT,
                          "AU label \"%.200s\": item %d \"%.*s\" has a leading zero (EmoLA "
                          "would not match it)",
                          label, field, (int)nd, d);
        if (nd > 4)
            return et_err(ET_ERR_FORMAT, "AU label \"%.200s\": item %d \"%.*s\" is too large",
                          label, field, (int)(e - d), d);
        int v = 0;
        for (const char *p = d; p < e; p++) v = v * 10 + (*p - '0');
        bool dup = false;
        for (int k = 0; k < count && k < max; k++) dup |= out[k] == v;
        if (!dup) {
            if (count >= max)
                return et_err(ET_ERR_INVALID, "AU label \"%.200s\": more than %d AUs", label, max);
            out[count++] = v;
        }
        field++;
        if (*s == '\0') break;
        s++;  // ','
    }
    *n_out = count;
    return NULL;
}

// ---- the accumulator ------------------------------------------------------------------------

struct et_emo_eval {
    et_eval_kind kind;
    et_emo_parse parse;
    int n_classes;
    char names[ET_EVAL_MAX_CLASSES][ET_EVAL_MAX_NAME];
    const char *name_ptrs[ET_EVAL_MAX_CLASSES];
    int emola_to_class[ET_EMOLA_NUM_EMOTIONS];  // -1 where the classes have no such name
    int64_t n;
    int64_t confusion[ET_EVAL_MAX_CLASSES][ET_EVAL_MAX_CLASSES];
    int64_t unparsed[ET_EVAL_MAX_CLASSES];
    int n_aus;
    int aus[ET_EVAL_MAX_AUS];
    int64_t tp[ET_EVAL_MAX_AUS], fp[ET_EVAL_MAX_AUS], fn[ET_EVAL_MAX_AUS], tn[ET_EVAL_MAX_AUS];
    int64_t n_rouge;
    double *rouge;  // (n_rouge) rouge-l f of each sample that has one
    int64_t rouge_cap;
};

et_status et_emo_eval_new(const et_emo_eval_opts *opts, et_emo_eval **out) {
    ET_ASSERT(opts && out, "et_emo_eval_new: NULL argument");
    *out = NULL;
    if (opts->kind != ET_EVAL_EMOTION && opts->kind != ET_EVAL_AU)
        return et_err(ET_ERR_INVALID, "evaluation kind %d is neither emotion nor AU",
                      (int)opts->kind);
    et_emo_eval *ev = xcalloc(1, sizeof *ev);
    ev->kind = opts->kind;
    ev->parse = opts->parse;
    if (opts->kind == ET_EVAL_EMOTION) {
        if (opts->parse != ET_EMO_PARSE_EMOLA && opts->parse != ET_EMO_PARSE_NAME) {
            free(ev);
            return et_err(ET_ERR_INVALID, "unknown emotion answer parser %d", (int)opts->parse);
        }
        const char *const *names = opts->class_names;
        int k = opts->n_classes;
        if (!names) names = et_emola_emotion_names, k = ET_EMOLA_NUM_EMOTIONS;
        if (k < 1 || k > ET_EVAL_MAX_CLASSES) {
            free(ev);
            return et_err(ET_ERR_INVALID, "%d emotion classes (expected 1..%d)", k,
                          ET_EVAL_MAX_CLASSES);
        }
        for (int c = 0; c < k; c++) {
            if (!names[c] || !names[c][0] || strlen(names[c]) >= ET_EVAL_MAX_NAME) {
                free(ev);
                return et_err(ET_ERR_INVALID, "class name %d is empty or longer than %d bytes", c,
                              ET_EVAL_MAX_NAME - 1);
            }
            snprintf(ev->names[c], ET_EVAL_MAX_NAME, "%s", names[c]);
            ev->name_ptrs[c] = ev->names[c];
        }
        ev->n_classes = k;
        for (int e = 0; e < ET_EMOLA_NUM_EMOTIONS; e++) {
            int c;
            et_status s = et_parse_emotion_label(et_emola_emotion_names[e], ev->name_ptrs, k, &c);
            ev->emola_to_class[e] = s ? -1 : c;
            et_status_free(s);
        }
    } else {
        const int *aus = opts->aus;
        int n = opts->n_aus;
        if (!aus) n = et_au_set_list(ET_AUS_FABA, &aus);
        if (n < 1 || n > ET_EVAL_MAX_AUS) {
            free(ev);
            return et_err(ET_ERR_INVALID, "%d AUs to score (expected 1..%d)", n, ET_EVAL_MAX_AUS);
        }
        for (int i = 0; i < n; i++) {
            if (aus[i] < 0 || aus[i] > 9999) {
                free(ev);
                return et_err(ET_ERR_INVALID, "AU %d out of range 0..9999", aus[i]);
            }
            ev->aus[i] = aus[i];
        }
        ev->n_aus = n;
    }
    *out = ev;
    return NULL;
}

void et_emo_eval_free(et_emo_eval *ev) {
    if (!ev) return;
    free(ev->rouge);
    free(ev);
}

static et_status add_rouge(const char *prediction, const char *reference, et_rouge_l_scores *sc) {
    memset(sc, 0, sizeof *sc);
    if (!reference) return NULL;
    ET_TRY(et_rouge_l(prediction, reference, sc));
    return NULL;
}

static void push_rouge(et_emo_eval *ev, const et_rouge_l_scores *sc) {
    if (!sc->defined) return;
    if (ev->n_rouge == ev->rouge_cap) {
        ev->rouge_cap = ev->rouge_cap ? ev->rouge_cap * 2 : 256;
        ev->rouge = realloc(ev->rouge, (size_t)ev->rouge_cap * sizeof(double));
        ET_ASSERT(ev->rouge, "metrics: out of memory");
    }
    ev->rouge[ev->n_rouge++] = sc->f;
}

static int emotion_prediction(const et_emo_eval *ev, const char *prediction) {
    if (ev->parse == ET_EMO_PARSE_EMOLA) {
        int e = et_emola_emotion(prediction);
        return e < 0 ? -1 : ev->emola_to_class[e];
    }
    size_t n = strlen(prediction);
    while (n &&
           (prediction[n - 1] == ' ' || prediction[n - 1] == '\n' || prediction[n - 1] == '\t' ||
            prediction[n - 1] == '\r' || prediction[n - 1] == '.' || prediction[n - 1] == '!'))
        n--;
    if (n == 0 || n > 255) return -1;
    char buf[256];
    memcpy(buf, prediction, n);
    buf[n] = '\0';
    int c;
    // a bare number is not a name answer
    bool digits = true;
    for (size_t i = 0; i < n; i++) digits &= (buf[i] >= '0' && buf[i] <= '9') || buf[i] == ' ';
    if (digits) return -1;
    et_status s = et_parse_emotion_label(buf, ev->name_ptrs, ev->n_classes, &c);
    if (s) {
        et_status_free(s);
        return -1;
    }
    return c;
}

static et_status add_emotion(et_emo_eval *ev, const char *prediction, int label,
                             const char *reference, et_emo_sample *sample) {
    et_rouge_l_scores sc;
    ET_TRY(add_rouge(prediction, reference, &sc));
    int pred = emotion_prediction(ev, prediction);
    if (pred >= 0)
        ev->confusion[label][pred]++;
    else
        ev->unparsed[label]++;
    ev->n++;
    push_rouge(ev, &sc);
    if (sample) {
        memset(sample, 0, sizeof *sample);
        sample->pred_class = pred;
        sample->label_class = label;
        sample->rouge = sc;
    }
    return NULL;
}

et_status et_emo_eval_add(et_emo_eval *ev, const char *prediction, const char *label,
                          const char *reference, et_emo_sample *sample) {
    ET_ASSERT(ev && prediction, "et_emo_eval_add: NULL argument");
    if (ev->kind == ET_EVAL_EMOTION) {
        int c;
        ET_TRY(et_parse_emotion_label(label, ev->name_ptrs, ev->n_classes, &c));
        return add_emotion(ev, prediction, c, reference, sample);
    }
    int lab[ET_EVAL_MAX_AUS * 2], n_lab;
    ET_TRY(et_parse_au_label(label, lab, ET_EVAL_MAX_AUS * 2, &n_lab));
    et_rouge_l_scores sc;
    ET_TRY(add_rouge(prediction, reference, &sc));
    int pred[ET_EVAL_MAX_AUS * 4];
    int n_pred = et_emola_aus(prediction, pred, ET_EVAL_MAX_AUS * 4);
    if (n_pred > ET_EVAL_MAX_AUS * 4) n_pred = ET_EVAL_MAX_AUS * 4;
    for (int k = 0; k < ev->n_aus; k++) {
        bool p = false, t = false;
        for (int i = 0; i < n_pred; i++) p |= pred[i] == ev->aus[k];
        for (int i = 0; i < n_lab; i++) t |= lab[i] == ev->aus[k];
        if (p && t) ev->tp[k]++;
        if (p && !t) ev->fp[k]++;
        if (!p && t) ev->fn[k]++;
        if (!p && !t) ev->tn[k]++;
    }
    ev->n++;
    push_rouge(ev, &sc);
    if (sample) {
        memset(sample, 0, sizeof *sample);
        sample->pred_class = sample->label_class = -1;
        sample->n_pred_aus = n_pred;
        sample->n_label_aus = n_lab;
        for (int i = 0; i < n_pred && i < ET_EVAL_MAX_AUS; i++) sample->pred_aus[i] = pred[i];
        for (int i = 0; i < n_lab && i < ET_EVAL_MAX_AUS; i++) sample->label_aus[i] = lab[i];
        sample->rouge = sc;
    }
    return NULL;
}

et_status et_emo_eval_add_id(et_emo_eval *ev, const char *prediction, int label_id,
                             const char *reference, et_emo_sample *sample) {
    ET_ASSERT(ev && prediction, "et_emo_eval_add_id: NULL argument");
    if (ev->kind != ET_EVAL_EMOTION)
        return et_err(ET_ERR_INVALID, "an AU evaluation takes AU labels, not class ids");
    if (label_id < 0 || label_id >= ev->n_classes)
        return et_err(ET_ERR_INVALID, "emotion label id %d out of range 0..%d", label_id,
                      ev->n_classes - 1);
    return add_emotion(ev, prediction, label_id, reference, sample);
}

void et_emo_eval_result_get(const et_emo_eval *ev, et_emo_eval_result *r) {
    ET_ASSERT(ev && r, "et_emo_eval_result_get: NULL argument");
    memset(r, 0, sizeof *r);
    r->kind = ev->kind;
    r->n_samples = ev->n;
    r->accuracy = r->uar = r->f1_mean = r->au_acc_mean = r->rouge_l_mean = NAN;
    r->n_classes = ev->n_classes;
    for (int c = 0; c < ev->n_classes; c++)
        memcpy(r->class_names[c], ev->names[c], ET_EVAL_MAX_NAME);
    memcpy(r->confusion, ev->confusion, sizeof r->confusion);
    memcpy(r->unparsed, ev->unparsed, sizeof r->unparsed);
    if (ev->kind == ET_EVAL_EMOTION) {
        int64_t correct = 0;
        double sum = 0;
        int present = 0;
        for (int t = 0; t < ev->n_classes; t++) {
            int64_t row = ev->unparsed[t];
            for (int p = 0; p < ev->n_classes; p++) row += ev->confusion[t][p];
            correct += ev->confusion[t][t];
            r->class_recall[t] = row ? (double)ev->confusion[t][t] / (double)row : NAN;
            if (row) sum += r->class_recall[t], present++;
        }
        if (ev->n) r->accuracy = (double)correct / (double)ev->n;
        if (present) r->uar = sum / present;
        r->s_re = 100.0 * r->accuracy;
    } else {
        r->n_aus = ev->n_aus;
        double f1_sum = 0, acc_sum = 0;
        int inc = 0;
        for (int k = 0; k < ev->n_aus; k++) {
            r->aus[k] = ev->aus[k];
            r->au_tp[k] = ev->tp[k], r->au_fp[k] = ev->fp[k];
            r->au_fn[k] = ev->fn[k], r->au_tn[k] = ev->tn[k];
            int64_t pos = ev->tp[k] + ev->fp[k] + ev->fn[k],
                    neg = ev->tn[k] + ev->fp[k] + ev->fn[k];
            // a 2x2 matrix needs both classes among targets and predictions
            r->au_included[k] = pos > 0 && neg > 0;
            r->au_f1[k] = r->au_acc[k] = NAN;
            if (r->au_included[k]) {
                r->au_f1[k] = et_f1_binary(ev->tp[k], ev->fp[k], ev->fn[k]);
                r->au_acc[k] = (double)(ev->tp[k] + ev->tn[k]) / (double)ev->n;
                f1_sum += r->au_f1[k];
                acc_sum += r->au_acc[k];
                inc++;
            }
        }
        if (inc) r->f1_mean = f1_sum / inc, r->au_acc_mean = acc_sum / inc;
        r->s_re = 100.0 * r->f1_mean;
    }
    r->n_rouge = ev->n_rouge;
    if (ev->n_rouge) {
        double s = 0;
        for (int64_t i = 0; i < ev->n_rouge; i++) s += ev->rouge[i];
        r->rouge_l_mean = s / (double)ev->n_rouge;
    }
    r->s_ge = 100.0 * r->rouge_l_mean;
    r->rege = r->s_re + r->s_ge;
}

// ---- metrics JSON ---------------------------------------------------------------------------

static cJSON *num(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

static et_status write_text_atomic(const char *path, const char *text) {
    size_t pl = strlen(path);
    char *tmp = xmalloc(pl + 5);
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp", 5);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        et_status s = et_err(ET_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return s;
    }
    size_t n = strlen(text);
    bool ok = fwrite(text, 1, n, f) == n;
    ok &= fclose(f) == 0;
    if (!ok) {
        et_status s = et_err(ET_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
        remove(tmp);
        free(tmp);
        return s;
    }
    if (rename(tmp, path) != 0) {
        et_status s =
            et_err(ET_ERR_IO, "%s: cannot rename from %s: %s", path, tmp, strerror(errno));
        remove(tmp);
        free(tmp);
        return s;
    }
    free(tmp);
    return NULL;
}

et_status et_emo_eval_write_json(const et_emo_eval *ev, const char *path) {
    ET_ASSERT(ev && path, "et_emo_eval_write_json: NULL argument");
    et_emo_eval_result *r = xmalloc(sizeof *r);
    et_emo_eval_result_get(ev, r);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "kind", r->kind == ET_EVAL_EMOTION ? "emotion" : "au");
    cJSON_AddNumberToObject(j, "n_samples", (double)r->n_samples);
    if (r->kind == ET_EVAL_EMOTION) {
        cJSON_AddItemToObject(j, "accuracy", num(r->accuracy));
        cJSON_AddItemToObject(j, "war", num(r->accuracy));
        cJSON_AddItemToObject(j, "uar", num(r->uar));
        cJSON *names = cJSON_AddArrayToObject(j, "classes");
        cJSON *rec = cJSON_AddArrayToObject(j, "class_recall");
        cJSON *cm = cJSON_AddArrayToObject(j, "confusion");
        cJSON *un = cJSON_AddArrayToObject(j, "unparsed");
        for (int t = 0; t < r->n_classes; t++) {
            cJSON_AddItemToArray(names, cJSON_CreateString(r->class_names[t]));
            cJSON_AddItemToArray(rec, num(r->class_recall[t]));
            cJSON *row = cJSON_CreateArray();
            for (int p = 0; p < r->n_classes; p++)
                cJSON_AddItemToArray(row, cJSON_CreateNumber((double)r->confusion[t][p]));
            cJSON_AddItemToArray(cm, row);
            cJSON_AddItemToArray(un, cJSON_CreateNumber((double)r->unparsed[t]));
        }
    } else {
        cJSON *per = cJSON_AddArrayToObject(j, "per_au");
        for (int k = 0; k < r->n_aus; k++) {
            cJSON *a = cJSON_CreateObject();
            cJSON_AddNumberToObject(a, "au", r->aus[k]);
            cJSON_AddBoolToObject(a, "included", r->au_included[k]);
            cJSON_AddItemToObject(a, "f1", num(r->au_f1[k]));
            cJSON_AddItemToObject(a, "acc", num(r->au_acc[k]));
            cJSON_AddNumberToObject(a, "tp", (double)r->au_tp[k]);
            cJSON_AddNumberToObject(a, "fp", (double)r->au_fp[k]);
            cJSON_AddNumberToObject(a, "fn", (double)r->au_fn[k]);
            cJSON_AddNumberToObject(a, "tn", (double)r->au_tn[k]);
            cJSON_AddItemToArray(per, a);
        }
        cJSON_AddItemToObject(j, "f1_mean", num(r->f1_mean));
        cJSON_AddItemToObject(j, "au_acc_mean", num(r->au_acc_mean));
    }
    cJSON_AddNumberToObject(j, "n_rouge", (double)r->n_rouge);
    cJSON_AddItemToObject(j, "rouge_l", num(r->rouge_l_mean));
    cJSON_AddItemToObject(j, "s_re", num(r->s_re));
    cJSON_AddItemToObject(j, "s_ge", num(r->s_ge));
    cJSON_AddItemToObject(j, "rege", num(r->rege));
    char *text = cJSON_Print(j);
    ET_ASSERT(text, "metrics: out of memory printing JSON");
    cJSON_Delete(j);
    free(r);
    size_t n = strlen(text);
    char *withnl = xmalloc(n + 2);
    memcpy(withnl, text, n);
    withnl[n] = '\n', withnl[n + 1] = '\0';
    cJSON_free(text);
    et_status s = write_text_atomic(path, withnl);
    free(withnl);
    return s;
}

// ---- confusion-matrix PNG -------------------------------------------------------------------

et_status et_emo_eval_write_confusion_png(const et_emo_eval *ev, const char *path, int cell_px,
                                          const char *eval_name) {
    ET_ASSERT(ev && path, "et_emo_eval_write_confusion_png: NULL argument");
    if (ev->kind != ET_EVAL_EMOTION)
        return et_err(ET_ERR_INVALID, "%s: an AU evaluation has no confusion matrix", path);
    const int K = ev->n_classes;
    int64_t counts[ET_EVAL_MAX_CLASSES * ET_EVAL_MAX_CLASSES], n = 0, correct = 0;
    for (int t = 0; t < K; t++) {
        n += ev->unparsed[t];
        for (int p = 0; p < K; p++) {
            counts[t * K + p] = ev->confusion[t][p];
            n += ev->confusion[t][p];
            if (p == t) correct += ev->confusion[t][p];
        }
    }
    char title[256], acc[48];
    if (n > 0)
        snprintf(acc, sizeof acc, "accuracy %.2f%% (%lld samples)",
                 100.0 * (double)correct / (double)n, (long long)n);
    else
        snprintf(acc, sizeof acc, "no samples");
    if (eval_name && *eval_name)
        snprintf(title, sizeof title, "confusion matrix: %.160s, %s", eval_name, acc);
    else
        snprintf(title, sizeof title, "confusion matrix, %s", acc);
    et_plot_confusion cm = {.title = title,
                            .n_classes = K,
                            .names = ev->name_ptrs,
                            .counts = counts,
                            .unparsed = ev->unparsed,
                            .cell_px = cell_px};
    return et_plot_confusion_png(path, &cm);
}
