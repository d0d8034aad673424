// core/tensor.c - see tensor.h
#include "tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd.h"
#include "device.h"
#include "status.h"

int64_t et_shape_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

static et_tensor *tensor_shell(et_dtype dt, et_device dev, int ndim, const int64_t *shape) {
    ET_ASSERT(ndim >= 0 && ndim <= ET_MAX_DIMS, "tensor rank %d outside 0..%d", ndim, ET_MAX_DIMS);
    ET_ASSERT((unsigned)dt < ET_NUM_DTYPES, "unknown dtype %d", (int)dt);
    et_tensor *t = calloc(1, sizeof(*t));
    ET_ASSERT(t, "out of host memory allocating a tensor header");
    t->dtype = dt;
    t->device = dev;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        ET_ASSERT(shape[i] >= 0, "negative dimension %lld", (long long)shape[i]);
        t->shape[i] = shape[i];
    }
    t->numel = et_shape_numel(ndim, shape);
    atomic_init(&t->refcount, 1);
    return t;
}

et_tensor *et_empty_on(et_device dev, et_dtype dt, int ndim, const int64_t *shape) {
    if (dev.type != ET_CPU) et_backend_ops(dev.type, "et_empty_on");  // registers its allocator
    et_tensor *t = tensor_shell(dt, dev, ndim, shape);
    et_storage *s = calloc(1, sizeof(*s));
    ET_ASSERT(s, "out of host memory allocating storage");
    s->bytes = (size_t)t->numel * et_dtype_size(dt);
    s->device = dev;
    s->data = et_alloc(dev, s->bytes);
    ET_ASSERT(s->data, "out of memory allocating %zu bytes for a tensor", s->bytes);
    atomic_init(&s->refcount, 1);
    t->storage = s;
    return t;
}

et_tensor *et_empty(et_dtype dt, int ndim, const int64_t *shape) {
    return et_empty_on(et_cpu(), dt, ndim, shape);
}
et_tensor *et_empty_like(const et_tensor *t) {
    return et_empty_on(t->device, t->dtype, t->ndim, t->shape);
}

et_tensor *et_zeros(et_dtype dt, int ndim, const int64_t *shape) {
    et_tensor *t = et_empty(dt, ndim, shape);
    memset(et_data(t), 0, et_nbytes(t));
    return t;
}
et_tensor *et_zeros_like(const et_tensor *t) {
    et_tensor *z = et_empty_like(t);
    if (z->device.type != ET_CPU) {
        et_fill_(z, 0);
        return z;
    }
    memset(et_data(z), 0, et_nbytes(z));
    return z;
}

et_tensor *et_full(et_dtype dt, int ndim, const int64_t *shape, double value) {
    et_tensor *t = et_empty(dt, ndim, shape);
    et_fill_(t, value);
    return t;
}

et_tensor *et_from_data(et_dtype dt, int ndim, const int64_t *shape, const void *data) {
    et_tensor *t = et_empty(dt, ndim, shape);
    memcpy(et_data(t), data, et_nbytes(t));
    return t;
}

et_tensor *et_wrap_external(et_dtype dt, int ndim, const int64_t *shape, void *data,
                            void (*release)(void *ctx), void *ctx) {
    et_tensor *t = tensor_shell(dt, et_cpu(), ndim, shape);
    et_storage *s = calloc(1, sizeof(*s));
    ET_ASSERT(s, "out of host memory allocating storage");
    s->data = data;
    s->bytes = et_nbytes(t);
    s->device = et_cpu();
    s->release = release;
    s->release_ctx = ctx;
    atomic_init(&s->refcount, 1);
    t->storage = s;
    return t;
}

et_tensor *et_retain(et_tensor *t) {
    if (t) atomic_fetch_add(&t->refcount, 1);
    return t;
}

static void storage_release(et_storage *s) {
    if (atomic_fetch_sub(&s->refcount, 1) != 1) return;
    if (s->release)
        s->release(s->release_ctx);
    else
        et_free(s->device, s->data);
    free(s);
}

void et_release(et_tensor *t) {
    if (!t) return;
    if (atomic_fetch_sub(&t->refcount, 1) != 1) return;
    if (t->grad_fn) t->grad_fn->out = NULL;
    et_release(t->grad);
    storage_release(t->storage);
    free(t);
}

bool et_same_shape(const et_tensor *a, const et_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

bool et_permute_plan_make(const et_tensor *t, int ndim, const int *perm, et_permute_plan *p) {
    if (ndim != t->ndim || ndim < 0 || ndim > ET_MAX_DIMS) return false;
    bool seen[ET_MAX_DIMS] = {0};
    for (int i = 0; i < ndim; i++) {
        if (perm[i] < 0 || perm[i] >= ndim || seen[perm[i]]) return false;
        seen[perm[i]] = true;
    }
    int64_t sst[ET_MAX_DIMS], acc = 1;
    for (int d = ndim - 1; d >= 0; d--) sst[d] = acc, acc *= t->shape[d];
    et_permute_plan q;
    memset(&q, 0, sizeof q);
    int prev = -2;
    for (int i = 0; i < ndim; i++) {
        const int d = perm[i];
        const int64_t n = t->shape[d];
        if (n == 1) continue;  // a size-1 dim moves nothing
        if (q.ndim && prev == d - 1) {
            q.shape[q.ndim - 1] *= n;  // source dims d-1, d stay adjacent: one dim
            q.stride[q.ndim - 1] = sst[d];
        } else {
            q.shape[q.ndim] = n, q.stride[q.ndim] = sst[d], q.ndim++;
        }
        prev = d;
    }
    if (!q.ndim) q.ndim = 1, q.shape[0] = t->numel, q.stride[0] = 1;
    *p = q;
    return true;
}

const char *et_shape_str(const et_tensor *t, char *buf, size_t n) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n - k, "[");
    for (int i = 0; i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (k < n) snprintf(buf + k, n - k, "] %s", et_dtype_name(t->dtype));
    return buf;
}

et_tensor *et_view_raw(const et_tensor *t, int ndim, const int64_t *shape, int64_t offset_elems) {
    et_tensor *v = tensor_shell(t->dtype, t->device, ndim, shape);
    size_t off = t->offset + (size_t)offset_elems * et_dtype_size(t->dtype);
    ET_ASSERT(off + et_nbytes(v) <= t->storage->bytes,
              "view of %lld elements at offset %lld runs past its storage", (long long)v->numel,
              (long long)offset_elems);
    v->storage = t->storage;
    atomic_fetch_add(&t->storage->refcount, 1);
    v->offset = off;
    return v;
}

et_tensor *et_detach(const et_tensor *t) { return et_view_raw(t, t->ndim, t->shape, 0); }

et_tensor *et_clone(const et_tensor *t) {
    et_tensor *c = et_empty_like(t);
    if (t->device.type != ET_CPU) {
        et_copy_(c, t);
        return c;
    }
    memcpy(et_data(c), et_data(t), et_nbytes(t));
    return c;
}

void et_copy_(et_tensor *dst, const et_tensor *src) {
    ET_ASSERT(dst->numel == src->numel, "et_copy_: %lld elements into %lld", (long long)src->numel,
              (long long)dst->numel);
    if (dst->device.type != ET_CPU || src->device.type != ET_CPU) {
        et_device_type ty = dst->device.type != ET_CPU ? dst->device.type : src->device.type;
        et_backend_ops(ty, "et_copy_")->copy(dst, src);
        return;
    }
    et_convert(et_data(dst), dst->dtype, et_data(src), src->dtype, (size_t)src->numel);
}

void et_fill_(et_tensor *t, double value) {
    if (t->device.type != ET_CPU) {
        et_backend_ops(t->device.type, "et_fill_")->fill(t, value);
        return;
    }
    int64_t n = t->numel;
    switch (t->dtype) {
        case ET_F32: {
            float *p = et_data(t);
            for (int64_t i = 0; i < n; i++) p[i] = (float)value;
            break;
        }
        case ET_F64: {
            double *p = et_data(t);
            for (int64_t i = 0; i < n; i++) p[i] = value;
            break;
        }
        default:
            for (int64_t i = 0; i < n; i++) et_set(t, i, value);
    }
}

void et_set_requires_grad(et_tensor *t, bool on) {
    ET_ASSERT(!on || et_dtype_is_float(t->dtype), "only floating-point tensors can require grad");
    t->requires_grad = on;
}

double et_get(const et_tensor *t, int64_t i) {
    ET_ASSERT(i >= 0 && i < t->numel, "et_get: index %lld of %lld", (long long)i,
              (long long)t->numel);
    double v;
    if (t->device.type != ET_CPU) {  // one element through the host (debugging, tests)
        et_tensor *e = et_view_raw(t, 0, NULL, i), *h = et_empty(ET_F64, 0, NULL);
        et_copy_(h, e);
        v = *ET_DATA(double, h);
        et_release(e);
        et_release(h);
        return v;
    }
    et_convert(&v, ET_F64, (const char *)et_data(t) + (size_t)i * et_dtype_size(t->dtype), t->dtype,
               1);
    return v;
}

void et_set(et_tensor *t, int64_t i, double v) {
    ET_ASSERT(i >= 0 && i < t->numel, "et_set: index %lld of %lld", (long long)i,
              (long long)t->numel);
    if (t->device.type != ET_CPU) {
        et_tensor *e = et_view_raw(t, 0, NULL, i), *h = et_full(ET_F64, 0, NULL, v);
        et_copy_(e, h);
        et_release(e);
        et_release(h);
        return;
    }
    et_convert((char *)et_data(t) + (size_t)i * et_dtype_size(t->dtype), t->dtype, &v, ET_F64, 1);
}
