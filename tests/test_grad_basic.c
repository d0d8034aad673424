// tests/test_grad_basic.c - f64 gradient checks for the ops in core/ops_basic.c.
#include "../core/ops.h"
#include "gradcheck.h"

#define EPS 1e-6
#define TOL 1e-6

static et_tensor *leaf(int ndim, const int64_t *shape) {
    et_tensor *t = test_rand_tensor(ET_F64, ndim, shape, 1.0);
    et_set_requires_grad(t, true);
    return t;
}
static et_tensor *ints(int n, const int32_t *v) {
    return et_from_data(ET_I32, 1, (int64_t[]){n}, v);
}

typedef struct {
    int ta, tb;
    int dim;
    int64_t a, b, c;
    et_tensor *aux, *aux2;
} args;

static void check(const char *name, gradcheck_fn f, void *ctx, int n, et_tensor **in) {
    CHECK(gradcheck(name, f, ctx, n, in, EPS, TOL), "%s", name);
    for (int i = 0; i < n; i++) et_release(in[i]);
}

static et_tensor *f_matmul(void *c, et_tensor **x) {
    args *a = c;
    return et_matmul(x[0], x[1], a->ta, a->tb);
}
static void test_matmul(void) {
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            args a = {.ta = ta, .tb = tb};
            // batched [2, M=3, K=4] x [2, K=4, N=5]
            et_tensor *in[2] = {leaf(3, ta ? (int64_t[]){2, 4, 3} : (int64_t[]){2, 3, 4}),
                                leaf(3, tb ? (int64_t[]){2, 5, 4} : (int64_t[]){2, 4, 5})};
            check("matmul batched", f_matmul, &a, 2, in);
            // shared 2-D b
            et_tensor *in2[2] = {leaf(3, ta ? (int64_t[]){2, 4, 3} : (int64_t[]){2, 3, 4}),
                                 leaf(2, tb ? (int64_t[]){5, 4} : (int64_t[]){4, 5})};
            check("matmul shared b", f_matmul, &a, 2, in2);
        }
}

static et_tensor *f_linear(void *c, et_tensor **x) {
    (void)c;
    return et_linear(x[0], x[1], x[2]);
}
static et_tensor *f_linear_nobias(void *c, et_tensor **x) {
    (void)c;
    return et_linear(x[0], x[1], NULL);
}
static void test_linear(void) {
    et_tensor *in[3] = {leaf(3, (int64_t[]){2, 3, 4}), leaf(2, (int64_t[]){5, 4}),
                        leaf(1, (int64_t[]){5})};
    check("linear", f_linear, NULL, 3, in);
    et_tensor *in2[2] = {leaf(2, (int64_t[]){3, 4}), leaf(2, (int64_t[]){2, 4})};
    check("linear no bias", f_linear_nobias, NULL, 2, in2);
}

static et_tensor *f_add(void *c, et_tensor **x) {
    (void)c;
    return et_add(x[0], x[1]);
}
static et_tensor *f_sub(void *c, et_tensor **x) {
    (void)c;
    return et_sub(x[0], x[1]);
}
static et_tensor *f_mul(void *c, et_tensor **x) {
    (void)c;
    return et_mul(x[0], x[1]);
}
static et_tensor *f_mul_self(void *c, et_tensor **x) {
    (void)c;
    return et_mul(x[0], x[0]);
}
static et_tensor *f_scale(void *c, et_tensor **x) {
    (void)c;
    return et_scale(x[0], -2.5);
}
static et_tensor *f_add_bcast(void *c, et_tensor **x) {
    (void)c;
    return et_add_bcast(x[0], x[1]);
}
static et_tensor *f_sum(void *c, et_tensor **x) {
    (void)c;
    return et_sum_last(x[0]);
}
static et_tensor *f_mean(void *c, et_tensor **x) {
    (void)c;
    return et_mean_last(x[0]);
}

static void test_elementwise(void) {
    gradcheck_fn fs[] = {f_add, f_sub, f_mul};
    const char *names[] = {"add", "sub", "mul"};
    for (int k = 0; k < 3; k++) {
        et_tensor *in[2] = {leaf(2, (int64_t[]){3, 4}), leaf(2, (int64_t[]){3, 4})};
        check(names[k], fs[k], NULL, 2, in);
    }
    et_tensor *in1[1] = {leaf(2, (int64_t[]){3, 4})};
    check("mul self (x*x accumulates both paths)", f_mul_self, NULL, 1, in1);
    et_tensor *in2[1] = {leaf(2, (int64_t[]){3, 4})};
    check("scale", f_scale, NULL, 1, in2);
    et_tensor *in3[2] = {leaf(3, (int64_t[]){2, 3, 4}), leaf(2, (int64_t[]){3, 4})};
    check("add_bcast [T, D]", f_add_bcast, NULL, 2, in3);
    et_tensor *in4[2] = {leaf(3, (int64_t[]){2, 3, 4}), leaf(1, (int64_t[]){4})};
    check("add_bcast [D]", f_add_bcast, NULL, 2, in4);
    et_tensor *in5[1] = {leaf(3, (int64_t[]){2, 3, 4})};
    check("sum_last", f_sum, NULL, 1, in5);
    et_tensor *in6[1] = {leaf(2, (int64_t[]){3, 5})};
    check("mean_last", f_mean, NULL, 1, in6);
}

static et_tensor *f_embedding(void *c, et_tensor **x) {
    return et_embedding(x[0], ((args *)c)->aux);
}
static et_tensor *f_gather(void *c, et_tensor **x) {
    return et_gather_rows(x[0], ((args *)c)->aux);
}
static et_tensor *f_scatter(void *c, et_tensor **x) {
    return et_scatter_rows(x[0], ((args *)c)->aux, x[1]);
}

static void test_rows(void) {
    args a = {.aux = et_from_data(ET_I32, 2, (int64_t[]){2, 3}, (int32_t[]){1, 4, 1, 0, 4, 4})};
    et_tensor *in[1] = {leaf(2, (int64_t[]){5, 3})};
    check("embedding (repeated ids)", f_embedding, &a, 1, in);
    et_release(a.aux);
    a.aux = ints(4, (int32_t[]){2, 0, 2, 3});
    et_tensor *in2[1] = {leaf(2, (int64_t[]){4, 3})};
    check("gather_rows", f_gather, &a, 1, in2);
    et_release(a.aux);
    a.aux = ints(2, (int32_t[]){3, 1});
    et_tensor *in3[2] = {leaf(2, (int64_t[]){5, 3}), leaf(2, (int64_t[]){2, 3})};
    check("scatter_rows", f_scatter, &a, 2, in3);
    et_release(a.aux);
}

static et_tensor *f_concat(void *c, et_tensor **x) { return et_concat(3, x, ((args *)c)->dim); }
static et_tensor *f_narrow(void *c, et_tensor **x) {
    args *a = c;
    return et_narrow(x[0], a->dim, a->a, a->b);
}
static et_tensor *f_reshape(void *c, et_tensor **x) {
    (void)c;
    et_tensor *r = et_reshape(x[0], 2, (int64_t[]){-1, 6});
    et_tensor *y = et_mul(r, r);  // something nonlinear after the view
    et_release(r);
    return y;
}

static const int k_perms[][4] = {{0, 2, 1, 3}, {3, 1, 0, 2}, {1, 0, 2, 3}, {0, 1, 3, 2}};
static et_tensor *f_permute(void *c, et_tensor **x) {
    return et_permute(x[0], 4, k_perms[((args *)c)->dim]);
}

// The forward against index arithmetic: y[i0, i1, i2, i3] = x[j] with j's index in x
// being (i_{inv[0]}, ...), for a shape with a size-1 dim (merged away by the plan).
static void check_permute_values(const int *perm) {
    const int64_t xs[4] = {2, 3, 1, 4};
    et_tensor *x = test_rand_tensor(ET_F64, 4, xs, 1.0);
    et_tensor *y = et_permute(x, 4, perm);
    int bad = 0;
    int64_t i[4];
    for (i[0] = 0; i[0] < y->shape[0]; i[0]++)
        for (i[1] = 0; i[1] < y->shape[1]; i[1]++)
            for (i[2] = 0; i[2] < y->shape[2]; i[2]++)
                for (i[3] = 0; i[3] < y->shape[3]; i[3]++) {
                    int64_t xi[4], off = 0, yo = 0;
                    for (int k = 0; k < 4; k++) xi[perm[k]] = i[k];
                    for (int k = 0; k < 4; k++) off = off * xs[k] + xi[k];
                    for (int k = 0; k < 4; k++) yo = yo * y->shape[k] + i[k];
                    bad += et_get(y, yo) != et_get(x, off);
                }
    CHECK(!bad, "permute (%d %d %d %d): %d wrong elements", perm[0], perm[1], perm[2], perm[3],
          bad);
    et_release(x), et_release(y);
}

static void test_shape(void) {
    for (int dim = 0; dim < 3; dim++) {
        args a = {.dim = dim};
        int64_t s0[3] = {2, 3, 4}, s1[3] = {2, 3, 4}, s2[3] = {2, 3, 4};
        s1[dim] = 1;
        s2[dim] = 2;
        et_tensor *in[3] = {leaf(3, s0), leaf(3, s1), leaf(3, s2)};
        check("concat", f_concat, &a, 3, in);
        args b = {.dim = dim, .a = 1, .b = 1};
        et_tensor *in2[1] = {leaf(3, (int64_t[]){3, 3, 3})};
        check("narrow", f_narrow, &b, 1, in2);
    }
    et_tensor *in3[1] = {leaf(3, (int64_t[]){2, 3, 2})};
    check("reshape", f_reshape, NULL, 1, in3);
    for (int k = 0; k < 4; k++) {
        args a = {.dim = k};
        et_tensor *in4[1] = {leaf(4, (int64_t[]){2, 3, 1, 4})};
        check("permute", f_permute, &a, 1, in4);
        check_permute_values(k_perms[k]);
    }
}

static et_tensor *f_mean_pool(void *c, et_tensor **x) {
    return et_mean_pool(x[0], ((args *)c)->aux);
}
static et_tensor *f_avg_pool(void *c, et_tensor **x) {
    args *a = c;
    return et_avg_pool2d(x[0], (int)a->a, (int)a->b);
}
static et_tensor *f_resize(void *c, et_tensor **x) {
    args *a = c;
    return et_resize_bilinear(x[0], a->a, a->b);
}

static void test_pooling(void) {
    args a = {.aux =
                  et_from_data(ET_I32, 2, (int64_t[]){2, 4}, (int32_t[]){1, 1, 0, 1, 0, 0, 0, 0})};
    et_tensor *in[1] = {leaf(3, (int64_t[]){2, 4, 3})};
    check("mean_pool masked (one empty row)", f_mean_pool, &a, 1, in);
    et_release(a.aux);
    args b = {.aux = NULL};
    et_tensor *in2[1] = {leaf(3, (int64_t[]){2, 4, 3})};
    check("mean_pool", f_mean_pool, &b, 1, in2);
    args c = {.a = 2, .b = 2};
    et_tensor *in3[1] = {leaf(4, (int64_t[]){2, 4, 4, 3})};
    check("avg_pool2d k2 s2", f_avg_pool, &c, 1, in3);
    args d = {.a = 3, .b = 1};
    et_tensor *in4[1] = {leaf(4, (int64_t[]){1, 4, 5, 2})};
    check("avg_pool2d k3 s1 (overlapping)", f_avg_pool, &d, 1, in4);
    // up x2, up x4 by 3 (non-integer), down, a 1-pixel axis, identity
    const int64_t rs[][4] = {{3, 4, 6, 8}, {2, 3, 8, 7}, {7, 5, 3, 4}, {1, 4, 3, 8}, {3, 3, 3, 3}};
    for (int k = 0; k < 5; k++) {
        args r = {.a = rs[k][2], .b = rs[k][3]};
        et_tensor *in5[1] = {leaf(4, (int64_t[]){2, rs[k][0], rs[k][1], 3})};
        check("resize_bilinear", f_resize, &r, 1, in5);
    }
}

static et_tensor *f_patch(void *c, et_tensor **x) {
    (void)c;
    return et_patch_embed(x[0], x[1], x[2]);
}
static et_tensor *f_bilinear(void *c, et_tensor **x) {
    return et_bilinear_sample(x[0], ((args *)c)->aux);
}
static void test_vision(void) {
    et_tensor *in[3] = {leaf(4, (int64_t[]){2, 2, 4, 6}), leaf(4, (int64_t[]){3, 2, 2, 2}),
                        leaf(1, (int64_t[]){3})};
    check("patch_embed", f_patch, NULL, 3, in);
    // points inside, near the border and outside; avoid exact pixel centres (kinks)
    args a = {.aux = et_from_data(
                  ET_F64, 3, (int64_t[]){1, 5, 2},
                  (double[]){0.13, -0.41, -0.93, 0.87, 0.97, 0.99, 1.05, 0.2, -1.2, -1.3})};
    et_tensor *in2[1] = {leaf(4, (int64_t[]){1, 3, 4, 2})};
    check("bilinear_sample", f_bilinear, &a, 1, in2);
    et_release(a.aux);
}

static et_tensor *f_dropout(void *c, et_tensor **x) {
    (void)c;
    return et_dropout(x[0], 0.3, 7, 100);
}
static et_tensor *f_cast(void *c, et_tensor **x) {
    (void)c;
    et_tensor *h = et_cast(x[0], ET_F32);  // f64 -> f32 -> f64 keeps ~1e-7, enough for grads
    et_tensor *y = et_cast(h, ET_F64);
    et_release(h);
    return y;
}
static void test_dropout_cast(void) {
    et_tensor *in[1] = {leaf(2, (int64_t[]){4, 8})};
    check("dropout", f_dropout, NULL, 1, in);
    et_tensor *in2[1] = {leaf(1, (int64_t[]){6})};
    CHECK(gradcheck("cast", f_cast, NULL, 1, in2, 1e-2, 1e-5));
    et_release(in2[0]);
}

int main(void) {
    RUN(test_matmul);
    RUN(test_linear);
    RUN(test_elementwise);
    RUN(test_rows);
    RUN(test_shape);
    RUN(test_pooling);
    RUN(test_vision);
    RUN(test_dropout_cast);
    return test_summary();
}
