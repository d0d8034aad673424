// train/runconfig.h - emotune's run configuration: one JSON file (configs/*.json) with the
// model, LoRA, data, training and evaluation settings, overridable from the command line.
// defines: et_run_config, et_run_config_default, et_run_config_load, et_run_config_apply,
//          et_run_config_to_json, et_run_config_save, et_run_config_help
//
// Contract
// - The file is a JSON object of sections (model, lora, data, synth, clip, train, eval); every
//   key is listed by et_run_config_help with its type, default and meaning. model.llm and
//   model.vision are HF config objects (LlamaConfig fields; CLIPVisionConfig fields) passed
//   through to train/models/config.h and train/models/clip.h, so any HF field is accepted there.
// - Overrides: "section.key=value" strings (the CLI's trailing arguments), applied in order
//   after the file. value is parsed as JSON when it is valid JSON (numbers, true/false,
//   arrays, objects, "quoted strings"), else taken as a plain string. Keys inside
//   model.llm / model.vision may be overridden too (model.llm.hidden_size=64).
// - Validation happens before anything runs: an unknown key (with the nearest known key
//   suggested), a value of the wrong type (an integer key given 1.5, a string key given a
//   number), a value out of range or not among the key's choices, a malformed override, or JSON
//   syntax errors (line and column) stop with an et_status naming the file (or "command line"
//   when the key was typed there) and the key; an unknown key suggests the nearest known one,
//   comparing section and name apart (trian.lr -> train.lr). model.select_layer is checked
//   against model.vision.num_hidden_layers when the config gives the tower's shape.
// - Paths: a relative path in the file under one of the input keys (model.llm_path,
//   model.vision_path, model.llava_path, model.tokenizer, data.train, data.eval, data.store,
//   data.root, synth.dir) resolves against the directory of the config file; one given as an
//   override (or a default) resolves against the working directory. Both are stored absolute,
//   so a saved config reads back the same from anywhere. Outputs (train.output_dir,
//   eval.output_dir) stay as written, relative to the working directory of the run.
//   et_run_config_parse (a text without a file) resolves against the working directory.
// - et_run_config_check_paths: before any work, every input path a command reads must exist;
//   one error lists all that do not, each with its key.
// - et_run_config_to_json writes the resolved config (every key, defaults included) as
//   pretty JSON: what a checkpoint stores and `emotune train --print-config` prints; loading
//   it again gives the same config.
#ifndef ET_TRAIN_RUNCONFIG_H
#define ET_TRAIN_RUNCONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "../core/status.h"

#define ET_RC_PATH 512
#define ET_RC_MAX_TARGETS 16

typedef struct {
    // model
    char *llm_json;       // model.llm (JSON text, owned) or NULL
    char *vision_json;    // model.vision (JSON text, owned) or NULL
    char *face_net_json;  // model.face_net (JSON text, owned) or NULL
    char face_net_path[ET_RC_PATH];
    double face_landmark_weight;
    char llm_path[ET_RC_PATH];
    char vision_path[ET_RC_PATH];
    char llava_path[ET_RC_PATH];
    char tokenizer[ET_RC_PATH];
    char projector[32];
    int select_layer;
    char select_feature[16];
    char face_prior[32];
    int landmark_dim;
    int prior_repeat;
    // fim (Face Info Mining, model.face_prior fim)
    bool fim_global, fim_local, fim_local_pool;
    char fim_landmarks[16];  // network | dataset
    int fim_queries, fim_layers, fim_width, fim_heads;
    bool visual_tokens;
    char weight_dtype[8];
    double init_std;
    double init_lm_head_std;
    int64_t init_seed;
    char projector_path[ET_RC_PATH];  // model.projector_path: LLaVA stage-1 projector, or ""
    // lora
    bool lora_enabled;
    int lora_r;
    double lora_alpha;
    double lora_dropout;
    bool lora_use_rslora;
    int lora_n_targets;
    char lora_targets[ET_RC_MAX_TARGETS][64];
    char lora_regex[256];
    // data
    char train_data[ET_RC_PATH];
    char eval_data[ET_RC_PATH];
    char store[ET_RC_PATH];  // data.store: prepared HDF5 store, or ""
    int video_frames;
    char data_root[ET_RC_PATH];
    char template_name[32];
    char supervise[16];
    int max_len;
    char image_aspect_ratio[16];
    bool group_by_modality_length;
    int workers;
    int prefetch;
    int max_bad_samples;
    // synth
    char synth_dir[ET_RC_PATH];
    int synth_n_train;
    int synth_n_test;
    int synth_n_clips;
    int synth_size;
    int64_t synth_seed;
    double synth_noise, synth_blur;
    double synth_jpeg_prob;
    int synth_jpeg_quality_min, synth_jpeg_quality_max;
    double synth_lowres_prob, synth_lowres_min;
    double synth_occlusion_prob;
    double synth_landmark_noise, synth_landmark_fail_prob;
    bool synth_clean;
    double synth_pose_jitter, synth_intensity_min, synth_intensity_max;
    double synth_descriptive_frac, synth_au_question_frac;
    int synth_n_text;
    char synth_caption_style[8];
    // clip (emotune pretrain-tower)
    int clip_text_width;
    int clip_text_layers;
    int clip_text_heads;
    int clip_max_text_len;
    int clip_projection_dim;
    double clip_logit_scale_init;
    bool clip_flip;
    double clip_gray;
    int clip_shuffle_block;
    char clip_prompt[128];
    // attribute_prompt (EMO-LLaMA's age-gender-race prompt, data/attr_prompt.h)
    bool attr_prompt_enabled;
    char attr_prompt_source[16];
    char attr_prompt_template[512];
    char attr_prompt_position[16];
    // train
    char output_dir[ET_RC_PATH];
    int epochs;
    int64_t max_steps;
    int batch_size;
    int grad_accum;
    double lr;
    double mm_projector_lr;
    double modality_dropout;  // train.modality_dropout
    double expert_lr;
    double fim_lr;
    double decoder_lr;  // train.decoder_lr: decoder + embeddings groups (0 = train.lr)
    double tower_lr;    // train.tower_lr (0 = train.lr)
    int n_trainable;    // train.trainable: parameter groups (0 = the default groups)
    char trainable[ET_RC_MAX_TARGETS][64];
    double weight_decay;
    double adam_beta1, adam_beta2, adam_eps;
    char lr_scheduler[32];
    double warmup_ratio;
    int64_t warmup_steps;
    double max_grad_norm;
    int64_t seed;
    int log_every;
    int save_every;
    int keep_last;
    int nan_limit;
    bool recompute;
    int threads;
    char device[8];
    bool tensorboard;
    // eval
    int eval_batch_size;
    int eval_max_new_tokens;
    bool eval_do_sample;
    double eval_temperature;
    double eval_top_p;
    char eval_kind[16];
    char eval_answer_parse[16];
    char eval_prompt[256];
    int eval_max_samples;
    char eval_template[32];
    char eval_output_dir[ET_RC_PATH];
    // not a key: the config file the values came from ("" when none), for messages
    char source[ET_RC_PATH];
} et_run_config;

// What a command reads, for et_run_config_check_paths.
enum {
    ET_RC_NEED_MODEL = 1,       // model.llava_path, llm_path, vision_path, tokenizer
    ET_RC_NEED_TRAIN_DATA = 2,  // data.store, else data.train; data.root
    ET_RC_NEED_EVAL_DATA = 4,   // data.eval; data.root
};

void et_run_config_default(et_run_config *c);
void et_run_config_free(et_run_config *c);  // frees the owned JSON strings
// attribute_prompt.* as data/attr_prompt.h's options (borrowing c's template text); false
// (and *out untouched) when attribute_prompt.enabled is false.
struct et_attr_prompt;
bool et_run_config_attr_prompt(const et_run_config *c, struct et_attr_prompt *out);
// path may be NULL (defaults + overrides only).
et_status et_run_config_load(const char *path, int n_over, const char *const *overrides,
                             et_run_config *out);
// Parses a JSON text (name for messages) with overrides.
et_status et_run_config_parse(const char *json, const char *name, int n_over,
                              const char *const *overrides, et_run_config *out);
char *et_run_config_to_json(const et_run_config *c);                     // malloc'd
et_status et_run_config_save(const et_run_config *c, const char *path);  // atomic
void et_run_config_help(FILE *f);
// Checks that every non-empty input path of `need` exists (a directory where a directory is
// expected); one ET_ERR_MISSING error lists every missing path with its key.
et_status et_run_config_check_paths(const et_run_config *c, unsigned need);

#endif
