// tests/test_tensor.c - tensors, dtypes, allocator, autograd tape mechanics.
#include "../core/alloc.h"
#include "../core/autograd.h"
#include "../core/dtype.h"
#include "../core/tensor.h"
#include "test_util.h"

static void test_dtype_roundtrip(void) {
    // bf16: round to nearest even
    CHECK(et_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(et_bf16_to_f32(et_f32_to_bf16(3.140625f)) == 3.140625f);
    float x = 1.00390625f;  // exactly halfway between two bf16 values -> even
    CHECK(et_f32_to_bf16(x) == 0x3f80, "got %x", et_f32_to_bf16(x));
    // f16
    CHECK(et_f32_to_f16(1.0f) == 0x3c00);
    CHECK(et_f16_to_f32(0x3c00) == 1.0f);
    CHECK(et_f16_to_f32(et_f32_to_f16(65504.0f)) == 65504.0f);
    CHECK(et_f32_to_f16(1e6f) == 0x7c00);
    CHECK(et_f16_to_f32(0x0001) == 5.9604644775390625e-08f);  // smallest subnormal
    CHECK(et_f32_to_f16(5.9604644775390625e-08f) == 0x0001);
    for (int i = 0; i < 0x7c00; i++) {  // every finite positive f16 round-trips
        float f = et_f16_to_f32((uint16_t)i);
        if (et_f32_to_f16(f) != i) {
            CHECK(0, "f16 %x -> %g -> %x", i, f, et_f32_to_f16(f));
            break;
        }
    }
    CHECK(et_dtype_from_name("BF16") == ET_BF16);
    CHECK(et_dtype_from_name("f64") == ET_F64);
    CHECK(et_dtype_from_name("Q4") == -1);
}

static void test_views_share_storage(void) {
    et_tensor *t = et_zeros(ET_F32, 2, (int64_t[]){4, 3});
    et_tensor *v = et_view_raw(t, 2, (int64_t[]){2, 3}, 3);
    ET_DATA(float, v)[0] = 5.0f;
    CHECK(ET_DATA(float, t)[3] == 5.0f);
    CHECK(t->storage->refcount == 2);
    et_release(t);  // storage survives through the view
    CHECK(ET_DATA(float, v)[0] == 5.0f);
    et_release(v);
}

static void test_allocator_caches(void) {
    et_device cpu = et_cpu();
    et_tensor *a = et_empty(ET_F32, 1, (int64_t[]){1000});
    et_alloc_stats_t s0 = et_alloc_stats(cpu);
    CHECK(s0.bytes_current >= 4000);
    et_release(a);
    et_alloc_stats_t s1 = et_alloc_stats(cpu);
    CHECK(s1.bytes_current + 4000 <= s0.bytes_current);
    for (int i = 0; i < 100; i++) {  // steady state: no new system allocation
        et_tensor *b = et_empty(ET_F32, 1, (int64_t[]){1000});
        et_release(b);
    }
    et_alloc_stats_t s2 = et_alloc_stats(cpu);
    CHECK(s2.n_system_allocs == s1.n_system_allocs, "%llu system allocs in the steady state",
          (unsigned long long)(s2.n_system_allocs - s1.n_system_allocs));
    et_alloc_reset_peak(cpu);
    et_tensor *c = et_empty(ET_F64, 1, (int64_t[]){1 << 20});
    CHECK(et_alloc_stats(cpu).bytes_peak >= s2.bytes_current + (8u << 20));
    et_release(c);
    et_alloc_empty_cache(cpu);
    CHECK(et_alloc_stats(cpu).bytes_cached == 0);
}

static void test_get_set_convert(void) {
    et_tensor *t = et_empty(ET_BF16, 1, (int64_t[]){3});
    et_set(t, 0, 1.5);
    et_set(t, 1, -2.0);
    et_set(t, 2, 0.1);
    CHECK(et_get(t, 0) == 1.5 && et_get(t, 1) == -2.0);
    CHECK(fabs(et_get(t, 2) - 0.1) < 1e-3);
    et_tensor *f = et_empty(ET_F32, 1, (int64_t[]){3});
    et_copy_(f, t);
    CHECK(ET_DATA(float, f)[1] == -2.0f);
    et_release(t);
    et_release(f);
}

int main(void) {
    RUN(test_dtype_roundtrip);
    RUN(test_views_share_storage);
    RUN(test_allocator_caches);
    RUN(test_get_set_convert);
    return test_summary();
}
