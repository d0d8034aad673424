// kernels/cuda/gemm.cu - row-major batched GEMM through cuBLASLt (bf16 or f32 inputs, fp32
// accumulation, optional bias epilogue), with a per-device handle, a 32 MiB workspace from
// the caching allocator and a small cache of heuristic results per shape.
#include <cublasLt.h>
#include <string.h>

#include <mutex>

#include "cuda_common.cuh"

extern "C" {
#include "alloc.h"
}

#define ET_CUBLAS_CHECK(call)                                                      \
    do {                                                                           \
        cublasStatus_t s_ = (call);                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                           \
            et_cuda_fail(#call, cublasLtGetStatusString(s_), __FILE__, __LINE__); \
    } while (0)

#define MAX_DEV 16
#define WORKSPACE (32u << 20)
#define CACHE 128

typedef struct {
    int64_t key[11];
    cublasLtMatmulAlgo_t algo;
    bool valid;
} algo_entry;

static std::mutex g_mu;
static cublasLtHandle_t g_lt[MAX_DEV];
static void *g_ws[MAX_DEV];
static algo_entry g_cache[MAX_DEV][CACHE];
static int g_next[MAX_DEV];

static cudaDataType_t cuda_type(int dt) {
    switch (dt) {
        case KC_F32:
            return CUDA_R_32F;
        case KC_BF16:
            return CUDA_R_16BF;
        case KC_F16:
            return CUDA_R_16F;
    }
    et_cuda_fail("kc_gemm", "unsupported dtype", __FILE__, __LINE__);
}

static void set_layout(cublasLtMatrixLayout_t *l, cudaDataType_t t, int64_t rows, int64_t cols,
                       int64_t ld, int64_t batch, int64_t stride) {
    ET_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(l, t, (uint64_t)rows, (uint64_t)cols, ld));
    if (batch > 1) {
        int32_t b = (int32_t)batch;
        ET_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                                         &b, sizeof b));
        ET_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(
            *l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride));
    }
}

// Row-major C (M, N) = op(A) op(B) is column-major C^T (N, M) = op(B)^T op(A)^T: cuBLASLt
// sees B as its first operand and A as its second.
extern "C" void kc_gemm(int dt, int cdt, bool ta, bool tb, int64_t batch, int64_t M, int64_t N,
                        int64_t K, const void *A, int64_t sa, const void *B, int64_t sb,
                        float beta, void *C, int64_t sc, const void *bias) {
    kc_gemm_ab(dt, cdt, ta, tb, batch, M, N, K, 1.f, A, sa, B, sb, beta, C, sc, bias);
}

extern "C" void kc_gemm_ab(int dt, int cdt, bool ta, bool tb, int64_t batch, int64_t M,
                           int64_t N, int64_t K, float alpha, const void *A, int64_t sa,
                           const void *B, int64_t sb, float beta, void *C, int64_t sc,
                           const void *bias) {
    if (batch <= 0 || M <= 0 || N <= 0) return;
    int dev = et_cuda_current();
    cudaStream_t s = kc_stream();
    if (K == 0) {  // empty product: C = beta C (+ bias), per batch entry (sc may be 0)
        size_t es = cdt == KC_F32 ? 4 : 2;
        for (int64_t b = 0; b < (sc ? batch : 1); b++) {
            char *Cb = (char *)C + (size_t)(b * sc) * es;
            if (beta == 0)
                ET_CUDA_CHECK(cudaMemsetAsync(Cb, 0, (size_t)(M * N) * es, s));
            else if (beta != 1)
                kc_scale(cdt, Cb, Cb, M * N, beta);
            if (bias) kc_add_bcast(cdt, Cb, bias, Cb, M, N);
        }
        return;
    }
    {
        std::lock_guard<std::mutex> lk(g_mu);
        if (!g_lt[dev]) {
            ET_CUBLAS_CHECK(cublasLtCreate(&g_lt[dev]));
            et_device d = {ET_CUDA, dev};
            g_ws[dev] = et_alloc(d, WORKSPACE);
            if (!g_ws[dev]) et_cuda_fail("kc_gemm", "no memory for the workspace", __FILE__, __LINE__);
        }
    }
    cublasLtHandle_t lt = g_lt[dev];
    cudaDataType_t tin = cuda_type(dt), tout = cuda_type(cdt);
    cublasLtMatmulDesc_t op;
    ET_CUBLAS_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t opa = tb ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLASLt's A is our B
    cublasOperation_t opb = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    ET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
    ET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
    int epi_kind = 0;
    if (bias) {
        cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        ET_CUBLAS_CHECK(
            cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
        ET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                       &bias, sizeof bias));
        cudaDataType_t bt = tout;
        ET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt,
                                                       sizeof bt));
        epi_kind = 1;
    }
    // Stored (column-major) shapes: ours B is (tb ? [N,K] : [K,N]) row-major.
    cublasLtMatrixLayout_t la, lb, lc;
    set_layout(&la, tin, tb ? K : N, tb ? N : K, tb ? K : N, batch, sb);
    set_layout(&lb, tin, ta ? M : K, ta ? K : M, ta ? M : K, batch, sa);
    set_layout(&lc, tout, N, M, N, batch, sc);

    // Heuristics assume this alignment of every pointer (views may be offset).
    uint32_t align = 256;
    while (align > 1 && (((uintptr_t)A | (uintptr_t)B | (uintptr_t)C) & (align - 1))) align /= 2;
    int64_t key[11] = {dt, cdt, ta, tb, batch, M, N, K, epi_kind, (sa == 0) * 2 + (sb == 0), align};
    cublasLtMatmulAlgo_t algo;
    bool found = false;
    {
        std::lock_guard<std::mutex> lk(g_mu);
        for (int i = 0; i < CACHE && !found; i++)
            if (g_cache[dev][i].valid && !memcmp(g_cache[dev][i].key, key, sizeof key)) {
                algo = g_cache[dev][i].algo;
                found = true;
            }
    }
    if (!found) {
        cublasLtMatmulPreference_t pref;
        ET_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
        size_t ws = WORKSPACE;
        ET_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
            pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
        const cublasLtMatmulPreferenceAttributes_t al[4] = {
            CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
            CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
        for (int i = 0; i < 4; i++)
            ET_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, al[i], &align, sizeof align));
        cublasLtMatmulHeuristicResult_t res;
        int n = 0;
        ET_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lc, pref, 1, &res, &n));
        ET_CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
        if (n == 0) et_cuda_fail("cublasLtMatmulAlgoGetHeuristic", "no algorithm", __FILE__, __LINE__);
        algo = res.algo;
        std::lock_guard<std::mutex> lk(g_mu);
        algo_entry *e = &g_cache[dev][g_next[dev]++ % CACHE];
        memcpy(e->key, key, sizeof key);
        e->algo = algo;
        e->valid = true;
    }
    ET_CUBLAS_CHECK(cublasLtMatmul(lt, op, &alpha, B, la, A, lb, &beta, C, lc, C, lc, &algo,
                                   g_ws[dev], WORKSPACE, s));
    ET_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(la));
    ET_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(lb));
    ET_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(lc));
    ET_CUBLAS_CHECK(cublasLtMatmulDescDestroy(op));
}
