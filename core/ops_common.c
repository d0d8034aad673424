// core/ops_common.c - helpers from ops_internal.h
#include <string.h>

#include "ops_internal.h"

et_tensor *et_as_dtype(const et_tensor *t, et_dtype cdt) {
    if (t->dtype == cdt) return et_retain((et_tensor *)t);
    et_tensor *c = et_empty(cdt, t->ndim, t->shape);
    et_copy_(c, t);
    return c;
}

et_tensor *et_finish(et_tensor *y, et_dtype dt) {
    if (y->dtype == dt) return y;
    et_tensor *o = et_empty(dt, y->ndim, y->shape);
    et_copy_(o, y);
    et_release(y);
    return o;
}

et_tensor *et_new(et_dtype dt, int ndim, const int64_t *shape) { return et_empty(dt, ndim, shape); }
et_tensor *et_new_zeros(et_dtype dt, int ndim, const int64_t *shape) {
    return et_zeros(dt, ndim, shape);
}

et_tensor *et_node_input_zeros(const et_node *n, int i, et_dtype cdt) {
    return et_zeros(cdt, n->in_ndim[i], n->in_shape[i]);
}

void et_check_float(const char *op, const et_tensor *t, const char *what) {
    ET_ASSERT(t, "%s: %s is NULL", op, what);
    ET_ASSERT(et_dtype_is_float(t->dtype), "%s: %s must be a float tensor, got %s", op, what,
              et_dtype_name(t->dtype));
    ET_ASSERT(t->device.type == ET_CPU, "%s: %s is not on the CPU (no CUDA backend built)", op,
              what);
}

void et_check_int(const char *op, const et_tensor *t, const char *what) {
    ET_ASSERT(t, "%s: %s is NULL", op, what);
    ET_ASSERT(t->dtype == ET_I32 || t->dtype == ET_U8, "%s: %s must be i32 (or u8), got %s", op,
              what, et_dtype_name(t->dtype));
}

void et_check_same_shape(const char *op, const et_tensor *a, const et_tensor *b) {
    char sa[128], sb[128];
    ET_ASSERT(et_same_shape(a, b), "%s: shapes differ: %s vs %s", op,
              et_shape_str(a, sa, sizeof sa), et_shape_str(b, sb, sizeof sb));
}

void et_check_mix(const char *op, const et_tensor *act, const et_tensor *other) {
    if (!other) return;
    ET_ASSERT((act->dtype == ET_F64) == (other->dtype == ET_F64),
              "%s: f64 cannot be mixed with %s (f64 is for gradient checks)", op,
              et_dtype_name(act->dtype == ET_F64 ? other->dtype : act->dtype));
}
