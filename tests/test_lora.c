// tests/test_lora.c - LoRA mechanics: targeting, init statistics and determinism, frozen
// base, merge/unmerge round trips (f32 and bf16 weights), dropout only on the branch, and
// the error catalogue of adapter import.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/autograd.h"
#include "../core/ops.h"
#include "../core/rng.h"
#include "../core/safetensors.h"
#include "../core/status.h"
#include "train/models/lora.h"
#include "train/models/nn.h"
#include "test_util.h"

static void make_layer(et_linear_layer *l, const char *name, int64_t out, int64_t in, et_dtype dt) {
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", name);
    l->weight = test_rand_tensor(dt, 2, (int64_t[]){out, in}, 0.2);
    l->bias = test_rand_tensor(dt, 1, (int64_t[]){out}, 0.1);
    et_set_requires_grad(l->weight, true);  // attach must freeze it
    et_set_requires_grad(l->bias, true);
}

static et_lora_config targets(int r, double alpha, const char *t0, const char *t1) {
    et_lora_config c = et_lora_config_default();
    c.r = r, c.alpha = alpha, c.dropout = 0, c.seed = 42;
    snprintf(c.targets[c.n_targets++], sizeof c.targets[0], "%s", t0);
    if (t1) snprintf(c.targets[c.n_targets++], sizeof c.targets[0], "%s", t1);
    snprintf(c.base_model, sizeof c.base_model, "unit/test");
    return c;
}

static void test_matching(void) {
    et_lora_config c = targets(4, 8, "q_proj", "mlp.up_proj");
    const struct {
        const char *name;
        bool want;
    } cases[] = {
        {"model.layers.0.self_attn.q_proj", true},   {"q_proj", true},
        {"model.layers.0.self_attn.xq_proj", false}, {"model.layers.3.mlp.up_proj", true},
        {"model.layers.3.xmlp.up_proj", false},      {"model.layers.0.self_attn.k_proj", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        bool m = false;
        et_status s = et_lora_matches(&c, cases[i].name, &m);
        CHECK(!s && m == cases[i].want, "%s", cases[i].name);
        et_status_free(s);
    }
    snprintf(c.regex, sizeof c.regex, "%s", "model\\.layers\\.[01]\\..*(q|v)_proj");
    bool m = false;
    et_status s = et_lora_matches(&c, "model.layers.1.self_attn.v_proj", &m);
    CHECK(!s && m, "regex match");
    s = et_lora_matches(&c, "model.layers.2.self_attn.v_proj", &m);
    CHECK(!s && !m, "regex: layer 2");
    s = et_lora_matches(&c, "xmodel.layers.1.self_attn.v_proj", &m);
    CHECK(!s && !m, "regex is anchored");
    snprintf(c.regex, sizeof c.regex, "%s", "(unclosed");
    s = et_lora_matches(&c, "x", &m);
    CHECK(s && et_status_code(s) == ET_ERR_INVALID, "bad regex: %s", et_status_msg(s));
    et_status_free(s);
}

static void test_init(void) {
    enum { N = 3 };
    et_linear_layer ls[N], *p[N];
    make_layer(&ls[0], "m.layers.0.q_proj", 32, 64, ET_F32);
    make_layer(&ls[1], "m.layers.0.k_proj", 32, 64, ET_F32);
    make_layer(&ls[2], "m.layers.1.q_proj", 32, 64, ET_F32);
    for (int i = 0; i < N; i++) p[i] = &ls[i];
    et_lora_config c = targets(8, 16, "q_proj", NULL);
    int na = 0;
    et_status s = et_lora_attach(&c, N, p, &na);
    CHECK(!s && na == 2, "attached %d", na);
    CHECK(ls[1].lora_a == NULL && ls[1].weight->requires_grad, "k_proj untouched");
    const double bound = 1.0 / sqrt(64.0);
    for (int i = 0; i < N; i += 2) {
        et_tensor *a = ls[i].lora_a, *b = ls[i].lora_b;
        CHECK(a->ndim == 2 && a->shape[0] == 8 && a->shape[1] == 64 && b->shape[0] == 32 &&
                  b->shape[1] == 8,
              "shapes");
        double mn = 1, mx = -1, mean = 0;
        for (int64_t j = 0; j < a->numel; j++) {
            double v = et_get(a, j);
            mn = fmin(mn, v), mx = fmax(mx, v), mean += v / a->numel;
        }
        CHECK(mn >= -bound && mx < bound && mn < -0.9 * bound && mx > 0.9 * bound,
              "A range [%g, %g], bound %g", mn, mx, bound);
        CHECK(fabs(mean) < 0.2 * bound, "A mean %g", mean);
        double bs = 0;
        for (int64_t j = 0; j < b->numel; j++) bs += fabs(et_get(b, j));
        CHECK(bs == 0, "B must start at zero");
        CHECK(a->requires_grad && b->requires_grad, "A, B trainable");
        CHECK(!ls[i].weight->requires_grad && !ls[i].bias->requires_grad, "base frozen");
        CHECK_CLOSE(ls[i].lora_scale, 2.0, 1e-12);
    }
    CHECK(tensor_rel_err(ls[0].lora_a, ls[2].lora_a) > 0.1, "layers draw different A");
    // Offsets: layer 2's A is the stream right after layer 0's (packed).
    et_tensor *chk = et_empty(ET_F32, 2, (int64_t[]){8, 64});
    et_kaiming_uniform_(chk, sqrt(5.0), 42, 8 * 64);
    CHECK(tensor_rel_err(chk, ls[2].lora_a) == 0, "packed offsets");
    et_release(chk);
    // Same seed -> same A; attaching twice is an error.
    et_linear_layer l2;
    make_layer(&l2, "m.layers.0.q_proj", 32, 64, ET_F32);
    et_linear_layer *pl2 = &l2;
    s = et_lora_attach(&c, 1, &pl2, &na);
    CHECK(!s && tensor_rel_err(l2.lora_a, ls[0].lora_a) == 0, "deterministic init");
    s = et_lora_attach(&c, 1, &pl2, &na);
    CHECK(s && strstr(et_status_msg(s), "already has an adapter"), "%s", et_status_msg(s));
    et_status_free(s);
    et_linear_layer_free(&l2);
    // rsLoRA scale.
    c.use_rslora = true;
    et_linear_layer l3;
    make_layer(&l3, "q_proj", 4, 4, ET_F32);
    et_linear_layer *pl3 = &l3;
    s = et_lora_attach(&c, 1, &pl3, &na);
    CHECK(!s, "%s", et_status_msg(s));
    CHECK_CLOSE(l3.lora_scale, 16.0 / sqrt(8.0), 1e-12);
    et_linear_layer_free(&l3);
    for (int i = 0; i < N; i++) et_linear_layer_free(&ls[i]);
}

static void test_frozen_base_and_grads(void) {
    et_linear_layer l;
    make_layer(&l, "x.q_proj", 6, 5, ET_F32);
    et_linear_layer *p = &l;
    et_lora_config c = targets(2, 4, "q_proj", NULL);
    et_status s = et_lora_attach(&c, 1, &p, NULL);
    CHECK(!s, "%s", et_status_msg(s));
    et_tensor *x = test_rand_tensor(ET_F32, 2, (int64_t[]){3, 5}, 1.0);
    et_tensor *y = et_linear_layer_forward(&l, x, NULL);
    et_tensor *loss = et_sum_last(y);
    et_tensor *l2 = et_sum_last(loss);
    et_backward(l2);
    CHECK(l.weight->grad == NULL && l.bias->grad == NULL, "frozen base has no grad");
    CHECK(l.lora_b->grad != NULL && l.lora_a->grad != NULL, "A and B get gradients");
    double gb = 0;
    for (int64_t i = 0; l.lora_b->grad && i < l.lora_b->grad->numel; i++)
        gb += fabs(et_get(l.lora_b->grad, i));
    CHECK(gb > 0, "B gradient is non-zero");
    et_tensor *params[4];
    CHECK(et_lora_params(1, &p, params) == 2 && params[0] == l.lora_a && params[1] == l.lora_b,
          "params");
    et_release(x), et_release(y), et_release(loss), et_release(l2);
    et_linear_layer_free(&l);
}

static void merge_roundtrip(et_dtype dt) {
    et_linear_layer l;
    make_layer(&l, "x.v_proj", 12, 10, dt);
    et_linear_layer *p = &l;
    et_lora_config c = targets(4, 8, "v_proj", NULL);
    et_status s = et_lora_attach(&c, 1, &p, NULL);
    CHECK(!s, "%s", et_status_msg(s));
    for (int64_t i = 0; i < l.lora_b->numel; i++) et_set(l.lora_b, i, 0.3 * test_randn());
    et_tensor *x = test_rand_tensor(ET_F32, 2, (int64_t[]){4, 10}, 1.0);
    et_tensor *w0 = et_clone(l.weight);
    et_no_grad_begin();
    et_tensor *y0 = et_linear_layer_forward(&l, x, NULL);
    et_lora_merge(1, &p);
    CHECK(l.merged && l.weight->dtype == dt, "merged, dtype kept");
    et_tensor *y1 = et_linear_layer_forward(&l, x, NULL);
    // Expected merged weight in f64.
    double worst = 0, wmax = 0;
    for (int64_t o = 0; o < 12; o++)
        for (int64_t i = 0; i < 10; i++) {
            double d = 0;
            for (int k = 0; k < 4; k++)
                d += et_get(l.lora_b, o * 4 + k) * et_get(l.lora_a, k * 10 + i);
            double want = et_get(w0, o * 10 + i) + 2.0 * d;
            worst = fmax(worst, fabs(et_get(l.weight, o * 10 + i) - want));
            wmax = fmax(wmax, fabs(want));
        }
    const double tol = dt == ET_F32 ? 1e-6 : 8e-3;
    CHECK(worst / wmax < tol, "merged W rel err %.3g", worst / wmax);
    CHECK(tensor_rel_err(y1, y0) < (dt == ET_F32 ? 1e-5 : 2e-2), "merged output rel err %.3g",
          tensor_rel_err(y1, y0));
    et_lora_merge(1, &p);  // no-op when merged
    et_lora_unmerge(1, &p);
    CHECK(!l.merged, "unmerged");
    CHECK(tensor_rel_err(l.weight, w0) < (dt == ET_F32 ? 1e-6 : 1e-2), "unmerge rel err %.3g",
          tensor_rel_err(l.weight, w0));
    et_tensor *y2 = et_linear_layer_forward(&l, x, NULL);
    CHECK(tensor_rel_err(y2, y0) < (dt == ET_F32 ? 1e-5 : 3e-2), "after unmerge %.3g",
          tensor_rel_err(y2, y0));
    et_no_grad_end();
    // Exporting a merged layer is refused.
    et_lora_merge(1, &p);
    s = et_lora_save_adapter("/tmp/emotune_never_written", &c, 1, &p);
    CHECK(s && strstr(et_status_msg(s), "merged"), "%s", et_status_msg(s));
    et_status_free(s);
    et_release(x), et_release(w0), et_release(y0), et_release(y1), et_release(y2);
    et_linear_layer_free(&l);
}

static void test_merge_unmerge_f32(void) { merge_roundtrip(ET_F32); }
static void test_merge_unmerge_bf16(void) { merge_roundtrip(ET_BF16); }

static void test_dropout_branch_only(void) {
    et_linear_layer l;
    make_layer(&l, "q_proj", 8, 8, ET_F32);
    et_linear_layer *p = &l;
    et_lora_config c = targets(2, 4, "q_proj", NULL);
    c.dropout = 0.5;
    et_status s = et_lora_attach(&c, 1, &p, NULL);
    CHECK(!s && l.lora_dropout == 0.5, "dropout set");
    et_tensor *x = test_rand_tensor(ET_F32, 2, (int64_t[]){4, 8}, 1.0);
    et_no_grad_begin();
    // B = 0: the branch is zero with or without dropout, so the output is the base output.
    et_rng_stream rng = {1, 0};
    et_tensor *y0 = et_linear_layer_forward(&l, x, NULL);
    et_tensor *y1 = et_linear_layer_forward(&l, x, &rng);
    CHECK(tensor_rel_err(y1, y0) == 0 && rng.offset == 32, "dropout on the branch only");
    et_no_grad_end();
    et_release(x), et_release(y0), et_release(y1);
    et_linear_layer_free(&l);
}

// ---- adapter import errors --------------------------------------------------------

static char g_dir[64];

static void write_file(const char *name, const char *text) {
    char path[160];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *fp = fopen(path, "wb");
    CHECK(fp != NULL, "write %s", path);
    if (!fp) return;
    fputs(text, fp);
    fclose(fp);
}

static void rm_file(const char *name) {
    char path[160];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    unlink(path);
}

static const char *k_cfg_fmt =
    "{\"peft_type\": \"LORA\", \"task_type\": \"CAUSAL_LM\", \"r\": %d, \"lora_alpha\": 8,"
    " \"lora_dropout\": 0.0, \"target_modules\": [\"q_proj\", \"v_proj\"], \"bias\": \"%s\","
    " \"use_rslora\": false, \"modules_to_save\": null, \"fan_in_fan_out\": false}";

static et_status import(int n, et_linear_layer *const *p, int r, const char *bias) {
    char cfg[512];
    snprintf(cfg, sizeof cfg, k_cfg_fmt, r, bias);
    write_file("adapter_config.json", cfg);
    return et_lora_load_adapter(g_dir, n, p, NULL);
}

static void test_import_errors(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/emotune_lora_err_XXXXXX");
    CHECK(mkdtemp(g_dir) != NULL, "mkdtemp");
    // Source model: layers 0 and 1 with q_proj and v_proj, r = 4.
    enum { N = 4 };
    et_linear_layer ls[N], *p[N];
    const char *names[N] = {"model.layers.0.q_proj", "model.layers.0.v_proj",
                            "model.layers.1.q_proj", "model.layers.1.v_proj"};
    for (int i = 0; i < N; i++) make_layer(&ls[i], names[i], 8, 6, ET_F32), p[i] = &ls[i];
    et_lora_config c = targets(4, 8, "q_proj", "v_proj");
    et_status s = et_lora_attach(&c, N, p, NULL);
    CHECK(!s, "%s", et_status_msg(s));
    s = et_lora_save_adapter(g_dir, &c, N, p);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);

    // Good round trip into a fresh model first.
    et_linear_layer fresh[N], *pf[N];
    for (int i = 0; i < N; i++) make_layer(&fresh[i], names[i], 8, 6, ET_F32), pf[i] = &fresh[i];
    s = import(N, pf, 4, "none");
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    CHECK(fresh[3].lora_a && tensor_rel_err(fresh[3].lora_a, ls[3].lora_a) == 0, "imported A");

    // Missing adapter_config.json.
    rm_file("adapter_config.json");
    s = et_lora_load_adapter(g_dir, N, pf, NULL);
    CHECK(
        s && et_status_code(s) == ET_ERR_MISSING && strstr(et_status_msg(s), "adapter_config.json"),
        "%s", et_status_msg(s));
    et_status_free(s);

    // Wrong r vs tensor shapes: every tensor mis-shaped.
    s = import(N, pf, 8, "none");
    CHECK(s && strstr(et_status_msg(s),
                      "base_model.model.model.layers.0.q_proj.lora_A.weight "
                      "[4, 6] (expected [8, 6] for r=8)"),
          "%s", et_status_msg(s));
    CHECK(s && strstr(et_status_msg(s), "layers.0.q_proj.lora_B.weight [8, 4] (expected [8, 8]"),
          "%s", et_status_msg(s));
    CHECK(s && strstr(et_status_msg(s), "missing []"), "%s", et_status_msg(s));
    et_status_free(s);

    // Unknown module key: the target model lacks layer 1; and a missing one: it has an extra
    // targeted layer 2.
    et_linear_layer other[3], *po[3];
    make_layer(&other[0], names[0], 8, 6, ET_F32);
    make_layer(&other[1], names[1], 8, 6, ET_F32);
    make_layer(&other[2], "model.layers.2.q_proj", 8, 6, ET_F32);
    for (int i = 0; i < 3; i++) po[i] = &other[i];
    s = import(3, po, 4, "none");
    const char *msg = et_status_msg(s);
    CHECK(s && strstr(msg, "unexpected [base_model.model.model.layers.1.q_proj.lora_A.weight"),
          "%s", msg);
    CHECK(s && strstr(msg,
                      "missing [base_model.model.model.layers.2.q_proj.lora_A.weight, "
                      "base_model.model.model.layers.2.q_proj.lora_B.weight]"),
          "%s", msg);
    CHECK(other[0].lora_a == NULL, "a failed import leaves the layers untouched");
    et_status_free(s);

    // Config-level errors.
    s = import(N, pf, 4, "all");
    CHECK(s && et_status_code(s) == ET_ERR_UNSUPPORTED && strstr(et_status_msg(s), "bias"), "%s",
          et_status_msg(s));
    et_status_free(s);
    write_file("adapter_config.json", "{\"peft_type\": \"IA3\", \"r\": 4}");
    s = et_lora_load_adapter(g_dir, N, pf, NULL);
    CHECK(s && strstr(et_status_msg(s), "peft_type"), "%s", et_status_msg(s));
    et_status_free(s);
    write_file("adapter_config.json", "{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8}");
    s = et_lora_load_adapter(g_dir, N, pf, NULL);
    CHECK(s && strstr(et_status_msg(s), "target_modules"), "%s", et_status_msg(s));
    et_status_free(s);
    write_file("adapter_config.json", "not json");
    s = et_lora_load_adapter(g_dir, N, pf, NULL);
    CHECK(s && et_status_code(s) == ET_ERR_FORMAT, "%s", et_status_msg(s));
    et_status_free(s);
    // Missing adapter_model.safetensors.
    rm_file("adapter_model.safetensors");
    s = import(N, pf, 4, "none");
    CHECK(s && strstr(et_status_msg(s), "adapter_model.safetensors"), "%s", et_status_msg(s));
    et_status_free(s);

    rm_file("adapter_config.json");
    rmdir(g_dir);
    for (int i = 0; i < N; i++) et_linear_layer_free(&ls[i]), et_linear_layer_free(&fresh[i]);
    for (int i = 0; i < 3; i++) et_linear_layer_free(&other[i]);
}

static void test_save_trainables(void) {
    char dir[] = "/tmp/emotune_tr_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[96];
    snprintf(path, sizeof path, "%s/non_lora_trainables.safetensors", dir);
    et_tensor *t[2] = {et_full(ET_F32, 1, (int64_t[]){3}, 1.5),
                       et_full(ET_BF16, 2, (int64_t[]){2, 2}, -2)};
    const char *n[2] = {"model.mm_projector.0.bias", "model.mm_projector.0.weight"};
    et_status s = et_save_trainables(path, 2, n, t);
    CHECK(!s, "%s", et_status_msg(s));
    et_st_file *f = NULL;
    s = et_st_open(path, &f);
    CHECK(!s, "%s", et_status_msg(s));
    if (f) {
        et_tensor *w = NULL;
        s = et_st_load(f, n[1], &w);
        CHECK(!s && w->dtype == ET_BF16 && et_get(w, 3) == -2, "round trip");
        et_release(w);
        et_st_close(f);
    }
    et_status_free(s);
    unlink(path);
    rmdir(dir);
    et_release(t[0]), et_release(t[1]);
}

int main(void) {
    RUN(test_matching);
    RUN(test_init);
    RUN(test_frozen_base_and_grads);
    RUN(test_merge_unmerge_f32);
    RUN(test_merge_unmerge_bf16);
    RUN(test_dropout_branch_only);
    RUN(test_import_errors);
    RUN(test_save_trainables);
    return test_summary();
}
