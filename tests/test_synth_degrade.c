// tests/test_synth_degrade.c - the synthetic benchmark's degradations (occlusion, JPEG, low
// resolution), detector-like landmark noise, captions, the text-only pretraining samples,
// the files the writer adds (captions_*.json, text_*.json), option validation, and the
// shortcut check (a linear probe on the written landmarks, clean vs default).
//
// ET_SYNTH_SHEET_DEGRADED=path writes a contact sheet of default faces (10 x 6, 64 px).
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/fileio.h"
#include "../data/image.h"
#include "../data/image_write.h"
#include "../data/npy.h"
#include "../data/synth.h"
#include "../data/template.h"
#include "../data/tokenizer.h"
#include "synth_test_util.h"
#include "test_util.h"

static char g_dir[256];

static et_synth_opts small_opts(void) {
    et_synth_opts o;
    et_synth_opts_default(&o);
    o.seed = 77;
    o.n_train = 700;
    o.n_test = 350;
    return o;
}

// The face with every degradation off (landmark noise stays).
static et_synth_face undegraded(const et_synth_face *f) {
    et_synth_face g = *f;
    g.deg.occluder = ET_SYNTH_OCC_NONE;
    g.deg.jpeg_quality = 0;
    g.deg.lowres = 0;
    return g;
}

static double mean_abs_diff(const et_image *a, const et_image *b) {
    size_t n = (size_t)a->width * a->height * 3;
    double d = 0;
    for (size_t i = 0; i < n; i++) d += abs((int)a->data[i] - (int)b->data[i]);
    return d / (double)n;
}

// Fraction of pixels in [x0, x1) x [y0, y1) whose colour moved by more than 40 (sum of |dc|).
static double changed_frac(const et_image *a, const et_image *b, int x0, int y0, int x1, int y1) {
    int n = 0, c = 0;
    for (int y = y0 < 0 ? 0 : y0; y < y1 && y < a->height; y++)
        for (int x = x0 < 0 ? 0 : x0; x < x1 && x < a->width; x++) {
            const uint8_t *p = a->data + ((size_t)y * a->width + x) * 3;
            const uint8_t *q = b->data + ((size_t)y * a->width + x) * 3;
            int d = abs(p[0] - q[0]) + abs(p[1] - q[1]) + abs(p[2] - q[2]);
            c += d > 40;
            n++;
        }
    return n ? (double)c / n : 0;
}

// Bounding box in pixels of landmarks [lo, hi] of f at size S.
static void lm_box(const et_synth_face *f, int S, int lo, int hi, int *x0, int *y0, int *x1,
                   int *y1) {
    float px[ET_SYNTH_LANDMARK_DIM];
    et_synth_landmarks_px(f, S, px);
    float ax = 1e9f, ay = 1e9f, bx = -1e9f, by = -1e9f;
    for (int i = lo; i <= hi; i++) {
        ax = fminf(ax, px[2 * i]), bx = fmaxf(bx, px[2 * i]);
        ay = fminf(ay, px[2 * i + 1]), by = fmaxf(by, px[2 * i + 1]);
    }
    *x0 = (int)ax, *y0 = (int)ay, *x1 = (int)ceilf(bx) + 1, *y1 = (int)ceilf(by) + 1;
}

// Sum of squared 4-neighbour Laplacians of the grey image (high-frequency energy).
static double laplacian_energy(const et_image *img) {
    int W = img->width, H = img->height;
    double e = 0;
    for (int y = 1; y < H - 1; y++)
        for (int x = 1; x < W - 1; x++) {
            double g[5];
            static const int dx[5] = {0, 1, -1, 0, 0}, dy[5] = {0, 0, 0, 1, -1};
            for (int k = 0; k < 5; k++) {
                const uint8_t *p = img->data + ((size_t)(y + dy[k]) * W + x + dx[k]) * 3;
                g[k] = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
            }
            double l = g[1] + g[2] + g[3] + g[4] - 4 * g[0];
            e += l * l;
        }
    return e;
}

static void test_determinism_and_clean(void) {
    et_synth_opts o = small_opts();
    o.occlusion_prob = o.jpeg_prob = o.lowres_prob = 1;  // every degradation on every face
    int seen[5] = {0};
    for (int64_t i = 0; i < 40; i++) {
        et_synth_face a, b;
        et_synth_sample_face(&o, i, &a);
        et_synth_sample_face(&o, i, &b);
        CHECK(memcmp(&a, &b, sizeof(a)) == 0, "face %lld is a pure function", (long long)i);
        CHECK(a.deg.occluder >= 1 && a.deg.occluder <= 4 && a.deg.jpeg_quality >= 20 &&
                  a.deg.jpeg_quality <= 80 && a.deg.lowres >= 0.4f && a.deg.lowres < 1,
              "face %lld: occluder %d quality %d lowres %g", (long long)i, a.deg.occluder,
              a.deg.jpeg_quality, (double)a.deg.lowres);
        seen[a.deg.occluder]++;
        if (i < 6) {
            et_image ia, ib;
            render_ok(&a, 64, &ia);
            render_ok(&b, 64, &ib);
            CHECK(memcmp(ia.data, ib.data, 64 * 64 * 3) == 0, "same bytes for face %lld",
                  (long long)i);
            et_image_free(&ia);
            et_image_free(&ib);
        }
    }
    for (int k = 1; k <= 4; k++) CHECK(seen[k] > 0, "occluder kind %d drawn", k);
    // another seed differs; the degradations leave every other draw alone: switched off, a
    // face equals the clean one
    et_synth_opts o2 = o;
    o2.seed = 78;
    et_synth_face a, b, c;
    et_synth_sample_face(&o, 5, &a);
    et_synth_sample_face(&o2, 5, &b);
    et_image ia, ib, ic;
    render_ok(&a, 64, &ia);
    render_ok(&b, 64, &ib);
    CHECK(memcmp(ia.data, ib.data, 64 * 64 * 3) != 0, "another seed differs");
    et_synth_opts oc = o;
    et_synth_opts_clean(&oc);
    et_synth_sample_face(&oc, 5, &c);
    CHECK(c.deg.occluder == 0 && c.deg.jpeg_quality == 0 && c.deg.lowres == 0, "clean: no deg");
    CHECK(memcmp(c.landmarks, c.detected, sizeof(c.landmarks)) == 0, "clean: exact landmarks");
    et_synth_face a0 = undegraded(&a);
    et_image_free(&ib);
    render_ok(&a0, 64, &ib);
    render_ok(&c, 64, &ic);
    CHECK(memcmp(ib.data, ic.data, 64 * 64 * 3) == 0, "degradations off == the clean face");
    CHECK(memcmp(a.landmarks, c.landmarks, sizeof(a.landmarks)) == 0, "same exact landmarks");
    et_image_free(&ia);
    et_image_free(&ib);
    et_image_free(&ic);
}

static void test_occlusion(void) {
    et_synth_opts o = small_opts();
    o.occlusion_prob = 1;
    o.pose_jitter = 0.3f;
    double got[5] = {0};
    for (int64_t i = 0; i < 60; i++) {
        et_synth_face f;
        et_synth_sample_face(&o, i, &f);
        int k = f.deg.occluder;
        if (got[k] != 0) continue;
        f.deg.jpeg_quality = 0;
        f.deg.lowres = 0;
        et_synth_face g = undegraded(&f);
        et_image a, b;
        render_ok(&f, 64, &a);
        render_ok(&g, 64, &b);
        int x0, y0, x1, y1;
        double in;
        if (k == ET_SYNTH_OCC_SUNGLASSES) {
            lm_box(&g, 64, 36, 47, &x0, &y0, &x1, &y1);  // the eyes
            in = changed_frac(&a, &b, x0, y0, x1, y1);
            CHECK(in > 0.6, "sunglasses cover the eyes: %.2f changed", in);
            lm_box(&g, 64, 48, 67, &x0, &y0, &x1, &y1);
            CHECK(changed_frac(&a, &b, x0, y0, x1, y1) == 0, "sunglasses leave the mouth");
        } else if (k == ET_SYNTH_OCC_HAND_MOUTH) {
            lm_box(&g, 64, 48, 67, &x0, &y0, &x1, &y1);  // the mouth
            in = changed_frac(&a, &b, x0, y0, x1, y1);
            CHECK(in > 0.4, "a hand covers the mouth: %.2f changed", in);
            lm_box(&g, 64, 36, 47, &x0, &y0, &x1, &y1);
            CHECK(changed_frac(&a, &b, x0, y0, x1, y1) == 0, "the hand leaves the eyes");
        } else {
            lm_box(&g, 64, 0, 67, &x0, &y0, &x1, &y1);  // the face
            in = changed_frac(&a, &b, x0, y0, x1, y1);
            CHECK(in > 0.05, "occluder %d changes %.3f of the face", k, in);
        }
        printf("  occluder %d (face %lld): %.0f%% of the region changed\n", k, (long long)i,
               100 * in);
        got[k] = in;
        et_image_free(&a);
        et_image_free(&b);
    }
    for (int k = 1; k <= 4; k++) CHECK(got[k] > 0, "occluder %d tested", k);
}

static void test_jpeg_and_lowres(void) {
    et_synth_opts o = small_opts();
    et_synth_opts_clean(&o);
    o.noise = 0;
    o.blur = 0;
    double d10 = 0, d90 = 0, e0 = 0, e3 = 0, mean_shift = 0;
    for (int64_t i = 0; i < 5; i++) {
        et_synth_face f;
        et_synth_sample_face(&o, i, &f);
        et_image src, j10, j90, lo;
        render_ok(&f, 64, &src);
        f.deg.jpeg_quality = 10;
        render_ok(&f, 64, &j10);
        f.deg.jpeg_quality = 90;
        render_ok(&f, 64, &j90);
        f.deg.jpeg_quality = 0;
        f.deg.lowres = 0.3f;
        render_ok(&f, 64, &lo);
        d10 += mean_abs_diff(&src, &j10) / 5;
        d90 += mean_abs_diff(&src, &j90) / 5;
        e0 += laplacian_energy(&src) / 5;
        e3 += laplacian_energy(&lo) / 5;
        double ms = 0;
        for (size_t k = 0; k < 64 * 64 * 3; k++) ms += (double)lo.data[k] - src.data[k];
        mean_shift += fabs(ms / (64 * 64 * 3)) / 5;
        et_image_free(&src);
        et_image_free(&j10);
        et_image_free(&j90);
        et_image_free(&lo);
    }
    printf(
        "  JPEG mean |diff|: quality 10 %.2f, quality 90 %.2f; low resolution (0.3): "
        "Laplacian energy %.0f%% of the source, mean shift %.2f\n",
        d10, d90, 100 * e3 / e0, mean_shift);
    CHECK(d10 > 3.0, "JPEG quality 10 differs by %.2f levels on average", d10);
    CHECK(d90 > 0.2 && d90 < d10 / 2, "quality 90 (%.2f) is much closer than 10 (%.2f)", d90, d10);
    CHECK(e3 < 0.3 * e0, "low resolution keeps %.2f of the high frequencies", e3 / e0);
    CHECK(mean_shift < 1.0, "low resolution keeps the mean colour (shift %.2f)", mean_shift);
}

static double point_err_px(const float *a, const float *b, int lo, int hi) {
    double e = 0;
    for (int k = lo; k <= hi; k++) e += hypot(a[2 * k] - b[2 * k], a[2 * k + 1] - b[2 * k + 1]);
    return e * 32 / (hi - lo + 1);  // normalised units -> pixels at 64 px
}

static void test_landmark_noise(void) {
    et_synth_opts o = small_opts();
    o.landmark_fail_prob = 0;
    o.landmark_noise = 0;
    et_synth_face f;
    et_synth_sample_face(&o, 3, &f);
    CHECK(memcmp(f.detected, f.landmarks, sizeof(f.landmarks)) == 0, "scale 0: exact landmarks");
    o.landmark_noise = 1;
    double all = 0, jaw = 0, eyes = 0, std = 0;
    int n = 300;
    for (int64_t i = 0; i < n; i++) {
        et_synth_sample_face(&o, i, &f);
        all += point_err_px(f.landmarks, f.detected, 0, 67) / n;
        jaw += point_err_px(f.landmarks, f.detected, 0, 16) / n;
        eyes += point_err_px(f.landmarks, f.detected, 36, 47) / n;
        for (int k = 0; k < ET_SYNTH_LANDMARK_DIM; k++) {
            double d = (f.detected[k] - f.landmarks[k]) * 32;
            std += d * d / (n * ET_SYNTH_LANDMARK_DIM);
        }
    }
    std = sqrt(std);
    printf(
        "  landmark_noise 1: mean point error %.2f px (jaw %.2f, eyes %.2f), coordinate "
        "std %.2f px (64-px units)\n",
        all, jaw, eyes, std);
    CHECK(all > 1.2 && all < 2.0, "mean point error %.2f px at scale 1", all);
    CHECK(std > 1.0 && std < 2.0, "coordinate std %.2f px at scale 1", std);
    CHECK(jaw > 1.5 * eyes, "jaw error %.2f > eye error %.2f", jaw, eyes);
    // the error scales with landmark_noise and stays with the face through set_intensity
    o.landmark_noise = 2;
    et_synth_face g, h;
    et_synth_sample_face(&o, 7, &g);
    o.landmark_noise = 1;
    et_synth_sample_face(&o, 7, &h);
    double e2 = point_err_px(g.landmarks, g.detected, 0, 67);
    double e1 = point_err_px(h.landmarks, h.detected, 0, 67);
    CHECK(fabs(e2 - 2 * e1) < 1e-3 * e1 + 1e-4, "scale 2 doubles the error (%.4f vs %.4f)", e2, e1);
    et_synth_face h2 = h;
    et_synth_set_intensity(&h2, h.intensity);
    CHECK(memcmp(h2.detected, h.detected, sizeof(h.detected)) == 0, "set_intensity keeps it");
    // failed detections: the expression is lost (toward the neutral landmarks), big errors
    o.landmark_fail_prob = 1;
    double err_fail = 0, to_neutral = 0, to_expr = 0;
    int m = 0;
    for (int64_t i = 0; i < 70; i++) {
        et_synth_sample_face(&o, i, &f);
        CHECK(f.deg.lm_fail, "fail_prob 1 fails face %lld", (long long)i);
        if (f.emotion != ET_SYNTH_SURPRISE) continue;  // the largest geometric change
        et_synth_face nf = f;
        nf.deg.lm_noise = 0;
        et_synth_set_intensity(&nf, 0);
        err_fail += point_err_px(f.landmarks, f.detected, 0, 67);
        to_neutral += point_err_px(nf.landmarks, f.detected, 48, 67);
        to_expr += point_err_px(f.landmarks, f.detected, 48, 67);
        m++;
    }
    CHECK(m > 0, "surprise faces");
    printf(
        "  failed detections (surprise): error %.2f px; mouth: %.2f px from the neutral "
        "shape, %.2f px from the true one\n",
        err_fail / m, to_neutral / m, to_expr / m);
    CHECK(err_fail / m > 4.0, "failed detections err %.2f px", err_fail / m);
    CHECK(to_neutral < to_expr, "a failed detection is nearer the neutral mouth");
}

static int count_str(const char *s, const char *w) {
    int n = 0;
    for (const char *p = strstr(s, w); p; p = strstr(p + 1, w)) n++;
    return n;
}

static void test_captions(void) {
    et_synth_opts o = small_opts();
    o.occlusion_prob = 0.5f;
    static const char *const adj[ET_SYNTH_N_EMOTIONS] = {"happ",    "sad",     "surprise", "ang",
                                                         "neutral", "disgust", "fear"};
    static const char *const who[4][2] = {{"girl", "boy"},
                                          {"young woman", "young man"},
                                          {"woman", "man"},
                                          {"older woman", "older man"}};
    int distinct_starts = 0, with_numbers = 0, sunglasses = 0, n_glasses = 0, pose = 0;
    char first[8][16];
    for (int64_t i = 0; i < 200; i++) {
        et_synth_face f;
        et_synth_sample_face(&o, i, &f);
        char c[1024], c2[1024];
        int len = et_synth_caption(&f, o.seed, c, sizeof(c));
        et_synth_caption(&f, o.seed, c2, sizeof(c2));
        CHECK(len == (int)strlen(c) && strcmp(c, c2) == 0, "caption %lld deterministic",
              (long long)i);
        CHECK(strstr(c, adj[f.emotion]), "caption of %s names it: %s",
              et_synth_emotion_name(f.emotion), c);
        const char *w = who[f.app.age][f.app.gender];
        CHECK(strstr(c, w), "caption names '%s': %s", w, c);
        if (f.app.gender == ET_SYNTH_FEMALE) CHECK(!strstr(c, " man"), "no ' man': %s", c);
        // sentence case, short, plain words
        CHECK(c[0] >= 'A' && c[0] <= 'Z' && c[len - 1] == '.', "sentence: %s", c);
        CHECK(count_str(c, ". ") <= 1, "one or two sentences: %s", c);
        for (int k = 1; k < len; k++)
            if (c[k] >= 'A' && c[k] <= 'Z')
                CHECK((k >= 2 && c[k - 2] == '.') || (c[k] == 'A' && c[k + 1] == 'U') ||
                          (c[k] == 'U' && c[k - 1] == 'A'),
                      "capital only at a sentence start or in AUn: %s", c);
        with_numbers += strstr(c, "(AU") != NULL;
        pose += strstr(c, "turned") || strstr(c, "tilted");
        if (f.deg.occluder == ET_SYNTH_OCC_SUNGLASSES) {
            n_glasses++;
            sunglasses += strstr(c, "sunglasses") != NULL;
        } else {
            CHECK(!strstr(c, "sunglasses"), "no sunglasses mentioned: %s", c);
        }
        // the wording varies within a class
        char start[16];
        snprintf(start, sizeof(start), "%.6s", c);
        int known = 0;
        for (int k = 0; k < distinct_starts; k++) known |= !strcmp(first[k], start);
        if (!known && distinct_starts < 8) snprintf(first[distinct_starts++], 16, "%s", start);
        if (i < 3) printf("  caption %lld: %s\n", (long long)i, c);
        // another seed: possibly other words, same facts
        et_synth_caption(&f, o.seed + 1, c2, sizeof(c2));
        CHECK(strstr(c2, adj[f.emotion]) && strstr(c2, w), "seed+1: %s", c2);
    }
    CHECK(distinct_starts >= 4, "%d distinct caption openings", distinct_starts);
    CHECK(with_numbers > 40 && with_numbers < 160, "%d captions list AU numbers", with_numbers);
    CHECK(n_glasses > 0 && sunglasses == n_glasses, "sunglasses named %d/%d", sunglasses,
          n_glasses);
    CHECK(pose > 20, "%d captions mention the pose", pose);
    // truncation: snprintf semantics
    et_synth_face f;
    et_synth_sample_face(&o, 1, &f);
    char full[1024], small[16];
    int len = et_synth_caption(&f, o.seed, full, sizeof(full));
    int len2 = et_synth_caption(&f, o.seed, small, sizeof(small));
    CHECK(len2 == len && strlen(small) == 15 && strncmp(small, full, 15) == 0, "truncated");
}

static void test_text_samples(void) {
    et_synth_opts o = small_opts();
    int rounds[4] = {0}, cat = 0, same = 0, short_caps = 0;
    char q[ET_SYNTH_TEXT_ROUNDS][ET_SYNTH_TEXT_MAX], a[ET_SYNTH_TEXT_ROUNDS][ET_SYNTH_TEXT_MAX];
    char q2[ET_SYNTH_TEXT_ROUNDS][ET_SYNTH_TEXT_MAX], a2[ET_SYNTH_TEXT_ROUNDS][ET_SYNTH_TEXT_MAX];
    for (int64_t k = 0; k < 300; k++) {
        int e = -1, e2 = -1;
        int nr = et_synth_text_sample(&o, ET_SYNTH_TRAIN, k, ET_SYNTH_TEXT_ROUNDS, q, a, &e);
        int nr2 = et_synth_text_sample(&o, ET_SYNTH_TRAIN, k, ET_SYNTH_TEXT_ROUNDS, q2, a2, &e2);
        CHECK(nr >= 1 && nr <= 3 && nr == nr2 && e == e2, "rounds %d", nr);
        for (int i = 0; i < nr; i++) {
            CHECK(strcmp(q[i], q2[i]) == 0 && strcmp(a[i], a2[i]) == 0, "deterministic");
            CHECK(q[i][0] && a[i][0] && !strstr(q[i], "<image>"), "round %d: '%s' '%s'", i, q[i],
                  a[i]);
        }
        rounds[nr]++;
        for (int i = 1; i < nr; i++)
            if (!strcmp(q[i], "Write a short caption of the face.")) {
                CHECK(!strncmp(a[i], "Face of ", 8) && strstr(a[i], et_synth_emotion_name(e)),
                      "short caption answer: %s", a[i]);
                short_caps++;
            }
        if (strstr(q[0], "Choose one from the following options: {")) {
            cat++;
            CHECK(strcmp(a[0], et_synth_emotion_name(e)) == 0, "category answer %s", a[0]);
            // the question itself never names the answer outside the option list
            char ctx[ET_SYNTH_TEXT_MAX];
            snprintf(ctx, sizeof(ctx), "%s", q[0]);
            char *opt = strstr(ctx, "What is the emotion");
            if (opt) *opt = 0;
            CHECK(!strstr(ctx, et_synth_emotion_name(e)), "context leaks the label: %s", q[0]);
        }
        if (k < 3) {
            printf("  text %lld:", (long long)k);
            for (int i = 0; i < nr; i++) printf(" [human] %s [gpt] %s", q[i], a[i]);
            printf("\n");
        }
        // test text: another face range
        et_synth_text_sample(&o, ET_SYNTH_TEST, k, 1, q2, a2, &e2);
        same += strcmp(q[0], q2[0]) == 0;  // e.g. "This face shows no action units."
    }
    printf("  300 text samples: %d / %d / %d with 1 / 2 / 3 rounds, %d category questions\n",
           rounds[1], rounds[2], rounds[3], cat);
    CHECK(rounds[1] > 50 && rounds[2] > 50 && rounds[3] > 30, "round mix");
    CHECK(cat > 80, "category questions %d", cat);
    CHECK(short_caps > 20, "short-caption rounds %d", short_caps);
    CHECK(same < 15, "train and test text (other faces) equal in %d of 300", same);
    int nr = et_synth_text_sample(&o, ET_SYNTH_TRAIN, 5, 1, q, a, NULL);
    CHECK(nr == 1, "max_rounds 1");
}

static cJSON *read_json(const char *name) {
    char path[512], *txt = NULL;
    snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    et_status st = et_read_file(path, 1 << 26, &txt, NULL);
    CHECK(!st, "%s", et_status_msg(st));
    et_status_free(st);
    cJSON *j = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    CHECK(cJSON_IsArray(j), "%s is a JSON array", name);
    return j;
}

static void test_writer_files(void) {
    et_synth_opts o = small_opts();
    o.n_train = 14;
    o.n_test = 7;
    o.size = 32;
    o.n_text = 25;
    o.occlusion_prob = o.jpeg_prob = o.lowres_prob = 0.5f;
    et_status st = et_synth_write_dataset(&o, g_dir);
    CHECK(!st, "%s", et_status_msg(st));
    et_status_free(st);
    static const char *const names[2] = {"captions_train.json", "captions_test.json"};
    for (int split = 0; split < 2; split++) {
        cJSON *arr = read_json(names[split]);
        int64_t lo = split ? o.n_train : 0, n = split ? o.n_test : o.n_train;
        CHECK(cJSON_GetArraySize(arr) == n, "%s: %lld samples", names[split], (long long)n);
        for (int i = 0; arr && i < cJSON_GetArraySize(arr); i++) {
            const cJSON *s = cJSON_GetArrayItem(arr, i);
            et_synth_face f;
            et_synth_sample_face(&o, lo + i, &f);
            char want[64], cap[1024];
            snprintf(want, sizeof(want), "synth_%06lld", (long long)(lo + i));
            CHECK(jstr(s, "id") && !strcmp(jstr(s, "id"), want), "id");
            snprintf(want, sizeof(want), "images/synth_%06lld.png", (long long)(lo + i));
            CHECK(jstr(s, "image") && !strcmp(jstr(s, "image"), want), "image");
            CHECK(jstr(s, "landmark") && strstr(jstr(s, "landmark"), "landmarks/"), "landmark");
            CHECK(jstr(s, "label") && et_synth_emotion_from_name(jstr(s, "label")) == f.emotion,
                  "label");
            const cJSON *at = cJSON_GetObjectItemCaseSensitive(s, "attributes");
            CHECK(jstr(at, "age") && !strcmp(jstr(at, "age"), et_synth_age_name(f.app.age)), "age");
            CHECK(jstr(at, "gender") && jstr(at, "race"), "gender, race");
            const cJSON *conv = cJSON_GetObjectItemCaseSensitive(s, "conversations");
            CHECK(cJSON_GetArraySize(conv) == 2, "plain: exactly two turns");
            const cJSON *h = cJSON_GetArrayItem(conv, 0), *g = cJSON_GetArrayItem(conv, 1);
            CHECK(jstr(h, "from") && !strcmp(jstr(h, "from"), "human") && jstr(h, "value") &&
                      !strcmp(jstr(h, "value"), "<image>\n"),
                  "human turn is the media only");
            et_synth_caption_short(&f, cap, sizeof(cap));  // the default caption_style
            CHECK(jstr(g, "from") && !strcmp(jstr(g, "from"), "gpt") && jstr(g, "value") &&
                      !strcmp(jstr(g, "value"), cap),
                  "gpt turn is the short caption");
            // the written image is the degraded render; the landmarks are the detected ones
            char p[600];
            snprintf(p, sizeof(p), "%s/%s", g_dir, jstr(s, "image"));
            et_image img, ref;
            st = et_image_decode_file(p, NULL, &img);
            CHECK(!st, "%s", et_status_msg(st));
            et_status_free(st);
            render_ok(&f, o.size, &ref);
            CHECK(img.data && memcmp(img.data, ref.data, 32 * 32 * 3) == 0, "image %s", p);
            et_image_free(&img);
            et_image_free(&ref);
            snprintf(p, sizeof(p), "%s/%s", g_dir, jstr(s, "landmark"));
            float *lm = NULL;
            int nd = 0;
            int64_t shape[ET_NPY_MAX_DIMS];
            st = et_npy_read_f32(p, &lm, &nd, shape);
            CHECK(!st && nd == 1 && shape[0] == ET_SYNTH_LANDMARK_DIM, "%s", et_status_msg(st));
            et_status_free(st);
            CHECK(lm && !memcmp(lm, f.detected, sizeof(f.detected)), "detected landmarks");
            CHECK(lm && memcmp(lm, f.landmarks, sizeof(f.landmarks)), "not the exact ones");
            free(lm);
        }
        cJSON_Delete(arr);
    }
    static const char *const tnames[2] = {"text_train.json", "text_test.json"};
    for (int split = 0; split < 2; split++) {
        cJSON *arr = read_json(tnames[split]);
        int n = split ? 2 : 25;
        CHECK(cJSON_GetArraySize(arr) == n, "%s: %d samples", tnames[split], n);
        for (int i = 0; arr && i < cJSON_GetArraySize(arr); i++) {
            const cJSON *s = cJSON_GetArrayItem(arr, i);
            CHECK(!cJSON_GetObjectItemCaseSensitive(s, "image") &&
                      !cJSON_GetObjectItemCaseSensitive(s, "video"),
                  "text samples have no media");
            CHECK(jstr(s, "id") && jstr(s, "label"), "id, label");
            const cJSON *conv = cJSON_GetObjectItemCaseSensitive(s, "conversations");
            int nt = cJSON_GetArraySize(conv);
            CHECK(nt >= 2 && nt <= 6 && nt % 2 == 0, "%d turns", nt);
            for (int t = 0; t < nt; t++) {
                const cJSON *turn = cJSON_GetArrayItem(conv, t);
                CHECK(jstr(turn, "from") && !strcmp(jstr(turn, "from"), t % 2 ? "gpt" : "human"),
                      "turn %d alternates", t);
                CHECK(jstr(turn, "value") && jstr(turn, "value")[0], "turn %d has text", t);
            }
            char q[ET_SYNTH_TEXT_ROUNDS][ET_SYNTH_TEXT_MAX];
            char a[ET_SYNTH_TEXT_ROUNDS][ET_SYNTH_TEXT_MAX];
            et_synth_text_sample(&o, split ? ET_SYNTH_TEST : ET_SYNTH_TRAIN, i,
                                 ET_SYNTH_TEXT_ROUNDS, q, a, NULL);
            const char *v0 = jstr(cJSON_GetArrayItem(conv, 0), "value");
            CHECK(v0 && !strcmp(v0, q[0]), "text sample %d is et_synth_text_sample", i);
        }
        cJSON_Delete(arr);
    }
    // n_text 0: no text files are written (old ones stay as they were); prose captions
    char p[600];
    snprintf(p, sizeof(p), "%s/text_train.json", g_dir);
    remove(p);
    o.n_text = 0;
    o.caption_style = ET_SYNTH_CAPTION_PROSE;
    st = et_synth_write_dataset(&o, g_dir);
    CHECK(!st && access(p, F_OK) != 0, "n_text 0 writes no text_train.json");
    et_status_free(st);
    cJSON *arr = read_json("captions_test.json");
    for (int i = 0; arr && i < cJSON_GetArraySize(arr); i++) {
        et_synth_face f;
        et_synth_sample_face(&o, o.n_train + i, &f);
        char cap[1024];
        et_synth_caption(&f, o.seed, cap, sizeof(cap));
        const cJSON *conv =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(arr, i), "conversations");
        const char *v = jstr(cJSON_GetArrayItem(conv, 1), "value");
        CHECK(v && !strcmp(v, cap), "caption_style prose writes et_synth_caption: %s", v);
    }
    cJSON_Delete(arr);
}

// The short captions: one fixed structure with every fact, in the order of the contract.
static void test_short_captions(void) {
    et_synth_opts o = small_opts();
    o.occlusion_prob = 0.5f;
    int n_occ = 0, n_pose = 0, n_none = 0;
    for (int64_t i = 0; i < 300; i++) {
        et_synth_face f;
        et_synth_sample_face(&o, i, &f);
        char c[1024], want[256];
        int len = et_synth_caption_short(&f, c, sizeof(c));
        CHECK(len == (int)strlen(c) && c[len - 1] == '.', "%s", c);
        const char *age = et_synth_age_name(f.app.age);
        snprintf(want, sizeof(want), "Face of %s %s %s, %s skin, expressing %s",
                 strchr("aeiou", age[0]) ? "an" : "a", age, et_synth_gender_name(f.app.gender),
                 et_synth_skin_name(f.app.skin_group),
                 f.emotion == ET_SYNTH_NEUTRAL ? "neutral" : "");
        CHECK(!strncmp(c, want, strlen(want)), "opening '%s': %s", want, c);
        if (f.emotion != ET_SYNTH_NEUTRAL) {
            static const char *const names[ET_SYNTH_N_EMOTIONS] = {
                "happiness", "sadness", "surprise", "anger", "neutral", "disgust", "fear"};
            snprintf(want, sizeof(want), "expressing %s (", names[f.emotion]);
            CHECK(strstr(c, want), "'%s': %s", want, c);
        }
        // every visible AU by number and FACS name; hidden ones left out
        int aus[ET_SYNTH_AU_MAX], m = et_synth_face_aus(&f, aus, ET_SYNTH_AU_MAX), shown = 0;
        for (int k = 0; k < m; k++) {
            snprintf(want, sizeof(want), "AU%d (", aus[k]);
            int hidden =
                (f.deg.occluder == ET_SYNTH_OCC_SUNGLASSES && (aus[k] == 5 || aus[k] == 7)) ||
                (f.deg.occluder == ET_SYNTH_OCC_HAND_MOUTH && aus[k] >= 10);
            CHECK((strstr(c, want) == NULL) == hidden, "AU%d %s: %s", aus[k],
                  hidden ? "hidden" : "shown", c);
            shown += !hidden;
        }
        CHECK(shown ? strstr(c, ". Active: AU") != NULL : strstr(c, ". No active AUs.") != NULL,
              "AU list: %s", c);
        n_none += !shown;
        if (f.deg.occluder == ET_SYNTH_OCC_SUNGLASSES) CHECK(strstr(c, ", sunglasses"), "%s", c);
        n_occ += f.deg.occluder != ET_SYNTH_OCC_NONE;
        int turn = fabsf(f.pose.yaw) > 0.2f;
        CHECK((strstr(c, "head turned") != NULL) == turn, "pose: %s", c);
        n_pose += turn;
        // a pure function of the face; snprintf truncation
        char c2[1024], small[12];
        CHECK(et_synth_caption_short(&f, c2, sizeof(c2)) == len && !strcmp(c, c2), "pure");
        CHECK(et_synth_caption_short(&f, small, sizeof(small)) == len && strlen(small) == 11 &&
                  !strncmp(small, c, 11),
              "truncated");
        if (i < 2) printf("  short caption %lld: %s\n", (long long)i, c);
    }
    CHECK(n_occ > 50 && n_pose > 20 && n_none > 0, "occluders %d, turned heads %d, no AUs %d",
          n_occ, n_pose, n_none);
}

// The templates take the pretraining data: captions with `plain` (exactly one human turn
// with the media, one gpt turn), text samples with vicuna_v1; lengths on the tiny tokenizer.
static void test_templates_accept(void) {
    et_tokenizer *tk = NULL;
    const char *tok_path = "configs/tiny-emola/tokenizer.json";
    et_status st = et_tokenizer_load(tok_path, &tk);
    CHECK(!st, "%s", et_status_msg(st));
    et_status_free(st);
    if (!tk) return;
    const et_template *plain = et_template_find("plain"), *vic = et_template_find("vicuna_v1");
    CHECK(plain && vic, "templates");
    et_template_opts to;
    et_template_opts_init(&to);
    to.max_len = 256;  // configs/tiny-emola.json data.max_len
    et_synth_opts o = small_opts();
    o.occlusion_prob = 0.5f;
    et_ids ids = {0}, labels = {0};
    size_t max_cap = 0, max_text = 0, sum_cap = 0, sum_text = 0;
    int n = 200;
    for (int64_t i = 0; i < n && plain && vic; i++) {
        et_synth_face f;
        et_synth_sample_face(&o, i, &f);
        char cap[1024];
        et_synth_caption(&f, o.seed, cap, sizeof(cap));
        et_chat_turn turns[2 * ET_SYNTH_TEXT_ROUNDS] = {{"human", "<image>\n"}, {"gpt", cap}};
        et_template_info info;
        st = et_template_encode(plain, tk, turns, 2, &to, &ids, &labels, &info);
        CHECK(!st && !info.mismatch && info.has_supervised && info.n_images == 1 && !info.truncated,
              "caption %lld with plain: %s", (long long)i, st ? et_status_msg(st) : cap);
        et_status_free(st);
        max_cap = info.full_len > max_cap ? info.full_len : max_cap;
        sum_cap += info.full_len;
        char q[ET_SYNTH_TEXT_ROUNDS][ET_SYNTH_TEXT_MAX], a[ET_SYNTH_TEXT_ROUNDS][ET_SYNTH_TEXT_MAX];
        int nr = et_synth_text_sample(&o, ET_SYNTH_TRAIN, i, ET_SYNTH_TEXT_ROUNDS, q, a, NULL);
        for (int r = 0; r < nr; r++) {
            turns[2 * r] = (et_chat_turn){"human", q[r]};
            turns[2 * r + 1] = (et_chat_turn){"gpt", a[r]};
        }
        st = et_template_encode(vic, tk, turns, (size_t)(2 * nr), &to, &ids, &labels, &info);
        CHECK(!st && !info.mismatch && info.has_supervised && info.n_images == 0 &&
                  info.n_rounds == nr && !info.truncated,
              "text %lld with vicuna_v1: %s (%zu ids)", (long long)i, st ? et_status_msg(st) : q[0],
              info.full_len);
        et_status_free(st);
        max_text = info.full_len > max_text ? info.full_len : max_text;
        sum_text += info.full_len;
    }
    printf(
        "  tokens (%s): captions with plain mean %.0f max %zu; text samples with vicuna_v1 "
        "mean %.0f max %zu (data.max_len 256)\n",
        tok_path, (double)sum_cap / n, max_cap, (double)sum_text / n, max_text);
    et_ids_free(&ids);
    et_ids_free(&labels);
    et_tokenizer_free(tk);
}

static void test_validation(void) {
#define BAD_FIELD(field, stmt)                                                               \
    do {                                                                                     \
        et_synth_opts o = small_opts();                                                      \
        stmt;                                                                                \
        et_status st = et_synth_check_opts(&o);                                              \
        CHECK(st &&et_status_code(st) == ET_ERR_INVALID && strstr(et_status_msg(st), field), \
              "%s: %s", field, st ? et_status_msg(st) : "accepted");                         \
        et_status_free(st);                                                                  \
    } while (0)
    BAD_FIELD("jpeg_prob", o.jpeg_prob = 1.5f);
    BAD_FIELD("jpeg_prob", o.jpeg_prob = NAN);
    BAD_FIELD("jpeg_quality_min", o.jpeg_quality_min = 0);
    BAD_FIELD("jpeg_quality_max", o.jpeg_quality_max = 101);
    BAD_FIELD("jpeg_quality_min", (o.jpeg_quality_min = 90, o.jpeg_quality_max = 30));
    BAD_FIELD("lowres_prob", o.lowres_prob = -0.1f);
    BAD_FIELD("lowres_min", o.lowres_min = 0.05f);
    BAD_FIELD("lowres_min", o.lowres_min = 1.5f);
    BAD_FIELD("occlusion_prob", o.occlusion_prob = 2);
    BAD_FIELD("landmark_noise", o.landmark_noise = -1);
    BAD_FIELD("landmark_noise", o.landmark_noise = 11);
    BAD_FIELD("landmark_fail_prob", o.landmark_fail_prob = 1.01f);
    BAD_FIELD("n_text", o.n_text = -1);
    BAD_FIELD("noise", o.noise = 100);
    BAD_FIELD("blur", o.blur = -1);
    BAD_FIELD("caption_style", o.caption_style = 2);
#undef BAD_FIELD
    et_synth_opts o = small_opts();
    et_status st = et_synth_check_opts(&o);
    CHECK(!st, "the defaults pass: %s", et_status_msg(st));
    et_status_free(st);
    o.jpeg_quality_min = o.jpeg_quality_max = 100;
    o.lowres_min = 1;
    st = et_synth_check_opts(&o);
    CHECK(!st, "edge values pass: %s", et_status_msg(st));
    et_status_free(st);
}

// The landmark shortcut: a linear probe (ridge) on the written (detected) landmarks of
// held-out identities, exact landmarks vs the default detector noise.
static void test_landmark_shortcut(void) {
    double acc[3];
    static const float scale[3] = {0, 1, -1};  // -1: the default
    for (int pass = 0; pass < 3; pass++) {
        et_synth_opts o = small_opts();
        if (scale[pass] >= 0) o.landmark_noise = scale[pass];
        int n = (int)(o.n_train + o.n_test), ntr = (int)o.n_train;
        float *lm = malloc(sizeof(float) * ET_SYNTH_LANDMARK_DIM * (size_t)n);
        int *y = malloc(sizeof(int) * (size_t)n);
        for (int i = 0; i < n; i++) {
            et_synth_face f;
            et_synth_sample_face(&o, i, &f);
            y[i] = f.emotion;
            pose_normalise(f.detected, lm + (size_t)i * ET_SYNTH_LANDMARK_DIM);
        }
        acc[pass] = ridge_classifier(lm, y, ntr, n - ntr, ET_SYNTH_LANDMARK_DIM, 1e-3);
        printf(
            "  landmark_noise %g (fail_prob %g): linear probe on the written landmarks "
            "%.1f%% (chance 14.3%%)\n",
            (double)o.landmark_noise, (double)o.landmark_fail_prob, 100 * acc[pass]);
        free(lm);
        free(y);
    }
    CHECK(acc[0] > 0.97, "exact landmarks are a shortcut: %.3f", acc[0]);
    CHECK(acc[1] < acc[0] && acc[2] < acc[1], "noise lowers the probe: %.3f %.3f %.3f", acc[0],
          acc[1], acc[2]);
    CHECK(acc[2] > 0.55 && acc[2] < 0.9, "default noise: probe %.3f in (0.55, 0.9)", acc[2]);
}

static void write_sheet(const char *path) {
    et_synth_opts o = small_opts();
    const int S = 64, cols = 10, rows = 6;
    et_image sheet;
    ET_ASSERT(!et_image_alloc(cols * S, rows * S, &sheet), "alloc");
    for (int i = 0; i < rows * cols; i++) {
        et_synth_face f;
        et_synth_sample_face(&o, i, &f);
        et_image img;
        render_ok(&f, S, &img);
        paste_tile(&sheet, &img, (i % cols) * S, (i / cols) * S);
        et_image_free(&img);
    }
    et_status st = et_image_write_png(path, &sheet);
    CHECK(!st, "%s", et_status_msg(st));
    et_status_free(st);
    et_image_free(&sheet);
    printf("  contact sheet of default faces written to %s\n", path);
}

int main(void) {
    snprintf(g_dir, sizeof(g_dir), "/tmp/et_test_synth_degrade_%d", (int)getpid());
    RUN(test_determinism_and_clean);
    RUN(test_occlusion);
    RUN(test_jpeg_and_lowres);
    RUN(test_landmark_noise);
    RUN(test_captions);
    RUN(test_short_captions);
    RUN(test_text_samples);
    RUN(test_writer_files);
    RUN(test_validation);
    RUN(test_templates_accept);
    RUN(test_landmark_shortcut);
    const char *sheet = getenv("ET_SYNTH_SHEET_DEGRADED");
    if (sheet && sheet[0]) write_sheet(sheet);
    remove_dir(g_dir);
    return test_summary();
}
