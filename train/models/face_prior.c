// train/models/face_prior.c - see face_prior.h
#include "face_prior.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "core/device.h"
#include "core/ops.h"
#include "data/preprocess.h"

static const struct {
    const char *name;
    et_face_prior_kind kind;
} k_kinds[] = {{"none", ET_PRIOR_NONE},
               {"landmark", ET_PRIOR_LANDMARK},
               {"fim", ET_PRIOR_FIM},
               {"face_info_mining", ET_PRIOR_FIM},
               {"landmark+fim", ET_PRIOR_LANDMARK_FIM},
               {"fim+landmark", ET_PRIOR_LANDMARK_FIM}};

et_status et_face_prior_kind_parse(const char *s, et_face_prior_kind *out) {
    for (size_t k = 0; k < sizeof k_kinds / sizeof k_kinds[0]; k++)
        if (s && !strcmp(s, k_kinds[k].name)) {
            *out = k_kinds[k].kind;
            return NULL;
        }
    return et_err(ET_ERR_INVALID,
                  "model.face_prior \"%s\": expected \"none\", \"landmark\", \"fim\" (or "
                  "\"face_info_mining\") or \"landmark+fim\"",
                  s ? s : "(null)");
}

const char *et_face_prior_kind_name(et_face_prior_kind k) {
    static const char *const names[] = {"none", "landmark", "fim", "landmark+fim"};
    return (unsigned)k < 4 ? names[k] : "?";
}

et_status et_face_prior_init(et_face_prior *fp, et_face_prior_kind kind, int64_t landmark_dim,
                             int64_t hidden, uint64_t seed, uint64_t *offset_io) {
    memset(fp, 0, sizeof *fp);
    fp->kind = kind, fp->landmark_dim = landmark_dim, fp->hidden = hidden, fp->repeat = 1;
    if (!(kind & ET_PRIOR_LANDMARK)) return NULL;
    if (landmark_dim < 2 || hidden < 1)
        return et_err(ET_ERR_INVALID, "face_prior landmark: landmark_dim %lld must be >= 2",
                      (long long)landmark_dim);
    *offset_io = et_projector_init(&fp->expert, ET_PROJ_MLP2X_GELU, landmark_dim, hidden,
                                   ET_PROJ_NAMES_LLAVA, seed, *offset_io);
    et_projector_set_prefix(&fp->expert, "model.landmark_expert");
    return NULL;
}

static int64_t raw_global_rows(const et_face_prior *fp) {
    return ET_FACE_NET_TOKENS + fp->net->cfg.n_mask_tokens + 1;
}

et_status et_face_prior_attach_fim(et_face_prior *fp, et_face_net *net, et_fim_config cfg,
                                   bool dataset_landmarks, uint64_t seed, uint64_t *offset_io) {
    ET_ASSERT(fp->kind & ET_PRIOR_FIM && !fp->net, "et_face_prior_attach_fim: no FIM part");
    fp->net = net;
    net->frozen = true;
    et_tensor **ts = malloc(sizeof(*ts) * (size_t)et_face_net_params(net, NULL, NULL));
    for (int i = 0, n = et_face_net_params(net, NULL, ts); i < n; i++)
        et_set_requires_grad(ts[i], false);
    free(ts);
    if (cfg.local && dataset_landmarks && (fp->landmark_dim != 2 * ET_FIM_LANDMARKS))
        return et_err(ET_ERR_INVALID,
                      "config: fim.landmarks=dataset samples at the 68 iBUG points, so "
                      "model.landmark_dim must be 136 (it is %lld)",
                      (long long)fp->landmark_dim);
    cfg.face_dim = net->cfg.fuse_dim;
    cfg.n_tokens = ET_FACE_NET_TOKENS + net->cfg.n_mask_tokens;
    ET_TRY(et_fim_init(&fp->fim, &cfg, seed + 104729));
    fp->fim_dataset_landmarks = dataset_landmarks;
    *offset_io = et_projector_init(&fp->fim_proj, ET_PROJ_MLP2X_GELU, cfg.width, fp->hidden,
                                   ET_PROJ_NAMES_LLAVA, seed, *offset_io);
    et_projector_set_prefix(&fp->fim_proj, "model.fim_projector");
    // the raw priors' identity: a store prepared with another network or landmark source is
    // refused (FNV-1a 64 over the network's f32 weights)
    uint64_t h = 14695981039346656037ull;
    const int n = et_face_net_params(net, NULL, NULL);
    et_tensor **ps = malloc(sizeof(*ps) * (size_t)n);
    et_face_net_params(net, NULL, ps);
    for (int i = 0; i < n; i++) {
        et_tensor *c = ps[i]->device.type == ET_CPU ? et_retain(ps[i])
                                                    : et_to_device(ps[i], (et_device){ET_CPU, 0});
        const unsigned char *b = et_data(c);
        for (size_t k = 0; k < (size_t)c->numel * et_dtype_size(c->dtype); k++)
            h = (h ^ b[k]) * 1099511628211ull;
        et_release(c);
    }
    free(ps);
    snprintf(fp->raw_layout, sizeof fp->raw_layout,
             "fim/1 global %lld x %lld, local 68 x %lld at %s landmarks, points 136, age 8, "
             "gender 2, race 5; network %016llx",
             (long long)raw_global_rows(fp), (long long)net->cfg.fuse_dim,
             (long long)net->cfg.fuse_dim, dataset_landmarks ? "dataset" : "network",
             (unsigned long long)h);
    return NULL;
}

// rows b*K + k of the result are row b of y [B, 1, H]
static et_tensor *repeat_token(et_tensor *y, int64_t K) {
    const int64_t B = y->shape[0], H = y->shape[2];
    et_tensor *idx = et_empty(ET_I32, 1, (int64_t[]){B * K});
    for (int64_t i = 0; i < B * K; i++) ET_DATA(int32_t, idx)[i] = (int32_t)(i / K);
    et_tensor *rows = et_reshape(y, 2, (int64_t[]){B, H});
    et_tensor *g = et_gather_rows(rows, idx);
    et_release(rows), et_release(idx);
    et_tensor *out = et_reshape(g, 3, (int64_t[]){B, K, H});
    et_release(g);
    return out;
}

static et_tensor *landmark_tokens(et_face_prior *fp, et_tensor *landmarks) {
    ET_ASSERT(landmarks && landmarks->ndim == 2 && landmarks->shape[1] == fp->landmark_dim,
              "et_face_prior_forward: landmarks must be [B, %lld]", (long long)fp->landmark_dim);
    et_tensor *x = et_reshape(landmarks, 3, (int64_t[]){landmarks->shape[0], 1, fp->landmark_dim});
    et_tensor *y = et_projector_forward(&fp->expert, x);
    et_release(x);
    if (fp->repeat > 1) {
        et_tensor *r = repeat_token(y, fp->repeat);
        et_release(y);
        y = r;
    }
    return y;
}

// x on like's device (a new reference).
static et_tensor *on_device_of(et_tensor *x, const et_tensor *like) {
    if (x->device.type == like->device.type && x->device.index == like->device.index)
        return et_retain(x);
    return et_to_device(x, like->device);
}

// Rows of the raw priors: G global rows (the decoder's tokens and the fused mean), 68 local
// rows, the 68 points they were sampled at, then the age, gender and race probabilities.

int64_t et_face_prior_raw_dim(const et_face_prior *fp) {
    if (!(fp->kind & ET_PRIOR_FIM) || !fp->net) return 0;
    const int64_t F = fp->net->cfg.fuse_dim;
    return (raw_global_rows(fp) + ET_FIM_LANDMARKS) * F + 2 * ET_FIM_LANDMARKS + ET_FIM_ATTRS;
}

const char *et_face_prior_raw_layout(const et_face_prior *fp) { return fp->raw_layout; }

// The pipeline's CLIP-normalised pixels in the network's own normalisation (a new reference;
// the same tensor when they agree): x (s_clip / s_net) + (m_clip - m_net) / s_net per channel.
static et_tensor *renormalise(const et_face_prior *fp, et_tensor *img) {
    static const float cm[3] = {ET_CLIP_MEAN_R, ET_CLIP_MEAN_G, ET_CLIP_MEAN_B},
                       cs[3] = {ET_CLIP_STD_R, ET_CLIP_STD_G, ET_CLIP_STD_B};
    const et_face_net_config *g = &fp->net->cfg;
    if ((!memcmp(cm, g->image_mean, sizeof cm) && !memcmp(cs, g->image_std, sizeof cs)) ||
        img->shape[1] != 3)
        return et_retain(img);
    et_tensor *h =
        img->device.type == ET_CPU ? et_clone(img) : et_to_device(img, (et_device){ET_CPU, 0});
    const int64_t B = h->shape[0], HW = h->shape[2] * h->shape[3];
    float *d = et_data(h);
    for (int64_t b = 0; b < B; b++)
        for (int c = 0; c < 3; c++) {
            const float a = cs[c] / g->image_std[c],
                        o = (cm[c] - g->image_mean[c]) / g->image_std[c];
            float *p = d + (b * 3 + c) * HW;
            for (int64_t i = 0; i < HW; i++) p[i] = p[i] * a + o;
        }
    if (img->device.type == ET_CPU) return h;
    et_tensor *r = et_to_device(h, img->device);
    et_release(h);
    return r;
}

et_tensor *et_face_prior_raw(et_face_prior *fp, et_tensor *landmarks, et_tensor *pixels) {
    const int64_t S = fp->net->cfg.image_size;
    ET_ASSERT(pixels && pixels->ndim == 4 && pixels->shape[1] == fp->net->cfg.num_channels,
              "et_face_prior_raw: FIM needs pixels [B, %lld, S, S]",
              (long long)fp->net->cfg.num_channels);
    const int64_t B = pixels->shape[0];
    ET_ASSERT(
        !fp->fim_dataset_landmarks || (landmarks && landmarks->numel == B * 2 * ET_FIM_LANDMARKS),
        "et_face_prior_raw: fim.landmarks=dataset needs landmarks [B, %d]", 2 * ET_FIM_LANDMARKS);
    et_no_grad_begin();
    et_tensor *img = on_device_of(pixels, fp->net->patch_w);
    if (pixels->shape[2] != S || pixels->shape[3] != S) {  // channels-last for the resize
        et_tensor *cl = et_permute(img, 4, (const int[]){0, 2, 3, 1});
        et_tensor *rs = et_resize_bilinear(cl, S, S);
        et_release(img), et_release(cl);
        img = et_permute(rs, 4, (const int[]){0, 3, 1, 2});
        et_release(rs);
    }
    et_tensor *nimg = renormalise(fp, img);
    et_release(img);
    img = nimg;
    et_face_net_out o;
    et_face_net_forward(fp->net, img, &o);
    et_release(img);
    et_tensor *pts = fp->fim_dataset_landmarks ? on_device_of(landmarks, fp->net->patch_w)
                                               : et_retain(o.landmarks);
    et_tensor *g = NULL, *l = NULL;
    et_fim_raw(&fp->fim.cfg, o.fused, o.tokens, pts, &g, &l);
    et_tensor *pr[3] = {et_softmax(o.age), et_softmax(o.gender), et_softmax(o.race)};
    const int64_t F = fp->net->cfg.fuse_dim;
    et_tensor *parts[6] = {et_reshape(g, 2, (int64_t[]){B, g->numel / B}),
                           et_reshape(l, 2, (int64_t[]){B, l->numel / B}),
                           et_reshape(pts, 2, (int64_t[]){B, 2 * ET_FIM_LANDMARKS}),
                           pr[0],
                           pr[1],
                           pr[2]};
    et_tensor *cat = et_concat(6, parts, 1);
    ET_ASSERT(cat->shape[1] == et_face_prior_raw_dim(fp) && g->shape[1] * F == g->numel / B,
              "et_face_prior_raw: %lld values, layout %lld", (long long)cat->shape[1],
              (long long)et_face_prior_raw_dim(fp));
    // bf16 values, as a prepared store holds them: the store run equals the online run
    et_tensor *h = et_cast(cat, ET_BF16), *raw = et_cast(h, ET_F32);
    for (int i = 0; i < 6; i++) et_release(parts[i]);
    et_release(cat), et_release(h), et_release(g), et_release(l), et_release(pts);
    et_face_net_out_free(&o);
    et_no_grad_end();
    return raw;
}

static et_tensor *fim_tokens(et_face_prior *fp, et_tensor *raw) {
    const int64_t B = raw->shape[0], F = fp->net->cfg.fuse_dim, G = raw_global_rows(fp);
    ET_ASSERT(raw->ndim == 2 && raw->shape[1] == et_face_prior_raw_dim(fp),
              "et_face_prior_forward: raw priors [B, %lld] expected",
              (long long)et_face_prior_raw_dim(fp));
    et_tensor *g = NULL, *l = NULL, *pe = NULL, *pts = NULL, *agr = NULL;
    const int64_t off_pts = (G + ET_FIM_LANDMARKS) * F, off_agr = off_pts + 2 * ET_FIM_LANDMARKS;
    if (fp->fim.cfg.global) {
        et_tensor *n = et_narrow(raw, 1, 0, G * F);
        g = et_reshape(n, 3, (int64_t[]){B, G, F});
        et_release(n);
        agr = et_narrow(raw, 1, off_agr, ET_FIM_ATTRS);
    }
    if (fp->fim.cfg.local) {
        et_tensor *n = et_narrow(raw, 1, G * F, ET_FIM_LANDMARKS * F);
        l = et_reshape(n, 3, (int64_t[]){B, ET_FIM_LANDMARKS, F});
        et_release(n);
        pts = et_narrow(raw, 1, off_pts, 2 * ET_FIM_LANDMARKS);
        pe = et_face_net_point_pe(fp->net, pts);
    }
    et_tensor *cond = NULL;
    et_tensor *clues = et_fim_clues_from(&fp->fim, g, l, pe, pts, agr, &cond);
    et_release(g), et_release(l), et_release(pe), et_release(pts), et_release(agr);
    et_tensor *q = et_fim_forward(&fp->fim, clues, cond);
    et_release(clues), et_release(cond);
    et_tensor *y = et_projector_forward(&fp->fim_proj, q);
    et_release(q);
    return y;
}

et_tensor *et_face_prior_forward(et_face_prior *fp, et_tensor *landmarks, et_tensor *pixels,
                                 et_tensor *raw) {
    et_tensor *parts[2] = {NULL, NULL};
    int n = 0;
    if (fp->kind & ET_PRIOR_LANDMARK) parts[n++] = landmark_tokens(fp, landmarks);
    if (fp->kind & ET_PRIOR_FIM) {
        et_tensor *r =
            raw ? on_device_of(raw, fp->net->patch_w) : et_face_prior_raw(fp, landmarks, pixels);
        parts[n++] = fim_tokens(fp, r);
        et_release(r);
    }
    if (n < 2) return parts[0];
    et_tensor *y = et_concat(2, parts, 1);
    et_release(parts[0]), et_release(parts[1]);
    return y;
}

int et_face_prior_tokens(const et_face_prior *fp) {
    return (fp->kind & ET_PRIOR_LANDMARK ? fp->repeat : 0) +
           (fp->kind & ET_PRIOR_FIM ? (int)fp->fim.cfg.queries : 0);
}

int64_t et_face_prior_data_landmarks(const et_face_prior *fp) {
    if (fp->kind & ET_PRIOR_LANDMARK) return fp->landmark_dim;
    if (fp->kind & ET_PRIOR_FIM && fp->fim.cfg.local && fp->fim_dataset_landmarks)
        return 2 * ET_FIM_LANDMARKS;
    return 0;
}

double et_face_prior_landmark_bound(const et_face_prior *fp) {
    return fp->kind & ET_PRIOR_FIM && fp->fim.cfg.local && fp->fim_dataset_landmarks ? 2.0 : 0.0;
}

int et_face_prior_params(et_face_prior *fp, const char **names, et_tensor **tensors) {
    int k = 0;
    if (fp->kind & ET_PRIOR_LANDMARK)
        k += et_projector_params(&fp->expert, names ? names + k : NULL,
                                 tensors ? tensors + k : NULL);
    if (fp->kind & ET_PRIOR_FIM && fp->net) {
        k += et_fim_params(&fp->fim, names ? names + k : NULL, tensors ? tensors + k : NULL);
        k += et_projector_params(&fp->fim_proj, names ? names + k : NULL,
                                 tensors ? tensors + k : NULL);
    }
    return k;
}

void et_face_prior_free(et_face_prior *fp) {
    if (fp->kind & ET_PRIOR_LANDMARK) et_projector_free(&fp->expert);
    if (fp->net) {
        et_face_net_free(fp->net);
        free(fp->net);
        if (fp->fim.layers || fp->fim.n_params) et_fim_free(&fp->fim);
        if (fp->fim_proj.l1.weight) et_projector_free(&fp->fim_proj);
    }
    memset(fp, 0, sizeof *fp);
}
