// core/rng.h - counter-based random numbers (Philox4x32-10).
// defines: et_philox4x32_10, et_rng_u32, et_rng_uniform, et_rng_normal, et_rand_uniform_,
//          et_randn_, et_kaiming_uniform_, et_dropout_mask
//
// Every draw is a pure function of (seed, offset): element i of a fill at `offset` uses
// stream position offset + i. Position p of the u32 stream is word p % 4 of
// Philox4x32-10(counter = (p / 4) as a 128-bit little-endian integer, key = seed).
// So the same seed gives the same values on any device, any thread count, and after a
// resume (store the offset). Uniforms: u = (w >> 8) * 2^-24 in [0, 1). Normals: position
// p uses the counter p / 2 and the word pair (2(p % 2), 2(p % 2) + 1) through Box-Muller.
// Callers advance their offset by the number of elements they drew.
#ifndef ET_RNG_H
#define ET_RNG_H

#include <stdint.h>

#include "tensor.h"

// The raw block function (Random123's philox4x32 with 10 rounds).
void et_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);
uint32_t et_rng_u32(uint64_t seed, uint64_t pos);

void et_rng_uniform(float *out, int64_t n, uint64_t seed, uint64_t offset, float lo, float hi);
void et_rng_normal(float *out, int64_t n, uint64_t seed, uint64_t offset, float mean, float std);

// Tensor fills (any float dtype; values drawn in f32, f64 draws in f64 precision).
void et_rand_uniform_(et_tensor *t, double lo, double hi, uint64_t seed, uint64_t offset);
void et_randn_(et_tensor *t, double mean, double std, uint64_t seed, uint64_t offset);
// torch.nn.init.kaiming_uniform_(w, a) for a weight [out, in, ...]: fan_in = numel / out,
// bound = sqrt(2 / (1 + a^2)) * sqrt(3 / fan_in); PEFT's lora_A uses a = sqrt(5).
void et_kaiming_uniform_(et_tensor *t, double a, uint64_t seed, uint64_t offset);
// keep[i] = 1 when the uniform at offset + i is >= p, else 0.
void et_dropout_mask(uint8_t *keep, int64_t n, double p, uint64_t seed, uint64_t offset);

#endif
