// core/alloc.c - see alloc.h
#include "alloc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

#define LIVE_BUCKETS 4096
#define FREE_BUCKETS 1024
#define MAX_DEVICES 17  // cpu + 16 cuda

typedef struct entry {
    void *ptr;
    size_t size;
    struct entry *next;
} entry;

typedef struct {
    pthread_mutex_t mu;
    entry *live[LIVE_BUCKETS];   // ptr -> rounded size of blocks handed out
    entry *cache[FREE_BUCKETS];  // rounded size -> cached blocks (many per size)
    et_alloc_stats_t stats;
} dev_pool;

static dev_pool g_pools[MAX_DEVICES];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static et_device_allocator g_impl[2];

static void *cpu_raw_alloc(int index, size_t bytes) {
    (void)index;
    return aligned_alloc(64, bytes);
}
static void cpu_raw_free(int index, void *p) {
    (void)index;
    free(p);
}

static void init_pools(void) {
    for (int i = 0; i < MAX_DEVICES; i++) pthread_mutex_init(&g_pools[i].mu, NULL);
    g_impl[ET_CPU].raw_alloc = cpu_raw_alloc;
    g_impl[ET_CPU].raw_free = cpu_raw_free;
}

void et_alloc_register(et_device_type type, et_device_allocator impl) {
    pthread_once(&g_once, init_pools);
    g_impl[type] = impl;
}

static dev_pool *pool_of(et_device dev) {
    pthread_once(&g_once, init_pools);
    int slot = dev.type == ET_CPU ? 0 : 1 + dev.index;
    ET_ASSERT(slot >= 0 && slot < MAX_DEVICES, "device index %d out of range", dev.index);
    ET_ASSERT(g_impl[dev.type].raw_alloc,
              "no allocator registered for device type %d "
              "(build with -DEMOTUNE_CUDA=ON for CUDA tensors)",
              (int)dev.type);
    return &g_pools[slot];
}

static size_t round_size(size_t bytes) {
    if (bytes == 0) bytes = 1;
    if (bytes <= ((size_t)1 << 20)) return (bytes + 511) & ~(size_t)511;
    size_t p = (size_t)1 << (63 - __builtin_clzll((unsigned long long)bytes));
    size_t step = p / 8;
    return (bytes + step - 1) / step * step;
}

static size_t hash_ptr(void *p) { return ((uintptr_t)p >> 6) * 2654435761u % LIVE_BUCKETS; }
static size_t hash_size(size_t s) { return (s >> 9) * 2654435761u % FREE_BUCKETS; }

void *et_alloc(et_device dev, size_t bytes) {
    dev_pool *pl = pool_of(dev);
    size_t size = round_size(bytes);
    pthread_mutex_lock(&pl->mu);
    void *ptr = NULL;
    entry *e = NULL;  // a cached block's bookkeeping entry moves to the live table as is
    entry **pp = &pl->cache[hash_size(size)];
    for (; *pp; pp = &(*pp)->next) {
        if ((*pp)->size == size) {
            e = *pp;
            *pp = e->next;
            ptr = e->ptr;
            pl->stats.bytes_cached -= size;
            break;
        }
    }
    if (!ptr) {
        ptr = g_impl[dev.type].raw_alloc(dev.index, size);
        if (!ptr && pl->stats.bytes_cached) {  // out of memory: drop the cache and retry
            pthread_mutex_unlock(&pl->mu);
            et_alloc_empty_cache(dev);
            pthread_mutex_lock(&pl->mu);
            ptr = g_impl[dev.type].raw_alloc(dev.index, size);
        }
        if (!ptr) {
            pthread_mutex_unlock(&pl->mu);
            return NULL;
        }
        pl->stats.n_system_allocs++;
    }
    if (!e) {
        e = malloc(sizeof(*e));
        ET_ASSERT(e, "out of host memory for allocator bookkeeping");
    }
    e->ptr = ptr;
    e->size = size;
    size_t h = hash_ptr(ptr);
    e->next = pl->live[h];
    pl->live[h] = e;
    pl->stats.n_allocs++;
    pl->stats.bytes_current += size;
    if (pl->stats.bytes_current > pl->stats.bytes_peak)
        pl->stats.bytes_peak = pl->stats.bytes_current;
    pthread_mutex_unlock(&pl->mu);
    return ptr;
}

void et_free(et_device dev, void *ptr) {
    if (!ptr) return;
    dev_pool *pl = pool_of(dev);
    pthread_mutex_lock(&pl->mu);
    entry **pp = &pl->live[hash_ptr(ptr)];
    while (*pp && (*pp)->ptr != ptr) pp = &(*pp)->next;
    ET_ASSERT(*pp, "et_free of a pointer this allocator did not hand out (%p)", ptr);
    entry *e = *pp;
    *pp = e->next;
    pl->stats.bytes_current -= e->size;
    pl->stats.bytes_cached += e->size;
    size_t h = hash_size(e->size);
    e->next = pl->cache[h];
    pl->cache[h] = e;
    pthread_mutex_unlock(&pl->mu);
}

et_alloc_stats_t et_alloc_stats(et_device dev) {
    dev_pool *pl = pool_of(dev);
    pthread_mutex_lock(&pl->mu);
    et_alloc_stats_t s = pl->stats;
    pthread_mutex_unlock(&pl->mu);
    return s;
}

void et_alloc_reset_peak(et_device dev) {
    dev_pool *pl = pool_of(dev);
    pthread_mutex_lock(&pl->mu);
    pl->stats.bytes_peak = pl->stats.bytes_current;
    pthread_mutex_unlock(&pl->mu);
}

void et_alloc_empty_cache(et_device dev) {
    dev_pool *pl = pool_of(dev);
    pthread_mutex_lock(&pl->mu);
    for (int b = 0; b < FREE_BUCKETS; b++) {
        entry *e = pl->cache[b];
        while (e) {
            entry *n = e->next;
            g_impl[dev.type].raw_free(dev.index, e->ptr);
            free(e);
            e = n;
        }
        pl->cache[b] = NULL;
    }
    pl->stats.bytes_cached = 0;
    pthread_mutex_unlock(&pl->mu);
}
