// train/face_attrs.c - see face_attrs.h
#include "face_attrs.h"

#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "core/device.h"
#include "core/log.h"
#include "core/ops.h"

static const char *const k_age[8] = {"0-9",   "10-19", "20-29", "30-39",
                                     "40-49", "50-59", "60-69", "70+"};
static const char *const k_gender[2] = {"male", "female"};
static const char *const k_race[5] = {"White", "Black", "Indian", "Asian", "Others"};

static int argmax(const float *p, int n) {
    int k = 0;
    for (int i = 1; i < n; i++)
        if (p[i] > p[k]) k = i;
    return k;
}

void et_face_attr_words(const float *probs, const char *words[3]) {
    words[0] = k_age[argmax(probs, 8)];
    words[1] = k_gender[argmax(probs + 8, 2)];
    words[2] = k_race[argmax(probs + 10, 5)];
}

void et_face_attrs_of(et_face_prior *fp, et_tensor *pixels, const char **words) {
    const int64_t B = pixels->shape[0], R = et_face_prior_raw_dim(fp);
    ET_ASSERT(R > 0, "et_face_attrs_of: the model has no face network (model.face_prior fim)");
    et_no_grad_begin();
    et_tensor *raw = et_face_prior_raw(fp, NULL, pixels);
    et_no_grad_end();
    et_tensor *h =
        raw->device.type == ET_CPU ? et_retain(raw) : et_to_device(raw, (et_device){ET_CPU, 0});
    for (int64_t b = 0; b < B; b++)
        et_face_attr_words(ET_DATA(float, h) + b * R + R - ET_FIM_ATTRS, words + 3 * b);
    et_release(raw), et_release(h);
}

void et_face_attrs_table_free(const char **table) { free((void *)table); }

et_status et_face_attrs_table(et_face_prior *fp, et_dataset *ds, const et_clip_preproc *pp,
                              const char ***table) {
    const int64_t n = et_dataset_size(ds), S = pp->crop, CHUNK = 32;
    const char **t = calloc((size_t)(3 * n + 1), sizeof *t);
    ET_ASSERT(t, "out of memory");
    et_tensor *batch = et_zeros(ET_F32, 4, (int64_t[]){CHUNK, 3, S, S});
    int64_t idx[32], k = 0, done = 0;
    for (int64_t i = 0; i <= n; i++) {
        if (i < n) {
            et_sample s;
            et_status st = et_dataset_get(ds, i, &s);
            if (st) {  // the loader reports a bad sample
                et_status_free(st);
                continue;
            }
            et_tensor *f = NULL;
            st = s.image ? et_clip_preprocess_file(s.image, pp, &f)
                         : et_err(ET_ERR_MISSING, "no image");
            et_sample_free(&s);
            if (st) {
                et_status_free(st);
                continue;
            }
            memcpy(ET_DATA(float, batch) + k * 3 * S * S, et_data(f),
                   sizeof(float) * (size_t)(3 * S * S));
            et_release(f);
            idx[k++] = i;
        }
        if (k == CHUNK || (i == n && k > 0)) {
            et_tensor *b = k == CHUNK ? et_retain(batch) : et_narrow(batch, 0, 0, k);
            const char *w[3 * 32];
            et_face_attrs_of(fp, b, w);
            et_release(b);
            for (int64_t j = 0; j < k; j++) memcpy(t + 3 * idx[j], w + 3 * j, 3 * sizeof *w);
            done += k, k = 0;
        }
    }
    et_release(batch);
    et_info("attribute prompt: age, gender and race of %lld of %lld samples from the face network",
            (long long)done, (long long)n);
    *table = t;
    return NULL;
}
