// tests/test_llava_load.c - et_llava_load on both LLaVA checkpoint layouts, built in a temp
// dir from the tests/golden/llava parts (tiny llama, CLIP, projector) by renaming tensors:
// - LLaVA-1.5 (top-level LLaMA fields + mm_*; model.* / lm_head / model.mm_projector.*):
//   tower from vision_dir, and tower inside the checkpoint (vision_dir for its config);
// - llava-hf (text_config with some fields left to defaults + vision_config; sharded:
//   language_model.*, vision_tower.vision_model.*, multi_modal_projector.linear_{1,2}.*);
// each gives the same logits on a spliced batch as the parts loaded separately;
// - errors: a missing projector tensor, no tower and no vision_dir (names mm_vision_tower),
//   a stray tensor (unexpected), and all of them reported in one message;
// - text_config defaults (LlamaConfig's) for absent required fields.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/safetensors.h"
#include "train/io/llama_load.h"
#include "../core/status.h"
#include "train/io/llava_load.h"
#include "train/models/mllm.h"
#include "test_util.h"

#define GDIR EMOTUNE_SOURCE_DIR "/tests/golden/llava"

static char g_tmp[256];

static void die(et_status s, const char *what) {
    if (!s) return;
    fprintf(stderr, "%s: %s\n", what, et_status_msg(s));
    exit(1);
}

// Every tensor of a safetensors file, loaded (names owned by the struct).
typedef struct {
    int n;
    char names[64][200];
    et_tensor *t[64];
} tset;

static void tset_read(tset *s, const char *path, const char *strip, const char *add) {
    et_st_file *f = NULL;
    die(et_st_open(path, &f), path);
    for (int i = 0; i < et_st_num_tensors(f); i++) {
        const char *nm = et_st_name(f, i);
        size_t ls = strlen(strip);
        if (strncmp(nm, strip, ls)) continue;
        ET_ASSERT(s->n < 64, "too many tensors");
        snprintf(s->names[s->n], sizeof s->names[s->n], "%s%s", add, nm + ls);
        die(et_st_load(f, nm, &s->t[s->n]), nm);
        s->n++;
    }
    et_st_close(f);
}

static void tset_free(tset *s) {
    for (int i = 0; i < s->n; i++) et_release(s->t[i]);
    s->n = 0;
}

static void tset_drop(tset *s, const char *name) {
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->names[i], name)) {
            et_release(s->t[i]);
            s->t[i] = s->t[s->n - 1];
            memcpy(s->names[i], s->names[s->n - 1], sizeof s->names[i]);
            s->n--;
            return;
        }
    ET_ASSERT(0, "no tensor %s", name);
}

static void tset_save(const tset *s, const char *path) {
    const char *names[64];
    for (int i = 0; i < s->n; i++) names[i] = s->names[i];
    die(et_st_save(path, s->n, names, (et_tensor *const *)s->t, 0, NULL), path);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ET_ASSERT(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static const char *k_llama_fields =
    "\"vocab_size\": 64, \"hidden_size\": 32, \"intermediate_size\": 48, "
    "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, "
    "\"head_dim\": 8, \"rms_norm_eps\": 1e-06, \"rope_theta\": 10000.0, "
    "\"max_position_embeddings\": 64, \"tie_word_embeddings\": false, \"hidden_act\": \"silu\"";

static const char *k_clip_fields =
    "\"hidden_act\": \"quick_gelu\", \"hidden_size\": 32, \"image_size\": 16, "
    "\"intermediate_size\": 64, \"layer_norm_eps\": 1e-05, \"num_attention_heads\": 2, "
    "\"num_channels\": 3, \"num_hidden_layers\": 2, \"patch_size\": 4";

// A LLaVA-1.5 dir: decoder + projector (+ tower when `tower`), minus `drop`, plus `stray`.
static void make_llava15(const char *dir, bool tower, const char *drop, const char *stray) {
    mkdir(dir, 0755);
    char p[512], cfg[2048];
    snprintf(cfg, sizeof cfg,
             "{\"architectures\": [\"LlavaLlamaForCausalLM\"], \"model_type\": \"llava_llama\", "
             "%s, \"mm_hidden_size\": 32, \"mm_projector_type\": \"mlp2x_gelu\", "
             "\"mm_vision_select_layer\": -2, \"mm_vision_select_feature\": \"patch\", "
             "\"image_aspect_ratio\": \"pad\", \"mm_vision_tower\": \"openai/tiny-clip\"}",
             k_llama_fields);
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_text(p, cfg);
    tset s = {0};
    tset_read(&s, GDIR "/llama/model.safetensors", "", "");
    tset_read(&s, GDIR "/projector.safetensors", "", "");
    if (tower)
        tset_read(&s, GDIR "/clip/model.safetensors", "", "model.vision_tower.vision_tower.");
    if (drop) tset_drop(&s, drop);
    if (stray) {
        snprintf(s.names[s.n], sizeof s.names[s.n], "%s", stray);
        s.t[s.n++] = et_zeros(ET_F32, 1, (int64_t[]){3});
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    tset_save(&s, p);
    tset_free(&s);
}

// A llava-hf dir, sharded in two files.
static void make_llava_hf(const char *dir) {
    mkdir(dir, 0755);
    char p[512], cfg[2048];
    // text_config leaves rms_norm_eps, rope_theta, head_dim, tie_word_embeddings to defaults.
    snprintf(cfg, sizeof cfg,
             "{\"architectures\": [\"LlavaForConditionalGeneration\"], \"model_type\": "
             "\"llava\", \"image_token_index\": 63, \"projector_hidden_act\": \"gelu\", "
             "\"vision_feature_layer\": -2, \"vision_feature_select_strategy\": \"default\", "
             "\"text_config\": {\"model_type\": \"llama\", \"vocab_size\": 64, "
             "\"hidden_size\": 32, \"intermediate_size\": 48, \"num_hidden_layers\": 2, "
             "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, "
             "\"max_position_embeddings\": 64}, "
             "\"vision_config\": {\"model_type\": \"clip_vision_model\", %s}}",
             k_clip_fields);
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_text(p, cfg);
    tset a = {0}, b = {0};
    tset_read(&a, GDIR "/llama/model.safetensors", "", "language_model.");
    tset_read(&b, GDIR "/clip/model.safetensors", "", "vision_tower.");
    tset_read(&b, GDIR "/projector.safetensors", "model.mm_projector.0.",
              "multi_modal_projector.linear_1.");
    tset_read(&b, GDIR "/projector.safetensors", "model.mm_projector.2.",
              "multi_modal_projector.linear_2.");
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    tset_save(&a, p);
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    tset_save(&b, p);
    char idx[16384];
    size_t n = (size_t)snprintf(idx, sizeof idx, "{\"metadata\": {}, \"weight_map\": {");
    for (int i = 0; i < a.n + b.n; i++)
        n += (size_t)snprintf(idx + n, sizeof idx - n,
                              "%s\"%s\": \"model-0000%d-of-00002.safetensors\"", i ? ", " : "",
                              i < a.n ? a.names[i] : b.names[i - a.n], i < a.n ? 1 : 2);
    snprintf(idx + n, sizeof idx - n, "}}");
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    write_text(p, idx);
    tset_free(&a), tset_free(&b);
}

// The parts loaded separately, as test_golden_llava does.
typedef struct {
    et_clip_vision vision;
    et_projector proj;
    et_llama *llm;
    et_mllm m;
} parts_t;

static void parts_load(parts_t *t) {
    memset(t, 0, sizeof *t);
    die(et_clip_vision_load(GDIR "/clip", &t->vision), "clip");
    et_st_file *pf = NULL;
    die(et_st_open(GDIR "/projector.safetensors", &pf), "projector");
    die(et_projector_load(&t->proj, ET_PROJ_MLP2X_GELU, 32, 32, pf, NULL), "projector");
    et_st_close(pf);
    die(et_llama_load(GDIR "/llama", ET_F32, &t->llm), "llama");
    t->m = (et_mllm){&t->vision, &t->proj, t->llm, -2, ET_CLIP_PATCH, ET_LLAVA_IMAGE_TOKEN, 0};
}

static void parts_free(parts_t *t) {
    et_llama_free(t->llm);
    et_projector_free(&t->proj);
    et_clip_vision_free(&t->vision);
}

static et_tensor *run_batch(et_mllm *m) {
    int32_t a[] = {1, 5, m->image_token, 7, 9}, b[] = {1, m->image_token, 3};
    et_tensor *ids[2] = {et_empty(ET_I32, 1, (int64_t[]){5}), et_empty(ET_I32, 1, (int64_t[]){3})};
    memcpy(et_data(ids[0]), a, sizeof a);
    memcpy(et_data(ids[1]), b, sizeof b);
    g_test_rng = 12345;
    et_tensor *px = test_rand_tensor(ET_F32, 4, (int64_t[]){2, 3, 16, 16}, 1.0);
    et_mllm_input in = {2, ids, NULL, px, NULL};
    et_tensor *lg = NULL;
    et_no_grad_begin();
    et_status s = et_mllm_forward(m, &in, NULL, &lg, NULL);
    et_no_grad_end();
    CHECK(!s, "forward: %s", et_status_msg(s));
    et_status_free(s);
    et_release(ids[0]), et_release(ids[1]), et_release(px);
    return lg;
}

static void check_same_logits(et_llava *lv, int32_t image_token) {
    parts_t ref;
    parts_load(&ref);
    ref.m.image_token = image_token;
    CHECK(lv->mllm.image_token == image_token, "image token %d", lv->mllm.image_token);
    et_tensor *a = run_batch(&lv->mllm), *b = run_batch(&ref.m);
    CHECK(a && b && a->numel == b->numel && a->numel == 2 * (4 + 16) * 64, "logits shape");
    if (a && b && a->numel == b->numel) CHECK_TENSOR_CLOSE(a, b, 1e-6, "logits vs parts");
    et_release(a), et_release(b);
    parts_free(&ref);
}

static void test_llava15_vision_dir(void) {
    char d[300];
    snprintf(d, sizeof d, "%s/l15", g_tmp);
    make_llava15(d, false, NULL, NULL);
    et_llava *lv = NULL;
    et_status s = et_llava_load(d, GDIR "/clip", ET_F32, &lv);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    if (!lv) return;
    CHECK(!lv->cfg.hf_layout && lv->proj.names == ET_PROJ_NAMES_LLAVA, "layout");
    CHECK(lv->mllm.select_layer == -2 && lv->mllm.feature == ET_CLIP_PATCH, "select");
    check_same_logits(lv, ET_LLAVA_IMAGE_TOKEN);
    et_llava_free(lv);
}

static void test_llava15_tower_inside(void) {
    char d[300];
    snprintf(d, sizeof d, "%s/l15t", g_tmp);
    make_llava15(d, true, NULL, NULL);
    et_llava *lv = NULL;
    et_status s = et_llava_load(d, GDIR "/clip", ET_F32, &lv);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    if (!lv) return;
    CHECK(!strcmp(lv->vision.prefix, "model.vision_tower.vision_tower.vision_model."), "%s",
          lv->vision.prefix);
    check_same_logits(lv, ET_LLAVA_IMAGE_TOKEN);
    et_llava_free(lv);
    // Without vision_dir the tower's config is unknown: a clear error.
    s = et_llava_load(d, NULL, ET_F32, &lv);
    CHECK(s && strstr(et_status_msg(s), "mm_vision_tower") && !lv, "%s", et_status_msg(s));
    et_status_free(s);
}

static void test_llava_hf(void) {
    char d[300];
    snprintf(d, sizeof d, "%s/hf", g_tmp);
    make_llava_hf(d);
    et_llava *lv = NULL;
    et_status s = et_llava_load(d, NULL, ET_F32, &lv);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    if (!lv) return;
    CHECK(lv->cfg.hf_layout && lv->proj.names == ET_PROJ_NAMES_LLAVA_HF, "layout");
    CHECK(!strcmp(lv->vision.prefix, "vision_tower.vision_model."), "%s", lv->vision.prefix);
    CHECK(!strcmp(lv->llm->layers[0].q_proj.name, "model.layers.0.self_attn.q_proj"), "%s",
          lv->llm->layers[0].q_proj.name);
    CHECK(lv->llm->cfg.head_dim == 8 && lv->llm->cfg.rms_norm_eps == 1e-6, "defaults");
    check_same_logits(lv, 63);
    et_llava_free(lv);
}

static void test_text_config_defaults(void) {
    char p[300];
    snprintf(p, sizeof p, "%s/defaults.json", g_tmp);
    write_text(p, "{\"text_config\": {\"vocab_size\": 32064, \"hidden_size\": null}, "
                  "\"vision_config\": {}}");
    et_llama_config c;
    et_status s = et_llama_config_load_sub(p, "text_config", &c);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    if (s) return;
    CHECK(c.vocab_size == 32064 && c.hidden_size == 4096 && c.intermediate_size == 11008 &&
              c.num_hidden_layers == 32 && c.num_attention_heads == 32 &&
              c.num_key_value_heads == 32 && c.head_dim == 128,
          "defaults");
    s = et_llama_config_load_sub(p, "nope", &c);
    CHECK(s && strstr(et_status_msg(s), "nope"), "%s", et_status_msg(s));
    et_status_free(s);
}

static void expect_error(const char *dir, const char *vision_dir, const char *const *needles,
                         int n) {
    et_llava *lv = NULL;
    et_status s = et_llava_load(dir, vision_dir, ET_F32, &lv);
    CHECK(s && !lv, "%s: expected an error", dir);
    for (int i = 0; s && i < n; i++)
        CHECK(strstr(et_status_msg(s), needles[i]), "'%s' not in: %s", needles[i],
              et_status_msg(s));
    et_status_free(s);
    et_llava_free(lv);
}

static void test_errors(void) {
    char d[300];
    snprintf(d, sizeof d, "%s/e_proj", g_tmp);
    make_llava15(d, false, "model.mm_projector.2.bias", NULL);
    expect_error(d, GDIR "/clip", (const char *const[]){"projector", "model.mm_projector.2.bias"},
                 2);

    snprintf(d, sizeof d, "%s/e_tower", g_tmp);
    make_llava15(d, false, NULL, NULL);
    expect_error(d, NULL, (const char *const[]){"mm_vision_tower", "openai/tiny-clip"}, 2);

    snprintf(d, sizeof d, "%s/e_stray", g_tmp);
    make_llava15(d, false, NULL, "model.extra_head.weight");
    expect_error(d, GDIR "/clip", (const char *const[]){"unexpected", "model.extra_head.weight"},
                 2);

    // Every part's problems in one message.
    snprintf(d, sizeof d, "%s/e_all", g_tmp);
    make_llava15(d, false, "model.layers.1.mlp.up_proj.weight", "stray.weight");
    expect_error(d, NULL,
                 (const char *const[]){"model.layers.{1}.mlp.up_proj.weight", "stray.weight",
                                       "mm_vision_tower"},
                 3);
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/et_llava_load_XXXXXX");
    ET_ASSERT(mkdtemp(g_tmp), "mkdtemp");
    RUN(test_llava15_vision_dir);
    RUN(test_llava15_tower_inside);
    RUN(test_llava_hf);
    RUN(test_text_config_defaults);
    RUN(test_errors);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    return test_summary();
}
