// tests/test_golden_clip_pretrain.c - a tower pretrained and exported by `emotune
// pretrain-tower` (tests/golden/clip_pretrain/tower/, with a trained post_layernorm) read back
// by et_clip_vision_load: last_hidden_state and pooler_output equal transformers'
// CLIPVisionModel on the same export (tools/golden/gen_clip_pretrain.py) within 1e-4; the
// LLaVA feature path ignores post_layernorm; a re-export is byte-identical in its tensors.
#include <string.h>

#include "../core/autograd.h"
#include "../core/safetensors.h"
#include "../train/io/export.h"
#include "../train/models/clip.h"
#include "test_util.h"

#define DIR "tests/golden/clip_pretrain"

static et_tensor *ref(et_st_file *f, const char *name) {
    et_tensor *t = NULL;
    et_status s = et_st_load(f, name, &t);
    CHECK(!s, "%s: %s", name, s ? et_status_msg(s) : "");
    et_status_free(s);
    return t;
}

static void test_pooled_matches_transformers(void) {
    et_clip_vision v;
    et_status s = et_clip_vision_load(DIR "/tower", &v);
    CHECK(!s, "%s", s ? et_status_msg(s) : "");
    if (s) {
        et_status_free(s);
        return;
    }
    CHECK(v.post_ln_w && v.post_ln_b, "post_layernorm was not loaded");
    double off = 0;  // the fixture's post_layernorm is a trained one
    for (int64_t i = 0; i < v.post_ln_w->numel; i++) off += fabs(et_get(v.post_ln_w, i) - 1);
    CHECK(off > 1e-3, "post_layernorm weight is the identity (%g)", off);
    et_st_file *f = NULL;
    s = et_st_open(DIR "/ref.safetensors", &f);
    CHECK(!s, "%s", s ? et_status_msg(s) : "");
    if (s) {
        et_status_free(s);
        et_clip_vision_free(&v);
        return;
    }
    et_tensor *px = ref(f, "pixel_values"), *lh = ref(f, "last_hidden_state");
    et_tensor *po = ref(f, "pooler_output");
    et_tensor *last = NULL;
    et_tensor *pooled = et_clip_vision_pooled(&v, px, &last);
    CHECK_TENSOR_CLOSE(last, lh, 1e-4, "last_hidden_state");
    CHECK_TENSOR_CLOSE(pooled, po, 1e-4, "pooler_output");
    // LLaVA's path (hidden_states[k]) does not apply post_layernorm: the last layer's
    // features with CLS equal last_hidden_state
    et_tensor *feat = et_clip_vision_forward(&v, px, -1, ET_CLIP_CLS_PATCH);
    CHECK_TENSOR_CLOSE(feat, lh, 1e-4, "select_layer -1 features");
    et_release(feat), et_release(last), et_release(pooled);
    et_release(px), et_release(lh), et_release(po);
    et_st_close(f);
    et_clip_vision_free(&v);
}

// Re-exporting the loaded tower writes the same post_layernorm (not an identity one).
static void test_reexport_keeps_post_layernorm(void) {
    et_clip_vision v;
    et_status s = et_clip_vision_load(DIR "/tower", &v);
    CHECK(!s, "%s", s ? et_status_msg(s) : "");
    if (s) {
        et_status_free(s);
        return;
    }
    char dir[] = "/tmp/et_clip_pretrain_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char out[300], path[400];
    snprintf(out, sizeof out, "%s/tower", dir);
    s = et_export_clip_vision(out, &v, ET_F32);
    CHECK(!s, "%s", s ? et_status_msg(s) : "");
    et_status_free(s);
    et_clip_vision w;
    s = et_clip_vision_load(out, &w);
    CHECK(!s, "%s", s ? et_status_msg(s) : "");
    if (!s) {
        CHECK(w.post_ln_w != NULL);
        if (w.post_ln_w) {
            CHECK_TENSOR_CLOSE(w.post_ln_w, v.post_ln_w, 0, "post_layernorm.weight");
            CHECK_TENSOR_CLOSE(w.post_ln_b, v.post_ln_b, 0, "post_layernorm.bias");
        }
        et_clip_vision_free(&w);
    }
    et_status_free(s);
    snprintf(path, sizeof path, "rm -rf '%s'", dir);
    CHECK(system(path) == 0);
    et_clip_vision_free(&v);
}

int main(void) {
    RUN(test_pooled_matches_transformers);
    RUN(test_reexport_keeps_post_layernorm);
    return test_summary();
}
