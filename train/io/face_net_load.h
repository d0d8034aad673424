// train/io/face_net_load.h - a face analysis network (train/models/face_net.h) from a model
// directory: config.json + model.safetensors (or a sharded index), FaceXFormer's names.
// defines: et_face_net_load
//
// Contract: every tensor the network runs must be present with its exact shape; one error
// (ET_ERR_FORMAT) names every missing, mis-shaped and unexpected tensor, prefixed with the
// directory. Tensors of parts emotune does not run are ignored: the backbone's final norm
// ("backbone.1."), the parsing upscaler and hypernetwork, the pose / attribute / visibility
// heads, and the relative_position_index buffers (recomputed). The result is frozen, f32.
#ifndef ET_TRAIN_IO_FACE_NET_LOAD_H
#define ET_TRAIN_IO_FACE_NET_LOAD_H

#include "core/status.h"
#include "train/models/face_net.h"

et_status et_face_net_load(const char *dir, et_face_net *m);

#endif
