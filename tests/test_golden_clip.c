// tests/test_golden_clip.c - the CLIP vision tower and the mlp2x_gelu projector against
// transformers (tests/golden/clip/, written by tools/golden/gen_clip.py).
//
// - vision/: a CLIPVisionModel checkpoint (hidden 64, 4 layers, 4 heads, image 32, patch 8,
//   quick_gelu); full/: a CLIPModel checkpoint (vision hidden 48, 3 layers, image 24, patch 6,
//   gelu, eps 1e-6) whose text tower must be ignored. Both as save_pretrained wrote them.
// - Every select_layer (0..L and the negative forms, -2 = LLaVA's default) with "cls_patch"
//   and "patch" features matches hidden_states[k] within 1e-4 (max-norm relative; the
//   reference ran in float64). The forward records nothing on the tape (frozen).
// - The mlp2x_gelu projector (LLaVA names, and the same tensors under llava-hf names) on the
//   tower's hidden_states[-2] patch features matches torch within 1e-4.
// - Loader errors: a checkpoint with a missing, an unexpected and a mis-shaped tensor
//   yields one error naming all three.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/autograd.h"
#include "../core/ops.h"
#include "../core/safetensors.h"
#include "../core/status.h"
#include "train/models/clip.h"
#include "train/models/lora.h"
#include "train/models/projector.h"
#include "test_util.h"

#define TOL 1e-4
#define DIR "tests/golden/clip"

static et_st_file *g_ref;

static et_tensor *load_from(et_st_file *f, const char *name) {
    et_tensor *t = NULL;
    et_status s = et_st_load(f, name, &t);
    if (s) {
        fprintf(stderr, "golden fixture: %s (regenerate with tools/golden/gen_clip.py)\n",
                et_status_msg(s));
        et_status_free(s);
        exit(1);
    }
    return t;
}

static void compare(const et_tensor *got, const et_tensor *ref, const char *what) {
    char b1[96], b2[96];
    CHECK(et_same_shape(got, ref), "%s: shape %s, reference %s", what,
          et_shape_str(got, b1, sizeof b1), et_shape_str(ref, b2, sizeof b2));
    double err = tensor_rel_err(got, ref);
    CHECK(err <= TOL, "%s: relative error %.3g > %.3g", what, err, TOL);
    const char *v = getenv("GOLDEN_VERBOSE");
    if (v && *v && *v != '0') printf("     %-28s rel err %.3g\n", what, err);
}

static void check_tower(const char *tag, int64_t D, int L, et_clip_act act, double eps) {
    char path[256], name[64], what[96];
    snprintf(path, sizeof path, DIR "/%s", tag);
    et_clip_vision m;
    et_status s = et_clip_vision_load(path, &m);
    CHECK(!s, "%s", et_status_msg(s));
    if (s) {
        et_status_free(s);
        return;
    }
    CHECK(m.cfg.hidden_size == D && m.cfg.num_layers == L && m.cfg.act == act &&
              m.cfg.layer_norm_eps == eps,
          "%s: config", tag);
    CHECK(!strcmp(m.prefix, "vision_model."), "%s: prefix \"%s\"", tag, m.prefix);
    CHECK(!strcmp(m.layers[1].q.name, "vision_model.encoder.layers.1.self_attn.q_proj"), "name %s",
          m.layers[1].q.name);
    snprintf(name, sizeof name, "%s/pixel_values", tag);
    et_tensor *px = load_from(g_ref, name);
    for (int sel = -(L + 1); sel <= L; sel++) {
        int k = sel < 0 ? L + 1 + sel : sel;
        snprintf(name, sizeof name, "%s/hs%d", tag, k);
        et_tensor *ref = load_from(g_ref, name);  // [B, N+1, D]
        et_tensor *y = et_clip_vision_forward(&m, px, sel, ET_CLIP_CLS_PATCH);
        snprintf(what, sizeof what, "%s sel %d cls_patch", tag, sel);
        compare(y, ref, what);
        et_release(y);
        y = et_clip_vision_forward(&m, px, sel, ET_CLIP_PATCH);
        et_tensor *rp = et_narrow(ref, 1, 1, ref->shape[1] - 1);
        snprintf(what, sizeof what, "%s sel %d patch", tag, sel);
        compare(y, rp, what);
        CHECK(!y->requires_grad && et_tape_size() == 0, "frozen tower recorded a node");
        et_release(y), et_release(rp), et_release(ref);
    }
    et_release(px);
    et_clip_vision_free(&m);
}

static void test_vision_model(void) { check_tower("vision", 64, 4, ET_CLIP_QUICK_GELU, 1e-5); }
static void test_full_clip_model(void) { check_tower("full", 48, 3, ET_CLIP_GELU, 1e-6); }

static void test_bf16_weights(void) {
    // Weights rounded to bf16 still run (f32 activations); the error is bf16-sized.
    et_clip_vision m;
    et_status s = et_clip_vision_load(DIR "/vision", &m);
    CHECK(!s, "%s", et_status_msg(s));
    if (s) {
        et_status_free(s);
        return;
    }
    et_linear_layer *lin[32];
    int n = et_clip_vision_linears(&m, lin);
    CHECK(n == 24, "linears %d", n);
    for (int i = 0; i < n; i++) {
        et_tensor *w = et_cast(lin[i]->weight, ET_BF16);
        et_release(lin[i]->weight);
        lin[i]->weight = w;
    }
    et_tensor *px = load_from(g_ref, "vision/pixel_values");
    et_tensor *ref = load_from(g_ref, "vision/hs3");
    et_tensor *y = et_clip_vision_forward(&m, px, -2, ET_CLIP_CLS_PATCH);
    double err = tensor_rel_err(y, ref);
    CHECK(y->dtype == ET_F32 && err < 3e-2, "bf16 weights: rel err %.3g", err);
    et_release(y), et_release(ref), et_release(px);
    et_clip_vision_free(&m);
}

static void check_projector(et_projector *p, et_projector_names names) {
    CHECK(p->names == names, "layout %d", (int)p->names);
    et_tensor *x = load_from(g_ref, "proj/input");
    et_tensor *ref = load_from(g_ref, "proj/out");
    et_tensor *y = et_projector_forward(p, x);
    compare(y, ref, names == ET_PROJ_NAMES_LLAVA ? "projector (llava)" : "projector (llava-hf)");
    // On the tower's own features (select_layer -2, patch).
    et_clip_vision m;
    et_status s = et_clip_vision_load(DIR "/vision", &m);
    CHECK(!s, "%s", et_status_msg(s));
    if (!s) {
        et_tensor *px = load_from(g_ref, "vision/pixel_values");
        et_tensor *f = et_clip_vision_forward(&m, px, -2, ET_CLIP_PATCH);
        et_tensor *y2 = et_projector_forward(p, f);
        compare(y2, ref, "tower -> projector");
        et_tape_clear();
        et_release(y2), et_release(f), et_release(px);
        et_clip_vision_free(&m);
    }
    CHECK(y->requires_grad, "projector output must be trainable");
    et_tape_clear();
    et_release(y), et_release(ref), et_release(x);
}

static void test_projector(void) {
    et_st_file *f = NULL;
    et_status s = et_st_open(DIR "/projector.safetensors", &f);
    CHECK(!s, "%s", et_status_msg(s));
    if (s) {
        et_status_free(s);
        return;
    }
    et_projector p;
    s = et_projector_load(&p, ET_PROJ_MLP2X_GELU, 64, 40, f, NULL);
    CHECK(!s, "%s", et_status_msg(s));
    et_st_close(f);
    if (s) {
        et_status_free(s);
        return;
    }
    const char *names[4];
    et_tensor *ts[4];
    CHECK(et_projector_params(&p, names, ts) == 4, "params");
    CHECK(!strcmp(names[2], "model.mm_projector.2.weight"), "%s", names[2]);
    check_projector(&p, ET_PROJ_NAMES_LLAVA);

    // Same tensors under llava-hf names, through et_save_trainables.
    char tmp[] = "/tmp/emotune_proj_XXXXXX";
    CHECK(mkdtemp(tmp) != NULL, "mkdtemp");
    char path[128];
    snprintf(path, sizeof path, "%s/mm.safetensors", tmp);
    et_projector_set_names(&p, ET_PROJ_NAMES_LLAVA_HF);
    et_projector_params(&p, names, ts);
    CHECK(!strcmp(names[3], "multi_modal_projector.linear_2.bias"), "%s", names[3]);
    s = et_save_trainables(path, 4, names, ts);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    et_projector_free(&p);
    s = et_st_open(path, &f);
    CHECK(!s, "%s", et_status_msg(s));
    if (!s) {
        CHECK(!strcmp(et_st_metadata(f, "format") ? et_st_metadata(f, "format") : "", "pt"),
              "metadata");
        s = et_projector_load(&p, ET_PROJ_MLP2X_GELU, 64, 40, f, NULL);
        CHECK(!s, "%s", et_status_msg(s));
        if (!s) check_projector(&p, ET_PROJ_NAMES_LLAVA_HF);
        et_projector_free(&p);
        // Wrong dims: every tensor reported as mis-shaped.
        s = et_projector_load(&p, ET_PROJ_MLP2X_GELU, 32, 40, f, NULL);
        CHECK(s && strstr(et_status_msg(s), "linear_1.weight (expected [40, 32])"), "%s",
              et_status_msg(s));
        et_status_free(s);
        // A linear projector finds linear_2.* unexpected.
        s = et_projector_load(&p, ET_PROJ_LINEAR, 64, 40, f, NULL);
        CHECK(s && strstr(et_status_msg(s), "unexpected [multi_modal_projector.linear_2"), "%s",
              et_status_msg(s));
        et_status_free(s);
        s = NULL;
        et_st_close(f);
    }
    et_status_free(s);
    unlink(path);
    rmdir(tmp);
}

static void test_init_projector(void) {
    et_projector p;
    uint64_t off = et_projector_init(&p, ET_PROJ_MLP2X_GELU, 64, 40, ET_PROJ_NAMES_LLAVA, 7, 100);
    CHECK(off == 100 + 40 * 64 + 40 + 40 * 40 + 40, "offset %llu", (unsigned long long)off);
    double mx = 0;
    for (int64_t i = 0; i < p.l1.weight->numel; i++) mx = fmax(mx, fabs(et_get(p.l1.weight, i)));
    CHECK(mx <= 0.125 && mx > 0.1, "l1 bound %g", mx);
    CHECK(p.l1.weight->requires_grad && p.l2.bias->requires_grad, "trainable");
    et_projector_free(&p);
}

static void test_load_errors(void) {
    // Rewrite the vision checkpoint without pre_layrnorm.bias, with an extra tensor and a
    // mis-shaped fc1 weight, plus a text tensor that must be ignored.
    et_st_file *f = NULL;
    et_status s = et_st_open(DIR "/vision/model.safetensors", &f);
    CHECK(!s, "%s", et_status_msg(s));
    if (s) {
        et_status_free(s);
        return;
    }
    int n = et_st_num_tensors(f), k = 0;
    const char **names = calloc((size_t)n + 2, sizeof *names);
    et_tensor **ts = calloc((size_t)n + 2, sizeof *ts);
    for (int i = 0; i < n; i++) {
        const char *nm = et_st_name(f, i);
        if (!strcmp(nm, "vision_model.pre_layrnorm.bias")) continue;
        et_tensor *t = load_from(f, nm);
        if (!strcmp(nm, "vision_model.encoder.layers.2.mlp.fc1.weight")) {
            et_tensor *n2 = et_narrow(t, 0, 0, 100);
            et_release(t);
            t = n2;
        }
        names[k] = nm, ts[k++] = t;
    }
    names[k] = "vision_model.encoder.layers.0.extra", ts[k++] = et_zeros(ET_F32, 1, (int64_t[]){3});
    names[k] = "text_model.whatever", ts[k++] = et_zeros(ET_F32, 1, (int64_t[]){3});
    char tmp[] = "/tmp/emotune_clip_XXXXXX";
    CHECK(mkdtemp(tmp) != NULL, "mkdtemp");
    char path[128];
    snprintf(path, sizeof path, "%s/model.safetensors", tmp);
    s = et_st_save(path, k, names, ts, 0, NULL);
    CHECK(!s, "%s", et_status_msg(s));
    for (int i = 0; i < k; i++) et_release(ts[i]);
    free(names), free(ts);
    et_st_close(f);
    et_st_file *g = NULL;
    s = et_st_open(path, &g);
    CHECK(!s, "%s", et_status_msg(s));
    if (!s) {
        et_clip_vision m;
        memset(&m, 0, sizeof m);
        s = et_clip_config_load(DIR "/vision/config.json", &m.cfg);
        CHECK(!s, "%s", et_status_msg(s));
        s = et_clip_vision_load_weights(&m, g, NULL, NULL);
        const char *msg = et_status_msg(s);
        CHECK(s && strstr(msg, "missing [vision_model.pre_layrnorm.bias]") &&
                  strstr(msg,
                         "vision_model.encoder.layers.2.mlp.fc1.weight [100, 64] "
                         "(expected [128, 64])") &&
                  strstr(msg, "unexpected [vision_model.encoder.layers.0.extra]") &&
                  !strstr(msg, "text_model"),
              "%s", msg);
        CHECK(m.class_embedding == NULL && m.layers == NULL, "nothing kept after an error");
        et_status_free(s);
        s = NULL;
        et_st_close(g);
    }
    et_status_free(s);
    unlink(path);
    rmdir(tmp);
    // Config errors.
    et_clip_config c;
    s = et_clip_config_from_json("{\"vision_config\":{\"hidden_act\":\"relu\"}}", "cfg", &c);
    CHECK(s && et_status_code(s) == ET_ERR_UNSUPPORTED, "%s", et_status_msg(s));
    et_status_free(s);
    s = et_clip_config_from_json("{\"hidden_size\":30,\"num_attention_heads\":4}", "cfg", &c);
    CHECK(s && strstr(et_status_msg(s), "multiple"), "%s", et_status_msg(s));
    et_status_free(s);
    s = et_clip_config_from_json("{}", "cfg", &c);
    CHECK(!s && c.hidden_size == 768 && c.patch_size == 32 && c.act == ET_CLIP_QUICK_GELU,
          "defaults");
    et_status_free(s);
}

int main(void) {
    et_status s = et_st_open(DIR "/ref.safetensors", &g_ref);
    if (s) {
        fprintf(stderr, "golden fixture: %s (run from the repo root)\n", et_status_msg(s));
        et_status_free(s);
        return 1;
    }
    RUN(test_vision_model);
    RUN(test_full_clip_model);
    RUN(test_bf16_weights);
    RUN(test_projector);
    RUN(test_init_projector);
    RUN(test_load_errors);
    et_st_close(g_ref);
    return test_summary();
}
