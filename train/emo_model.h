// train/emo_model.h - the model a run trains: built from an et_run_config (random tiny
// shapes, HF checkpoints or a LLaVA checkpoint), with its trainable parameters grouped.
// defines: et_emo_model, et_emo_group, et_emo_model_build, et_emo_model_free,
//          et_emo_model_trainables, et_emo_model_load_trainables,
//          et_emo_model_load_checkpoint, et_emo_model_trains, et_emo_param_decays,
//          ET_EMO_TOWER_PREFIX
//
// Contract
// - Sources, first match wins: model.llava_path (decoder + projector [+ tower], with
//   model.vision_path as the tower dir when given); else model.llm_path / model.llm
//   (random N(0, init_std), seed init_seed) for the decoder and model.vision_path /
//   model.vision (random, frozen) for the tower, with a fresh projector. A decoder is
//   required; the tower is optional (text-only runs). The face prior (model.face_prior) and
//   LoRA (lora.*) come from the config; the tokenizer (model.tokenizer) is loaded when set
//   and its vocabulary must fit the decoder's.
// - Random initialisation of the trainables is a pure function of (train.seed): LoRA A
//   (kaiming-uniform, B zero), projector and expert (torch nn.Linear init).
// - Trainable groups (AdamW param groups, LLaVA's recipe): "lora" (train.lr), "projector"
//   (train.mm_projector_lr or train.lr), "expert" (the landmark expert: train.expert_lr or
//   train.lr), "fim" (Face Info Mining's aggregator and projector: train.fim_lr, else the
//   expert's lr). Names are
//   the HF / PEFT module names: <layer>.lora_A.weight, model.mm_projector.0.weight, ...
// - train.trainable picks the groups (empty: lora when lora.enabled, the projector when
//   images are spliced, the expert when there is a face prior). An explicit list trains
//   exactly its groups, everything else is frozen (requires_grad off: no gradient is
//   computed for it):
//     lora        LoRA A/B (needs lora.enabled; lora.enabled=true needs "lora" listed)
//     projector   the projector (needs a tower and model.visual_tokens)
//     face_prior  the landmark expert (group "expert") and / or Face Info Mining's
//                 aggregator and projector (group "fim": model.fim.*, model.fim_projector.*;
//                 the face network stays frozen)
//     decoder     every decoder weight but model.embed_tokens / lm_head (layers, final
//                 norm), HF names; refused together with "lora"
//     embeddings  model.embed_tokens.weight and lm_head.weight (one tensor when tied)
//     tower       the CLIP tower's weights that reach the features, named
//                 ET_EMO_TOWER_PREFIX + HF CLIPVisionModel names: embeddings, pre_layrnorm
//                 and layers 1..k for model.select_layer k (later layers never run: they are
//                 not in the group and stay as loaded); the tower then runs with grad.
//   decoder and embeddings train at train.decoder_lr, the tower at train.tower_lr (0 =
//   train.lr). Errors name train.trainable: an unknown group (the valid
//   ones are listed) or one the model lacks.
// - model.projector_path: the projector's tensors (its HF names, model.mm_projector.*) are
//   copied from that safetensors file after the init; a missing tensor or one of another
//   shape is an error naming the file, the tensor and both shapes.
// - The LoRA config's base_model (PEFT's base_model_name_or_path) is the absolute path of
//   model.llava_path / model.llm_path, or ET_RANDOM_BASE_NAME for a random decoder.
// - Errors (et_status) name the config key and the file.
#ifndef ET_TRAIN_EMO_MODEL_H
#define ET_TRAIN_EMO_MODEL_H

#include "core/status.h"
#include "data/tokenizer.h"
#include "train/io/llava_load.h"
#include "train/models/clip.h"
#include "train/models/face_prior.h"
#include "train/models/llama.h"
#include "train/models/lora.h"
#include "train/models/mllm.h"
#include "train/models/projector.h"
#include "train/runconfig.h"

#define ET_EMO_MAX_GROUPS 8
// The names of the tower's trainables: LLaVA-1.5's module path of the CLIP tower.
#define ET_EMO_TOWER_PREFIX "model.vision_tower.vision_tower.vision_model."
// base_model_name_or_path of an adapter trained on a random decoder (model.llm): not on the
// Hub; `emotune export --base` writes that base to DIR/base/llm.
#define ET_RANDOM_BASE_NAME "emotune/random-init-llama"

typedef struct {
    char name[16];    // lora | projector | expert | fim | decoder | embeddings | tower
    bool owns_names;  // names[i] are malloc'd copies
    double lr;
    int n;
    const char **names;  // owned array, strings borrowed from the model
    et_tensor **params;  // owned array, tensors borrowed
} et_emo_group;

typedef struct {
    et_tokenizer *tok;      // NULL when model.tokenizer is empty
    et_llava *llava;        // set when built from model.llava_path (owns llm/proj/vision)
    et_llama *llm;          // the decoder (borrowed from llava or owned)
    et_clip_vision vision;  // owned tower when not from llava
    bool has_vision;
    bool use_images;    // has_vision and model.visual_tokens: images are loaded and spliced
    bool load_pixels;   // use_images, or Face Info Mining (its network reads the pixels)
    et_projector proj;  // owned projector when not from llava
    et_face_prior prior;
    et_mllm mllm;  // points at the parts above
    et_lora_config lora;
    bool has_lora;
    int n_linears;
    et_linear_layer **linears;  // decoder Linears (LoRA targets and export)
    int n_groups;
    et_emo_group groups[ET_EMO_MAX_GROUPS];
    int n_trainables;         // across groups
    bool explicit_trainable;  // train.trainable was given
    int64_t image_size;
    bool pad_to_square;
} et_emo_model;

et_status et_emo_model_build(const et_run_config *cfg, et_emo_model *m);
void et_emo_model_free(et_emo_model *m);
// All trainables (group order): names/params arrays of n_trainables (either may be NULL).
int et_emo_model_trainables(const et_emo_model *m, const char **names, et_tensor **params);
// Copies tensors named like the trainables from a safetensors file into them; every
// trainable must be present with its shape (the error lists missing / mis-shaped names).
et_status et_emo_model_load_trainables(et_emo_model *m, const char *path);
// The trainables of the checkpoint et_trainckpt_resolve(given, output_dir) finds; its
// directory goes to dir_out (may be NULL).
// Whether group (an et_emo_group name) trains.
bool et_emo_model_trains(const et_emo_model *m, const char *group);
// HF Trainer's weight-decay rule (get_decay_parameter_names): no decay on biases and on
// norm weights (names containing "norm": RMSNorm, LayerNorm, layrnorm, layer_norm).
bool et_emo_param_decays(const char *name);
et_status et_emo_model_load_checkpoint(et_emo_model *m, const char *given, const char *output_dir,
                                       char *dir_out, size_t cap);

#endif
