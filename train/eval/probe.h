// train/eval/probe.h - a linear probe of a vision tower: images of a LLaVA-format split with
// their "label", the tower's pooled features, and a multinomial logistic regression.
// defines: et_image_set, et_image_set_load, et_image_set_free, et_probe_features, et_logreg,
//          et_logreg_fit, et_logreg_predict, et_logreg_free, et_logreg_cv, et_probe_result,
//          et_probe_run
//
// Contract
// - et_image_set_load reads every sample of a dataset (data/dataset.h) with an "image":
//   decoded, LLaVA-padded to a square when pad (data.image_aspect_ratio "pad") and CLIP
//   preprocessed to image_size; label (the sample's "label", "" when none) and caption (its
//   first gpt turn, NULL when none) are kept. A sample that fails to load (bad JSON, missing
//   image) is skipped and counted (n_skipped; the first message in first_error).
// - et_probe_features -> f32 [n, D] under no-grad, batches of 64. Pooled features:
//   post_layernorm(CLS of the last layer) when the tower has a post_layernorm (*kind =
//   "pooled"), else the mean over the patch tokens of hidden_states[select_layer] (*kind =
//   "patch_mean", also forced by patch_mean).
// - et_logreg_fit: multinomial logistic regression on standardised features (the train
//   features' mean and std, std 0 -> 1), minimising mean cross-entropy + l2/2 ||W||^2 (bias
//   not penalised) with L-BFGS (memory 10, backtracking Armijo line search), full batch, in
//   double; deterministic. Stops when the gradient's max-norm < 1e-6 or after max_iter.
//   Classes are 0..K-1.
// - et_probe_run: classes are the sorted distinct labels of the train split (samples without
//   a label are skipped; a test label the train split lacks counts as wrong); accuracy on
//   the test split. l2 < 0 chooses the penalty on the train split alone: 5-fold
//   cross-validation over {1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1} with contiguous folds
//   (consecutive samples stay together: the synthetic faces come in identities of 7, so a
//   fold holds whole identities), the best mean fold accuracy wins (ties: the larger l2);
//   then the fit on the whole train split. The test split is never seen before the score.
#ifndef ET_TRAIN_PROBE_H
#define ET_TRAIN_PROBE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"
#include "train/models/clip.h"

typedef struct {
    int64_t n;
    int image_size;
    float *pixels;    // [n, 3, S, S]
    char **labels;    // [n] ("" when none)
    char **captions;  // [n] (NULL when none)
    int64_t n_skipped;
    char first_error[512];
} et_image_set;

et_status et_image_set_load(const char *path, const char *data_root, int image_size, bool pad,
                            et_image_set *out);
void et_image_set_free(et_image_set *s);

// patch_mean: force the patch mean even when the tower has a post_layernorm.
et_tensor *et_probe_features(et_clip_vision *v, const et_image_set *s, int select_layer,
                             bool patch_mean, const char **kind);

typedef struct {
    int d, K;
    double *mean, *std;  // [d] standardisation
    double *W;           // [K, d]
    double *b;           // [K]
    int iters;
    double loss;       // final objective
    double grad_norm;  // final max-norm of the gradient
} et_logreg;

// X: [n, d] row-major; y: [n] in [0, K).
et_status et_logreg_fit(const float *X, const int *y, int64_t n, int d, int K, double l2,
                        int max_iter, et_logreg *out);
int et_logreg_predict(const et_logreg *m, const float *x);  // argmax class of one row
void et_logreg_free(et_logreg *m);
// The penalty of et_probe_run's cross-validation (see there) for rows X [n, d], y [n]:
// *l2 from the grid, *acc its mean fold accuracy.
void et_logreg_cv(const float *X, const int *y, int64_t n, int d, int K, double *l2, double *acc);

typedef struct {
    int64_t n_train, n_test;
    int n_classes;
    double train_acc, test_acc;
    const char *feature_kind;
    int iters;
    double l2;      // the penalty used (chosen by cross-validation when asked)
    double cv_acc;  // its mean fold accuracy (cross-validation only, else NaN)
} et_probe_result;

// Features of both splits from v, regression (l2), accuracy.
et_status et_probe_run(et_clip_vision *v, const et_image_set *train, const et_image_set *test,
                       int select_layer, bool patch_mean, double l2, et_probe_result *res);

#endif
