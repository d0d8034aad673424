// core/autograd.c - see autograd.h
#include "autograd.h"

#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "status.h"

#define MAX_TAPE_DEPTH 16

typedef struct {
    et_node **nodes;
    int64_t n, cap;
} tape;

static _Thread_local tape t_tapes[MAX_TAPE_DEPTH];
static _Thread_local int t_depth;      // index of the current tape
static _Thread_local int t_no_grad;    // nesting count of no-grad scopes
static _Thread_local bool t_grad_off;  // et_set_grad_enabled(false)

bool et_grad_enabled(void) { return t_no_grad == 0 && !t_grad_off; }
void et_set_grad_enabled(bool on) { t_grad_off = !on; }
void et_no_grad_begin(void) { t_no_grad++; }
void et_no_grad_end(void) {
    ET_ASSERT(t_no_grad > 0, "et_no_grad_end without a matching et_no_grad_begin");
    t_no_grad--;
}

bool et_should_record(int n, et_tensor *const *inputs) {
    if (!et_grad_enabled()) return false;
    for (int i = 0; i < n; i++)
        if (inputs[i] && inputs[i]->requires_grad) return true;
    return false;
}

static void tape_push_node(et_node *node) {
    tape *tp = &t_tapes[t_depth];
    if (tp->n == tp->cap) {
        tp->cap = tp->cap ? tp->cap * 2 : 256;
        tp->nodes = realloc(tp->nodes, (size_t)tp->cap * sizeof(*tp->nodes));
        ET_ASSERT(tp->nodes, "out of host memory growing the autograd tape");
    }
    node->seq = tp->n;
    tp->nodes[tp->n++] = node;
}

et_node *et_record(const char *name, et_backward_fn fn, et_tensor *out, int n,
                   et_tensor *const *inputs) {
    ET_ASSERT(n <= ET_NODE_MAX_INPUTS, "op %s has %d inputs (max %d)", name, n, ET_NODE_MAX_INPUTS);
    ET_ASSERT(!out->grad_fn, "op %s: output already has a grad_fn", name);
    et_node *node = calloc(1, sizeof(*node));
    ET_ASSERT(node, "out of host memory recording op %s", name);
    node->name = name;
    node->backward = fn;
    node->n_inputs = n;
    for (int i = 0; i < n; i++) {
        et_tensor *x = inputs[i];
        if (!x) continue;
        node->in_dtype[i] = x->dtype;
        node->in_ndim[i] = x->ndim;
        memcpy(node->in_shape[i], x->shape, sizeof(x->shape));
        if (!x->requires_grad) continue;
        node->needs[i] = true;
        if (x->grad_fn)
            node->in_node[i] = x->grad_fn;
        else
            node->in_leaf[i] = et_retain(x);
    }
    out->requires_grad = true;
    out->grad_fn = node;
    node->out = out;
    node->out_device = out->device;
    tape_push_node(node);
    return node;
}

void et_node_save(et_node *node, int k, et_tensor *t) {
    ET_ASSERT(k >= 0 && k < ET_NODE_MAX_SAVED, "save slot %d out of range", k);
    et_release(node->saved[k]);
    node->saved[k] = et_retain(t);
}

static void node_free(et_node *node) {
    for (int k = 0; k < ET_NODE_MAX_SAVED; k++) et_release(node->saved[k]);
    for (int i = 0; i < node->n_inputs; i++) et_release(node->in_leaf[i]);
    et_release(node->grad);
    if (node->ctx_free) node->ctx_free(node->ctx);
    if (node->out) node->out->grad_fn = NULL;
    free(node);
}

static bool same_device(et_device a, et_device b) { return a.type == b.type && a.index == b.index; }

// In-place dst += src over numel elements (same dtype or halves through f32). CPU tensors
// add here; any other device goes through its backend's add_into (which also takes a src
// on another device).
static void add_into(et_tensor *dst, const et_tensor *src) {
    if (dst->device.type != ET_CPU || src->device.type != ET_CPU) {
        if (dst->device.type == ET_CPU) {  // a device gradient for a CPU accumulator
            et_tensor *h = et_empty(src->dtype, src->ndim, src->shape);
            et_copy_(h, src);
            add_into(dst, h);
            et_release(h);
            return;
        }
        et_backend_ops(dst->device.type, "gradient accumulation")->add_into(dst, src);
        return;
    }
    int64_t n = dst->numel;
    if (dst->dtype == ET_F32 && src->dtype == ET_F32) {
        float *d = et_data(dst);
        const float *s = et_data(src);
#pragma omp parallel for simd if (n > 65536)
        for (int64_t i = 0; i < n; i++) d[i] += s[i];
    } else if (dst->dtype == ET_F64 && src->dtype == ET_F64) {
        double *d = et_data(dst);
        const double *s = et_data(src);
        for (int64_t i = 0; i < n; i++) d[i] += s[i];
    } else {
        for (int64_t i = 0; i < n; i++) et_set(dst, i, et_get(dst, i) + et_get(src, i));
    }
}

// g (owned) moved to dev when it lives elsewhere (an op that took a CPU input into a GPU
// computation returns that input's gradient on the GPU). Returns the tensor to use.
static et_tensor *to_device_take(et_tensor *g, et_device dev) {
    if (same_device(g->device, dev)) return g;
    et_tensor *c = et_to_device(g, dev);
    et_release(g);
    return c;
}

// Backward functions may return views that share storage with their gy (e.g. add);
// before accumulating in place, an accumulator that shares storage is copied.
static void make_exclusive(et_tensor **acc) {
    if (atomic_load(&(*acc)->refcount) == 1 && atomic_load(&(*acc)->storage->refcount) == 1) return;
    et_tensor *c = et_clone(*acc);
    et_release(*acc);
    *acc = c;
}

void et_accumulate(et_tensor **acc, const et_tensor *src) {
    if (!*acc) {
        *acc = et_clone(src);
        return;
    }
    ET_ASSERT((*acc)->numel == src->numel, "gradient accumulation: %lld vs %lld elements",
              (long long)(*acc)->numel, (long long)src->numel);
    make_exclusive(acc);
    add_into(*acc, src);
}

// Takes ownership of g.
static void accumulate_take(et_tensor **acc, et_tensor *g) {
    if (!*acc) {
        *acc = g;
        return;
    }
    make_exclusive(acc);
    add_into(*acc, g);
    et_release(g);
}

static void accumulate_leaf(et_tensor *leaf, et_tensor *g) {
    g = to_device_take(g, leaf->device);  // a leaf's grad lives on the leaf's device
    // Leaf gradients of half-precision parameters are kept in f32.
    if ((leaf->dtype == ET_BF16 || leaf->dtype == ET_F16) && g->dtype != ET_F32) {
        et_tensor *g32 = et_empty_on(g->device, ET_F32, g->ndim, g->shape);
        et_copy_(g32, g);
        et_release(g);
        g = g32;
    }
    if (g->ndim != leaf->ndim || !et_same_shape(g, leaf)) {  // keep the leaf's shape
        et_tensor *v = et_view_raw(g, leaf->ndim, leaf->shape, 0);
        et_release(g);
        g = v;
    }
    accumulate_take(&leaf->grad, g);
}

static void tape_free_all(tape *tp) {
    for (int64_t k = tp->n - 1; k >= 0; k--) node_free(tp->nodes[k]);
    tp->n = 0;
}

void et_backward_grads(int n, et_tensor *const *outputs, et_tensor *const *grads) {
    tape *tp = &t_tapes[t_depth];
    for (int i = 0; i < n; i++) {
        et_tensor *y = outputs[i];
        ET_ASSERT(y->numel == grads[i]->numel,
                  "et_backward: gradient of %lld elements for an "
                  "output of %lld",
                  (long long)grads[i]->numel, (long long)y->numel);
        if (y->grad_fn) {
            et_tensor *g = et_clone(grads[i]);
            accumulate_take(&y->grad_fn->grad, to_device_take(g, y->grad_fn->out_device));
        } else if (y->requires_grad) {
            accumulate_leaf(y, et_clone(grads[i]));
        }
    }
    for (int64_t k = tp->n - 1; k >= 0; k--) {
        et_node *node = tp->nodes[k];
        if (node->grad) {
            et_tensor *gx[ET_NODE_MAX_INPUTS] = {0};
            node->backward(node, node->grad, gx);
            for (int i = 0; i < node->n_inputs; i++) {
                if (!gx[i]) {
                    ET_ASSERT(!node->needs[i], "op %s: backward produced no gradient for input %d",
                              node->name, i);
                    continue;
                }
                ET_ASSERT(node->needs[i], "op %s: backward computed an unneeded gradient %d",
                          node->name, i);
                if (node->in_node[i])
                    accumulate_take(&node->in_node[i]->grad,
                                    to_device_take(gx[i], node->in_node[i]->out_device));
                else
                    accumulate_leaf(node->in_leaf[i], gx[i]);
            }
        }
        node_free(node);  // saved tensors and the output gradient go now
        tp->nodes[k] = NULL;
    }
    tp->n = 0;
}

void et_backward(et_tensor *loss) {
    ET_ASSERT(loss->numel == 1, "et_backward: the loss must have one element (has %lld)",
              (long long)loss->numel);
    et_tensor *one = et_empty_on(loss->device, loss->dtype, loss->ndim, loss->shape);
    et_fill_(one, 1.0);
    et_backward_grads(1, &loss, &one);
    et_release(one);
}

void et_tape_clear(void) { tape_free_all(&t_tapes[t_depth]); }
int64_t et_tape_size(void) { return t_tapes[t_depth].n; }

void et_zero_grad(int n, et_tensor *const *params) {
    for (int i = 0; i < n; i++) {
        et_release(params[i]->grad);
        params[i]->grad = NULL;
    }
}

// ---- block recompute ----

typedef struct {
    et_block_fn fn;
    void *user;
} ckpt_ctx;

static void checkpoint_backward(et_node *node, const et_tensor *gy, et_tensor **gx) {
    ckpt_ctx *c = node->ctx;
    ET_ASSERT(t_depth + 1 < MAX_TAPE_DEPTH, "block recompute nested deeper than %d",
              MAX_TAPE_DEPTH);
    t_depth++;
    int saved_no_grad = t_no_grad;
    bool saved_off = t_grad_off;
    t_no_grad = 0;
    t_grad_off = false;
    et_tensor *xs[ET_NODE_MAX_INPUTS] = {0};
    for (int i = 0; i < node->n_inputs; i++) {
        if (!node->saved[i]) continue;
        xs[i] = et_detach(node->saved[i]);
        xs[i]->requires_grad = node->needs[i];
    }
    et_tensor *y = c->fn(c->user, node->n_inputs, xs);
    et_tensor *g = (et_tensor *)gy;
    et_backward_grads(1, &y, &g);
    for (int i = 0; i < node->n_inputs; i++) {
        if (!node->needs[i]) continue;
        gx[i] = xs[i]->grad ? et_retain(xs[i]->grad) : et_zeros_like(xs[i]);
    }
    et_release(y);
    for (int i = 0; i < node->n_inputs; i++) et_release(xs[i]);
    t_no_grad = saved_no_grad;
    t_grad_off = saved_off;
    t_depth--;
}

et_tensor *et_checkpoint(et_block_fn fn, void *ctx, int n, et_tensor *const *inputs) {
    ET_ASSERT(n <= ET_NODE_MAX_SAVED, "et_checkpoint: at most %d inputs", ET_NODE_MAX_SAVED);
    if (!et_grad_enabled()) return fn(ctx, n, inputs);
    et_no_grad_begin();
    et_tensor *y = fn(ctx, n, inputs);
    et_no_grad_end();
    et_node *node = et_record("checkpoint", checkpoint_backward, y, n, inputs);
    for (int i = 0; i < n; i++) et_node_save(node, i, inputs[i]);
    ckpt_ctx *c = malloc(sizeof(*c));
    ET_ASSERT(c, "out of host memory");
    c->fn = fn;
    c->user = ctx;
    node->ctx = c;
    node->ctx_free = free;
    return y;
}
