// core/threads.h - how many OpenMP threads a run uses, and how idle ones wait.
// defines: et_threads_init, et_threads_apply, ET_THREADS_SPINCOUNT
//
// Thread count: et_threads_apply(n) with n > 0 runs OpenMP regions (our loops and the
// OpenMP build of OpenBLAS) on n threads; n == 0 keeps OpenMP's default (OMP_NUM_THREADS,
// else every core the process may run on).
//
// Wait policy: libgomp's default lets a thread that reaches a barrier spin for 300,000
// iterations (milliseconds) before it sleeps. When another process keeps a core busy, the
// spinning threads hold every core, the thread that shares its core with that process
// cannot move to a free one, and every barrier waits for its time slice: a 60-step tiny
// run took 40-110 s with 2 threads instead of 5-7 s (BENCHMARKS.md, "Threads on a shared
// machine"). With GOMP_SPINCOUNT=ET_THREADS_SPINCOUNT (100: the count libgomp itself uses
// when threads outnumber CPUs) a waiting thread spins for microseconds, then sleeps and
// frees its core (0, i.e. passive, measured alike; 1000 and more slower under load).
// libgomp reads its environment once, while the process loads (before main; a setenv in
// main is too late, and glibc's start-up resets the environment after an executable's
// .preinit_array runs), so et_threads_init sets the variable and re-executes the program
// (/proc/self/exe) once. The environment wins: with OMP_WAIT_POLICY or GOMP_SPINCOUNT set
// nothing changes (OMP_WAIT_POLICY=active gives libgomp's own spinning back). Under
// valgrind, which does not follow an exec by default, set either variable so that no
// re-execution happens.
//
// Thread safety: call both from the main thread before any other thread starts.
#ifndef ET_THREADS_H
#define ET_THREADS_H

#define ET_THREADS_SPINCOUNT "100"

// First thing in main(): unless the environment sets OMP_WAIT_POLICY or GOMP_SPINCOUNT,
// sets GOMP_SPINCOUNT=ET_THREADS_SPINCOUNT and re-executes /proc/self/exe with the same
// argv; returns only when nothing needs to change or the re-exec failed (the run then
// goes on with libgomp's defaults).
void et_threads_init(char **argv);
// threads > 0: omp_set_num_threads(threads); 0: leave OpenMP's default.
void et_threads_apply(int threads);

#endif
