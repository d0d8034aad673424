// tests/test_llama.c - unit tests of train/config, train/llama and train/generate:
// config.json parsing (defaults, variants, errors naming file and field), llama3 inverse
// frequencies against transformers (tests/golden/llama/llama3), KV-cache decoding equal to
// the full-sequence forward (chunked, one token at a time, left padding), generation
// (eos, stop sequences, seeded sampling, top-p), block recompute equal to the plain
// backward.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/autograd.h"
#include "../core/ops.h"
#include "../core/safetensors.h"
#include "train/models/config.h"
#include "train/models/generate.h"
#include "train/models/llama.h"
#include "test_util.h"

#define DIR EMOTUNE_SOURCE_DIR "/tests/golden/llama/"

#define MIN_CFG                                                                      \
    "\"vocab_size\": 50, \"hidden_size\": 32, \"intermediate_size\": 48, "           \
    "\"num_hidden_layers\": 2, \"num_attention_heads\": 4"

static et_status parse(const char *json, et_llama_config *c) {
    return et_llama_config_parse(json, "cfg.json", c);
}

#define CHECK_ERR(json, code, needle)                                                        \
    do {                                                                                     \
        et_llama_config c_;                                                                  \
        et_status s_ = parse(json, &c_);                                                     \
        CHECK(s_ && et_status_code(s_) == (code) && strstr(et_status_msg(s_), "cfg.json") && \
                  strstr(et_status_msg(s_), needle),                                         \
              "want %s, got: %s", needle, et_status_msg(s_));                                \
        et_status_free(s_);                                                                  \
    } while (0)

static void test_config_defaults(void) {
    et_llama_config c;
    et_status s = parse("{" MIN_CFG "}", &c);
    CHECK(!s, "%s", et_status_msg(s));
    CHECK(c.vocab_size == 50 && c.hidden_size == 32 && c.intermediate_size == 48, "shapes");
    CHECK(c.num_hidden_layers == 2 && c.num_attention_heads == 4, "layers/heads");
    CHECK(c.num_key_value_heads == 4, "kv heads default %lld", (long long)c.num_key_value_heads);
    CHECK(c.head_dim == 8, "head_dim default %lld", (long long)c.head_dim);
    CHECK(c.rms_norm_eps == 1e-6 && c.rope_theta == 10000.0, "eps %g theta %g", c.rms_norm_eps,
          c.rope_theta);
    CHECK(c.max_position_embeddings == 2048 && c.rope_kind == ET_ROPE_DEFAULT, "rope");
    CHECK(!c.tie_word_embeddings && !c.attention_bias && !c.mlp_bias, "bools");
    CHECK(c.bos_token_id == 1 && c.pad_token_id == -1 && c.n_eos == 1 && c.eos_token_ids[0] == 2,
          "tokens");
    et_status_free(s);
}

static void test_config_variants(void) {
    et_llama_config c;
    et_status s = parse("{" MIN_CFG ", \"num_key_value_heads\": 2, \"head_dim\": 16,"
                        "\"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 5e5},"
                        "\"rope_scaling\": null, \"eos_token_id\": [128001, 128009],"
                        "\"pad_token_id\": null, \"bos_token_id\": 128000, \"rms_norm_eps\": 1e-5,"
                        "\"tie_word_embeddings\": true, \"attention_bias\": true,"
                        "\"hidden_act\": \"silu\", \"model_type\": \"llama\"}",
                        &c);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    CHECK(c.num_key_value_heads == 2 && c.head_dim == 16, "kv %lld hd %lld",
          (long long)c.num_key_value_heads, (long long)c.head_dim);
    CHECK(c.rope_theta == 5e5 && c.rope_kind == ET_ROPE_DEFAULT, "theta %g", c.rope_theta);
    CHECK(c.n_eos == 2 && c.eos_token_ids[0] == 128001 && c.eos_token_ids[1] == 128009, "eos");
    CHECK(c.pad_token_id == -1 && c.bos_token_id == 128000, "bos/pad");
    CHECK(c.tie_word_embeddings && c.attention_bias && !c.mlp_bias, "bools");
    // legacy "type" key, linear scaling
    s = parse("{" MIN_CFG ", \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}}", &c);
    CHECK(!s && c.rope_kind == ET_ROPE_LINEAR && c.rope_factor == 2.0, "%s", et_status_msg(s));
    et_status_free(s);
    // the llama3 fixture's config.json
    s = et_llama_config_load(DIR "llama3/config.json", &c);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    CHECK(c.rope_kind == ET_ROPE_LLAMA3 && c.rope_factor == 8.0 && c.rope_low_freq_factor == 1.0 &&
              c.rope_high_freq_factor == 4.0 && c.rope_original_max_pos == 64,
          "llama3 fields");
    CHECK(c.head_dim == 32 && c.num_key_value_heads == 2 && c.rope_theta == 500000.0, "shape");
}

static void test_config_errors(void) {
    CHECK_ERR("{\"vocab_size\": 50}", ET_ERR_MISSING, "'hidden_size'");
    CHECK_ERR("{\"vocab_size\": 50, \"hidden_size\": -3}", ET_ERR_INVALID,
              "field 'hidden_size': expected a positive integer, got -3");
    CHECK_ERR("{\"vocab_size\": \"50\"}", ET_ERR_INVALID, "field 'vocab_size'");
    CHECK_ERR("{" MIN_CFG ", \"num_key_value_heads\": 3}", ET_ERR_INVALID, "num_key_value_heads");
    CHECK_ERR("{" MIN_CFG ", \"head_dim\": 7}", ET_ERR_INVALID, "head_dim");
    CHECK_ERR("{" MIN_CFG ", \"rms_norm_eps\": 0}", ET_ERR_INVALID, "rms_norm_eps");
    CHECK_ERR("{" MIN_CFG ", \"tie_word_embeddings\": 1}", ET_ERR_INVALID, "tie_word_embeddings");
    CHECK_ERR("{" MIN_CFG ", \"eos_token_id\": [2, -1]}", ET_ERR_INVALID, "eos_token_id[1]");
    CHECK_ERR("{" MIN_CFG ", \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4}}",
              ET_ERR_UNSUPPORTED, "rope_scaling.rope_type");
    CHECK_ERR("{" MIN_CFG ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8,"
              "\"low_freq_factor\": 1, \"high_freq_factor\": 4}}",
              ET_ERR_MISSING, "rope_scaling.original_max_position_embeddings");
    CHECK_ERR("{" MIN_CFG ", \"hidden_act\": \"gelu\"}", ET_ERR_INVALID, "hidden_act");
    CHECK_ERR("{" MIN_CFG ", }", ET_ERR_FORMAT, "not valid JSON");
    CHECK_ERR("[1, 2]", ET_ERR_FORMAT, "not a JSON object");
    et_llama_config c;
    et_status s = et_llama_config_load("/nonexistent/config.json", &c);
    CHECK(s && et_status_code(s) == ET_ERR_MISSING &&
              strstr(et_status_msg(s), "/nonexistent/config.json"),
          "%s", et_status_msg(s));
    et_status_free(s);
}

static void test_llama3_inv_freq(void) {
    et_llama_config c;
    et_status s = et_llama_config_load(DIR "llama3/config.json", &c);
    ET_ASSERT(!s, "%s", et_status_msg(s));
    et_st_file *f = NULL;
    s = et_st_open(DIR "llama3/golden.safetensors", &f);
    ET_ASSERT(!s, "%s", et_status_msg(s));
    et_tensor *ref = NULL;
    s = et_st_load(f, "inv_freq", &ref);
    ET_ASSERT(!s, "%s", et_status_msg(s));
    et_st_close(f);
    et_tensor *inv = et_llama_rope_inv_freq(&c);
    CHECK(inv->numel == 16 && ref->numel == 16, "sizes %lld %lld", (long long)inv->numel,
          (long long)ref->numel);
    int scaled = 0, smoothed = 0;
    et_tensor *plain = et_rope_inv_freq(c.head_dim, c.rope_theta);
    for (int i = 0; i < 16; i++) {
        double a = et_get(inv, i), b = et_get(ref, i), p = et_get(plain, i);
        CHECK(fabs(a - b) <= 1e-6 * fabs(b), "inv_freq[%d] = %.9g, HF %.9g", i, a, b);
        if (fabs(p / b - 8.0) < 1e-5) scaled++;
        else if (p != b) smoothed++;
    }
    // the fixture exercises all three regimes (kept, divided by factor, smoothed)
    CHECK(scaled > 0 && smoothed > 0 && 16 - scaled - smoothed > 0, "regimes %d %d", scaled,
          smoothed);
    et_release(inv), et_release(ref), et_release(plain);
}

// ---- KV cache -------------------------------------------------------------------

static et_llama_config small_cfg(void) {
    et_llama_config c;
    et_status s = parse("{\"vocab_size\": 64, \"hidden_size\": 32, \"intermediate_size\": 48,"
                        "\"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
                        "\"num_key_value_heads\": 2, \"rms_norm_eps\": 1e-5, \"eos_token_id\": 2,"
                        "\"pad_token_id\": 0}",
                        &c);
    ET_ASSERT(!s, "%s", et_status_msg(s));
    return c;
}

static et_tensor *rand_ids(int64_t B, int64_t T, int64_t V) {
    et_tensor *ids = et_empty(ET_I32, 2, (int64_t[]){B, T});
    for (int64_t i = 0; i < ids->numel; i++)
        ET_DATA(int32_t, ids)[i] = 3 + (int32_t)(test_uniform() * (double)(V - 3));
    return ids;
}

// rows [t0, t0 + n) of logits [B, T, V] vs part [B, n, V]
static double part_err(const et_tensor *full, const et_tensor *part, int64_t t0) {
    const int64_t B = full->shape[0], T = full->shape[1], V = full->shape[2], n = part->shape[1];
    double num = 0, den = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < n; t++)
            for (int64_t v = 0; v < V; v++) {
                double x = et_get(part, (b * n + t) * V + v);
                double y = et_get(full, (b * T + t0 + t) * V + v);
                num = fmax(num, fabs(x - y));
                den = fmax(den, fabs(y));
            }
    return num / den;
}

static et_tensor *cols(const et_tensor *ids, int64_t t0, int64_t n) {
    const int64_t B = ids->shape[0], T = ids->shape[1];
    et_tensor *o = et_empty(ids->dtype, 2, (int64_t[]){B, n});
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < n; t++) et_set(o, b * n + t, et_get(ids, b * T + t0 + t));
    return o;
}

static void test_kv_cache_equals_full(void) {
    et_llama_config c = small_cfg();
    et_llama *m = et_llama_new_random(&c, ET_F32, 0.15, 7);
    et_no_grad_begin();
    const int64_t B = 2, T = 10;
    et_tensor *ids = rand_ids(B, T, c.vocab_size);
    et_tensor *full = et_llama_forward(m, ids, NULL, NULL, NULL, NULL);  // [B, T, V]
    et_llama_cache *cache = et_llama_cache_new(m, B, T);
    // prefill 4, then 1, 1, then a chunk of 4
    const int64_t chunks[] = {4, 1, 1, 4};
    int64_t t0 = 0;
    for (int i = 0; i < 4; i++) {
        et_tensor *part_ids = cols(ids, t0, chunks[i]);
        et_tensor *part = et_llama_forward(m, part_ids, NULL, NULL, cache, NULL);
        double err = part_err(full, part, t0);
        CHECK(err <= 1e-5, "chunk %d at %lld: relative error %.3g", i, (long long)t0, err);
        t0 += chunks[i];
        CHECK(cache->len == t0, "cache len %lld", (long long)cache->len);
        et_release(part_ids), et_release(part);
    }
    et_llama_cache_free(cache);
    et_release(full);

    // left padding: row 1 padded by 3 gives the same logits as row 1 alone
    et_tensor *mask = et_full(ET_I32, 2, (int64_t[]){B, T}, 1);
    for (int t = 0; t < 3; t++) {
        ET_DATA(int32_t, mask)[T + t] = 0;
        ET_DATA(int32_t, ids)[T + t] = 0;
    }
    et_tensor *pos = et_llama_positions(mask, 0);
    CHECK(ET_DATA(int32_t, pos)[T + 3] == 0 && ET_DATA(int32_t, pos)[T + 9] == 6 &&
              ET_DATA(int32_t, pos)[T] == 1,
          "positions");
    cache = et_llama_cache_new(m, B, T + 2);
    et_tensor *lp = et_llama_forward(m, ids, pos, mask, cache, NULL);
    et_tensor *alone_ids = et_empty(ET_I32, 2, (int64_t[]){1, T - 3});
    memcpy(et_data(alone_ids), ET_DATA(int32_t, ids) + T + 3, (size_t)(T - 3) * 4);
    et_tensor *alone = et_llama_forward(m, alone_ids, NULL, NULL, NULL, NULL);  // [1, T-3, V]
    const int64_t V = c.vocab_size;
    double num = 0, den = 0;
    for (int64_t t = 0; t < T - 3; t++)
        for (int64_t v = 0; v < V; v++) {
            double x = et_get(lp, (T + 3 + t) * V + v), y = et_get(alone, t * V + v);
            num = fmax(num, fabs(x - y));
            den = fmax(den, fabs(y));
        }
    CHECK(num / den <= 1e-5, "left-padded row vs alone: %.3g", num / den);
    for (int64_t i = 0; i < lp->numel; i++) CHECK(isfinite(et_get(lp, i)), "non-finite logit");
    et_release(lp), et_release(alone), et_release(alone_ids), et_release(pos), et_release(mask);
    et_llama_cache_free(cache);
    et_release(ids);
    et_no_grad_end();
    et_llama_free(m);
}

// ---- generation -----------------------------------------------------------------

static void test_generate_eos_stop_sampling(void) {
    et_llama_config c = small_cfg();
    et_llama *m = et_llama_new_random(&c, ET_F32, 0.3, 9);
    const int32_t p0[] = {5, 6, 7, 8, 9}, p1[] = {10, 11};
    const int32_t *prompts[] = {p0, p1};
    const int lens[] = {5, 2};
    et_tensor *ids, *mask;
    et_gen_left_pad(2, prompts, lens, 0, &ids, &mask);
    CHECK(ids->shape[1] == 5 && ET_DATA(int32_t, ids)[5] == 0 && ET_DATA(int32_t, ids)[8] == 10 &&
              ET_DATA(int32_t, mask)[7] == 0 && ET_DATA(int32_t, mask)[8] == 1,
          "left pad");
    et_gen_opts o = et_gen_defaults();
    o.max_new_tokens = 8;
    o.n_eos = 0;
    et_tensor *g = NULL;
    int64_t n_new[2];
    et_status s = et_llama_generate(m, ids, mask, &o, &g, n_new);
    CHECK(!s && g && g->shape[1] == 8 && n_new[0] == 8 && n_new[1] == 8, "%s", et_status_msg(s));
    // eos = row 0's third token: row 0 stops there, the rest is pad; row 1 goes on
    int32_t eos = ET_DATA(int32_t, g)[2];
    bool in_row1 = false;
    for (int t = 0; t < 8; t++) in_row1 |= ET_DATA(int32_t, g)[8 + t] == eos;
    et_gen_opts o2 = o;
    o2.n_eos = 1;
    o2.eos_ids[0] = eos;
    o2.pad_id = 1;
    et_tensor *g2 = NULL;
    s = et_llama_generate(m, ids, mask, &o2, &g2, n_new);
    CHECK(!s && g2, "%s", et_status_msg(s));
    if (g2 && !in_row1) {
        CHECK(n_new[0] == 3 && n_new[1] == 8 && g2->shape[1] == 8, "n_new %lld %lld",
              (long long)n_new[0], (long long)n_new[1]);
        for (int t = 0; t < 3; t++) CHECK(et_get(g2, t) == et_get(g, t), "prefix");
        for (int t = 3; t < 8; t++) CHECK(et_get(g2, t) == 1, "pad after eos");
        for (int t = 0; t < 8; t++) CHECK(et_get(g2, 8 + t) == et_get(g, 8 + t), "row 1");
    }
    et_release(g2);
    // stop sequence = row 1's tokens 1..2: row 1 stops after 3 tokens
    const int32_t stop[2] = {ET_DATA(int32_t, g)[9], ET_DATA(int32_t, g)[10]};
    o2 = o;
    o2.n_stop = 1;
    o2.stop_seqs[0] = stop;
    o2.stop_lens[0] = 2;
    s = et_llama_generate(m, ids, mask, &o2, &g2, n_new);
    CHECK(!s && n_new[1] <= 3, "stop: %lld", (long long)n_new[1]);
    et_release(g2);
    // sampling: same seed -> same tokens; offset advances; tiny top_p -> greedy
    o2 = o;
    o2.do_sample = true;
    o2.temperature = 1.5;
    o2.top_p = 0.9;
    o2.seed = 42;
    et_tensor *a = NULL, *b = NULL;
    s = et_llama_generate(m, ids, mask, &o2, &a, NULL);
    CHECK(!s && o2.offset == 16, "offset %llu", (unsigned long long)o2.offset);
    o2.offset = 0;
    s = et_llama_generate(m, ids, mask, &o2, &b, NULL);
    bool same = true;
    for (int64_t i = 0; i < a->numel; i++) same &= et_get(a, i) == et_get(b, i);
    CHECK(same, "same seed, different samples");
    et_release(b);
    bool differs_from_greedy = false;
    for (int64_t i = 0; i < a->numel; i++) differs_from_greedy |= et_get(a, i) != et_get(g, i);
    CHECK(differs_from_greedy, "sampling at temperature 1.5 reproduced greedy exactly");
    et_release(a);
    o2.top_p = 1e-6;
    o2.offset = 0;
    s = et_llama_generate(m, ids, mask, &o2, &a, NULL);
    same = true;
    for (int64_t i = 0; i < a->numel; i++) same &= et_get(a, i) == et_get(g, i);
    CHECK(same, "top_p -> 0 must be greedy");
    et_release(a);
    // invalid options
    o2.temperature = 0;
    s = et_llama_generate(m, ids, mask, &o2, &a, NULL);
    CHECK(s && et_status_code(s) == ET_ERR_INVALID && !a, "temperature 0 accepted");
    et_status_free(s);
    et_release(g), et_release(ids), et_release(mask);
    et_llama_free(m);
}

// ---- recompute ------------------------------------------------------------------

static double loss_and_grads(et_llama *m, et_tensor *ids, et_tensor **params, int np,
                             et_tensor **grads) {
    et_zero_grad(np, params);
    et_tensor *logits = et_llama_forward(m, ids, NULL, NULL, NULL, NULL);
    et_tensor *loss = et_llama_loss(logits, ids);
    double l = et_get(loss, 0);
    et_backward(loss);
    for (int i = 0; i < np; i++) grads[i] = et_clone(params[i]->grad);
    et_release(logits), et_release(loss);
    return l;
}

static void test_recompute_same_grads(void) {
    et_llama_config c = small_cfg();
    et_llama *m = et_llama_new_random(&c, ET_F32, 0.15, 3);
    et_tensor *params[] = {m->layers[0].q_proj.weight, m->layers[1].input_norm,
                           m->layers[1].down_proj.weight, m->norm};
    const int np = 4;
    for (int i = 0; i < np; i++) et_set_requires_grad(params[i], true);
    et_tensor *ids = rand_ids(2, 7, c.vocab_size);
    et_tensor *g0[4], *g1[4];
    double l0 = loss_and_grads(m, ids, params, np, g0);
    m->layers[0].recompute = m->layers[1].recompute = true;
    double l1 = loss_and_grads(m, ids, params, np, g1);
    CHECK(l0 == l1, "loss %.9g vs %.9g", l0, l1);
    et_tensor *one = et_zeros(ET_F32, 3, (int64_t[]){2, 1, c.vocab_size});
    et_tensor *lab1 = et_zeros(ET_I32, 2, (int64_t[]){2, 1});
    et_tensor *l_one = et_llama_loss(one, lab1);
    CHECK(l_one->numel == 1 && et_get(l_one, 0) == 0, "T = 1 loss");
    et_release(one), et_release(lab1), et_release(l_one);
    for (int i = 0; i < np; i++) {
        CHECK_TENSOR_CLOSE(g1[i], g0[i], 1e-6, "recompute gradient");
        et_release(g0[i]), et_release(g1[i]);
    }
    et_zero_grad(np, params);
    et_release(ids);
    et_llama_free(m);
}

int main(void) {
    RUN(test_config_defaults);
    RUN(test_config_variants);
    RUN(test_config_errors);
    RUN(test_llama3_inv_freq);
    RUN(test_kv_cache_equals_full);
    RUN(test_generate_eos_stop_sampling);
    RUN(test_recompute_same_grads);
    return test_summary();
}
