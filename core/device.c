// core/device.c - see device.h
#include "device.h"

#include <pthread.h>

#include "status.h"

static const et_backend *g_backends[2];
static void (*g_providers[2])(void);  // lazy initialisers offered by backends from above
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void init_backends(void) {
    for (int t = 0; t < 2; t++)
        if (g_providers[t]) g_providers[t]();
}

void et_backend_provide(et_device_type type, void (*init)(void)) {
    ET_ASSERT((unsigned)type < 2, "et_backend_provide: device type %d", (int)type);
    g_providers[type] = init;
}

void et_backend_register(et_device_type type, const et_backend *b) {
    ET_ASSERT((unsigned)type < 2, "et_backend_register: device type %d", (int)type);
    g_backends[type] = b;
}

const et_backend *et_backend_get(et_device_type type) {
    if (type == ET_CPU || (unsigned)type >= 2) return NULL;
    pthread_once(&g_once, init_backends);
    return g_backends[type];
}

const et_backend *et_backend_ops(et_device_type type, const char *what) {
    const et_backend *b = et_backend_get(type);
    ET_ASSERT(b,
              "%s: tensor on device type %d, but this build has no backend for it "
              "(build with -DEMOTUNE_CUDA=ON and run on a machine with a GPU)",
              what, (int)type);
    return b;
}

int et_device_count(et_device_type type) {
    if (type == ET_CPU) return 1;
    const et_backend *b = et_backend_get(type);
    return b && b->device_count ? b->device_count() : 0;
}

void et_device_sync(et_device dev) {
    if (dev.type == ET_CPU) return;
    et_backend_ops(dev.type, "et_device_sync")->sync(dev.index);
}

et_tensor *et_to_device(const et_tensor *t, et_device dev) {
    et_tensor *y = et_empty_on(dev, t->dtype, t->ndim, t->shape);
    et_copy_(y, t);
    return y;
}
