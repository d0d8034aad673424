// tests/test_face_net.c - the face analysis network (FaceXFormer's architecture) against a
// PyTorch statement of it built on torchvision's Swin (tests/golden/face_net/, written by
// tools/golden/gen_face_net.py; the reference ran in float64).
//
// - tiny/ (64 px, 2 stages, window 4, shifted windows in both stages, batch 2) and
//   reduced224/ (FaceXFormer's 224 px shape: 56/28/14/7 maps, window 7, the last stage
//   unshifted because its map equals the window; narrow and shallow to keep the fixture
//   small): every stage output, the fused map, the decoder's tokens and image tokens and the
//   landmark / age / gender / race heads match within 1e-4 (max-norm relative).
// - A loaded network is frozen: its forward records nothing on the tape.
// - padded/ (40 px: 10x10 tokens padded to 12 for window 4, odd 5x5 and 3x3 maps that the
//   merges pad, the 3x3 stage's shift off) covers the zero padding: padded tokens are keys
//   (unmasked), as torchvision's Swin has them.
// - tiny/ and padded/ also hold the float64 gradients of L = sum(landmarks r1) + sum(age r2) +
//   sum(fused r3) for weights across the encoder, the fusion, the decoder, the tokens and a
//   head: the trainable network's backward matches them within 1e-4.
// - Loader and config errors: a checkpoint without one tensor and with another mis-shaped
//   names both; a config with a bad field names the file and the field.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/autograd.h"
#include "../core/ops.h"
#include "../core/safetensors.h"
#include "../core/status.h"
#include "test_util.h"
#include "train/io/face_net_load.h"
#include "train/models/face_net.h"

#define TOL 1e-4
#define DIR "tests/golden/face_net"

static et_tensor *load_from(et_st_file *f, const char *name) {
    et_tensor *t = NULL;
    et_status s = et_st_load(f, name, &t);
    if (s) {
        fprintf(stderr, "golden fixture: %s (regenerate with tools/golden/gen_face_net.py)\n",
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
    if (!et_same_shape(got, ref)) return;
    double err = tensor_rel_err(got, ref);
    CHECK(err <= TOL, "%s: relative error %.3g > %.3g", what, err, TOL);
    const char *v = getenv("GOLDEN_VERBOSE");
    if (v && *v && *v != '0') printf("     %-60s rel err %.3g\n", what, err);
}

static void compare_outputs(const char *tag, et_face_net *m, et_face_net_out *o, et_st_file *io) {
    char what[128];
    for (int i = 0; i < m->cfg.n_stages; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "stage%d", i);
        et_tensor *r = load_from(io, nm);
        snprintf(what, sizeof what, "%s %s", tag, nm);
        compare(o->stages[i], r, what);
        et_release(r);
    }
    const char *names[7] = {"fused", "tokens", "keys", "landmarks", "age", "gender", "race"};
    et_tensor *got[7] = {o->fused, o->tokens, o->keys, o->landmarks, o->age, o->gender, o->race};
    for (int k = 0; k < 7; k++) {
        et_tensor *r = load_from(io, names[k]);
        snprintf(what, sizeof what, "%s %s", tag, names[k]);
        compare(got[k], r, what);
        et_release(r);
    }
}

// Loads case `tag`'s network and opens its io.safetensors; false (after a failed CHECK) when
// either fails.
static bool open_case(const char *tag, et_face_net *m, et_st_file **io) {
    char path[256];
    snprintf(path, sizeof path, DIR "/%s", tag);
    et_status s = et_face_net_load(path, m);
    CHECK(!s, "%s", et_status_msg(s));
    if (s) return et_status_free(s), false;
    snprintf(path, sizeof path, DIR "/%s/io.safetensors", tag);
    s = et_st_open(path, io);
    CHECK(!s, "%s", et_status_msg(s));
    if (s) {
        et_status_free(s);
        et_face_net_free(m);
        return false;
    }
    return true;
}

static void test_forward(const char *tag) {
    et_face_net m;
    et_st_file *io = NULL;
    if (!open_case(tag, &m, &io)) return;
    CHECK(m.frozen, "%s: a loaded network is frozen", tag);
    et_tensor *px = load_from(io, "pixels");
    et_face_net_out o;
    et_face_net_forward(&m, px, &o);
    CHECK(!o.fused->grad_fn && !o.landmarks->grad_fn, "%s: a frozen forward records nothing", tag);
    compare_outputs(tag, &m, &o, io);
    et_face_net_out_free(&o);
    et_release(px);
    et_st_close(io);
    et_face_net_free(&m);
}

static et_tensor *weighted_sum(et_tensor *y, et_tensor *r) {
    et_tensor *p = et_mul(y, r);
    et_tensor *f = et_reshape(p, 1, (int64_t[]){p->numel});
    et_tensor *s = et_sum_last(f);
    et_release(p), et_release(f);
    return s;
}

static void test_grads_of(const char *tag) {
    et_face_net m;
    et_st_file *io = NULL;
    if (!open_case(tag, &m, &io)) return;
    m.frozen = false;
    const char *names[1024];
    et_tensor *ts[1024];
    int n = et_face_net_params(&m, names, ts);
    CHECK(n > 0 && n <= 1024, "catalogue size %d", n);
    for (int i = 0; i < n; i++) et_set_requires_grad(ts[i], true);
    et_tensor *px = load_from(io, "pixels");
    et_face_net_out o;
    et_face_net_forward(&m, px, &o);
    char what[64];
    snprintf(what, sizeof what, "%s (trainable)", tag);
    compare_outputs(what, &m, &o, io);
    et_tensor *r1 = load_from(io, "r_landmarks"), *r2 = load_from(io, "r_age");
    et_tensor *r3 = load_from(io, "r_fused");
    et_tensor *a = weighted_sum(o.landmarks, r1), *b = weighted_sum(o.age, r2);
    et_tensor *c = weighted_sum(o.fused, r3);
    et_tensor *ab = et_add(a, b), *loss = et_add(ab, c);
    et_tensor *ref_loss = load_from(io, "loss");
    CHECK_CLOSE(et_get(loss, 0), et_get(ref_loss, 0), 1e-4);
    et_backward(loss);
    int checked = 0;
    for (int i = 0; i < et_st_num_tensors(io); i++) {
        const char *nm = et_st_name(io, i);
        if (strncmp(nm, "grad/", 5)) continue;
        int k = 0;
        while (k < n && strcmp(names[k], nm + 5)) k++;
        CHECK(k < n, "%s: no such parameter", nm + 5);
        if (k == n) continue;
        CHECK(ts[k]->grad != NULL, "%s: no gradient", nm + 5);
        if (!ts[k]->grad) continue;
        et_tensor *r = load_from(io, nm);
        compare(ts[k]->grad, r, nm);
        et_release(r);
        checked++;
    }
    CHECK(checked >= 10, "only %d gradients in the fixture", checked);
    et_release(a), et_release(b), et_release(c), et_release(ab), et_release(loss);
    et_release(ref_loss), et_release(r1), et_release(r2), et_release(r3);
    et_face_net_out_free(&o);
    et_release(px);
    et_st_close(io);
    et_face_net_free(&m);
}

// A copy of tiny/ with one tensor dropped and one re-shaped: one error names both.
static void test_bad_checkpoint(void) {
    char tmp[] = "/tmp/et_face_net_XXXXXX";
    CHECK(mkdtemp(tmp) != NULL, "mkdtemp");
    char path[512];
    et_st_file *f = NULL;
    et_status s = et_st_open(DIR "/tiny/model.safetensors", &f);
    CHECK(!s, "%s", et_status_msg(s));
    if (s) return et_status_free(s);
    const int n = et_st_num_tensors(f);
    const char **names = calloc((size_t)n, sizeof *names);
    et_tensor **ts = calloc((size_t)n, sizeof *ts);
    int k = 0;
    for (int i = 0; i < n; i++) {
        const char *nm = et_st_name(f, i);
        if (!strcmp(nm, "linear_fuse.weight")) continue;  // missing
        et_tensor *t = load_from(f, nm);
        if (!strcmp(nm, "backbone.0.1.0.attn.proj.bias")) {  // mis-shaped
            et_tensor *c = et_zeros(ET_F32, 1, (int64_t[]){t->shape[0] + 1});
            et_release(t);
            t = c;
        }
        names[k] = nm, ts[k++] = t;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", tmp);
    s = et_st_save(path, k, names, ts, 0, NULL);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    for (int i = 0; i < k; i++) et_release(ts[i]);
    free(names), free(ts);
    et_st_close(f);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp " DIR "/tiny/config.json %s/", tmp);
    CHECK(system(cmd) == 0, "%s", cmd);
    et_face_net m;
    s = et_face_net_load(tmp, &m);
    CHECK(s != NULL, "a broken checkpoint loads");
    if (s) {
        const char *msg = et_status_msg(s);
        CHECK(strstr(msg, "linear_fuse.weight") && strstr(msg, "backbone.0.1.0.attn.proj.bias"),
              "error names both tensors: %s", msg);
        et_status_free(s);
    }
    snprintf(cmd, sizeof cmd, "rm -r %s", tmp);
    CHECK(system(cmd) == 0, "%s", cmd);
}

static void test_bad_config(void) {
    et_face_net_config c;
    const char *cases[][2] = {
        {"{\"image_size\": 64, \"embed_dim\": 16, \"depths\": [2, 2], \"num_heads\": [2], "
         "\"window_size\": 4, \"fuse_dim\": 32, \"decoder_depth\": 1, \"decoder_heads\": 4, "
         "\"decoder_mlp_dim\": 64}",
         "num_heads"},
        {"{\"image_size\": 64, \"embed_dim\": 16, \"depths\": [2, 0], \"num_heads\": [2, 4], "
         "\"window_size\": 4, \"fuse_dim\": 32, \"decoder_depth\": 1, \"decoder_heads\": 4, "
         "\"decoder_mlp_dim\": 64}",
         "depths"},
        {"{\"image_size\": 64, \"embed_dim\": 16, \"depths\": [2], \"num_heads\": [2], "
         "\"fuse_dim\": 32, \"decoder_depth\": 1, \"decoder_heads\": 4, \"decoder_mlp_dim\": 64}",
         "window_size"},
        {"{\"model_type\": \"swin\", \"image_size\": 64}", "model_type"},
        {"{\"image_size\": 66, \"embed_dim\": 16, \"depths\": [2], \"num_heads\": [2], "
         "\"window_size\": 4, \"fuse_dim\": 32, \"decoder_depth\": 1, \"decoder_heads\": 4, "
         "\"decoder_mlp_dim\": 64}",
         "patch_size"},
        {"[1, 2]", "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        et_status s = et_face_net_config_from_json(cases[i][0], "cfg.json", &c);
        CHECK(s && strstr(et_status_msg(s), "cfg.json") && strstr(et_status_msg(s), cases[i][1]),
              "case %zu: %s", i, s ? et_status_msg(s) : "accepted");
        et_status_free(s);
    }
}

static void test_grads(void) { test_grads_of("tiny"); }
static void test_grads_padded(void) { test_grads_of("padded"); }
static void tiny(void) { test_forward("tiny"); }
static void reduced224(void) { test_forward("reduced224"); }
static void padded(void) { test_forward("padded"); }

int main(void) {
    RUN(tiny);
    RUN(reduced224);
    RUN(padded);
    RUN(test_grads);
    RUN(test_grads_padded);
    RUN(test_bad_checkpoint);
    RUN(test_bad_config);
    return test_summary();
}
