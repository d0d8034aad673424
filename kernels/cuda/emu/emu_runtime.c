// kernels/cuda/emu/emu_runtime.c - the et_cuda_* runtime of kernels/cuda/cuda_kernels.h on
// host memory, for the CUDA emulator build (-DEMOTUNE_CUDA_EMU=ON; see README.md here).
//
// One device (index 0) whose "device memory" is host memory from aligned_alloc (256-byte
// aligned, as cudaMalloc is); et_cuda_n_mallocs counts the raw allocations, as the real
// runtime counts cudaMalloc calls. Fresh blocks are filled with 0xff bytes (NaN in every
// float dtype, -1 in i32) so that a launcher reading memory nobody wrote shows up in the
// results instead of reading zeros. Copies are memcpy, streams are dummy non-NULL
// pointers, synchronisation is a no-op (every emulated launch completes before it
// returns). Errors follow the real runtime: a bad device index aborts with file:line.
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cuda_kernels.h"

#define EMU_DEVICES 1

static _Thread_local int t_dev = 0;
static atomic_uint_fast64_t g_mallocs[EMU_DEVICES];
static char g_compute[EMU_DEVICES], g_comm[EMU_DEVICES];  // stream handles: their addresses

static void check_index(int index, const char *what, int line) {
    if (index < 0 || index >= EMU_DEVICES) {
        fprintf(stderr, "%s:%d: CUDA error in %s: device %d of %d (emulator)\n", __FILE__, line,
                what, index, EMU_DEVICES);
        fflush(stderr);
        abort();
    }
}
#define CHECK_INDEX(i) check_index((i), __func__, __LINE__)

int et_cuda_device_count(void) { return EMU_DEVICES; }

void et_cuda_use(int index) {
    CHECK_INDEX(index);
    t_dev = index;
}

int et_cuda_current(void) { return t_dev; }

void *et_cuda_compute_stream(int index) {
    CHECK_INDEX(index);
    return &g_compute[index];
}

void *et_cuda_comm_stream(int index) {
    CHECK_INDEX(index);
    return &g_comm[index];
}

void et_cuda_sync(int index) { CHECK_INDEX(index); }

et_cuda_props et_cuda_properties(int index) {
    CHECK_INDEX(index);
    et_cuda_props p;
    memset(&p, 0, sizeof p);
    snprintf(p.name, sizeof p.name, "emulated (host)");
    p.cc_major = 9;  // what the CUDA build targets (sm_90): the bf16 mma path is selectable
    p.cc_minor = 0;
    p.sm_count = 1;
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    p.total_mem = pages > 0 && psize > 0 ? (size_t)pages * (size_t)psize : (size_t)1 << 30;
    return p;
}

void *et_cuda_raw_alloc(int index, size_t bytes) {
    CHECK_INDEX(index);
    size_t n = (bytes + 255) / 256 * 256;
    void *p = aligned_alloc(256, n ? n : 256);
    if (!p) return NULL;
    memset(p, 0xff, n ? n : 256);
    atomic_fetch_add(&g_mallocs[index], 1);
    return p;
}

void et_cuda_raw_free(int index, void *ptr) {
    CHECK_INDEX(index);
    free(ptr);
}

uint64_t et_cuda_n_mallocs(int index) {
    CHECK_INDEX(index);
    return (uint64_t)atomic_load(&g_mallocs[index]);
}

void et_cuda_h2d(int index, void *dst, const void *host_src, size_t nbytes) {
    if (!nbytes) return;
    et_cuda_use(index);
    memcpy(dst, host_src, nbytes);
}

void et_cuda_d2h(int index, void *host_dst, const void *src, size_t nbytes) {
    if (!nbytes) return;
    et_cuda_use(index);
    memcpy(host_dst, src, nbytes);
}

void et_cuda_d2d(int dst_index, void *dst, int src_index, const void *src, size_t nbytes) {
    if (!nbytes) return;
    CHECK_INDEX(src_index);
    et_cuda_use(dst_index);
    memmove(dst, src, nbytes);
}

void et_cuda_copy2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                    size_t rows) {
    if (!width || !rows) return;
    if (dpitch < width || spitch < width) {
        fprintf(stderr, "%s:%d: CUDA error in et_cuda_copy2d: pitch %zu / %zu below width %zu\n",
                __FILE__, __LINE__, dpitch, spitch, width);
        abort();
    }
    for (size_t r = 0; r < rows; r++)
        memcpy((char *)dst + r * dpitch, (const char *)src + r * spitch, width);
}

void et_cuda_memset0(void *dst, size_t nbytes) {
    if (nbytes) memset(dst, 0, nbytes);
}
