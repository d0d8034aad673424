// train/models/face_prior.h - the face-prior expert: prior tokens appended after the visual tokens.
// defines: et_face_prior_kind, et_face_prior, et_face_prior_kind_parse,
//          et_face_prior_kind_name, et_face_prior_init, et_face_prior_forward,
//          et_face_prior_params, et_face_prior_free
//
// Contract
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
// - forward: landmarks f32 [B, D] -> [B, 1, H] (f32, autograd-connected to the expert).
// - "face_info_mining" is parsed but not built yet: ET_ERR_UNSUPPORTED at init.
#ifndef ET_TRAIN_FACE_PRIOR_H
#define ET_TRAIN_FACE_PRIOR_H

#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"
#include "projector.h"

typedef enum { ET_PRIOR_NONE = 0, ET_PRIOR_LANDMARK, ET_PRIOR_FACE_INFO_MINING } et_face_prior_kind;

typedef struct {
    et_face_prior_kind kind;
    int64_t landmark_dim;  // D
    int64_t hidden;        // H
    et_projector expert;   // the landmark MLP (kind == ET_PRIOR_LANDMARK)
    int repeat;            // copies of the prior token (>= 1)
} et_face_prior;

// "none" | "landmark" | "face_info_mining"; anything else is ET_ERR_INVALID naming it.
et_status et_face_prior_kind_parse(const char *s, et_face_prior_kind *out);
const char *et_face_prior_kind_name(et_face_prior_kind k);
// Builds the prior; returns the Philox offset after its draws in *offset_io.
et_status et_face_prior_init(et_face_prior *fp, et_face_prior_kind kind, int64_t landmark_dim,
                             int64_t hidden, uint64_t seed, uint64_t *offset_io);
// Prior tokens [B, P, H] (P = repeat for landmarks) or NULL for ET_PRIOR_NONE.
et_tensor *et_face_prior_forward(et_face_prior *fp, et_tensor *landmarks);
// Number of prior tokens per sample (0 for none).
int et_face_prior_tokens(const et_face_prior *fp);
// Trainable tensors and names (0 for none); fills the arrays when non-NULL.
int et_face_prior_params(et_face_prior *fp, const char **names, et_tensor **tensors);
void et_face_prior_free(et_face_prior *fp);

#endif
