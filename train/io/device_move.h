// train/io/device_move.h - places a model on a device (the GPU): walks the models' tensors and
// replaces each by a copy on the device, keeping trainability and ties.
// defines: et_device_mover, et_mover_init, et_mover_free, et_mover_tensor, et_mover_linear,
//          et_mover_llama, et_mover_clip, et_mover_projector, et_mover_face_prior,
//          et_mover_emo_model, et_emo_model_to_device
//
// Contract
// - A mover maps each tensor it has seen to its device copy, so a tensor shared by two
//   fields (a tied lm_head and embed_tokens) stays one tensor on the device. Every field
//   moved is replaced by the copy (same dtype and shape, requires_grad as before, no grad:
//   call it before the first backward). The old tensors are kept (retained) until
//   et_mover_free, so pointers cannot be reused while the map is alive; the model's old
//   references are released at once (the CPU memory goes with et_mover_free, or stays
//   while someone else holds it).
// - Tensors already on the device are kept as they are (moving twice is a no-op).
// - What moves: every weight, bias, norm, embedding, LoRA A/B, the decoder's inv_freq and
//   the CLIP tower's embeddings; et_mover_emo_model also rewrites the trainable groups'
//   parameter arrays (et_emo_group.params) to the device copies, so an optimizer built
//   afterwards sees them. Build the optimizer after the move.
// - Inputs are not moved here: pixels and landmarks go to the device with et_to_device;
//   ids, labels and masks stay on the CPU (the splice reads them on the host, ops upload
//   what they need).
// - Errors: a device this build cannot drive (no backend, no GPU) is ET_ERR_UNSUPPORTED
//   from et_emo_model_to_device; the et_mover_* walkers assume a usable device.
// - Not thread-safe; a mover belongs to one thread.
#ifndef ET_TRAIN_DEVICE_MOVE_H
#define ET_TRAIN_DEVICE_MOVE_H

#include "core/status.h"
#include "core/tensor.h"
#include "train/models/clip.h"
#include "train/emo_model.h"
#include "train/models/face_prior.h"
#include "train/models/llama.h"
#include "train/models/nn.h"
#include "train/models/projector.h"

typedef struct {
    et_device dev;
    et_tensor **from;  // [n] the original tensors (retained)
    et_tensor **to;    // [n] their device copies (borrowed from the model)
    int n, cap;
    size_t bytes_moved;  // sum of the copies' sizes
} et_device_mover;

void et_mover_init(et_device_mover *mv, et_device dev);
void et_mover_free(et_device_mover *mv);
// *slot (may be NULL) is replaced by its device copy.
void et_mover_tensor(et_device_mover *mv, et_tensor **slot);
void et_mover_linear(et_device_mover *mv, et_linear_layer *l);
void et_mover_llama(et_device_mover *mv, et_llama *m);
void et_mover_clip(et_device_mover *mv, et_clip_vision *m);
void et_mover_projector(et_device_mover *mv, et_projector *p);
void et_mover_face_prior(et_device_mover *mv, et_face_prior *fp);
void et_mover_emo_model(et_device_mover *mv, et_emo_model *m);

// The whole emo model (decoder, tower, projector, face prior, adapters) onto dev; bytes
// moved in *bytes (may be NULL).
et_status et_emo_model_to_device(et_emo_model *m, et_device dev, size_t *bytes);

#endif
