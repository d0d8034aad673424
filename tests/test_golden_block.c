// tests/test_golden_block.c - one LLaMA decoder block against PyTorch
// (tests/golden/block.safetensors, written by tools/golden/gen_block.py).
//
// The block is built from emotune ops exactly as HF LlamaDecoderLayer computes it:
//   n1 = rmsnorm(x); q,k,v = linear(n1) viewed [B,T,H,hd]; rope(q), rope(k);
//   h = x + o(attention(q, k, v, mask, causal)); n2 = rmsnorm(h);
//   out = h + down(swiglu(gate(n2), up(n2))).
// Config: B=2, T=6, hidden 32, Hq=4, Hkv=2, hd=8, intermediate 48, eps 1e-5, theta 1e4.
// Checks out and the gradients of x and of every weight (<= 1e-5 relative, reference in
// f64), then the same block with the q/k/v/o weights frozen: those get no .grad, the
// other gradients are unchanged, and exactly one GEMM (the dW product) is skipped per
// frozen Linear.
#include <math.h>
#include <stdbool.h>

#include "../core/autograd.h"
#include "../core/ops.h"
#include "../core/safetensors.h"
#include "../core/status.h"
#include "../core/tensor.h"
#include "../kernels/cpu/gemm.h"
#include "test_util.h"

#define TOL 1e-5
#define GOLDEN_PATH "tests/golden/block.safetensors"

enum { B = 2, T = 6, D = 32, HQ = 4, HKV = 2, HD = 8, NI = 48 };

enum { W_IN_NORM, W_Q, W_K, W_V, W_O, W_POST_NORM, W_GATE, W_UP, W_DOWN, N_W };
static const char *const k_wname[N_W] = {
    "input_layernorm.weight",  "self_attn.q_proj.weight", "self_attn.k_proj.weight",
    "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
    "mlp.gate_proj.weight",    "mlp.up_proj.weight",      "mlp.down_proj.weight",
};

static et_st_file *g_st;

static et_tensor *load(const char *name) {
    et_tensor *t = NULL;
    et_status s = et_st_load(g_st, name, &t);
    if (s) {
        fprintf(stderr, "golden fixture: %s (regenerate with tools/golden/gen_block.py)\n",
                et_status_msg(s));
        et_status_free(s);
        exit(1);
    }
    return t;
}

static void compare(const et_tensor *got, const char *ref_name) {
    et_tensor *ref = load(ref_name);
    char b1[96], b2[96];
    CHECK(et_same_shape(got, ref), "%s: shape %s, reference %s", ref_name,
          et_shape_str(got, b1, sizeof b1), et_shape_str(ref, b2, sizeof b2));
    double err = tensor_rel_err(got, ref);
    CHECK(err <= TOL, "%s: relative error %.3g > %.3g", ref_name, err, TOL);
    const char *v = getenv("GOLDEN_VERBOSE");
    if (v && *v && *v != '0') printf("     %-36s rel err %.3g\n", ref_name, err);
    et_release(ref);
}

// x [B,T,D]; w[i] the weights; pos, mask i32 [B,T]; inv_freq [hd/2]. -> out [B,T,D].
static et_tensor *block_forward(et_tensor *x, et_tensor *const *w, et_tensor *pos, et_tensor *mask,
                                et_tensor *inv_freq) {
    const int64_t shq[4] = {B, T, HQ, HD}, shkv[4] = {B, T, HKV, HD}, sh3[3] = {B, T, HQ * HD};
    et_tensor *n1 = et_rmsnorm(x, w[W_IN_NORM], 1e-5);
    et_tensor *q = et_linear(n1, w[W_Q], NULL);  // [B,T,Hq*hd]
    et_tensor *k = et_linear(n1, w[W_K], NULL);  // [B,T,Hkv*hd]
    et_tensor *v = et_linear(n1, w[W_V], NULL);
    et_release(n1);
    et_tensor *q4 = et_reshape(q, 4, shq), *k4 = et_reshape(k, 4, shkv),
              *v4 = et_reshape(v, 4, shkv);
    et_release(q);
    et_release(k);
    et_release(v);
    et_tensor *qr = et_rope(q4, pos, inv_freq), *kr = et_rope(k4, pos, inv_freq);
    et_release(q4);
    et_release(k4);
    et_tensor *a = et_attention(qr, kr, v4, mask, true, 1.0 / sqrt((double)HD));  // [B,T,Hq,hd]
    et_release(qr);
    et_release(kr);
    et_release(v4);
    et_tensor *a3 = et_reshape(a, 3, sh3);
    et_release(a);
    et_tensor *o = et_linear(a3, w[W_O], NULL);
    et_release(a3);
    et_tensor *h = et_add(x, o);
    et_release(o);
    et_tensor *n2 = et_rmsnorm(h, w[W_POST_NORM], 1e-5);
    et_tensor *g = et_linear(n2, w[W_GATE], NULL);  // [B,T,I]
    et_tensor *u = et_linear(n2, w[W_UP], NULL);
    et_release(n2);
    et_tensor *m = et_swiglu(g, u);
    et_release(g);
    et_release(u);
    et_tensor *dn = et_linear(m, w[W_DOWN], NULL);  // [B,T,D]
    et_release(m);
    et_tensor *out = et_add(h, dn);
    et_release(h);
    et_release(dn);
    return out;
}

// One forward + backward from freshly loaded tensors. freeze_attn: q/k/v/o weights do not
// require grad. Compares out and every gradient; returns the GEMM calls it made.
static uint64_t run_block(bool freeze_attn) {
    et_tensor *x = load("x"), *pos = load("pos"), *mask = load("mask"), *gy = load("gy");
    et_tensor *w[N_W];
    for (int i = 0; i < N_W; i++) {
        w[i] = load(k_wname[i]);
        bool frozen = freeze_attn && i >= W_Q && i <= W_O;
        et_set_requires_grad(w[i], !frozen);
    }
    et_set_requires_grad(x, true);
    et_tensor *inv = et_rope_inv_freq(HD, 10000.0);

    k_gemm_calls_reset();
    et_tensor *out = block_forward(x, w, pos, mask, inv);
    et_backward_grads(1, &out, &gy);
    uint64_t calls = k_gemm_calls();

    compare(out, "out");
    CHECK(x->grad != NULL, "x got no gradient");
    if (x->grad) compare(x->grad, "grad/x");
    for (int i = 0; i < N_W; i++) {
        char name[96];
        snprintf(name, sizeof name, "grad/%s", k_wname[i]);
        if (freeze_attn && i >= W_Q && i <= W_O) {
            CHECK(w[i]->grad == NULL, "frozen %s got a gradient", k_wname[i]);
        } else {
            CHECK(w[i]->grad != NULL, "%s got no gradient", k_wname[i]);
            if (w[i]->grad) compare(w[i]->grad, name);
        }
    }
    et_release(out);
    et_release(inv);
    for (int i = 0; i < N_W; i++) et_release(w[i]);
    et_release(x);
    et_release(pos);
    et_release(mask);
    et_release(gy);
    return calls;
}

static void block_forward_backward(void) { run_block(false); }

static void block_frozen_attention(void) {
    uint64_t full = run_block(false);
    uint64_t frozen = run_block(true);
    printf("     GEMM calls: all trainable %llu, q/k/v/o frozen %llu\n", (unsigned long long)full,
           (unsigned long long)frozen);
    CHECK(full == frozen + 4,
          "expected exactly one dW GEMM skipped per frozen Linear (4): "
          "%llu vs %llu",
          (unsigned long long)full, (unsigned long long)frozen);
}

int main(void) {
    et_status s = et_st_open(GOLDEN_PATH, &g_st);
    if (s) {  // not started from the repo root: try the source dir
        et_status_free(s);
        s = et_st_open(EMOTUNE_SOURCE_DIR "/" GOLDEN_PATH, &g_st);
    }
    if (s) {
        fprintf(stderr, "cannot open the golden fixture: %s\n", et_status_msg(s));
        et_status_free(s);
        return 1;
    }
    RUN(block_forward_backward);
    RUN(block_frozen_attention);
    et_st_close(g_st);
    return test_summary();
}
