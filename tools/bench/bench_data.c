// tools/bench/bench_data.c - data-pipeline throughput: tokenizer encode and image decode + CLIP
// preprocessing (emotune's side of tools/bench/bench_data.py, which runs the HF / PIL peer on
// the same inputs in the same run, checks the outputs agree and prints the ratios).
//
// Usage:
//   bench_data tok <tokenizer.json> <corpus.bin> <big.txt> <reps> [dump.bin]
//     Encodes every line of corpus.bin (format: tools/golden/gen_tokenizers.py) one call per
//     line, and big.txt in one call, no special tokens added (HF add_special_tokens=False).
//     "cold": a freshly loaded tokenizer per timed pass (empty word cache; loading is not
//     timed); "warm": passes over the corpus with one tokenizer after an untimed pass. The
//     median of <reps> passes each. dump.bin: per corpus line u32 n + n x i32 ids, then the
//     same for big.txt (written from an untimed pass).
//   bench_data img <size> <pad 0|1> <reps> <dump_dir|-> <image>...
//     Per image: et_image_decode_file + et_clip_preprocess (shortest edge <size>, center crop
//     <size>, f32 CHW output only; pad = LLaVA expand2square first). The median over <reps>
//     passes of the per-image decode and preprocess times. dump_dir: <i>.f32 per image
//     (3 x size x size floats, from an untimed pass). EMOTUNE_PREPROC_SIMD=portable|avx2|
//     avx512 forces a preprocessing code path (default: the best the CPU has); single
//     thread.
// Output: "key value" lines on stdout.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../core/fileio.h"
#include "../../data/image.h"
#include "../../data/preprocess.h"
#include "../../data/tokenizer.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void die_status(et_status s) {
    fprintf(stderr, "bench_data: %s\n", et_status_msg(s));
    exit(1);
}

static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

// ---- tokenizer ------------------------------------------------------------------------

typedef struct {
    size_t n;
    const char **text;
    size_t *len;
} lines_t;

static void read_corpus(const char *path, char **buf, lines_t *L) {
    size_t size = 0;
    et_status s = et_read_file(path, (size_t)1 << 30, buf, &size);
    if (s) die_status(s);
    const unsigned char *p = (const unsigned char *)*buf;
    if (size < 12 || memcmp(p, "ETTC", 4) || rd32(p + 4) != 1) {
        fprintf(stderr, "bench_data: %s: not an ETTC v1 corpus\n", path);
        exit(1);
    }
    L->n = rd32(p + 8);
    L->text = malloc(sizeof(*L->text) * L->n);
    L->len = malloc(sizeof(*L->len) * L->n);
    size_t off = 12;
    for (size_t i = 0; i < L->n; i++) {
        if (off + 4 > size || rd32(p + off) > size - off - 4) {
            fprintf(stderr, "bench_data: %s: line %zu runs past the end\n", path, i);
            exit(1);
        }
        L->len[i] = rd32(p + off);
        L->text[i] = *buf + off + 4;
        off += 4 + L->len[i];
    }
}

static et_tokenizer *load_tok(const char *path) {
    et_tokenizer *tk = NULL;
    et_status s = et_tokenizer_load(path, &tk);
    if (s) die_status(s);
    return tk;
}

// One pass over the lines; returns seconds, the id count in *nids.
static double encode_lines(const et_tokenizer *tk, const lines_t *L, et_ids *ids, size_t *nids) {
    size_t total = 0;
    double t0 = now();
    for (size_t i = 0; i < L->n; i++) {
        ids->len = 0;
        et_tokenizer_encode(tk, L->text[i], L->len[i], 0, ids);
        total += ids->len;
    }
    double t = now() - t0;
    *nids = total;
    return t;
}

static void dump_ids(FILE *f, const et_ids *ids) {
    uint32_t n = (uint32_t)ids->len;
    fwrite(&n, 4, 1, f);
    if (ids->len) fwrite(ids->data, 4, ids->len, f);
}

static int run_tok(int argc, char **argv) {
    if (argc < 6) return 2;
    const char *tok_path = argv[2], *corpus_path = argv[3], *big_path = argv[4];
    int reps = atoi(argv[5]);
    const char *dump = argc > 6 ? argv[6] : NULL;
    if (reps < 1) return 2;
    char *cbuf = NULL, *big = NULL;
    lines_t L = {0};
    read_corpus(corpus_path, &cbuf, &L);
    size_t big_len = 0;
    et_status s = et_read_file(big_path, (size_t)1 << 30, &big, &big_len);
    if (s) die_status(s);
    size_t corpus_bytes = 0;
    for (size_t i = 0; i < L.n; i++) corpus_bytes += L.len[i];

    et_ids ids = {0};
    size_t nids = 0, big_ids = 0;
    if (dump) {
        FILE *f = fopen(dump, "wb");
        if (!f) {
            fprintf(stderr, "bench_data: cannot write %s\n", dump);
            return 1;
        }
        et_tokenizer *tk = load_tok(tok_path);
        for (size_t i = 0; i < L.n; i++) {
            ids.len = 0;
            et_tokenizer_encode(tk, L.text[i], L.len[i], 0, &ids);
            dump_ids(f, &ids);
        }
        ids.len = 0;
        et_tokenizer_encode(tk, big, big_len, 0, &ids);
        dump_ids(f, &ids);
        et_tokenizer_free(tk);
        if (fclose(f)) {
            fprintf(stderr, "bench_data: error writing %s\n", dump);
            return 1;
        }
    }

    double *cold = malloc(sizeof(double) * (size_t)reps);
    double *warm = malloc(sizeof(double) * (size_t)reps);
    double *bigt = malloc(sizeof(double) * (size_t)reps);
    for (int r = 0; r < reps; r++) {
        et_tokenizer *tk = load_tok(tok_path);
        cold[r] = encode_lines(tk, &L, &ids, &nids);
        et_tokenizer_free(tk);
        tk = load_tok(tok_path);
        ids.len = 0;
        double t0 = now();
        et_tokenizer_encode(tk, big, big_len, 0, &ids);
        bigt[r] = now() - t0;
        big_ids = ids.len;
        et_tokenizer_free(tk);
    }
    et_tokenizer *tk = load_tok(tok_path);
    encode_lines(tk, &L, &ids, &nids);  // fills the word cache
    for (int r = 0; r < reps; r++) warm[r] = encode_lines(tk, &L, &ids, &nids);
    et_tokenizer_free(tk);

    printf("lines %zu\ncorpus_bytes %zu\ncorpus_ids %zu\n", L.n, corpus_bytes, nids);
    printf("big_bytes %zu\nbig_ids %zu\n", big_len, big_ids);
    printf("corpus_cold_s %.9f\n", median(cold, reps));
    printf("corpus_warm_s %.9f\n", median(warm, reps));
    printf("big_s %.9f\n", median(bigt, reps));
    free(cold);
    free(warm);
    free(bigt);
    et_ids_free(&ids);
    free(L.text);
    free(L.len);
    free(cbuf);
    free(big);
    return 0;
}

// ---- images ---------------------------------------------------------------------------

static et_preproc_simd g_simd = ET_PREPROC_AUTO;

static et_tensor *decode_and_preprocess(const char *path, const et_clip_preproc *pp, double *t_dec,
                                        double *t_pre) {
    et_image img = {0};
    et_tensor *out = NULL;
    double t0 = now();
    et_status s = et_image_decode_file(path, NULL, &img);
    double t1 = now();
    if (!s) s = et_clip_preprocess_simd(&img, pp, g_simd, NULL, &out);
    double t2 = now();
    et_image_free(&img);
    if (s) die_status(s);
    if (t_dec) *t_dec = t1 - t0;
    if (t_pre) *t_pre = t2 - t1;
    return out;
}

static int run_img(int argc, char **argv) {
    if (argc < 7) return 2;
    int size = atoi(argv[2]), pad = atoi(argv[3]), reps = atoi(argv[4]);
    const char *dump = strcmp(argv[5], "-") ? argv[5] : NULL;
    int n = argc - 6;
    char **paths = argv + 6;
    if (size < 1 || reps < 1) return 2;
    et_clip_preproc pp;
    et_clip_preproc_default(&pp, size);
    pp.pad_square = pad != 0;
    const char *simd = getenv("EMOTUNE_PREPROC_SIMD");
    for (int k = ET_PREPROC_PORTABLE; simd && *simd && k <= ET_PREPROC_AVX512; k++)
        if (!strcmp(simd, et_preproc_simd_name((et_preproc_simd)k))) g_simd = (et_preproc_simd)k;
    if (simd && *simd && strcmp(simd, "auto") && g_simd == ET_PREPROC_AUTO) {
        fprintf(stderr, "bench_data: EMOTUNE_PREPROC_SIMD=%s: not portable, avx2 or avx512\n",
                simd);
        return 1;
    }

    // Untimed pass: page cache, allocator, dump.
    for (int i = 0; i < n; i++) {
        et_tensor *t = decode_and_preprocess(paths[i], &pp, NULL, NULL);
        if (dump) {
            char name[4096];
            snprintf(name, sizeof name, "%s/%d.f32", dump, i);
            et_status s = et_write_file_atomic(name, et_data(t), et_nbytes(t));
            if (s) die_status(s);
        }
        et_release(t);
    }
    double *dec = malloc(sizeof(double) * (size_t)(n * reps));
    double *pre = malloc(sizeof(double) * (size_t)(n * reps));
    double *tot = malloc(sizeof(double) * (size_t)reps);
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        for (int i = 0; i < n; i++) {
            et_tensor *t =
                decode_and_preprocess(paths[i], &pp, &dec[i * reps + r], &pre[i * reps + r]);
            et_release(t);
        }
        tot[r] = now() - t0;
    }
    for (int i = 0; i < n; i++) {
        printf("decode_s.%d %.9f\n", i, median(dec + i * reps, reps));
        printf("preprocess_s.%d %.9f\n", i, median(pre + i * reps, reps));
    }
    printf("images %d\ntotal_s %.9f\n", n, median(tot, reps));
    free(dec);
    free(pre);
    free(tot);
    return 0;
}

int main(int argc, char **argv) {
    int rc = 2;
    if (argc > 1 && !strcmp(argv[1], "tok")) rc = run_tok(argc, argv);
    if (argc > 1 && !strcmp(argv[1], "img")) rc = run_img(argc, argv);
    if (rc == 2)
        fprintf(stderr,
                "usage: bench_data tok <tokenizer.json> <corpus.bin> <big.txt> <reps> [dump.bin]\n"
                "       bench_data img <size> <pad 0|1> <reps> <dump_dir|-> <image>...\n");
    return rc;
}
