// kernels/cuda/attention_cudnn.cu - cuDNN fused attention (forward and backward) through the
// backend graph API of cuDNN 9 (C descriptors only; no frontend).
//
// The graphs are the fused-flash-attention patterns of cuDNN's runtime fusion engine, on
// [B, T, H, hd] bf16 tensors described as strided (b, h, s, d) views:
//   forward:  S = Q K^T (f32), S *= scale, [padding mask], [causal mask], softmax with
//             Stats = max + log(sum exp) (f32 [B, H, T, 1] = our lse), O = bf16(P) V.
//   backward: softmax_sum = rowsum(dO o O), P = exp(scale Q K^T - Stats) (masked),
//             dV = P^T dO, dS = P (dO V^T - softmax_sum) scale, dK = dS^T Q,
//             dQ = dS K through an f32 accumulator (workspace), copied to bf16.
// Masks: padding through per-sample lengths (GEN_INDEX < seq_len, BINARY_SELECT -inf), causal
// with the top-left diagonal (row >= col; callers use it only for T == S). GQA: K/V carry
// Hkv heads (the matmul broadcasts), the backward reduces the full-head dK/dV over groups.
// Plans are built once per (shape, flags) and cached; building failures are not fatal: the
// plan is marked unsupported with the failing step and cuDNN's message (kc_cudnn_attn_why),
// and the op layer falls back to the flash kernels.
#include <mutex>
#include <string>
#include <vector>

#include "cuda_common.cuh"

#if __has_include(<cudnn.h>)
#include <cudnn.h>
#define ET_HAVE_CUDNN 1
#endif

#ifndef ET_HAVE_CUDNN

extern "C" bool kc_cudnn_attention_available(void) { return false; }
extern "C" const char *kc_cudnn_attn_why(void) { return "built without cudnn.h"; }
extern "C" int64_t kc_cudnn_attn_prepare(bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                         bool, bool) {
    return -1;
}
extern "C" void kc_cudnn_attn_fwd(const void *, const void *, const void *, void *, float *,
                                  const int32_t *, void *, int64_t, int64_t, int64_t, int64_t,
                                  int64_t, int64_t, bool, float) {
    et_cuda_fail("cuDNN attention", "built without cuDNN", __FILE__, __LINE__);
}
extern "C" void kc_cudnn_attn_bwd(const void *, const void *, const void *, const void *,
                                  const float *, const void *, void *, void *, void *,
                                  const int32_t *, void *, int64_t, int64_t, int64_t, int64_t,
                                  int64_t, int64_t, bool, float) {
    et_cuda_fail("cuDNN attention", "built without cuDNN", __FILE__, __LINE__);
}

#else

namespace {

typedef cudnnBackendDescriptor_t Desc;

enum : int64_t {
    U_Q = 1,
    U_K,
    U_V,
    U_O,
    U_STATS,
    U_SCALE,
    U_SEQQ,
    U_SEQKV,
    U_NEGINF,
    U_DO,
    U_DQ,
    U_DK,
    U_DV,
    U_SSUM,
    U_DQACC,
    U_ONE,
    U_VIRTUAL = 100
};

// Collects descriptors; the first failing call records where and why, later calls are no-ops.
struct Graph {
    std::vector<Desc> all;
    cudnnStatus_t st = CUDNN_STATUS_SUCCESS;
    std::string why;
    int64_t next_uid = U_VIRTUAL;

    ~Graph() {
        for (size_t i = all.size(); i-- > 0;) cudnnBackendDestroyDescriptor(all[i]);
    }
    void fail(cudnnStatus_t s, const char *what) {
        if (st != CUDNN_STATUS_SUCCESS) return;
        st = s;
        char last[512] = "";
        cudnnGetLastErrorString(last, sizeof last);
        why = std::string(what) + ": " + cudnnGetErrorString(s) + (last[0] ? " (" : "") + last +
              (last[0] ? ")" : "");
    }
    bool ok() const { return st == CUDNN_STATUS_SUCCESS; }
    Desc create(cudnnBackendDescriptorType_t t, const char *what) {
        Desc d = nullptr;
        if (!ok()) return nullptr;
        cudnnStatus_t s = cudnnBackendCreateDescriptor(t, &d);
        if (s != CUDNN_STATUS_SUCCESS) {
            fail(s, what);
            return nullptr;
        }
        all.push_back(d);
        return d;
    }
    void set(Desc d, cudnnBackendAttributeName_t n, cudnnBackendAttributeType_t t, int64_t cnt,
             const void *v, const char *what) {
        if (!ok()) return;
        cudnnStatus_t s = cudnnBackendSetAttribute(d, n, t, cnt, v);
        if (s != CUDNN_STATUS_SUCCESS) fail(s, what);
    }
    void link(Desc d, cudnnBackendAttributeName_t n, Desc v, const char *what) {
        set(d, n, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &v, what);
    }
    void finalize(Desc d, const char *what) {
        if (!ok()) return;
        cudnnStatus_t s = cudnnBackendFinalize(d);
        if (s != CUDNN_STATUS_SUCCESS) fail(s, what);
    }

    Desc tensor(int64_t uid, cudnnDataType_t dt, const int64_t dims[4], const int64_t strides[4],
                bool virt, bool by_value, const char *what) {
        Desc d = create(CUDNN_BACKEND_TENSOR_DESCRIPTOR, what);
        int64_t align = 16;
        set(d, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, what);
        set(d, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt, what);
        set(d, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims, what);
        set(d, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides, what);
        set(d, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align, what);
        set(d, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &virt, what);
        if (by_value) set(d, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value, what);
        finalize(d, what);
        return d;
    }
    // A virtual tensor with packed strides over dims (or the given strides).
    Desc virt(cudnnDataType_t dt, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
              const int64_t *strides = nullptr) {
        int64_t dims[4] = {d0, d1, d2, d3}, st4[4] = {d1 * d2 * d3, d2 * d3, d3, 1};
        return tensor(next_uid++, dt, dims, strides ? strides : st4, true, false, "virtual tensor");
    }
    Desc scalar(int64_t uid, cudnnDataType_t dt, const char *what) {
        int64_t one[4] = {1, 1, 1, 1};
        return tensor(uid, dt, one, one, false, true, what);
    }

    // y = op(x[, b][, t]); math precision mp; axis >= 0 for GEN_INDEX.
    void pw(cudnnPointwiseMode_t mode, cudnnDataType_t mp, Desc x, Desc b, Desc t, Desc y,
            const char *what, int64_t axis = -1) {
        Desc p = create(CUDNN_BACKEND_POINTWISE_DESCRIPTOR, what);
        set(p, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, what);
        set(p, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &mp, what);
        if (axis >= 0) set(p, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis, what);
        finalize(p, what);
        Desc op = create(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, what);
        link(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, p, what);
        link(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x, what);
        if (b) link(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, b, what);
        if (t) link(op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, t, what);
        link(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y, what);
        finalize(op, what);
        ops.push_back(op);
    }
    void matmul(Desc a, Desc b, Desc c, Desc m_ovr, Desc n_ovr, Desc k_ovr, const char *what) {
        cudnnDataType_t ct = CUDNN_DATA_FLOAT;
        Desc m = create(CUDNN_BACKEND_MATMUL_DESCRIPTOR, what);
        set(m, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &ct, what);
        finalize(m, what);
        Desc op = create(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, what);
        link(op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, a, what);
        link(op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, b, what);
        link(op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, c, what);
        link(op, CUDNN_ATTR_OPERATION_MATMUL_DESC, m, what);
        if (m_ovr) link(op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_M_OVERRIDE_DESC, m_ovr, what);
        if (n_ovr) link(op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_N_OVERRIDE_DESC, n_ovr, what);
        if (k_ovr) link(op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_K_OVERRIDE_DESC, k_ovr, what);
        finalize(op, what);
        ops.push_back(op);
    }
    void reduce(cudnnReduceTensorOp_t rop, Desc x, Desc y, const char *what) {
        cudnnDataType_t ct = CUDNN_DATA_FLOAT;
        Desc r = create(CUDNN_BACKEND_REDUCTION_DESCRIPTOR, what);
        set(r, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &rop, what);
        set(r, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &ct, what);
        finalize(r, what);
        Desc op = create(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, what);
        link(op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x, what);
        link(op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y, what);
        link(op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, r, what);
        finalize(op, what);
        ops.push_back(op);
    }
    void reshape(Desc x, Desc y, const char *what) {
        Desc op = create(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR, what);
        link(op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, x, what);
        link(op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, y, what);
        finalize(op, what);
        ops.push_back(op);
    }

    std::vector<Desc> ops;
};

struct Key {
    bool fwd, causal, padded;
    int64_t B, T, S, Hq, Hkv, hd;
    int dev;
    bool operator==(const Key &o) const {
        return fwd == o.fwd && causal == o.causal && padded == o.padded && B == o.B && T == o.T &&
               S == o.S && Hq == o.Hq && Hkv == o.Hkv && hd == o.hd && dev == o.dev;
    }
};

struct Plan {
    Key key;
    Graph *g = nullptr;  // owns every descriptor of the graph and the plan
    Desc plan = nullptr;
    int64_t plan_ws = 0, total_ws = 0;  // total = plan + (backward) softmax_sum + dQ accumulator
    std::string why;                    // empty when the plan is usable
};

std::mutex g_mu;
std::vector<Plan *> g_plans;
cudnnHandle_t g_handle[64];
int g_avail[64];  // 0 unknown, 1 yes, -1 no
thread_local std::string g_why;

const cudnnDataType_t F32 = CUDNN_DATA_FLOAT, BF = CUDNN_DATA_BFLOAT16, I32 = CUDNN_DATA_INT32,
                      BOOL = CUDNN_DATA_BOOLEAN;

// Causal (row >= col) and padding (row < seq_q && col < seq_kv) masks on s -> returned tensor.
Desc masks(Graph &g, Desc s, const Key &k, Desc seqq, Desc seqkv, Desc neginf) {
    int64_t B = k.B, H = k.Hq, T = k.T, S = k.S;
    if (k.padded) {
        Desc r = g.virt(I32, B, H, T, S), c = g.virt(I32, B, H, T, S);
        g.pw(CUDNN_POINTWISE_GEN_INDEX, I32, s, nullptr, nullptr, r, "padding: row index", 2);
        g.pw(CUDNN_POINTWISE_GEN_INDEX, I32, s, nullptr, nullptr, c, "padding: col index", 3);
        Desc rm = g.virt(BOOL, B, H, T, S), cm = g.virt(BOOL, B, H, T, S);
        g.pw(CUDNN_POINTWISE_CMP_LT, BOOL, r, seqq, nullptr, rm, "padding: row < seq_len_q");
        g.pw(CUDNN_POINTWISE_CMP_LT, BOOL, c, seqkv, nullptr, cm, "padding: col < seq_len_kv");
        Desc m = g.virt(BOOL, B, H, T, S);
        g.pw(CUDNN_POINTWISE_LOGICAL_AND, BOOL, rm, cm, nullptr, m, "padding: and");
        Desc y = g.virt(F32, B, H, T, S);
        g.pw(CUDNN_POINTWISE_BINARY_SELECT, F32, s, neginf, m, y, "padding: select");
        s = y;
    }
    if (k.causal) {
        Desc r = g.virt(I32, B, H, T, S), c = g.virt(I32, B, H, T, S);
        g.pw(CUDNN_POINTWISE_GEN_INDEX, I32, s, nullptr, nullptr, r, "causal: row index", 2);
        g.pw(CUDNN_POINTWISE_GEN_INDEX, I32, s, nullptr, nullptr, c, "causal: col index", 3);
        Desc m = g.virt(BOOL, B, H, T, S);
        g.pw(CUDNN_POINTWISE_CMP_GE, BOOL, r, c, nullptr, m, "causal: row >= col");
        Desc y = g.virt(F32, B, H, T, S);
        g.pw(CUDNN_POINTWISE_BINARY_SELECT, F32, s, neginf, m, y, "causal: select");
        s = y;
    }
    return s;
}

// [B, T, H, hd] as (b, h, t, d); transposed: (b, h, d, t).
void bshd(int64_t B, int64_t T, int64_t H, int64_t D, bool tr, int64_t dims[4], int64_t st[4]) {
    dims[0] = B, dims[1] = H, st[0] = T * H * D, st[1] = D;
    if (!tr)
        dims[2] = T, dims[3] = D, st[2] = H * D, st[3] = 1;
    else
        dims[2] = D, dims[3] = T, st[2] = 1, st[3] = H * D;
}

void build_fwd(Graph &g, const Key &k) {
    int64_t B = k.B, T = k.T, S = k.S, Hq = k.Hq, Hkv = k.Hkv, D = k.hd, d[4], s[4];
    bshd(B, T, Hq, D, false, d, s);
    Desc q = g.tensor(U_Q, BF, d, s, false, false, "tensor Q");
    Desc o = g.tensor(U_O, BF, d, s, false, false, "tensor O");
    bshd(B, S, Hkv, D, true, d, s);
    Desc kt = g.tensor(U_K, BF, d, s, false, false, "tensor K^T");
    bshd(B, S, Hkv, D, false, d, s);
    Desc v = g.tensor(U_V, BF, d, s, false, false, "tensor V");
    int64_t sd[4] = {B, Hq, T, 1}, ss[4] = {Hq * T, T, 1, 1};
    Desc stats = g.tensor(U_STATS, F32, sd, ss, false, false, "tensor Stats");
    Desc scale = g.scalar(U_SCALE, F32, "scalar scale");
    Desc neginf = g.scalar(U_NEGINF, F32, "scalar -inf");
    Desc seqq = nullptr, seqkv = nullptr;
    if (k.padded) {
        int64_t ld[4] = {B, 1, 1, 1}, ls[4] = {1, 1, 1, 1};
        seqq = g.tensor(U_SEQQ, I32, ld, ls, false, false, "tensor seq_len_q");
        seqkv = g.tensor(U_SEQKV, I32, ld, ls, false, false, "tensor seq_len_kv");
    }
    Desc s1 = g.virt(F32, B, Hq, T, S), s2 = g.virt(F32, B, Hq, T, S);
    g.matmul(q, kt, s1, seqq, seqkv, nullptr, "fwd matmul Q K^T");
    g.pw(CUDNN_POINTWISE_MUL, F32, s1, scale, nullptr, s2, "fwd scale");
    Desc sm = masks(g, s2, k, seqq, seqkv, neginf);
    Desc mx = g.virt(F32, B, Hq, T, 1), sub = g.virt(F32, B, Hq, T, S);
    Desc ex = g.virt(F32, B, Hq, T, S), sum = g.virt(F32, B, Hq, T, 1);
    Desc lg = g.virt(F32, B, Hq, T, 1), p = g.virt(BF, B, Hq, T, S);
    g.reduce(CUDNN_REDUCE_TENSOR_MAX, sm, mx, "softmax max");
    g.pw(CUDNN_POINTWISE_SUB, F32, sm, mx, nullptr, sub, "softmax sub");
    g.pw(CUDNN_POINTWISE_EXP, F32, sub, nullptr, nullptr, ex, "softmax exp");
    g.reduce(CUDNN_REDUCE_TENSOR_ADD, ex, sum, "softmax sum");
    g.pw(CUDNN_POINTWISE_LOG, F32, sum, nullptr, nullptr, lg, "softmax log");
    g.pw(CUDNN_POINTWISE_ADD, F32, mx, lg, nullptr, stats, "softmax stats");
    g.pw(CUDNN_POINTWISE_DIV, F32, ex, sum, nullptr, p, "softmax div");
    g.matmul(p, v, o, seqq, nullptr, seqkv, "fwd matmul P V");
}

void build_bwd(Graph &g, const Key &k) {
    int64_t B = k.B, T = k.T, S = k.S, Hq = k.Hq, Hkv = k.Hkv, D = k.hd, d[4], s[4];
    bshd(B, T, Hq, D, false, d, s);
    Desc q = g.tensor(U_Q, BF, d, s, false, false, "tensor Q");
    Desc o = g.tensor(U_O, BF, d, s, false, false, "tensor O");
    Desc dO = g.tensor(U_DO, BF, d, s, false, false, "tensor dO");
    Desc dQ = g.tensor(U_DQ, BF, d, s, false, false, "tensor dQ");
    bshd(B, S, Hkv, D, true, d, s);
    Desc kt = g.tensor(U_K, BF, d, s, false, false, "tensor K^T");
    Desc vt = g.tensor(U_V, BF, d, s, false, false, "tensor V^T");
    int64_t kd[4], ks[4];
    bshd(B, S, Hkv, D, false, kd, ks);
    Desc dK = g.tensor(U_DK, BF, kd, ks, false, false, "tensor dK");
    Desc dV = g.tensor(U_DV, BF, kd, ks, false, false, "tensor dV");
    int64_t sd[4] = {B, Hq, T, 1}, ss[4] = {Hq * T, T, 1, 1};
    Desc stats = g.tensor(U_STATS, F32, sd, ss, false, false, "tensor Stats");
    Desc ssum = g.tensor(U_SSUM, F32, sd, ss, false, false, "workspace softmax_sum");
    int64_t ad[4] = {B, Hq, T, D}, as[4] = {Hq * T * D, T * D, D, 1};
    Desc dqacc = g.tensor(U_DQACC, F32, ad, as, false, false, "workspace dQ accumulator");
    Desc scale = g.scalar(U_SCALE, F32, "scalar scale");
    Desc neginf = g.scalar(U_NEGINF, F32, "scalar -inf");
    Desc one = g.scalar(U_ONE, F32, "scalar 1");
    Desc seqq = nullptr, seqkv = nullptr;
    if (k.padded) {
        int64_t ld[4] = {B, 1, 1, 1}, ls[4] = {1, 1, 1, 1};
        seqq = g.tensor(U_SEQQ, I32, ld, ls, false, false, "tensor seq_len_q");
        seqkv = g.tensor(U_SEQKV, I32, ld, ls, false, false, "tensor seq_len_kv");
    }
    // softmax_sum = rowsum(dO o O)
    int64_t ts[4] = {Hq * T * D, T * D, Hq * D, 1};
    Desc t1 = g.virt(F32, B, Hq, T, D, ts), t2 = g.virt(F32, B, Hq, T, 1);
    g.pw(CUDNN_POINTWISE_MUL, F32, dO, o, nullptr, t1, "bwd dO * O");
    g.reduce(CUDNN_REDUCE_TENSOR_ADD, t1, t2, "bwd rowsum dO * O");
    g.pw(CUDNN_POINTWISE_MUL, F32, t2, one, nullptr, ssum, "bwd softmax_sum");
    // P = exp(scale Q K^T - Stats), masked
    Desc s1 = g.virt(F32, B, Hq, T, S), s2 = g.virt(F32, B, Hq, T, S),
         s3 = g.virt(F32, B, Hq, T, S);
    g.matmul(q, kt, s1, seqq, seqkv, nullptr, "bwd matmul Q K^T");
    g.pw(CUDNN_POINTWISE_MUL, F32, s1, scale, nullptr, s2, "bwd scale");
    g.pw(CUDNN_POINTWISE_SUB, F32, s2, stats, nullptr, s3, "bwd sub stats");
    Desc sm = masks(g, s3, k, seqq, seqkv, neginf);
    Desc p = g.virt(F32, B, Hq, T, S);
    g.pw(CUDNN_POINTWISE_EXP, F32, sm, nullptr, nullptr, p, "bwd exp");
    int64_t trs[4] = {Hq * T * S, T * S, 1, S};  // (b, h, s, t) view of a (b, h, t, s) matrix
    // dV = P^T dO (GQA: full heads, then summed over each group)
    Desc pt = g.virt(BF, B, Hq, S, T, trs);
    g.reshape(p, pt, "bwd reshape P^T");
    if (Hq == Hkv) {
        g.matmul(pt, dO, dV, seqkv, nullptr, seqq, "bwd matmul P^T dO");
    } else {
        Desc dvf = g.virt(BF, B, Hq, S, D);
        g.matmul(pt, dO, dvf, seqkv, nullptr, seqq, "bwd matmul P^T dO (full heads)");
        g.reduce(CUDNN_REDUCE_TENSOR_ADD, dvf, dV, "bwd dV group sum");
    }
    // dS = P (dO V^T - softmax_sum) scale
    Desc dp = g.virt(F32, B, Hq, T, S), d1 = g.virt(F32, B, Hq, T, S);
    Desc d2 = g.virt(F32, B, Hq, T, S), ds = g.virt(F32, B, Hq, T, S);
    g.matmul(dO, vt, dp, seqq, seqkv, nullptr, "bwd matmul dO V^T");
    g.pw(CUDNN_POINTWISE_SUB, F32, dp, ssum, nullptr, d1, "bwd dP - softmax_sum");
    g.pw(CUDNN_POINTWISE_MUL, F32, d1, p, nullptr, d2, "bwd * P");
    g.pw(CUDNN_POINTWISE_MUL, F32, d2, scale, nullptr, ds, "bwd dS scale");
    // dK = dS^T Q
    Desc dst = g.virt(BF, B, Hq, S, T, trs);
    g.reshape(ds, dst, "bwd reshape dS^T");
    if (Hq == Hkv) {
        g.matmul(dst, q, dK, seqkv, nullptr, seqq, "bwd matmul dS^T Q");
    } else {
        Desc dkf = g.virt(BF, B, Hq, S, D);
        g.matmul(dst, q, dkf, seqkv, nullptr, seqq, "bwd matmul dS^T Q (full heads)");
        g.reduce(CUDNN_REDUCE_TENSOR_ADD, dkf, dK, "bwd dK group sum");
    }
    // dQ = dS K (f32 accumulator in the workspace), then bf16
    Desc kn = g.tensor(g.next_uid++, BF, kd, ks, true, false, "virtual K");
    g.reshape(kt, kn, "bwd reshape K");
    g.matmul(ds, kn, dqacc, seqq, nullptr, seqkv, "bwd matmul dS K");
    g.pw(CUDNN_POINTWISE_IDENTITY, F32, dqacc, nullptr, nullptr, dQ, "bwd dQ copy");
}

// Operation graph -> heuristics -> the first engine config whose plan finalizes.
Desc make_plan(Graph &g, cudnnHandle_t h, int64_t *ws) {
    Desc og = g.create(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, "operation graph");
    g.set(og, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, (int64_t)g.ops.size(),
          g.ops.data(), "operation graph ops");
    // CUDNN_ATTR_OPERATIONGRAPH_HANDLE (deprecated in the 9.x headers, still honoured)
    g.set(og, (cudnnBackendAttributeName_t)800, CUDNN_TYPE_HANDLE, 1, &h, "operation graph handle");
    g.finalize(og, "operation graph finalize (no engine recognises the pattern?)");
    Desc heur = g.create(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, "heuristics");
    cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
    g.link(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, og, "heuristics graph");
    g.set(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode, "heuristics mode");
    g.finalize(heur, "heuristics finalize");
    if (!g.ok()) return nullptr;
    int64_t n = 0;
    cudnnStatus_t s = cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                               CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &n, nullptr);
    if (s != CUDNN_STATUS_SUCCESS) g.fail(s, "heuristics result count");
    if (!g.ok()) return nullptr;
    if (n <= 0) {
        g.fail(CUDNN_STATUS_NOT_SUPPORTED, "heuristics returned no engine config");
        return nullptr;
    }
    std::vector<Desc> cfgs((size_t)n);
    for (auto &c : cfgs) c = g.create(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, "engine config");
    if (!g.ok()) return nullptr;
    s = cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                 n, &n, cfgs.data());
    if (s != CUDNN_STATUS_SUCCESS) g.fail(s, "heuristics results");
    std::string tried;
    for (int64_t i = 0; i < n && g.ok(); i++) {
        Desc plan = g.create(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, "execution plan");
        // CUDNN_ATTR_EXECUTION_PLAN_HANDLE (deprecated, still honoured)
        g.set(plan, (cudnnBackendAttributeName_t)400, CUDNN_TYPE_HANDLE, 1, &h, "plan handle");
        g.link(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, cfgs[(size_t)i], "plan config");
        if (!g.ok()) return nullptr;
        s = cudnnBackendFinalize(plan);
        if (s != CUDNN_STATUS_SUCCESS) {
            tried += std::string(tried.empty() ? "" : ", ") + cudnnGetErrorString(s);
            continue;
        }
        s = cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                     CUDNN_TYPE_INT64, 1, nullptr, ws);
        if (s != CUDNN_STATUS_SUCCESS) g.fail(s, "plan workspace size");
        return g.ok() ? plan : nullptr;
    }
    if (g.ok())
        g.fail(CUDNN_STATUS_NOT_SUPPORTED,
               ("no engine config finalized (" + std::to_string(n) + " tried: " + tried + ")")
                   .c_str());
    return nullptr;
}

cudnnHandle_t handle(int dev) {
    if (!g_handle[dev]) {
        cudnnStatus_t s = cudnnCreate(&g_handle[dev]);
        if (s != CUDNN_STATUS_SUCCESS) {
            g_handle[dev] = nullptr;
            return nullptr;
        }
    }
    return g_handle[dev];
}

int64_t align256(int64_t x) { return (x + 255) / 256 * 256; }

Plan *find(const Key &k) {
    std::lock_guard<std::mutex> lock(g_mu);
    for (Plan *p : g_plans)
        if (p->key == k) return p;
    Plan *p = new Plan;
    p->key = k;
    p->g = new Graph;
    cudnnHandle_t h = handle(k.dev);
    if (!h) {
        p->why = "cudnnCreate failed";
    } else {
        if (k.fwd)
            build_fwd(*p->g, k);
        else
            build_bwd(*p->g, k);
        if (p->g->ok()) p->plan = make_plan(*p->g, h, &p->plan_ws);
        if (!p->g->ok()) p->why = p->g->why;
    }
    p->total_ws = align256(p->plan_ws);
    if (!k.fwd)
        p->total_ws += align256(k.B * k.Hq * k.T * 4) + align256(k.B * k.Hq * k.T * k.hd * 4);
    g_plans.push_back(p);
    return p;
}

void execute(Plan *p, int n, const int64_t *uids, void *const *ptrs, void *ws) {
    cudnnHandle_t h = handle(p->key.dev);
    if (!h) et_cuda_fail("cuDNN attention", "no handle", __FILE__, __LINE__);
    cudnnStatus_t s = cudnnSetStream(h, kc_stream());
    Desc vp = nullptr;
    if (s == CUDNN_STATUS_SUCCESS)
        s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &vp);
    if (s == CUDNN_STATUS_SUCCESS)
        s = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n,
                                     uids);
    if (s == CUDNN_STATUS_SUCCESS)
        s = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR,
                                     n, ptrs);
    if (s == CUDNN_STATUS_SUCCESS)
        s = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1,
                                     &ws);
    if (s == CUDNN_STATUS_SUCCESS) s = cudnnBackendFinalize(vp);
    if (s == CUDNN_STATUS_SUCCESS) s = cudnnBackendExecute(h, p->plan, vp);
    if (vp) cudnnBackendDestroyDescriptor(vp);
    if (s != CUDNN_STATUS_SUCCESS) {
        char last[512] = "";
        cudnnGetLastErrorString(last, sizeof last);
        std::string m = std::string(cudnnGetErrorString(s)) + " " + last;
        et_cuda_fail(p->key.fwd ? "cudnnBackendExecute (attention forward)"
                                : "cudnnBackendExecute (attention backward)",
                     m.c_str(), __FILE__, __LINE__);
    }
}

Plan *ready(const Key &k) {
    Plan *p = find(k);
    if (!p->why.empty())
        et_cuda_fail("cuDNN attention", ("no plan for this shape: " + p->why).c_str(), __FILE__,
                     __LINE__);
    return p;
}

}  // namespace

extern "C" bool kc_cudnn_attention_available(void) {
    int dev = et_cuda_current();
    if (dev < 0 || dev >= 64) return false;
    std::lock_guard<std::mutex> lock(g_mu);
    if (!g_avail[dev]) {
        bool ok = cudnnGetVersion() >= 90000 && et_cuda_properties(dev).cc_major >= 8 &&
                  handle(dev) != nullptr;
        g_avail[dev] = ok ? 1 : -1;
    }
    return g_avail[dev] > 0;
}

extern "C" const char *kc_cudnn_attn_why(void) { return g_why.c_str(); }

extern "C" int64_t kc_cudnn_attn_prepare(bool fwd, int64_t B, int64_t T, int64_t S, int64_t Hq,
                                         int64_t Hkv, int64_t hd, bool causal, bool padded) {
    if (!kc_cudnn_attention_available()) {
        g_why = "cuDNN unavailable (needs cuDNN >= 9 and sm_80+)";
        return -1;
    }
    if (B < 1 || T < 1 || S < 1 || hd % 8 || hd > 256 || Hkv < 1 || Hq % Hkv) {
        g_why = "shape outside cuDNN attention (hd % 8, hd <= 256, Hq % Hkv)";
        return -1;
    }
    if (causal && T != S) {
        g_why = "causal attention with T != S (bottom-right diagonal) is not built";
        return -1;
    }
    Key k{fwd, causal, padded, B, T, S, Hq, Hkv, hd, et_cuda_current()};
    Plan *p = find(k);
    if (!p->why.empty()) {
        g_why = p->why;
        return -1;
    }
    return p->total_ws;
}

extern "C" void kc_cudnn_attn_fwd(const void *q, const void *k, const void *v, void *o, float *lse,
                                  const int32_t *seqlens, void *ws, int64_t B, int64_t T, int64_t S,
                                  int64_t Hq, int64_t Hkv, int64_t hd, bool causal, float scale) {
    Key key{true, causal, seqlens != nullptr, B, T, S, Hq, Hkv, hd, et_cuda_current()};
    Plan *p = ready(key);
    float neginf = -INFINITY;
    std::vector<int64_t> u = {U_Q, U_K, U_V, U_O, U_STATS, U_SCALE, U_NEGINF};
    std::vector<void *> pp = {(void *)q, (void *)k, (void *)v, o, lse, &scale, &neginf};
    if (seqlens) {
        u.push_back(U_SEQQ);
        pp.push_back((void *)seqlens);
        u.push_back(U_SEQKV);
        pp.push_back((void *)(seqlens + B));
    }
    execute(p, (int)u.size(), u.data(), pp.data(), ws);
}

extern "C" void kc_cudnn_attn_bwd(const void *q, const void *k, const void *v, const void *o,
                                  const float *lse, const void *dout, void *dq, void *dk, void *dv,
                                  const int32_t *seqlens, void *ws, int64_t B, int64_t T, int64_t S,
                                  int64_t Hq, int64_t Hkv, int64_t hd, bool causal, float scale) {
    Key key{false, causal, seqlens != nullptr, B, T, S, Hq, Hkv, hd, et_cuda_current()};
    Plan *p = ready(key);
    char *w = (char *)ws;
    void *ssum = w + align256(p->plan_ws);
    void *dqacc = (char *)ssum + align256(B * Hq * T * 4);
    ET_CUDA_CHECK(cudaMemsetAsync(dqacc, 0, (size_t)(B * Hq * T * hd * 4), kc_stream()));
    float neginf = -INFINITY, one = 1.f;
    std::vector<int64_t> u = {U_Q,  U_K,  U_V,    U_O,     U_STATS, U_DO,     U_DQ,
                              U_DK, U_DV, U_SSUM, U_DQACC, U_SCALE, U_NEGINF, U_ONE};
    std::vector<void *> pp = {(void *)q,    (void *)k, (void *)v, (void *)o, (void *)lse,
                              (void *)dout, dq,        dk,        dv,        ssum,
                              dqacc,        &scale,    &neginf,   &one};
    if (seqlens) {
        u.push_back(U_SEQQ);
        pp.push_back((void *)seqlens);
        u.push_back(U_SEQKV);
        pp.push_back((void *)(seqlens + B));
    }
    execute(p, (int)u.size(), u.data(), pp.data(), ws);
}

#endif
