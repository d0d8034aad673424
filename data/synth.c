// data/synth.c - see synth.h
//
// Layout: names and tables; random streams; options; sampling (appearance, pose,
// expression, degradations); geometry (AUs -> control points, pose transform, landmarks,
// detector noise); the polygon rasteriser; degradations (occluders, resampling, JPEG);
// rendering; AU text; captions and pretraining text; the dataset writer.
//
// Face coordinates: x to the image right, y down, origin on the midline near the top of
// the nose; the face half-width is ~1 unit. The pose maps a face point to normalised
// image coordinates ([-1, 1] across the image): yaw first (x cos(yaw) + depth sin(yaw),
// depth from an ellipsoidal head plus the nose), then scale, roll and translation.
// Drawing and landmarks both go through geom_xf, so they agree by construction.
#include "synth.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// clang-format off: jpeglib.h needs stdio.h first
#include <jpeglib.h>
// clang-format on

#include "../core/rng.h"
#include "image_write.h"
#include "npy.h"

#define PI_F 3.14159265358979f

// ---- names ------------------------------------------------------------------------

static const char *const k_emotion_names[ET_SYNTH_N_EMOTIONS] = {
    "happiness", "sadness", "surprise", "anger", "neutral", "disgust", "fear"};
static const char *const k_emotion_showing[ET_SYNTH_N_EMOTIONS] = {"showing happiness",
                                                                   "showing sadness",
                                                                   "showing surprise",
                                                                   "showing anger",
                                                                   "showing a neutral expression",
                                                                   "showing disgust",
                                                                   "showing fear"};

const char *et_synth_emotion_name(int e) {
    return e >= 0 && e < ET_SYNTH_N_EMOTIONS ? k_emotion_names[e] : "?";
}

int et_synth_emotion_from_name(const char *name) {
    if (!name) return -1;
    for (int e = 0; e < ET_SYNTH_N_EMOTIONS; e++)
        if (strcmp(name, k_emotion_names[e]) == 0) return e;
    return -1;
}

const char *et_synth_age_name(int age) {
    static const char *const n[] = {"child", "young adult", "adult", "senior"};
    return age >= 0 && age < 4 ? n[age] : "?";
}

const char *et_synth_gender_name(int g) {
    return g == ET_SYNTH_FEMALE ? "female" : g == ET_SYNTH_MALE ? "male" : "?";
}

const char *et_synth_skin_name(int group) {
    static const char *const n[] = {"light", "medium-light", "medium", "medium-dark", "dark"};
    return group >= 0 && group < 5 ? n[group] : "?";
}

// EMFACS prototypes (REFERENCE.md section 8), AU numbers, 0-terminated.
static const int k_prototype[ET_SYNTH_N_EMOTIONS][8] = {
    {6, 12, 0},                  // happiness
    {1, 4, 15, 0},               // sadness
    {1, 2, 5, 26, 0},            // surprise
    {4, 5, 7, 23, 0},            // anger
    {0},                         // neutral
    {9, 15, 16, 0},              // disgust
    {1, 2, 4, 5, 7, 20, 26, 0},  // fear
};

// AUs the geometry implements, the pool of random extras.
static const int k_extra_pool[] = {1, 2, 4, 5, 6, 7, 9, 10, 12, 15, 16, 17, 20, 23, 24, 25};

// ---- random streams -----------------------------------------------------------------
// A stream is a Philox key (derived from the seed, a tag and an id) and a position; each
// draw takes the next u32 of et_rng_u32(key, pos).

enum {
    TAG_IDENTITY = 1,
    TAG_EMOTION_START,
    TAG_SAMPLE,
    TAG_CLIP,
    TAG_NOISE,
    TAG_QUESTION,
    TAG_DEGRADE,
    TAG_LANDMARK,
    TAG_CAPTION,
    TAG_TEXT,
};

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

typedef struct {
    uint64_t key, pos;
} rstream;

static uint64_t stream_key(uint64_t seed, uint64_t tag, uint64_t id) {
    return mix64(seed ^ mix64(tag * 0x100000001b3ull ^ mix64(id)));
}

static rstream stream_for(uint64_t seed, uint64_t tag, uint64_t id) {
    return (rstream){stream_key(seed, tag, id), 0};
}

static float ru(rstream *s) {
    return (float)(et_rng_u32(s->key, s->pos++) >> 8) * (1.0f / 16777216.0f);
}
static float rrange(rstream *s, float lo, float hi) { return lo + (hi - lo) * ru(s); }
static float rsym(rstream *s, float half) { return half * (2.0f * ru(s) - 1.0f); }
// Standard normal (Box-Muller; two draws).
static float rnorm(rstream *s) {
    float u1 = ru(s) + 1.0f / 33554432.0f, u2 = ru(s);
    return sqrtf(-2.0f * logf(u1)) * cosf(2 * PI_F * u2);
}
static int rint_(rstream *s, int n) {
    int k = (int)(ru(s) * (float)n);
    return k < n ? k : n - 1;
}
// Index drawn with the given weights (need not sum to 1).
static int rpick(rstream *s, const float *w, int n) {
    float tot = 0;
    for (int i = 0; i < n; i++) tot += w[i];
    float u = ru(s) * tot;
    for (int i = 0; i < n; i++) {
        if (u < w[i]) return i;
        u -= w[i];
    }
    return n - 1;
}

// ---- options ------------------------------------------------------------------------

void et_synth_opts_default(et_synth_opts *o) {
    memset(o, 0, sizeof(*o));
    o->seed = 1;
    o->n_train = 1400;
    o->n_test = 350;
    o->size = 64;
    o->faces_per_identity = 7;
    o->noise = 3.0f;
    o->blur = 0.5f;
    o->pose_jitter = 1.0f;
    o->intensity_min = 0.6f;
    o->intensity_max = 1.0f;
    o->emotions = 0;
    o->extra_aus = true;
    o->descriptive_frac = 0;
    o->au_question_frac = 0;
    o->shuffle_options = true;
    o->n_clips = 0;
    o->clip_frames = 8;
    o->jpeg_prob = 0.3f;
    o->jpeg_quality_min = 20;
    o->jpeg_quality_max = 80;
    o->lowres_prob = 0.25f;
    o->lowres_min = 0.4f;
    o->occlusion_prob = 0.15f;
    o->landmark_noise = 2.0f;
    o->landmark_fail_prob = 0.05f;
    o->n_text = 10000;
    o->caption_style = ET_SYNTH_CAPTION_SHORT;
}

void et_synth_opts_clean(et_synth_opts *o) {
    o->jpeg_prob = 0;
    o->lowres_prob = 0;
    o->occlusion_prob = 0;
    o->landmark_noise = 0;
    o->landmark_fail_prob = 0;
}

et_status et_synth_check_opts(const et_synth_opts *o) {
#define BAD(...) return et_err(ET_ERR_INVALID, "synth options: " __VA_ARGS__)
    if (o->n_train < 0 || o->n_test < 0) BAD("n_train/n_test must be >= 0");
    if (o->n_train > ((int64_t)1 << 36) || o->n_test > ((int64_t)1 << 36))
        BAD("n_train/n_test larger than 2^36");
    if (o->size < 16 || o->size > 4096) BAD("size %d is not in 16..4096", o->size);
    if (o->faces_per_identity < 1 || o->faces_per_identity > 64)
        BAD("faces_per_identity %d is not in 1..64", o->faces_per_identity);
    if (!(o->noise >= 0 && o->noise <= 64)) BAD("noise %g is not in 0..64", (double)o->noise);
    if (!(o->blur >= 0 && o->blur <= 8)) BAD("blur %g is not in 0..8", (double)o->blur);
    if (!(o->pose_jitter >= 0 && o->pose_jitter <= 2))
        BAD("pose_jitter %g is not in 0..2", (double)o->pose_jitter);
    if (!(o->intensity_min >= 0 && o->intensity_min <= o->intensity_max && o->intensity_max <= 1))
        BAD("intensity range [%g, %g] is not inside [0, 1] or is reversed",
            (double)o->intensity_min, (double)o->intensity_max);
    if (o->emotions >> ET_SYNTH_N_EMOTIONS) BAD("emotions mask 0x%x has bits above 6", o->emotions);
    if (!(o->descriptive_frac >= 0 && o->au_question_frac >= 0 &&
          o->descriptive_frac + o->au_question_frac <= 1.0f + 1e-6f))
        BAD("descriptive_frac %g + au_question_frac %g must be fractions summing to <= 1",
            (double)o->descriptive_frac, (double)o->au_question_frac);
    if (o->n_clips < 0 || o->n_clips > 100000) BAD("n_clips %d is not in 0..100000", o->n_clips);
    if (o->clip_frames < 2 || o->clip_frames > 256)
        BAD("clip_frames %d is not in 2..256", o->clip_frames);
    if (!(o->jpeg_prob >= 0 && o->jpeg_prob <= 1))
        BAD("jpeg_prob %g is not in 0..1", (double)o->jpeg_prob);
    if (o->jpeg_quality_min < 1 || o->jpeg_quality_min > o->jpeg_quality_max ||
        o->jpeg_quality_max > 100)
        BAD("jpeg_quality_min %d / jpeg_quality_max %d must satisfy 1 <= min <= max <= 100",
            o->jpeg_quality_min, o->jpeg_quality_max);
    if (!(o->lowres_prob >= 0 && o->lowres_prob <= 1))
        BAD("lowres_prob %g is not in 0..1", (double)o->lowres_prob);
    if (!(o->lowres_min >= 0.1f && o->lowres_min <= 1))
        BAD("lowres_min %g is not in 0.1..1 (a fraction of the image size)", (double)o->lowres_min);
    if (!(o->occlusion_prob >= 0 && o->occlusion_prob <= 1))
        BAD("occlusion_prob %g is not in 0..1", (double)o->occlusion_prob);
    if (!(o->landmark_noise >= 0 && o->landmark_noise <= 10))
        BAD("landmark_noise %g is not in 0..10", (double)o->landmark_noise);
    if (!(o->landmark_fail_prob >= 0 && o->landmark_fail_prob <= 1))
        BAD("landmark_fail_prob %g is not in 0..1", (double)o->landmark_fail_prob);
    if (o->n_text < 0 || o->n_text > 10000000) BAD("n_text %d is not in 0..10000000", o->n_text);
    if (o->caption_style != ET_SYNTH_CAPTION_SHORT && o->caption_style != ET_SYNTH_CAPTION_PROSE)
        BAD("caption_style %d is not ET_SYNTH_CAPTION_SHORT or _PROSE", o->caption_style);
#undef BAD
    return NULL;
}

static int enabled_emotions(const et_synth_opts *o, int *list) {
    int n = 0;
    for (int e = 0; e < ET_SYNTH_N_EMOTIONS; e++)
        if (!o->emotions || (o->emotions >> e) & 1u) list[n++] = e;
    return n;
}

// ---- sampling -----------------------------------------------------------------------

static const float k_skin[5][2][3] = {{{0.97f, 0.84f, 0.74f}, {0.93f, 0.77f, 0.66f}},
                                      {{0.90f, 0.72f, 0.58f}, {0.84f, 0.65f, 0.50f}},
                                      {{0.77f, 0.57f, 0.41f}, {0.70f, 0.50f, 0.35f}},
                                      {{0.58f, 0.40f, 0.27f}, {0.50f, 0.33f, 0.22f}},
                                      {{0.40f, 0.26f, 0.17f}, {0.30f, 0.19f, 0.12f}}};
enum { HAIR_BLACK, HAIR_DARK, HAIR_BROWN, HAIR_LIGHT, HAIR_BLOND, HAIR_RED, HAIR_GREY, HAIR_WHITE };
static const float k_hair[8][3] = {
    {0.06f, 0.05f, 0.05f}, {0.17f, 0.11f, 0.07f}, {0.32f, 0.20f, 0.11f}, {0.50f, 0.35f, 0.20f},
    {0.82f, 0.68f, 0.42f}, {0.56f, 0.23f, 0.10f}, {0.58f, 0.58f, 0.58f}, {0.88f, 0.88f, 0.86f}};
static const float k_iris[6][3] = {{0.22f, 0.12f, 0.07f}, {0.36f, 0.21f, 0.10f},
                                   {0.44f, 0.37f, 0.18f}, {0.28f, 0.44f, 0.28f},
                                   {0.28f, 0.44f, 0.66f}, {0.44f, 0.49f, 0.54f}};

static void set3(float *d, float r, float g, float b) {
    d[0] = r;
    d[1] = g;
    d[2] = b;
}

static void sample_appearance(uint64_t seed, int64_t identity, et_synth_appearance *A) {
    rstream s = stream_for(seed, TAG_IDENTITY, (uint64_t)identity);
    memset(A, 0, sizeof(*A));
    static const float age_w[4] = {0.15f, 0.35f, 0.30f, 0.20f};
    A->age = rpick(&s, age_w, 4);
    A->gender = rint_(&s, 2);
    A->skin_group = rint_(&s, 5);
    int child = A->age == ET_SYNTH_CHILD, senior = A->age == ET_SYNTH_SENIOR;
    int male = A->gender == ET_SYNTH_MALE;

    float t = ru(&s);
    for (int c = 0; c < 3; c++) {
        float v = k_skin[A->skin_group][0][c] * (1 - t) + k_skin[A->skin_group][1][c] * t;
        A->skin[c] = fminf(1.0f, v * rrange(&s, 0.96f, 1.04f));
    }
    // hair colour
    float hw[8] = {0};
    if (A->skin_group >= 2) {
        hw[HAIR_BLACK] = 0.7f, hw[HAIR_DARK] = 0.25f, hw[HAIR_BROWN] = 0.05f;
    } else {
        hw[HAIR_BLACK] = 0.15f, hw[HAIR_DARK] = 0.25f, hw[HAIR_BROWN] = 0.25f;
        hw[HAIR_LIGHT] = 0.12f, hw[HAIR_BLOND] = 0.15f, hw[HAIR_RED] = 0.08f;
    }
    int hc = rpick(&s, hw, 8);
    if (senior && ru(&s) < 0.75f) hc = ru(&s) < 0.5f ? HAIR_GREY : HAIR_WHITE;
    for (int c = 0; c < 3; c++) A->hair[c] = k_hair[hc][c] * rrange(&s, 0.9f, 1.1f);
    float bf = hc >= HAIR_BLOND ? 0.55f : 0.8f;
    for (int c = 0; c < 3; c++) A->brow[c] = fminf(A->hair[c] * bf, A->skin[c] * 0.5f);
    // eyes
    int ic = A->skin_group >= 2 ? rint_(&s, 2) : rint_(&s, 6);
    for (int c = 0; c < 3; c++) A->iris[c] = k_iris[ic][c] * rrange(&s, 0.9f, 1.1f);
    // lips
    set3(A->lip, A->skin[0] * 0.84f + 0.04f, A->skin[1] * 0.56f, A->skin[2] * 0.58f);
    if (!male && !child && ru(&s) < 0.35f) {
        float m = rrange(&s, 0.35f, 0.65f);
        A->lip[0] = A->lip[0] * (1 - m) + 0.72f * m;
        A->lip[1] = A->lip[1] * (1 - m) + 0.14f * m;
        A->lip[2] = A->lip[2] * (1 - m) + 0.22f * m;
    }
    // clothes: a random colour, somewhat desaturated
    float g = ru(&s);
    for (int c = 0; c < 3; c++) A->cloth[c] = 0.15f + 0.7f * (0.5f * ru(&s) + 0.5f * g);

    // shape
    A->face_w = rrange(&s, 0.88f, 1.0f) + (male ? 0.03f : 0) + (child ? 0.04f : 0);
    A->face_up = rrange(&s, 1.12f, 1.26f) + (child ? 0.08f : 0);
    A->face_low = child ? rrange(&s, 1.0f, 1.1f) : rrange(&s, 1.15f, 1.32f) + (male ? 0.03f : 0);
    A->jaw_square = child  ? rrange(&s, 2.0f, 2.3f)
                    : male ? rrange(&s, 2.3f, 3.2f)
                           : rrange(&s, 2.0f, 2.6f);
    A->jaw_taper = child ? rrange(&s, 0.02f, 0.12f) : rrange(&s, 0.05f, 0.25f);
    A->eye_y = rrange(&s, -0.18f, -0.08f) + (child ? 0.08f : 0);
    A->eye_dx = rrange(&s, 0.36f, 0.43f);
    A->eye_w = rrange(&s, 0.16f, 0.20f) * (child ? 1.1f : 1.0f);
    A->eye_up = rrange(&s, 0.075f, 0.095f) * (child ? 1.15f : 1.0f);
    A->eye_low = rrange(&s, 0.045f, 0.06f) * (child ? 1.15f : 1.0f);
    A->eye_tilt = rrange(&s, -0.01f, 0.035f);
    A->iris_r = rrange(&s, 0.085f, 0.10f) * (child ? 1.08f : 1.0f);
    A->brow_dy = rrange(&s, 0.21f, 0.25f);
    A->brow_thick = male ? rrange(&s, 0.075f, 0.1f) : rrange(&s, 0.055f, 0.075f);
    A->brow_arch = male ? rrange(&s, 0.01f, 0.035f) : rrange(&s, 0.03f, 0.06f);
    A->nose_y = child ? rrange(&s, 0.16f, 0.24f) : rrange(&s, 0.22f, 0.32f);
    A->nose_w = rrange(&s, 0.12f, 0.16f) * (child ? 0.85f : 1.0f) + (male ? 0.015f : 0);
    A->mouth_y = A->nose_y + rrange(&s, 0.27f, 0.35f) * (child ? 0.9f : 1.0f);
    A->mouth_w = rrange(&s, 0.28f, 0.35f) * (child ? 0.88f : 1.0f);
    A->lip_up = rrange(&s, 0.05f, 0.075f) * (senior ? 0.8f : 1.0f);
    A->lip_low = (rrange(&s, 0.065f, 0.09f) + (male ? 0 : 0.01f)) * (senior ? 0.8f : 1.0f);
    // hair
    float sw[3];
    if (child) {
        sw[0] = 0, sw[1] = male ? 0.9f : 0.35f, sw[2] = male ? 0.1f : 0.65f;
    } else if (male) {
        sw[0] = senior ? 0.35f : 0.08f, sw[1] = 0.8f, sw[2] = 0.12f;
    } else {
        sw[0] = 0, sw[1] = 0.3f, sw[2] = 0.7f;
    }
    A->hair_style = rpick(&s, sw, 3);
    A->hairline = -A->face_up * rrange(&s, 0.66f, 0.84f);
    if (male && senior && ru(&s) < 0.5f) A->hairline = -A->face_up * 0.92f;
    A->hair_volume = rrange(&s, 0.03f, 0.16f);
    A->hair_len = rrange(&s, 1.0f, 2.2f);
    A->wrinkles = child                      ? 0
                  : senior                   ? rrange(&s, 0.5f, 0.9f)
                  : A->age == ET_SYNTH_ADULT ? rrange(&s, 0.1f, 0.3f)
                                             : rrange(&s, 0, 0.06f);
    A->stubble = (male && !child && ru(&s) < 0.3f) ? rrange(&s, 0.1f, 0.25f) : 0;
    A->scale = child ? rrange(&s, 0.88f, 0.94f) : rrange(&s, 0.97f, 1.03f);
}

static void sample_pose_imaging(const et_synth_opts *o, rstream *s, uint64_t noise_id,
                                et_synth_pose *P, et_synth_imaging *I) {
    float j = o->pose_jitter;
    P->roll = rsym(s, 0.17f * j);
    P->yaw = rsym(s, 0.35f * j);
    P->scale = 1.0f + rsym(s, 0.08f * j);
    P->tx = rsym(s, 0.04f * j);
    P->ty = rsym(s, 0.03f * j);
    P->gaze_x = rsym(s, 0.6f * j);
    P->gaze_y = rsym(s, 0.4f * j);
    I->exposure = rrange(s, 0.85f, 1.1f);
    float la = rrange(s, 0, 2 * PI_F), ls = rrange(s, 0, 0.2f);
    I->light_x = ls * cosf(la);
    I->light_y = ls * sinf(la);
    float b = ru(s);
    for (int c = 0; c < 3; c++) {
        float v = 0.15f + 0.75f * (0.6f * ru(s) + 0.4f * b);
        I->bg0[c] = v;
        I->bg1[c] = fminf(1.0f, fmaxf(0.0f, v * rrange(s, 0.6f, 1.2f) + rsym(s, 0.1f)));
    }
    I->bg_angle = rrange(s, 0, 2 * PI_F);
    I->noise_std = rrange(s, 0, o->noise);
    I->blur_sigma = rrange(s, 0, o->blur);
    I->noise_key = stream_key(o->seed, TAG_NOISE, noise_id);
}

static void sample_expression(const et_synth_opts *o, rstream *s, int emotion, et_synth_face *f) {
    f->emotion = emotion;
    memset(f->au_apex, 0, sizeof(f->au_apex));
    for (const int *p = k_prototype[emotion]; *p; p++) f->au_apex[*p] = rrange(s, 0.85f, 1.0f);
    // companions: AUs that come with the prototype
    float u = ru(s), v = rrange(s, 0.6f, 1.0f);
    switch (emotion) {
        case ET_SYNTH_HAPPINESS:
            if (u < 0.6f) f->au_apex[25] = v;  // open smile
            break;
        case ET_SYNTH_SURPRISE:
        case ET_SYNTH_FEAR:
            f->au_apex[25] = f->au_apex[26];
            break;
        case ET_SYNTH_DISGUST:
            f->au_apex[25] = 0.7f * f->au_apex[16];
            if (u < 0.5f) f->au_apex[10] = v;
            break;
        case ET_SYNTH_SADNESS:
            if (u < 0.5f) f->au_apex[17] = v;
            break;
        case ET_SYNTH_ANGER:
            if (u < 0.25f)
                f->au_apex[17] = v;
            else if (u < 0.5f)
                f->au_apex[24] = v;
            break;
    }
    float ne = ru(s);
    int n_extra = !o->extra_aus ? 0 : ne < 0.5f ? 0 : ne < 0.85f ? 1 : 2;
    for (int k = 0; k < n_extra; k++) {
        int au = k_extra_pool[rint_(s, (int)(sizeof(k_extra_pool) / sizeof(int)))];
        float a = rrange(s, 0.05f, 0.2f);
        if (f->au_apex[au] == 0) f->au_apex[au] = a;
    }
    float it = rrange(s, o->intensity_min, o->intensity_max);
    f->intensity = emotion == ET_SYNTH_NEUTRAL ? 1.0f : it;
}

// Degradations of sample (or clip) `id`: a stream of their own, a fixed sequence of draws.
static void sample_degrade(const et_synth_opts *o, uint64_t id, et_synth_face *f) {
    rstream s = stream_for(o->seed, TAG_DEGRADE, id);
    et_synth_degrade *D = &f->deg;
    memset(D, 0, sizeof(*D));
    float u_occ = ru(&s), u_kind = ru(&s), p[6], c[3];
    for (int i = 0; i < 6; i++) p[i] = ru(&s);
    for (int i = 0; i < 3; i++) c[i] = ru(&s);
    float u_low = ru(&s), f_low = ru(&s), u_jpg = ru(&s), q_jpg = ru(&s), u_fail = ru(&s);
    if (u_occ < o->occlusion_prob) {
        static const float w[4] = {0.3f, 0.25f, 0.2f, 0.25f};
        float acc = 0;
        D->occluder = ET_SYNTH_OCC_RECT;
        for (int i = 0; i < 4; i++) {
            acc += w[i];
            if (u_kind < acc) {
                D->occluder = ET_SYNTH_OCC_SUNGLASSES + i;
                break;
            }
        }
        switch (D->occluder) {
            case ET_SYNTH_OCC_SUNGLASSES: {
                D->occ[0] = -0.02f + 0.05f * p[0];  // vertical offset
                D->occ[1] = 0.85f + 0.35f * p[1];   // height factor
                D->occ[2] = 0.95f + 0.15f * p[2];   // width factor
                float v = 0.03f + 0.12f * c[0];
                set3(D->occ_rgb, v * (0.9f + 0.2f * c[1]), v, v * (0.9f + 0.2f * c[2]));
                break;
            }
            case ET_SYNTH_OCC_HAND_MOUTH:
            case ET_SYNTH_OCC_HAND_CHEEK: {
                D->occ[0] = 0.3f * p[0] - 0.15f;  // centre offset
                D->occ[1] = 0.1f * p[1] - 0.05f;
                D->occ[2] = 0.85f + 0.3f * p[2];         // size
                D->occ[3] = 0.8f * p[3] - 0.4f;          // angle
                D->occ[4] = p[4] < 0.5f ? -1.0f : 1.0f;  // cheek side
                int g = (int)(c[0] * 5) < 5 ? (int)(c[0] * 5) : 4;
                for (int ch = 0; ch < 3; ch++)
                    D->occ_rgb[ch] =
                        (k_skin[g][0][ch] + (k_skin[g][1][ch] - k_skin[g][0][ch]) * c[1]) * 0.95f;
                break;
            }
            default:
                D->occ[0] = 0.5f * p[0] - 0.25f;  // centre, image fractions from the head centre
                D->occ[1] = 0.5f * p[1] - 0.25f;
                D->occ[2] = 0.2f + 0.25f * p[2];  // width and height, image fractions
                D->occ[3] = 0.2f + 0.25f * p[3];
                D->occ[4] = 1.2f * p[4] - 0.6f;  // angle
                set3(D->occ_rgb, c[0], c[1], c[2]);
                break;
        }
    }
    if (u_low < o->lowres_prob) {
        float fac = o->lowres_min + (1 - o->lowres_min) * f_low;
        D->lowres = fac < 0.999f ? fac : 0;
    }
    if (u_jpg < o->jpeg_prob) {
        int span = o->jpeg_quality_max - o->jpeg_quality_min + 1;
        int q = o->jpeg_quality_min + (int)(q_jpg * (float)span);
        D->jpeg_quality = q > o->jpeg_quality_max ? o->jpeg_quality_max : q;
    }
    D->lm_noise = o->landmark_noise;
    D->lm_fail = o->landmark_noise > 0 && u_fail < o->landmark_fail_prob;
    D->lm_key = stream_key(o->seed, TAG_LANDMARK, id);
}

int64_t et_synth_identity_of(const et_synth_opts *o, int64_t index) {
    int64_t fpi = o->faces_per_identity;
    if (index < o->n_train) return index / fpi;
    int64_t n_id_train = (o->n_train + fpi - 1) / fpi;
    return n_id_train + (index - o->n_train) / fpi;
}

void et_synth_sample_face(const et_synth_opts *o, int64_t index, et_synth_face *f) {
    ET_ASSERT(index >= 0, "et_synth_sample_face: index %lld must be >= 0", (long long)index);
    ET_ASSERT(o->faces_per_identity >= 1, "et_synth_sample_face: opts not checked");
    memset(f, 0, sizeof(*f));
    f->index = index;
    f->split = index < o->n_train ? ET_SYNTH_TRAIN : ET_SYNTH_TEST;
    f->identity = et_synth_identity_of(o, index);
    int64_t pos = index < o->n_train ? index % o->faces_per_identity
                                     : (index - o->n_train) % o->faces_per_identity;
    sample_appearance(o->seed, f->identity, &f->app);
    int list[ET_SYNTH_N_EMOTIONS], n = enabled_emotions(o, list);
    rstream es = stream_for(o->seed, TAG_EMOTION_START, (uint64_t)f->identity);
    int start = rint_(&es, n);
    int emotion = list[(start + pos) % n];
    rstream s = stream_for(o->seed, TAG_SAMPLE, (uint64_t)index);
    sample_pose_imaging(o, &s, (uint64_t)index, &f->pose, &f->img);
    sample_expression(o, &s, emotion, f);
    sample_degrade(o, (uint64_t)index, f);
    et_synth_set_intensity(f, f->intensity);
}

void et_synth_sample_clip(const et_synth_opts *o, int64_t clip, et_synth_face *f) {
    ET_ASSERT(clip >= 0, "et_synth_sample_clip: clip %lld must be >= 0", (long long)clip);
    memset(f, 0, sizeof(*f));
    f->index = clip;
    f->split = ET_SYNTH_CLIP;
    f->identity = ((int64_t)1 << 40) + clip;  // a namespace of its own
    sample_appearance(o->seed, f->identity, &f->app);
    int list[ET_SYNTH_N_EMOTIONS], n = enabled_emotions(o, list);
    rstream s = stream_for(o->seed, TAG_CLIP, (uint64_t)clip);
    sample_pose_imaging(o, &s, ((uint64_t)1 << 40) + (uint64_t)clip, &f->pose, &f->img);
    sample_expression(o, &s, list[clip % n], f);
    sample_degrade(o, ((uint64_t)1 << 40) + (uint64_t)clip, f);
    et_synth_set_intensity(f, f->intensity);
}

// ---- geometry ---------------------------------------------------------------------

typedef struct {
    float x, y;
} v2;

typedef struct {
    const et_synth_appearance *A;
    float au[ET_SYNTH_AU_MAX];
    // pose transform
    float k, cr, sr, cyaw, syaw, ox, oy;
    // outline
    float a, b_up, b_low, jaw_n, taper;
    // eyes
    float ecx[2], ecy, ew, eU, eL, lift_out;
    float iris_dx, iris_dy, iris_r;
    // nose
    float nose_top, nose_tip, nose_base, nose_w;
    // mouth: corners (+-mw, myc); centre heights of the outer upper, inner upper, inner
    // lower and outer lower contours; their shape exponents
    float mw, myc, y_ou, y_iu, y_il, y_ol, p_out, p_in, q_in;
} geom;

#define MOUTH_INNER 0.9f  // inner contour spans this fraction of the mouth width

static float clampf(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }
static float lerpf(float a, float b, float t) { return a + (b - a) * t; }

static void geom_build(const et_synth_face *f, geom *g) {
    const et_synth_appearance *A = &f->app;
    memset(g, 0, sizeof(*g));
    g->A = A;
    memcpy(g->au, f->au, sizeof(g->au));
    const float *au = g->au;
    float a4 = au[4], a5 = au[5], a6 = au[6], a7 = au[7], a9 = au[9];
    float a10 = au[10], a12 = au[12], a15 = au[15], a16 = au[16], a17 = au[17], a20 = au[20];
    float a23 = au[23], a24 = au[24], a25 = au[25], a26 = au[26];

    g->k = 2.0f * 0.27f * A->scale * f->pose.scale;
    g->cr = cosf(f->pose.roll);
    g->sr = sinf(f->pose.roll);
    g->cyaw = cosf(f->pose.yaw);
    g->syaw = sinf(f->pose.yaw);
    g->ox = 2.0f * f->pose.tx;
    g->oy = 2.0f * f->pose.ty - 0.02f;

    g->a = A->face_w;
    g->b_up = A->face_up;
    g->b_low = A->face_low + 0.16f * a26 + 0.02f * a16 - 0.02f * a17;
    g->jaw_n = A->jaw_square;
    g->taper = A->jaw_taper + 0.05f * a26;

    g->ecx[0] = -A->eye_dx;
    g->ecx[1] = A->eye_dx;
    g->ecy = A->eye_y;
    g->ew = A->eye_w;
    g->eU = fmaxf(0.006f, A->eye_up * (1 + 0.9f * a5 * (1 - 0.5f * a4) - 0.4f * a7 - 0.2f * a6 -
                                       0.15f * a9 - 0.1f * a4));
    g->eL = fmaxf(0.006f, A->eye_low * (1 - 0.55f * a6 - 0.55f * a7 - 0.2f * a9 + 0.2f * a5));
    g->lift_out = A->eye_tilt + 0.025f * a6;
    g->iris_dx = f->pose.gaze_x * 0.35f * A->eye_w;
    g->iris_dy = 0.012f + f->pose.gaze_y * 0.015f;
    g->iris_r = fminf(A->iris_r, 0.8f * A->eye_w);

    g->nose_top = A->eye_y - 0.02f;
    g->nose_base = A->nose_y - 0.05f * a9 - 0.025f * a10;
    g->nose_tip = g->nose_base - 0.06f;
    g->nose_w = A->nose_w * (1 + 0.12f * a9 + 0.05f * a10);

    g->mw = A->mouth_w * (1 + 0.16f * a12 + 0.3f * a20 - 0.2f * a23 - 0.12f * a24 -
                          0.22f * a26 * (1 - a20) * (1 - a12) - 0.04f * a17);
    g->myc = A->mouth_y - 0.15f * a12 + 0.16f * a15 + 0.04f * a20 + 0.05f * a26 + 0.02f * a16 -
             0.015f * a10 - 0.02f * a17;
    g->y_iu = A->mouth_y - 0.06f * a10 - 0.02f * a9 - 0.03f * a26 - 0.015f * a25 - 0.015f * a12 -
              0.025f * a17;
    g->y_il = A->mouth_y + 0.09f * a25 + 0.32f * a26 + 0.1f * a16 - 0.03f * a17;
    if (g->y_il < g->y_iu) g->y_il = g->y_iu;
    float thin = 1 - 0.6f * a23 - 0.5f * a24 - 0.3f * a20;
    g->y_ou = g->y_iu - A->lip_up * fmaxf(0.25f, thin - 0.25f * a12);
    g->y_ol = g->y_il + A->lip_low * fmaxf(0.25f, thin - 0.1f * a12 + 0.1f * a16);
    g->p_out = 2.0f + 1.5f * a20;
    g->p_in = 2.0f + 2.5f * a20;
    g->q_in = 1.0f - 0.5f * a26;
}

// Depth of a face point (toward the camera): an ellipsoidal head plus the nose.
static float geom_depth(const geom *g, v2 p) {
    float ux = p.x / (g->a * 1.05f), uy = p.y / 1.45f;
    float h = 1.0f - ux * ux - uy * uy;
    float z = h > 0 ? 0.85f * sqrtf(h) : 0.0f;
    if (fabsf(p.x) < 0.4f) {
        float top = g->nose_top - 0.05f, r;
        if (p.y <= top)
            r = 0;
        else if (p.y <= g->nose_base)
            r = (p.y - top) / (g->nose_base - top);
        else
            r = fmaxf(0.0f, 1.0f - (p.y - g->nose_base) / 0.1f);
        z += 0.35f * r * expf(-(p.x * p.x) / (0.13f * 0.13f));
    }
    return z;
}

// Face coordinates -> normalised image coordinates.
static v2 geom_xf(const geom *g, v2 p) {
    float z = geom_depth(g, p);
    float x = (p.x * g->cyaw + z * g->syaw) * g->k, y = p.y * g->k;
    return (v2){g->ox + x * g->cr - y * g->sr, g->oy + x * g->sr + y * g->cr};
}

static float sgnpow(float v, float e) { return v < 0 ? -powf(-v, e) : powf(v, e); }

// Outline point at angle phi (y down: phi = pi/2 is the chin).
static v2 outline_pt(const geom *g, float phi) {
    float c = cosf(phi), s = sinf(phi);
    if (s <= 0) return (v2){g->a * c, g->b_up * s};
    float e = 2.0f / g->jaw_n;
    float x = g->a * sgnpow(c, e) * (1.0f - g->taper * s * s);
    return (v2){x, g->b_low * powf(s, e)};
}

// Brow centreline, t = 0 inner end .. 1 outer end; *hw = half thickness.
static v2 brow_pt(const geom *g, int side, float t, float *hw) {
    const et_synth_appearance *A = g->A;
    const float *au = g->au;
    float a1 = au[1], a2 = au[2], a4 = au[4], a5 = au[5], a9 = au[9];
    float x = A->eye_dx - 1.0f * A->eye_w + t * 2.15f * A->eye_w;
    x -= (0.1f * a4 + 0.02f * a9) * (1 - t);
    float y = A->eye_y - A->brow_dy - A->brow_arch * sinf(PI_F * powf(t, 0.75f));
    y -= 0.22f * a1 * powf(1 - t, 1.2f) + 0.03f * a1;
    y -= 0.2f * a2 * powf(t, 0.8f) + 0.02f * a2;
    y += a4 * (0.17f * (1 - t) * (1 - 0.85f * a1) + 0.06f * t);
    y += 0.05f * a9 * (1 - t) - 0.03f * a5;
    if (hw) *hw = 0.5f * A->brow_thick * (1.1f - 0.5f * t) * (1 + 0.2f * a4);
    float limit = g->ecy - g->eU - 0.045f - 0.5f * A->brow_thick;
    if (y > limit) y = limit;
    return (v2){side ? x : -x, y};
}

static float eye_shape(float u) {
    float s = 1 - u * u;
    return s > 0 ? powf(s, 0.75f) : 0;
}
// Eye lid baseline height at u in [-1, 1] (x = ecx + u * ew); the outer corner is lifted.
static float eye_base(const geom *g, int side, float u) {
    float w_out = side ? (1 + u) * 0.5f : (1 - u) * 0.5f;
    return g->ecy - g->lift_out * w_out;
}
static v2 eye_upper(const geom *g, int side, float u) {
    return (v2){g->ecx[side] + u * g->ew, eye_base(g, side, u) - g->eU * eye_shape(u)};
}
static v2 eye_lower(const geom *g, int side, float u) {
    return (v2){g->ecx[side] + u * g->ew, eye_base(g, side, u) + g->eL * eye_shape(u)};
}

// Mouth contours at u in [-1, 1]: 0 outer upper, 1 inner upper, 2 inner lower, 3 outer lower.
static v2 mouth_pt(const geom *g, int which, float u) {
    float au_ = fabsf(u);
    if (au_ > 1) au_ = 1;
    if (which == 0 || which == 3) {
        float fo = 1 - powf(au_, g->p_out);
        float yc = which == 0 ? g->y_ou : g->y_ol;
        return (v2){u * g->mw, g->myc + (yc - g->myc) * fo};
    }
    float base = 1 - powf(au_, g->p_in);
    float fi = base > 0 ? powf(base, g->q_in) : 0;
    float yc = which == 1 ? g->y_iu : g->y_il;
    return (v2){u * g->mw * MOUTH_INNER, g->myc + (yc - g->myc) * fi};
}

static void geom_landmarks_face(const geom *g, v2 *lm) {
    // jaw 0..16
    const float d = 0.12f;
    for (int i = 0; i <= 16; i++) lm[i] = outline_pt(g, PI_F + d - (float)i * (PI_F + 2 * d) / 16);
    // brows: 17..21 left (outer -> inner), 22..26 right (inner -> outer)
    for (int i = 0; i < 5; i++) {
        lm[17 + i] = brow_pt(g, 0, 1.0f - 0.25f * (float)i, NULL);
        lm[22 + i] = brow_pt(g, 1, 0.25f * (float)i, NULL);
    }
    // nose
    for (int i = 0; i < 4; i++) lm[27 + i] = (v2){0, lerpf(g->nose_top, g->nose_tip, (float)i / 3)};
    lm[31] = (v2){-g->nose_w, g->nose_base - 0.035f};
    lm[32] = (v2){-0.5f * g->nose_w, g->nose_base + 0.005f};
    lm[33] = (v2){0, g->nose_base + 0.015f};
    lm[34] = (v2){0.5f * g->nose_w, g->nose_base + 0.005f};
    lm[35] = (v2){g->nose_w, g->nose_base - 0.035f};
    // eyes: corner, upper at -1/3, +1/3, corner, lower at +1/3, -1/3 (left to right on top)
    for (int side = 0; side < 2; side++) {
        v2 *e = lm + 36 + 6 * side;
        e[0] = eye_upper(g, side, -1);
        e[1] = eye_upper(g, side, -1.0f / 3);
        e[2] = eye_upper(g, side, 1.0f / 3);
        e[3] = eye_upper(g, side, 1);
        e[4] = eye_lower(g, side, 1.0f / 3);
        e[5] = eye_lower(g, side, -1.0f / 3);
    }
    // mouth outer 48..59, inner 60..67
    static const float uo[12] = {-1, -2.f / 3, -1.f / 3, 0, 1.f / 3,  2.f / 3,
                                 1,  2.f / 3,  1.f / 3,  0, -1.f / 3, -2.f / 3};
    for (int i = 0; i < 12; i++) lm[48 + i] = mouth_pt(g, i <= 6 ? 0 : 3, uo[i]);
    static const float ui[8] = {-1, -0.5f, 0, 0.5f, 1, 0.5f, 0, -0.5f};
    for (int i = 0; i < 8; i++) lm[60 + i] = mouth_pt(g, i <= 4 ? 1 : 2, ui[i]);
}

static void face_landmarks(const et_synth_face *f, float *out) {
    geom g;
    geom_build(f, &g);
    v2 lm[ET_SYNTH_N_LANDMARKS];
    geom_landmarks_face(&g, lm);
    for (int i = 0; i < ET_SYNTH_N_LANDMARKS; i++) {
        v2 p = geom_xf(&g, lm[i]);
        out[2 * i] = p.x;
        out[2 * i + 1] = p.y;
    }
}

// face.detected from face.landmarks and face.deg (see the contract). Lengths: one pixel at
// 64 px is 1/32 in normalised units.
static void detect_landmarks(et_synth_face *f) {
    const et_synth_degrade *D = &f->deg;
    if (!(D->lm_noise > 0)) {
        memcpy(f->detected, f->landmarks, sizeof(f->detected));
        return;
    }
    float base[ET_SYNTH_LANDMARK_DIM];
    if (D->lm_fail) {  // the expression is lost: the same face's neutral landmarks
        et_synth_face n = *f;
        memset(n.au, 0, sizeof(n.au));
        face_landmarks(&n, base);
    } else {
        memcpy(base, f->landmarks, sizeof(base));
    }
    const float px = 1.0f / 32.0f;
    float sc = D->lm_noise * (D->lm_fail ? 3.0f : 1.0f);
    rstream s = {D->lm_key, 0};
    float cx = 0, cy = 0;
    for (int i = 0; i < ET_SYNTH_N_LANDMARKS; i++) {
        cx += base[2 * i] / ET_SYNTH_N_LANDMARKS;
        cy += base[2 * i + 1] / ET_SYNTH_N_LANDMARKS;
    }
    float dx = rnorm(&s) * 0.8f * px * sc, dy = rnorm(&s) * 0.8f * px * sc;
    float k = 1.0f + rnorm(&s) * 0.03f * sc, th = rnorm(&s) * (2.0f * PI_F / 180.0f) * sc;
    float c = k * cosf(th), sn = k * sinf(th);
    for (int i = 0; i < ET_SYNTH_N_LANDMARKS; i++) {
        float sd = (i < 17 ? 1.5f : 0.6f) * px * sc;
        float x = base[2 * i] - cx, y = base[2 * i + 1] - cy;
        f->detected[2 * i] = cx + dx + c * x - sn * y + rnorm(&s) * sd;
        f->detected[2 * i + 1] = cy + dy + sn * x + c * y + rnorm(&s) * sd;
    }
}

void et_synth_set_intensity(et_synth_face *f, float intensity) {
    f->intensity = clampf(intensity, 0, 1);
    for (int k = 0; k < ET_SYNTH_AU_MAX; k++) f->au[k] = f->intensity * f->au_apex[k];
    face_landmarks(f, f->landmarks);
    detect_landmarks(f);
}

void et_synth_landmarks_px(const et_synth_face *f, int size, float out[ET_SYNTH_LANDMARK_DIM]) {
    float h = 0.5f * (float)size;
    for (int i = 0; i < ET_SYNTH_LANDMARK_DIM; i++) out[i] = (f->landmarks[i] + 1.0f) * h;
}

// ---- rasteriser -----------------------------------------------------------------------
// Polygons (nonzero winding) in pixel coordinates. Each pixel row is sampled on K sub-rows;
// along a sub-row the covered spans are integrated exactly, so coverage is exact in x and
// K-level in y. Coverage is composited per row with a paint (colour times the lighting).

#define RAST_MAX_V 1024

typedef struct {
    float x0, ya, yb, dxdy;
    int dir;
} edge;

typedef struct {
    int S, K;
    float *rgb;  // (S, S, 3)
    float *cov;  // (S)
    edge edges[RAST_MAX_V];
    float xs[RAST_MAX_V];
    int ds[RAST_MAX_V];
    // lighting: factor = exposure * clamp(1 + gx (x - cx) + gy (y - cy)) for lit paints
    float exposure, lcx, lcy, lgx, lgy;
} raster;

typedef struct {
    float c[3];
    int lit;
} paint;

static paint mkpaint(const float *c, float m, int lit) {
    return (paint){{c[0] * m, c[1] * m, c[2] * m}, lit};
}

static void rast_span(raster *r, float xa, float xb, float w, int *minx, int *maxx) {
    if (xa < 0) xa = 0;
    if (xb > (float)r->S) xb = (float)r->S;
    if (xb <= xa) return;
    int ia = (int)xa, ib = (int)xb;
    if (ib >= r->S) ib = r->S - 1;
    if (ia == ib) {
        r->cov[ia] += (xb - xa) * w;
    } else {
        r->cov[ia] += ((float)(ia + 1) - xa) * w;
        for (int i = ia + 1; i < ib; i++) r->cov[i] += w;
        r->cov[ib] += (xb - (float)ib) * w;
    }
    if (ia < *minx) *minx = ia;
    if (ib > *maxx) *maxx = ib;
}

static void rast_fill(raster *r, const v2 *v, int n, paint p, float alpha) {
    if (n < 3 || alpha <= 0) return;
    ET_ASSERT(n <= RAST_MAX_V, "rast_fill: %d vertices > %d", n, RAST_MAX_V);
    int ne = 0;
    float ymin = 1e30f, ymax = -1e30f;
    for (int i = 0; i < n; i++) {
        v2 a = v[i], b = v[(i + 1) % n];
        if (!(a.y != b.y)) continue;  // horizontal (or NaN) edges cross no sub-row
        edge *e = &r->edges[ne++];
        e->dir = a.y < b.y ? 1 : -1;
        v2 lo = a.y < b.y ? a : b, hi = a.y < b.y ? b : a;
        e->ya = lo.y;
        e->yb = hi.y;
        e->dxdy = (hi.x - lo.x) / (hi.y - lo.y);
        e->x0 = lo.x;
        if (lo.y < ymin) ymin = lo.y;
        if (hi.y > ymax) ymax = hi.y;
    }
    if (ne < 2) return;
    int y0 = (int)floorf(ymin), y1 = (int)ceilf(ymax);
    if (y0 < 0) y0 = 0;
    if (y1 > r->S) y1 = r->S;
    float w = 1.0f / (float)r->K;
    for (int py = y0; py < y1; py++) {
        int minx = r->S, maxx = -1;
        for (int k = 0; k < r->K; k++) {
            float sy = (float)py + ((float)k + 0.5f) * w;
            int nx = 0;
            for (int i = 0; i < ne; i++) {
                const edge *e = &r->edges[i];
                if (sy >= e->ya && sy < e->yb) {
                    float x = e->x0 + (sy - e->ya) * e->dxdy;
                    int j = nx++;
                    while (j > 0 && r->xs[j - 1] > x) {  // insertion sort by x
                        r->xs[j] = r->xs[j - 1];
                        r->ds[j] = r->ds[j - 1];
                        j--;
                    }
                    r->xs[j] = x;
                    r->ds[j] = e->dir;
                }
            }
            int wind = 0;
            float start = 0;
            for (int j = 0; j < nx; j++) {
                int prev = wind;
                wind += r->ds[j];
                if (prev == 0 && wind != 0)
                    start = r->xs[j];
                else if (prev != 0 && wind == 0)
                    rast_span(r, start, r->xs[j], w, &minx, &maxx);
            }
        }
        if (maxx < minx) continue;
        float *row = r->rgb + (size_t)py * (size_t)r->S * 3;
        float fy = p.lit ? 1.0f + r->lgy * ((float)py + 0.5f - r->lcy) : 1.0f;
        for (int x = minx; x <= maxx; x++) {
            float c = r->cov[x];
            r->cov[x] = 0;
            if (c <= 0) continue;
            float a = (c < 1 ? c : 1) * alpha;
            float m = r->exposure;
            if (p.lit) m *= clampf(fy + r->lgx * ((float)x + 0.5f - r->lcx), 0.6f, 1.3f);
            float *px = row + 3 * x;
            for (int ch = 0; ch < 3; ch++) px[ch] += (p.c[ch] * m - px[ch]) * a;
        }
    }
}

// Fill a polygon given in face coordinates.
static void draw_poly(raster *r, const geom *g, const v2 *pts, int n, paint p, float alpha) {
    v2 buf[RAST_MAX_V];
    ET_ASSERT(n <= RAST_MAX_V, "draw_poly: %d vertices", n);
    float h = 0.5f * (float)r->S;
    for (int i = 0; i < n; i++) {
        v2 q = geom_xf(g, pts[i]);
        buf[i] = (v2){(q.x + 1) * h, (q.y + 1) * h};
    }
    rast_fill(r, buf, n, p, alpha);
}

static void draw_ellipse(raster *r, const geom *g, v2 c, float rx, float ry, paint p, float alpha) {
    v2 pts[48];
    int n = 40;
    for (int i = 0; i < n; i++) {
        float t = 2 * PI_F * (float)i / (float)n;
        pts[i] = (v2){c.x + rx * cosf(t), c.y + ry * sinf(t)};
    }
    draw_poly(r, g, pts, n, p, alpha);
}

// Stroke a polyline (face coordinates) with per-point half-widths and round caps.
static void draw_stroke(raster *r, const geom *g, const v2 *p, const float *hw, int n, paint pt,
                        float alpha) {
    if (n < 2 || alpha <= 0) return;
    ET_ASSERT(n <= 200, "draw_stroke: %d points", n);
    v2 out[2 * 200 + 16];
    v2 nrm[200];
    for (int i = 0; i < n; i++) {
        v2 a = p[i > 0 ? i - 1 : 0], b = p[i < n - 1 ? i + 1 : n - 1];
        float tx = b.x - a.x, ty = b.y - a.y, l = sqrtf(tx * tx + ty * ty);
        nrm[i] = l > 0 ? (v2){-ty / l, tx / l} : (v2){0, 1};
    }
    int m = 0;
    for (int i = 0; i < n; i++)
        out[m++] = (v2){p[i].x + nrm[i].x * hw[i], p[i].y + nrm[i].y * hw[i]};
    // end cap: rotate the normal through the tangent to -normal
    for (int k = 1; k < 4; k++) {
        float t = PI_F * (float)k / 4, c = cosf(t), s = sinf(t);
        v2 nn = nrm[n - 1], tg = {nn.y, -nn.x};
        out[m++] = (v2){p[n - 1].x + hw[n - 1] * (nn.x * c + tg.x * s),
                        p[n - 1].y + hw[n - 1] * (nn.y * c + tg.y * s)};
    }
    for (int i = n - 1; i >= 0; i--)
        out[m++] = (v2){p[i].x - nrm[i].x * hw[i], p[i].y - nrm[i].y * hw[i]};
    for (int k = 1; k < 4; k++) {
        float t = PI_F * (float)k / 4, c = cosf(t), s = sinf(t);
        v2 nn = {-nrm[0].x, -nrm[0].y}, tg = {nn.y, -nn.x};
        out[m++] =
            (v2){p[0].x + hw[0] * (nn.x * c + tg.x * s), p[0].y + hw[0] * (nn.y * c + tg.y * s)};
    }
    draw_poly(r, g, out, m, pt, alpha);
}

// A stroke of constant half-width along n points.
static void draw_line(raster *r, const geom *g, const v2 *p, int n, float hw, paint pt,
                      float alpha) {
    float w[200];
    for (int i = 0; i < n; i++) w[i] = hw;
    draw_stroke(r, g, p, w, n, pt, alpha);
}

// A quadratic Bezier as a stroke (tapered to the ends when taper).
static void draw_curve(raster *r, const geom *g, v2 a, v2 c, v2 b, float hw, int taper, paint pt,
                       float alpha) {
    v2 p[12];
    float w[12];
    for (int i = 0; i < 12; i++) {
        float t = (float)i / 11, u = 1 - t;
        p[i] = (v2){u * u * a.x + 2 * u * t * c.x + t * t * b.x,
                    u * u * a.y + 2 * u * t * c.y + t * t * b.y};
        w[i] = taper ? hw * (0.35f + 0.65f * sinf(PI_F * t)) : hw;
    }
    draw_stroke(r, g, p, w, 12, pt, alpha);
}

// ---- rendering ------------------------------------------------------------------------

static void draw_background(raster *r, const et_synth_face *f) {
    int S = r->S;
    float ca = cosf(f->img.bg_angle), sa = sinf(f->img.bg_angle);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            float t = (((float)x + 0.5f) / (float)S - 0.5f) * ca +
                      (((float)y + 0.5f) / (float)S - 0.5f) * sa + 0.5f;
            t = clampf(t, 0, 1);
            float *px = r->rgb + ((size_t)y * S + x) * 3;
            for (int c = 0; c < 3; c++)
                px[c] = lerpf(f->img.bg0[c], f->img.bg1[c], t) * f->img.exposure;
        }
}

static void draw_hair_back(raster *r, const geom *g) {
    const et_synth_appearance *A = g->A;
    float ax = g->a * 1.22f + A->hair_volume, by = g->b_up * 1.1f + A->hair_volume;
    float bottom = A->hair_len;
    v2 pts[64];
    int n = 0;
    pts[n++] = (v2){-ax * 1.05f, bottom};
    for (int i = 0; i <= 40; i++) {
        float t = PI_F + PI_F * (float)i / 40;  // left, over the top, right
        pts[n++] = (v2){ax * cosf(t), -0.05f + by * sinf(t)};
    }
    pts[n++] = (v2){ax * 1.05f, bottom};
    draw_poly(r, g, pts, n, mkpaint(A->hair, 0.8f, 1), 1.0f);
}

// Hair cap in front of the forehead; long hair adds curtains down the sides.
static void draw_hair_front(raster *r, const geom *g) {
    const et_synth_appearance *A = g->A;
    float ax = g->a * 1.06f + 0.5f * A->hair_volume, by = g->b_up * 1.05f + A->hair_volume;
    float yc = -0.05f, y_side = g->ecy - 0.08f;
    float s0 = clampf((yc - y_side) / by, -1, 1), th0 = asinf(s0);
    float x_end = g->a * 0.97f;
    int longh = A->hair_style == ET_SYNTH_HAIR_LONG;
    v2 pts[160];
    int n = 0;
    if (longh) pts[n++] = (v2){-g->a * 1.2f - A->hair_volume, A->hair_len};
    for (int i = 0; i <= 40; i++) {
        float th = th0 + (PI_F - 2 * th0) * (float)i / 40;
        pts[n++] = (v2){-ax * cosf(th), yc - by * sinf(th)};
    }
    if (longh) {
        pts[n++] = (v2){g->a * 1.2f + A->hair_volume, A->hair_len};
        pts[n++] = (v2){g->a * 0.98f, A->hair_len};
        pts[n++] = (v2){g->a * 0.97f, 0.2f};
    }
    // hairline, right to left, parted slightly off-centre
    for (int i = 0; i <= 24; i++) {
        float x = x_end - 2 * x_end * (float)i / 24;
        float q = fabsf(x) / x_end;
        float y = A->hairline + (y_side - A->hairline) * powf(q, 3.5f);
        pts[n++] = (v2){x, y};
    }
    if (longh) {
        pts[n++] = (v2){-g->a * 0.97f, 0.2f};
        pts[n++] = (v2){-g->a * 0.98f, A->hair_len};
    }
    draw_poly(r, g, pts, n, mkpaint(A->hair, 1.0f, 1), 1.0f);
}

static void draw_face_base(raster *r, const geom *g) {
    const et_synth_appearance *A = g->A;
    v2 pts[80];
    // neck and clothes
    pts[0] = (v2){-0.45f * g->a, 0.4f};
    pts[1] = (v2){0.45f * g->a, 0.4f};
    pts[2] = (v2){0.55f * g->a, 3.0f};
    pts[3] = (v2){-0.55f * g->a, 3.0f};
    draw_poly(r, g, pts, 4, mkpaint(A->skin, 0.72f, 1), 1.0f);
    draw_ellipse(r, g, (v2){0, A->face_low + 1.2f}, 2.1f, 0.75f, mkpaint(A->cloth, 1.0f, 1), 1.0f);
    // ears
    for (int s = 0; s < 2; s++) {
        float sx = s ? 1.0f : -1.0f;
        draw_ellipse(r, g, (v2){sx * (g->a - 0.02f), g->ecy + 0.14f}, 0.11f, 0.2f,
                     mkpaint(A->skin, 0.9f, 1), 1.0f);
        draw_ellipse(r, g, (v2){sx * (g->a + 0.02f), g->ecy + 0.15f}, 0.05f, 0.12f,
                     mkpaint(A->skin, 0.7f, 1), 0.6f);
    }
    // face
    int n = 72;
    for (int i = 0; i < n; i++) pts[i] = outline_pt(g, 2 * PI_F * (float)i / (float)n);
    draw_poly(r, g, pts, n, mkpaint(A->skin, 1.0f, 1), 1.0f);
    // stubble: the part of the face below the nose, in three layers for a soft top edge
    if (A->stubble > 0) {
        for (int layer = 0; layer < 3; layer++) {
            float y0 = g->nose_base + 0.04f + 0.05f * (float)layer;
            int m = 0;
            for (int i = 0; i <= 36; i++) {
                v2 q = outline_pt(g, PI_F * (float)i / 36);
                if (q.y < y0) q.y = y0;
                pts[m++] = q;
            }
            draw_poly(r, g, pts, m, mkpaint(A->brow, 1.0f, 1), A->stubble / 3);
        }
    }
}

static void draw_lines(raster *r, const geom *g) {
    const et_synth_appearance *A = g->A;
    const float *au = g->au;
    float wr = A->wrinkles;
    paint line = mkpaint(A->skin, 0.55f, 1);
    float hw = 0.016f;
    // forehead lines (AU1/AU2, age); they follow the brows up
    float up = fmaxf(au[1], au[2]);
    float fa = clampf(0.6f * up + 0.3f * wr, 0, 0.8f);
    if (fa > 0.02f) {
        float hb;
        float ytop = fminf(brow_pt(g, 0, 0.4f, &hb).y, brow_pt(g, 1, 0.4f, &hb).y);
        for (int i = 0; i < 3; i++) {
            float y = ytop - 0.1f - 0.08f * (float)i;
            float arch = 0.04f + 0.05f * au[2];
            draw_curve(r, g, (v2){-0.42f, y + arch}, (v2){0, y - arch}, (v2){0.42f, y + arch}, hw,
                       1, line, fa);
        }
    }
    // glabella (AU4)
    if (au[4] > 0.02f) {
        float hb;
        float yb = brow_pt(g, 0, 0, &hb).y;
        for (int s = 0; s < 2; s++) {
            float sx = s ? 1.0f : -1.0f;
            v2 p[2] = {{sx * 0.05f, yb - 0.06f}, {sx * 0.065f, yb + 0.08f}};
            draw_line(r, g, p, 2, hw, line, 0.75f * au[4]);
        }
    }
    // nose wrinkles (AU9)
    if (au[9] > 0.02f) {
        for (int i = 0; i < 3; i++) {
            float y = g->nose_top + 0.03f + 0.045f * (float)i;
            draw_curve(r, g, (v2){-0.09f, y + 0.015f}, (v2){0, y - 0.01f}, (v2){0.09f, y + 0.015f},
                       hw, 1, line, 0.8f * au[9]);
        }
    }
    for (int s = 0; s < 2; s++) {
        float sx = s ? 1.0f : -1.0f;
        // nasolabial folds (AU12, AU9, AU10, age)
        float na =
            clampf(0.12f + 0.55f * au[12] + 0.4f * au[9] + 0.3f * au[10] + 0.35f * wr, 0, 0.85f);
        v2 a = {sx * (g->nose_w + 0.04f), g->nose_base - 0.05f};
        v2 b = {sx * (g->mw + 0.07f), g->myc + 0.05f};
        v2 c = {sx * (g->mw + 0.1f + 0.04f * au[12]), lerpf(a.y, b.y, 0.4f)};
        draw_curve(r, g, a, c, b, hw * 1.2f, 1, line, na);
        // crow's feet (AU6, age) at the outer eye corners
        float ca = clampf(0.6f * au[6] + 0.3f * wr, 0, 0.8f);
        if (ca > 0.02f) {
            v2 oc = eye_upper(g, s, s ? 1.0f : -1.0f);
            for (int i = -1; i <= 1; i++) {
                v2 p[2] = {{oc.x + sx * 0.04f, oc.y + 0.03f * (float)i},
                           {oc.x + sx * 0.12f, oc.y + 0.06f * (float)i}};
                draw_line(r, g, p, 2, hw * 0.9f, line, ca);
            }
        }
        // lower-lid bulge (AU6, AU7, age)
        float ba = clampf(0.45f * au[6] + 0.2f * au[7] + 0.25f * wr, 0, 0.7f);
        if (ba > 0.02f) {
            v2 p[7];
            for (int i = 0; i < 7; i++) {
                float u = -0.8f + 1.6f * (float)i / 6;
                p[i] = eye_lower(g, s, u);
                p[i].y += 0.05f + 0.02f * eye_shape(u);
            }
            draw_line(r, g, p, 7, hw * 0.9f, line, ba);
        }
        // AU15: lines down from the lip corners; AU20: out from them
        if (au[15] > 0.02f) {
            v2 p[2] = {{sx * (g->mw + 0.02f), g->myc + 0.02f},
                       {sx * (g->mw + 0.06f), g->myc + 0.14f}};
            draw_line(r, g, p, 2, hw, line, 0.6f * au[15]);
        }
        if (au[20] > 0.02f) {
            v2 p[2] = {{sx * (g->mw + 0.02f), g->myc}, {sx * (g->mw + 0.1f), g->myc + 0.02f}};
            draw_line(r, g, p, 2, hw, line, 0.5f * au[20]);
        }
        // AU6 cheek raise: a lighter cheek apple
        if (au[6] > 0.02f) {
            draw_ellipse(r, g, (v2){sx * (g->ecx[1] + 0.03f), g->ecy + 0.3f - 0.06f * au[6]}, 0.16f,
                         0.09f, mkpaint(A->skin, 1.12f, 1), 0.4f * au[6]);
        }
    }
    // chin boss (AU17)
    if (au[17] > 0.02f) {
        float y = g->y_ol + 0.12f;
        draw_curve(r, g, (v2){-0.13f, y + 0.02f}, (v2){0, y - 0.03f}, (v2){0.13f, y + 0.02f}, hw, 1,
                   line, 0.6f * au[17]);
    }
}

// The part of a circle inside the eye opening (both as functions of x).
static void draw_eye_disc(raster *r, const geom *g, int side, v2 c, float rad, paint p,
                          float alpha) {
    v2 top[26], bot[26], pts[52];
    int n = 24;
    for (int i = 0; i <= n; i++) {
        float x = c.x - rad + 2 * rad * (float)i / (float)n;
        float dx = x - c.x, h = rad * rad - dx * dx;
        h = h > 0 ? sqrtf(h) : 0;
        float u = (x - g->ecx[side]) / g->ew;
        float yt, yb;
        if (u <= -1 || u >= 1) {
            yt = yb = c.y;
        } else {
            yt = fmaxf(c.y - h, eye_upper(g, side, u).y);
            yb = fminf(c.y + h, eye_lower(g, side, u).y);
            if (yt > yb) yt = yb = 0.5f * (yt + yb);
        }
        top[i] = (v2){x, yt};
        bot[i] = (v2){x, yb};
    }
    int m = 0;
    for (int i = 0; i <= n; i++) pts[m++] = top[i];
    for (int i = n; i >= 0; i--) pts[m++] = bot[i];
    draw_poly(r, g, pts, m, p, alpha);
}

static void draw_eyes(raster *r, const geom *g) {
    const et_synth_appearance *A = g->A;
    static const float white[3] = {0.94f, 0.93f, 0.9f}, dark[3] = {0.07f, 0.05f, 0.05f};
    for (int s = 0; s < 2; s++) {
        v2 pts[40];
        int n = 0;
        for (int i = 0; i <= 16; i++) pts[n++] = eye_upper(g, s, -1 + 2 * (float)i / 16);
        for (int i = 15; i >= 1; i--) pts[n++] = eye_lower(g, s, -1 + 2 * (float)i / 16);
        draw_poly(r, g, pts, n, mkpaint(white, 1.0f, 1), 1.0f);
        v2 ic = {g->ecx[s] + g->iris_dx, g->ecy + g->iris_dy};
        draw_eye_disc(r, g, s, ic, g->iris_r, mkpaint(A->iris, 1.0f, 1), 1.0f);
        draw_eye_disc(r, g, s, ic, g->iris_r * 0.45f, mkpaint(dark, 1.0f, 0), 1.0f);
        draw_eye_disc(r, g, s, (v2){ic.x - 0.3f * g->iris_r, ic.y - 0.3f * g->iris_r},
                      g->iris_r * 0.18f, mkpaint(white, 1.1f, 0), 0.85f);
        // lash line (upper lid), lower lid line, lid crease
        v2 lp[18];
        float lw[18];
        for (int i = 0; i <= 16; i++) {
            float u = -1.02f + 2.04f * (float)i / 16;
            lp[i] = eye_upper(g, s, clampf(u, -1, 1));
            lp[i].x = g->ecx[s] + u * g->ew;
            lw[i] = 0.026f * (0.55f + 0.45f * eye_shape(0.9f * u));
        }
        draw_stroke(r, g, lp, lw, 17, mkpaint(dark, 1.0f, 0), 0.95f);
        for (int i = 0; i <= 16; i++) lp[i] = eye_lower(g, s, -1 + 2 * (float)i / 16);
        draw_line(r, g, lp, 17, 0.011f, mkpaint(A->skin, 0.45f, 1), 0.5f);
        for (int i = 0; i <= 12; i++) {
            float u = -0.85f + 1.7f * (float)i / 12;
            lp[i] = eye_upper(g, s, u);
            lp[i].y -= 0.045f + 0.02f * eye_shape(u);
        }
        draw_line(r, g, lp, 13, 0.012f, mkpaint(A->skin, 0.6f, 1), 0.45f * (1 - g->au[5]));
    }
}

static void draw_brows(raster *r, const geom *g) {
    for (int s = 0; s < 2; s++) {
        v2 p[13];
        float w[13];
        for (int i = 0; i <= 12; i++) p[i] = brow_pt(g, s, (float)i / 12, &w[i]);
        draw_stroke(r, g, p, w, 13, mkpaint(g->A->brow, 1.0f, 1), 0.95f);
    }
}

static void draw_nose(raster *r, const geom *g, float light_x) {
    const et_synth_appearance *A = g->A;
    float sx = light_x > 0 ? -1.0f : 1.0f;  // shadow on the side away from the light
    v2 br[3] = {{sx * 0.08f, g->nose_top + 0.1f},
                {sx * 0.1f, lerpf(g->nose_top, g->nose_tip, 0.6f)},
                {sx * 0.13f, g->nose_tip + 0.01f}};
    draw_line(r, g, br, 3, 0.03f, mkpaint(A->skin, 0.75f, 1), 0.35f);
    // nostrils and the base of the nose
    for (int s = 0; s < 2; s++) {
        float d = s ? 1.0f : -1.0f;
        draw_ellipse(r, g, (v2){d * 0.5f * g->nose_w, g->nose_base - 0.012f}, 0.042f, 0.022f,
                     mkpaint(A->skin, 0.3f, 1), 0.85f);
        draw_curve(r, g, (v2){d * g->nose_w, g->nose_base - 0.035f},
                   (v2){d * (g->nose_w + 0.03f), g->nose_base - 0.1f},
                   (v2){d * 0.6f * g->nose_w, g->nose_base - 0.12f}, 0.014f, 1,
                   mkpaint(A->skin, 0.6f, 1), 0.5f);
    }
    v2 base[5] = {{-g->nose_w, g->nose_base - 0.035f},
                  {-0.5f * g->nose_w, g->nose_base + 0.005f},
                  {0, g->nose_base + 0.015f},
                  {0.5f * g->nose_w, g->nose_base + 0.005f},
                  {g->nose_w, g->nose_base - 0.035f}};
    draw_line(r, g, base, 5, 0.016f, mkpaint(A->skin, 0.55f, 1), 0.55f);
}

static void draw_mouth(raster *r, const geom *g) {
    const et_synth_appearance *A = g->A;
    static const float cavity[3] = {0.3f, 0.08f, 0.08f}, teeth[3] = {0.95f, 0.94f, 0.88f};
    enum { N = 20 };
    v2 pts[4 * N + 8];
    float gap = g->y_il - g->y_iu;
    if (gap > 0.008f) {
        int n = 0;
        for (int i = 0; i <= N; i++) pts[n++] = mouth_pt(g, 1, -1 + 2 * (float)i / N);
        for (int i = N - 1; i >= 1; i--) pts[n++] = mouth_pt(g, 2, -1 + 2 * (float)i / N);
        draw_poly(r, g, pts, n, mkpaint(cavity, 1.0f, 1), 1.0f);
        // upper teeth hang from the inner upper lip; lower teeth show with AU16/AU20
        float th = 0.075f;
        n = 0;
        for (int i = 0; i <= N; i++) pts[n++] = mouth_pt(g, 1, -0.85f + 1.7f * (float)i / N);
        for (int i = N; i >= 0; i--) {
            float u = -0.85f + 1.7f * (float)i / N;
            v2 a = mouth_pt(g, 1, u), b = mouth_pt(g, 2, u);
            pts[n++] = (v2){a.x, fminf(a.y + th, b.y)};
        }
        draw_poly(r, g, pts, n, mkpaint(teeth, 1.0f, 1), 1.0f);
        float lo = fmaxf(g->au[16], g->au[20]);
        if (lo > 0.2f) {
            n = 0;
            for (int i = 0; i <= N; i++) pts[n++] = mouth_pt(g, 2, -0.7f + 1.4f * (float)i / N);
            for (int i = N; i >= 0; i--) {
                float u = -0.7f + 1.4f * (float)i / N;
                v2 a = mouth_pt(g, 2, u), b = mouth_pt(g, 1, u);
                pts[n++] = (v2){a.x, fmaxf(a.y - 0.05f, fmaxf(b.y + th, b.y))};
            }
            draw_poly(r, g, pts, n, mkpaint(teeth, 0.92f, 1), 1.0f);
        }
    }
    // lips: the upper between outer and inner upper contours, the lower likewise
    int n = 0;
    for (int i = 0; i <= N; i++) pts[n++] = mouth_pt(g, 0, -1 + 2 * (float)i / N);
    for (int i = N; i >= 0; i--) pts[n++] = mouth_pt(g, 1, -1 + 2 * (float)i / N);
    draw_poly(r, g, pts, n, mkpaint(A->lip, 0.85f, 1), 1.0f);
    n = 0;
    for (int i = 0; i <= N; i++) pts[n++] = mouth_pt(g, 2, -1 + 2 * (float)i / N);
    for (int i = N; i >= 0; i--) pts[n++] = mouth_pt(g, 3, -1 + 2 * (float)i / N);
    draw_poly(r, g, pts, n, mkpaint(A->lip, 1.0f, 1), 1.0f);
    // the line between the lips (and the corners)
    n = 0;
    for (int i = 0; i <= N; i++) {
        float u = -1 + 2 * (float)i / N;
        v2 a = mouth_pt(g, 1, u), b = mouth_pt(g, 2, u);
        pts[n++] = gap > 0.008f ? a : (v2){a.x, 0.5f * (a.y + b.y)};
    }
    pts[0] = mouth_pt(g, 0, -1);
    pts[N] = mouth_pt(g, 0, 1);
    draw_line(r, g, pts, N + 1, 0.014f, mkpaint(A->lip, 0.4f, 1), gap > 0.008f ? 0.5f : 0.9f);
}

// Separable Gaussian blur (clamped borders); tmp holds S * S * 3 floats, line 3 * (S + 64).
static void blur_image(float *rgb, int S, float sigma, float *tmp, float *line) {
    int rad = (int)ceilf(3 * sigma);
    if (rad < 1) return;
    if (rad > 32) rad = 32;
    float k[65], tot = 0;
    for (int i = -rad; i <= rad; i++)
        tot += k[i + rad] = expf(-0.5f * (float)(i * i) / (sigma * sigma));
    for (int i = 0; i <= 2 * rad; i++) k[i] /= tot;
    size_t row = (size_t)S * 3;
    // horizontal: each row copied into a padded line, then convolved
    for (int y = 0; y < S; y++) {
        const float *src = rgb + (size_t)y * row;
        for (int x = -rad; x < S + rad; x++) {
            int xx = x < 0 ? 0 : x >= S ? S - 1 : x;
            for (int c = 0; c < 3; c++) line[(size_t)(x + rad) * 3 + c] = src[(size_t)xx * 3 + c];
        }
        float *dst = tmp + (size_t)y * row;
        for (size_t i = 0; i < row; i++) {
            float acc = 0;
            for (int t = 0; t <= 2 * rad; t++) acc += k[t] * line[i + (size_t)t * 3];
            dst[i] = acc;
        }
    }
    // vertical: whole rows at a time
    for (int y = 0; y < S; y++) {
        float *dst = rgb + (size_t)y * row;
        memset(dst, 0, row * sizeof(float));
        for (int t = -rad; t <= rad; t++) {
            int yy = y + t < 0 ? 0 : y + t >= S ? S - 1 : y + t;
            const float *src = tmp + (size_t)yy * row;
            float w = k[t + rad];
            for (size_t i = 0; i < row; i++) dst[i] += w * src[i];
        }
    }
}

// Pixel noise: value i of the image (row-major, channel fastest) uses u32 word i of the Philox
// stream (key, position i); its four bytes summed (Irwin-Hall, n = 4) give an approximately
// Gaussian value of mean 0 and std 1.
static void add_noise_quantise(const float *rgb, size_t n, float std, uint64_t key, uint8_t *out) {
    const float mean = 510.0f, inv_sd = 1.0f / 147.8f;  // sqrt(4 * (256^2 - 1) / 12)
    uint32_t w[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        float v = rgb[i] * 255.0f;
        if (std > 0) {
            if (i % 4 == 0) {
                uint64_t blk = i / 4;
                uint32_t ctr[4] = {(uint32_t)blk, (uint32_t)(blk >> 32), 0, 0};
                uint32_t kk[2] = {(uint32_t)key, (uint32_t)(key >> 32)};
                et_philox4x32_10(ctr, kk, w);
            }
            uint32_t b = w[i % 4];
            float s = (float)((b & 255) + ((b >> 8) & 255) + ((b >> 16) & 255) + (b >> 24));
            v += (s - mean) * inv_sd * std;
        }
        v = v < 0 ? 0 : v > 255 ? 255 : v;
        out[i] = (uint8_t)(v + 0.5f);
    }
}

// ---- degradations -------------------------------------------------------------------

// A point of an occluder's local frame (size s, angle th, mirrored by mx) in face units.
static v2 occ_pt(v2 c, float s, float th, float mx, float x, float y) {
    float cs = cosf(th), sn = sinf(th);
    x *= mx * s;
    y *= s;
    return (v2){c.x + cs * x - sn * y, c.y + sn * x + cs * y};
}

// A hand: a palm ellipse with four fingers along the local +x axis (the frame of occ_pt).
static void draw_hand(raster *r, const geom *g, v2 c, float s, float th, float mx, paint p) {
    v2 pts[40];
    for (int i = 0; i < 40; i++) {
        float t = 2 * PI_F * (float)i / 40;
        pts[i] = occ_pt(c, s, th, mx, 0.3f * cosf(t), 0.26f * sinf(t));
    }
    draw_poly(r, g, pts, 40, p, 1.0f);
    static const float len[4] = {0.36f, 0.42f, 0.4f, 0.32f};
    for (int k = 0; k < 4; k++) {
        float y = -0.19f + 0.125f * (float)k;
        v2 line[3] = {occ_pt(c, s, th, mx, 0.15f, y), occ_pt(c, s, th, mx, 0.2f + len[k] / 2, y),
                      occ_pt(c, s, th, mx, 0.2f + len[k], y + 0.02f)};
        draw_line(r, g, line, 3, 0.058f * s, p, 1.0f);
    }
    // the gaps between fingers, darker
    paint d = {{p.c[0] * 0.7f, p.c[1] * 0.7f, p.c[2] * 0.7f}, p.lit};
    for (int k = 0; k < 3; k++) {
        float y = -0.1275f + 0.125f * (float)k;
        v2 line[2] = {occ_pt(c, s, th, mx, 0.3f, y), occ_pt(c, s, th, mx, 0.5f, y)};
        draw_line(r, g, line, 2, 0.008f * s, d, 0.7f);
    }
}

static void draw_occluder(raster *r, const geom *g, const et_synth_face *f) {
    const et_synth_degrade *D = &f->deg;
    const et_synth_appearance *A = g->A;
    switch (D->occluder) {
        case ET_SYNTH_OCC_SUNGLASSES: {
            paint p = mkpaint(D->occ_rgb, 1.0f, 0);
            float hw = A->eye_w * 1.5f * D->occ[2], hh = 0.15f * D->occ[1];
            float cy = g->ecy + D->occ[0];
            for (int side = 0; side < 2; side++) {
                v2 pts[48];
                float cx = g->ecx[side] + (side ? 0.02f : -0.02f);
                for (int i = 0; i < 48; i++) {  // a rounded rectangle (superellipse)
                    float t = 2 * PI_F * (float)i / 48;
                    pts[i] = (v2){cx + hw * sgnpow(cosf(t), 0.5f),
                                  cy + hh * sgnpow(sinf(t), 0.6f) + (sinf(t) > 0 ? 0.03f : 0)};
                }
                draw_poly(r, g, pts, 48, p, 1.0f);
                v2 arm[2] = {{(side ? 1.0f : -1.0f) * (A->eye_dx + hw), cy - 0.6f * hh},
                             {(side ? 1.0f : -1.0f) * g->a * 1.02f, cy - 0.7f * hh}};
                draw_line(r, g, arm, 2, 0.025f, p, 1.0f);
            }
            v2 bridge[3] = {{-A->eye_dx + hw - 0.04f, cy - 0.5f * hh},
                            {0, cy - 0.7f * hh},
                            {A->eye_dx - hw + 0.04f, cy - 0.5f * hh}};
            draw_line(r, g, bridge, 3, 0.03f, p, 1.0f);
            break;
        }
        case ET_SYNTH_OCC_HAND_MOUTH: {  // from one side, fingers across the mouth
            float mx = D->occ[4];
            v2 c = {-mx * (0.3f * D->occ[2]) + D->occ[0], A->mouth_y + 0.04f + D->occ[1]};
            draw_hand(r, g, c, D->occ[2], D->occ[3] * 0.5f, mx, mkpaint(D->occ_rgb, 1.0f, 1));
            break;
        }
        case ET_SYNTH_OCC_HAND_CHEEK: {  // on one cheek, fingers up
            float mx = D->occ[4];
            v2 c = {mx * (g->a * 0.62f) + 0.3f * D->occ[0], g->ecy + 0.5f + D->occ[1]};
            draw_hand(r, g, c, D->occ[2], -PI_F / 2 + D->occ[3] * 0.4f, 1.0f,
                      mkpaint(D->occ_rgb, 1.0f, 1));
            break;
        }
        case ET_SYNTH_OCC_RECT: {  // image coordinates around the head centre
            float S = (float)r->S, h = 0.5f * S;
            float cx = (g->ox + 1) * h + D->occ[0] * S, cy = (g->oy + 1) * h + D->occ[1] * S;
            float w2 = 0.5f * D->occ[2] * S, h2 = 0.5f * D->occ[3] * S;
            float cs = cosf(D->occ[4]), sn = sinf(D->occ[4]);
            v2 pts[4];
            static const float sx[4] = {-1, 1, 1, -1}, sy[4] = {-1, -1, 1, 1};
            for (int i = 0; i < 4; i++) {
                float x = sx[i] * w2, y = sy[i] * h2;
                pts[i] = (v2){cx + cs * x - sn * y, cy + sn * x + cs * y};
            }
            paint p = {{D->occ_rgb[0], D->occ_rgb[1], D->occ_rgb[2]}, 0};
            float e = r->exposure;
            r->exposure = 1.0f;  // its own colour, not the scene's exposure
            rast_fill(r, pts, 4, p, 1.0f);
            r->exposure = e;
            break;
        }
        default:
            break;
    }
}

// Area resampling of an (n_in) line to (n_out <= n_in) values: output j averages the input
// interval [j, j + 1) * n_in / n_out with exact fractional overlaps. stride: channels.
static void resample_area(const float *src, int n_in, int stride, float *dst, int n_out) {
    float step = (float)n_in / (float)n_out;
    for (int j = 0; j < n_out; j++) {
        float a = (float)j * step, b = a + step;
        for (int ch = 0; ch < stride; ch++) {
            float acc = 0;
            for (int i = (int)a; i < n_in && (float)i < b; i++) {
                float w = fminf((float)(i + 1), b) - fmaxf((float)i, a);
                if (w > 0) acc += w * src[(size_t)i * stride + ch];
            }
            dst[(size_t)j * stride + ch] = acc / step;
        }
    }
}

// Bilinear (half-pixel centres, clamped) of an (n_in) line to (n_out) values.
static void resample_linear(const float *src, int n_in, int stride, float *dst, int n_out) {
    for (int j = 0; j < n_out; j++) {
        float u = ((float)j + 0.5f) * (float)n_in / (float)n_out - 0.5f;
        u = clampf(u, 0, (float)(n_in - 1));
        int i0 = (int)u, i1 = i0 + 1 < n_in ? i0 + 1 : i0;
        float t = u - (float)i0;
        for (int ch = 0; ch < stride; ch++)
            dst[(size_t)j * stride + ch] =
                src[(size_t)i0 * stride + ch] * (1 - t) + src[(size_t)i1 * stride + ch] * t;
    }
}

// Separable 2-D resize of a (W x H x 3) image to (w x h); tmp: w * H * 3 floats, col: 2 *
// max(H, h) * 3 floats.
static void resize_image(const float *src, int W, int H, float *dst, int w, int h, float *tmp,
                         float *col, int area) {
    void (*fn)(const float *, int, int, float *, int) = area ? resample_area : resample_linear;
    for (int y = 0; y < H; y++) fn(src + (size_t)y * W * 3, W, 3, tmp + (size_t)y * w * 3, w);
    float *cin = col, *cout = col + (size_t)(H > h ? H : h) * 3;
    for (int x = 0; x < w; x++) {
        for (int y = 0; y < H; y++)
            for (int ch = 0; ch < 3; ch++) cin[y * 3 + ch] = tmp[((size_t)y * w + x) * 3 + ch];
        fn(cin, H, 3, cout, h);
        for (int y = 0; y < h; y++)
            for (int ch = 0; ch < 3; ch++) dst[((size_t)y * w + x) * 3 + ch] = cout[y * 3 + ch];
    }
}

// Low resolution: area-downscale the S x S image by fac (at least 8 px) and bilinear back.
static et_status lowres_image(float *rgb, int S, float fac) {
    int s = (int)lroundf((float)S * fac);
    if (s < 8) s = 8;
    if (s >= S) return NULL;
    float *small = malloc((size_t)s * s * 3 * sizeof(float));
    float *tmp = malloc((size_t)S * S * 3 * sizeof(float));
    float *col = malloc((size_t)S * 6 * sizeof(float));
    et_status st = NULL;
    if (!small || !tmp || !col) {
        st = et_err(ET_ERR_NOMEM, "synth render: out of memory (low resolution)");
    } else {
        resize_image(rgb, S, S, small, s, s, tmp, col, 1);
        resize_image(small, s, s, rgb, S, S, tmp, col, 0);
    }
    free(small);
    free(tmp);
    free(col);
    return st;
}

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
} synth_jpeg_err;

static void synth_jpeg_error_exit(j_common_ptr c) {
    synth_jpeg_err *e = (synth_jpeg_err *)c->err;
    longjmp(e->jb, 1);
}

// JPEG compression at quality q (libjpeg defaults: 4:2:0, islow DCT), decoded back in place.
// The output buffer lives on the heap: libjpeg's error exit longjmps here, and automatic
// variables changed after setjmp would be indeterminate.
typedef struct {
    unsigned char *buf;
    unsigned long size;
} jpeg_out;

static et_status jpeg_roundtrip(uint8_t *data, int S, int q) {
    struct jpeg_compress_struct ci;
    synth_jpeg_err err;
    jpeg_out *m = calloc(1, sizeof(jpeg_out));
    if (!m) return et_err(ET_ERR_NOMEM, "synth render: out of memory (JPEG)");
    ci.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = synth_jpeg_error_exit;
    if (setjmp(err.jb)) {
        jpeg_destroy_compress(&ci);
        free(m->buf);
        free(m);
        return et_err(ET_ERR_INVALID, "synth render: JPEG compression at quality %d failed", q);
    }
    jpeg_create_compress(&ci);
    jpeg_mem_dest(&ci, &m->buf, &m->size);
    ci.image_width = (JDIMENSION)S;
    ci.image_height = (JDIMENSION)S;
    ci.input_components = 3;
    ci.in_color_space = JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, q, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = data + (size_t)ci.next_scanline * (size_t)S * 3;
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    et_image img;
    et_status st = et_image_decode_memory(m->buf, m->size, "synth JPEG degradation", NULL, &img);
    free(m->buf);
    free(m);
    if (st) return st;
    if (img.width == S && img.height == S)
        memcpy(data, img.data, (size_t)S * S * 3);
    else
        st = et_err(ET_ERR_INVALID, "synth render: JPEG round trip changed the size");
    et_image_free(&img);
    return st;
}

et_status et_synth_render(const et_synth_face *f, int size, et_image *out) {
    memset(out, 0, sizeof(*out));
    if (size < 16 || size > 4096)
        return et_err(ET_ERR_INVALID, "synth render: size %d is not in 16..4096", size);
    size_t npx = (size_t)size * (size_t)size * 3;
    raster *r = calloc(1, sizeof(raster));
    float *rgb = malloc(npx * sizeof(float));
    float *cov = calloc((size_t)size, sizeof(float));
    float *tmp = malloc(npx * sizeof(float));
    float *line = malloc(((size_t)size + 64) * 3 * sizeof(float));
    et_status st = NULL;
    if (!r || !rgb || !cov || !tmp || !line) {
        st = et_err(ET_ERR_NOMEM, "synth render: out of memory for a %dx%d image", size, size);
        goto done;
    }
    st = et_image_alloc(size, size, out);
    if (st) goto done;
    geom g;
    geom_build(f, &g);
    r->S = size;
    r->K = size <= 128 ? 4 : 3;
    r->rgb = rgb;
    r->cov = cov;
    float h = 0.5f * (float)size, ppu = g.k * h;  // pixels per face unit
    r->exposure = f->img.exposure;
    r->lcx = (g.ox + 1) * h;
    r->lcy = (g.oy + 1) * h;
    r->lgx = f->img.light_x / ppu;
    r->lgy = f->img.light_y / ppu;

    draw_background(r, f);
    if (f->app.hair_style == ET_SYNTH_HAIR_LONG) draw_hair_back(r, &g);
    draw_face_base(r, &g);
    draw_lines(r, &g);
    if (f->app.hair_style != ET_SYNTH_HAIR_NONE) draw_hair_front(r, &g);
    draw_eyes(r, &g);
    draw_brows(r, &g);
    draw_nose(r, &g, f->img.light_x);
    draw_mouth(r, &g);
    draw_occluder(r, &g, f);

    float sigma = f->img.blur_sigma * (float)size / 64.0f;
    if (sigma > 0.05f) blur_image(rgb, size, sigma, tmp, line);
    if (f->deg.lowres > 0 && f->deg.lowres < 1) {
        st = lowres_image(rgb, size, f->deg.lowres);
        if (st) goto done;
    }
    add_noise_quantise(rgb, npx, f->img.noise_std, f->img.noise_key, out->data);
    if (f->deg.jpeg_quality > 0) st = jpeg_roundtrip(out->data, size, f->deg.jpeg_quality);
done:
    if (st) et_image_free(out);
    free(r);
    free(rgb);
    free(cov);
    free(tmp);
    free(line);
    return st;
}

// ---- AU text ----------------------------------------------------------------------

int et_synth_face_aus(const et_synth_face *f, int *aus, int max) {
    int n = 0;
    for (int k = 1; k < ET_SYNTH_AU_MAX; k++)
        if (f->au[k] >= ET_SYNTH_AU_PRESENT) {
            if (n < max) aus[n] = k;
            n++;
        }
    return n;
}

void et_synth_aus_text(const et_synth_face *f, const char *prefix, char *buf, size_t n) {
    int aus[ET_SYNTH_AU_MAX];
    int m = et_synth_face_aus(f, aus, ET_SYNTH_AU_MAX);
    size_t len = 0;
    if (n) buf[0] = 0;
    for (int i = 0; i < m && len < n; i++) {
        int w = snprintf(buf + len, n - len, "%s%s%d", i ? ", " : "", prefix ? prefix : "", aus[i]);
        if (w < 0) break;
        len += (size_t)w;
    }
}

static const struct {
    int au;
    const char *subject, *verb;
} k_au_phrase[] = {
    {1, "inner brows", "are raised"},
    {2, "outer brows", "are raised"},
    {4, "brows", "are lowered and drawn together"},
    {5, "upper eyelids", "are raised"},
    {6, "cheeks", "are raised"},
    {7, "eyelids", "are tightened"},
    {9, "nose", "is wrinkled"},
    {10, "upper lip", "is raised"},
    {12, "lip corners", "are pulled up"},
    {15, "lip corners", "are pulled down"},
    {16, "lower lip", "is pulled down"},
    {17, "chin", "is raised"},
    {20, "lips", "are stretched"},
    {23, "lips", "are tightened"},
    {24, "lips", "are pressed together"},
    {25, "lips", "are parted"},
    {26, "jaw", "is dropped"},
};

// FACS names of the AUs the generator draws (the short captions' words).
static const struct {
    int au;
    const char *name;
} k_au_facs[] = {
    {1, "inner brow raiser"},
    {2, "outer brow raiser"},
    {4, "brow lowerer"},
    {5, "upper lid raiser"},
    {6, "cheek raiser"},
    {7, "lid tightener"},
    {9, "nose wrinkler"},
    {10, "upper lip raiser"},
    {12, "lip corner puller"},
    {15, "lip corner depressor"},
    {16, "lower lip depressor"},
    {17, "chin raiser"},
    {20, "lip stretcher"},
    {23, "lip tightener"},
    {24, "lip pressor"},
    {25, "lips part"},
    {26, "jaw drop"},
};

void et_synth_describe(const et_synth_face *f, char *buf, size_t n) {
    int aus[ET_SYNTH_AU_MAX];
    int m = et_synth_face_aus(f, aus, ET_SYNTH_AU_MAX);
    const char *showing = f->emotion >= 0 && f->emotion < ET_SYNTH_N_EMOTIONS
                              ? k_emotion_showing[f->emotion]
                              : "showing an unknown expression";
    if (m == 0) {
        snprintf(buf, n, "The person's face is relaxed with no visible action units, %s.", showing);
        return;
    }
    char text[1024], list[256];
    size_t len = 0, ll = 0;
    text[0] = list[0] = 0;
    int np = 0;
    for (int i = 0; i < m; i++) {
        for (size_t j = 0; j < sizeof(k_au_phrase) / sizeof(k_au_phrase[0]); j++) {
            if (k_au_phrase[j].au != aus[i]) continue;
            const char *sep = np == 0 ? "The person's " : i == m - 1 ? " and the " : ", the ";
            len += (size_t)snprintf(text + len, sizeof(text) - len, "%s%s %s", sep,
                                    k_au_phrase[j].subject, k_au_phrase[j].verb);
            np++;
        }
        ll += (size_t)snprintf(list + ll, sizeof(list) - ll, "%sAU%d", i ? ", " : "", aus[i]);
        if (len >= sizeof(text) || ll >= sizeof(list)) break;
    }
    snprintf(buf, n, "%s (%s), %s.", text, list, showing);
}

// ---- captions and pretraining text ----------------------------------------------------

typedef struct {
    char *p;
    size_t n, len;  // len counts what would have been written (as snprintf)
} sbuf;

static void sb_add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = b->len < b->n ? b->n - b->len : 0;
    int w = vsnprintf(room ? b->p + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (w > 0) b->len += (size_t)w;
}

// Capitalises the first letter written at offset at.
static void sb_cap(sbuf *b, size_t at) {
    if (at < b->len && at < b->n && b->p[at] >= 'a' && b->p[at] <= 'z') b->p[at] -= 'a' - 'A';
}

static const char *const k_emotion_adj[ET_SYNTH_N_EMOTIONS] = {
    "happy", "sad", "surprised", "angry", "neutral", "disgusted", "fearful"};
static const char *const k_hair_names[8] = {"black", "dark brown", "brown", "light brown",
                                            "blond", "red",        "grey",  "white"};

static const char *person_noun(const et_synth_appearance *A) {
    static const char *const n[4][2] = {{"girl", "boy"},
                                        {"young woman", "young man"},
                                        {"woman", "man"},
                                        {"older woman", "older man"}};
    int a = A->age >= 0 && A->age < 4 ? A->age : 2, g = A->gender == ET_SYNTH_MALE;
    return n[a][g];
}

static const char *article(const char *word) { return strchr("aeiou", word[0]) ? "an" : "a"; }

// The nearest named hair colour.
static const char *hair_colour(const et_synth_appearance *A) {
    int best = 0;
    float bd = 1e30f;
    for (int i = 0; i < 8; i++) {
        float d = 0;
        for (int c = 0; c < 3; c++) d += (A->hair[c] - k_hair[i][c]) * (A->hair[c] - k_hair[i][c]);
        if (d < bd) bd = d, best = i;
    }
    return k_hair_names[best];
}

static void hair_phrase(const et_synth_appearance *A, sbuf *b) {
    if (A->hair_style == ET_SYNTH_HAIR_NONE)
        sb_add(b, "a bald head");
    else
        sb_add(b, "%s %s hair", A->hair_style == ET_SYNTH_HAIR_LONG ? "long" : "short",
               hair_colour(A));
}

// 0 mild, 1 clear, 2 strong.
static int intensity_level(float it) { return it < 0.7f ? 0 : it < 0.85f ? 1 : 2; }

// Whether an occluder hides the region of AU au (a caption describes what is visible).
static int au_hidden(const et_synth_face *f, int au) {
    if (f->deg.occluder == ET_SYNTH_OCC_SUNGLASSES) return au == 5 || au == 7;
    if (f->deg.occluder == ET_SYNTH_OCC_HAND_MOUTH) return au >= 10;
    return 0;
}

// "her cheeks are raised and the lip corners are pulled up": det ("the", "her", "his")
// before the first subject, "the" before the others, and " (AU6, AU12)" when numbers; visible
// present AUs only. Returns the number of phrases.
static int au_words(const et_synth_face *f, const char *det, int numbers, sbuf *b) {
    int aus[ET_SYNTH_AU_MAX], vis[ET_SYNTH_AU_MAX], nv = 0;
    int m = et_synth_face_aus(f, aus, ET_SYNTH_AU_MAX);
    for (int i = 0; i < m; i++)
        if (!au_hidden(f, aus[i])) vis[nv++] = aus[i];
    int np = 0;
    for (int i = 0; i < nv; i++)
        for (size_t j = 0; j < sizeof(k_au_phrase) / sizeof(k_au_phrase[0]); j++) {
            if (k_au_phrase[j].au != vis[i]) continue;
            sb_add(b, "%s%s %s %s",
                   np == 0       ? ""
                   : i == nv - 1 ? " and "
                                 : ", ",
                   np == 0 ? det : "the", k_au_phrase[j].subject, k_au_phrase[j].verb);
            np++;
        }
    if (np && numbers) {
        sb_add(b, " (");
        for (int i = 0; i < nv; i++) sb_add(b, "%sAU%d", i ? ", " : "", vis[i]);
        sb_add(b, ")");
    }
    return np;
}

// ", wearing dark sunglasses" / ", with the head turned to the left" ...: the occluder and
// the large pose components.
static void extras_phrase(const et_synth_face *f, sbuf *b) {
    switch (f->deg.occluder) {
        case ET_SYNTH_OCC_SUNGLASSES:
            sb_add(b, ", wearing dark sunglasses");
            break;
        case ET_SYNTH_OCC_HAND_MOUTH:
            sb_add(b, ", with a hand over the mouth");
            break;
        case ET_SYNTH_OCC_HAND_CHEEK:
            sb_add(b, ", with a hand on one cheek");
            break;
        case ET_SYNTH_OCC_RECT:
            sb_add(b, ", with part of the face hidden");
            break;
        default:
            break;
    }
    // yaw > 0 turns the face toward image right; roll > 0 moves the top of the head right
    int turn = fabsf(f->pose.yaw) > 0.2f, tilt = fabsf(f->pose.roll) > 0.1f;
    if (turn) sb_add(b, ", with the head turned to the %s", f->pose.yaw > 0 ? "right" : "left");
    if (tilt)
        sb_add(b, "%s tilted to the %s", turn ? " and" : ", with the head",
               f->pose.roll > 0 ? "right" : "left");
}

// The caption's AU sentence: "Her cheeks are raised ... (AU6, AU12)." or "The face is relaxed."
static void au_sentence(const et_synth_face *f, rstream *r, sbuf *b) {
    const char *det = ru(r) < 0.5f ? "the" : f->app.gender == ET_SYNTH_MALE ? "his" : "her";
    int numbers = ru(r) < 0.4f;
    size_t at = b->len;
    if (au_words(f, det, numbers, b) == 0) {
        b->len = at;
        if (at < b->n) b->p[at] = 0;
        sb_add(b, "%s",
               f->deg.occluder ? "the visible part of the face is relaxed" : "the face is relaxed");
    }
    sb_cap(b, at);
    sb_add(b, ".");
}

// Caption body; with_emotion 0 leaves out every word about the emotion (text samples).
static void caption_body(const et_synth_face *f, rstream *r, int with_emotion, sbuf *b) {
    static const char *const adv[3] = {"slightly", "clearly", "very"};
    static const char *const adj[3] = {"mild", "clear", "strong"};
    const char *who = person_noun(&f->app);
    int e = f->emotion >= 0 && f->emotion < ET_SYNTH_N_EMOTIONS ? f->emotion : ET_SYNTH_NEUTRAL;
    int lv = intensity_level(f->intensity), neutral = e == ET_SYNTH_NEUTRAL;
    int t = rint_(r, 4);
    size_t at = b->len;
    if (!with_emotion) t = 0;
    switch (t) {
        case 0:  // A photo of a young woman with long brown hair, showing strong happiness.
            sb_add(b, "a photo of %s %s with ", article(who), who);
            hair_phrase(&f->app, b);
            extras_phrase(f, b);
            if (with_emotion) {
                if (neutral)
                    sb_add(b, ", showing a neutral expression");
                else
                    sb_add(b, ", showing %s %s", adj[lv], k_emotion_names[e]);
            }
            break;
        case 1:  // A young woman looks very happy.
            sb_add(b, "%s %s looks %s%s%s", article(who), who, neutral ? "" : adv[lv],
                   neutral ? "" : " ", k_emotion_adj[e]);
            extras_phrase(f, b);
            break;
        case 2: {  // A very happy face of a young woman with long brown hair.
            const char *first = neutral ? k_emotion_adj[e] : adv[lv];
            sb_add(b, "%s %s%s%s face of %s %s with ", article(first), neutral ? "" : adv[lv],
                   neutral ? "" : " ", k_emotion_adj[e], article(who), who);
            hair_phrase(&f->app, b);
            extras_phrase(f, b);
            break;
        }
        default:  // A strong expression of happiness on the face of an older man.
            if (neutral)
                sb_add(b, "a neutral expression on the face of %s %s", article(who), who);
            else
                sb_add(b, "%s %s expression of %s on the face of %s %s", article(adj[lv]), adj[lv],
                       k_emotion_names[e], article(who), who);
            extras_phrase(f, b);
            break;
    }
    sb_cap(b, at);
    sb_add(b, ". ");
    au_sentence(f, r, b);
}

int et_synth_caption_short(const et_synth_face *f, char *buf, size_t n) {
    static const char *const level[3] = {"mild", "clear", "strong"};
    sbuf b = {buf, n, 0};
    if (n) buf[0] = 0;
    int e = f->emotion >= 0 && f->emotion < ET_SYNTH_N_EMOTIONS ? f->emotion : ET_SYNTH_NEUTRAL;
    sb_add(&b, "Face of %s %s %s, %s skin, expressing %s", article(et_synth_age_name(f->app.age)),
           et_synth_age_name(f->app.age), et_synth_gender_name(f->app.gender),
           et_synth_skin_name(f->app.skin_group), k_emotion_names[e]);
    if (e != ET_SYNTH_NEUTRAL) sb_add(&b, " (%s)", level[intensity_level(f->intensity)]);
    static const char *const occ[] = {"", "sunglasses", "hand over mouth", "hand on cheek",
                                      "part hidden"};
    if (f->deg.occluder > ET_SYNTH_OCC_NONE && f->deg.occluder <= ET_SYNTH_OCC_RECT)
        sb_add(&b, ", %s", occ[f->deg.occluder]);
    if (fabsf(f->pose.yaw) > 0.2f)
        sb_add(&b, ", head turned %s", f->pose.yaw > 0 ? "right" : "left");
    if (fabsf(f->pose.roll) > 0.1f)
        sb_add(&b, ", head tilted %s", f->pose.roll > 0 ? "right" : "left");
    int aus[ET_SYNTH_AU_MAX], m = et_synth_face_aus(f, aus, ET_SYNTH_AU_MAX), nv = 0;
    for (int i = 0; i < m; i++) {
        if (au_hidden(f, aus[i])) continue;
        for (size_t j = 0; j < sizeof(k_au_facs) / sizeof(k_au_facs[0]); j++)
            if (k_au_facs[j].au == aus[i])
                sb_add(&b, "%sAU%d (%s)", nv++ ? ", " : ". Active: ", aus[i], k_au_facs[j].name);
    }
    sb_add(&b, nv ? "." : ". No active AUs.");
    return (int)b.len;
}

static uint64_t caption_id(const et_synth_face *f) {
    return (f->split == ET_SYNTH_CLIP ? (uint64_t)1 << 40 : 0) + (uint64_t)f->index;
}

int et_synth_caption(const et_synth_face *f, uint64_t seed, char *buf, size_t n) {
    sbuf b = {buf, n, 0};
    if (n) buf[0] = 0;
    rstream r = stream_for(seed, TAG_CAPTION, caption_id(f));
    caption_body(f, &r, 1, &b);
    return (int)b.len;
}

// The category question of train.json (options shuffled from s when o->shuffle_options).
static void category_question(const et_synth_opts *o, rstream *s, sbuf *b) {
    int list[ET_SYNTH_N_EMOTIONS], n = enabled_emotions(o, list);
    if (o->shuffle_options)
        for (int i = n - 1; i > 0; i--) {
            int j = rint_(s, i + 1), t = list[i];
            list[i] = list[j];
            list[j] = t;
        }
    sb_add(b, "What is the emotion of this face? Choose one from the following options: {");
    for (int i = 0; i < n; i++) sb_add(b, "%s%s", i ? ", " : "", et_synth_emotion_name(list[i]));
    sb_add(b, "}.");
}

enum { R_AUS, R_DESCRIBE, R_EMOTION, R_AGE, R_GENDER, R_CAPTION, R_N };

// Characters of all rounds of a text sample: a round that would exceed it is left out
// (640: at most ~230 tokens of the tiny 1024-token BPE with vicuna_v1's system prompt).
#define TEXT_BUDGET 640

int et_synth_text_sample(const et_synth_opts *o, int split, int64_t k, int max_rounds,
                         char q[][ET_SYNTH_TEXT_MAX], char a[][ET_SYNTH_TEXT_MAX], int *emotion) {
    ET_ASSERT(k >= 0 && max_rounds >= 1 && max_rounds <= ET_SYNTH_TEXT_ROUNDS,
              "et_synth_text_sample: k %lld, max_rounds %d", (long long)k, max_rounds);
    // faces far past every image index; train and test text in disjoint ranges
    int64_t index = ((int64_t)1 << 38) + (split == ET_SYNTH_TRAIN ? 0 : (int64_t)1 << 37) + k;
    et_synth_face f;
    et_synth_sample_face(o, index, &f);
    f.deg.occluder = ET_SYNTH_OCC_NONE;  // words describe the whole face
    if (emotion) *emotion = f.emotion;
    rstream r = stream_for(o->seed, TAG_TEXT, (uint64_t)index);
    char desc[1024];
    et_synth_describe(&f, desc, sizeof(desc));
    int done[R_N] = {0}, nr = 0, person = 0;
    // round 1: a face in words, then the category question; or an emotion to describe
    sbuf qb = {q[0], ET_SYNTH_TEXT_MAX, 0}, ab = {a[0], ET_SYNTH_TEXT_MAX, 0};
    float u = ru(&r);
    if (u < 0.25f) {
        const char *who = person_noun(&f.app);
        static const char *const adj[3] = {"mild", "clear", "strong"};
        size_t at = qb.len;
        if (f.emotion == ET_SYNTH_NEUTRAL)
            sb_add(&qb, "%s %s shows a neutral expression.", article(who), who);
        else
            sb_add(&qb, "%s %s shows %s %s.", article(who), who, adj[intensity_level(f.intensity)],
                   et_synth_emotion_name(f.emotion));
        sb_cap(&qb, at);
        sb_add(&qb, " Describe the facial expression.");
        sb_add(&ab, "%s", desc);
        done[R_DESCRIBE] = done[R_EMOTION] = person = 1;
    } else {
        int c = rint_(&r, 3);
        if (c == 0) {  // the descriptive answer's words without the emotion
            char *cut = strstr(desc, ", showing");
            if (cut)
                sb_add(&qb, "%.*s.", (int)(cut - desc), desc);
            else
                sb_add(&qb, "%s", desc);
        } else if (c == 1) {
            char aus[256];
            et_synth_aus_text(&f, "AU", aus, sizeof(aus));
            if (aus[0])
                sb_add(&qb, "This face shows %s.", aus);
            else
                sb_add(&qb, "This face shows no action units.");
        } else {
            caption_body(&f, &r, 0, &qb);
            person = 1;
        }
        sb_add(&qb, " ");
        if (ru(&r) < 0.7f)
            category_question(o, &r, &qb);
        else
            sb_add(&qb, "What is the emotion of this face?");
        sb_add(&ab, "%s", et_synth_emotion_name(f.emotion));
        done[R_EMOTION] = 1;
    }
    nr = 1;
    size_t total = qb.len + ab.len;
    float v = ru(&r);
    int want = v < 0.4f ? 1 : v < 0.75f ? 2 : 3;
    if (want > max_rounds) want = max_rounds;
    while (nr < want) {
        int pool[R_N], np = 0;
        for (int i = 0; i < R_N; i++)
            if (!done[i] && ((i != R_AGE && i != R_GENDER) || person)) pool[np++] = i;
        if (!np) break;
        int kind = pool[rint_(&r, np)];
        done[kind] = 1;
        qb = (sbuf){q[nr], ET_SYNTH_TEXT_MAX, 0};
        ab = (sbuf){a[nr], ET_SYNTH_TEXT_MAX, 0};
        switch (kind) {
            case R_AUS: {
                sb_add(&qb, "What AUs are conveyed by this face?");
                char aus[256];
                et_synth_aus_text(&f, "AU", aus, sizeof(aus));
                sb_add(&ab, "%s", aus[0] ? aus : "None");
                break;
            }
            case R_DESCRIBE:
                sb_add(&qb, "Describe the facial expression.");
                sb_add(&ab, "%s", desc);
                break;
            case R_EMOTION:
                sb_add(&qb, "What is the emotion of this face?");
                sb_add(&ab, "%s", et_synth_emotion_name(f.emotion));
                break;
            case R_CAPTION:  // the words of the short captions (stage 1's targets)
                sb_add(&qb, "Write a short caption of the face.");
                ab.len = (size_t)et_synth_caption_short(&f, ab.p, ab.n);
                break;
            case R_AGE:
                sb_add(&qb, "What is the age group of the person?");
                sb_add(&ab, "%s", et_synth_age_name(f.app.age));
                break;
            default:
                sb_add(&qb, "What is the gender of the person?");
                sb_add(&ab, "%s", et_synth_gender_name(f.app.gender));
                break;
        }
        total += qb.len + ab.len;
        if (total > TEXT_BUDGET) break;  // keep the sample within a tiny model's context
        nr++;
    }
    return nr;
}

// ---- dataset writer -----------------------------------------------------------------

static et_status make_dir(const char *path) {
    if (mkdir(path, 0777) == 0 || errno == EEXIST) {
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return NULL;
        return et_err(ET_ERR_IO, "%s: exists and is not a directory", path);
    }
    return et_err(ET_ERR_IO, "%s: cannot create directory: %s", path, strerror(errno));
}

static char *path_join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *p = malloc(la + lb + 2);
    if (!p) return NULL;
    memcpy(p, a, la);
    p[la] = '/';
    memcpy(p + la + 1, b, lb + 1);
    return p;
}

enum { Q_CATEGORY, Q_DESCRIBE, Q_AUS };

static int question_kind(const et_synth_opts *o, int64_t index, rstream *s) {
    *s = stream_for(o->seed, TAG_QUESTION, (uint64_t)index);
    float u = ru(s);
    if (u < o->au_question_frac) return Q_AUS;
    if (u < o->au_question_frac + o->descriptive_frac) return Q_DESCRIBE;
    return Q_CATEGORY;
}

// The first human turn's text (after "<image>\n" or "<video>\n") and the answer.
static void make_qa(const et_synth_opts *o, const et_synth_face *f, int kind, rstream *s, char *q,
                    size_t qn, char *a, size_t an) {
    if (kind == Q_AUS) {
        snprintf(q, qn, "What AUs are conveyed by this face?");
        et_synth_aus_text(f, "AU", a, an);
        if (!a[0]) snprintf(a, an, "None");
        return;
    }
    if (kind == Q_DESCRIBE) {
        snprintf(q, qn, "Describe the facial expression.");
        et_synth_describe(f, a, an);
        return;
    }
    sbuf b = {q, qn, 0};
    if (qn) q[0] = 0;
    category_question(o, s, &b);
    snprintf(a, an, "%s", et_synth_emotion_name(f->emotion));
}

static cJSON *sample_json(const et_synth_opts *o, const et_synth_face *f, const char *id,
                          const char *media_key, const char *media, const char *landmark,
                          const char *token, int64_t qindex) {
    rstream s;
    int kind = question_kind(o, qindex, &s);
    char q[512], a[1024], human[600], aus[256];
    make_qa(o, f, kind, &s, q, sizeof(q), a, sizeof(a));
    snprintf(human, sizeof(human), "%s\n%s", token, q);
    et_synth_aus_text(f, "", aus, sizeof(aus));
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON_AddStringToObject(j, "id", id);
    cJSON_AddStringToObject(j, media_key, media);
    if (landmark) cJSON_AddStringToObject(j, "landmark", landmark);
    cJSON_AddStringToObject(j, "source", "synth");
    cJSON_AddNumberToObject(j, "identity", (double)f->identity);
    cJSON *at = cJSON_AddObjectToObject(j, "attributes");
    if (at) {
        cJSON_AddStringToObject(at, "age", et_synth_age_name(f->app.age));
        cJSON_AddStringToObject(at, "gender", et_synth_gender_name(f->app.gender));
        cJSON_AddStringToObject(at, "race", et_synth_skin_name(f->app.skin_group));
    }
    cJSON_AddStringToObject(j, "label", et_synth_emotion_name(f->emotion));
    cJSON_AddNumberToObject(j, "intensity", round((double)f->intensity * 1000) / 1000);
    cJSON_AddStringToObject(j, "aus", aus);
    cJSON *conv = cJSON_AddArrayToObject(j, "conversations");
    cJSON *t0 = cJSON_CreateObject(), *t1 = cJSON_CreateObject();
    if (t0) {
        cJSON_AddStringToObject(t0, "from", "human");
        cJSON_AddStringToObject(t0, "value", human);
    }
    if (t1) {
        cJSON_AddStringToObject(t1, "from", "gpt");
        cJSON_AddStringToObject(t1, "value", a);
    }
    if (!conv || !t0 || !t1 || !cJSON_AddItemToArray(conv, t0) || !cJSON_AddItemToArray(conv, t1)) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

static cJSON *add_turn(cJSON *conv, const char *from, const char *value) {
    cJSON *t = cJSON_CreateObject();
    if (!t) return NULL;
    if (!cJSON_AddStringToObject(t, "from", from) || !cJSON_AddStringToObject(t, "value", value) ||
        !cJSON_AddItemToArray(conv, t)) {
        cJSON_Delete(t);
        return NULL;
    }
    return t;
}

// A captions_*.json sample: LLaVA's plain pretraining format.
static cJSON *caption_json(const et_synth_opts *o, const et_synth_face *f, const char *id,
                           const char *image, const char *landmark) {
    char cap[1024];
    if (o->caption_style == ET_SYNTH_CAPTION_PROSE)
        et_synth_caption(f, o->seed, cap, sizeof(cap));
    else
        et_synth_caption_short(f, cap, sizeof(cap));
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON_AddStringToObject(j, "id", id);
    cJSON_AddStringToObject(j, "image", image);
    cJSON_AddStringToObject(j, "landmark", landmark);
    cJSON_AddStringToObject(j, "label", et_synth_emotion_name(f->emotion));
    cJSON *at = cJSON_AddObjectToObject(j, "attributes");
    if (at) {
        cJSON_AddStringToObject(at, "age", et_synth_age_name(f->app.age));
        cJSON_AddStringToObject(at, "gender", et_synth_gender_name(f->app.gender));
        cJSON_AddStringToObject(at, "race", et_synth_skin_name(f->app.skin_group));
    }
    cJSON *conv = cJSON_AddArrayToObject(j, "conversations");
    if (!at || !conv || !add_turn(conv, "human", "<image>\n") || !add_turn(conv, "gpt", cap)) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

// A text_*.json sample (no media).
static cJSON *text_json(const et_synth_opts *o, int split, int64_t k) {
    char q[ET_SYNTH_TEXT_ROUNDS][ET_SYNTH_TEXT_MAX], a[ET_SYNTH_TEXT_ROUNDS][ET_SYNTH_TEXT_MAX];
    int emotion = 0;
    int nr = et_synth_text_sample(o, split, k, ET_SYNTH_TEXT_ROUNDS, q, a, &emotion);
    char id[48];
    snprintf(id, sizeof(id),
             split == ET_SYNTH_TRAIN ? "synth_text_%06lld" : "synth_text_test_%06lld",
             (long long)k);
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON_AddStringToObject(j, "id", id);
    cJSON_AddStringToObject(j, "source", "synth_text");
    cJSON_AddStringToObject(j, "label", et_synth_emotion_name(emotion));
    cJSON *conv = cJSON_AddArrayToObject(j, "conversations");
    int ok = conv != NULL;
    for (int i = 0; i < nr && ok; i++)
        ok = add_turn(conv, "human", q[i]) && add_turn(conv, "gpt", a[i]);
    if (!ok) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

// Write a JSON array with one unformatted sample per line, via path.tmp and rename.
typedef struct {
    FILE *fp;
    char *path, *tmp;
    int64_t count;
} json_writer;

static et_status jw_open(json_writer *w, const char *dir, const char *name) {
    memset(w, 0, sizeof(*w));
    w->path = path_join(dir, name);
    if (!w->path) return et_err(ET_ERR_NOMEM, "%s/%s: out of memory", dir, name);
    size_t l = strlen(w->path);
    w->tmp = malloc(l + 5);
    if (!w->tmp) return et_err(ET_ERR_NOMEM, "%s: out of memory", w->path);
    memcpy(w->tmp, w->path, l);
    memcpy(w->tmp + l, ".tmp", 5);
    w->fp = fopen(w->tmp, "wb");
    if (!w->fp) return et_err(ET_ERR_IO, "%s: cannot create: %s", w->tmp, strerror(errno));
    fputs("[\n", w->fp);
    return NULL;
}

static et_status jw_add(json_writer *w, cJSON *j) {
    if (!j) return et_err(ET_ERR_NOMEM, "%s: out of memory building a sample", w->path);
    char *txt = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!txt) return et_err(ET_ERR_NOMEM, "%s: out of memory printing a sample", w->path);
    if (w->count++) fputs(",\n", w->fp);
    fputs(txt, w->fp);
    free(txt);
    return NULL;
}

static et_status jw_close(json_writer *w, et_status st) {
    if (w->fp) {
        if (!st) fputs("\n]\n", w->fp);
        int bad = ferror(w->fp);
        if (fclose(w->fp) != 0) bad = 1;
        w->fp = NULL;
        if (!st && bad) st = et_err(ET_ERR_IO, "%s: write failed: %s", w->tmp, strerror(errno));
        if (!st && rename(w->tmp, w->path) != 0)
            st = et_err(ET_ERR_IO, "%s: cannot rename %s to it: %s", w->path, w->tmp,
                        strerror(errno));
        if (st) remove(w->tmp);
    }
    free(w->path);
    free(w->tmp);
    return st;
}

// Render and write one sample's image and landmarks.
static et_status write_sample_files(const et_synth_opts *o, const char *dir, int64_t index) {
    et_synth_face f;
    et_synth_sample_face(o, index, &f);
    char rel[64], *path;
    et_image img;
    ET_TRY(et_synth_render(&f, o->size, &img));
    snprintf(rel, sizeof(rel), "images/synth_%06lld.png", (long long)index);
    path = path_join(dir, rel);
    et_status st = path ? et_image_write_png(path, &img) : et_err(ET_ERR_NOMEM, "out of memory");
    free(path);
    et_image_free(&img);
    if (st) return st;
    snprintf(rel, sizeof(rel), "landmarks/synth_%06lld.npy", (long long)index);
    path = path_join(dir, rel);
    int64_t shape[1] = {ET_SYNTH_LANDMARK_DIM};
    st =
        path ? et_npy_write_f32(path, f.detected, 1, shape) : et_err(ET_ERR_NOMEM, "out of memory");
    free(path);
    return st;
}

static et_status write_clip_files(const et_synth_opts *o, const char *dir, int64_t clip) {
    et_synth_face apex, f;
    et_synth_sample_clip(o, clip, &apex);
    char rel[96];
    snprintf(rel, sizeof(rel), "clips/synth_clip_%04lld", (long long)clip);
    char *cdir = path_join(dir, rel);
    if (!cdir) return et_err(ET_ERR_NOMEM, "out of memory");
    et_status st = make_dir(cdir);
    int T = o->clip_frames;
    float *lms = malloc(sizeof(float) * ET_SYNTH_LANDMARK_DIM * (size_t)T);
    if (!st && !lms) st = et_err(ET_ERR_NOMEM, "out of memory");
    for (int t = 0; t < T && !st; t++) {
        f = apex;
        f.deg.lm_key = mix64(apex.deg.lm_key + (uint64_t)t);  // detector errors per frame
        et_synth_set_intensity(&f, apex.intensity * (float)t / (float)(T - 1));
        memcpy(lms + (size_t)t * ET_SYNTH_LANDMARK_DIM, f.detected, sizeof(f.detected));
        et_image img;
        st = et_synth_render(&f, o->size, &img);
        if (st) break;
        char name[32];
        snprintf(name, sizeof(name), "frame_%03d.png", t);
        char *path = path_join(cdir, name);
        st = path ? et_image_write_png(path, &img) : et_err(ET_ERR_NOMEM, "out of memory");
        free(path);
        et_image_free(&img);
    }
    if (!st) {
        snprintf(rel, sizeof(rel), "landmarks/synth_clip_%04lld.npy", (long long)clip);
        char *path = path_join(dir, rel);
        int64_t shape[2] = {T, ET_SYNTH_LANDMARK_DIM};
        st = path ? et_npy_write_f32(path, lms, 2, shape) : et_err(ET_ERR_NOMEM, "out of memory");
        free(path);
    }
    free(lms);
    free(cdir);
    return st;
}

// Runs fn over [0, n) in parallel; returns the error of the lowest failing item.
static et_status parallel_items(const et_synth_opts *o, const char *dir, int64_t n,
                                et_status (*fn)(const et_synth_opts *, const char *, int64_t)) {
    et_status first = NULL;
    int64_t first_i = n;
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t i = 0; i < n; i++) {
        int64_t seen;
#pragma omp atomic read
        seen = first_i;
        if (i > seen) continue;
        et_status st = fn(o, dir, i);
        if (st) {
#pragma omp critical(et_synth_err)
            {
                if (i < first_i) {
                    et_status_free(first);
                    first = st;
                    first_i = i;
                } else {
                    et_status_free(st);
                }
            }
        }
    }
    return first;
}

et_status et_synth_write_dataset(const et_synth_opts *o, const char *out_dir) {
    ET_TRY(et_synth_check_opts(o));
    if (!out_dir || !out_dir[0]) return et_err(ET_ERR_INVALID, "synth: empty output directory");
    ET_TRY(make_dir(out_dir));
    static const char *const subdirs[] = {"images", "landmarks", "clips"};
    for (int i = 0; i < (o->n_clips > 0 ? 3 : 2); i++) {
        char *p = path_join(out_dir, subdirs[i]);
        if (!p) return et_err(ET_ERR_NOMEM, "out of memory");
        et_status st = make_dir(p);
        free(p);
        if (st) return st;
    }
    ET_TRY(parallel_items(o, out_dir, o->n_train + o->n_test, write_sample_files));
    if (o->n_clips > 0) ET_TRY(parallel_items(o, out_dir, o->n_clips, write_clip_files));

    static const char *const names[2] = {"train.json", "test.json"};
    static const char *const cap_names[2] = {"captions_train.json", "captions_test.json"};
    for (int split = 0; split < 2; split++) {
        json_writer w, wc;
        et_status st = jw_open(&w, out_dir, names[split]);
        et_status stc = st ? NULL : jw_open(&wc, out_dir, cap_names[split]);
        if (st) memset(&wc, 0, sizeof(wc));
        int64_t lo = split ? o->n_train : 0, hi = split ? o->n_train + o->n_test : o->n_train;
        for (int64_t i = lo; i < hi && !st && !stc; i++) {
            et_synth_face f;
            et_synth_sample_face(o, i, &f);
            char id[32], img[64], lm[64];
            snprintf(id, sizeof(id), "synth_%06lld", (long long)i);
            snprintf(img, sizeof(img), "images/%s.png", id);
            snprintf(lm, sizeof(lm), "landmarks/%s.npy", id);
            st = jw_add(&w, sample_json(o, &f, id, "image", img, lm, "<image>", i));
            if (!st) stc = jw_add(&wc, caption_json(o, &f, id, img, lm));
        }
        if (stc && !st) st = et_err(ET_ERR_IO, "%s: not written (see %s)", w.path, wc.path);
        st = jw_close(&w, st);
        stc = jw_close(&wc, stc);
        if (st) {
            et_status_free(stc);
            return st;
        }
        ET_TRY(stc);
    }
    static const char *const text_names[2] = {"text_train.json", "text_test.json"};
    for (int split = 0; split < 2 && o->n_text > 0; split++) {
        int64_t n = split ? (o->n_text / 10 > 0 ? o->n_text / 10 : 1) : o->n_text;
        json_writer w;
        et_status st = jw_open(&w, out_dir, text_names[split]);
        for (int64_t k = 0; k < n && !st; k++)
            st = jw_add(&w, text_json(o, split ? ET_SYNTH_TEST : ET_SYNTH_TRAIN, k));
        ET_TRY(jw_close(&w, st));
    }
    if (o->n_clips > 0) {
        json_writer w;
        et_status st = jw_open(&w, out_dir, "clips.json");
        for (int64_t c = 0; c < o->n_clips && !st; c++) {
            et_synth_face f;
            et_synth_sample_clip(o, c, &f);
            char id[32], vid[64];
            snprintf(id, sizeof(id), "synth_clip_%04lld", (long long)c);
            snprintf(vid, sizeof(vid), "clips/%s", id);
            // question streams of clips sit after every sample index
            st = jw_add(
                &w, sample_json(o, &f, id, "video", vid, NULL, "<video>", ((int64_t)1 << 40) + c));
        }
        ET_TRY(jw_close(&w, st));
    }
    return NULL;
}
