// train/models/face_prior.c - see face_prior.h
#include "face_prior.h"

#include <string.h>

#include "core/ops.h"

static const char *const kind_names[] = {"none", "landmark", "face_info_mining"};

et_status et_face_prior_kind_parse(const char *s, et_face_prior_kind *out) {
    for (int k = 0; k < 3; k++)
        if (s && !strcmp(s, kind_names[k])) {
            *out = (et_face_prior_kind)k;
            return NULL;
        }
    return et_err(ET_ERR_INVALID,
                  "face_prior \"%s\": expected \"none\", \"landmark\" or \"face_info_mining\"",
                  s ? s : "(null)");
}

const char *et_face_prior_kind_name(et_face_prior_kind k) {
    return (unsigned)k < 3 ? kind_names[k] : "?";
}

et_status et_face_prior_init(et_face_prior *fp, et_face_prior_kind kind, int64_t landmark_dim,
                             int64_t hidden, uint64_t seed, uint64_t *offset_io) {
    memset(fp, 0, sizeof *fp);
    fp->kind = kind, fp->landmark_dim = landmark_dim, fp->hidden = hidden, fp->repeat = 1;
    if (kind == ET_PRIOR_NONE) return NULL;
    if (kind == ET_PRIOR_FACE_INFO_MINING)
        return et_err(ET_ERR_UNSUPPORTED,
                      "face_prior \"face_info_mining\" is not implemented yet; use \"landmark\" "
                      "or \"none\"");
    if (landmark_dim < 2 || hidden < 1)
        return et_err(ET_ERR_INVALID, "face_prior landmark: landmark_dim %lld must be >= 2",
                      (long long)landmark_dim);
    *offset_io = et_projector_init(&fp->expert, ET_PROJ_MLP2X_GELU, landmark_dim, hidden,
                                   ET_PROJ_NAMES_LLAVA, seed, *offset_io);
    et_projector_set_prefix(&fp->expert, "model.landmark_expert");
    return NULL;
}

et_tensor *et_face_prior_forward(et_face_prior *fp, et_tensor *landmarks) {
    if (fp->kind == ET_PRIOR_NONE) return NULL;
    ET_ASSERT(landmarks && landmarks->ndim == 2 && landmarks->shape[1] == fp->landmark_dim,
              "et_face_prior_forward: landmarks must be [B, %lld]", (long long)fp->landmark_dim);
    et_tensor *x = et_reshape(landmarks, 3, (int64_t[]){landmarks->shape[0], 1, fp->landmark_dim});
    et_tensor *y = et_projector_forward(&fp->expert, x);
    et_release(x);
    if (fp->repeat > 1) {  // rows b*K + k of the result are row b of y
        const int64_t B = landmarks->shape[0], K = fp->repeat, H = fp->hidden;
        et_tensor *idx = et_empty(ET_I32, 1, (int64_t[]){B * K});
        for (int64_t i = 0; i < B * K; i++) ET_DATA(int32_t, idx)[i] = (int32_t)(i / K);
        et_tensor *rows = et_reshape(y, 2, (int64_t[]){B, H});
        et_tensor *g = et_gather_rows(rows, idx);
        et_release(rows), et_release(idx), et_release(y);
        y = et_reshape(g, 3, (int64_t[]){B, K, H});
        et_release(g);
    }
    return y;
}

int et_face_prior_tokens(const et_face_prior *fp) {
    return fp->kind == ET_PRIOR_NONE ? 0 : fp->repeat;
}

int et_face_prior_params(et_face_prior *fp, const char **names, et_tensor **tensors) {
    if (fp->kind != ET_PRIOR_LANDMARK) return 0;
    return et_projector_params(&fp->expert, names, tensors);
}

void et_face_prior_free(et_face_prior *fp) {
    if (fp->kind == ET_PRIOR_LANDMARK) et_projector_free(&fp->expert);
    memset(fp, 0, sizeof *fp);
}
