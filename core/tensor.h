// core/tensor.h - tensors: dtype, device, shape, refcounted storage, views.
// defines: et_tensor, et_storage, et_empty, et_zeros, et_full, et_from_data, et_retain,
//          et_release, et_data, et_numel, et_nbytes, et_same_shape, et_shape_str,
//          et_detach, et_clone, et_contiguous_view, et_set_requires_grad
//
// Contract
// - A tensor is always contiguous row-major, up to ET_MAX_DIMS dims. A view shares
//   storage only when it stays contiguous (reshape, narrowing the outer dim); every
//   other layout change copies (DESIGN.md "The engine").
// - Ownership: every function that returns et_tensor* returns a NEW reference; the
//   caller releases it with et_release. Functions taking et_tensor* borrow it.
// - Storage is refcounted and comes from the device's caching allocator, or wraps
//   external memory (mmap) with a release callback.
// - Autograd fields: requires_grad marks a tensor whose gradient is wanted (a trainable
//   leaf, or any op output that depends on one); grad_fn is the tape node that made it
//   (NULL for leaves; a weak link cleared when the node is freed); grad is the
//   accumulated gradient of a leaf (owned, same shape, f32 for bf16/f16 leaves, f64 for
//   f64 leaves).
// - Refcounts are atomic; a tensor may be handed between threads, but one tensor's data
//   must not be written by two threads at once.
#ifndef ET_TENSOR_H
#define ET_TENSOR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloc.h"
#include "dtype.h"

#define ET_MAX_DIMS 8

typedef struct et_storage {
    void *data;
    size_t bytes;
    atomic_int refcount;
    et_device device;
    // For external memory (mmap): called instead of et_free when the last ref goes.
    void (*release)(void *ctx);
    void *release_ctx;
} et_storage;

struct et_node;

typedef struct et_tensor {
    et_dtype dtype;
    et_device device;
    int ndim;
    int64_t shape[ET_MAX_DIMS];
    int64_t numel;
    et_storage *storage;
    size_t offset;  // bytes from storage->data to element 0
    atomic_int refcount;
    bool requires_grad;
    struct et_tensor *grad;   // owned; leaves only
    struct et_node *grad_fn;  // weak; NULL for leaves
} et_tensor;

static inline et_device et_cpu(void) { return (et_device){ET_CPU, 0}; }

// Allocation (CPU). Shapes are arrays of ndim int64: et_empty(ET_F32, 2, (int64_t[]){2, 3}).
et_tensor *et_empty(et_dtype dt, int ndim, const int64_t *shape);
et_tensor *et_empty_on(et_device dev, et_dtype dt, int ndim, const int64_t *shape);
et_tensor *et_empty_like(const et_tensor *t);
et_tensor *et_zeros(et_dtype dt, int ndim, const int64_t *shape);
et_tensor *et_zeros_like(const et_tensor *t);
et_tensor *et_full(et_dtype dt, int ndim, const int64_t *shape, double value);
// Copies numel elements of data (given in dtype dt).
et_tensor *et_from_data(et_dtype dt, int ndim, const int64_t *shape, const void *data);
// Wraps external memory without copying; release(ctx) runs when the last ref goes.
et_tensor *et_wrap_external(et_dtype dt, int ndim, const int64_t *shape, void *data,
                            void (*release)(void *ctx), void *ctx);

et_tensor *et_retain(et_tensor *t);  // returns t
void et_release(et_tensor *t);       // NULL-safe

static inline void *et_data(const et_tensor *t) { return (char *)t->storage->data + t->offset; }
#define ET_DATA(T, t) ((T *)et_data(t))
static inline size_t et_nbytes(const et_tensor *t) {
    return (size_t)t->numel * et_dtype_size(t->dtype);
}
int64_t et_shape_numel(int ndim, const int64_t *shape);
bool et_same_shape(const et_tensor *a, const et_tensor *b);
// Writes "[2, 3] f32" into buf (returns buf); for error messages.
const char *et_shape_str(const et_tensor *t, char *buf, size_t n);
// Product of all dims but the last ("rows") and the last dim.
static inline int64_t et_rows(const et_tensor *t) {
    return t->ndim ? t->numel / t->shape[t->ndim - 1] : 1;
}
static inline int64_t et_last(const et_tensor *t) { return t->ndim ? t->shape[t->ndim - 1] : 1; }

// A permutation of t's dims as a strided gather (et_permute's plan, CPU and CUDA): the
// output has shape[i] = t->shape[perm[i]]; dims that stay adjacent are merged, so the plan
// has ndim <= t->ndim dims, shape[] of the (merged) output and stride[] of the source in
// elements. False (plan untouched) when perm is not a permutation of 0..t->ndim-1.
typedef struct {
    int ndim;
    int64_t shape[ET_MAX_DIMS], stride[ET_MAX_DIMS];
} et_permute_plan;
bool et_permute_plan_make(const et_tensor *t, int ndim, const int *perm, et_permute_plan *p);

// A new tensor sharing storage and shape, with no autograd history and requires_grad false.
et_tensor *et_detach(const et_tensor *t);
// A deep copy (no autograd history).
et_tensor *et_clone(const et_tensor *t);
// A view of t's storage with another shape/offset (no autograd): the building block of
// reshape and narrow. offset_elems counts elements of t's dtype from t's first element.
et_tensor *et_view_raw(const et_tensor *t, int ndim, const int64_t *shape, int64_t offset_elems);
// Copy src's elements into dst (same numel), converting dtype. No autograd.
void et_copy_(et_tensor *dst, const et_tensor *src);
void et_fill_(et_tensor *t, double value);
// Marks a leaf as trainable (true) or frozen (false).
void et_set_requires_grad(et_tensor *t, bool on);
// Element i as double (any dtype; for tests and debugging).
double et_get(const et_tensor *t, int64_t i);
void et_set(et_tensor *t, int64_t i, double v);

#endif
