// tests/gradcheck.h - gradient checks in f64 against central differences.
// defines: gradcheck
//
// gradcheck(name, f, ctx, n, inputs, eps, tol): y = f(ctx, inputs) with the inputs as
// f64 leaves; the inputs with requires_grad are checked. The scalar L = sum(y * r) with
// a fixed random r gives analytic gradients through et_backward_grads(y, r); numeric
// ones come from (L(x + eps e_j) - L(x - eps e_j)) / 2 eps for every element j.
// Passes when |analytic - numeric| <= tol * max(1, |numeric|) everywhere.
#ifndef ET_GRADCHECK_H
#define ET_GRADCHECK_H

#include "test_util.h"

typedef et_tensor *(*gradcheck_fn)(void *ctx, et_tensor **inputs);

static inline double gc_dot(const et_tensor *y, const et_tensor *r) {
    double s = 0;
    for (int64_t i = 0; i < y->numel; i++) s += et_get(y, i) * et_get(r, i);
    return s;
}

static inline int gradcheck(const char *name, gradcheck_fn f, void *ctx, int n, et_tensor **inputs,
                            double eps, double tol) {
    int ok = 1;
    et_tensor *y = f(ctx, inputs);
    et_tensor *r = test_rand_tensor(ET_F64, y->ndim, y->shape, 1.0);
    for (int i = 0; i < n; i++)
        if (inputs[i]) {
            et_release(inputs[i]->grad);
            inputs[i]->grad = NULL;
        }
    et_backward_grads(1, &y, &r);
    et_release(y);
    et_no_grad_begin();
    for (int i = 0; i < n && ok; i++) {
        et_tensor *x = inputs[i];
        if (!x || !x->requires_grad) continue;
        if (!x->grad) {
            fprintf(stderr, "  gradcheck %s: input %d got no gradient\n", name, i);
            ok = 0;
            break;
        }
        double *xd = et_data(x);
        for (int64_t j = 0; j < x->numel; j++) {
            double keep = xd[j];
            xd[j] = keep + eps;
            et_tensor *yp = f(ctx, inputs);
            double lp = gc_dot(yp, r);
            xd[j] = keep - eps;
            et_tensor *ym = f(ctx, inputs);
            double lm = gc_dot(ym, r);
            xd[j] = keep;
            et_release(yp);
            et_release(ym);
            double num = (lp - lm) / (2 * eps);
            double ana = et_get(x->grad, j);
            if (!(fabs(ana - num) <= tol * fmax(1.0, fabs(num)))) {
                fprintf(stderr,
                        "  gradcheck %s: input %d element %lld: analytic %.10g numeric %.10g\n",
                        name, i, (long long)j, ana, num);
                ok = 0;
                break;
            }
        }
    }
    et_no_grad_end();
    et_release(r);
    return ok;
}

#endif
