// train/io/face_net_load.c - see face_net_load.h
#include "face_net_load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_weights.h"

et_status et_face_net_load(const char *dir, et_face_net *m) {
    memset(m, 0, sizeof *m);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    et_face_net_config cfg;
    ET_TRY(et_face_net_config_load(path, &cfg));
    et_ckpt *ck = NULL;
    ET_TRY(et_ckpt_open(dir, &ck));
    et_face_net_catalogue(m, &cfg);
    et_ckpt_want *w = calloc((size_t)m->n_params, sizeof *w);
    for (int i = 0; i < m->n_params; i++) {
        const int64_t *shape;
        et_face_net_slot(m, i, &w[i].name, &w[i].ndim, &shape, &w[i].dst);
        memcpy(w[i].shape, shape, sizeof(int64_t) * (size_t)w[i].ndim);
    }
    static const char *const suffix[] = {".relative_position_index"};
    static const char *const prefix[] = {"backbone.1.",
                                         "face_decoder.output_upscaling.",
                                         "face_decoder.output_hypernetwork_mlps.",
                                         "face_decoder.pose_prediction_head.",
                                         "face_decoder.attribute_prediction_head.",
                                         "face_decoder.visibility_prediction_head."};
    et_ckpt_ignore ign = {1, suffix, 0, NULL, (int)(sizeof prefix / sizeof *prefix), prefix};
    et_status s = et_ckpt_load_all_ex(ck, m->n_params, w, ET_F32, &ign);
    free(w);
    if (s) s = et_status_wrap(s, "%s: face network (FaceXFormer layout)", dir);
    et_ckpt_close(ck);
    if (s) {
        et_face_net_free(m);
        return s;
    }
    m->frozen = true;
    return NULL;
}
