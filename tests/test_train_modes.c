// tests/test_train_modes.c - train.trainable's parameter groups (train/emo_model.h) and the
// files of each training mode:
// - each group holds exactly its weights under HF names and marks them trainable, and what
//   is not listed is frozen (requires_grad off); the tower group stops at select_layer;
//   embeddings hold one tensor when tied;
// - every refusal (unknown group, a group the model lacks, lora vs decoder, lora.enabled
//   without "lora") has its exact message;
// - bf16 stored weights fully fine-tuned get f32 AdamW masters;
// - HF's weight-decay rule (no decay on biases and norm weights);
// - model.projector_path loads a stage-1 file; a missing tensor or another shape is refused
//   naming the file, the tensor and both shapes; mm_projector.safetensors holds LLaVA's
//   names and shapes.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/optim.h"
#include "../core/safetensors.h"
#include "test_emo_util.h"
#include "test_util.h"
#include "train/emo_model.h"
#include "train/io/export.h"

// A tiny model: decoder hidden 32 (2 layers, vocab 64), tower hidden 16 (3 layers), landmark
// prior. Extra overrides come after these.
static et_status build(int n, const char *const *extra, et_emo_model *m) {
    const char *base[] = {
        ("model.llm={\"vocab_size\":64,\"hidden_size\":32,\"intermediate_size\":48,"
         "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
         "\"tie_word_embeddings\":false}"),
        ("model.vision={\"hidden_size\":16,\"intermediate_size\":32,\"num_hidden_layers\":3,"
         "\"num_attention_heads\":2,\"image_size\":16,\"patch_size\":4}"),
        "model.landmark_dim=8",
    };
    return test_emo_build((int)(sizeof base / sizeof base[0]), base, n, extra, m);
}

static bool has(const et_emo_group *g, const char *name) {
    for (int i = 0; g && i < g->n; i++)
        if (!strcmp(g->names[i], name)) return true;
    return false;
}

static void test_default_groups(void) {
    et_emo_model m;
    et_status s = build(0, NULL, &m);
    CHECK(!s, "%s", et_status_msg(s));
    if (s) return et_status_free(s);
    CHECK(m.n_groups == 3 && test_emo_group(&m, "lora") && test_emo_group(&m, "projector") &&
              test_emo_group(&m, "expert"),
          "default: lora, projector, expert (%d groups)", m.n_groups);
    CHECK(!m.explicit_trainable, "default is not explicit");
    CHECK(!m.llm->layers[0].q_proj.weight->requires_grad, "the decoder stays frozen");
    CHECK(m.mllm.vision->frozen, "the tower stays frozen");
    et_emo_model_free(&m);
}

static void test_full_ft_groups(void) {
    const char *ov[] = {"lora.enabled=false",
                        "train.trainable=[\"decoder\",\"embeddings\",\"tower\"]",
                        "train.decoder_lr=0.01", "train.tower_lr=0.002"};
    et_emo_model m;
    et_status s = build(4, ov, &m);
    CHECK(!s, "%s", et_status_msg(s));
    if (s) return et_status_free(s);
    const et_emo_group *d = test_emo_group(&m, "decoder"), *e = test_emo_group(&m, "embeddings"),
                       *t = test_emo_group(&m, "tower");
    // 2 layers x (2 norms + 7 Linears) + model.norm
    CHECK(d && d->n == 19, "decoder group: %d tensors", d ? d->n : -1);
    CHECK(has(d, "model.layers.1.mlp.down_proj.weight") && has(d, "model.norm.weight") &&
              has(d, "model.layers.0.input_layernorm.weight") &&
              !has(d, "model.embed_tokens.weight") && !has(d, "lm_head.weight"),
          "decoder names");
    CHECK(e && e->n == 2 && has(e, "model.embed_tokens.weight") && has(e, "lm_head.weight"),
          "embeddings: embed_tokens + lm_head");
    // select_layer -2 of 3 layers: layers 0 and 1 run; 5 embedding/pre-LN + 2 x 16
    CHECK(t && t->n == 37, "tower group: %d tensors", t ? t->n : -1);
    CHECK(has(t, ET_EMO_TOWER_PREFIX "encoder.layers.1.mlp.fc2.bias") &&
              !has(t, ET_EMO_TOWER_PREFIX "encoder.layers.2.mlp.fc2.bias") &&
              has(t, ET_EMO_TOWER_PREFIX "embeddings.patch_embedding.weight"),
          "tower names stop at select_layer");
    CHECK(!m.mllm.vision->frozen, "trainable tower runs with grad");
    CHECK(!m.mllm.vision->layers[2].fc2.weight->requires_grad, "layer after select_layer frozen");
    CHECK(m.llm->layers[0].q_proj.weight->requires_grad && m.llm->norm->requires_grad,
          "decoder weights trainable");
    et_tensor *pt[4];
    et_projector_params(m.mllm.proj, NULL, pt);
    CHECK(!pt[0]->requires_grad, "projector not listed: frozen");
    et_tensor *ft[4];
    et_face_prior_params(&m.prior, NULL, ft);
    CHECK(!ft[0]->requires_grad, "face prior not listed: frozen");
    CHECK(!m.has_lora, "no adapters");
    CHECK(d && e && t && d->lr == 0.01 && e->lr == 0.01 && t->lr == 0.002,
          "train.decoder_lr / train.tower_lr");
    et_emo_model_free(&m);
}

static void test_tied_embeddings(void) {
    const char *ov[] = {"lora.enabled=false", "model.llm.tie_word_embeddings=true",
                        "train.trainable=[\"embeddings\"]"};
    et_emo_model m;
    et_status s = build(3, ov, &m);
    CHECK(!s, "%s", et_status_msg(s));
    if (s) return et_status_free(s);
    const et_emo_group *e = test_emo_group(&m, "embeddings");
    CHECK(e && e->n == 1 && has(e, "model.embed_tokens.weight"), "tied: one tensor");
    et_emo_model_free(&m);
}

static void expect_error(int n, const char *const *ov, const char *want) {
    et_emo_model m;
    et_status s = build(n, ov, &m);
    CHECK(s != NULL, "expected an error: %s", want);
    if (!s) return et_emo_model_free(&m);
    CHECK(strstr(et_status_msg(s), want) != NULL, "message: %s\n   wanted: %s", et_status_msg(s),
          want);
    et_status_free(s);
}

static void test_errors(void) {
    const char *a[] = {"train.trainable=[\"decoderr\"]"};
    expect_error(1, a,
                 "config: train.trainable: unknown group \"decoderr\"; the groups are lora, "
                 "projector, face_prior, decoder, tower, embeddings");
    const char *b[] = {"lora.enabled=false", "model.vision=null", "train.trainable=[\"tower\"]"};
    expect_error(3, b,
                 "config: train.trainable lists \"tower\" but the model has no vision tower in "
                 "use (it needs a vision tower: model.vision, model.vision_path or "
                 "model.llava_path, and model.visual_tokens=true)");
    const char *c[] = {"lora.enabled=false", "model.visual_tokens=false",
                       "train.trainable=[\"projector\"]"};
    expect_error(3, c,
                 "config: train.trainable lists \"projector\" but the model has no projector");
    const char *d[] = {"lora.enabled=false", "train.trainable=[\"lora\"]"};
    expect_error(2, d,
                 "config: train.trainable lists \"lora\" but lora.enabled is false: set "
                 "lora.enabled=true or remove \"lora\"");
    const char *e[] = {"train.trainable=[\"lora\",\"decoder\"]"};
    expect_error(1, e,
                 "config: train.trainable lists both \"lora\" and \"decoder\": LoRA adapts a "
                 "frozen decoder; train one of them (full fine-tuning: [\"decoder\"] with "
                 "lora.enabled=false)");
    const char *f[] = {"train.trainable=[\"projector\"]"};
    expect_error(1, f,
                 "config: lora.enabled is true but train.trainable does not list \"lora\": add "
                 "\"lora\" to train.trainable or set lora.enabled=false");
    const char *g[] = {"lora.enabled=false", "model.face_prior=none",
                       "train.trainable=[\"face_prior\"]"};
    expect_error(3, g,
                 "config: train.trainable lists \"face_prior\" but model.face_prior is \"none\": "
                 "set model.face_prior=landmark or remove \"face_prior\"");
}

static void test_bf16_masters(void) {
    const char *ov[] = {"lora.enabled=false", "model.weight_dtype=bf16",
                        "train.trainable=[\"decoder\"]"};
    et_emo_model m;
    et_status s = build(3, ov, &m);
    CHECK(!s, "%s", et_status_msg(s));
    if (s) return et_status_free(s);
    const et_emo_group *d = test_emo_group(&m, "decoder");
    CHECK(d && d->params[0]->dtype == ET_BF16, "stored bf16");
    et_adamw *opt = NULL;
    et_adamw_config ac = et_adamw_defaults();
    s = et_adamw_new(&ac, &opt);
    et_param_group pg = {.name = "decoder", .lr = 1e-3};
    if (!s) s = et_adamw_add_group(opt, &pg, d->n, d->params, d->names, NULL);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    int n = 0, masters = 0;
    const char *const *names = NULL;
    et_tensor *const *ts = NULL;
    et_adamw_state_tensors(opt, &n, &names, &ts);
    for (int i = 0; i < n; i++)
        if (strstr(names[i], ".master")) {
            masters++;
            CHECK(ts[i]->dtype == ET_F32, "%s is f32", names[i]);
        }
    CHECK(masters == d->n, "%d f32 masters for %d bf16 weights", masters, d->n);
    et_adamw_free(opt);
    et_emo_model_free(&m);
}

static void test_decay_rule(void) {
    CHECK(et_emo_param_decays("model.layers.0.self_attn.q_proj.weight"), "Linear weight decays");
    CHECK(et_emo_param_decays("model.embed_tokens.weight"), "embedding decays");
    CHECK(!et_emo_param_decays("model.layers.0.input_layernorm.weight"), "RMSNorm: no decay");
    CHECK(!et_emo_param_decays("model.norm.weight"), "final norm: no decay");
    CHECK(!et_emo_param_decays("model.mm_projector.0.bias"), "bias: no decay");
    CHECK(!et_emo_param_decays(ET_EMO_TOWER_PREFIX "pre_layrnorm.weight"), "pre_layrnorm");
    CHECK(!et_emo_param_decays(ET_EMO_TOWER_PREFIX "encoder.layers.0.layer_norm1.weight"), "LN");
}

static void test_projector_file(void) {
    char dir[] = "/tmp/et_modes_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[256], cfgp[300];
    snprintf(path, sizeof path, "%s/mm_projector.safetensors", dir);
    // stage 1: the projector trains alone; its file has LLaVA's names and shapes
    const char *s1[] = {"lora.enabled=false", "train.seed=7", "train.trainable=[\"projector\"]"};
    et_emo_model m;
    et_status s = build(3, s1, &m);
    CHECK(!s, "%s", et_status_msg(s));
    if (s) return et_status_free(s);
    CHECK(m.n_groups == 1 && test_emo_group(&m, "projector"), "stage 1: the projector alone");
    s = et_export_mm_projector(path, &m);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    et_st_file *f = NULL;
    s = et_st_open(path, &f);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    if (f) {
        const char *nm[4] = {"model.mm_projector.0.weight", "model.mm_projector.0.bias",
                             "model.mm_projector.2.weight", "model.mm_projector.2.bias"};
        const int64_t shp[4][2] = {{32, 16}, {32, 0}, {32, 32}, {32, 0}};
        CHECK(et_st_num_tensors(f) == 4, "%d tensors", et_st_num_tensors(f));
        for (int i = 0; i < 4; i++) {
            et_st_info info;
            et_status e = et_st_info_of(f, nm[i], &info);
            CHECK(!e && info.shape[0] == shp[i][0] &&
                      (shp[i][1] == 0 ? info.ndim == 1 : info.shape[1] == shp[i][1]),
                  "%s", nm[i]);
            et_status_free(e);
        }
        et_st_close(f);
    }
    et_tensor *want[4];
    et_projector_params(m.mllm.proj, NULL, want);
    // stage 2 (another seed) starts from it
    snprintf(cfgp, sizeof cfgp, "model.projector_path=%s", path);
    const char *s2[] = {"train.seed=8", cfgp};
    et_emo_model m2;
    s = build(2, s2, &m2);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    if (!s) {
        et_tensor *got[4];
        et_projector_params(m2.mllm.proj, NULL, got);
        for (int i = 0; i < 4; i++) CHECK(tensor_rel_err(got[i], want[i]) == 0, "tensor %d", i);
        et_emo_model_free(&m2);
    }
    et_emo_model_free(&m);
    // another tower width: refused, naming file, tensor and shapes
    const char *s3[] = {cfgp, "model.vision.hidden_size=8"};
    char msg[600];
    snprintf(msg, sizeof msg,
             "%s (model.projector_path): tensor model.mm_projector.0.weight has shape [32, 16] "
             "but this model's projector needs [32, 8] (vision hidden 8 -> decoder hidden 32)",
             path);
    expect_error(2, s3, msg);
    // a file without the projector's tensors
    snprintf(path, sizeof path, "%s/other.safetensors", dir);
    et_tensor *x = et_zeros(ET_F32, 1, (int64_t[]){3});
    const char *xn = "something.else";
    s = et_st_save(path, 1, &xn, &x, 0, NULL);
    et_release(x);
    et_status_free(s);
    snprintf(cfgp, sizeof cfgp, "model.projector_path=%s", path);
    const char *s4[] = {cfgp};
    snprintf(msg, sizeof msg, "%s (model.projector_path): no tensor model.mm_projector.0.weight",
             path);
    expect_error(1, s4, msg);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
}

int main(void) {
    RUN(test_default_groups);
    RUN(test_full_ft_groups);
    RUN(test_tied_embeddings);
    RUN(test_errors);
    RUN(test_bf16_masters);
    RUN(test_decay_rule);
    RUN(test_projector_file);
    return test_summary();
}
