// train/models/face_prior.h - the face-prior expert: prior tokens appended after the visual tokens.
// defines: et_face_prior_kind, et_face_prior, et_face_prior_kind_parse,
//          et_face_prior_kind_name, et_face_prior_init, et_face_prior_attach_fim,
//          et_face_prior_forward, et_face_prior_raw, et_face_prior_raw_dim,
//          et_face_prior_raw_layout, et_face_prior_tokens, et_face_prior_data_landmarks,
//          et_face_prior_landmark_bound, et_face_prior_params, et_face_prior_free
//
// Contract
// - The kind is a set of parts (model.face_prior): "none", "landmark", "fim" (alias
//   "face_info_mining"), or both ("landmark+fim" / "fim+landmark").
// - ET_PRIOR_NONE: no prior tokens (LLaVA). et_face_prior_forward returns NULL.
// - ET_PRIOR_LANDMARK (EmoLA, REFERENCE.md section 1): the flattened landmark vector of a
//   sample, f32 [D] (EmoLA: 106 x 2 = 212 values from InsightFace 2d106det; the synthetic
//   faces: 68 x 2 = 136, iBUG layout, normalised to [-1, 1]), goes through an mlp2x_gelu
//   (Linear(D, H), GELU, Linear(H, H)) to ONE token [H] per sample, placed right after the
//   visual tokens (et_mllm_splice's `prior`). Trainable, randomly initialised as torch's
//   nn.Linear (the projector's init, train/models/projector.h) from the Philox (seed, offset).
//   Tensor names: model.landmark_expert.0.{weight,bias}, model.landmark_expert.2.{weight,bias}.
//   repeat > 1 (emotune extension, `model.prior_repeat`): the token is placed `repeat`
//   times in a row (same embedding, consecutive positions), so it holds a larger share of
//   a randomly initialised decoder's near-uniform attention; 1 is EmoLA.
// - ET_PRIOR_FIM (EMO-LLaMA's Face Info Mining, DESIGN.md "Face priors", train/models/fim.h):
//   the frozen face analysis network (owned, attached by et_face_prior_attach_fim) runs on
//   the sample's pixels under no-grad: the CLIP-normalised image [B, 3, S, S] is resized
//   bilinearly to the network's image_size when S differs. Its fused map, task tokens and
//   the landmarks (the network's prediction, or the dataset's 68 x 2 when
//   fim_dataset_landmarks) give the clues; the aggregator gives K = fim.queries rows [B, K, W];
//   an mlp2x_gelu projector (Linear(W, H), GELU, Linear(H, H); torch init; names
//   model.fim_projector.{0,2}.{weight,bias}) maps them to K tokens. The aggregator and its
//   projector are trainable (the "expert" group); the network is never trained here and
//   receives no gradient.
// - Token order when both parts are on: the landmark token(s), then the K FIM tokens.
// - forward: landmarks f32 [B, D] (NULL when no part needs them), pixels f32 [B, 3, S, S]
//   (NULL when no FIM, or when the raw priors come from a store) -> [B, P, H] (f32,
//   autograd-connected to the trainable parts).
#ifndef ET_TRAIN_FACE_PRIOR_H
#define ET_TRAIN_FACE_PRIOR_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"
#include "face_net.h"
#include "fim.h"
#include "projector.h"

typedef enum {
    ET_PRIOR_NONE = 0,
    ET_PRIOR_LANDMARK = 1,
    ET_PRIOR_FIM = 2,
    ET_PRIOR_LANDMARK_FIM = 3
} et_face_prior_kind;

typedef struct {
    et_face_prior_kind kind;
    int64_t landmark_dim;  // D
    int64_t hidden;        // H
    et_projector expert;   // the landmark MLP (kind & ET_PRIOR_LANDMARK)
    int repeat;            // copies of the landmark token (>= 1)
    // Face Info Mining (kind & ET_PRIOR_FIM)
    et_face_net *net;  // owned, frozen
    et_fim fim;
    et_projector fim_proj;
    bool fim_dataset_landmarks;  // fim.landmarks = dataset
    char raw_layout[256];        // et_face_prior_raw_layout
} et_face_prior;

// "none" | "landmark" | "fim" | "face_info_mining" | "landmark+fim" | "fim+landmark";
// anything else is ET_ERR_INVALID naming it.
et_status et_face_prior_kind_parse(const char *s, et_face_prior_kind *out);
const char *et_face_prior_kind_name(et_face_prior_kind k);
// Builds the landmark part (when kind has it); returns the Philox offset after its draws in
// *offset_io. The FIM part needs et_face_prior_attach_fim afterwards.
et_status et_face_prior_init(et_face_prior *fp, et_face_prior_kind kind, int64_t landmark_dim,
                             int64_t hidden, uint64_t seed, uint64_t *offset_io);
// The FIM part: takes ownership of net (malloc'd, loaded; it is frozen here, also on error),
// builds the aggregator from cfg (its face_dim and n_tokens are taken from the network) and
// its projector. Errors name the fim.* key.
et_status et_face_prior_attach_fim(et_face_prior *fp, et_face_net *net, et_fim_config cfg,
                                   bool dataset_landmarks, uint64_t seed, uint64_t *offset_io);
// The frozen half of FIM, what `emotune prepare` stores: [B, R] f32 (no autograd), rows
// of R = (G + 68) F + 136 + 15 values: the G = T + 1 global rows (decoder tokens, fused
// mean), the 68 local rows (the fused map at the landmarks), the 68 (x, y) points they were
// sampled at (the network's or the dataset's), then the age (8), gender (2) and race (5)
// probabilities. Every value is rounded to bf16 (the store keeps bf16), so a run from a
// store and a run from the images see the same numbers. Both global and local rows are
// always there, so one store serves every fim.global / fim.local / fim.local_pool setting.
et_tensor *et_face_prior_raw(et_face_prior *fp, et_tensor *landmarks, et_tensor *pixels);
// R (0 without FIM) and a description of the layout, the network's weights (a hash) and
// the landmark source: a store whose layout differs was prepared for another model.
int64_t et_face_prior_raw_dim(const et_face_prior *fp);
const char *et_face_prior_raw_layout(const et_face_prior *fp);
// Prior tokens [B, P, H] or NULL for ET_PRIOR_NONE. FIM reads raw when given (a store's
// [B, R] rows), else computes it from pixels (and landmarks).
et_tensor *et_face_prior_forward(et_face_prior *fp, et_tensor *landmarks, et_tensor *pixels,
                                 et_tensor *raw);
// Number of prior tokens per sample (0 for none).
int et_face_prior_tokens(const et_face_prior *fp);
// Landmark values per sample the data must provide (0: none needed).
int64_t et_face_prior_data_landmarks(const et_face_prior *fp);
// The bound on the data's landmark values (et_dataset_opts.landmark_bound): 2 when FIM
// samples at the dataset's landmarks (normalised [-1, 1]; up to half an image outside), else
// 0 (the landmark expert takes any scale, e.g. EmoLA's).
double et_face_prior_landmark_bound(const et_face_prior *fp);
// Trainable tensors and names (0 for none); fills the arrays when non-NULL.
int et_face_prior_params(et_face_prior *fp, const char **names, et_tensor **tensors);
void et_face_prior_free(et_face_prior *fp);

#endif
