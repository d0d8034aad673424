// tests/test_modality_dropout.c - train.modality_dropout (et_modality_dropout): the share of
// samples that lose their image or their landmarks, never both, the rest untouched, the
// same draws for the same (seed, micro-step), other draws for another, and no change at
// p = 0 or without one of the two inputs.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "train/trainer.h"

enum { B = 4000, PX = 3 * 4 * 4, LM = 6 };

static void fill(et_batch *b) {
    memset(b, 0, sizeof *b);
    b->B = B;
    b->pixels = et_zeros(ET_F32, 4, (int64_t[]){B, 3, 4, 4});
    b->landmarks = et_zeros(ET_F32, 2, (int64_t[]){B, LM});
    float *p = et_data(b->pixels), *l = et_data(b->landmarks);
    for (int64_t i = 0; i < (int64_t)B * PX; i++) p[i] = 0.5f + (float)(i % 7);
    for (int64_t i = 0; i < (int64_t)B * LM; i++) l[i] = -0.25f - (float)(i % 5);
}

static int all_zero(const float *x, int n) {
    for (int i = 0; i < n; i++)
        if (x[i] != 0) return 0;
    return 1;
}

static int untouched(const float *x, int64_t off, int n, int px) {
    for (int i = 0; i < n; i++) {
        float want = px ? 0.5f + (float)((off + i) % 7) : -0.25f - (float)((off + i) % 5);
        if (x[off + i] != want) return 0;
    }
    return 1;
}

// Counts blanked images and landmarks; checks every sample is whole, or blank in one input.
static void count(et_batch *b, int *ni, int *nl, unsigned char *which) {
    const float *p = et_data(b->pixels), *l = et_data(b->landmarks);
    *ni = *nl = 0;
    for (int i = 0; i < B; i++) {
        int zi = all_zero(p + (int64_t)i * PX, PX), zl = all_zero(l + (int64_t)i * LM, LM);
        CHECK(!(zi && zl), "sample %d lost both inputs", i);
        CHECK(zi || untouched(p, (int64_t)i * PX, PX, 1), "sample %d: image partly changed", i);
        CHECK(zl || untouched(l, (int64_t)i * LM, LM, 0), "sample %d: landmarks partly changed", i);
        *ni += zi, *nl += zl;
        if (which) which[i] = (unsigned char)(zi ? 1 : zl ? 2 : 0);
    }
}

static void test_shares_and_determinism(void) {
    static unsigned char w1[B], w2[B], w3[B];
    et_batch b;
    int ni, nl;
    fill(&b);
    et_modality_dropout(&b, 0.4, 1, 17);
    count(&b, &ni, &nl, w1);
    // p/2 each: 800 expected, sd ~25
    CHECK(abs(ni - 800) < 125 && abs(nl - 800) < 125, "blanked images %d, landmarks %d", ni, nl);
    printf("  p 0.4 over %d samples: %d images and %d landmarks blanked\n", B, ni, nl);
    et_batch_free(&b);
    fill(&b);
    et_modality_dropout(&b, 0.4, 1, 17);
    count(&b, &ni, &nl, w2);
    CHECK(!memcmp(w1, w2, B), "same seed and micro-step: the same samples");
    et_batch_free(&b);
    fill(&b);
    et_modality_dropout(&b, 0.4, 1, 18);
    count(&b, &ni, &nl, w3);
    CHECK(memcmp(w1, w3, B), "another micro-step: other samples");
    et_batch_free(&b);
    fill(&b);
    et_modality_dropout(&b, 1.0, 2, 0);
    count(&b, &ni, &nl, NULL);
    CHECK(ni + nl == B && ni > 1800 && nl > 1800, "p 1: every sample loses one input (%d + %d)", ni,
          nl);
    et_batch_free(&b);
}

static void test_no_change(void) {
    et_batch b;
    int ni, nl;
    fill(&b);
    et_modality_dropout(&b, 0, 1, 3);
    count(&b, &ni, &nl, NULL);
    CHECK(ni == 0 && nl == 0, "p 0 changes nothing");
    et_release(b.landmarks);
    b.landmarks = NULL;  // an image-only batch: the only input is never blanked
    et_modality_dropout(&b, 1.0, 1, 3);
    CHECK(untouched(et_data(b.pixels), 0, B * PX, 1), "no landmarks: the images stay");
    et_batch_free(&b);
}

int main(void) {
    RUN(test_shares_and_determinism);
    RUN(test_no_change);
    return test_summary();
}
