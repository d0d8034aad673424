// tests/test_golden_tiny_export.c - the tiny model's export (configs/tiny-random.json) end to
// end against PEFT + transformers (tests/golden/tiny_export/, written by
// tools/golden/gen_tiny_export.py from an `emotune export --merged --base` of a short
// training run on synthetic faces).
//
// - The committed trained trainables (adapter/ via et_lora_load_adapter, non-LoRA from
//   non_lora_trainables.safetensors) on the tiny model built from the config (random base
//   from model.init_seed): our forward on the fixed batch (batch.safetensors: pixels,
//   landmarks, ids/k, labels/k) gives the logits PEFT gives (PeftModel on base/llm, tower
//   from base/vision, projector + expert rebuilt in torch) within 1e-4 abs (f32; measured
//   6e-6 with logits up to 23), at every real position (image, expert and text tokens).
// - Re-export (et_export_emo_model, what `emotune export --merged --base` runs) to a temp
//   dir: adapter_config.json, base/llm/config.json and base/vision/config.json equal the
//   committed text; every adapter and non-LoRA tensor equals the committed one bit for bit;
//   every base tensor has the committed FNV-1a 64 digest of its bytes (base_digest.json:
//   the base is 4 MB, so only its digests are committed; the script computed them from the
//   files transformers loaded). So what Python verified is what C writes today.
// - The merged export, reloaded in C, gives the logits transformers gives on it (1e-4 abs),
//   and the base export, reloaded as model.llm_path / model.vision_path with the same
//   trainables, gives our logits exactly.
//
// Developer mode (writes the fixed batch; see gen_tiny_export.py):
//   test_golden_tiny_export --dump-batch DATA.json OUT.safetensors
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/autograd.h"
#include "../core/fileio.h"
#include "../core/ops.h"
#include "../core/safetensors.h"
#include "../core/status.h"
#include "../data/dataloader.h"
#include "../data/dataset.h"
#include "../data/template.h"
#include "../train/runconfig.h"
#include "test_util.h"
#include "train/emo_model.h"
#include "train/io/export.h"
#include "train/io/llama_load.h"

#define FIX EMOTUNE_SOURCE_DIR "/tests/golden/tiny_export"
#define CONFIG EMOTUNE_SOURCE_DIR "/configs/tiny-random.json"
#define TOL_ABS 1e-4

static void die(et_status s, const char *what) {
    if (!s) return;
    fprintf(stderr, "%s: %s (regenerate with tools/golden/gen_tiny_export.py)\n", what,
            et_status_msg(s));
    exit(1);
}

static bool verbose(void) {
    const char *v = getenv("GOLDEN_VERBOSE");
    return v && *v && *v != '0';
}

// The tiny model from the config (+ overrides), with the tokenizer path made absolute.
static et_status build_model(int n_over, const char **over, et_run_config *c, et_emo_model *m) {
    const char *all[8];
    int n = 0;
    all[n++] = "model.tokenizer=" EMOTUNE_SOURCE_DIR "/configs/tiny-emola/tokenizer.json";
    for (int i = 0; i < n_over; i++) all[n++] = over[i];
    ET_TRY(et_run_config_load(CONFIG, n, all, c));
    et_status s = et_emo_model_build(c, m);
    if (s) et_run_config_free(c);
    return s;
}

static void free_model(et_run_config *c, et_emo_model *m) {
    et_emo_model_free(m);
    et_run_config_free(c);
}

// The trained adapter and the non-LoRA trainables of dir (the fixture or an export).
static et_status load_trained(et_emo_model *m, const char *dir) {
    char p[4200];
    snprintf(p, sizeof p, "%s/adapter", dir);
    ET_TRY(et_lora_load_adapter(p, m->n_linears, m->linears, NULL));
    snprintf(p, sizeof p, "%s/non_lora_trainables.safetensors", dir);
    et_st_file *f = NULL;
    ET_TRY(et_st_open(p, &f));
    et_status s = NULL;
    for (int g = 0; g < m->n_groups && !s; g++) {
        if (!strcmp(m->groups[g].name, "lora")) continue;
        for (int i = 0; i < m->groups[g].n && !s; i++) {
            et_tensor *t = NULL;
            s = et_st_load(f, m->groups[g].names[i], &t);
            if (!s && t->numel != m->groups[g].params[i]->numel)
                s = et_err(ET_ERR_FORMAT, "%s: %s has the wrong shape", p, m->groups[g].names[i]);
            if (!s) et_copy_(m->groups[g].params[i], t);
            et_release(t);
        }
    }
    et_st_close(f);
    return s;
}

// ---- the fixed batch --------------------------------------------------------------

typedef struct {
    int B;
    et_tensor *ids[8], *labels[8];
    et_tensor *pixels, *landmarks;
} batch_t;

static void batch_load(batch_t *b) {
    memset(b, 0, sizeof *b);
    et_st_file *f = NULL;
    die(et_st_open(FIX "/batch.safetensors", &f), FIX "/batch.safetensors");
    die(et_st_load(f, "pixels", &b->pixels), "pixels");
    die(et_st_load(f, "landmarks", &b->landmarks), "landmarks");
    b->B = (int)b->pixels->shape[0];
    ET_ASSERT(b->B <= 8, "batch too large");
    for (int i = 0; i < b->B; i++) {
        char n[32];
        snprintf(n, sizeof n, "ids/%d", i);
        die(et_st_load(f, n, &b->ids[i]), n);
        snprintf(n, sizeof n, "labels/%d", i);
        die(et_st_load(f, n, &b->labels[i]), n);
    }
    et_st_close(f);
}

static void batch_free(batch_t *b) {
    for (int i = 0; i < b->B; i++) et_release(b->ids[i]), et_release(b->labels[i]);
    et_release(b->pixels), et_release(b->landmarks);
}

// logits [B, T, V] (f32, owned) and the spliced lengths (len[B]).
static et_status forward(et_emo_model *m, const batch_t *b, et_tensor **logits, int64_t *len) {
    et_no_grad_begin();
    et_tensor *prior = et_face_prior_forward(&m->prior, b->landmarks, NULL, NULL);
    et_mllm_input in = {
        .batch = b->B, .ids = b->ids, .labels = b->labels, .pixels = b->pixels, .prior = prior};
    et_rng_stream rng = {0, 0};
    et_mllm_batch sb;
    et_tensor *lg = NULL;
    et_status s = et_mllm_forward(&m->mllm, &in, &rng, &lg, &sb);
    et_release(prior);
    if (!s) {
        for (int i = 0; i < b->B; i++) len[i] = sb.len[i];
        *logits = et_empty(ET_F32, lg->ndim, lg->shape);
        et_copy_(*logits, lg);
        et_release(lg);
        et_mllm_batch_free(&sb);
    }
    et_no_grad_end();
    return s;
}

// Max |got - ref| over the real positions t < len[b] (ref [B, T', V] with T' >= len).
static double logits_err(const et_tensor *got, const et_tensor *ref, const int64_t *len) {
    if (got->ndim != 3 || ref->ndim != 3 || got->shape[0] != ref->shape[0] ||
        got->shape[2] != ref->shape[2])
        return INFINITY;
    const int64_t B = got->shape[0], T = got->shape[1], Tr = ref->shape[1], V = got->shape[2];
    const float *g = ET_DATA(const float, got), *r = ET_DATA(const float, ref);
    double e = 0;
    for (int64_t b = 0; b < B; b++) {
        if (len[b] > T || len[b] > Tr) return INFINITY;
        for (int64_t t = 0; t < len[b]; t++)
            for (int64_t v = 0; v < V; v++) {
                double d = fabs((double)g[(b * T + t) * V + v] - (double)r[(b * Tr + t) * V + v]);
                if (!(d <= e)) e = isnan(d) ? INFINITY : d;
            }
    }
    return e;
}

static et_tensor *ref_tensor(const char *name) {
    et_st_file *f = NULL;
    et_tensor *t = NULL;
    die(et_st_open(FIX "/ref.safetensors", &f), FIX "/ref.safetensors");
    die(et_st_load(f, name, &t), name);
    et_st_close(f);
    return t;
}

// ---- shared state -----------------------------------------------------------------

static batch_t g_batch;
static char g_tmp[256];      // the re-export of the committed trainables
static et_tensor *g_logits;  // our logits, committed trainables on the config's base
static int64_t g_len[8];
static et_status g_export_status;  // of et_export_emo_model into g_tmp/export

static void test_logits_match_peft(void) {
    et_tensor *ref = ref_tensor("logits_peft");
    et_tensor *ref_len = ref_tensor("len");
    for (int b = 0; b < g_batch.B; b++)
        CHECK(ET_DATA(int32_t, ref_len)[b] == g_len[b], "sample %d: spliced length %lld vs %d", b,
              (long long)g_len[b], ET_DATA(int32_t, ref_len)[b]);
    double e = logits_err(g_logits, ref, g_len);
    double mx = 0;
    for (int64_t i = 0; i < ref->numel; i++) mx = fmax(mx, fabs(ET_DATA(float, ref)[i]));
    CHECK(e <= TOL_ABS, "logits vs PEFT: max abs err %.3g > %.3g (max |logit| %.3g)", e, TOL_ABS,
          mx);
    if (verbose()) printf("     logits vs PEFT: max abs err %.3g, max |logit| %.3g\n", e, mx);
    // PEFT's merge_and_unload gives the same logits (checked in the script; here as a
    // sanity check of the fixture itself).
    et_tensor *mref = ref_tensor("logits_peft_merged");
    double em = logits_err(g_logits, mref, g_len);
    CHECK(em <= TOL_ABS, "logits vs PEFT merge_and_unload: max abs err %.3g", em);
    if (verbose()) printf("     logits vs PEFT merge_and_unload: max abs err %.3g\n", em);
    et_release(ref), et_release(ref_len), et_release(mref);
}

static bool same_text(const char *a_path, const char *b_path) {
    char *a = NULL, *b = NULL;
    et_status s1 = et_read_file(a_path, ET_CONFIG_MAX_BYTES, &a, NULL);
    et_status s2 = et_read_file(b_path, ET_CONFIG_MAX_BYTES, &b, NULL);
    bool ok = !s1 && !s2 && !strcmp(a, b);
    if (s1) fprintf(stderr, "  %s\n", et_status_msg(s1));
    if (s2) fprintf(stderr, "  %s\n", et_status_msg(s2));
    et_status_free(s1), et_status_free(s2);
    free(a), free(b);
    return ok;
}

// Every tensor of got equals ref's (names, dtype, shape, bytes) and none is extra.
static void same_tensors(const char *got_path, const char *ref_path) {
    et_st_file *g = NULL, *r = NULL;
    et_status s = et_st_open(got_path, &g);
    CHECK(!s, "%s", s ? et_status_msg(s) : "");
    et_status_free(s);
    die(et_st_open(ref_path, &r), ref_path);
    if (!g) {
        et_st_close(r);
        return;
    }
    CHECK(et_st_num_tensors(g) == et_st_num_tensors(r), "%s: %d tensors, committed %d", got_path,
          et_st_num_tensors(g), et_st_num_tensors(r));
    int n_diff = 0;
    for (int i = 0; i < et_st_num_tensors(r); i++) {
        const char *name = et_st_name(r, i);
        et_st_info gi, ri;
        et_status sg = et_st_info_of(g, name, &gi);
        die(et_st_info_of(r, name, &ri), name);
        bool ok = !sg && !strcmp(gi.dtype, ri.dtype) && gi.ndim == ri.ndim &&
                  gi.end - gi.begin == ri.end - ri.begin;
        for (int d = 0; ok && d < gi.ndim; d++) ok = gi.shape[d] == ri.shape[d];
        et_status_free(sg);
        if (ok) {
            et_tensor *a = NULL, *b = NULL;
            die(et_st_load(g, name, &a), name);
            die(et_st_load(r, name, &b), name);
            ok = a->dtype == b->dtype && !memcmp(et_data(a), et_data(b), et_nbytes(a));
            et_release(a), et_release(b);
        }
        if (!ok && n_diff++ < 5)
            CHECK(ok, "%s: tensor %s differs from the committed one", got_path, name);
    }
    CHECK(n_diff == 0, "%s: %d tensors differ", got_path, n_diff);
    et_st_close(g), et_st_close(r);
}

static uint64_t fnv1a64(const void *p, size_t n) {
    const unsigned char *c = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 1099511628211ull;
    return h;
}

// base_digest.json: {"<relative file>": {"<tensor>": {"dtype": "F32", "shape": [..],
// "fnv1a64": "<16 hex>"}}}
static void check_digests(const char *root) {
    char *txt = NULL;
    die(et_read_file(FIX "/base_digest.json", ET_CONFIG_MAX_BYTES, &txt, NULL), "base_digest.json");
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    CHECK(j && cJSON_IsObject(j), "base_digest.json does not parse");
    if (!j) return;
    int n_files = 0;
    for (cJSON *file = j->child; file; file = file->next, n_files++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", root, file->string);
        et_st_file *f = NULL;
        et_status s = et_st_open(p, &f);
        CHECK(!s, "%s", s ? et_status_msg(s) : "");
        et_status_free(s);
        if (!f) continue;
        CHECK(et_st_num_tensors(f) == cJSON_GetArraySize(file), "%s: %d tensors, committed %d", p,
              et_st_num_tensors(f), cJSON_GetArraySize(file));
        int n_bad = 0;
        for (cJSON *t = file->child; t; t = t->next) {
            et_st_info info;
            et_status si = et_st_info_of(f, t->string, &info);
            bool ok = !si;
            et_status_free(si);
            const cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype");
            const cJSON *sh = cJSON_GetObjectItemCaseSensitive(t, "shape");
            const cJSON *hx = cJSON_GetObjectItemCaseSensitive(t, "fnv1a64");
            ok = ok && cJSON_IsString(dt) && !strcmp(dt->valuestring, info.dtype) &&
                 cJSON_IsArray(sh) && cJSON_GetArraySize(sh) == info.ndim && cJSON_IsString(hx);
            for (int d = 0; ok && d < info.ndim; d++)
                ok = (int64_t)cJSON_GetArrayItem(sh, d)->valuedouble == info.shape[d];
            if (ok) {
                et_tensor *x = NULL;
                die(et_st_load(f, t->string, &x), t->string);
                char h[24];
                snprintf(h, sizeof h, "%016llx",
                         (unsigned long long)fnv1a64(et_data(x), et_nbytes(x)));
                ok = !strcmp(h, hx->valuestring);
                et_release(x);
            }
            if (!ok && n_bad++ < 5)
                CHECK(ok, "%s: tensor %s differs from the verified base", p, t->string);
        }
        CHECK(n_bad == 0, "%s: %d tensors differ", p, n_bad);
        et_st_close(f);
    }
    CHECK(n_files == 2, "base_digest.json lists %d files, expected 2", n_files);
    cJSON_Delete(j);
}

static void test_reexport_equals_fixture(void) {
    CHECK(!g_export_status, "et_export_emo_model: %s",
          g_export_status ? et_status_msg(g_export_status) : "");
    if (g_export_status) return;
    char got[512], ref[512];
    const char *texts[] = {"adapter/adapter_config.json", "base/llm/config.json",
                           "base/vision/config.json"};
    for (int i = 0; i < 3; i++) {
        snprintf(got, sizeof got, "%s/export/%s", g_tmp, texts[i]);
        snprintf(ref, sizeof ref, "%s/%s", FIX, texts[i]);
        CHECK(same_text(got, ref), "%s differs from the committed %s", got, ref);
    }
    const char *tensors[] = {"adapter/adapter_model.safetensors",
                             "non_lora_trainables.safetensors"};
    for (int i = 0; i < 2; i++) {
        snprintf(got, sizeof got, "%s/export/%s", g_tmp, tensors[i]);
        snprintf(ref, sizeof ref, "%s/%s", FIX, tensors[i]);
        same_tensors(got, ref);
    }
    snprintf(got, sizeof got, "%s/export", g_tmp);
    check_digests(got);
}

static void test_merged_export_logits(void) {
    if (g_export_status) return;
    char p[512];
    snprintf(p, sizeof p, "%s/export/merged", g_tmp);
    et_llama *merged = NULL;
    et_status s = et_llama_load(p, ET_F32, &merged);
    CHECK(!s, "%s", s ? et_status_msg(s) : "");
    et_status_free(s);
    if (!merged) return;
    et_run_config c;
    et_emo_model m;
    die(build_model(0, NULL, &c, &m), "build");
    die(load_trained(&m, FIX), "load trainables");
    m.mllm.llm = merged;  // same embed_tokens; no adapters
    et_tensor *lg = NULL;
    int64_t len[8];
    s = forward(&m, &g_batch, &lg, len);
    CHECK(!s, "%s", s ? et_status_msg(s) : "");
    et_status_free(s);
    if (lg) {
        et_tensor *ref = ref_tensor("logits_merged_export");
        double e = logits_err(lg, ref, len);
        CHECK(e <= TOL_ABS, "merged export vs transformers: max abs err %.3g > %.3g", e, TOL_ABS);
        if (verbose()) printf("     merged export (C) vs transformers: max abs err %.3g\n", e);
        double e2 = logits_err(lg, g_logits, len);
        CHECK(e2 <= TOL_ABS, "merged vs unmerged in C: max abs err %.3g", e2);
        et_release(ref), et_release(lg);
    }
    m.mllm.llm = m.llm;
    et_llama_free(merged);
    free_model(&c, &m);
}

static void test_base_export_roundtrip(void) {
    if (g_export_status) return;
    char llm[600], vis[600];
    snprintf(llm, sizeof llm, "model.llm_path=%s/export/base/llm", g_tmp);
    snprintf(vis, sizeof vis, "model.vision_path=%s/export/base/vision", g_tmp);
    const char *over[] = {"model.llm=null", "model.vision=null", llm, vis};
    et_run_config c;
    et_emo_model m;
    et_status s = build_model(4, over, &c, &m);
    CHECK(!s, "model from the base export: %s", s ? et_status_msg(s) : "");
    et_status_free(s);
    if (s) return;
    die(load_trained(&m, FIX), "load trainables");
    et_tensor *lg = NULL;
    int64_t len[8];
    s = forward(&m, &g_batch, &lg, len);
    CHECK(!s, "%s", s ? et_status_msg(s) : "");
    et_status_free(s);
    if (lg) {
        double e = logits_err(lg, g_logits, len);
        CHECK(e == 0, "base export reloaded: logits differ by %.3g", e);
        et_release(lg);
    }
    free_model(&c, &m);
}

// A second export into the same directory is refused (nothing overwritten; train/io/export.h
// and tests/e2e/e2e_run_safety.sh cover --overwrite), and the base
// of a model whose adapters are merged is refused (its W is no longer the base).
static void test_export_errors(void) {
    if (g_export_status) return;
    et_run_config c;
    et_emo_model m;
    die(build_model(0, NULL, &c, &m), "build");
    char out[300];
    snprintf(out, sizeof out, "%s/export", g_tmp);
    et_status s = et_export_emo_model(out, &m, ET_EXPORT_BASE);
    CHECK(s && strstr(et_status_msg(s), "not empty") && strstr(et_status_msg(s), "--overwrite"),
          "second export: %s", s ? et_status_msg(s) : "accepted");
    et_status_free(s);
    snprintf(out, sizeof out, "%s/merged_base", g_tmp);
    et_lora_merge(m.n_linears, m.linears);
    s = et_export_emo_model(out, &m, ET_EXPORT_BASE);
    CHECK(s && strstr(et_status_msg(s), "merged"), "base of a merged model: %s",
          s ? et_status_msg(s) : "accepted");
    et_status_free(s);
    et_lora_unmerge(m.n_linears, m.linears);
    free_model(&c, &m);
}

// ---- developer mode: the fixed batch ----------------------------------------------

static int dump_batch(const char *data, const char *out) {
    et_run_config c;
    et_emo_model m;
    die(build_model(0, NULL, &c, &m), "build");
    et_dataset_opts o;
    memset(&o, 0, sizeof o);
    o.require_answer = true;
    o.landmark_dim = c.landmark_dim;
    et_dataset *ds = NULL;
    die(et_dataset_open(data, &o, &ds), data);
    const et_template *tmpl = NULL;
    die(et_template_get(c.template_name, &tmpl), "template");
    et_loader_opts lo = et_loader_opts_default();
    lo.batch_size = 2, lo.max_len = c.max_len, lo.image_size = (int)m.image_size;
    lo.pad_to_square = m.pad_to_square, lo.landmark_dim = c.landmark_dim, lo.workers = 0;
    lo.shuffle = false, lo.drop_last = true, lo.tmpl = tmpl, lo.tok = m.tok;
    lo.image_token = m.mllm.image_token;
    et_loader *l = NULL;
    die(et_loader_new(ds, &lo, &l), "loader");
    et_batch b;
    die(et_loader_next(l, &b), "batch");
    const char *names[2 + 2 * 8];
    et_tensor *ts[2 + 2 * 8];
    char nb[16][24];
    int n = 0;
    names[n] = "pixels", ts[n++] = b.pixels;
    names[n] = "landmarks", ts[n++] = b.landmarks;
    for (int i = 0; i < b.B && i < 8; i++) {
        snprintf(nb[2 * i], sizeof nb[0], "ids/%d", i);
        snprintf(nb[2 * i + 1], sizeof nb[0], "labels/%d", i);
        names[n] = nb[2 * i], ts[n++] = b.ids[i];
        names[n] = nb[2 * i + 1], ts[n++] = b.labels[i];
        printf("sample %d: %s, %lld tokens\n", i, b.sample_id[i], (long long)b.ids[i]->numel);
    }
    const char *meta[2] = {"format", "pt"};
    die(et_st_save(out, n, names, ts, 1, meta), out);
    et_batch_free(&b);
    et_loader_free(l);
    et_dataset_close(ds);
    free_model(&c, &m);
    printf("wrote %s\n", out);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "--dump-batch")) return dump_batch(argv[2], argv[3]);
    if (chdir(EMOTUNE_SOURCE_DIR)) return 1;
    batch_load(&g_batch);
    et_run_config c;
    et_emo_model m;
    die(build_model(0, NULL, &c, &m), "build the tiny model");
    die(load_trained(&m, FIX), "load the committed trainables");
    die(forward(&m, &g_batch, &g_logits, g_len), "forward");
    snprintf(g_tmp, sizeof g_tmp, "/tmp/emotune_tiny_export.%ld", (long)getpid());
    char out[300];
    snprintf(out, sizeof out, "%s/export", g_tmp);
    g_export_status = et_export_emo_model(
        out, &m, ET_EXPORT_ADAPTER | ET_EXPORT_TRAINABLES | ET_EXPORT_MERGED | ET_EXPORT_BASE);
    free_model(&c, &m);

    RUN(test_logits_match_peft);
    RUN(test_reexport_equals_fixture);
    RUN(test_merged_export_logits);
    RUN(test_base_export_roundtrip);
    RUN(test_export_errors);

    const char *keep = getenv("EMOTUNE_KEEP_EXPORT");
    if (!(keep && *keep))
        et_status_free(et_remove_tree(g_tmp));
    else
        printf("kept %s\n", g_tmp);
    et_status_free(g_export_status);
    et_release(g_logits);
    batch_free(&g_batch);
    return test_summary();
}
