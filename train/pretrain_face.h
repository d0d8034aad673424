// train/pretrain_face.h - `emotune pretrain-face`: multi-task training of the face analysis
// network (train/models/face_net.h) on faces with landmarks and attributes.
// defines: et_face_targets, et_face_attr_classes, et_pretrain_face_run, et_face_nme
//
// Contract
// - Model: model.face_net_path (continued) or a random network of model.face_net's shape
//   (Philox seed model.init_seed + 7, weights N(0, model.init_std)); every tensor trains.
// - Data: data.train, LLaVA-format JSON whose samples carry "landmark" (68 x 2 = 136
//   values, x and y in [-1, 1], iBUG order: required) and "attributes" {age, gender, race};
//   images preprocessed as the CLIP tower's (data.image_aspect_ratio) at the network's
//   image_size. The conversations are not used (they are tokenised by the loader with
//   data.template and model.tokenizer like any sample, so a broken one is reported).
// - Targets (et_face_attr_classes): age: a number of years -> its decade bin (0-9, ..., 70+:
//   FaceXFormer's 8 bins); the synthetic generator's groups child / young adult / adult /
//   senior -> bins 0 / 2 / 4 / 6. gender: male 0, female 1 (FaceXFormer). race: White 0,
//   Black 1, Indian 2, Asian (East / Southeast Asian) 3, other named groups (Latino_Hispanic,
//   Middle Eastern, Others) 4 (FaceXFormer / FairFace); the synthetic generator's skin groups
//   light .. dark -> 0 .. 4 (on synthetic data the 5-way head is a skin-group head). Case
//   and spaces / underscores do not matter. A missing attribute contributes no loss
//   (-100); a value outside these sets is an error naming the file, the sample and the value.
// - Loss: face.landmark_weight x mean |landmarks - target| (L1 over the 136 coordinates)
//   + CE(age) + CE(gender) + CE(race). Logged metrics: l1, age_acc, gender_acc, race_acc
//   (the batch's argmax accuracies).
// - Loop, checkpoints, resume, signals: train/aux_run.h. At the end: face_net/ (config.json
//   + model.safetensors, FaceXFormer names: model.face_net_path for later runs), then, with
//   data.eval, the held-out metrics: landmark NME (mean point error over the inter-ocular
//   distance, outer eye corners 36 and 45, per face, averaged: et_face_nme) and the age,
//   gender and race accuracies.
#ifndef ET_TRAIN_PRETRAIN_FACE_H
#define ET_TRAIN_PRETRAIN_FACE_H

#include "aux_run.h"
#include "core/status.h"
#include "runconfig.h"
#include "trainer.h"

// Classes of one sample's attributes (-100 where absent); age_years is NaN unless numeric.
et_status et_face_attr_classes(const char *age, double age_years, const char *gender,
                               const char *race, int *age_c, int *gender_c, int *race_c);
// Inter-ocular normalised mean error of one face's 68 predicted points (136 values each).
double et_face_nme(const float *pred, const float *target);

et_status et_pretrain_face_run(const et_run_config *c, const et_train_opts *opts,
                               et_pretrain_result *res);

#endif
