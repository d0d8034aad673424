// tests/test_fim.c - Face Info Mining (train/models/fim.c): clue shapes per switch (global:
// the decoder tokens + the map mean; local: 68 landmark samples or 5 region means), the
// aggregator's output shape, and f64 gradient checks of clues + aggregator together with
// respect to the network's map and tokens and to the module's own weights, for each switch.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/autograd.h"
#include "../core/ops.h"
#include "gradcheck.h"
#include "train/models/fim.h"

#define EPS 1e-6
#define TOL 1e-6

typedef struct {
    et_fim *f;
    et_tensor *landmarks, *point_pe, *attrs;
} ctx_t;

static et_tensor *f_fim(void *c, et_tensor **in) {
    ctx_t *x = c;
    et_tensor *cond = NULL;
    et_tensor *cl = et_fim_clues(x->f, in[0], in[1], x->landmarks, x->point_pe, x->attrs, &cond);
    et_tensor *y = et_fim_forward(x->f, cl, cond);
    et_release(cl), et_release(cond);
    return y;
}

// The module's tensors as f64 leaves (gradcheck runs in f64).
static void to_f64(et_fim *f) {
    for (int i = 0; i < f->n_params; i++) {
        et_no_grad_begin();  // a fresh leaf, not a cast node
        et_tensor *d = et_cast(*f->slots[i], ET_F64);
        et_no_grad_end();
        et_release(*f->slots[i]);
        et_set_requires_grad(d, true);
        *f->slots[i] = d;
    }
}

static et_tensor *find(et_fim *f, const char *name) {
    for (int i = 0; i < f->n_params; i++)
        if (!strcmp(f->names[i], name)) return *f->slots[i];
    CHECK(0, "no parameter %s", name);
    return NULL;
}

static void run(bool global, bool local, bool pool, int64_t want_clues) {
    et_fim_config cfg = {.global = global,
                         .local = local,
                         .local_pool = pool,
                         .queries = 3,
                         .layers = 2,
                         .width = 8,
                         .heads = 2,
                         .face_dim = 6,
                         .n_tokens = 3};
    et_fim f;
    et_status s = et_fim_init(&f, &cfg, 11);
    CHECK(!s, "%s", s ? et_status_msg(s) : "");
    if (s) return et_status_free(s);
    to_f64(&f);
    et_tensor *fused = test_rand_tensor(ET_F64, 4, (int64_t[]){2, 4, 5, 6}, 1.0);
    et_tensor *tokens = test_rand_tensor(ET_F64, 3, (int64_t[]){2, 3, 6}, 1.0);
    et_set_requires_grad(fused, true), et_set_requires_grad(tokens, true);
    et_tensor *lm = test_rand_tensor(ET_F64, 2, (int64_t[]){2, 136}, 0.9);
    et_tensor *pe = test_rand_tensor(ET_F64, 3, (int64_t[]){2, 68, 6}, 1.0);  // a constant
    et_tensor *attrs = test_rand_tensor(ET_F64, 2, (int64_t[]){2, 15}, 1.0);  // a constant
    ctx_t c = {&f, lm, pe, attrs};
    et_no_grad_begin();
    et_tensor *cond = NULL;
    et_tensor *cl = et_fim_clues(&f, fused, tokens, lm, pe, attrs, &cond);
    et_tensor *y = et_fim_forward(&f, cl, cond);
    et_release(cond);
    et_no_grad_end();
    CHECK(cl->ndim == 3 && cl->shape[0] == 2 && cl->shape[1] == want_clues && cl->shape[2] == 6,
          "clues [2, %lld, 6], got [%lld, %lld, %lld]", (long long)want_clues,
          (long long)cl->shape[0], (long long)cl->shape[1], (long long)cl->shape[2]);
    CHECK(y->ndim == 3 && y->shape[0] == 2 && y->shape[1] == 3 && y->shape[2] == 8,
          "output [2, 3, 8]");
    et_release(cl), et_release(y);
    et_tensor *in[11] = {fused,
                         tokens,
                         find(&f, "model.fim.queries"),
                         find(&f, "model.fim.landmark_embed"),
                         find(&f, "model.fim.type_embed"),
                         find(&f, "model.fim.clue_proj.weight"),
                         find(&f, "model.fim.layers.0.cross_attn.q_proj.weight"),
                         find(&f, "model.fim.layers.1.mlp.fc2.weight"),
                         find(&f, "model.fim.norm.weight"),
                         find(&f, "model.fim.shape_proj.weight"),
                         find(&f, "model.fim.attr_proj.weight")};
    // tokens only matter with global clues, landmark embeddings only with local ones
    if (!global) in[1] = NULL;
    if (!local) in[3] = in[9] = NULL;
    if (!global) in[10] = NULL;
    char name[64];
    snprintf(name, sizeof name, "fim global %d local %d pool %d", global, local, pool);
    CHECK(gradcheck(name, f_fim, &c, 11, in, EPS, TOL), "%s", name);
    et_release(fused), et_release(tokens), et_release(lm), et_release(pe), et_release(attrs);
    et_fim_free(&f);
}

// clues: 3 tokens + the mean + the attribute row; 68 points (or 5 regions) + the shape row
static void test_both(void) { run(true, true, false, 5 + 69); }
static void test_pooled(void) { run(true, true, true, 5 + 6); }
static void test_global(void) { run(true, false, false, 5); }
static void test_local(void) { run(false, true, true, 6); }

static void test_bad_config(void) {
    et_fim f;
    et_fim_config c = {.global = false,
                       .local = false,
                       .queries = 1,
                       .layers = 1,
                       .width = 8,
                       .heads = 2,
                       .face_dim = 4,
                       .n_tokens = 1};
    et_status s = et_fim_init(&f, &c, 1);
    CHECK(s && strstr(et_status_msg(s), "fim.global"), "no clue");
    et_status_free(s);
    c.global = true, c.heads = 3;
    s = et_fim_init(&f, &c, 1);
    CHECK(s && strstr(et_status_msg(s), "fim.heads"), "heads");
    et_status_free(s);
}

int main(void) {
    RUN(test_both);
    RUN(test_pooled);
    RUN(test_global);
    RUN(test_local);
    RUN(test_bad_config);
    return test_summary();
}
