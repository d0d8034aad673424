// tests/test_fim_prior.c - Face Info Mining inside the MLLM (train/models/face_prior.h with
// model.face_prior fim, train/emo_model.h):
// - the K FIM tokens [B, K, H] come after the landmark token(s) when both parts are on;
// - the trainables are the aggregator (model.fim.*) and its projector (model.fim_projector.*),
//   in the "fim" group (train.fim_lr); with landmark+fim the landmark expert keeps "expert"; the
//   face network (model.face_net_path, FaceXFormer names) is in no group, gets no gradient, and is
//   bit-unchanged after AdamW steps on the prior's output;
// - fim.landmarks: network (the dataset's landmarks do not matter) or dataset (they do);
// - the raw priors (a store's rows: bf16 values, age probabilities) give the online tokens,
//   without running the network;
// - a network trained with another normalisation (config image_mean / image_std) gets the
//   pipeline's pixels converted to it;
// - the pixels are resized to the network's size when the tower's differs;
// - refusals, each with its message: no model.face_net_path, a face network with a missing
//   tensor (named with the directory), fim.landmarks=dataset with a landmark_dim other
//   than 136, fim.width not a multiple of fim.heads.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/autograd.h"
#include "../core/dtype.h"
#include "../core/ops.h"
#include "../core/optim.h"
#include "../core/rng.h"
#include "../core/safetensors.h"
#include "test_emo_util.h"
#include "test_util.h"
#include "train/emo_model.h"

#define NET "tests/golden/face_net/tiny"  // 64 px, fuse_dim 32, 18 decoder tokens

// A tiny model: decoder hidden 32, tower 32 px (so the FIM pixels are resized to 64), a FIM
// prior with K = 3 queries of width 16. Extra overrides come after these.
static et_status build(int n, const char *const *extra, et_emo_model *m) {
    const char *base[] = {
        ("model.llm={\"vocab_size\":64,\"hidden_size\":32,\"intermediate_size\":48,"
         "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2}"),
        ("model.vision={\"hidden_size\":16,\"intermediate_size\":32,\"num_hidden_layers\":2,"
         "\"num_attention_heads\":2,\"image_size\":32,\"patch_size\":8}"),
        "model.face_prior=fim",
        "model.face_net_path=" NET,
        "fim.queries=3",
        "fim.layers=1",
        "fim.width=16",
        "fim.heads=2",
    };
    return test_emo_build((int)(sizeof base / sizeof base[0]), base, n, extra, m);
}

static et_tensor *randn(int ndim, const int64_t *shape, uint64_t seed, double std) {
    et_tensor *t = et_zeros(ET_F32, ndim, shape);
    et_randn_(t, 0.0, std, seed, 0);
    return t;
}

// landmarks [B, 136] inside the face: uniform in [-0.8, 0.8]
static et_tensor *landmarks(int64_t B, uint64_t seed) {
    et_tensor *t = et_zeros(ET_F32, 2, (int64_t[]){B, 136});
    for (int64_t i = 0; i < t->numel; i++)
        ET_DATA(float, t)[i] = (float)(1.6 * (et_rng_u32(seed, (uint64_t)i) / 4294967296.0) - 0.8);
    return t;
}

static double max_abs_diff(et_tensor *a, et_tensor *b) {
    double m = 0;
    for (int64_t i = 0; i < a->numel; i++) {
        const double d = fabs((double)et_get(a, i) - (double)et_get(b, i));
        if (!(d <= m)) m = isnan(d) ? INFINITY : d;  // NaN counts as a difference
    }
    return m;
}

static void test_tokens_and_groups(void) {
    et_emo_model m;
    et_status s = build(1, (const char *[]){"train.fim_lr=0.003"}, &m);
    CHECK(!s, "%s", et_status_msg(s));
    if (s) return et_status_free(s);
    CHECK(m.prior.kind == ET_PRIOR_FIM && et_face_prior_tokens(&m.prior) == 3, "3 FIM tokens");
    CHECK(m.load_pixels && m.use_images, "pixels loaded");
    CHECK(et_face_prior_data_landmarks(&m.prior) == 0, "network landmarks: none from the data");
    const et_emo_group *e = test_emo_group(&m, "fim");
    CHECK(!test_emo_group(&m, "expert") && e && e->lr == 0.003, "fim group at train.fim_lr (%g)",
          e ? e->lr : -1);
    int fim = 0, proj = 0, other = 0;
    for (int i = 0; e && i < e->n; i++) {
        if (!strncmp(e->names[i], "model.fim.", 10))
            fim++;
        else if (!strncmp(e->names[i], "model.fim_projector.", 20))
            proj++;
        else
            other++;
        CHECK(e->params[i]->requires_grad, "%s trainable", e->names[i]);
    }
    CHECK(e && fim == m.prior.fim.n_params && proj == 4 && other == 0,
          "fim group: %d fim, %d projector, %d other", fim, proj, other);
    for (int g = 0; g < m.n_groups; g++)
        for (int i = 0; i < m.groups[g].n; i++)
            CHECK(!strstr(m.groups[g].names[i], "backbone") &&
                      !strstr(m.groups[g].names[i], "face_decoder"),
                  "face network tensor %s in group %s", m.groups[g].names[i], m.groups[g].name);
    et_tensor *pix = randn(4, (int64_t[]){2, 3, 32, 32}, 5, 1.0);
    et_no_grad_begin();
    et_tensor *y = et_face_prior_forward(&m.prior, NULL, pix, NULL);
    et_no_grad_end();
    CHECK(y->ndim == 3 && y->shape[0] == 2 && y->shape[1] == 3 && y->shape[2] == 32,
          "FIM tokens [2, 3, 32]");
    et_release(y), et_release(pix);
    et_emo_model_free(&m);
}

// Both parts: [landmark x repeat | FIM x K], the landmark rows equal the landmark part alone.
static void test_landmark_plus_fim(void) {
    const char *ov[] = {"model.face_prior=landmark+fim", "model.prior_repeat=2"};
    et_emo_model m;
    et_status s = build(2, ov, &m);
    CHECK(!s, "%s", et_status_msg(s));
    if (s) return et_status_free(s);
    CHECK(et_face_prior_tokens(&m.prior) == 5, "2 landmark + 3 FIM tokens");
    CHECK(test_emo_group(&m, "expert") && test_emo_group(&m, "expert")->n == 4 &&
              test_emo_group(&m, "fim"),
          "landmark+fim: the expert's 4 tensors in \"expert\", the rest in \"fim\"");
    CHECK(et_face_prior_data_landmarks(&m.prior) == 136, "the landmark part reads 136 values");
    et_tensor *pix = randn(4, (int64_t[]){2, 3, 32, 32}, 6, 1.0), *lm = landmarks(2, 7);
    et_no_grad_begin();
    et_tensor *y = et_face_prior_forward(&m.prior, lm, pix, NULL);
    CHECK(y->shape[1] == 5, "5 prior tokens");
    m.prior.kind = ET_PRIOR_LANDMARK;  // the landmark part alone
    et_tensor *l = et_face_prior_forward(&m.prior, lm, NULL, NULL);
    m.prior.kind = ET_PRIOR_LANDMARK_FIM;
    et_tensor *head = et_narrow(y, 1, 0, 2);
    et_no_grad_end();
    CHECK(max_abs_diff(head, l) == 0, "the first 2 rows are the landmark tokens");
    et_release(head), et_release(l), et_release(y), et_release(lm), et_release(pix);
    et_emo_model_free(&m);
}

// network: the data's landmarks are not read; dataset: they move the tokens.
static void test_landmark_source(void) {
    et_tensor *pix = randn(4, (int64_t[]){2, 3, 32, 32}, 8, 1.0);
    et_tensor *a = landmarks(2, 9), *b = landmarks(2, 10);
    for (int ds = 0; ds < 2; ds++) {
        const char *ov[] = {ds ? "fim.landmarks=dataset" : "fim.landmarks=network",
                            "fim.global=false"};
        et_emo_model m;
        et_status s = build(2, ov, &m);
        CHECK(!s, "%s", et_status_msg(s));
        if (s) {
            et_status_free(s);
            continue;
        }
        CHECK(et_face_prior_data_landmarks(&m.prior) == (ds ? 136 : 0), "data landmarks");
        et_no_grad_begin();
        et_tensor *ya = et_face_prior_forward(&m.prior, a, pix, NULL);
        et_tensor *yb = et_face_prior_forward(&m.prior, b, pix, NULL);
        et_no_grad_end();
        const double d = max_abs_diff(ya, yb);
        CHECK(ds ? d > 1e-4 : d == 0, "fim.landmarks=%s: tokens differ by %g",
              ds ? "dataset" : "network", d);
        et_release(ya), et_release(yb);
        et_emo_model_free(&m);
    }
    et_release(a), et_release(b), et_release(pix);
}

// Three AdamW steps on sum(tokens^2): every FIM trainable moves, the network does not and
// holds no gradient; its weights equal the file's bit for bit.
static void test_frozen_network(void) {
    et_emo_model m;
    et_status s = build(0, NULL, &m);
    CHECK(!s, "%s", et_status_msg(s));
    if (s) return et_status_free(s);
    const et_emo_group *e = test_emo_group(&m, "fim");
    et_adamw *opt = NULL;
    et_adamw_config ac = et_adamw_defaults();
    s = et_adamw_new(&ac, &opt);
    et_param_group pg = {.name = "fim", .lr = 1e-2};
    if (!s) s = et_adamw_add_group(opt, &pg, e->n, e->params, e->names, NULL);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    et_tensor **before = malloc(sizeof(*before) * (size_t)e->n);
    for (int i = 0; i < e->n; i++) before[i] = et_clone(e->params[i]);
    et_tensor *pix = randn(4, (int64_t[]){2, 3, 32, 32}, 11, 1.0);
    for (int step = 0; step < 3 && opt; step++) {
        et_tensor *y = et_face_prior_forward(&m.prior, NULL, pix, NULL);
        et_tensor *sq = et_mul(y, y);
        et_tensor *flat = et_reshape(sq, 2, (int64_t[]){1, sq->numel});
        et_tensor *loss = et_sum_last(flat);
        et_backward(loss);
        et_release(y), et_release(sq), et_release(flat), et_release(loss);
        et_adamw_step(opt, 1.0);
        et_zero_grad(e->n, e->params);
    }
    int moved = 0;
    for (int i = 0; i < e->n; i++) moved += max_abs_diff(before[i], e->params[i]) > 0;
    // the landmark-index embedding only reaches the loss through the local clues: all move
    CHECK(moved == e->n, "%d of %d FIM trainables moved", moved, e->n);
    const et_face_net *net = m.prior.net;
    et_st_file *f = NULL;
    s = et_st_open(NET "/model.safetensors", &f);
    CHECK(!s, "%s", et_status_msg(s));
    int n = et_face_net_params(net, NULL, NULL), same = 0, nograd = 0;
    const char **names = malloc(sizeof(*names) * (size_t)n);
    et_tensor **ts = malloc(sizeof(*ts) * (size_t)n);
    et_face_net_params(net, names, ts);
    for (int i = 0; i < n && f; i++) {
        et_tensor *t = NULL;
        et_status ls = et_st_load(f, names[i], &t);
        if (!ls && t->numel == ts[i]->numel &&
            !memcmp(et_data(t), et_data(ts[i]), sizeof(float) * (size_t)t->numel))
            same++;
        et_status_free(ls);
        et_release(t);
        nograd += !ts[i]->requires_grad && !ts[i]->grad;
    }
    CHECK(same == n, "%d of %d face-network tensors equal the file bit for bit", same, n);
    CHECK(nograd == n, "%d of %d face-network tensors without grad", nograd, n);
    if (f) et_st_close(f);
    free(names), free(ts);
    for (int i = 0; i < e->n; i++) et_release(before[i]);
    free(before);
    et_release(pix);
    et_adamw_free(opt);
    et_emo_model_free(&m);
}

// The raw priors (what a store holds) give the same tokens as the pixels, and with them the
// network does not run: poisoned with NaN weights, the tokens stay the same.
static void test_raw_priors(void) {
    et_emo_model m;
    et_status s = build(0, NULL, &m);
    CHECK(!s, "%s", et_status_msg(s));
    if (s) return et_status_free(s);
    const int64_t R = et_face_prior_raw_dim(&m.prior);
    CHECK(R == (19 + 68) * 32 + 136 + 15, "raw priors: %lld values", (long long)R);
    CHECK(strstr(et_face_prior_raw_layout(&m.prior),
                 "fim/1 global 19 x 32, local 68 x 32 at "
                 "network landmarks") != NULL,
          "layout: %s", et_face_prior_raw_layout(&m.prior));
    et_tensor *pix = randn(4, (int64_t[]){2, 3, 32, 32}, 12, 1.0);
    et_no_grad_begin();
    et_tensor *raw = et_face_prior_raw(&m.prior, NULL, pix);
    et_tensor *a = et_face_prior_forward(&m.prior, NULL, pix, NULL);
    int bf16 = 0;
    for (int64_t i = 0; i < raw->numel; i++) {
        const float v = ET_DATA(float, raw)[i];
        bf16 += et_bf16_to_f32(et_f32_to_bf16(v)) == v;
    }
    CHECK(bf16 == raw->numel, "%d of %lld raw values are bf16 values", bf16, (long long)raw->numel);
    const float *agr = ET_DATA(float, raw) + (19 + 68) * 32 + 136;
    double sum = 0;
    for (int k = 0; k < 8; k++) sum += agr[k];
    CHECK(fabs(sum - 1) < 0.02, "age probabilities sum to %g", sum);
    et_tensor *ts[512];
    const char *names[512];
    const int n = et_face_net_params(m.prior.net, NULL, NULL);
    CHECK(n <= 512, "%d tensors", n);
    et_face_net_params(m.prior.net, names, ts);
    for (int i = 0; i < n && i < 512; i++)  // all but the PE table (it encodes the points)
        if (!strstr(names[i], "positional_encoding_gaussian_matrix"))
            for (int64_t k = 0; k < ts[i]->numel; k++) ET_DATA(float, ts[i])[k] = NAN;
    et_tensor *b = et_face_prior_forward(&m.prior, NULL, NULL, raw);
    et_no_grad_end();
    CHECK(max_abs_diff(a, b) == 0, "tokens from the raw priors equal the online ones");
    et_release(a), et_release(b), et_release(raw), et_release(pix);
    et_emo_model_free(&m);
}

// A network whose config.json says ImageNet normalisation (a converted FaceXFormer) sees the
// pipeline's CLIP-normalised pixels converted: its raw priors equal the CLIP network's fed
// with the converted pixels by hand.
static void test_renormalise(void) {
    char tmp[] = "/tmp/et_fim_norm_XXXXXX", cmd[512];
    CHECK(mkdtemp(tmp) != NULL, "mkdtemp");
    snprintf(cmd, sizeof cmd,
             "cp " NET
             "/model.safetensors %s/ && jq '. + {image_mean: [0.485, 0.456, 0.406], "
             "image_std: [0.229, 0.224, 0.225]}' " NET "/config.json > %s/config.json",
             tmp, tmp);
    CHECK(system(cmd) == 0, "%s", cmd);
    char ov[600];
    snprintf(ov, sizeof ov, "model.face_net_path=%s", tmp);
    et_emo_model a, b;
    et_status s = build(0, NULL, &a);
    et_status s2 = build(1, (const char *[]){ov}, &b);
    CHECK(!s && !s2, "%s %s", et_status_msg(s), et_status_msg(s2));
    if (s || s2) return et_status_free(s), et_status_free(s2);
    CHECK(b.prior.net->cfg.image_std[0] == 0.229f, "config read: std %g",
          (double)b.prior.net->cfg.image_std[0]);
    const float cm[3] = {0.48145466f, 0.4578275f, 0.40821073f},
                cs[3] = {0.26862954f, 0.26130258f, 0.27577711f}, im[3] = {0.485f, 0.456f, 0.406f},
                is[3] = {0.229f, 0.224f, 0.225f};
    et_tensor *pix = randn(4, (int64_t[]){2, 3, 32, 32}, 13, 1.0), *conv = et_clone(pix);
    for (int64_t i = 0; i < conv->numel; i++) {
        const int c = (int)((i / (32 * 32)) % 3);
        float *p = ET_DATA(float, conv) + i;
        *p = *p * (cs[c] / is[c]) + (cm[c] - im[c]) / is[c];
    }
    et_no_grad_begin();
    et_tensor *ra = et_face_prior_raw(&a.prior, NULL, conv),
              *rb = et_face_prior_raw(&b.prior, NULL, pix);
    et_tensor *rn = et_face_prior_raw(&a.prior, NULL, pix);  // not converted
    et_no_grad_end();
    // the conversion runs after the 32 -> 64 resize here (before it by hand): rounding, then
    // bf16 steps of up to 1/128 of a value
    const double d = max_abs_diff(ra, rb), dn = max_abs_diff(rn, rb);
    CHECK(d < 0.02 && dn > 10 * d, "raw priors differ by %g (by %g unconverted)", d, dn);
    et_release(ra), et_release(rb), et_release(rn), et_release(pix), et_release(conv);
    et_emo_model_free(&a), et_emo_model_free(&b);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    CHECK(system(cmd) == 0, "%s", cmd);
}

static void expect_error(int n, const char *const *ov, const char *needle) {
    et_emo_model m;
    et_status s = build(n, ov, &m);
    CHECK(s && strstr(et_status_msg(s), needle), "expected an error with \"%s\", got: %s", needle,
          et_status_msg(s));
    if (!s)
        et_emo_model_free(&m);
    else
        et_status_free(s);
}

static void test_refusals(void) {
    expect_error(1, (const char *[]){"model.face_net_path="},
                 "model.face_prior=fim needs model.face_net_path");
    expect_error(2, (const char *[]){"fim.landmarks=dataset", "model.landmark_dim=212"},
                 "model.landmark_dim must be 136 (it is 212)");
    expect_error(1, (const char *[]){"fim.heads=3"},
                 "fim.width 16 is not a multiple of fim.heads 3");
    expect_error(2, (const char *[]){"fim.global=false", "fim.local=false"}, "fim.global");
    // a face network without one tensor
    char tmp[] = "/tmp/et_fim_prior_XXXXXX";
    CHECK(mkdtemp(tmp) != NULL, "mkdtemp");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp " NET "/config.json %s/", tmp);
    CHECK(system(cmd) == 0, "%s", cmd);
    et_st_file *f = NULL;
    et_status s = et_st_open(NET "/model.safetensors", &f);
    CHECK(!s, "%s", et_status_msg(s));
    if (s) return et_status_free(s);
    const int nt = et_st_num_tensors(f);
    const char **names = malloc(sizeof(*names) * (size_t)nt);
    et_tensor **ts = calloc((size_t)nt, sizeof(*ts));
    int k = 0;
    for (int i = 0; !s && i < nt; i++) {
        const char *name = et_st_name(f, i);
        if (!strcmp(name, "face_decoder.landmarks_token.weight")) continue;
        names[k] = name;
        s = et_st_load(f, name, &ts[k++]);
    }
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", tmp);
    if (!s) s = et_st_save(path, k, names, ts, 0, NULL);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    for (int i = 0; i < k; i++) et_release(ts[i]);
    free(names), free(ts);
    et_st_close(f);
    char ov[700];
    snprintf(ov, sizeof ov, "model.face_net_path=%s", tmp);
    expect_error(1, (const char *[]){ov}, "model.face_net_path");
    expect_error(1, (const char *[]){ov}, "face_decoder.landmarks_token.weight");
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    CHECK(system(cmd) == 0, "%s", cmd);
}

int main(void) {
    RUN(test_tokens_and_groups);
    RUN(test_landmark_plus_fim);
    RUN(test_landmark_source);
    RUN(test_frozen_network);
    RUN(test_raw_priors);
    RUN(test_renormalise);
    RUN(test_refusals);
    return test_summary();
}
