// core/device.h - the backend table: how core/ reaches a non-CPU device (CUDA).
// defines: et_backend, et_adamw_tensor, et_backend_get, et_backend_ops, et_backend_register,
//          et_backend_provide,
// et_device_count,
//          et_device_sync, et_to_device, et_on_device, ET_ON_DEVICE, ET_DISPATCH
//
// Contract
// - The CPU code path never goes through this table. A backend (the CUDA library) fills one
//   et_backend per device type and registers it with et_backend_register. Core never
//   names a backend: the backend offers a lazy initialiser with et_backend_provide (the
//   CUDA library does so from a constructor in its op layer, pulled into every
//   program by a link option), and core runs it once on the first et_backend_get, so a
//   process that never touches a GPU never initialises CUDA. Without a GPU (or without
//   the CUDA build) the table of ET_CUDA stays NULL and et_device_count(ET_CUDA) is 0.
// - Op entries have the signatures of core/ops.h and the same contract (new reference
//   returned, inputs borrowed, autograd recorded by the backend itself). A NULL entry is an
//   op the backend lacks: ET_DISPATCH aborts with the op's name.
// - The ops in core/ops_*.c dispatch on the device of their first tensor argument:
//   ET_DISPATCH(x, name, args...) returns the backend's result when x is not on the CPU.
//   Ops whose activations may come from either side (elementwise with two operands,
//   linear / matmul, add_bcast, concat, scatter_rows, patch_embed) dispatch on the first
//   non-CPU tensor among them (ET_ON_DEVICE): a CPU operand (zeros built on the host, an
//   input batch) is then uploaded by the backend op, and autograd returns its gradient to
//   the CPU (core/autograd.c moves gradients to the device of the tensor they belong to).
// - Thread safety: registration happens once (pthread_once); the table is read-only after.
#ifndef ET_DEVICE_H
#define ET_DEVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "tensor.h"

// One tensor of a multi-tensor AdamW update (core/optim.c arithmetic): w is the f32
// parameter or its f32 master, g the f32 grad, m/v the f32 moments, half the bf16/f16
// parameter to round the result into (NULL for f32 parameters). decay = 1 - lr wd,
// neg_step = -lr / (1 - beta1^t), bc2_sqrt = sqrt(1 - beta2^t): per tensor, since groups
// and per-parameter step counts differ.
typedef struct {
    float *w;
    const float *g;
    float *m, *v;
    void *half;
    et_dtype hdt;
    int64_t n;
    double decay, neg_step, bc2_sqrt;
} et_adamw_tensor;

typedef struct et_backend {
    const char *name;
    int (*device_count)(void);
    void (*sync)(int index);  // waits for all work queued on the device
    // Tensor primitives (any two devices of which at least one is this backend's):
    // dst = src converted to dst's dtype (same numel); t[:] = value; dst += src.
    void (*copy)(et_tensor *dst, const et_tensor *src);
    void (*fill)(et_tensor *t, double value);
    void (*add_into)(et_tensor *dst, const et_tensor *src);
    // Multi-tensor optimizer primitives on device `index` (all pointers on that device;
    // no host synchronisation per tensor):
    // AdamW over n tensors with the shared scalars w1 = 1 - beta1, beta2, c2 = 1 - beta2, eps.
    void (*adamw)(int index, int n, const et_adamw_tensor *ts, double w1, double beta2, double c2,
                  double eps);
    // sum of x^2 over every element of the n f32 buffers, accumulated in f64 in a fixed
    // order (deterministic); synchronises once to return it.
    double (*sumsq_f32)(int index, int n, const float *const *x, const int64_t *numel);
    // x *= s over the n f32 buffers.
    void (*scale_f32)(int index, int n, float *const *x, const int64_t *numel, float s);
    // ---- ops (core/ops.h) ----
    et_tensor *(*matmul)(et_tensor *a, et_tensor *b, bool ta, bool tb);
    et_tensor *(*linear)(et_tensor *x, et_tensor *w, et_tensor *b);
    et_tensor *(*add)(et_tensor *a, et_tensor *b);
    et_tensor *(*sub)(et_tensor *a, et_tensor *b);
    et_tensor *(*mul)(et_tensor *a, et_tensor *b);
    et_tensor *(*scale)(et_tensor *a, double s);
    et_tensor *(*add_bcast)(et_tensor *a, et_tensor *b);
    et_tensor *(*sum_last)(et_tensor *x);
    et_tensor *(*mean_last)(et_tensor *x);
    et_tensor *(*embedding)(et_tensor *w, et_tensor *ids);
    et_tensor *(*rmsnorm)(et_tensor *x, et_tensor *w, double eps);
    et_tensor *(*layernorm)(et_tensor *x, et_tensor *w, et_tensor *b, double eps);
    et_tensor *(*rope)(et_tensor *x, et_tensor *pos, et_tensor *inv_freq);
    et_tensor *(*softmax)(et_tensor *x);
    et_tensor *(*attention)(et_tensor *q, et_tensor *k, et_tensor *v, et_tensor *key_mask,
                            bool causal, double scale);
    et_tensor *(*silu)(et_tensor *x);
    et_tensor *(*gelu)(et_tensor *x);
    et_tensor *(*quick_gelu)(et_tensor *x);
    et_tensor *(*relu)(et_tensor *x);
    et_tensor *(*swiglu)(et_tensor *gate, et_tensor *up);
    et_tensor *(*cross_entropy)(et_tensor *logits, et_tensor *targets, int ignore_index);
    et_tensor *(*concat)(int n, et_tensor *const *ts, int dim);
    et_tensor *(*narrow)(et_tensor *x, int dim, int64_t start, int64_t len);
    et_tensor *(*permute)(et_tensor *x, int ndim, const int *perm);
    et_tensor *(*resize_bilinear)(et_tensor *x, int64_t Ho, int64_t Wo);
    et_tensor *(*gather_rows)(et_tensor *x, et_tensor *idx);
    et_tensor *(*scatter_rows)(et_tensor *base, et_tensor *idx, et_tensor *src);
    et_tensor *(*mean_pool)(et_tensor *x, et_tensor *mask);
    et_tensor *(*avg_pool2d)(et_tensor *x, int k, int stride);
    et_tensor *(*patch_embed)(et_tensor *img, et_tensor *w, et_tensor *b);
    et_tensor *(*bilinear_sample)(et_tensor *feat, et_tensor *pts);
    et_tensor *(*dropout)(et_tensor *x, double p, uint64_t seed, uint64_t offset);
    et_tensor *(*cast)(et_tensor *x, et_dtype dt);
    // ---- fused ops (optional: NULL = the caller composes the plain ops) ----
    // x + res and its norm in one pass (core/ops.h et_add_rmsnorm / et_add_layernorm):
    // returns the normed tensor and sets *sum = x + res (a new reference).
    et_tensor *(*add_rmsnorm)(et_tensor *x, et_tensor *res, et_tensor *w, double eps,
                              et_tensor **sum);
    et_tensor *(*add_layernorm)(et_tensor *x, et_tensor *res, et_tensor *w, et_tensor *b,
                                double eps, et_tensor **sum);
    // LoRA linear (train/models/nn.c): y = x W^T (+ b) + s (xl A^T) B^T as one tape node; xl is the
    // dropped-out input of the branch, or NULL when the branch reads x itself.
    et_tensor *(*lora_linear)(et_tensor *x, et_tensor *w, et_tensor *b, et_tensor *a, et_tensor *bb,
                              et_tensor *xl, double s);
} et_backend;

// The backend of a device type, or NULL (ET_CPU always NULL: the CPU is built in).
const et_backend *et_backend_get(et_device_type type);
// Like et_backend_get, but aborts when the backend is missing (a tensor on a device this
// build cannot drive is a programmer error).
const et_backend *et_backend_ops(et_device_type type, const char *what);
void et_backend_register(et_device_type type, const et_backend *b);
// Offers a lazy initialiser for a device type (called before main, from a constructor);
// core calls it once, on the first et_backend_get, and it may call et_backend_register.
void et_backend_provide(et_device_type type, void (*init)(void));
// Number of usable devices of a type (1 for ET_CPU; 0 when the backend is absent).
int et_device_count(et_device_type type);
void et_device_sync(et_device dev);  // no-op on the CPU
// A copy of t (same dtype, no autograd) on dev; a new reference.
et_tensor *et_to_device(const et_tensor *t, et_device dev);

// The first of the n tensors (NULL entries allowed) that is not on the CPU, or NULL.
static inline et_tensor *et_on_device(int n, et_tensor *const *ts) {
    for (int i = 0; i < n; i++)
        if (ts[i] && ts[i]->device.type != ET_CPU) return ts[i];
    return NULL;
}
#define ET_ON_DEVICE(...)                                                           \
    et_on_device((int)(sizeof((et_tensor *[]){__VA_ARGS__}) / sizeof(et_tensor *)), \
                 (et_tensor *[]){__VA_ARGS__})

#define ET_DISPATCH(t, name, ...)                                                     \
    do {                                                                              \
        const et_tensor *dt_ = (t);                                                   \
        if (dt_ && dt_->device.type != ET_CPU) {                                      \
            const et_backend *be_ = et_backend_ops(dt_->device.type, #name);          \
            ET_ASSERT(be_->name, "op %s is not implemented on device type %d", #name, \
                      (int)dt_->device.type);                                         \
            return be_->name(__VA_ARGS__);                                            \
        }                                                                             \
    } while (0)

#endif
