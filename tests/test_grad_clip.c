// tests/test_grad_clip.c - f64 gradient checks for the contrastive-pretraining pieces:
// et_mul_exp (core/ops_scalar.c), CLIP's symmetric InfoNCE (train/pretrain_tower.c) and the
// text encoder (train/models/text_encoder.c); the loss against PyTorch's value and
// gradients; the text encoder's padding invariance.
#include "../core/autograd.h"
#include "../core/ops.h"
#include "../train/models/text_encoder.h"
#include "../train/pretrain_tower.h"
#include "gradcheck.h"

#define EPS 1e-6
#define TOL 1e-6

static et_tensor *leaf(int ndim, const int64_t *shape) {
    et_tensor *t = test_rand_tensor(ET_F64, ndim, shape, 1.0);
    et_set_requires_grad(t, true);
    return t;
}

static et_tensor *f_mul_exp(void *c, et_tensor **x) {
    (void)c;
    return et_mul_exp(x[0], x[1]);
}

static void test_mul_exp(void) {
    et_tensor *in[2] = {leaf(2, (int64_t[]){3, 4}), leaf(0, NULL)};
    et_set(in[1], 0, 0.7);
    CHECK(gradcheck("mul_exp", f_mul_exp, NULL, 2, in, EPS, TOL));
    // forward value, and a frozen scalar gets no gradient work
    et_tensor *y = et_mul_exp(in[0], in[1]);
    CHECK_CLOSE(et_get(y, 5), et_get(in[0], 5) * exp(0.7), 1e-14);
    et_release(y);
    et_tape_clear();
    et_set_requires_grad(in[1], false);
    CHECK(gradcheck("mul_exp, s frozen", f_mul_exp, NULL, 2, in, EPS, TOL));
    et_release(in[0]), et_release(in[1]);
}

static et_tensor *f_loss(void *c, et_tensor **x) {
    (void)c;
    return et_clip_contrastive_loss(x[0], x[1], x[2], NULL);
}

static void test_loss_grad(void) {
    et_tensor *in[3] = {leaf(2, (int64_t[]){5, 4}), leaf(2, (int64_t[]){5, 4}), leaf(0, NULL)};
    et_set(in[2], 0, 1.3);
    CHECK(gradcheck("clip loss", f_loss, NULL, 3, in, EPS, TOL));
    for (int i = 0; i < 3; i++) et_release(in[i]);
}

// Reference: PyTorch 2.x, float64 (img / img.norm(dim=-1), logits = s.exp() * a @ t.T,
// loss = (F.cross_entropy(l, arange) + F.cross_entropy(l.T, arange)) / 2, s = ln(1/0.07)).
static void test_loss_vs_torch(void) {
    const double im[12] = {0.3, -1.2, 0.5, 1.0, 0.2, -0.4, -0.7, 0.9, 0.1, 0.2, 0.4, 1.5};
    const double tx[12] = {0.5, -0.8, 0.2, 0.9, 0.4, -0.1, -0.3, 1.1, 0.6, 0.1, -0.2, 1.0};
    const double gi[12] = {-0.0023903701973328503, 0.005266087812207141,    0.014072832867696844,
                           4.237634880746888e-05,  -0.00016174784523639003, 2.5066949400477157e-05,
                           -0.018770776056250785,  -0.01178468514995782,    -0.02533326604413518,
                           -0.022395902139954706,  0.0658219736632764,      -0.014566406024879746};
    const double gt[12] = {0.002382190112610743,   0.00109109648648892,   -0.0015910893355711813,
                           -5.328525984493482e-06, 2.937709525296187e-05, 6.955164715140625e-05,
                           0.04831153947754992,    -0.02879354236804131,  0.0769439307468507,
                           0.0016319425792263216,  -0.041085215665054325, -0.0083802373909335};
    et_tensor *a = et_from_data(ET_F64, 2, (int64_t[]){4, 3}, im);
    et_tensor *t = et_from_data(ET_F64, 2, (int64_t[]){4, 3}, tx);
    et_tensor *s = et_full(ET_F64, 0, NULL, log(1 / 0.07));
    et_set_requires_grad(a, true), et_set_requires_grad(t, true), et_set_requires_grad(s, true);
    double acc = -1;
    et_tensor *loss = et_clip_contrastive_loss(a, t, s, &acc);
    CHECK_CLOSE(et_get(loss, 0), 0.009814166697295965, 1e-9);
    CHECK_CLOSE(acc, 1.0, 0);
    et_backward(loss);
    et_release(loss);
    CHECK_CLOSE(et_get(s->grad, 0), -0.03520908268261762, 1e-8);
    for (int i = 0; i < 12; i++) {
        CHECK_CLOSE(et_get(a->grad, i), gi[i], 1e-8);
        CHECK_CLOSE(et_get(t->grad, i), gt[i], 1e-8);
    }
    // f32 (what training runs) agrees to single precision
    et_no_grad_begin();
    et_tensor *a32 = et_cast(a, ET_F32), *t32 = et_cast(t, ET_F32), *s32 = et_cast(s, ET_F32);
    et_tensor *l32 = et_clip_contrastive_loss(a32, t32, s32, NULL);
    CHECK_CLOSE(et_get(l32, 0), 0.009814166697295965, 1e-4);
    et_no_grad_end();
    et_release(l32), et_release(a32), et_release(t32), et_release(s32);
    et_release(a), et_release(t), et_release(s);
}

typedef struct {
    et_text_encoder *m;
} tctx;

static const int32_t seq0[5] = {3, 7, 1, 9, 2}, seq1[3] = {4, 4, 2}, seq2[6] = {10, 0, 5, 6, 8, 2};

static et_tensor *f_text(void *c, et_tensor **x) {
    (void)x;
    const int32_t *ids[3] = {seq0, seq1, seq2};
    const int lens[3] = {5, 3, 6};
    return et_text_encoder_forward(((tctx *)c)->m, 3, ids, lens);
}

static et_text_config small_cfg(bool f64) {
    return (et_text_config){.vocab_size = 11,
                            .width = 8,
                            .layers = 2,
                            .heads = 2,
                            .max_len = 7,
                            .proj_dim = 4,
                            .eps = 1e-5,
                            .f64 = f64};
}

static void test_text_encoder_grad(void) {
    et_text_config c = small_cfg(true);
    et_text_encoder m;
    CHECK(!et_text_encoder_new_random(&c, 0.1, 7, &m));
    // every tensor trainable; check a representative subset numerically (all of them would
    // take a while): embeddings, attention, MLP, norms and the projection
    const int n = et_text_encoder_params(&m, NULL, NULL);
    et_tensor **ps = malloc(sizeof(*ps) * (size_t)n);
    et_text_encoder_params(&m, NULL, ps);
    for (int i = 0; i < n; i++) et_set_requires_grad(ps[i], true);
    for (int i = 0; i < n; i++)  // LayerNorm gains / biases off their init values
        if (ps[i]->ndim == 1)
            for (int64_t j = 0; j < ps[i]->numel; j++)
                et_set(ps[i], j, et_get(ps[i], j) + 0.2 * test_randn());
    et_tensor *in[8] = {m.tok_emb,
                        m.pos_emb,
                        m.layers[0].q.weight,
                        m.layers[1].k.bias,
                        m.layers[0].fc1.weight,
                        m.layers[1].ln2_w,
                        m.final_ln_b,
                        m.proj};
    tctx cx = {&m};
    CHECK(gradcheck("text encoder", f_text, &cx, 8, in, EPS, TOL));
    // the tokens after a sequence's EOS never matter: padding row 1 changes nothing, and
    // row 1 alone equals row 1 in the batch
    const int32_t *ids1[1] = {seq1};
    const int lens1[1] = {3};
    et_no_grad_begin();
    et_tensor *all = f_text(&cx, NULL), *one = et_text_encoder_forward(&m, 1, ids1, lens1);
    for (int e = 0; e < 4; e++) CHECK_CLOSE(et_get(all, 4 + e), et_get(one, e), 1e-12);
    // and the pooled row is that of the last token: a different first token changes it
    const int32_t alt[3] = {5, 4, 2};
    const int32_t *ids2[1] = {alt};
    et_tensor *two = et_text_encoder_forward(&m, 1, ids2, lens1);
    double diff = 0;
    for (int e = 0; e < 4; e++) diff += fabs(et_get(two, e) - et_get(one, e));
    CHECK(diff > 1e-6, "causal attention reaches the first token (diff %g)", diff);
    et_no_grad_end();
    et_release(all), et_release(one), et_release(two);
    free(ps);
    et_text_encoder_free(&m);
}

static void test_text_encoder_bad_config(void) {
    et_text_config c = small_cfg(false);
    c.heads = 3;
    et_text_encoder m;
    et_status st = et_text_encoder_new_random(&c, 0.02, 1, &m);
    CHECK(st && strstr(et_status_msg(st),
                       "clip.text_width 8 must be a multiple of clip.text_heads 3"),
          "%s", st ? et_status_msg(st) : "(no error)");
    et_status_free(st);
}

int main(void) {
    RUN(test_mul_exp);
    RUN(test_loss_grad);
    RUN(test_loss_vs_torch);
    RUN(test_text_encoder_grad);
    RUN(test_text_encoder_bad_config);
    return test_summary();
}
