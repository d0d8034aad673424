// tests/test_golden_tokenizer.c - exact parity of et_tokenizer with HF tokenizers 0.20.3.
// Fixtures: tests/golden/tokenizer/ (tools/golden/gen_tokenizers.py documents the format).
// For every tokenizer and every corpus line: encode ids equal HF's (add_special_tokens=False),
// the template encode equals prefix + ids + suffix, and decode (with and without
// skip_special_tokens) equals HF's decode of HF's ids. The first mismatches are printed with
// the line and both id lists.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../data/tokenizer.h"
#include "test_util.h"

#define DIR EMOTUNE_SOURCE_DIR "/tests/golden/tokenizer/"

typedef struct {
    unsigned char *p;
    size_t n, off;
    int bad;
} rd;

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)sz + 1);
    if (fread(p, 1, (size_t)sz, f) != (size_t)sz) sz = 0;
    fclose(f);
    *n = (size_t)sz;
    return p;
}
static const unsigned char *take(rd *r, size_t k) {
    if (r->bad || r->off + k > r->n) {
        r->bad = 1;
        static unsigned char zero[8];
        return zero;
    }
    const unsigned char *q = r->p + r->off;
    r->off += k;
    return q;
}
static uint32_t u32(rd *r) {
    const unsigned char *q = take(r, 4);
    return (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
}
static uint64_t u64(rd *r) {
    uint64_t lo = u32(r);
    return lo | (uint64_t)u32(r) << 32;
}
static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}

static void print_escaped(const char *s, size_t n) {
    fputc('"', stderr);
    for (size_t i = 0; i < n && i < 300; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            fputs("\\n", stderr);
        else if (c == '\t')
            fputs("\\t", stderr);
        else if (c == '\r')
            fputs("\\r", stderr);
        else if (c < 0x20 || c == 0x7f)
            fprintf(stderr, "\\x%02x", c);
        else
            fputc(c, stderr);
    }
    fputs("\"\n", stderr);
}
static void print_ids(const char *what, const int32_t *ids, size_t n) {
    fprintf(stderr, "    %s (%zu):", what, n);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

static unsigned char *g_corpus;
static size_t g_corpus_n;
static uint32_t g_nlines;
static const char **g_line;
static size_t *g_line_len;

static int load_corpus(void) {
    if (g_line) return 1;
    g_corpus = slurp(DIR "corpus.bin", &g_corpus_n);
    if (!g_corpus) return 0;
    rd r = {g_corpus, g_corpus_n, 0, 0};
    if (memcmp(take(&r, 4), "ETTC", 4) != 0 || u32(&r) != 1) return 0;
    g_nlines = u32(&r);
    g_line = calloc(g_nlines, sizeof(char *));
    g_line_len = calloc(g_nlines, sizeof(size_t));
    for (uint32_t i = 0; i < g_nlines; i++) {
        g_line_len[i] = u32(&r);
        g_line[i] = (const char *)take(&r, g_line_len[i]);
    }
    return !r.bad;
}

static void check_tokenizer(const char *name) {
    char path[512];
    CHECK(load_corpus(), "cannot read %scorpus.bin", DIR);
    if (!g_line) return;
    snprintf(path, sizeof(path), DIR "%s.json", name);
    et_tokenizer *tk = NULL;
    et_status s = et_tokenizer_load(path, &tk);
    CHECK(s == NULL, "%s", et_status_msg(s));
    if (s) {
        et_status_free(s);
        return;
    }
    snprintf(path, sizeof(path), DIR "%s.expect.bin", name);
    size_t n;
    unsigned char *buf = slurp(path, &n);
    CHECK(buf != NULL, "cannot read %s", path);
    if (!buf) {
        et_tokenizer_free(tk);
        return;
    }
    rd r = {buf, n, 0, 0};
    CHECK(memcmp(take(&r, 4), "ETTE", 4) == 0 && u32(&r) == 1, "%s: bad header", path);
    uint32_t nl = u32(&r);
    CHECK(nl == g_nlines, "%s: %u lines, corpus has %u", path, nl, g_nlines);
    int32_t pre[16], suf[16];
    uint32_t npre = u32(&r);
    for (uint32_t i = 0; i < npre && i < 16; i++) pre[i] = (int32_t)u32(&r);
    uint32_t nsuf = u32(&r);
    for (uint32_t i = 0; i < nsuf && i < 16; i++) suf[i] = (int32_t)u32(&r);
    int32_t *want = malloc(65536 * sizeof(int32_t));
    size_t mism_ids = 0, mism_dec = 0, mism_tpl = 0, total_ids = 0;
    et_ids got = {0}, tpl = {0};
    et_ids_push(&got, 0);  // storage is never NULL below
    et_ids_push(&tpl, 0);
    for (uint32_t li = 0; li < nl && !r.bad; li++) {
        uint32_t k = u32(&r);
        const unsigned char *q = take(&r, 2 * (size_t)k);
        for (uint32_t j = 0; j < k && !r.bad; j++) want[j] = q[2 * j] | q[2 * j + 1] << 8;
        uint8_t flags = *take(&r, 1);
        uint64_t h0 = (flags & 1) ? fnv1a(g_line[li], g_line_len[li]) : u64(&r);
        uint64_t h1 = (flags & 2) ? h0 : u64(&r);
        total_ids += k;
        got.len = 0;
        et_tokenizer_encode(tk, g_line[li], g_line_len[li], 0, &got);
        if (got.len != k || (k && memcmp(got.data, want, k * sizeof(int32_t)) != 0)) {
            if (mism_ids++ < 3) {
                fprintf(stderr, "  %s line %u: ids differ: ", name, li);
                print_escaped(g_line[li], g_line_len[li]);
                print_ids("want", want, k);
                print_ids("got ", got.data, got.len);
            }
            continue;
        }
        tpl.len = 0;
        et_tokenizer_encode(tk, g_line[li], g_line_len[li], ET_TOK_TEMPLATE, &tpl);
        if (tpl.len != npre + k + nsuf || memcmp(tpl.data, pre, npre * 4) ||
            memcmp(tpl.data + npre, want, k * 4) || memcmp(tpl.data + npre + k, suf, nsuf * 4))
            mism_tpl++;
        for (int skip = 0; skip < 2; skip++) {
            size_t dl;
            char *d = et_tokenizer_decode(tk, want, k, skip, &dl);
            if (fnv1a(d, dl) != (skip ? h1 : h0)) {
                if (mism_dec++ < 3) {
                    fprintf(stderr, "  %s line %u: decode(skip_special=%d) differs from HF for ",
                            name, li, skip);
                    print_escaped(g_line[li], g_line_len[li]);
                    fprintf(stderr, "    got ");
                    print_escaped(d, dl);
                    print_ids("ids", want, k);
                }
            }
            free(d);
        }
    }
    CHECK(!r.bad, "%s: truncated", path);
    printf(
        "  %s: %u lines, %zu ids, %zu encode mismatches, %zu template mismatches, "
        "%zu decode mismatches\n",
        name, nl, total_ids, mism_ids, mism_tpl, mism_dec);
    CHECK(mism_ids == 0 && mism_tpl == 0 && mism_dec == 0, "%s: parity failures", name);
    et_ids_free(&got);
    et_ids_free(&tpl);
    free(want);
    free(buf);
    et_tokenizer_free(tk);
}

static void test_llama2_legacy(void) { check_tokenizer("llama2_legacy"); }
static void test_llama2_meta(void) { check_tokenizer("llama2_meta"); }
static void test_llama2_always(void) { check_tokenizer("llama2_always"); }
static void test_llama3(void) { check_tokenizer("llama3"); }

int main(void) {
    RUN(test_llama2_legacy);
    RUN(test_llama2_meta);
    RUN(test_llama2_always);
    RUN(test_llama3);
    free(g_line);
    free(g_line_len);
    free(g_corpus);
    return test_summary();
}
