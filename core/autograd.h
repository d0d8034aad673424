// core/autograd.h - the dynamic tape.
// defines: et_node, et_backward, et_backward_grads, et_grad_enabled, et_set_grad_enabled,
//          et_no_grad_begin/end, et_record, et_tape_clear, et_checkpoint, et_zero_grad
//
// How it works
// - Every op that runs with grad mode on and has an input with requires_grad records a
//   node on the current thread's tape: its backward function, the tensors it saved,
//   where each input's gradient goes (another node, or a leaf's .grad), and which
//   inputs need one. Inputs that do not (frozen weights, data) are flagged, and the
//   backward function skips their work entirely (no dW GEMM for a frozen weight).
// - et_backward(loss) seeds d(loss)=1 and walks the tape newest to oldest. A node
//   whose output gradient never arrived is skipped. After a node runs, its saved
//   tensors and its output gradient are released at once. Leaf gradients accumulate
//   into leaf->grad across calls until et_zero_grad. The whole tape is freed at the end.
// - Devices: gradients are accumulated on the device of the tensor they belong to, through
//   the backend table (core/device.h add_into) for non-CPU devices. A gradient that an op
//   returns on another device (a CPU input taken into a GPU op) is moved first; a leaf's
//   .grad always lives on the leaf's device.
// - Grad mode is per thread; et_no_grad_begin/end nest.
// - Block recompute (activation checkpointing): et_checkpoint(fn, ctx, inputs) runs fn
//   without recording, keeps only the inputs, and in backward runs fn again with
//   recording on a nested tape and back-propagates through it.
#ifndef ET_AUTOGRAD_H
#define ET_AUTOGRAD_H

#include "tensor.h"

#define ET_NODE_MAX_INPUTS 8
#define ET_NODE_MAX_SAVED 8

typedef struct et_node et_node;
// Computes input gradients from gy (same shape/dtype as the node's output).
// gx[i] is NULL on entry; the function sets gx[i] to a NEW tensor of input i's shape
// for every i with node->needs[i] (and must not compute it otherwise).
typedef void (*et_backward_fn)(et_node *node, const et_tensor *gy, et_tensor **gx);

struct et_node {
    const char *name;  // op name, for errors and debugging
    et_backward_fn backward;
    int n_inputs;
    bool needs[ET_NODE_MAX_INPUTS];          // input i wants a gradient
    et_node *in_node[ET_NODE_MAX_INPUTS];    // producer of input i (non-leaf)
    et_tensor *in_leaf[ET_NODE_MAX_INPUTS];  // or the leaf itself (retained)
    et_dtype in_dtype[ET_NODE_MAX_INPUTS];   // input metadata for gradient buffers
    int in_ndim[ET_NODE_MAX_INPUTS];
    int64_t in_shape[ET_NODE_MAX_INPUTS][ET_MAX_DIMS];
    et_tensor *saved[ET_NODE_MAX_SAVED];  // retained until the node's backward ran
    double f[8];                          // scalar arguments of the op
    int64_t i[8];
    void *ctx;  // op-specific payload, freed with ctx_free
    void (*ctx_free)(void *ctx);
    et_tensor *grad;       // accumulated gradient of the output (owned)
    et_tensor *out;        // weak link to the output tensor
    et_device out_device;  // where the output (and so its gradient) lives
    int64_t seq;           // position on the tape
};

bool et_grad_enabled(void);
void et_set_grad_enabled(bool on);
// Scoped: et_no_grad_begin(); ...; et_no_grad_end(); (nestable, per thread)
void et_no_grad_begin(void);
void et_no_grad_end(void);

// True when an op with these inputs must record a node (grad mode on and some input
// requires grad). NULL entries are ignored.
bool et_should_record(int n, et_tensor *const *inputs);
// Records a node producing `out` from inputs (NULL inputs allowed: they take no grad).
// Marks out->requires_grad. Returns the node so the op can save tensors and scalars.
et_node *et_record(const char *name, et_backward_fn fn, et_tensor *out, int n,
                   et_tensor *const *inputs);
// Saves t in slot k (retained until the node's backward ran or the tape is cleared).
void et_node_save(et_node *node, int k, et_tensor *t);

// Back-propagate d(loss)=1 from a scalar (numel 1) loss, then free the tape.
void et_backward(et_tensor *loss);
// General form: back-propagate the given output gradients (shapes equal to outputs).
void et_backward_grads(int n, et_tensor *const *outputs, et_tensor *const *grads);
// Free every node on the current tape without running backward (e.g. after an eval
// forward that ran with grad mode on).
void et_tape_clear(void);
int64_t et_tape_size(void);
// Release and clear leaf gradients.
void et_zero_grad(int n, et_tensor *const *params);

// Block recompute. fn computes one output from n inputs (and whatever parameters ctx
// holds); it must be deterministic (seeded dropout is). Returns a new reference.
typedef et_tensor *(*et_block_fn)(void *ctx, int n, et_tensor *const *inputs);
et_tensor *et_checkpoint(et_block_fn fn, void *ctx, int n, et_tensor *const *inputs);

// Adds src into *acc (allocating a copy when *acc is NULL). Used by the engine and by
// backward functions that accumulate.
void et_accumulate(et_tensor **acc, const et_tensor *src);

#endif
