// kernels/cpu/basic.c - compiles basic_impl.inc for f32 and f64 (see ktemplate.h).
#include "basic.h"

#include "ktemplate.h"

#define real float
#define KFN(n) n##_f32
#define REAL_IS_F64 0
#include "basic_impl.inc"
#undef real
#undef KFN
#undef REAL_IS_F64

#define real double
#define KFN(n) n##_f64
#define REAL_IS_F64 1
#include "basic_impl.inc"
#undef real
#undef KFN
#undef REAL_IS_F64
