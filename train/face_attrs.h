// train/face_attrs.h - the face network's age, gender and race as the attribute prompt's
// words (attribute_prompt.source = network).
// defines: ET_AGR_NETWORK_NEEDS_FIM, et_face_attr_words, et_face_attrs_of, et_face_attrs_table,
// et_face_attrs_table_free
//
// Contract
// - Words: age bins 0-9, 10-19, ..., 60-69, 70+ (FaceXFormer's 8 bins); gender male, female;
//   race White, Black, Indian, Asian, Others (FaceXFormer's / FairFace's 5 groups). Each is
//   the arg-max of the network's probabilities (the raw priors' last 15 values,
//   train/models/face_prior.h).
// - et_face_attrs_table: for a JSON dataset, every sample's words from its image, decoded
//   and preprocessed with pp (the pipeline's CLIP preprocessing), in batches of 32 under
//   no-grad: table[3 i + {0, 1, 2}] (static strings; NULL for a sample without an image or
//   whose image does not decode: the prompt then reports it). The network needs the model's
//   Face Info Mining part (model.face_prior fim).
#ifndef ET_TRAIN_FACE_ATTRS_H
#define ET_TRAIN_FACE_ATTRS_H

#include "core/status.h"
#include "core/tensor.h"
#include "data/dataset.h"
#include "data/preprocess.h"
#include "train/models/face_prior.h"

// The refusal of attribute_prompt.source network without a face network.
#define ET_AGR_NETWORK_NEEDS_FIM                                                                \
    "attribute_prompt.source \"network\" reads the face network's age, gender and race "        \
    "heads: set model.face_prior fim (or landmark+fim) and model.face_net_path, or use source " \
    "\"dataset\""

// words[3] for one sample from its 15 probabilities (age 8, gender 2, race 5).
void et_face_attr_words(const float *probs, const char *words[3]);
// words [B * 3] for the images pixels [B, 3, S, S].
void et_face_attrs_of(et_face_prior *fp, et_tensor *pixels, const char **words);
et_status et_face_attrs_table(et_face_prior *fp, et_dataset *ds, const et_clip_preproc *pp,
                              const char ***table);
void et_face_attrs_table_free(const char **table);

#endif
