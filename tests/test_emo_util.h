// tests/test_emo_util.h - building a tiny et_emo_model from key=value overrides in tests.
// defines: test_emo_build, test_emo_group
#ifndef ET_TEST_EMO_UTIL_H
#define ET_TEST_EMO_UTIL_H

#include <string.h>

#include "train/emo_model.h"

// The model of an empty config with nb base overrides, then n extra ones (at most 32 in all).
static inline et_status test_emo_build(int nb, const char *const *base, int n,
                                       const char *const *extra, et_emo_model *m) {
    const char *ov[32];
    int k = 0;
    for (int i = 0; i < nb && k < 32; i++) ov[k++] = base[i];
    for (int i = 0; i < n && k < 32; i++) ov[k++] = extra[i];
    et_run_config c;
    et_status s = et_run_config_parse("{}", "test", k, ov, &c);
    if (!s) s = et_emo_model_build(&c, m);
    et_run_config_free(&c);
    return s;
}

// The trainable group named name, or NULL.
static inline const et_emo_group *test_emo_group(const et_emo_model *m, const char *name) {
    for (int g = 0; g < m->n_groups; g++)
        if (!strcmp(m->groups[g].name, name)) return &m->groups[g];
    return NULL;
}

#endif
