// train/models/generate.c - see generate.h
#include "generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "core/device.h"
#include "core/ops.h"
#include "core/rng.h"

et_gen_opts et_gen_defaults(void) {
    et_gen_opts o;
    memset(&o, 0, sizeof(o));
    o.max_new_tokens = 32;
    o.temperature = 1.0;
    o.top_p = 1.0;
    o.n_eos = -1;
    o.pad_id = -1;
    return o;
}

void et_gen_left_pad(int n, const int32_t *const *prompts, const int *lens, int32_t pad,
                     et_tensor **ids, et_tensor **mask) {
    int P = 0;
    for (int i = 0; i < n; i++) P = lens[i] > P ? lens[i] : P;
    *ids = et_full(ET_I32, 2, (int64_t[]){n, P}, pad);
    *mask = et_zeros(ET_I32, 2, (int64_t[]){n, P});
    int32_t *d = ET_DATA(int32_t, *ids), *mk = ET_DATA(int32_t, *mask);
    for (int i = 0; i < n; i++)
        for (int t = 0; t < lens[i]; t++) {
            d[(int64_t)i * P + P - lens[i] + t] = prompts[i][t];
            mk[(int64_t)i * P + P - lens[i] + t] = 1;
        }
}

typedef struct {
    float p;
    int32_t id;
} prob_id;

static int cmp_desc(const void *a, const void *b) {
    const prob_id *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return x->id < y->id ? -1 : (x->id > y->id);
}

// Row of V logits (f32) -> token.
static int32_t pick(const float *l, int64_t V, const et_gen_opts *o, float u, prob_id *scratch) {
    if (!o->do_sample) {
        int64_t best = 0;
        for (int64_t i = 1; i < V; i++)
            if (l[i] > l[best]) best = i;
        return (int32_t)best;
    }
    float mx = -INFINITY;
    for (int64_t i = 0; i < V; i++) mx = fmaxf(mx, l[i] / (float)o->temperature);
    double sum = 0;
    for (int64_t i = 0; i < V; i++) {
        scratch[i].p = expf(l[i] / (float)o->temperature - mx);
        scratch[i].id = (int32_t)i;
        sum += scratch[i].p;
    }
    for (int64_t i = 0; i < V; i++) scratch[i].p = (float)(scratch[i].p / sum);
    qsort(scratch, (size_t)V, sizeof(*scratch), cmp_desc);
    int64_t keep = V;
    if (o->top_p < 1.0) {
        double c = 0;
        for (int64_t i = 0; i < V; i++) {
            c += scratch[i].p;
            if (c >= o->top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    double tot = 0;
    for (int64_t i = 0; i < keep; i++) tot += scratch[i].p;
    double target = (double)u * tot, c = 0;
    for (int64_t i = 0; i < keep; i++) {
        c += scratch[i].p;
        if (target < c) return scratch[i].id;
    }
    return scratch[keep - 1].id;
}

static bool ends_with_seq(const int32_t *gen, int64_t n, const int32_t *seq, int len) {
    if (len <= 0 || n < len) return false;
    for (int i = 0; i < len; i++)
        if (gen[n - len + i] != seq[i]) return false;
    return true;
}

et_status et_llama_generate(et_llama *m, et_tensor *ids, et_tensor *mask, et_gen_opts *o,
                            et_tensor **out, int64_t *n_new) {
    *out = NULL;
    if (ids->dtype != ET_I32 || ids->ndim != 2 || ids->shape[1] < 1)
        return et_err(ET_ERR_INVALID, "generate: prompt ids must be i32 [B, P] with P >= 1");
    et_no_grad_begin();
    et_tensor *embeds = et_llama_embed(m, ids);
    et_no_grad_end();
    et_status st = et_llama_generate_embeds(m, embeds, mask, o, out, n_new);
    et_release(embeds);
    return st;
}

// logits [B, T, V] -> its position T - 1 as a [B, V] CPU tensor (a new reference).
static et_tensor *host_last_position(et_tensor *logits) {
    const int64_t B = logits->shape[0], T = logits->shape[1], V = logits->shape[2];
    et_tensor *last = et_narrow(logits, 1, T - 1, 1);  // [B, 1, V]
    et_tensor *flat = et_reshape(last, 2, (int64_t[]){B, V});
    et_release(last);
    if (flat->device.type == ET_CPU) return flat;
    et_tensor *h = et_to_device(flat, et_cpu());
    et_release(flat);
    return h;
}

et_status et_llama_generate_embeds(et_llama *m, et_tensor *embeds, et_tensor *mask, et_gen_opts *o,
                                   et_tensor **out, int64_t *n_new) {
    *out = NULL;
    if (embeds->ndim != 3 || embeds->shape[1] < 1 || embeds->shape[2] != m->cfg.hidden_size)
        return et_err(ET_ERR_INVALID, "generate: prompt embeddings must be [B, P, %lld], P >= 1",
                      (long long)m->cfg.hidden_size);
    if (mask && (mask->ndim != 2 || mask->shape[0] != embeds->shape[0] ||
                 mask->shape[1] != embeds->shape[1]))
        return et_err(ET_ERR_INVALID, "generate: mask must be [B, P] as the prompt");
    if (o->max_new_tokens < 1)
        return et_err(ET_ERR_INVALID, "generate: max_new_tokens %d must be >= 1",
                      o->max_new_tokens);
    if (o->do_sample && !(o->temperature > 0))
        return et_err(ET_ERR_INVALID, "generate: temperature %g must be > 0 when sampling",
                      o->temperature);
    if (o->do_sample && !(o->top_p > 0 && o->top_p <= 1))
        return et_err(ET_ERR_INVALID, "generate: top_p %g must be in (0, 1]", o->top_p);
    if (o->n_stop < 0 || o->n_stop > ET_GEN_MAX_STOP)
        return et_err(ET_ERR_INVALID, "generate: %d stop sequences (at most %d)", o->n_stop,
                      ET_GEN_MAX_STOP);
    const int64_t B = embeds->shape[0], P = embeds->shape[1], V = m->cfg.vocab_size;
    const int *eos = o->n_eos >= 0 ? o->eos_ids : m->cfg.eos_token_ids;
    const int n_eos = o->n_eos >= 0 ? o->n_eos : m->cfg.n_eos;
    const int32_t pad =
        o->pad_id >= 0 ? o->pad_id : (m->cfg.pad_token_id >= 0 ? m->cfg.pad_token_id : 0);
    const int64_t N = o->max_new_tokens;

    et_no_grad_begin();
    et_tensor *full_mask = mask ? et_retain(mask) : et_full(ET_I32, 2, embeds->shape, 1);
    et_tensor *pos = et_llama_positions(full_mask, 0);
    int32_t *next_pos = calloc((size_t)B, sizeof(int32_t));
    bool *done = calloc((size_t)B, sizeof(bool));
    int32_t *gen = calloc((size_t)(B * N), sizeof(int32_t));  // [B, N]
    int64_t *count = calloc((size_t)B, sizeof(int64_t));
    prob_id *scratch = malloc((size_t)V * sizeof(prob_id));
    float *row = malloc((size_t)V * sizeof(float));
    ET_ASSERT(next_pos && done && gen && count && scratch && row, "out of host memory");
    for (int64_t b = 0; b < B; b++) {
        int32_t c = 0;
        for (int64_t t = 0; t < P; t++) c += et_get(full_mask, b * P + t) != 0;
        next_pos[b] = c;
    }
    et_llama_cache *cache = et_llama_cache_new(m, B, P + N);
    et_tensor *logits = et_llama_forward_embeds(m, embeds, pos, full_mask, cache, NULL);
    et_release(pos);
    et_release(full_mask);
    et_tensor *step_ids = et_empty(ET_I32, 2, (int64_t[]){B, 1});
    et_tensor *step_pos = et_empty(ET_I32, 2, (int64_t[]){B, 1});
    int64_t steps = 0;
    for (int64_t s = 0; s < N; s++) {
        // the last position of each row ([B, V]; always a real token, left padding), on
        // the host: one small copy per step when the model runs on a device
        et_tensor *last = host_last_position(logits);
        bool all_done = true;
        for (int64_t b = 0; b < B; b++) {
            int32_t tok = pad;
            if (!done[b]) {
                et_convert(
                    row, ET_F32,
                    (const char *)et_data(last) + (size_t)(b * V) * et_dtype_size(last->dtype),
                    last->dtype, (size_t)V);
                float u = 0;
                if (o->do_sample)
                    et_rng_uniform(&u, 1, o->seed, o->offset + (uint64_t)(s * B + b), 0.0f, 1.0f);
                tok = pick(row, V, o, u, scratch);
                gen[b * N + s] = tok;
                count[b] = s + 1;
                for (int e = 0; e < n_eos; e++)
                    if (tok == eos[e]) done[b] = true;
                for (int k = 0; k < o->n_stop; k++)
                    if (ends_with_seq(gen + b * N, s + 1, o->stop_seqs[k], o->stop_lens[k]))
                        done[b] = true;
            } else {
                gen[b * N + s] = pad;
            }
            ET_DATA(int32_t, step_ids)[b] = tok;
            ET_DATA(int32_t, step_pos)[b] = next_pos[b]++;
            all_done = all_done && done[b];
        }
        if (o->do_sample) o->offset += (uint64_t)B;
        steps = s + 1;
        et_release(last);
        et_release(logits);
        logits = NULL;
        if (all_done || s + 1 == N) break;
        logits = et_llama_forward(m, step_ids, step_pos, NULL, cache, NULL);  // [B, 1, V]
    }
    et_release(logits);
    et_release(step_ids);
    et_release(step_pos);
    et_llama_cache_free(cache);
    et_tensor *res = et_empty(ET_I32, 2, (int64_t[]){B, steps});
    for (int64_t b = 0; b < B; b++) {
        memcpy(ET_DATA(int32_t, res) + b * steps, gen + b * N, (size_t)steps * sizeof(int32_t));
        if (n_new) n_new[b] = count[b];
    }
    free(next_pos), free(done), free(gen), free(count), free(scratch), free(row);
    et_no_grad_end();
    *out = res;
    return NULL;
}
