// data/dataloader.c - see dataloader.h
#include "dataloader.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/dtype.h"
#include "../core/log.h"
#include "../core/rng.h"
#include "attr_prompt.h"
#include "image.h"
#include "preprocess.h"
#include "video.h"

#define N_REASONS 9
static const char *const reason_names[N_REASONS] = {
    "invalid sample", "template",  "answer truncated away",
    "image",          "landmarks", "video",
    "store record",   "other",     "attributes"};
enum {
    R_SAMPLE,
    R_TEMPLATE,
    R_TRUNCATED,
    R_IMAGE,
    R_LANDMARK,
    R_VIDEO,
    R_STORE,
    R_OTHER,
    R_ATTRIBUTES
};

typedef struct {
    int64_t seq;  // global sequence number (epoch * n + position), -1 = empty
    bool ready;
    bool failed;
    int reason;
    char *msg;      // failure message (owned)
    int64_t index;  // dataset index
    char *id;
    et_ids ids, labels;
    float *pixels;    // [3, S, S] or NULL
    float *landmark;  // [D] or NULL
    float *priors;    // [P] or NULL (store source)
    float *video;     // [T, 3, S, S] or NULL
    // prepare mode (keep_u8): the crops instead of pixels/video, and the sample itself
    uint8_t *pix_u8;    // [S, S, 3] or NULL
    uint8_t *video_u8;  // [T, S, S, 3] or NULL
    et_sample *smp;
} slot_t;

struct et_loader {
    et_dataset *ds;    // the JSON source, or
    et_store *store;   // the store source
    int64_t size;      // samples in the source
    const char *name;  // source name for messages
    bool keep_u8;      // prepare mode (et_loader_prepare_store)
    et_loader_opts o;
    et_template_opts topts;
    et_clip_preproc pp;
    int64_t n;  // samples per epoch for this rank
    // lengths for grouping: > 0 multimodal, < 0 text only (LLaVA's convention)
    int64_t *lengths;  // [dataset size] or NULL
    // epoch orders (cache of two)
    int64_t order_epoch[2];
    int64_t *order[2];
    // consumer position
    int64_t seq;  // next sequence number to consume
    int64_t bad;
    int64_t bad_by_reason[N_REASONS];
    char first_msg[N_REASONS][512];
    // workers
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    int n_slots;
    slot_t *slots;
    int64_t next_claim;
    bool started, stopping;
    bool interrupted;  // et_loader_next returned because opts.stop was set
    long slow_ms;      // test hook: EMOTUNE_LOADER_SLOW_MS sleeps before each sample
    pthread_t *threads;
};

et_loader_opts et_loader_opts_default(void) {
    return (et_loader_opts){.batch_size = 1,
                            .max_len = 2048,
                            .workers = 2,
                            .prefetch = 4,
                            .shuffle = true,
                            .drop_last = true,
                            .world = 1,
                            .image_token = ET_IMAGE_TOKEN_INDEX};
}

void et_batch_free(et_batch *b) {
    for (int i = 0; i < b->B; i++) {
        if (b->ids) et_release(b->ids[i]);
        if (b->labels) et_release(b->labels[i]);
        if (b->sample_id) free(b->sample_id[i]);
    }
    free(b->ids), free(b->labels), free(b->sample_id), free(b->index);
    et_release(b->pixels);
    et_release(b->landmarks);
    et_release(b->priors);
    et_release(b->video);
    free(b->video_row);
    memset(b, 0, sizeof *b);
}

// ---- order ----------------------------------------------------------------------

static uint64_t draw_u64(uint64_t seed, uint64_t offset) {
    return ((uint64_t)et_rng_u32(seed, offset) << 32) | et_rng_u32(seed, offset + 1);
}

// Fisher-Yates with Philox draws (seed, stream offset base).
static void shuffle(int64_t *a, int64_t n, uint64_t seed, uint64_t base) {
    for (int64_t i = n - 1; i > 0; i--) {
        uint64_t r = draw_u64(seed, base + 2 * (uint64_t)i);
        int64_t j = (int64_t)(r % (uint64_t)(i + 1));
        int64_t t = a[i];
        a[i] = a[j], a[j] = t;
    }
}

static const int64_t *g_len_for_sort;
static int cmp_len_desc(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    int64_t lx = llabs(g_len_for_sort[x]), ly = llabs(g_len_for_sort[y]);
    if (lx != ly) return lx < ly ? 1 : -1;
    return (x > y) - (x < y);
}
static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

// LLaVA get_length_grouped_indices on idx[0..n) (world 1): random permutation, mega-batches of
// batch*world sorted by length descending.
static void length_grouped(int64_t *idx, int64_t n, int64_t mb, const int64_t *len, uint64_t seed,
                           uint64_t base) {
    shuffle(idx, n, seed, base);
    static pthread_mutex_t sort_mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&sort_mu);
    g_len_for_sort = len;
    for (int64_t s = 0; s < n; s += mb) {
        int64_t k = n - s < mb ? n - s : mb;
        qsort(idx + s, (size_t)k, sizeof(int64_t), cmp_len_desc);
    }
    pthread_mutex_unlock(&sort_mu);
}

// The full (unsharded) order of epoch e over the valid samples, then this rank's shard.
static int64_t *build_order(et_loader *l, int64_t e) {
    const int64_t N = l->size;
    int64_t *all = malloc(sizeof(int64_t) * (size_t)(N > 0 ? N : 1));
    ET_ASSERT(all, "out of memory");
    for (int64_t i = 0; i < N; i++) all[i] = i;
    const uint64_t seed = l->o.seed, base = (uint64_t)e << 40;
    if (l->o.group_by_length && l->lengths) {
        // LLaVA get_modality_length_grouped_indices
        const int64_t mb = (int64_t)l->o.batch_size * l->o.world;
        int64_t *mm = malloc(sizeof(int64_t) * (size_t)(N + 1));
        int64_t *lang = malloc(sizeof(int64_t) * (size_t)(N + 1));
        int64_t nm = 0, nl = 0;
        for (int64_t i = 0; i < N; i++) {
            if (l->lengths[i] > 0)
                mm[nm++] = i;
            else
                lang[nl++] = i;
        }
        length_grouped(mm, nm, mb, l->lengths, seed, base);
        length_grouped(lang, nl, mb, l->lengths, seed, base + ((uint64_t)1 << 38));
        // mega-batches: all but the last of each kind are shuffled together; the two last
        // ones form a final sorted batch
        int64_t n_mm = (nm + mb - 1) / mb, n_lang = (nl + mb - 1) / mb;
        int64_t n_full = (n_mm > 0 ? n_mm - 1 : 0) + (n_lang > 0 ? n_lang - 1 : 0);
        int64_t *mbs = malloc(sizeof(int64_t) * (size_t)(n_full + 1));  // start offsets (tagged)
        int64_t k = 0;
        for (int64_t b = 0; b + 1 < n_mm; b++) mbs[k++] = b;           // mm mega-batch b
        for (int64_t b = 0; b + 1 < n_lang; b++) mbs[k++] = -(b + 1);  // lang mega-batch b
        shuffle(mbs, k, seed, base + ((uint64_t)3 << 38));
        int64_t w = 0;
        for (int64_t q = 0; q < k; q++) {
            const int64_t *src = mbs[q] >= 0 ? mm + mbs[q] * mb : lang + (-mbs[q] - 1) * mb;
            memcpy(all + w, src, sizeof(int64_t) * (size_t)mb);
            w += mb;
        }
        int64_t tail0 = w;
        if (n_mm > 0) {
            int64_t s = (n_mm - 1) * mb;
            memcpy(all + w, mm + s, sizeof(int64_t) * (size_t)(nm - s));
            w += nm - s;
        }
        if (n_lang > 0) {
            int64_t s = (n_lang - 1) * mb;
            memcpy(all + w, lang + s, sizeof(int64_t) * (size_t)(nl - s));
            w += nl - s;
        }
        qsort(all + tail0, (size_t)(w - tail0), sizeof(int64_t), cmp_i64);
        ET_ASSERT(w == N, "grouping lost samples");
        free(mm), free(lang), free(mbs);
    } else if (l->o.shuffle && l->o.shuffle_block > 1) {
        const int64_t K = l->o.shuffle_block, nb = (N + K - 1) / K;
        int64_t *blk = malloc(sizeof(int64_t) * (size_t)nb), w = 0;
        for (int64_t i = 0; i < nb; i++) blk[i] = i;
        shuffle(blk, nb, seed, base);
        for (int64_t i = 0; i < nb; i++)
            for (int64_t k = blk[i] * K; k < N && k < (blk[i] + 1) * K; k++) all[w++] = k;
        ET_ASSERT(w == N, "block shuffle lost samples");
        free(blk);
    } else if (l->o.shuffle) {
        shuffle(all, N, seed, base);
    }
    // shard
    const int64_t per = N / l->o.world;  // equal shards (the remainder is dropped, as
                                         // DistributedSampler with drop_last)
    int64_t *mine = malloc(sizeof(int64_t) * (size_t)(per > 0 ? per : 1));
    for (int64_t i = 0; i < per; i++) mine[i] = all[i * l->o.world + l->o.rank];
    free(all);
    return mine;
}

// Order of epoch e (cached; caller holds mu when workers run).
static const int64_t *order_of(et_loader *l, int64_t e) {
    for (int k = 0; k < 2; k++)
        if (l->order[k] && l->order_epoch[k] == e) return l->order[k];
    // replace an empty slot, else the older epoch (order_epoch is -1 while a slot is empty)
    const int k = l->order_epoch[0] <= l->order_epoch[1] ? 0 : 1;
    free(l->order[k]);
    l->order[k] = build_order(l, e);
    l->order_epoch[k] = e;
    return l->order[k];
}

// ---- one sample -----------------------------------------------------------------

static void fail(slot_t *s, int reason, et_status st) {
    s->failed = true;
    s->reason = reason;
    s->msg = strdup(st ? et_status_msg(st) : reason_names[reason]);
    et_status_free(st);
}

static void process_json(et_loader *l, int64_t index, slot_t *s) {
    int64_t *vidx = NULL, vsrc = 0;  // sampled video frames
    et_sample smp;
    memset(&smp, 0, sizeof smp);
    s->index = index;
    et_status st = et_dataset_get(l->ds, index, &smp);
    if (st) {  // counted under the media field the dataset names, if any
        const char *m = et_status_msg(st);
        int reason = strstr(m, "field 'landmark'") ? R_LANDMARK
                     : strstr(m, "field 'video'")  ? R_VIDEO
                     : strstr(m, "field 'image'")  ? R_IMAGE
                                                   : R_SAMPLE;
        fail(s, reason, st);
        free(vidx);
        return;
    }
    if (smp.id) s->id = strdup(smp.id);
    et_chat_turn *turns =
        malloc(sizeof(et_chat_turn) * (size_t)(smp.n_turns > 0 ? smp.n_turns : 1));
    for (int i = 0; i < smp.n_turns; i++)
        turns[i] = (et_chat_turn){.from = smp.turns[i].from, .value = smp.turns[i].value};
    char *agr = NULL;
    if (l->o.attr_prompt) {
        const char *const *w = l->o.attr_words ? l->o.attr_words + 3 * index : NULL;
        st = et_attr_prompt_turns(l->o.attr_prompt, turns, (size_t)smp.n_turns, w ? w[0] : smp.age,
                                  w ? w[1] : smp.gender, w ? w[2] : smp.race, &agr);
        if (st) {
            free(turns);
            fail(s, R_ATTRIBUTES,
                 et_status_wrap(st, "%s: sample %lld (id \"%s\")", et_dataset_name(l->ds),
                                (long long)index, smp.id ? smp.id : ""));
            goto out;
        }
    }
    et_template_info info;
    st = et_template_encode(l->o.tmpl, l->o.tok, turns, (size_t)smp.n_turns, &l->topts, &s->ids,
                            &s->labels, &info);
    free(turns);
    free(agr);
    if (st) {
        fail(s, R_TEMPLATE,
             et_status_wrap(st, "%s: sample %lld", et_dataset_name(l->ds), (long long)index));
        goto out;
    }
    if (!info.has_supervised) {
        fail(s, R_TRUNCATED,
             et_err(ET_ERR_INVALID,
                    "%s: sample %lld (id \"%s\"): no supervised token left (%zu tokens, "
                    "max_len %d%s)",
                    et_dataset_name(l->ds), (long long)index, smp.id ? smp.id : "", info.full_len,
                    l->o.max_len, info.mismatch ? "; LLaVA tokenization mismatch" : ""));
        goto out;
    }
    if (l->o.image_size > 0 && smp.image) {
        et_image img;
        et_image_opts io = {0};
        st = et_image_decode_file(smp.image, &io, &img);
        if (!st) {
            // u8 crop, then normalize: the store source does the same from the stored crop
            et_tensor *u8 = NULL;
            st = et_clip_preprocess(&img, &l->pp, &u8, NULL);
            et_image_free(&img);
            if (!st) {
                const int S = l->o.image_size;
                if (l->keep_u8) {
                    s->pix_u8 = malloc((size_t)u8->numel);
                    ET_ASSERT(s->pix_u8, "out of memory");
                    memcpy(s->pix_u8, et_data(u8), (size_t)u8->numel);
                } else {
                    s->pixels = malloc(sizeof(float) * (size_t)u8->numel);
                    ET_ASSERT(s->pixels, "out of memory");
                    et_clip_normalize(et_data(u8), S, S, l->pp.mean, l->pp.std, s->pixels);
                }
                et_release(u8);
            }
        }
        if (st) {
            fail(s, R_IMAGE, st);
            goto out;
        }
    } else if (info.n_images > 0 && l->o.image_size > 0) {
        fail(s, R_IMAGE,
             et_err(ET_ERR_INVALID,
                    "%s: sample %lld (id \"%s\"): <image> in the text but no "
                    "\"image\" field",
                    et_dataset_name(l->ds), (long long)index, smp.id ? smp.id : ""));
        goto out;
    }
    const bool videos = l->o.video_frames > 0 && l->o.image_size > 0;
    const int T = l->o.video_frames;
    if (videos && smp.video) {
        uint8_t *u8 = NULL;
        st = et_loader_load_video(smp.video, T, &l->pp, &u8, &vidx, &vsrc);
        if (st) {
            fail(s, R_VIDEO,
                 et_status_wrap(st, "%s: sample %lld (id \"%s\")", et_dataset_name(l->ds),
                                (long long)index, smp.id ? smp.id : ""));
            goto out;
        }
        const int S = l->o.image_size;
        const size_t fs = (size_t)3 * S * S;
        if (l->keep_u8) {
            s->video_u8 = u8;
        } else {
            s->video = malloc(sizeof(float) * fs * (size_t)T);
            ET_ASSERT(s->video, "out of memory");
            for (int t = 0; t < T; t++)
                et_clip_normalize(u8 + (size_t)t * fs, S, S, l->pp.mean, l->pp.std,
                                  s->video + t * fs);
            free(u8);
        }
    } else if (videos && info.n_videos > 0) {
        fail(s, R_VIDEO,
             et_err(ET_ERR_INVALID,
                    "%s: sample %lld (id \"%s\"): <video> in the text but no "
                    "\"video\" field",
                    et_dataset_name(l->ds), (long long)index, smp.id ? smp.id : ""));
        goto out;
    }
    if (l->o.landmark_dim > 0 && smp.landmark && smp.landmark_frames > 0 &&
        smp.n_landmark == smp.landmark_frames * l->o.landmark_dim) {
        s->landmark = malloc(sizeof(float) * (size_t)l->o.landmark_dim);
        ET_ASSERT(s->landmark, "out of memory");
        et_loader_video_landmark(smp.landmark, smp.landmark_frames, l->o.landmark_dim, vidx,
                                 vidx ? T : 1, vidx ? vsrc : 0, s->landmark);
    } else if (l->o.landmark_dim > 0) {
        if (!smp.landmark || smp.n_landmark != l->o.landmark_dim) {
            fail(s, R_LANDMARK,
                 et_err(ET_ERR_INVALID, "%s: sample %lld (id \"%s\"): %s (expected %d values)",
                        et_dataset_name(l->ds), (long long)index, smp.id ? smp.id : "",
                        smp.landmark ? "landmarks of the wrong size" : "no landmarks",
                        l->o.landmark_dim));
            goto out;
        }
        s->landmark = malloc(sizeof(float) * (size_t)l->o.landmark_dim);
        memcpy(s->landmark, smp.landmark, sizeof(float) * (size_t)l->o.landmark_dim);
    }
out:
    free(vidx);
    if (l->keep_u8 && !s->failed) {
        s->smp = malloc(sizeof smp);
        ET_ASSERT(s->smp, "out of memory");
        *s->smp = smp;
    } else {
        et_sample_free(&smp);
    }
}

static void process_store(et_loader *l, int64_t index, slot_t *s) {
    s->index = index;
    et_store_record r;
    et_status st = et_store_get(l->store, index, &r);
    if (st) {
        fail(s, R_STORE, st);
        return;
    }
    if (r.id[0]) s->id = strdup(r.id);
    int64_t n = r.n_tokens < l->o.max_len ? r.n_tokens : l->o.max_len;
    bool supervised = false;
    for (int64_t t = 0; t < n && !supervised; t++) supervised = r.labels[t] != ET_IGNORE_INDEX;
    if (!supervised) {
        fail(s, R_TRUNCATED,
             et_err(ET_ERR_INVALID,
                    "%s: sample %lld (id \"%s\"): no supervised token left (%lld tokens, "
                    "max_len %d)",
                    l->name, (long long)index, r.id, (long long)r.n_tokens, l->o.max_len));
        goto out;
    }
    s->ids = (et_ids){.data = r.ids, .len = (size_t)n, .cap = (size_t)r.n_tokens};
    s->labels = (et_ids){.data = r.labels, .len = (size_t)n, .cap = (size_t)r.n_tokens};
    r.ids = r.labels = NULL;
    const int S = l->o.image_size;
    const size_t fs = (size_t)3 * S * S;
    if (S > 0 && !r.is_video && r.n_images == 1) {
        s->pixels = malloc(sizeof(float) * fs);
        ET_ASSERT(s->pixels, "out of memory");
        et_clip_normalize(r.pixels, S, S, l->pp.mean, l->pp.std, s->pixels);
    } else if (S > 0 && r.is_video && l->o.video_frames > 0) {
        const int T = l->o.video_frames;
        int64_t *pick = NULL;
        int np = 0;
        st = et_video_uniform_indices(r.n_images, T, &pick, &np);
        if (st) {
            fail(s, R_VIDEO, et_status_wrap(st, "%s: sample %lld", l->name, (long long)index));
            goto out;
        }
        s->video = malloc(sizeof(float) * fs * (size_t)T);
        ET_ASSERT(s->video, "out of memory");
        for (int t = 0; t < T; t++)
            et_clip_normalize(r.pixels + (size_t)pick[t] * fs, S, S, l->pp.mean, l->pp.std,
                              s->video + t * fs);
        free(pick);
    }
    if (l->o.landmark_dim > 0) {
        if (!r.has_landmarks) {
            fail(s, R_LANDMARK,
                 et_err(ET_ERR_INVALID,
                        "%s: sample %lld (id \"%s\"): no landmarks (expected %d "
                        "values)",
                        l->name, (long long)index, r.id, l->o.landmark_dim));
            goto out;
        }
        s->landmark = r.landmarks;
        r.landmarks = NULL;
    }
    if (l->o.prior_dim > 0 && r.priors) {
        s->priors = malloc(sizeof(float) * (size_t)l->o.prior_dim);
        ET_ASSERT(s->priors, "out of memory");
        for (int d = 0; d < l->o.prior_dim; d++) s->priors[d] = et_bf16_to_f32(r.priors[d]);
    }
out:
    et_store_record_free(&r);
}

static void process(et_loader *l, int64_t index, slot_t *s) {
    if (l->slow_ms > 0) {  // test hook (EMOTUNE_LOADER_SLOW_MS): a slow file system
        struct timespec ts = {l->slow_ms / 1000, (l->slow_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (l->store)
        process_store(l, index, s);
    else
        process_json(l, index, s);
}

// ---- videos -----------------------------------------------------------------------

et_status et_loader_load_video(const char *path, int T, const et_clip_preproc *pp, uint8_t **u8,
                               int64_t **indices, int64_t *source_frames) {
    *u8 = NULL;
    if (indices) *indices = NULL;
    *source_frames = 0;
    if (T < 1) return et_err(ET_ERR_INVALID, "%s: video_frames must be >= 1, got %d", path, T);
    et_video_opts vo = et_video_opts_default();
    vo.sampling = ET_VIDEO_UNIFORM;
    vo.num_frames = T;
    et_video v;
    ET_TRY(et_video_load(path, &vo, &v));
    if (v.n_frames != T) {
        int got = v.n_frames;
        et_video_free(&v);
        return et_err(ET_ERR_FORMAT, "%s: %d frames decoded, %d wanted", path, got, T);
    }
    const size_t fs = (size_t)3 * pp->crop * pp->crop;
    uint8_t *out = malloc(fs * (size_t)T);
    if (!out) {
        et_video_free(&v);
        return et_err(ET_ERR_NOMEM, "%s: out of memory for %d frames", path, T);
    }
    et_status st = NULL;
    for (int t = 0; t < T && !st; t++) {
        et_tensor *f = NULL;
        st = et_clip_preprocess(&v.frames[t], pp, &f, NULL);
        if (st) {
            st = et_status_wrap(st, "%s: frame %lld", path, (long long)v.indices[t]);
            break;
        }
        memcpy(out + (size_t)t * fs, et_data(f), fs);
        et_release(f);
    }
    if (st) {
        free(out);
        et_video_free(&v);
        return st;
    }
    *u8 = out;
    *source_frames = v.source_frames;
    if (indices) {
        *indices = v.indices;
        v.indices = NULL;
    }
    et_video_free(&v);
    return NULL;
}

void et_loader_video_landmark(const float *lm, int64_t frames, int64_t D, const int64_t *indices,
                              int T, int64_t source_frames, float *out) {
    int64_t *lin = NULL;
    int nl = 0;
    const bool direct = indices && frames == source_frames;
    if (!direct) {
        et_status st = et_video_uniform_indices(frames, T, &lin, &nl);
        ET_ASSERT(!st && nl == T, "et_loader_video_landmark: frames %lld, T %d", (long long)frames,
                  T);
    }
    for (int64_t d = 0; d < D; d++) out[d] = 0;
    for (int t = 0; t < T; t++) {
        int64_t k = direct ? indices[t] : lin[t];
        ET_ASSERT(k >= 0 && k < frames, "landmark row %lld of %lld", (long long)k,
                  (long long)frames);
        for (int64_t d = 0; d < D; d++) out[d] += lm[k * D + d];
    }
    for (int64_t d = 0; d < D; d++) out[d] /= (float)T;
    free(lin);
}

static void slot_clear(slot_t *s) {
    free(s->msg), free(s->id), free(s->pixels), free(s->landmark), free(s->priors), free(s->video);
    free(s->pix_u8), free(s->video_u8);
    if (s->smp) et_sample_free(s->smp);
    free(s->smp);
    et_ids_free(&s->ids), et_ids_free(&s->labels);
    memset(s, 0, sizeof *s);
    s->seq = -1;
}

// ---- workers --------------------------------------------------------------------

static int64_t index_at(et_loader *l, int64_t seq) {
    const int64_t e = seq / l->n, p = seq % l->n;
    return order_of(l, e)[p];
}

static void *worker(void *arg) {
    et_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stopping && l->next_claim >= l->seq + l->n_slots)
            pthread_cond_wait(&l->cv_work, &l->mu);
        if (l->stopping) break;
        const int64_t seq = l->next_claim++;
        const int64_t index = index_at(l, seq);
        pthread_mutex_unlock(&l->mu);
        slot_t r;
        memset(&r, 0, sizeof r);
        process(l, index, &r);
        r.seq = seq;
        r.ready = true;
        pthread_mutex_lock(&l->mu);
        l->slots[seq % l->n_slots] = r;
        pthread_cond_broadcast(&l->cv_done);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static void start_workers(et_loader *l) {
    l->started = true;
    if (l->o.workers <= 0) return;
    l->next_claim = l->seq;
    l->threads = calloc((size_t)l->o.workers, sizeof(pthread_t));
    for (int i = 0; i < l->o.workers; i++) pthread_create(&l->threads[i], NULL, worker, l);
}

static bool stop_requested(const et_loader *l) { return l->o.stop && *l->o.stop; }

// Takes the slot of sequence number seq (blocks until ready). false: a stop was requested
// (opts.stop) while waiting; nothing is taken.
static bool take(et_loader *l, int64_t seq, slot_t *out) {
    if (l->o.workers <= 0) {
        memset(out, 0, sizeof *out);
        process(l, index_at(l, seq), out);
        out->seq = seq, out->ready = true;
        return true;
    }
    pthread_mutex_lock(&l->mu);
    slot_t *s = &l->slots[seq % l->n_slots];
    while (!(s->ready && s->seq == seq)) {
        if (!l->o.stop) {
            pthread_cond_wait(&l->cv_done, &l->mu);
            continue;
        }
        if (*l->o.stop) {  // a signal handler cannot signal the condition: poll the flag
            pthread_mutex_unlock(&l->mu);
            return false;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&l->cv_done, &l->mu, &ts);
    }
    *out = *s;
    memset(s, 0, sizeof *s);
    s->seq = -1;
    pthread_mutex_unlock(&l->mu);
    return true;
}

// Takes sample seq and lets the workers move on to seq + 1 + prefetch (false: see take).
static bool take_and_advance(et_loader *l, int64_t seq, slot_t *out) {
    if (!take(l, seq, out)) return false;
    pthread_mutex_lock(&l->mu);
    l->seq = seq + 1;
    pthread_cond_broadcast(&l->cv_work);
    pthread_mutex_unlock(&l->mu);
    return true;
}

// ---- API ------------------------------------------------------------------------

static et_status loader_new(et_dataset *ds, et_store *store, const et_loader_opts *opts,
                            et_loader **out) {
    *out = NULL;
    if (opts->batch_size < 1 || opts->world < 1 || opts->rank < 0 || opts->rank >= opts->world ||
        (ds && (!opts->tmpl || !opts->tok)) || opts->prefetch < 1 || opts->video_frames < 0 ||
        opts->video_frames > ET_VIDEO_DEFAULT_MAX_OUT_FRAMES)
        return et_err(ET_ERR_INVALID,
                      "loader: invalid options (batch %d, rank %d of %d, video_frames %d)",
                      opts->batch_size, opts->rank, opts->world, opts->video_frames);
    et_loader *l = calloc(1, sizeof *l);
    l->ds = ds, l->store = store, l->o = *opts;
    const char *slow = getenv("EMOTUNE_LOADER_SLOW_MS");
    l->slow_ms = slow ? strtol(slow, NULL, 10) : 0;
    l->size = ds ? et_dataset_size(ds) : et_store_size(store);
    l->name = ds ? et_dataset_name(ds) : et_store_path(store);
    et_template_opts_init(&l->topts);
    l->topts.max_len = opts->max_len;
    l->topts.image_id = opts->image_token;
    l->topts.supervise_all = opts->supervise_all;
    if (opts->image_size > 0) {
        et_clip_preproc_default(&l->pp, opts->image_size);
        l->pp.pad_square = opts->pad_to_square;
    }
    l->n = l->size / opts->world;
    if (l->n < 1) {
        et_status st =
            l->size == 0
                ? et_err(ET_ERR_INVALID,
                         "%s holds no samples: nothing to load (prepare or point the run at a "
                         "dataset or store with samples)",
                         l->name)
                : et_err(ET_ERR_INVALID,
                         "%s: %lld samples cannot be shared by %d ranks (each needs at least "
                         "one): add samples or run fewer ranks",
                         l->name, (long long)l->size, opts->world);
        free(l);
        return st;
    }
    if (opts->group_by_length) {
        l->lengths = calloc((size_t)l->size, sizeof(int64_t));
        ET_ASSERT(l->lengths, "out of memory");
        if (ds) {
            et_status st = et_dataset_modality_lengths(ds, l->lengths);
            if (st) {
                free(l->lengths);
                free(l);
                return st;
            }
        } else {
            for (int64_t i = 0; i < l->size; i++) {
                int64_t nt = 0;
                int kind = 0;
                et_store_lengths(store, i, &nt, NULL, &kind);
                l->lengths[i] = kind == ET_STORE_KIND_TEXT ? -nt : nt;
            }
        }
    }
    l->order_epoch[0] = l->order_epoch[1] = -1;
    l->n_slots = opts->prefetch * opts->batch_size;
    if (l->n_slots < opts->workers * 2) l->n_slots = opts->workers * 2;
    l->slots = calloc((size_t)l->n_slots, sizeof(slot_t));
    for (int i = 0; i < l->n_slots; i++) l->slots[i].seq = -1;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv_work, NULL);
    pthread_cond_init(&l->cv_done, NULL);
    *out = l;
    return NULL;
}

et_status et_loader_new(et_dataset *ds, const et_loader_opts *opts, et_loader **out) {
    return loader_new(ds, NULL, opts, out);
}

et_status et_loader_new_store(et_store *store, const et_loader_opts *opts, et_loader **out) {
    *out = NULL;
    const et_store_schema *sc = et_store_get_schema(store);
    if (opts->image_size > 0 && opts->image_size != sc->image_size)
        return et_err(ET_ERR_INVALID,
                      "%s: the store holds %dx%d images but the model wants %d (prepare the "
                      "data again for this model)",
                      et_store_path(store), sc->image_size, sc->image_size, opts->image_size);
    if (opts->landmark_dim > 0 && opts->landmark_dim != sc->landmark_dim)
        return et_err(ET_ERR_INVALID,
                      "%s: the store has landmark_dim %d but the model wants %d (prepare the "
                      "data again for this model)",
                      et_store_path(store), sc->landmark_dim, opts->landmark_dim);
    if (opts->prior_dim > 0 && opts->prior_dim != sc->prior_dim)
        return et_err(ET_ERR_INVALID,
                      "%s: the store has %d prior values per sample but the model wants %d "
                      "(prepare the data again for this model)",
                      et_store_path(store), sc->prior_dim, opts->prior_dim);
    return loader_new(NULL, store, opts, out);
}

void et_loader_free(et_loader *l) {
    if (!l) return;
    if (l->threads) {
        pthread_mutex_lock(&l->mu);
        l->stopping = true;
        pthread_cond_broadcast(&l->cv_work);
        pthread_mutex_unlock(&l->mu);
        for (int i = 0; i < l->o.workers; i++) pthread_join(l->threads[i], NULL);
        free(l->threads);
    }
    for (int i = 0; i < l->n_slots; i++) slot_clear(&l->slots[i]);
    free(l->slots);
    free(l->order[0]), free(l->order[1]);
    free(l->lengths);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv_work);
    pthread_cond_destroy(&l->cv_done);
    free(l);
}

void et_loader_seek(et_loader *l, int64_t epoch, int64_t position) {
    ET_ASSERT(!l->started, "et_loader_seek: only before the first et_loader_next");
    ET_ASSERT(epoch >= 0 && position >= 0 && position <= l->n, "et_loader_seek: bad position");
    l->seq = epoch * l->n + position;
}

void et_loader_tell(const et_loader *l, int64_t *epoch, int64_t *position) {
    *epoch = l->seq / l->n;
    *position = l->seq % l->n;
}

int64_t et_loader_epoch_samples(const et_loader *l) { return l->n; }
int64_t et_loader_bad_samples(const et_loader *l) { return l->bad; }
bool et_loader_interrupted(const et_loader *l) { return l->interrupted; }

void et_loader_report(const et_loader *l, char *buf, size_t cap) {
    size_t w = 0;
    buf[0] = 0;
    for (int r = 0; r < N_REASONS; r++) {
        if (!l->bad_by_reason[r]) continue;
        int k = snprintf(buf + w, cap - w, "  %s: %lld (first: %s)\n", reason_names[r],
                         (long long)l->bad_by_reason[r], l->first_msg[r]);
        if (k < 0 || (size_t)k >= cap - w) break;
        w += (size_t)k;
    }
}

et_status et_loader_next(et_loader *l, et_batch *out) {
    memset(out, 0, sizeof *out);
    l->interrupted = false;
    if (!l->started) start_workers(l);
    const int B = l->o.batch_size;
    slot_t *got = calloc((size_t)B, sizeof(slot_t));
    int k = 0;
    int64_t tries = 0;
    // With drop_last a batch never spans two epochs, and a sample that fails fails in every
    // epoch: an epoch walked whole (from its first sample) without a batch means none will
    // ever form. good = samples that loaded in that walk.
    bool whole_epoch = false;
    int64_t good = 0;
    while (k < B) {
        const int64_t seq = l->seq;
        const bool last_of_epoch = (seq % l->n) == l->n - 1;
        if (seq % l->n == 0) whole_epoch = true, good = 0;
        slot_t s;
        if (stop_requested(l) || !take_and_advance(l, seq, &s)) {
            for (int i = 0; i < k; i++) slot_clear(&got[i]);
            free(got);
            l->interrupted = true;
            return et_err(ET_ERR_IO, "%s: loading interrupted (stop requested)", l->name);
        }
        if (!s.failed) good++;
        if (s.failed) {
            l->bad++;
            if (!l->bad_by_reason[s.reason]++) {
                snprintf(l->first_msg[s.reason], sizeof l->first_msg[0], "%s", s.msg);
                et_warn("skipping a bad sample: %s", s.msg);
            }
            slot_clear(&s);
        } else {
            got[k++] = s;
        }
        if (++tries > 4 * l->n + 4 * B && k == 0) {
            free(got);
            return et_err(ET_ERR_INVALID, "%s: no sample loads (%lld bad)", l->name,
                          (long long)l->bad);
        }
        if (last_of_epoch && k < B && l->o.drop_last && whole_epoch) {
            for (int i = 0; i < k; i++) slot_clear(&got[i]);
            free(got);
            if (good == 0)
                return et_err(ET_ERR_INVALID, "%s: no sample loads (all %lld are bad, see above)",
                              l->name, (long long)l->n);
            return et_err(ET_ERR_INVALID,
                          "%s: only %lld of the %lld samples load (%lld bad, see above), fewer "
                          "than one batch of batch_size %d: lower the batch size or fix the bad "
                          "samples",
                          l->name, (long long)good, (long long)l->n, (long long)(l->n - good), B);
        }
        if (last_of_epoch && k < B) {
            if (l->o.drop_last) {  // drop the partial batch, continue in the next epoch
                for (int i = 0; i < k; i++) slot_clear(&got[i]);
                k = 0;
                continue;
            }
            break;
        }
    }
    // assemble
    out->B = k;
    out->ids = calloc((size_t)k, sizeof(et_tensor *));
    out->labels = calloc((size_t)k, sizeof(et_tensor *));
    out->index = calloc((size_t)k, sizeof(int64_t));
    out->sample_id = calloc((size_t)k, sizeof(char *));
    out->video_row = calloc((size_t)k, sizeof(int));
    bool any_pix = false;
    int n_video = 0;
    for (int i = 0; i < k; i++) {
        any_pix = any_pix || got[i].pixels;
        out->video_row[i] = got[i].video ? n_video++ : -1;
    }
    const int64_t S = l->o.image_size, D = l->o.landmark_dim, T = l->o.video_frames;
    if (any_pix) out->pixels = et_zeros(ET_F32, 4, (int64_t[]){k, 3, S, S});
    out->n_video = n_video;
    if (n_video) out->video = et_zeros(ET_F32, 5, (int64_t[]){n_video, T, 3, S, S});
    if (D > 0) out->landmarks = et_zeros(ET_F32, 2, (int64_t[]){k, D});
    const int64_t P = l->store ? l->o.prior_dim : 0;
    if (P > 0) out->priors = et_zeros(ET_F32, 2, (int64_t[]){k, P});
    for (int i = 0; i < k; i++) {
        slot_t *s = &got[i];
        const int64_t n = (int64_t)s->ids.len;
        out->ids[i] = et_from_data(ET_I32, 1, &n, s->ids.data);
        out->labels[i] = et_from_data(ET_I32, 1, &n, s->labels.data);
        out->n_tokens += n;
        out->index[i] = s->index;
        out->sample_id[i] = s->id;
        s->id = NULL;
        if (s->pixels)
            memcpy(ET_DATA(float, out->pixels) + (size_t)i * 3 * S * S, s->pixels,
                   sizeof(float) * (size_t)(3 * S * S));
        if (s->video)
            memcpy(ET_DATA(float, out->video) + (size_t)out->video_row[i] * T * 3 * S * S, s->video,
                   sizeof(float) * (size_t)(T * 3 * S * S));
        if (D > 0 && s->landmark)
            memcpy(ET_DATA(float, out->landmarks) + (size_t)i * D, s->landmark,
                   sizeof(float) * (size_t)D);
        if (P > 0 && s->priors)
            memcpy(ET_DATA(float, out->priors) + (size_t)i * P, s->priors,
                   sizeof(float) * (size_t)P);
        slot_clear(s);
    }
    free(got);
    return NULL;
}

// ---- prepare --------------------------------------------------------------------

et_status et_loader_prepare_store(et_dataset *ds, const et_loader_opts *opts,
                                  const et_store_schema *schema, const char *path,
                                  int64_t *n_written, int64_t *n_bad) {
    *n_written = *n_bad = 0;
    if (opts->image_size > 0 && opts->image_size != schema->image_size)
        return et_err(ET_ERR_INVALID, "%s: schema image_size %d but the loader crops to %d", path,
                      schema->image_size, opts->image_size);
    if (opts->landmark_dim != schema->landmark_dim)
        return et_err(ET_ERR_INVALID, "%s: schema landmark_dim %d but the loader reads %d", path,
                      schema->landmark_dim, opts->landmark_dim);
    if (schema->prior_dim != (opts->prior_fn ? opts->prior_dim : 0))
        return et_err(ET_ERR_INVALID, "%s: schema prior_dim %d but the loader makes %d", path,
                      schema->prior_dim, opts->prior_fn ? opts->prior_dim : 0);
    et_loader_opts o = *opts;
    o.shuffle = false, o.group_by_length = false, o.drop_last = false;
    o.rank = 0, o.world = 1;
    if (o.batch_size < 1) o.batch_size = 1;
    et_loader *l = NULL;
    ET_TRY(loader_new(ds, NULL, &o, &l));
    l->keep_u8 = true;
    et_store_writer *w = NULL;
    et_status st = et_store_create(path, schema, &w);
    if (!st) start_workers(l);
    for (int64_t seq = 0; !st && seq < l->n; seq++) {
        slot_t s;
        if (!take_and_advance(l, seq, &s)) {
            st = et_err(ET_ERR_IO, "%s: prepare interrupted (stop requested)", path);
            break;
        }
        if (s.failed) {
            if (!(*n_bad)++) et_warn("prepare: skipping: %s", s.msg);
            l->bad++;
            if (!l->bad_by_reason[s.reason]++)
                snprintf(l->first_msg[s.reason], sizeof l->first_msg[0], "%s", s.msg);
        } else {
            const et_sample *m = s.smp;
            const bool vid = s.video_u8 != NULL;
            uint16_t *priors = NULL;
            if (o.prior_fn && s.pix_u8 && !vid) {  // the face priors of an image sample
                const int S = o.image_size;
                float *px = malloc(sizeof(float) * 3 * (size_t)S * (size_t)S);
                priors = malloc(sizeof(uint16_t) * (size_t)o.prior_dim);
                ET_ASSERT(px && priors, "out of memory");
                et_clip_normalize(s.pix_u8, S, S, l->pp.mean, l->pp.std, px);
                st = o.prior_fn(o.prior_ctx, px, s.landmark, priors);
                free(px);
                if (st) st = et_status_wrap(st, "%s: sample %lld", path, (long long)s.index);
            }
            et_store_record r = {.id = m->id,
                                 .source = m->source,
                                 .label = m->label,
                                 .reference = m->gpt4,
                                 .gender = m->gender,
                                 .race = m->race,
                                 .age = m->age_years == m->age_years ? (int32_t)m->age_years : -1,
                                 .label_id = -1,
                                 .n_tokens = (int64_t)s.ids.len,
                                 .ids = s.ids.data,
                                 .labels = s.labels.data,
                                 .is_video = vid,
                                 .n_images = vid ? o.video_frames : (s.pix_u8 ? 1 : 0),
                                 .pixels = vid ? s.video_u8 : s.pix_u8,
                                 .has_landmarks = o.landmark_dim > 0 && s.landmark,
                                 .landmarks = s.landmark,
                                 .priors = priors};
            if (!st) st = et_store_append(w, &r);
            free(priors);
            if (!st) (*n_written)++;
        }
        slot_clear(&s);
    }
    if (!st && *n_written == 0) {  // a store with no sample would only fail later
        char rep[2048];
        et_loader_report(l, rep, sizeof rep);
        size_t n = strlen(rep);
        if (n && rep[n - 1] == '\n') rep[n - 1] = 0;
        st = et_err(ET_ERR_INVALID,
                    "%s: no sample could be prepared (all %lld failed), so no store was "
                    "written; fix the samples or the settings these reasons name:\n%s",
                    path, (long long)*n_bad, rep);
    }
    if (!st) {
        st = et_store_writer_close(w);
    } else {
        et_store_writer_abort(w);  // path itself is untouched: the writer only made <path>.tmp
    }
    et_loader_free(l);
    return st;
}
