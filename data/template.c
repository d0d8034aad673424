// data/template.c - conversation templates and LLaVA's label masking (see template.h).
#include "data/template.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

enum { STYLE_TWO, STYLE_LLAMA_2, STYLE_LLAMA_3, STYLE_PLAIN };

struct et_template {
    const char *name;
    int style;
    const char *system;
    const char *roles[2];
    const char *sep, *sep2;  // TWO: " ", "</s>"; LLAMA_2: "<s>", "</s>"
    const char *stop_str;
};

#define SYS_VICUNA                                                                           \
    "A chat between a curious user and an artificial intelligence assistant. The assistant " \
    "gives helpful, detailed, and polite answers to the user's questions."
#define SYS_LLAVA_V1                                                                          \
    "A chat between a curious human and an artificial intelligence assistant. The assistant " \
    "gives helpful, detailed, and polite answers to the human's questions."
#define SYS_LLAVA_LLAMA                                                                       \
    "You are a helpful language and vision assistant. You are able to understand the visual " \
    "content that the user provides, and assist the user with a variety of tasks using "      \
    "natural language."

static const et_template k_templates[] = {
    {"vicuna_v1", STYLE_TWO, SYS_VICUNA, {"USER", "ASSISTANT"}, " ", "</s>", "</s>"},
    {"llava_v1", STYLE_TWO, SYS_LLAVA_V1, {"USER", "ASSISTANT"}, " ", "</s>", "</s>"},
    {"llava_llama_2", STYLE_LLAMA_2, SYS_LLAVA_LLAMA, {"USER", "ASSISTANT"}, "<s>", "</s>", "</s>"},
    {"llama_3",
     STYLE_LLAMA_3,
     SYS_LLAVA_LLAMA,
     {"user", "assistant"},
     "<|eot_id|>",
     NULL,
     "<|eot_id|>"},
    {"plain", STYLE_PLAIN, "", {"", ""}, "\n", NULL, "\n"},
};
#define N_TEMPLATES (sizeof k_templates / sizeof k_templates[0])

const et_template *et_template_find(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < N_TEMPLATES; i++)
        if (strcmp(k_templates[i].name, name) == 0) return &k_templates[i];
    return NULL;
}

const char *et_template_names(void) { return "vicuna_v1, llava_v1, llava_llama_2, llama_3, plain"; }

et_status et_template_get(const char *name, const et_template **out) {
    *out = et_template_find(name);
    if (!*out)
        return et_err(ET_ERR_INVALID, "unknown conversation template \"%s\" (known: %s)",
                      name ? name : "(null)", et_template_names());
    return NULL;
}

const char *et_template_name(const et_template *t) { return t->name; }
const char *et_template_system(const et_template *t) { return t->system; }

void et_template_opts_init(et_template_opts *o) {
    o->max_len = 2048;
    o->image_id = ET_IMAGE_TOKEN_INDEX;
    o->video_id = ET_VIDEO_TOKEN_INDEX;
    o->move_media = true;
    o->legacy = -1;
    o->pad_id = ET_TEMPLATE_PAD_UNK;
    o->supervise_all = false;
}

et_status et_chat_turns_from_json(const struct cJSON *conversations, const char *where,
                                  et_chat_turn **turns, size_t *n) {
    *turns = NULL;
    *n = 0;
    const cJSON *a = conversations;
    if (!where) where = "sample";
    if (!a || !cJSON_IsArray(a))
        return et_err(ET_ERR_FORMAT, "%s: \"conversations\" is not an array", where);
    size_t cnt = (size_t)cJSON_GetArraySize(a);
    et_chat_turn *t = calloc(cnt ? cnt : 1, sizeof *t);
    ET_ASSERT(t, "out of memory");
    size_t i = 0;
    for (const cJSON *e = a->child; e; e = e->next, i++) {
        if (!cJSON_IsObject(e)) {
            free(t);
            return et_err(ET_ERR_FORMAT, "%s: conversations[%zu] is not an object", where, i);
        }
        const char *key[2] = {"from", "value"};
        const cJSON *kv[2];
        for (int k = 0; k < 2; k++) {
            kv[k] = cJSON_GetObjectItemCaseSensitive(e, key[k]);
            if (!cJSON_IsString(kv[k]) || !kv[k]->valuestring) {
                free(t);
                return et_err(ET_ERR_FORMAT, "%s: conversations[%zu].%s is %s", where, i, key[k],
                              kv[k] ? "not a string" : "missing");
            }
        }
        const cJSON *f = kv[0], *v = kv[1];
        t[i].from = f->valuestring;
        t[i].value = v->valuestring;
    }
    *turns = t;
    *n = i;
    return NULL;
}

// ---------------------------------------------------------------------------------------------
// Small helpers: a string builder, Python str.strip, substring search.

typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n + 1) c *= 2;
        b->p = realloc(b->p, c);
        ET_ASSERT(b->p, "out of memory");
        b->cap = c;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

// Python's str.isspace set.
static bool py_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
           c == 0x202f || c == 0x205f || c == 0x3000;
}

// Decode one UTF-8 sequence at s[0, n); returns its length (0: invalid) and the code point.
static size_t utf8_at(const unsigned char *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    unsigned c = s[0];
    size_t k;
    uint32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        k = 2, v = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        k = 3, v = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        k = 4, v = c & 0x07;
    } else {
        return 0;
    }
    if (k > n) return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    *cp = v;
    return k;
}

// Python str.strip() on s[0, *n): returns the new start, updates *n.
static const char *py_strip(const char *s, size_t *n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t a = 0, b = *n;
    uint32_t cp;
    while (a < b) {
        size_t k = utf8_at(u + a, b - a, &cp);
        if (!k || !py_space(cp)) break;
        a += k;
    }
    while (b > a) {
        size_t st = b - 1;
        while (st > a && (u[st] & 0xc0) == 0x80 && b - st < 4) st--;
        size_t k = utf8_at(u + st, b - st, &cp);
        if (k != b - st || !py_space(cp)) break;
        b = st;
    }
    *n = b - a;
    return s + a;
}

static const char *find(const char *h, size_t hn, const char *nd, size_t nn) {
    if (nn == 0 || nn > hn) return NULL;
    for (size_t i = 0; i + nn <= hn; i++)
        if (h[i] == nd[0] && memcmp(h + i, nd, nn) == 0) return h + i;
    return NULL;
}

static size_t count_occ(const char *h, size_t hn, const char *nd, size_t nn) {
    size_t c = 0;
    const char *e = h + hn, *p = h;
    while ((p = find(p, (size_t)(e - p), nd, nn))) c++, p += nn;
    return c;
}

// ---------------------------------------------------------------------------------------------
// Tokenization with media placeholders.

// Next "<image>" or "<video>" in s[0, n): position (n if none) and which (0 image, 1 video).
static size_t next_media(const char *s, size_t n, int *which) {
    for (size_t i = 0; i + 7 <= n; i++) {
        if (s[i] != '<') continue;
        if (memcmp(s + i, "<image>", 7) == 0) return *which = 0, i;
        if (memcmp(s + i, "<video>", 7) == 0) return *which = 1, i;
    }
    return n;
}

// LLaVA's tokenizer_image_token (flags ET_TOK_TEMPLATE) generalised to <image> and <video>;
// with flags 0 it is the plain chunked encode of the llama_3 path. Appends to out.
static void media_encode(const et_tokenizer *tk, const char *s, size_t n, unsigned flags,
                         const et_template_opts *o, et_ids *out, et_ids *tmp) {
    int32_t bos = et_tokenizer_bos_id(tk);
    size_t offset = 0;
    bool first = true;
    for (;;) {
        int which = 0;
        size_t m = next_media(s, n, &which);
        tmp->len = 0;
        et_tokenizer_encode(tk, s, m, flags, tmp);
        if (first) {
            if ((flags & ET_TOK_TEMPLATE) && tmp->len > 0 && tmp->data[0] == bos) {
                offset = 1;
                et_ids_push(out, tmp->data[0]);
            }
            first = false;
        }
        for (size_t i = offset; i < tmp->len; i++) et_ids_push(out, tmp->data[i]);
        if (m == n) break;
        et_ids_push(out, which ? o->video_id : o->image_id);
        s += m + 7;
        n -= m + 7;
    }
}

static size_t media_len(const et_tokenizer *tk, const char *s, size_t n, const et_template_opts *o,
                        et_ids *scratch, et_ids *tmp) {
    scratch->len = 0;
    media_encode(tk, s, n, ET_TOK_TEMPLATE, o, scratch, tmp);
    return scratch->len;
}

// tokenizer.legacy from behaviour: does text right after a special token get the same ids
// as at the start of a string (a "▁" prefix is added after special tokens)?
static bool detect_legacy(const et_tokenizer *tk) {
    int32_t sp = et_tokenizer_eos_id(tk);
    if (sp < 0) sp = et_tokenizer_bos_id(tk);
    size_t len = 0;
    const char *s = sp >= 0 ? et_tokenizer_id_to_token(tk, sp, &len) : NULL;
    if (!s) return true;
    sbuf b = {0};
    sb_put(&b, s, len);
    sb_str(&b, "a");
    et_ids x = {0}, y = {0};
    et_tokenizer_encode(tk, b.p, b.n, 0, &x);
    et_ids_push(&y, sp);
    et_tokenizer_encode(tk, "a", 1, 0, &y);
    bool eq = x.len == y.len && memcmp(x.data, y.data, x.len * sizeof *x.data) == 0;
    et_ids_free(&x);
    et_ids_free(&y);
    free(b.p);
    return eq;
}

// ---------------------------------------------------------------------------------------------
// Conversation preparation (roles, system, leading gpt, media move).

typedef struct {
    const char *system;  // borrowed
    char **msg;          // owned copies, n of them; msg[j] from human when j is even
    size_t n;
    bool dropped_gpt;
} conv;

static void conv_free(conv *c) {
    for (size_t i = 0; i < c->n; i++) free(c->msg[i]);
    free(c->msg);
    memset(c, 0, sizeof *c);
}

// LLaVA preprocess_multimodal for one token: all copies removed, "<tok>\n" + rest, stripped.
static char *move_token(char *v, const char *tok) {
    size_t tl = strlen(tok), n = strlen(v);
    if (!find(v, n, tok, tl)) return v;
    sbuf rest = {0};
    sb_put(&rest, "", 0);
    const char *p = v, *e = v + n, *q;
    while ((q = find(p, (size_t)(e - p), tok, tl))) {
        sb_put(&rest, p, (size_t)(q - p));
        p = q + tl;
    }
    sb_put(&rest, p, (size_t)(e - p));
    size_t rn = rest.n;
    const char *r = py_strip(rest.p, &rn);
    sbuf out = {0};
    sb_str(&out, tok);
    sb_str(&out, "\n");
    sb_put(&out, r, rn);
    size_t on = out.n;
    const char *o = py_strip(out.p, &on);
    char *res = malloc(on + 1);
    ET_ASSERT(res, "out of memory");
    memcpy(res, o, on);
    res[on] = 0;
    free(rest.p);
    free(out.p);
    free(v);
    return res;
}

static char *dupstr(const char *s) {
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    ET_ASSERT(d, "out of memory");
    memcpy(d, s, n + 1);
    return d;
}

static et_status conv_prepare(const et_template *t, const et_chat_turn *turns, size_t n,
                              const et_template_opts *o, conv *c) {
    memset(c, 0, sizeof *c);
    c->system = t->system;
    if (!turns && n) return et_err(ET_ERR_INVALID, "conversation: turns is NULL");
    if (n == 0) return et_err(ET_ERR_INVALID, "conversation is empty");
    size_t i0 = 0;
    c->msg = calloc(n, sizeof *c->msg);
    ET_ASSERT(c->msg, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *f = turns[i].from, *v = turns[i].value;
        if (!f || !v) {
            conv_free(c);
            return et_err(ET_ERR_FORMAT, "conversation turn %zu: \"%s\" is not a string", i,
                          f ? "value" : "from");
        }
        int role;
        if (!strcmp(f, "human") || !strcmp(f, "user"))
            role = 0;
        else if (!strcmp(f, "gpt") || !strcmp(f, "assistant"))
            role = 1;
        else if (!strcmp(f, "system"))
            role = 2;
        else {
            conv_free(c);
            return et_err(ET_ERR_FORMAT,
                          "conversation turn %zu: unknown role \"%s\" (expected human, gpt, user, "
                          "assistant, or system as the first turn)",
                          i, f);
        }
        if (role == 2) {
            if (i != 0) {
                conv_free(c);
                return et_err(ET_ERR_FORMAT,
                              "conversation turn %zu: a \"system\" turn must be the first", i);
            }
            c->system = v;
            i0 = 1;
            continue;
        }
        if (i == i0 && role == 1) {  // LLaVA: "Skip the first one if it is not from human"
            c->dropped_gpt = true;
            continue;
        }
        int want = c->n % 2 == 0 ? 0 : 1;
        if (role != want) {
            conv_free(c);
            return et_err(ET_ERR_FORMAT,
                          "conversation turn %zu: \"%s\" where a %s turn was expected (roles "
                          "must alternate human/gpt)",
                          i, f, want ? "gpt" : "human");
        }
        c->msg[c->n++] = dupstr(v);
    }
    if (c->n == 0) {
        conv_free(c);
        return et_err(ET_ERR_INVALID, "conversation is empty (no human turn)");
    }
    if (o->move_media)
        for (size_t j = 0; j < c->n; j++) {
            c->msg[j] = move_token(c->msg[j], "<image>");
            c->msg[j] = move_token(c->msg[j], "<video>");
        }
    if (t->style == STYLE_LLAMA_2 && c->msg[0][0] == 0) {
        conv_free(c);
        return et_err(ET_ERR_INVALID,
                      "conversation: the first human turn is empty (LLaVA's llama_2 template "
                      "requires text)");
    }
    return NULL;
}

// ---------------------------------------------------------------------------------------------
// Rendering (LLaVA Conversation.get_prompt).

static void render_two(const et_template *t, const conv *c, bool gen, sbuf *b) {
    sb_str(b, c->system);
    sb_str(b, t->sep);
    for (size_t j = 0; j < c->n; j++) {
        sb_str(b, t->roles[j % 2]);
        if (c->msg[j][0]) {
            sb_str(b, ": ");
            sb_str(b, c->msg[j]);
            sb_str(b, j % 2 ? t->sep2 : t->sep);
        } else {
            sb_str(b, ":");
        }
    }
    if (gen) {
        sb_str(b, t->roles[1]);
        sb_str(b, ":");
    }
}

static void render_llama2(const conv *c, sbuf *b) {
    for (size_t j = 0; j < c->n; j++) {
        const char *m = c->msg[j];
        if (!m[0]) continue;
        if (j % 2 == 0) {
            if (j > 0) sb_str(b, "<s>");  // the leading "<s>" is lstripped by LLaVA
            sb_str(b, "[INST] ");
            if (j == 0) {
                sb_str(b, "<<SYS>>\n");
                sb_str(b, c->system);
                sb_str(b, "\n<</SYS>>\n\n");
            }
            sb_str(b, m);
            sb_str(b, " [/INST]");
        } else {
            sb_str(b, " ");
            sb_str(b, m);
            sb_str(b, " </s>");
        }
    }
}

// One Llama-3 chat-template message without BOS: header, stripped content, <|eot_id|>.
static void render_llama3_msg(const char *role, const char *content, sbuf *b) {
    sb_str(b, "<|start_header_id|>");
    sb_str(b, role);
    sb_str(b, "<|end_header_id|>\n\n");
    size_t n = strlen(content);
    const char *s = py_strip(content, &n);
    sb_put(b, s, n);
    sb_str(b, "<|eot_id|>");
}

static const char *plain_media(const conv *c) {
    if (strstr(c->msg[0], "<image>")) return "<image>";
    if (strstr(c->msg[0], "<video>")) return "<video>";
    return NULL;
}

// ---------------------------------------------------------------------------------------------

// Python slice bounds: x -> [0, len].
static size_t py_idx(int64_t x, size_t len) {
    if (x < 0) x += (int64_t)len;
    if (x < 0) return 0;
    return (size_t)x > len ? len : (size_t)x;
}
static void mask(et_ids *lab, int64_t a, int64_t b) {
    size_t s = py_idx(a, lab->len), e = py_idx(b, lab->len);
    for (size_t i = s; i < e; i++) lab->data[i] = ET_IGNORE_INDEX;
}

static void copy_ids(et_ids *dst, const et_ids *src) {
    dst->len = 0;
    for (size_t i = 0; i < src->len; i++) et_ids_push(dst, src->data[i]);
}

// preprocess_v1 / preprocess_llama_2: round-by-round lengths on the rendered text.
static void rounds_labels(const et_template *t, const et_tokenizer *tk, const char *text, size_t tn,
                          const et_template_opts *o, const et_ids *ids, et_ids *lab,
                          et_template_info *info) {
    copy_ids(lab, ids);
    bool has_media = false;
    for (size_t i = 0; i < ids->len; i++)
        if (ids->data[i] == o->image_id || ids->data[i] == o->video_id) has_media = true;
    // total_len counts non-pad ids of what LLaVA holds at that point: the tokenizer-truncated
    // sequence without media, the whole sequence with media (tokenizer_image_token).
    int32_t pad = o->pad_id == ET_TEMPLATE_PAD_UNK ? et_tokenizer_unk_id(tk) : o->pad_id;
    size_t lim = ids->len;
    if (!has_media && o->max_len > 0 && (size_t)o->max_len < lim) lim = (size_t)o->max_len;
    int64_t total = 0;
    for (size_t i = 0; i < lim; i++) total += ids->data[i] != pad;

    bool legacy = o->legacy < 0 ? detect_legacy(tk) : o->legacy != 0;
    const char *sep2 = t->sep2;
    size_t s2 = strlen(sep2);
    sbuf msep = {0};
    if (t->style == STYLE_TWO) {
        sb_str(&msep, t->sep);
        sb_str(&msep, t->roles[1]);
        sb_str(&msep, ": ");
    } else {
        sb_str(&msep, "[/INST] ");
    }
    et_ids scratch = {0}, tmp = {0};
    int64_t cur = 1;
    mask(lab, 0, cur);
    size_t pos = 0;
    for (int i = 0;; i++) {
        const char *q = find(text + pos, tn - pos, sep2, s2);
        size_t end = q ? (size_t)(q - text) : tn;
        const char *rou = text + pos;
        size_t rn = end - pos;
        if (rn == 0) break;
        if (count_occ(rou, rn, msep.p, msep.n) != 1) break;
        const char *m = find(rou, rn, msep.p, msep.n);
        size_t p0 = (size_t)(m - rou) + msep.n;
        int64_t rl = (int64_t)media_len(tk, rou, rn, o, &scratch, &tmp);
        int64_t il = (int64_t)media_len(tk, rou, p0, o, &scratch, &tmp) - 2;
        if (t->style == STYLE_TWO && i != 0 && !legacy) rl -= 1, il -= 1;
        mask(lab, cur, cur + il);
        cur += rl;
        if (!q) break;
        pos = end + s2;
    }
    mask(lab, cur, (int64_t)lab->len);
    if (o->max_len <= 0 || cur < o->max_len) {
        if (cur != total) {
            info->mismatch = true;
            info->mismatch_cur_len = cur;
            info->mismatch_total_len = total;
            for (size_t i = 0; i < lab->len; i++) lab->data[i] = ET_IGNORE_INDEX;
        }
    }
    et_ids_free(&scratch);
    et_ids_free(&tmp);
    free(msep.p);
}

// LLaVA-NeXT preprocess_llama3. gen: append the assistant header instead of nothing.
static void llama3_encode(const et_tokenizer *tk, const conv *c, const et_template_opts *o,
                          bool gen, et_ids *ids, et_ids *lab) {
    int32_t bos = et_tokenizer_bos_id(tk);
    et_ids tmp = {0}, one = {0};
    sbuf b = {0};
    for (size_t j = 0; j <= c->n; j++) {
        b.n = 0;
        sb_put(&b, "", 0);
        one.len = 0;
        if (j == 0) {
            render_llama3_msg("system", c->system, &b);
        } else {
            render_llama3_msg((j - 1) % 2 ? "assistant" : "user", c->msg[j - 1], &b);
        }
        // apply_chat_template: bos_token + message, tokenized without special tokens; the
        // turns drop their first id ([1:]), the system message keeps it.
        if (bos >= 0) et_ids_push(&one, bos);
        media_encode(tk, b.p, b.n, 0, o, &one, &tmp);
        size_t from = j == 0 ? 0 : 1;
        bool sup = j > 0 && (j - 1) % 2 == 1;
        for (size_t k = from; k < one.len; k++) {
            et_ids_push(ids, one.data[k]);
            if (lab) et_ids_push(lab, sup ? one.data[k] : ET_IGNORE_INDEX);
        }
    }
    if (gen) {
        const char *h = "<|start_header_id|>assistant<|end_header_id|>\n\n";
        et_tokenizer_encode(tk, h, strlen(h), 0, ids);
    }
    if (lab) {
        static const char *const unmask[] = {"<|begin_of_text|>", "<|start_header_id|>",
                                             "<|end_header_id|>", "<|eot_id|>", "\n\n"};
        int32_t uid[5];
        for (int k = 0; k < 5; k++) {
            uid[k] = et_tokenizer_token_to_id(tk, unmask[k], strlen(unmask[k]));
            if (uid[k] < 0) uid[k] = et_tokenizer_unk_id(tk);  // convert_tokens_to_ids
        }
        for (size_t i = 0; i < ids->len; i++)
            for (int k = 0; k < 5; k++)
                if (uid[k] >= 0 && ids->data[i] == uid[k]) lab->data[i] = ids->data[i];
    }
    et_ids_free(&tmp);
    et_ids_free(&one);
    free(b.p);
}

static void render_text(const et_template *t, const et_tokenizer *tk, const conv *c, bool gen,
                        sbuf *b) {
    sb_put(b, "", 0);
    switch (t->style) {
        case STYLE_TWO:
            render_two(t, c, gen, b);
            break;
        case STYLE_LLAMA_2:
            render_llama2(c, b);
            break;
        case STYLE_LLAMA_3: {
            size_t bl = 0;
            int32_t bos = et_tokenizer_bos_id(tk);
            const char *bt = bos >= 0 ? et_tokenizer_id_to_token(tk, bos, &bl) : NULL;
            if (bt) sb_put(b, bt, bl);
            render_llama3_msg("system", c->system, b);
            for (size_t j = 0; j < c->n; j++)
                render_llama3_msg(j % 2 ? "assistant" : "user", c->msg[j], b);
            if (gen) sb_str(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
            break;
        }
        default: {
            const char *m = plain_media(c);
            sb_str(b, m ? m : "");
            if (!gen && c->n > 1) {
                sb_str(b, c->msg[1]);
                sb_str(b, t->sep);
            }
        }
    }
}

static et_status check_plain(const conv *c, bool gen) {
    size_t want = gen ? 1 : 2;
    if (c->n != want || !plain_media(c))
        return et_err(ET_ERR_INVALID,
                      "conversation: the plain template needs exactly %s with <image> or "
                      "<video> in the human turn (got %zu turns)",
                      gen ? "one human turn" : "one human and one gpt turn", c->n);
    return NULL;
}

et_status et_template_encode(const et_template *t, const et_tokenizer *tk,
                             const et_chat_turn *turns, size_t n, const et_template_opts *opts,
                             et_ids *ids, et_ids *labels, et_template_info *info) {
    ET_ASSERT(t && tk && ids && labels,
              "et_template_encode: template, tokenizer, ids and labels "
              "are required");
    et_template_opts dflt;
    if (!opts) et_template_opts_init(&dflt), opts = &dflt;
    et_template_info inf;
    memset(&inf, 0, sizeof inf);
    ids->len = 0;
    labels->len = 0;
    conv c;
    et_status st = conv_prepare(t, turns, n, opts, &c);
    if (!st && t->style == STYLE_PLAIN) {
        st = check_plain(&c, false);
        if (st) conv_free(&c);
    }
    if (st) {
        if (info) *info = inf;
        return st;
    }
    inf.dropped_leading_gpt = c.dropped_gpt;
    inf.n_rounds = (int)((c.n + 1) / 2);
    et_ids tmp = {0}, scratch = {0};
    sbuf b = {0};
    if (t->style == STYLE_LLAMA_3) {
        llama3_encode(tk, &c, opts, false, ids, labels);
        if (opts->supervise_all) copy_ids(labels, ids);
    } else {
        render_text(t, tk, &c, false, &b);
        media_encode(tk, b.p, b.n, ET_TOK_TEMPLATE, opts, ids, &tmp);
        if (opts->supervise_all) {
            copy_ids(labels, ids);
        } else if (t->style == STYLE_PLAIN) {
            copy_ids(labels, ids);
            const char *m = plain_media(&c);
            mask(labels, 0, (int64_t)media_len(tk, m, strlen(m), opts, &scratch, &tmp));
        } else {
            rounds_labels(t, tk, b.p, b.n, opts, ids, labels, &inf);
        }
    }
    for (size_t i = 0; i < ids->len; i++) {
        if (ids->data[i] == opts->image_id) inf.n_images++, labels->data[i] = ET_IGNORE_INDEX;
        if (ids->data[i] == opts->video_id) inf.n_videos++, labels->data[i] = ET_IGNORE_INDEX;
    }
    inf.full_len = ids->len;
    if (opts->max_len > 0 && ids->len > (size_t)opts->max_len) {
        inf.truncated = true;
        ids->len = labels->len = (size_t)opts->max_len;
    }
    for (size_t i = 0; i < labels->len; i++) inf.n_supervised += labels->data[i] != ET_IGNORE_INDEX;
    inf.has_supervised = inf.n_supervised > 0;
    if (info) *info = inf;
    et_ids_free(&tmp);
    et_ids_free(&scratch);
    free(b.p);
    conv_free(&c);
    return NULL;
}

static et_status prepare_prompt(const et_template *t, const et_chat_turn *turns, size_t n,
                                const et_template_opts *opts, conv *c) {
    ET_TRY(conv_prepare(t, turns, n, opts, c));
    et_status st = NULL;
    if (t->style == STYLE_PLAIN)
        st = check_plain(c, true);
    else if (c->n % 2 == 0)
        st = et_err(ET_ERR_INVALID,
                    "conversation: a generation prompt must end with a human turn (got %zu "
                    "turns ending with gpt)",
                    c->n);
    if (st) conv_free(c);
    return st;
}

et_status et_template_prompt(const et_template *t, const et_tokenizer *tk,
                             const et_chat_turn *turns, size_t n, const et_template_opts *opts,
                             et_ids *ids, et_template_stop *stop) {
    ET_ASSERT(t && tk && ids, "et_template_prompt: template, tokenizer and ids are required");
    et_template_opts dflt;
    if (!opts) et_template_opts_init(&dflt), opts = &dflt;
    ids->len = 0;
    conv c;
    ET_TRY(prepare_prompt(t, turns, n, opts, &c));
    if (t->style == STYLE_LLAMA_3) {
        llama3_encode(tk, &c, opts, true, ids, NULL);
    } else {
        sbuf b = {0};
        et_ids tmp = {0};
        render_text(t, tk, &c, true, &b);
        media_encode(tk, b.p, b.n, ET_TOK_TEMPLATE, opts, ids, &tmp);
        et_ids_free(&tmp);
        free(b.p);
    }
    if (stop) {
        stop->eos_id = et_tokenizer_eos_id(tk);
        stop->stop_str = t->stop_str;
        stop->stop_id = t->style == STYLE_PLAIN
                            ? -1
                            : et_tokenizer_token_to_id(tk, t->stop_str, strlen(t->stop_str));
    }
    conv_free(&c);
    return NULL;
}

et_status et_template_render(const et_template *t, const et_tokenizer *tk,
                             const et_chat_turn *turns, size_t n, const et_template_opts *opts,
                             bool generation, char **text) {
    ET_ASSERT(t && tk && text, "et_template_render: template, tokenizer and text are required");
    et_template_opts dflt;
    if (!opts) et_template_opts_init(&dflt), opts = &dflt;
    *text = NULL;
    conv c;
    if (generation) {
        ET_TRY(prepare_prompt(t, turns, n, opts, &c));
    } else {
        ET_TRY(conv_prepare(t, turns, n, opts, &c));
        if (t->style == STYLE_PLAIN) {
            et_status st = check_plain(&c, false);
            if (st) {
                conv_free(&c);
                return st;
            }
        }
    }
    sbuf b = {0};
    render_text(t, tk, &c, generation, &b);
    *text = b.p;
    conv_free(&c);
    return NULL;
}
