// train/pretrain_tower.h - `emotune pretrain-tower`: contrastive image-caption pretraining of
// the tiny CLIP-style vision tower (CLIP's symmetric InfoNCE with a learned temperature).
// defines: et_clip_pair, et_clip_pair_build, et_clip_pair_free, et_clip_contrastive_loss,
//          et_clip_caption_ids, et_pretrain_tower_run
//
// Contract
// - Model (et_clip_pair): the tower of model.vision (random, HF CLIP's init scheme from the
//   Philox seed model.init_seed + 1: class_embedding N(0, D^-0.5), patch / position
//   embeddings N(0, 0.02), q/k/v and fc2 N(0, D^-0.5 (2L)^-0.5), out_proj N(0, D^-0.5), fc1
//   N(0, (2D)^-0.5), LayerNorms 1/0, biases 0) or of model.vision_path (continued), given a
//   trainable post_layernorm (identity at first); visual_projection [E, D] (no bias); logit_scale
//   (a 0-dim f32, init clip.logit_scale_init); the text encoder of train/models/text_encoder.h
//   (clip.text_*; vocabulary of model.tokenizer). Every tensor is trainable.
// - Captions: a sample's first gpt turn, tokenised as `emotune train` does with the plain
//   template (the supervised tokens of "<image>" + caption + "\n"), cut to
//   clip.max_text_len - 1 tokens, plus the tokenizer's EOS (et_clip_caption_ids).
// - Loss (et_clip_contrastive_loss), img / txt [B, E]: both L2-normalised rows,
//   logits = exp(logit_scale) img txt^T, loss = (CE(logits, arange) + CE(logits^T,
//   arange)) / 2 (HF CLIPModel's clip_loss); *acc = the fraction of rows whose argmax is the
//   diagonal (image -> text). After every optimizer step logit_scale is clamped to
//   [0, ln 100] (as CLIP's training).
// - Loop: the loader of `emotune train` over data.train (template plain, shuffled with
//   train.seed, drop_last; bad samples skipped and counted up to data.max_bad_samples),
//   AdamW (train.lr; train.weight_decay on matrices and embeddings only, none on gains,
//   biases, class_embedding and logit_scale), clipping train.max_grad_norm, schedule
//   train.lr_scheduler with warmup, total = train.max_steps or epochs x steps per epoch.
//   Augmentation, deterministic and resume-safe (a hash of train.seed, the step and the batch
//   row decides): clip.flip mirrors half of the images; clip.gray = p turns an image grey
//   (luminance) with probability p, so that skin and background colour, which the captions
//   name and a tiny tower learns first, are not the only cue.
// - Outputs and safety as `emotune train` (train/trainer.h): the run directory rules of
//   train/run_dir.h (--resume / --overwrite, lock), checkpoints/step-N with exact resume
//   (bit-identical weights), SIGINT/SIGTERM/SIGHUP checkpoint and stop, config.json,
//   metrics.jsonl (loss, lr, logit_scale, acc = in-batch retrieval accuracy, grad_norm,
//   images_per_s). At the end: tower/ (HF CLIPVisionModel, et_export_clip_vision, f32) and
//   clip_head.safetensors (visual_projection.weight, logit_scale, text_model.*,
//   text_projection.weight: HF CLIPModel names).
// - Evaluation (data.eval, when set, at the end): image -> text retrieval accuracy over the
//   whole split (a caption identical to the true one counts as a hit), and zero-shot emotion
//   accuracy: the classes are the sorted distinct "label"s of the split, each class's text is
//   clip.prompt with {label} replaced, an image is assigned the most similar class text.
#ifndef ET_TRAIN_PRETRAIN_TOWER_H
#define ET_TRAIN_PRETRAIN_TOWER_H

#include <stdbool.h>
#include <stdint.h>

#include "aux_run.h"
#include "core/status.h"
#include "core/tensor.h"
#include "data/tokenizer.h"
#include "runconfig.h"
#include "train/models/clip.h"
#include "train/models/text_encoder.h"
#include "trainer.h"

typedef struct {
    et_clip_vision tower;
    et_tensor *vproj;        // [E, D]
    et_tensor *logit_scale;  // [] f32
    et_text_encoder text;
    int n_params;
    char (*names)[ET_CLIP_NAME_MAX];  // [n_params]
    const char **name_ptrs;           // [n_params] -> names
    et_tensor **params;               // [n_params] borrowed
} et_clip_pair;

et_status et_clip_pair_build(const et_run_config *c, const et_tokenizer *tok, et_clip_pair *p);
void et_clip_pair_free(et_clip_pair *p);

et_tensor *et_clip_contrastive_loss(et_tensor *img, et_tensor *txt, et_tensor *logit_scale,
                                    double *acc);

// The caption's ids (see Captions); returns the count (>= 1) written to out (cap >= 1).
int et_clip_caption_ids(const et_tokenizer *tok, const char *caption, int max_text_len,
                        int32_t *out);

et_status et_pretrain_tower_run(const et_run_config *c, const et_train_opts *opts,
                                et_pretrain_result *res);

#endif
