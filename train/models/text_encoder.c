// train/models/text_encoder.c - see text_encoder.h
#include "text_encoder.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ops.h"
#include "core/rng.h"

static et_tensor *swap(et_tensor *a, et_tensor *b) {
    et_release(a);
    return b;
}

static void new_linear(et_linear_layer *l, et_dtype dt, int64_t out, int64_t in) {
    memset(l, 0, sizeof *l);
    l->weight = et_empty(dt, 2, (int64_t[]){out, in});
    l->bias = et_empty(dt, 1, &out);
}

int et_text_encoder_params(et_text_encoder *m, char (*names)[ET_CLIP_NAME_MAX], et_tensor **out) {
    int n = 0;
#define P_ADD(t, ...)                                                 \
    do {                                                              \
        if (names) snprintf(names[n], ET_CLIP_NAME_MAX, __VA_ARGS__); \
        if (out) out[n] = (t);                                        \
        n++;                                                          \
    } while (0)
    P_ADD(m->tok_emb, "text_model.embeddings.token_embedding.weight");
    P_ADD(m->pos_emb, "text_model.embeddings.position_embedding.weight");
    for (int l = 0; m->layers && l < m->cfg.layers; l++)
        et_clip_layer_params(&m->layers[l], "text_model", l, names, out, &n);
    P_ADD(m->final_ln_w, "text_model.final_layer_norm.weight");
    P_ADD(m->final_ln_b, "text_model.final_layer_norm.bias");
    P_ADD(m->proj, "text_projection.weight");
#undef P_ADD
    return n;
}

et_status et_text_encoder_new_random(const et_text_config *c, double std, uint64_t seed,
                                     et_text_encoder *m) {
    memset(m, 0, sizeof *m);
    if (c->vocab_size < 1 || c->width < 1 || c->layers < 1 || c->heads < 1 || c->width % c->heads ||
        c->max_len < 2 || c->proj_dim < 1)
        return et_err(ET_ERR_INVALID,
                      "text encoder: clip.text_width %lld must be a multiple of clip.text_heads "
                      "%lld (and every size positive; vocab %lld, clip.max_text_len %lld)",
                      (long long)c->width, (long long)c->heads, (long long)c->vocab_size,
                      (long long)c->max_len);
    m->cfg = *c;
    const int64_t V = c->vocab_size, W = c->width, T = c->max_len, E = c->proj_dim, I = 4 * W;
    const et_dtype dt = c->f64 ? ET_F64 : ET_F32;
    m->tok_emb = et_empty(dt, 2, (int64_t[]){V, W});
    m->pos_emb = et_empty(dt, 2, (int64_t[]){T, W});
    m->layers = calloc((size_t)c->layers, sizeof *m->layers);
    for (int l = 0; l < c->layers; l++) {
        et_clip_layer *y = &m->layers[l];
        new_linear(&y->q, dt, W, W), new_linear(&y->k, dt, W, W), new_linear(&y->v, dt, W, W);
        new_linear(&y->o, dt, W, W), new_linear(&y->fc1, dt, I, W), new_linear(&y->fc2, dt, W, I);
        y->ln1_w = et_empty(dt, 1, &W), y->ln1_b = et_empty(dt, 1, &W);
        y->ln2_w = et_empty(dt, 1, &W), y->ln2_b = et_empty(dt, 1, &W);
    }
    m->final_ln_w = et_empty(dt, 1, &W), m->final_ln_b = et_empty(dt, 1, &W);
    m->proj = et_empty(dt, 2, (int64_t[]){E, W});
    const int n = et_text_encoder_params(m, NULL, NULL);
    char(*names)[ET_CLIP_NAME_MAX] = malloc(sizeof(*names) * (size_t)n);
    et_tensor **ts = malloc(sizeof(*ts) * (size_t)n);
    et_text_encoder_params(m, names, ts);
    // HF CLIPPreTrainedModel._init_weights (factor = std / 0.02): token embedding std,
    // position embedding std / 2, q/k/v and fc2 W^-0.5 (2L)^-0.5, out_proj W^-0.5, fc1
    // (2W)^-0.5, text_projection W^-0.5; at 0.02 everywhere the EOS state would hardly depend
    // on the caption and the contrastive loss would start at a collapsed point
    const double f = std / 0.02, Wd = (double)W, Ld = (double)c->layers;
    const double in_std = pow(Wd, -0.5) * pow(2 * Ld, -0.5) * f, out_std = pow(Wd, -0.5) * f;
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const char *nm = names[i];
        size_t len = strlen(nm);
        bool bias = len > 5 && !strcmp(nm + len - 5, ".bias");
        bool ln_w = !bias && strstr(nm, "norm") != NULL;
        double sd = std;
        if (strstr(nm, "position_embedding"))
            sd = 0.5 * std;
        else if (strstr(nm, "q_proj") || strstr(nm, "k_proj") || strstr(nm, "v_proj") ||
                 strstr(nm, "fc2"))
            sd = in_std;
        else if (strstr(nm, "out_proj") || strstr(nm, "text_projection"))
            sd = out_std;
        else if (strstr(nm, "fc1"))
            sd = pow(2 * Wd, -0.5) * f;
        if (ln_w)
            et_fill_(ts[i], 1.0);
        else if (bias)
            et_fill_(ts[i], 0.0);
        else
            et_randn_(ts[i], 0.0, sd, seed, offset);
        offset += (uint64_t)ts[i]->numel;
    }
    free(names), free(ts);
    return NULL;
}

et_tensor *et_text_encoder_forward(et_text_encoder *m, int B, const int32_t *const *ids,
                                   const int *lens) {
    const et_text_config *c = &m->cfg;
    int T = 1;
    for (int b = 0; b < B; b++) {
        ET_ASSERT(lens[b] >= 1 && lens[b] <= c->max_len,
                  "et_text_encoder_forward: sequence %d has %d tokens (1..%lld)", b, lens[b],
                  (long long)c->max_len);
        if (lens[b] > T) T = lens[b];
    }
    const int64_t W = c->width;
    et_tensor *tid = et_zeros(ET_I32, 2, (int64_t[]){B, T});
    et_tensor *mask = et_zeros(ET_I32, 2, (int64_t[]){B, T});
    et_tensor *eos = et_empty(ET_I32, 1, (int64_t[]){B});
    int32_t *pi = et_data(tid), *pm = et_data(mask), *pe = et_data(eos);
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < lens[b]; t++) {
            ET_ASSERT(ids[b][t] >= 0 && ids[b][t] < c->vocab_size,
                      "et_text_encoder_forward: id %d outside the vocabulary", ids[b][t]);
            pi[(int64_t)b * T + t] = ids[b][t], pm[(int64_t)b * T + t] = 1;
        }
        pe[b] = b * T + lens[b] - 1;
    }
    et_tensor *x = et_embedding(m->tok_emb, tid);  // [B,T,W]
    et_tensor *pos = et_narrow(m->pos_emb, 0, 0, T);
    x = swap(x, et_add_bcast(x, pos));
    et_release(pos);
    for (int l = 0; l < c->layers; l++)
        x = swap(x, et_clip_layer_forward(&m->layers[l], x, c->heads, c->eps, ET_CLIP_QUICK_GELU,
                                          mask, true));
    x = swap(x, et_reshape(x, 2, (int64_t[]){(int64_t)B * T, W}));
    x = swap(x, et_gather_rows(x, eos));  // [B,W]: the EOS rows
    x = swap(x, et_layernorm(x, m->final_ln_w, m->final_ln_b, c->eps));
    x = swap(x, et_linear(x, m->proj, NULL));  // [B,E]
    et_release(tid), et_release(mask), et_release(eos);
    return x;
}

void et_text_encoder_free(et_text_encoder *m) {
    et_release(m->tok_emb), et_release(m->pos_emb);
    if (m->layers) {
        for (int l = 0; l < m->cfg.layers; l++) {
            et_clip_layer *y = &m->layers[l];
            et_linear_layer *lin[6] = {&y->q, &y->k, &y->v, &y->o, &y->fc1, &y->fc2};
            for (int j = 0; j < 6; j++) et_linear_layer_free(lin[j]);
            et_release(y->ln1_w), et_release(y->ln1_b), et_release(y->ln2_w), et_release(y->ln2_b);
        }
        free(m->layers);
    }
    et_release(m->final_ln_w), et_release(m->final_ln_b), et_release(m->proj);
    memset(m, 0, sizeof *m);
}
