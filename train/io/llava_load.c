// train/io/llava_load.c - see llava_load.h
#include "llava_load.h"
#include "train/io/llama_load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "train/io/hf_weights.h"

static bool ckpt_has_prefix(et_ckpt *ck, const char *prefix) {
    size_t n = strlen(prefix);
    for (int i = 0; i < et_ckpt_num_tensors(ck); i++)
        if (strncmp(et_ckpt_name(ck, i), prefix, n) == 0) return true;
    return false;
}

// The tower, from the checkpoint (under `tower_prefix`) or from vision_dir.
static et_status load_tower(const char *dir, const char *vision_dir, const et_llava_config *cfg,
                            et_ckpt *ck, const char *tower_prefix, et_clip_vision *v) {
    memset(v, 0, sizeof *v);
    char path[4096];
    if (ckpt_has_prefix(ck, tower_prefix)) {
        if (vision_dir) {
            snprintf(path, sizeof path, "%s/config.json", vision_dir);
        } else if (cfg->hf_layout) {
            snprintf(path, sizeof path, "%s/config.json", dir);
        } else {
            return et_err(ET_ERR_MISSING,
                          "the checkpoint holds the tower (%s*) but LLaVA-1.5's config.json "
                          "does not describe it: pass vision_dir, the CLIP directory named by "
                          "mm_vision_tower (\"%s\")",
                          tower_prefix, cfg->vision_tower);
        }
        ET_TRY(et_clip_config_load(path, &v->cfg));
        // "<p>vision_tower." / "<p>vision_tower.vision_tower." -> the CLIP weight prefix
        return et_clip_vision_load_weights(v, et_ckpt_st_file(ck), et_ckpt_st_index(ck),
                                           cfg->hf_layout ? "vision_tower."
                                                          : "model.vision_tower.vision_tower.");
    }
    if (!vision_dir) {
        if (cfg->hf_layout)
            return et_err(ET_ERR_MISSING,
                          "no vision tower: no tensor under \"%s\" in the checkpoint and no "
                          "vision_dir given",
                          tower_prefix);
        return et_err(ET_ERR_MISSING,
                      "no vision tower: no tensor under \"%s\" in the checkpoint and no "
                      "vision_dir given; pass the CLIP directory named by mm_vision_tower "
                      "(\"%s\")",
                      tower_prefix, cfg->vision_tower);
    }
    return et_clip_vision_load(vision_dir, v);
}

et_status et_llava_load(const char *dir, const char *vision_dir, et_dtype weight_dtype,
                        et_llava **out) {
    *out = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    et_llava *m = calloc(1, sizeof *m);
    ET_ASSERT(m, "out of host memory");
    et_status s = et_llava_config_load(path, &m->cfg);
    if (s) {
        free(m);
        return s;
    }
    const bool hf = m->cfg.hf_layout;
    const char *text_key = hf ? "text_config" : NULL;
    et_llama_config lc;
    s = et_llama_config_load_sub(path, text_key, &lc);
    et_ckpt *ck = NULL;
    if (!s) s = et_ckpt_open(dir, &ck);
    if (s) {
        free(m);
        return s;
    }
    const char *proj_prefix = hf ? "multi_modal_projector." : "model.mm_projector.";
    const char *tower_prefix = hf ? "vision_tower." : "model.vision_tower.";
    const char *const others[] = {proj_prefix, tower_prefix};
    et_status parts[3] = {NULL, NULL, NULL};
    static const char *const part_name[3] = {"decoder", "projector", "vision tower"};
    parts[0] = et_llama_load_ex(dir, text_key, hf ? "language_model." : "", 2, others,
                                weight_dtype, &m->llm);
    parts[1] = et_projector_load(&m->proj, m->cfg.projector, m->cfg.mm_hidden_size,
                                 lc.hidden_size, et_ckpt_st_file(ck), et_ckpt_st_index(ck));
    bool proj_ok = !parts[1];
    parts[2] = load_tower(dir, vision_dir, &m->cfg, ck, tower_prefix, &m->vision);
    bool tower_ok = !parts[2];
    et_ckpt_close(ck);
    if (tower_ok && m->vision.cfg.hidden_size != m->cfg.mm_hidden_size)
        parts[2] = et_err(ET_ERR_FORMAT, "hidden size %lld, but mm_hidden_size is %lld",
                          (long long)m->vision.cfg.hidden_size,
                          (long long)m->cfg.mm_hidden_size);
    if (parts[0] || parts[1] || parts[2]) {
        // One status message (1024 bytes) for every failing part: share it out.
        int nfail = (parts[0] != NULL) + (parts[1] != NULL) + (parts[2] != NULL);
        char msg[1024];
        size_t n = (size_t)snprintf(msg, sizeof msg, "%s: LLaVA checkpoint (%s layout):", dir,
                                    hf ? "llava-hf" : "LLaVA-1.5");
        const size_t share = n < 900 ? (sizeof msg - 1 - n) / (size_t)nfail : 0;
        et_code code = ET_OK;
        for (int i = 0; i < 3; i++) {
            if (!parts[i]) continue;
            if (code == ET_OK || et_status_code(parts[i]) == ET_ERR_MISSING)
                code = et_status_code(parts[i]);
            const char *pm = et_status_msg(parts[i]);
            size_t room = share > 24 ? share - 24 : 0, len = strlen(pm);
            if (n < sizeof msg && room)
                n += (size_t)snprintf(msg + n, sizeof msg - n, " [%s] %.*s%s", part_name[i],
                                      (int)(len > room ? room : len), pm,
                                      len > room ? "..." : "");
            et_status_free(parts[i]);
        }
        et_llama_free(m->llm);
        if (proj_ok) et_projector_free(&m->proj);
        if (tower_ok) et_clip_vision_free(&m->vision);
        free(m);
        return et_err(code, "%s", msg);
    }
    m->mllm = (et_mllm){.vision = &m->vision,
                        .proj = &m->proj,
                        .llm = m->llm,
                        .select_layer = m->cfg.select_layer,
                        .feature = m->cfg.feature,
                        .image_token = m->cfg.image_token,
                        .max_len = 0};
    *out = m;
    return NULL;
}

void et_llava_free(et_llava *m) {
    if (!m) return;
    et_llama_free(m->llm);
    et_projector_free(&m->proj);
    et_clip_vision_free(&m->vision);
    free(m);
}
