// core/threads.c - see threads.h
#include "threads.h"

#include <omp.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"

void et_threads_init(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    if (setenv("GOMP_SPINCOUNT", ET_THREADS_SPINCOUNT, 1)) return;
    execv("/proc/self/exe", argv);
    // Not reached unless exec failed (no /proc): libgomp keeps the spin count it read.
    unsetenv("GOMP_SPINCOUNT");
    et_debug("threads: cannot re-execute /proc/self/exe; OpenMP keeps its default wait policy");
}

void et_threads_apply(int threads) {
    if (threads > 0) omp_set_num_threads(threads);
}
