// tests/test_golden_lora.c - LoRA against PEFT 0.13 (tests/golden/lora/, written by
// tools/golden/gen_lora.py).
//
// The toy model is a module tree of et_linear_layers named as LLaMA's (2 layers, D=16,
// I=24, no biases): per layer x += o(silu(q x) * k x + v x); x += down(silu(gate x) * up x).
// Cases (r=4, alpha=8, lora_B non-zero): "std" targets [q_proj, v_proj, down_proj];
// "rs" targets the regex .*\.(k_proj|up_proj|o_proj) with use_rslora.
// Per case:
// - attach with the PEFT config selects exactly the modules PEFT adapted;
// - the PEFT adapter directory imports; forward output, d/dx and the gradient of every
//   lora_A / lora_B match PEFT within 1e-4 (reference in float64);
// - merge equals merge_and_unload within 1e-5 and gives the same output; unmerge restores W;
// - the exported adapter directory has PEFT's tensor keys and shapes and its config keys and
//   values, and re-imports to the same output.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/autograd.h"
#include "../core/ops.h"
#include "../core/safetensors.h"
#include "../core/status.h"
#include "train/models/lora.h"
#include "train/models/nn.h"
#include "test_util.h"

#define TOL 1e-4
#define DIR "tests/golden/lora"
enum { NL = 2, PER = 7, NLIN = NL * PER };

static const char *const k_mod[PER] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                       "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                       "mlp.down_proj"};
static et_st_file *g_ref, *g_base;

static et_tensor *load_from(et_st_file *f, const char *name) {
    et_tensor *t = NULL;
    et_status s = et_st_load(f, name, &t);
    if (s) {
        fprintf(stderr, "golden fixture: %s (regenerate with tools/golden/gen_lora.py)\n",
                et_status_msg(s));
        et_status_free(s);
        exit(1);
    }
    return t;
}

static void compare(const et_tensor *got, const et_tensor *ref, double tol, const char *what) {
    char b1[96], b2[96];
    CHECK(got && et_same_shape(got, ref), "%s: shape %s, reference %s", what,
          got ? et_shape_str(got, b1, sizeof b1) : "(null)", et_shape_str(ref, b2, sizeof b2));
    if (!got) return;
    double err = tensor_rel_err(got, ref);
    CHECK(err <= tol, "%s: relative error %.3g > %.3g", what, err, tol);
    const char *v = getenv("GOLDEN_VERBOSE");
    if (v && *v && *v != '0') printf("     %-60s rel err %.3g\n", what, err);
}

// The toy model: NLIN layers with f32 copies of the base weights (frozen).
static void toy_init(et_linear_layer *ls, et_linear_layer **ptrs) {
    memset(ls, 0, sizeof(et_linear_layer) * NLIN);
    for (int l = 0; l < NL; l++)
        for (int j = 0; j < PER; j++) {
            et_linear_layer *y = &ls[l * PER + j];
            snprintf(y->name, sizeof y->name, "model.layers.%d.%s", l, k_mod[j]);
            char nm[200];
            snprintf(nm, sizeof nm, "%s.weight", y->name);
            et_tensor *w = load_from(g_base, nm);
            y->weight = et_clone(w);
            et_release(w);
            ptrs[l * PER + j] = y;
        }
}

static void toy_free(et_linear_layer *ls) {
    for (int i = 0; i < NLIN; i++) et_linear_layer_free(&ls[i]);
}

static et_tensor *toy_forward(et_linear_layer *ls, et_tensor *x) {
    x = et_retain(x);
    for (int l = 0; l < NL; l++) {
        et_linear_layer *y = &ls[l * PER];
        et_tensor *q = et_linear_layer_forward(&y[0], x, NULL);
        et_tensor *k = et_linear_layer_forward(&y[1], x, NULL);
        et_tensor *v = et_linear_layer_forward(&y[2], x, NULL);
        et_tensor *sq = et_silu(q);
        et_tensor *m = et_mul(sq, k);
        et_tensor *a = et_add(m, v);
        et_tensor *o = et_linear_layer_forward(&y[3], a, NULL);
        et_tensor *x2 = et_add(x, o);
        et_release(q), et_release(k), et_release(v), et_release(sq), et_release(m);
        et_release(a), et_release(o), et_release(x);
        et_tensor *g = et_linear_layer_forward(&y[4], x2, NULL);
        et_tensor *u = et_linear_layer_forward(&y[5], x2, NULL);
        et_tensor *s = et_swiglu(g, u);
        et_tensor *d = et_linear_layer_forward(&y[6], s, NULL);
        x = et_add(x2, d);
        et_release(g), et_release(u), et_release(s), et_release(d), et_release(x2);
    }
    return x;
}

static et_tensor *forward_nograd(et_linear_layer *ls, et_tensor *x) {
    et_no_grad_begin();
    et_tensor *y = toy_forward(ls, x);
    et_no_grad_end();
    return y;
}

// Key sets, shapes and config of two adapter directories.
static void compare_adapter_dirs(const char *mine, const char *peft) {
    char p1[256], p2[256];
    snprintf(p1, sizeof p1, "%s/adapter_model.safetensors", mine);
    snprintf(p2, sizeof p2, "%s/adapter_model.safetensors", peft);
    et_st_file *a = NULL, *b = NULL;
    et_status s = et_st_open(p1, &a);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    s = et_st_open(p2, &b);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    if (a && b) {
        CHECK(et_st_num_tensors(a) == et_st_num_tensors(b), "%d vs %d tensors",
              et_st_num_tensors(a), et_st_num_tensors(b));
        for (int i = 0; i < et_st_num_tensors(b); i++) {
            const char *nm = et_st_name(b, i);
            et_st_info ia, ib;
            et_status sa = et_st_info_of(a, nm, &ia), sb = et_st_info_of(b, nm, &ib);
            CHECK(!sa && !sb, "key %s: %s", nm, et_status_msg(sa));
            if (!sa && !sb)
                CHECK(ia.ndim == 2 && ib.ndim == 2 && ia.shape[0] == ib.shape[0] &&
                          ia.shape[1] == ib.shape[1] && !strcmp(ia.dtype, ib.dtype),
                      "%s shape", nm);
            et_status_free(sa), et_status_free(sb);
        }
        CHECK(et_st_metadata(a, "format") && !strcmp(et_st_metadata(a, "format"), "pt"), "meta");
    }
    et_st_close(a), et_st_close(b);

    snprintf(p1, sizeof p1, "%s/adapter_config.json", mine);
    snprintf(p2, sizeof p2, "%s/adapter_config.json", peft);
    char *t[2] = {NULL, NULL};
    const char *ps[2] = {p1, p2};
    for (int i = 0; i < 2; i++) {
        FILE *fp = fopen(ps[i], "rb");
        CHECK(fp != NULL, "open %s", ps[i]);
        if (!fp) continue;
        t[i] = calloc(1 << 16, 1);
        size_t n = fread(t[i], 1, (1 << 16) - 1, fp);
        (void)n;
        fclose(fp);
    }
    cJSON *ja = t[0] ? cJSON_Parse(t[0]) : NULL, *jb = t[1] ? cJSON_Parse(t[1]) : NULL;
    CHECK(ja && jb, "config JSON");
    if (ja && jb) {
        int na = cJSON_GetArraySize(ja), nb = cJSON_GetArraySize(jb);
        CHECK(na == nb, "config has %d keys, PEFT's %d", na, nb);
        for (cJSON *e = jb->child; e; e = e->next) {
            cJSON *m = cJSON_GetObjectItemCaseSensitive(ja, e->string);
            CHECK(m != NULL, "config key %s missing", e->string);
            if (!m) continue;
            bool eq;
            if (cJSON_IsArray(e) && cJSON_IsArray(m)) {  // target_modules: a set
                eq = cJSON_GetArraySize(e) == cJSON_GetArraySize(m);
                for (cJSON *x = e->child; x && eq; x = x->next) {
                    bool found = false;
                    for (cJSON *y = m->child; y; y = y->next) found |= cJSON_Compare(x, y, true);
                    eq = found;
                }
            } else if (cJSON_IsNumber(e)) {
                eq = cJSON_IsNumber(m) && e->valuedouble == m->valuedouble;
            } else {
                eq = cJSON_Compare(e, m, true);
            }
            CHECK(eq, "config key %s differs from PEFT's", e->string);
        }
    }
    cJSON_Delete(ja), cJSON_Delete(jb);
    free(t[0]), free(t[1]);
}

static void run_case(const char *tag) {
    char dir[128], nm[4096];
    snprintf(dir, sizeof dir, DIR "/%s", tag);
    et_linear_layer ls[NLIN], *ptrs[NLIN];

    // 1. attach with PEFT's config picks the modules PEFT adapted.
    et_lora_config cfg;
    et_status s = et_lora_read_config(dir, &cfg);
    CHECK(!s, "%s", et_status_msg(s));
    if (s) {
        et_status_free(s);
        return;
    }
    toy_init(ls, ptrs);
    int na = 0;
    s = et_lora_attach(&cfg, NLIN, ptrs, &na);
    CHECK(!s && na == 6, "attach: %s, %d layers", et_status_msg(s), na);
    et_status_free(s);
    et_st_file *pf = NULL;
    snprintf(nm, sizeof nm, "%s/adapter_model.safetensors", dir);
    s = et_st_open(nm, &pf);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    for (int i = 0; pf && i < NLIN; i++) {
        snprintf(nm, sizeof nm, "base_model.model.%s.lora_A.weight", ls[i].name);
        CHECK((et_st_find(pf, nm) >= 0) == (ls[i].lora_a != NULL), "%s targeted differently",
              ls[i].name);
    }
    et_st_close(pf);
    toy_free(ls);

    // 2. import PEFT's adapter; forward and gradients.
    toy_init(ls, ptrs);
    et_lora_config got;
    s = et_lora_load_adapter(dir, NLIN, ptrs, &got);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    CHECK(got.r == 4 && got.alpha == 8 && got.use_rslora == !strcmp(tag, "rs"), "config");
    et_tensor *x = load_from(g_ref, "x"), *gy = load_from(g_ref, "gy");
    et_tensor *xg = et_clone(x);
    et_set_requires_grad(xg, true);
    et_tensor *y = toy_forward(ls, xg);
    snprintf(nm, sizeof nm, "%s/y", tag);
    et_tensor *yref = load_from(g_ref, nm);
    compare(y, yref, TOL, nm);
    et_backward_grads(1, &y, &gy);
    snprintf(nm, sizeof nm, "%s/gx", tag);
    et_tensor *r = load_from(g_ref, nm);
    compare(xg->grad, r, TOL, nm);
    et_release(r);
    for (int i = 0; i < NLIN; i++) {
        CHECK(ls[i].weight->grad == NULL, "%s: frozen base got a gradient", ls[i].name);
        if (!ls[i].lora_a) continue;
        for (int w = 0; w < 2; w++) {
            snprintf(nm, sizeof nm, "%s/grad/base_model.model.%s.lora_%c.weight", tag, ls[i].name,
                     w ? 'B' : 'A');
            r = load_from(g_ref, nm);
            compare(w ? ls[i].lora_b->grad : ls[i].lora_a->grad, r, TOL, nm);
            et_release(r);
        }
    }
    et_release(y);

    // 3. merge / unmerge.
    et_tensor *w0[NLIN];
    for (int i = 0; i < NLIN; i++) w0[i] = et_clone(ls[i].weight);
    et_lora_merge(NLIN, ptrs);
    for (int i = 0; i < NLIN; i++) {
        if (!ls[i].lora_a) continue;
        CHECK(ls[i].merged, "merged flag");
        snprintf(nm, sizeof nm, "%s/merged/%s.weight", tag, ls[i].name);
        r = load_from(g_ref, nm);
        compare(ls[i].weight, r, 1e-5, nm);
        et_release(r);
    }
    y = forward_nograd(ls, x);
    snprintf(nm, sizeof nm, "%s/y (merged)", tag);
    compare(y, yref, TOL, nm);
    et_release(y);
    et_lora_unmerge(NLIN, ptrs);
    for (int i = 0; i < NLIN; i++) {
        CHECK(!ls[i].merged, "unmerged flag");
        CHECK(tensor_rel_err(ls[i].weight, w0[i]) < 1e-6, "%s: unmerge", ls[i].name);
        et_release(w0[i]);
    }

    // 4. export, compare with PEFT's directory, re-import.
    char tmp[] = "/tmp/emotune_lora_XXXXXX";
    CHECK(mkdtemp(tmp) != NULL, "mkdtemp");
    s = et_lora_save_adapter(tmp, &got, NLIN, ptrs);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    compare_adapter_dirs(tmp, dir);
    et_linear_layer ls2[NLIN], *ptrs2[NLIN];
    toy_init(ls2, ptrs2);
    s = et_lora_load_adapter(tmp, NLIN, ptrs2, NULL);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    y = forward_nograd(ls2, x);
    snprintf(nm, sizeof nm, "%s/y (re-imported)", tag);
    compare(y, yref, TOL, nm);
    for (int i = 0; i < NLIN; i++)
        if (ls[i].lora_a)
            CHECK(tensor_rel_err(ls2[i].lora_b, ls[i].lora_b) == 0, "%s: round trip", ls[i].name);
    et_release(y);
    toy_free(ls2);
    if (getenv("LORA_KEEP_EXPORT")) {
        printf("     exported adapter kept in %s\n", tmp);
    } else {
        snprintf(nm, sizeof nm, "%s/adapter_config.json", tmp);
        unlink(nm);
        snprintf(nm, sizeof nm, "%s/adapter_model.safetensors", tmp);
        unlink(nm);
        rmdir(tmp);
    }
    et_release(x), et_release(gy), et_release(xg), et_release(yref);
    toy_free(ls);
}

static void test_std(void) { run_case("std"); }
static void test_rslora(void) { run_case("rs"); }

int main(void) {
    et_status s = et_st_open(DIR "/ref.safetensors", &g_ref);
    if (!s) s = et_st_open(DIR "/base.safetensors", &g_base);
    if (s) {
        fprintf(stderr, "golden fixture: %s (run from the repo root)\n", et_status_msg(s));
        et_status_free(s);
        return 1;
    }
    RUN(test_std);
    RUN(test_rslora);
    et_st_close(g_ref);
    et_st_close(g_base);
    return test_summary();
}
