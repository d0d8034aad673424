// tests/test_synth.c - synthetic faces: determinism, landmarks vs pixels, AU prototypes,
// neutral geometry at intensity 0, the dataset writer, and that emotion is visible
// (nearest-centroid classifiers on landmarks and on 16x16 pixels beat chance). All on the
// clean faces (et_synth_opts_clean); degradations: tests/test_synth_degrade.c.
//
// ET_SYNTH_SHEET=path writes a contact sheet (7 emotions x 6 identities, 64 px) there.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/fileio.h"
#include "../data/image.h"
#include "../data/image_write.h"
#include "../data/npy.h"
#include "../data/synth.h"
#include "synth_test_util.h"
#include "test_util.h"

static et_synth_opts base_opts(void) {
    et_synth_opts o;
    et_synth_opts_default(&o);
    o.seed = 1234;
    o.n_train = 700;
    o.n_test = 350;
    // the figures below are those of the faces without degradations or landmark noise
    // (tests/test_synth_degrade.c covers those)
    et_synth_opts_clean(&o);
    o.n_text = 0;
    return o;
}

static float lum_at(const et_image *img, float x, float y, int r) {
    int cx = (int)x, cy = (int)y, n = 0;
    float acc = 0;
    for (int yy = cy - r; yy <= cy + r; yy++)
        for (int xx = cx - r; xx <= cx + r; xx++) {
            if (xx < 0 || yy < 0 || xx >= img->width || yy >= img->height) continue;
            const uint8_t *p = img->data + ((size_t)yy * img->width + xx) * 3;
            acc += 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
            n++;
        }
    return n ? acc / (float)n : 0;
}

static float rgb_dist(const et_image *img, float x0, float y0, float x1, float y1) {
    const uint8_t *a = img->data + ((size_t)(int)y0 * img->width + (int)x0) * 3;
    const uint8_t *b = img->data + ((size_t)(int)y1 * img->width + (int)x1) * 3;
    float d = 0;
    for (int c = 0; c < 3; c++) d += (float)((a[c] - b[c]) * (a[c] - b[c]));
    return sqrtf(d);
}

static void test_determinism(void) {
    et_synth_opts o = base_opts();
    et_synth_face a, b, c;
    et_synth_sample_face(&o, 17, &a);
    et_synth_sample_face(&o, 17, &b);
    CHECK(memcmp(&a, &b, sizeof(a)) == 0, "same (seed, index) gives the same face struct");
    et_image ia, ib, ic;
    render_ok(&a, 64, &ia);
    render_ok(&b, 64, &ib);
    CHECK(memcmp(ia.data, ib.data, 64 * 64 * 3) == 0, "same face renders the same bytes");
    et_synth_sample_face(&o, 18, &c);
    render_ok(&c, 64, &ic);
    CHECK(memcmp(ia.data, ic.data, 64 * 64 * 3) != 0, "index 18 differs from 17");
    et_image_free(&ic);
    o.seed = 99;
    et_synth_sample_face(&o, 17, &c);
    render_ok(&c, 64, &ic);
    CHECK(memcmp(ia.data, ic.data, 64 * 64 * 3) != 0, "another seed differs");
    CHECK(a.identity == et_synth_identity_of(&o, 17), "identity_of agrees");
    // a pinned value: changes only when the generator changes on purpose
    printf("  face 17: emotion %s identity %lld lm0 (%.4f, %.4f) byte0 %d\n",
           et_synth_emotion_name(a.emotion), (long long)a.identity, (double)a.landmarks[0],
           (double)a.landmarks[1], ia.data[0]);
    et_image_free(&ia);
    et_image_free(&ib);
    et_image_free(&ic);
}

static void test_splits_and_emotion_balance(void) {
    et_synth_opts o = base_opts();
    int count[2][ET_SYNTH_N_EMOTIONS] = {{0}};
    int64_t max_train_id = -1, min_test_id = INT64_MAX;
    for (int64_t i = 0; i < o.n_train + o.n_test; i++) {
        et_synth_face f;
        et_synth_sample_face(&o, i, &f);
        int sp = i < o.n_train ? 0 : 1;
        CHECK(f.split == (sp ? ET_SYNTH_TEST : ET_SYNTH_TRAIN), "split of %lld", (long long)i);
        count[sp][f.emotion]++;
        if (sp == 0 && f.identity > max_train_id) max_train_id = f.identity;
        if (sp == 1 && f.identity < min_test_id) min_test_id = f.identity;
    }
    CHECK(max_train_id < min_test_id, "identities disjoint: train max %lld, test min %lld",
          (long long)max_train_id, (long long)min_test_id);
    // 7 faces per identity cycle through the 7 emotions: exact balance
    for (int e = 0; e < ET_SYNTH_N_EMOTIONS; e++) {
        CHECK(count[0][e] == 100, "train count of %s = %d", et_synth_emotion_name(e), count[0][e]);
        CHECK(count[1][e] == 50, "test count of %s = %d", et_synth_emotion_name(e), count[1][e]);
    }
    // an emotion subset
    o.emotions = (1u << ET_SYNTH_HAPPINESS) | (1u << ET_SYNTH_FEAR);
    for (int64_t i = 0; i < 50; i++) {
        et_synth_face f;
        et_synth_sample_face(&o, i, &f);
        CHECK(f.emotion == ET_SYNTH_HAPPINESS || f.emotion == ET_SYNTH_FEAR, "subset only");
    }
}

static void test_landmarks_inside(void) {
    et_synth_opts o = base_opts();
    o.pose_jitter = 2.0f;  // the largest poses allowed
    int bad = 0;
    for (int64_t i = 0; i < 500; i++) {
        et_synth_face f;
        et_synth_sample_face(&o, i, &f);
        float px[ET_SYNTH_LANDMARK_DIM];
        et_synth_landmarks_px(&f, 64, px);
        for (int k = 0; k < ET_SYNTH_LANDMARK_DIM; k++) {
            if (!(f.landmarks[k] > -1 && f.landmarks[k] < 1) || !(px[k] >= 0 && px[k] < 64)) bad++;
            CHECK_CLOSE(px[k], (f.landmarks[k] + 1) * 32, 1e-5);
        }
    }
    CHECK(bad == 0, "%d landmark coordinates outside the image", bad);
    // layout: jaw left to right, chin lowest jaw point, eyes above the nose tip above the mouth
    et_synth_opts o0 = base_opts();
    o0.pose_jitter = 0;
    et_synth_face f;
    et_synth_sample_face(&o0, 3, &f);
    const float *L = f.landmarks;
#define LX(i) L[2 * (i)]
#define LY(i) L[2 * (i) + 1]
    for (int i = 1; i < 15; i++) CHECK(LX(i) < LX(i + 1), "jaw x increasing at %d", i);
    for (int i = 0; i < 8; i++)
        CHECK(LY(i) < LY(i + 1) && LY(16 - i) < LY(15 - i), "jaw y at %d", i);
    for (int i = 0; i <= 16; i++) CHECK(LY(8) >= LY(i), "chin is the lowest jaw point (%d)", i);
    CHECK(LX(36) < LX(39) && LX(39) < LX(42) && LX(42) < LX(45), "eye corners in order");
    CHECK(LX(17) < LX(21) && LX(22) < LX(26), "brows outer->inner, inner->outer");
    CHECK(LY(19) < LY(37) && LY(37) < LY(30) && LY(30) < LY(33) && LY(33) < LY(51),
          "brow above eye above nose tip above nose base above lip");
    CHECK(LX(48) < LX(60) && LX(64) < LX(54), "inner mouth corners inside outer ones");
    CHECK(LY(51) <= LY(62) && LY(62) <= LY(66) && LY(66) <= LY(57), "lip contours stacked");
#undef LX
#undef LY
}

static void test_landmarks_match_pixels(void) {
    et_synth_opts o = base_opts();
    o.noise = 0;
    o.blur = 0;
    o.extra_aus = false;
    int n_open = 0, n_eye = 0;
    for (int64_t i = 0; i < 140; i++) {
        et_synth_face f;
        et_synth_sample_face(&o, i, &f);
        et_image img;
        render_ok(&f, 128, &img);
        float p[ET_SYNTH_LANDMARK_DIM];
        et_synth_landmarks_px(&f, 128, p);
        // a cheek point: between jaw point 2 and the nose wing 31 (and 14/35 on the right)
        float chx = 0.55f * p[2 * 2] + 0.45f * p[2 * 31],
              chy = 0.55f * p[2 * 2 + 1] + 0.45f * p[2 * 31 + 1];
        float chx2 = 0.55f * p[2 * 14] + 0.45f * p[2 * 35];
        float chy2 = 0.55f * p[2 * 14 + 1] + 0.45f * p[2 * 35 + 1];
        float cheek = fmaxf(lum_at(&img, chx, chy, 1), lum_at(&img, chx2, chy2, 1));
        // the iris, pupil and lash line lie inside the box of the eye landmarks: its darkest
        // 3x3 patch is much darker than the cheek
        for (int side = 0; side < 2; side++) {
            float x0 = 1e9f, x1 = -1e9f, y0 = 1e9f, y1 = -1e9f;
            for (int k = 36 + 6 * side; k < 42 + 6 * side; k++) {
                x0 = fminf(x0, p[2 * k]), x1 = fmaxf(x1, p[2 * k]);
                y0 = fminf(y0, p[2 * k + 1]), y1 = fmaxf(y1, p[2 * k + 1]);
            }
            float eye = 1e9f;
            for (float yy = y0; yy <= y1; yy += 1)
                for (float xx = x0; xx <= x1; xx += 1) eye = fminf(eye, lum_at(&img, xx, yy, 1));
            CHECK(eye < 0.8f * cheek, "face %lld eye %d: darkest %.1f vs cheek %.1f", (long long)i,
                  side, (double)eye, (double)cheek);
            n_eye++;
        }
        // open mouths: the point between the inner lip centres is the mouth cavity
        if (f.emotion == ET_SYNTH_SURPRISE || f.emotion == ET_SYNTH_FEAR) {
            float mx = 0.5f * (p[2 * 62] + p[2 * 66]), my = 0.5f * (p[2 * 62 + 1] + p[2 * 66 + 1]);
            float d = rgb_dist(&img, mx, my, chx, chy);
            CHECK(d > 30, "face %lld (%s): mouth centre only %.1f from the cheek colour",
                  (long long)i, et_synth_emotion_name(f.emotion), (double)d);
            float lm = lum_at(&img, mx, my, 0);
            CHECK(lm < cheek, "face %lld: open mouth %.1f not darker than cheek %.1f", (long long)i,
                  (double)lm, (double)cheek);
            n_open++;
        }
        et_image_free(&img);
    }
    CHECK(n_open >= 30 && n_eye == 280, "checked %d open mouths, %d eyes", n_open, n_eye);
}

static void test_au_prototypes(void) {
    static const int proto[ET_SYNTH_N_EMOTIONS][8] = {
        {6, 12, 0}, {1, 4, 15, 0},  {1, 2, 5, 26, 0},          {4, 5, 7, 23, 0},
        {0},        {9, 15, 16, 0}, {1, 2, 4, 5, 7, 20, 26, 0}};
    et_synth_opts o = base_opts();
    int seen[ET_SYNTH_N_EMOTIONS] = {0};
    for (int64_t i = 0; i < 210; i++) {
        et_synth_face f;
        et_synth_sample_face(&o, i, &f);
        seen[f.emotion]++;
        int aus[ET_SYNTH_AU_MAX], n = et_synth_face_aus(&f, aus, ET_SYNTH_AU_MAX);
        for (const int *p = proto[f.emotion]; *p; p++) {
            int found = 0;
            for (int k = 0; k < n; k++) found |= aus[k] == *p;
            CHECK(found, "face %lld (%s) lacks AU%d", (long long)i,
                  et_synth_emotion_name(f.emotion), *p);
        }
        for (int k = 1; k < n; k++) CHECK(aus[k - 1] < aus[k], "AUs sorted");
        for (int k = 0; k < ET_SYNTH_AU_MAX; k++)
            CHECK_CLOSE(f.au[k], f.intensity * f.au_apex[k], 1e-6);
        CHECK(f.intensity >= o.intensity_min && f.intensity <= o.intensity_max, "intensity %g",
              (double)f.intensity);
    }
    for (int e = 0; e < ET_SYNTH_N_EMOTIONS; e++)
        CHECK(seen[e] == 30, "emotion %d seen %d", e, seen[e]);
    // without extras, neutral faces have no AU at all
    o.extra_aus = false;
    for (int64_t i = 0; i < 70; i++) {
        et_synth_face f;
        et_synth_sample_face(&o, i, &f);
        int aus[ET_SYNTH_AU_MAX];
        if (f.emotion == ET_SYNTH_NEUTRAL)
            CHECK(et_synth_face_aus(&f, aus, ET_SYNTH_AU_MAX) == 0, "neutral");
    }
    char buf[128];
    et_synth_face f;
    memset(&f, 0, sizeof(f));
    f.emotion = ET_SYNTH_FEAR;
    f.au[1] = f.au[2] = f.au[26] = 0.5f;
    f.au[5] = 0.09f;  // below ET_SYNTH_AU_PRESENT
    et_synth_aus_text(&f, "", buf, sizeof(buf));
    CHECK(strcmp(buf, "1, 2, 26") == 0, "aus text '%s'", buf);
    et_synth_aus_text(&f, "AU", buf, sizeof(buf));
    CHECK(strcmp(buf, "AU1, AU2, AU26") == 0, "aus text '%s'", buf);
}

static void test_describe(void) {
    et_synth_face f;
    memset(&f, 0, sizeof(f));
    f.emotion = ET_SYNTH_HAPPINESS;
    f.au[6] = 0.8f;
    f.au[12] = 0.9f;
    char buf[512];
    et_synth_describe(&f, buf, sizeof(buf));
    CHECK(strcmp(buf,
                 "The person's cheeks are raised and the lip corners are pulled up (AU6, "
                 "AU12), showing happiness.") == 0,
          "'%s'", buf);
    f.emotion = ET_SYNTH_SURPRISE;
    memset(f.au, 0, sizeof(f.au));
    f.au[1] = f.au[2] = f.au[5] = f.au[26] = 1;
    et_synth_describe(&f, buf, sizeof(buf));
    CHECK(strcmp(buf,
                 "The person's inner brows are raised, the outer brows are raised, the upper "
                 "eyelids are raised and the jaw is dropped (AU1, AU2, AU5, AU26), showing "
                 "surprise.") == 0,
          "'%s'", buf);
    memset(f.au, 0, sizeof(f.au));
    f.emotion = ET_SYNTH_NEUTRAL;
    et_synth_describe(&f, buf, sizeof(buf));
    CHECK(strstr(buf, "no visible action units") && strstr(buf, "neutral"), "'%s'", buf);
    CHECK(et_synth_emotion_from_name("disgust") == ET_SYNTH_DISGUST, "from name");
    CHECK(et_synth_emotion_from_name("contempt") == -1, "unknown name");
}

static void test_intensity_zero_is_neutral(void) {
    et_synth_opts o = base_opts();
    o.pose_jitter = 0;
    for (int64_t i = 0; i < 14; i++) {
        et_synth_face f, z, n;
        et_synth_sample_face(&o, i, &f);
        z = f;
        et_synth_set_intensity(&z, 0);
        n = f;
        memset(n.au_apex, 0, sizeof(n.au_apex));
        et_synth_set_intensity(&n, 1);
        CHECK(memcmp(z.landmarks, n.landmarks, sizeof(z.landmarks)) == 0,
              "face %lld: intensity 0 landmarks differ from the no-AU face", (long long)i);
        et_image a, b;
        render_ok(&z, 64, &a);
        render_ok(&n, 64, &b);
        CHECK(memcmp(a.data, b.data, 64 * 64 * 3) == 0, "intensity 0 renders the neutral face");
        et_image_free(&a);
        et_image_free(&b);
        // full intensity moves the features the way the emotion says (y grows downward)
        et_synth_face h = f;
        et_synth_set_intensity(&h, 1);
        const float *L0 = z.landmarks, *L1 = h.landmarks;
        float corners = (L1[2 * 48 + 1] + L1[2 * 54 + 1]) - (L0[2 * 48 + 1] + L0[2 * 54 + 1]);
        float brows = (L1[2 * 19 + 1] + L1[2 * 24 + 1]) - (L0[2 * 19 + 1] + L0[2 * 24 + 1]);
        float open1 = L1[2 * 66 + 1] - L1[2 * 62 + 1], open0 = L0[2 * 66 + 1] - L0[2 * 62 + 1];
        switch (f.emotion) {
            case ET_SYNTH_HAPPINESS:
                CHECK(corners < -0.05f, "smile raises the lip corners (%g)", (double)corners);
                break;
            case ET_SYNTH_SADNESS:
            case ET_SYNTH_DISGUST:
                CHECK(corners > 0.03f, "%s lowers the lip corners (%g)",
                      et_synth_emotion_name(f.emotion), (double)corners);
                break;
            case ET_SYNTH_SURPRISE:
                CHECK(brows < -0.05f, "surprise raises the brows (%g)", (double)brows);
                CHECK(open1 - open0 > 0.1f, "surprise opens the mouth (%g)",
                      (double)(open1 - open0));
                break;
            case ET_SYNTH_ANGER:
                CHECK(brows > 0.02f, "anger lowers the brows (%g)", (double)brows);
                break;
        }
    }
}

static char g_dir[256];

static void check_split_json(const et_synth_opts *o, const char *name, int64_t lo, int64_t n,
                             int64_t *ids, int *n_ids) {
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    char *txt = NULL;
    et_status st = et_read_file(path, 1 << 26, &txt, NULL);
    CHECK(!st, "%s", et_status_msg(st));
    et_status_free(st);
    if (!txt) return;
    cJSON *arr = cJSON_Parse(txt);
    free(txt);
    CHECK(cJSON_IsArray(arr) && cJSON_GetArraySize(arr) == n, "%s: array of %lld", name,
          (long long)n);
    int kinds[3] = {0, 0, 0};
    for (int i = 0; arr && i < cJSON_GetArraySize(arr); i++) {
        const cJSON *s = cJSON_GetArrayItem(arr, i);
        et_synth_face f;
        et_synth_sample_face(o, lo + i, &f);
        char want[64];
        snprintf(want, sizeof(want), "synth_%06lld", (long long)(lo + i));
        const char *id = jstr(s, "id"), *image = jstr(s, "image"), *lmk = jstr(s, "landmark");
        CHECK(id && strcmp(id, want) == 0, "id %s", id ? id : "(none)");
        CHECK(jstr(s, "source") && strcmp(jstr(s, "source"), "synth") == 0, "source");
        const char *label = jstr(s, "label");
        CHECK(label && et_synth_emotion_from_name(label) == f.emotion, "label");
        char aus[128];
        et_synth_aus_text(&f, "", aus, sizeof(aus));
        CHECK(jstr(s, "aus") && strcmp(jstr(s, "aus"), aus) == 0, "aus");
        const cJSON *at = cJSON_GetObjectItemCaseSensitive(s, "attributes");
        CHECK(jstr(at, "age") && jstr(at, "gender") && jstr(at, "race"), "attributes");
        const cJSON *idn = cJSON_GetObjectItemCaseSensitive(s, "identity");
        CHECK(cJSON_IsNumber(idn) && (int64_t)idn->valuedouble == f.identity, "identity");
        ids[(*n_ids)++] = f.identity;
        const cJSON *conv = cJSON_GetObjectItemCaseSensitive(s, "conversations");
        CHECK(cJSON_IsArray(conv) && cJSON_GetArraySize(conv) == 2, "two turns");
        const cJSON *h = cJSON_GetArrayItem(conv, 0), *g = cJSON_GetArrayItem(conv, 1);
        const char *q = jstr(h, "value"), *a = jstr(g, "value");
        CHECK(jstr(h, "from") && strcmp(jstr(h, "from"), "human") == 0, "human turn");
        CHECK(jstr(g, "from") && strcmp(jstr(g, "from"), "gpt") == 0, "gpt turn");
        CHECK(q && strncmp(q, "<image>\n", 8) == 0, "question starts with <image>");
        if (q && a && strstr(q, "Choose one from the following options: {")) {
            kinds[0]++;
            CHECK(strcmp(a, label) == 0, "category answer '%s' vs label '%s'", a, label);
            for (int e = 0; e < ET_SYNTH_N_EMOTIONS; e++)
                CHECK(strstr(q, et_synth_emotion_name(e)), "option %d listed", e);
        } else if (q && a && strstr(q, "Describe the facial expression.")) {
            kinds[1]++;
            CHECK(strstr(a, "The person's") && strstr(a, "showing"), "description '%s'", a);
        } else if (q && a && strstr(q, "What AUs are conveyed by this face?")) {
            kinds[2]++;
            char au2[128];
            et_synth_aus_text(&f, "AU", au2, sizeof(au2));
            CHECK(strcmp(a, au2[0] ? au2 : "None") == 0, "AU answer '%s' vs '%s'", a, au2);
        } else {
            CHECK(0, "unknown question '%s'", q ? q : "(none)");
        }
        // the image decodes to what the renderer makes; landmarks round-trip
        char p2[600];
        snprintf(p2, sizeof(p2), "%s/%s", g_dir, image ? image : "?");
        et_image img, ref;
        st = et_image_decode_file(p2, NULL, &img);
        CHECK(!st && img.width == o->size && img.height == o->size, "%s", et_status_msg(st));
        et_status_free(st);
        render_ok(&f, o->size, &ref);
        CHECK(!img.data || memcmp(img.data, ref.data, (size_t)o->size * o->size * 3) == 0,
              "written image equals the render");
        et_image_free(&img);
        et_image_free(&ref);
        snprintf(p2, sizeof(p2), "%s/%s", g_dir, lmk ? lmk : "?");
        float *lm = NULL;
        int nd = 0;
        int64_t shape[ET_NPY_MAX_DIMS];
        st = et_npy_read_f32(p2, &lm, &nd, shape);
        CHECK(!st && nd == 1 && shape[0] == ET_SYNTH_LANDMARK_DIM, "%s", et_status_msg(st));
        et_status_free(st);
        CHECK(lm && memcmp(lm, f.landmarks, sizeof(f.landmarks)) == 0, "landmarks round trip");
        free(lm);
    }
    printf("  %s: %d category, %d descriptive, %d AU questions\n", name, kinds[0], kinds[1],
           kinds[2]);
    if (n >= 20) CHECK(kinds[0] > 0 && kinds[1] > 0 && kinds[2] > 0, "all question kinds");
    cJSON_Delete(arr);
}

static void test_writer(void) {
    et_synth_opts o = base_opts();
    o.n_train = 28;
    o.n_test = 21;
    o.size = 48;
    o.descriptive_frac = 0.3f;
    o.au_question_frac = 0.3f;
    o.n_clips = 2;
    o.clip_frames = 4;
    o.n_text = 12;
    et_status st = et_synth_write_dataset(&o, g_dir);
    CHECK(!st, "%s", et_status_msg(st));
    et_status_free(st);
    int64_t ids_train[64], ids_test[64];
    int nt = 0, ns = 0;
    check_split_json(&o, "train.json", 0, o.n_train, ids_train, &nt);
    check_split_json(&o, "test.json", o.n_train, o.n_test, ids_test, &ns);
    for (int i = 0; i < nt; i++)
        for (int j = 0; j < ns; j++) CHECK(ids_train[i] != ids_test[j], "identity in both splits");
    // clips: frames decode, frame 0 is neutral, the last is the apex
    for (int c = 0; c < o.n_clips; c++) {
        et_synth_face apex;
        et_synth_sample_clip(&o, c, &apex);
        for (int t = 0; t < o.clip_frames; t++) {
            char p[600];
            snprintf(p, sizeof(p), "%s/clips/synth_clip_%04d/frame_%03d.png", g_dir, c, t);
            et_image img, ref;
            st = et_image_decode_file(p, NULL, &img);
            CHECK(!st, "%s", et_status_msg(st));
            et_status_free(st);
            et_synth_face f = apex;
            et_synth_set_intensity(&f, apex.intensity * (float)t / (float)(o.clip_frames - 1));
            render_ok(&f, o.size, &ref);
            CHECK(img.data && memcmp(img.data, ref.data, (size_t)o.size * o.size * 3) == 0,
                  "clip %d frame %d", c, t);
            int aus[ET_SYNTH_AU_MAX];
            if (t == 0) CHECK(et_synth_face_aus(&f, aus, ET_SYNTH_AU_MAX) == 0, "frame 0 neutral");
            et_image_free(&img);
            et_image_free(&ref);
        }
        char p[600];
        snprintf(p, sizeof(p), "%s/landmarks/synth_clip_%04d.npy", g_dir, c);
        float *lm = NULL;
        int nd = 0;
        int64_t shape[ET_NPY_MAX_DIMS];
        st = et_npy_read_f32(p, &lm, &nd, shape);
        CHECK(!st && nd == 2 && shape[0] == o.clip_frames && shape[1] == ET_SYNTH_LANDMARK_DIM,
              "clip landmarks: %s", et_status_msg(st));
        CHECK(lm && memcmp(lm + (size_t)(o.clip_frames - 1) * ET_SYNTH_LANDMARK_DIM, apex.landmarks,
                           sizeof(apex.landmarks)) == 0,
              "last clip frame is the apex");
        et_status_free(st);
        free(lm);
    }
    char p[600], *txt = NULL;
    snprintf(p, sizeof(p), "%s/clips.json", g_dir);
    st = et_read_file(p, 1 << 20, &txt, NULL);
    CHECK(!st, "%s", et_status_msg(st));
    et_status_free(st);
    cJSON *arr = txt ? cJSON_Parse(txt) : NULL;
    CHECK(cJSON_GetArraySize(arr) == 2, "clips.json has 2 clips");
    const cJSON *c0 = cJSON_GetArrayItem(arr, 0);
    CHECK(jstr(c0, "video") && strcmp(jstr(c0, "video"), "clips/synth_clip_0000") == 0, "video");
    const cJSON *h = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(c0, "conversations"), 0);
    CHECK(jstr(h, "value") && strncmp(jstr(h, "value"), "<video>\n", 8) == 0, "<video> token");
    cJSON_Delete(arr);
    free(txt);
    // no temporary files left
    snprintf(p, sizeof(p), "%s/train.json.tmp", g_dir);
    CHECK(access(p, F_OK) != 0, "no train.json.tmp");

    // errors name the problem
    et_synth_opts bad = o;
    bad.size = 8;
    st = et_synth_write_dataset(&bad, g_dir);
    CHECK(st && et_status_code(st) == ET_ERR_INVALID && strstr(et_status_msg(st), "size"), "%s",
          et_status_msg(st));
    et_status_free(st);
    bad = o;
    bad.intensity_min = 0.9f;
    bad.intensity_max = 0.2f;
    st = et_synth_check_opts(&bad);
    CHECK(st && strstr(et_status_msg(st), "intensity"), "%s", et_status_msg(st));
    et_status_free(st);
    bad = o;
    bad.descriptive_frac = 0.8f;
    st = et_synth_check_opts(&bad);
    CHECK(st && strstr(et_status_msg(st), "descriptive_frac"), "%s", et_status_msg(st));
    et_status_free(st);
    snprintf(p, sizeof(p), "%s/train.json/sub", g_dir);  // a file where a directory should be
    st = et_synth_write_dataset(&o, p);
    CHECK(st && et_status_code(st) == ET_ERR_IO && strstr(et_status_msg(st), "train.json"), "%s",
          et_status_msg(st));
    et_status_free(st);
}

// Nearest class mean with each feature scaled by its pooled within-class variance (a
// shared diagonal Gaussian); returns the test accuracy.
static double nearest_centroid(const float *xtr, const int *ytr, int ntr, const float *xte,
                               const int *yte, int nte, int dim) {
    double *mean = calloc((size_t)ET_SYNTH_N_EMOTIONS * dim, sizeof(double));
    double *var = calloc((size_t)dim, sizeof(double));
    int cnt[ET_SYNTH_N_EMOTIONS] = {0};
    for (int i = 0; i < ntr; i++) {
        cnt[ytr[i]]++;
        for (int k = 0; k < dim; k++) mean[(size_t)ytr[i] * dim + k] += xtr[(size_t)i * dim + k];
    }
    for (int e = 0; e < ET_SYNTH_N_EMOTIONS; e++)
        for (int k = 0; k < dim; k++) mean[(size_t)e * dim + k] /= cnt[e] ? cnt[e] : 1;
    for (int i = 0; i < ntr; i++)
        for (int k = 0; k < dim; k++) {
            double t = xtr[(size_t)i * dim + k] - mean[(size_t)ytr[i] * dim + k];
            var[k] += t * t / ntr;
        }
    int ok = 0;
    for (int i = 0; i < nte; i++) {
        int best = -1;
        double bd = 1e300;
        for (int e = 0; e < ET_SYNTH_N_EMOTIONS; e++) {
            double d = 0;
            for (int k = 0; k < dim; k++) {
                double t = xte[(size_t)i * dim + k] - mean[(size_t)e * dim + k];
                d += t * t / (var[k] + 1e-12);
            }
            if (d < bd) bd = d, best = e;
        }
        ok += best == yte[i];
    }
    free(mean);
    free(var);
    return (double)ok / nte;
}

// 16x16 grey (4x4 box means of a 64 px render), standardised per image.
static void pixel_features(const et_image *img, float *v) {
    float mu = 0, sd = 0;
    for (int b = 0; b < 256; b++) {
        float acc = 0;
        for (int yy = 0; yy < 4; yy++)
            for (int xx = 0; xx < 4; xx++) {
                const uint8_t *p =
                    img->data + ((size_t)((b / 16) * 4 + yy) * 64 + (size_t)(b % 16) * 4 + xx) * 3;
                acc += 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
            }
        v[b] = acc / 16;
        mu += v[b] / 256;
    }
    for (int b = 0; b < 256; b++) sd += (v[b] - mu) * (v[b] - mu) / 256;
    for (int b = 0; b < 256; b++) v[b] = (v[b] - mu) / sqrtf(sd + 1e-6f);
}

// Train on 700 faces (100 identities), test on 350 faces of 50 other identities.
static void test_emotion_is_visible(void) {
    for (int pass = 0; pass < 2; pass++) {
        et_synth_opts o = base_opts();
        o.pose_jitter = pass ? 1.0f : 0.0f;
        int n = (int)(o.n_train + o.n_test), ntr = (int)o.n_train;
        float *lm = malloc(sizeof(float) * ET_SYNTH_LANDMARK_DIM * (size_t)n);
        float *px = malloc(sizeof(float) * 256 * (size_t)n);
        int *y = malloc(sizeof(int) * (size_t)n);
        for (int i = 0; i < n; i++) {
            et_synth_face f;
            et_synth_sample_face(&o, i, &f);
            y[i] = f.emotion;
            pose_normalise(f.landmarks, lm + (size_t)i * ET_SYNTH_LANDMARK_DIM);
            et_image img;
            render_ok(&f, 64, &img);
            pixel_features(&img, px + (size_t)i * 256);
            et_image_free(&img);
        }
        double acc_lm = nearest_centroid(lm, y, ntr, lm + (size_t)ntr * ET_SYNTH_LANDMARK_DIM,
                                         y + ntr, n - ntr, ET_SYNTH_LANDMARK_DIM);
        double acc_px = ridge_classifier(px, y, ntr, n - ntr, 256, 10.0);
        printf(
            "  pose_jitter %g, held-out identities: landmark nearest centroid %.1f%%, "
            "ridge on 16x16 pixels %.1f%% (chance 14.3%%)\n",
            (double)o.pose_jitter, 100 * acc_lm, 100 * acc_px);
        CHECK(acc_lm > (pass ? 0.8 : 0.85), "landmark nearest-centroid accuracy %.3f", acc_lm);
        CHECK(acc_px > (pass ? 0.3 : 0.7), "pixel ridge accuracy %.3f", acc_px);
        free(lm);
        free(px);
        free(y);
    }
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void test_speed(void) {
    et_synth_opts o = base_opts();
    for (int k = 0; k < 2; k++) {
        int size = k ? 336 : 64, n = k ? 20 : 300;
        double t0 = now_s();
        for (int i = 0; i < n; i++) {
            et_synth_face f;
            et_synth_sample_face(&o, i, &f);
            et_image img;
            render_ok(&f, size, &img);
            et_image_free(&img);
        }
        printf("  %d px: %.0f faces/s (one core)\n", size, n / (now_s() - t0));
    }
}

static void write_sheet(const char *path) {
    et_synth_opts o = base_opts();
    const int S = 64, rows = 6;
    et_image sheet;
    ET_ASSERT(!et_image_alloc(7 * S, rows * S, &sheet), "alloc");
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < 7; j++) {
            et_synth_face f;
            et_synth_sample_face(&o, (int64_t)r * 7 + j, &f);  // identity r, all 7 emotions
            et_image img;
            render_ok(&f, S, &img);
            paste_tile(&sheet, &img, f.emotion * S, r * S);
            et_image_free(&img);
        }
    et_status st = et_image_write_png(path, &sheet);
    CHECK(!st, "%s", et_status_msg(st));
    et_status_free(st);
    et_image_free(&sheet);
    printf(
        "  contact sheet (columns: happiness sadness surprise anger neutral disgust fear) "
        "written to %s\n",
        path);
}

int main(void) {
    snprintf(g_dir, sizeof(g_dir), "/tmp/et_test_synth_%d", (int)getpid());
    RUN(test_determinism);
    RUN(test_splits_and_emotion_balance);
    RUN(test_landmarks_inside);
    RUN(test_landmarks_match_pixels);
    RUN(test_au_prototypes);
    RUN(test_describe);
    RUN(test_intensity_zero_is_neutral);
    RUN(test_writer);
    RUN(test_emotion_is_visible);
    RUN(test_speed);
    const char *sheet = getenv("ET_SYNTH_SHEET");
    if (sheet && sheet[0]) write_sheet(sheet);
    remove_dir(g_dir);
    return test_summary();
}
