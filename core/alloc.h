// core/alloc.h - per-device caching allocator.
// defines: et_alloc, et_free, et_alloc_stats, et_alloc_reset_peak, et_alloc_empty_cache
//
// Blocks are rounded up to a size class (512-byte steps below 1 MiB, then 1/8-octave
// steps) and returned to a free list on et_free, so the steady state of a training
// loop makes no system allocation. Counters: bytes_current (handed out, by rounded
// size), bytes_peak (max of bytes_current since the last reset), bytes_cached (held in
// free lists), n_system_allocs. Thread-safe (one mutex per device). The CUDA backend
// registers its own stream-ordered implementation for ET_CUDA.
#ifndef ET_ALLOC_H
#define ET_ALLOC_H

#include <stddef.h>
#include <stdint.h>

typedef enum { ET_CPU = 0, ET_CUDA = 1 } et_device_type;
typedef struct {
    et_device_type type;
    int index;
} et_device;

typedef struct {
    size_t bytes_current;
    size_t bytes_peak;
    size_t bytes_cached;
    uint64_t n_system_allocs;
    uint64_t n_allocs;
} et_alloc_stats_t;

// Returns 64-byte aligned memory or NULL. Zero bytes returns a valid unique block.
void *et_alloc(et_device dev, size_t bytes);
void et_free(et_device dev, void *ptr);
et_alloc_stats_t et_alloc_stats(et_device dev);
void et_alloc_reset_peak(et_device dev);
void et_alloc_empty_cache(et_device dev);  // return cached blocks to the system

// Backend hook for devices other than the CPU (filled by the CUDA backend).
typedef struct {
    void *(*raw_alloc)(int index, size_t bytes);
    void (*raw_free)(int index, void *ptr);
} et_device_allocator;
void et_alloc_register(et_device_type type, et_device_allocator impl);

#endif
