// tests/test_mllm.c - unit tests of train/mllm: the splice (lengths, positions, labels,
// padding, mask, embedding rows, gradients to visual and prior tokens, truncation), an
// all-IGNORE sample (finite loss, zero gradients for it), input errors, and the LLaVA
// config parser (both layouts, defaults and errors).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/autograd.h"
#include "../core/ops.h"
#include "../core/status.h"
#include "train/models/llama.h"
#include "train/models/mllm.h"
#include "test_util.h"

enum { H = 16, V = 32, N = 3, P = 2, IMG = -200 };

static et_llama *tiny_llama(void) {
    et_llama_config c = et_llama_config_default();
    c.vocab_size = V, c.hidden_size = H, c.intermediate_size = 24, c.num_hidden_layers = 1;
    c.num_attention_heads = 2, c.num_key_value_heads = 1, c.head_dim = H / 2;
    return et_llama_new_random(&c, ET_F32, 0.2, 11);
}

static et_tensor *ivec(int n, const int32_t *v) {
    return et_from_data(ET_I32, 1, (int64_t[]){n}, v);
}

static et_tensor *leaf(int64_t b, int64_t k) {
    et_tensor *t = test_rand_tensor(ET_F32, 3, (int64_t[]){b, k, H}, 1.0);
    et_set_requires_grad(t, true);
    return t;
}

// Sample 0: [1 5 IMG 7 8] labels [-100 -100 -100 7 8]; sample 1: [IMG 4 9] labels [-100 4 9].
static const int32_t k_ids0[5] = {1, 5, IMG, 7, 8}, k_lab0[5] = {-100, -100, -100, 7, 8};
static const int32_t k_ids1[3] = {IMG, 4, 9}, k_lab1[3] = {-100, 4, 9};

static void test_splice_layout(void) {
    et_llama *m = tiny_llama();
    et_tensor *ids[2] = {ivec(5, k_ids0), ivec(3, k_ids1)};
    et_tensor *lab[2] = {ivec(5, k_lab0), ivec(3, k_lab1)};
    et_tensor *vis = leaf(2, N), *pri = leaf(2, P);
    et_mllm_batch b;
    et_status s = et_mllm_splice(m, IMG, 0, 2, ids, lab, vis, pri, &b);
    CHECK(!s, "%s", et_status_msg(s));
    // lengths: 4 text + 3 + 2 = 9; 2 text + 5 = 7.
    CHECK(b.B == 2 && b.T == 9 && b.len[0] == 9 && b.len[1] == 7, "T %lld len %lld %lld",
          (long long)b.T, (long long)b.len[0], (long long)b.len[1]);
    const int32_t want_lab[2][9] = {{-100, -100, -100, -100, -100, -100, -100, 7, 8},
                                    {-100, -100, -100, -100, -100, 4, 9, -100, -100}};
    for (int r = 0; r < 2; r++)
        for (int t = 0; t < 9; t++) {
            const int i = r * 9 + t;
            CHECK(ET_DATA(int32_t, b.labels)[i] == want_lab[r][t], "label [%d,%d] = %d", r, t,
                  ET_DATA(int32_t, b.labels)[i]);
            const int real = t < b.len[r];
            CHECK(ET_DATA(int32_t, b.mask)[i] == real, "mask [%d,%d]", r, t);
            CHECK(ET_DATA(int32_t, b.pos)[i] == (real ? t : 0), "pos [%d,%d]", r, t);
        }
    // Rows: sample 0 = e1 e5 v0 v1 v2 p0 p1 e7 e8; sample 1 = v0 v1 v2 p0 p1 e4 e9 0 0.
    // src: 0 = embed id, 1 = visual k, 2 = prior k, 3 = zero
    const int kind[2][9] = {{0, 0, 1, 1, 1, 2, 2, 0, 0}, {1, 1, 1, 2, 2, 0, 0, 3, 3}};
    const int arg[2][9] = {{1, 5, 0, 1, 2, 0, 1, 7, 8}, {0, 1, 2, 0, 1, 4, 9, 0, 0}};
    double maxd = 0;
    for (int r = 0; r < 2; r++)
        for (int t = 0; t < 9; t++)
            for (int d = 0; d < H; d++) {
                double want = 0;
                if (kind[r][t] == 0) want = et_get(m->embed_tokens, arg[r][t] * H + d);
                if (kind[r][t] == 1) want = et_get(vis, (r * N + arg[r][t]) * H + d);
                if (kind[r][t] == 2) want = et_get(pri, (r * P + arg[r][t]) * H + d);
                maxd = fmax(maxd, fabs(et_get(b.embeds, (r * 9 + t) * H + d) - want));
            }
    CHECK(maxd == 0, "embedding rows differ by %g", maxd);
    // Gradients reach visual and prior tokens: d sum(embeds * g) = g at their rows.
    et_tensor *g = test_rand_tensor(ET_F32, 3, (int64_t[]){2, 9, H}, 1.0);
    et_backward_grads(1, &b.embeds, &g);
    CHECK(vis->grad && pri->grad, "grads");
    if (vis->grad && pri->grad) {
        double e = 0;
        for (int r = 0; r < 2; r++)
            for (int t = 0; t < 9; t++)
                for (int d = 0; d < H && kind[r][t] != 0 && kind[r][t] != 3; d++) {
                    et_tensor *gt = kind[r][t] == 1 ? vis->grad : pri->grad;
                    int64_t K = kind[r][t] == 1 ? N : P;
                    e = fmax(e, fabs(et_get(gt, (r * K + arg[r][t]) * H + d) -
                                     et_get(g, (r * 9 + t) * H + d)));
                }
        CHECK(e == 0, "visual/prior gradient rows differ by %g", e);
    }
    et_release(g);
    et_mllm_batch_free(&b);
    // Truncation to max_len 6: sample 0 keeps e1 e5 v0 v1 v2 p0.
    s = et_mllm_splice(m, IMG, 6, 2, ids, lab, vis, pri, &b);
    CHECK(!s && b.T == 6 && b.len[0] == 6 && b.len[1] == 6, "truncated T %lld", (long long)b.T);
    for (int t = 0; t < 6; t++) CHECK(ET_DATA(int32_t, b.labels)[t] == -100, "trunc label %d", t);
    et_mllm_batch_free(&b);
    et_tape_clear();
    for (int i = 0; i < 2; i++) et_release(ids[i]), et_release(lab[i]);
    et_release(vis), et_release(pri);
    et_llama_free(m);
}

static double grad_abs_sum(const et_tensor *t, int64_t from, int64_t to) {
    double s = 0;
    for (int64_t i = from; t && i < to; i++) s += fabs(et_get(t, i));
    return s;
}

static void test_all_ignore_sample(void) {
    et_llama *m = tiny_llama();
    const int32_t none0[5] = {-100, -100, -100, -100, -100};
    const int32_t none1[3] = {-100, -100, -100};
    et_tensor *ids[2] = {ivec(5, k_ids0), ivec(3, k_ids1)};
    // Sample 1 supervises nothing.
    et_tensor *lab[2] = {ivec(5, k_lab0), ivec(3, none1)};
    et_tensor *vis = leaf(2, N);
    et_mllm_batch b;
    et_status s = et_mllm_splice(m, IMG, 0, 2, ids, lab, vis, NULL, &b);
    CHECK(!s, "%s", et_status_msg(s));
    et_tensor *lg = et_llama_forward_embeds(m, b.embeds, b.pos, b.mask, NULL, NULL);
    et_tensor *loss = et_llama_loss(lg, b.labels);
    CHECK(isfinite(et_get(loss, 0)) && et_get(loss, 0) > 0, "loss %g", et_get(loss, 0));
    et_backward(loss);
    CHECK(vis->grad != NULL, "sample 0 visual grad");
    CHECK(grad_abs_sum(vis->grad, 0, N * H) > 0, "sample 0 gets gradient");
    CHECK(grad_abs_sum(vis->grad, N * H, 2 * N * H) == 0, "sample 1 (all IGNORE) gradient %g",
          grad_abs_sum(vis->grad, N * H, 2 * N * H));
    et_release(loss), et_release(lg);
    et_mllm_batch_free(&b);
    et_zero_grad(1, &vis);
    // The whole batch unsupervised: loss 0, not NaN, zero gradients.
    et_release(lab[0]);
    lab[0] = ivec(5, none0);
    s = et_mllm_splice(m, IMG, 0, 2, ids, lab, vis, NULL, &b);
    CHECK(!s, "%s", et_status_msg(s));
    lg = et_llama_forward_embeds(m, b.embeds, b.pos, b.mask, NULL, NULL);
    loss = et_llama_loss(lg, b.labels);
    CHECK(et_get(loss, 0) == 0, "all-IGNORE loss %g", et_get(loss, 0));
    if (loss->requires_grad)
        et_backward(loss);
    else
        et_tape_clear();
    CHECK(grad_abs_sum(vis->grad, 0, 2 * N * H) == 0, "all-IGNORE gradient");
    et_release(loss), et_release(lg);
    et_mllm_batch_free(&b);
    // NULL labels: nothing supervised either.
    s = et_mllm_splice(m, IMG, 0, 2, ids, NULL, vis, NULL, &b);
    CHECK(!s, "%s", et_status_msg(s));
    for (int64_t i = 0; !s && i < b.labels->numel; i++)
        CHECK(ET_DATA(int32_t, b.labels)[i] == -100, "NULL labels -> IGNORE");
    et_mllm_batch_free(&b);
    et_tape_clear();
    for (int i = 0; i < 2; i++) et_release(ids[i]), et_release(lab[i]);
    et_release(vis);
    et_llama_free(m);
}

static void expect_err(et_status s, const char *needle, const char *what) {
    CHECK(s != NULL, "%s: expected an error", what);
    if (s)
        CHECK(strstr(et_status_msg(s), needle), "%s: message \"%s\" lacks \"%s\"", what,
              et_status_msg(s), needle);
    et_status_free(s);
}

static void test_splice_errors(void) {
    et_llama *m = tiny_llama();
    const int32_t two[4] = {1, IMG, 3, IMG}, big[3] = {1, 40, 2}, lab2[2] = {-100, 1};
    et_tensor *a = ivec(4, two), *c = ivec(3, big), *ok = ivec(5, k_ids0), *l2 = ivec(2, lab2);
    et_tensor *vis = leaf(1, N);
    et_mllm_batch b;
    expect_err(et_mllm_splice(m, IMG, 0, 1, &a, NULL, vis, NULL, &b), "more than one",
               "two placeholders");
    expect_err(et_mllm_splice(m, IMG, 0, 1, &c, NULL, vis, NULL, &b), "outside", "token range");
    expect_err(et_mllm_splice(m, IMG, 0, 1, &ok, &l2, vis, NULL, &b), "labels", "label length");
    // labels past the vocabulary would abort in the loss (issue 12): refused here
    const int32_t lab_big[5] = {-100, -100, 40, 2, 2}, lab_neg[5] = {-100, -1, 2, 2, 2};
    et_tensor *lb = ivec(5, lab_big), *ln = ivec(5, lab_neg);
    expect_err(et_mllm_splice(m, IMG, 0, 1, &ok, &lb, vis, NULL, &b),
               "mllm splice: sample 0: label 40 at 2 outside [0, ", "label past the vocabulary");
    expect_err(et_mllm_splice(m, IMG, 0, 1, &ok, &ln, vis, NULL, &b),
               "label -1 at 1 outside", "negative label");
    et_release(lb), et_release(ln);
    expect_err(et_mllm_splice(m, IMG, 0, 1, &ok, NULL, NULL, NULL, &b), "no image",
               "placeholder without image");
    expect_err(et_mllm_splice(m, IMG, 0, 2, (et_tensor *[]){ok, ok}, NULL, vis, NULL, &b),
               "visual tokens", "visual batch");
    et_tape_clear();
    et_release(a), et_release(c), et_release(ok), et_release(l2), et_release(vis);
    et_llama_free(m);
}

static void test_llava_config_layouts(void) {
    et_llava_config c;
    et_status s = et_llava_config_parse(
        "{\"mm_hidden_size\": 1024, \"mm_vision_select_layer\": "
        "-2, \"mm_vision_tower\": \"openai/clip-vit-large-patch14"
        "-336\"}",
        "v15", &c);
    CHECK(!s, "%s", et_status_msg(s));
    CHECK(!c.hf_layout && c.projector == ET_PROJ_LINEAR && c.feature == ET_CLIP_PATCH &&
              !c.pad_to_square && c.image_token == -200 && c.select_layer == -2,
          "LLaVA-1.5 defaults");
    et_status_free(s);
    s = et_llava_config_parse(
        "{\"vision_config\": {\"hidden_size\": 1152}, \"text_config\": {},"
        " \"vision_feature_layer\": -1, \"image_token_index\": 32001,"
        " \"vision_feature_select_strategy\": \"full\"}",
        "hf", &c);
    CHECK(!s, "%s", et_status_msg(s));
    CHECK(c.hf_layout && c.projector == ET_PROJ_MLP2X_GELU && c.mm_hidden_size == 1152 &&
              c.select_layer == -1 && c.image_token == 32001 && c.feature == ET_CLIP_CLS_PATCH,
          "llava-hf fields");
    et_status_free(s);
    s = et_llava_config_parse("{\"text_config\": {}}", "hf", &c);
    CHECK(!s && c.mm_hidden_size == 1024 && c.select_layer == -2 && c.image_token == 32000 &&
              c.feature == ET_CLIP_PATCH,
          "llava-hf defaults");
    et_status_free(s);
}

static void test_llava_config_errors(void) {
    et_llava_config c;
    const char *base = "\"mm_vision_select_layer\": -2, \"mm_vision_tower\": \"t\"";
    char j[512];
    expect_err(et_llava_config_parse("{\"hidden_size\": 4}", "x.json", &c), "not a LLaVA config",
               "no LLaVA fields");
    expect_err(et_llava_config_parse("{nope", "x.json", &c), "not valid JSON", "bad JSON");
    snprintf(j, sizeof j, "{\"mm_hidden_size\": 8, \"mm_projector_type\": \"mlp3x_gelu\", %s}",
             base);
    expect_err(et_llava_config_parse(j, "x.json", &c), "mm_projector_type", "projector type");
    expect_err(et_llava_config_parse("{\"mm_vision_tower\": \"t\", \"mm_vision_select_layer\":"
                                     " -2}",
                                     "x.json", &c),
               "mm_hidden_size", "missing hidden");
    snprintf(j, sizeof j, "{\"mm_hidden_size\": \"8\", %s}", base);
    expect_err(et_llava_config_parse(j, "x.json", &c), "'mm_hidden_size': expected an integer",
               "hidden type");
    expect_err(
        et_llava_config_parse("{\"mm_hidden_size\": 8, \"mm_vision_tower\": \"t\"}", "x.json", &c),
        "mm_vision_select_layer", "missing layer");
    snprintf(j, sizeof j, "{\"mm_hidden_size\": 8, \"image_aspect_ratio\": \"anyres\", %s}", base);
    expect_err(et_llava_config_parse(j, "x.json", &c), "image_aspect_ratio", "anyres");
    snprintf(j, sizeof j, "{\"mm_hidden_size\": 8, \"mm_vision_select_feature\": \"cls\", %s}",
             base);
    expect_err(et_llava_config_parse(j, "x.json", &c), "mm_vision_select_feature", "feature");
    expect_err(et_llava_config_parse("{\"vision_config\": {}, \"projector_hidden_act\": "
                                     "\"relu\"}",
                                     "hf.json", &c),
               "projector_hidden_act", "act");
    expect_err(et_llava_config_parse("{\"vision_config\": {}, \"vision_feature_layer\": [-2, -5]}",
                                     "hf.json", &c),
               "vision_feature_layer", "layer list");
    expect_err(et_llava_config_parse("{\"vision_config\": 3}", "hf.json", &c), "vision_config",
               "vision_config type");
    expect_err(et_llava_config_parse("{\"vision_config\": {}, \"vision_feature_select_strategy\":"
                                     " \"cls\"}",
                                     "hf.json", &c),
               "select_strategy", "strategy");
    expect_err(et_llava_config_load("/nonexistent/config.json", &c), "/nonexistent/config.json",
               "missing file");
}

int main(void) {
    RUN(test_splice_layout);
    RUN(test_all_ignore_sample);
    RUN(test_splice_errors);
    RUN(test_llava_config_layouts);
    RUN(test_llava_config_errors);
    return test_summary();
}
