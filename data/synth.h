// data/synth.h - procedural synthetic faces: the embedded default dataset (no download).
// defines: ET_SYNTH_N_EMOTIONS, ET_SYNTH_AU_MAX, ET_SYNTH_N_LANDMARKS, ET_SYNTH_LANDMARK_DIM,
//          ET_SYNTH_TEXT_MAX, ET_SYNTH_TEXT_ROUNDS,
//          et_synth_emotion, et_synth_age, et_synth_gender, et_synth_hair, et_synth_split,
//          et_synth_opts, et_synth_appearance, et_synth_pose, et_synth_imaging,
//          et_synth_face, et_synth_opts_default, et_synth_check_opts, et_synth_sample_face,
//          et_synth_sample_clip, et_synth_set_intensity, et_synth_render,
//          et_synth_landmarks_px, et_synth_face_aus, et_synth_aus_text, et_synth_describe,
//          et_synth_emotion_name, et_synth_emotion_from_name, et_synth_age_name,
//          et_synth_gender_name, et_synth_skin_name, et_synth_identity_of,
//          et_synth_occluder, et_synth_degrade, et_synth_opts_clean, et_synth_caption,
//          et_synth_caption_short, ET_SYNTH_CAPTION_SHORT, ET_SYNTH_CAPTION_PROSE,
//          et_synth_text_sample, et_synth_write_dataset
//
// What a face is
// - Every face is a pure function of (opts, index): identity appearance (skin tone, face
//   shape and jaw, hair colour and style, eyes, iris colour, brows, nose, mouth, age group,
//   gender presentation) comes from (seed, identity); pose (in-plane roll, yaw as a depth-
//   dependent horizontal shift of the features, scale, translation, gaze), lighting
//   (exposure and a directional brightness gradient), background, noise and blur, the
//   emotion's intensity and the extra AUs come from (seed, index). All draws use the
//   Philox generator of core/rng.h, so a face is the same on every machine and thread.
// - Samples 0 .. n_train-1 are the train split, n_train .. n_train+n_test-1 the test split
//   (indices past that continue the test split). Each split groups its samples into
//   identities of faces_per_identity consecutive samples; train identities are numbered
//   0 .. ceil(n_train/fpi)-1 and test identities follow, so no identity is in both splits.
//   Within an identity the emotions cycle through the enabled emotions from a per-identity
//   random start: with faces_per_identity == number of emotions, every identity shows
//   every emotion once and identity says nothing about the label. Clips (video tests)
//   use identities after the test ones.
// - Expression: emotion e (class ids as EmoLA: happiness 0, sadness 1, surprise 2,
//   anger 3, neutral 4, disgust 5, fear 6) and intensity in [0, 1]. The emotion sets
//   au_apex to its EMFACS prototype (REFERENCE.md section 8; weights 0.85..1) plus a few
//   companions (happiness may add AU25 - an open smile; surprise and fear add AU25 with
//   their AU26; disgust adds AU25 and maybe AU10; sadness maybe AU17; anger maybe AU17 or
//   AU24) and, when opts.extra_aus, 0-2 random extra AUs at apex 0.05..0.2. The active AUs
//   are au[k] = intensity * au_apex[k]; they alone drive the geometry (brows AU1/2/4, lids
//   AU5/6/7, nose AU9, upper lip AU10, lip corners AU12/15/20, lower lip AU16, chin AU17,
//   lips AU23/24/25, jaw AU26). intensity 0 gives exactly the neutral geometry.
//   An AU is "present" (listed in labels) when au[k] >= 0.1.
// - Landmarks: the iBUG 300-W 68-point layout (jaw 0-16, brows 17-26, nose 27-35, eyes
//   36-47, mouth 48-67; "left" means image left), computed from the same control points
//   the renderer draws, after the pose transform. face.landmarks holds them normalised:
//   x_n = (x_px - size/2) / (size/2) (same for y), so they do not depend on the render
//   size; et_synth_landmarks_px gives pixel coordinates for a size, where pixel (i, j)
//   covers [i, i+1) x [j, j+1).
// - Degradations (a realistic benchmark; et_synth_opts_clean turns them off): per sample,
//   from their own Philox stream of (seed, index), so switching them on or off changes no
//   other draw and a face with every degradation off is byte-identical to one made before
//   they existed. In image-formation order: an occluder (sunglasses over the eyes, a hand
//   over the mouth or a cheek - both follow the head pose - or a random opaque rectangle,
//   with probability occlusion_prob), blur (sigma uniform in [0, blur]), low resolution
//   (with probability lowres_prob: an area downscale to size * factor, factor uniform in
//   [lowres_min, 1), at least 8 px, and a bilinear upscale back), pixel noise (std uniform
//   in [0, noise]), JPEG compression (with probability jpeg_prob, quality uniform in
//   jpeg_quality_min..max, libjpeg 4:2:0; the written file stays PNG).
// - Detector-like landmark noise (landmark_noise = s > 0): face.detected holds what a 68-
//   point detector would report, face.landmarks stays exact. Per-point Gaussian jitter (std
//   s * 0.6 px on eyes, brows, nose and mouth, s * 1.5 px on the jaw contour, in 64-px
//   units), a per-face similarity error (shift std s * 0.8 px, scale std s * 3%, rotation std
//   s * 2 degrees about the landmark centroid) and, with probability landmark_fail_prob, a
//   failed detection: the expression is lost (the same face's neutral landmarks) and the
//   errors are three times larger. s = 1 is a realistic detector on 64-px faces (mean point
//   error 1.56 px, 8% of the outer eye-corner distance); the default 2 is a poor detector
//   (16%). s = 0: detected == landmarks exactly. The writer writes face.detected.
// - Rendering: a scanline polygon rasteriser with exact horizontal and sub-row vertical
//   anti-aliasing; any size 16..4096 (64 default, 336 for full-size tests). Blur sigma is in
//   pixels at 64 px and scales with the size; noise is per pixel and channel, approximately
//   Gaussian (the four bytes of one Philox word summed, Irwin-Hall), std in 0..255 units.
//
// Ownership, errors, threads
// - et_synth_sample_face / et_synth_sample_clip / et_synth_set_intensity fill a caller-
//   owned struct (no heap); opts must pass et_synth_check_opts (programmer error if not).
// - et_synth_render allocates out (et_image_free it); ET_ERR_NOMEM / ET_ERR_INVALID.
// - et_synth_write_dataset validates opts (ET_ERR_INVALID naming the field) and returns
//   ET_ERR_IO naming the file that could not be written.
// - Everything is a pure function of its arguments (no global state): thread-safe.
//   et_synth_write_dataset renders with OpenMP.
#ifndef ET_SYNTH_H
#define ET_SYNTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/status.h"
#include "image.h"

#define ET_SYNTH_N_EMOTIONS 7
#define ET_SYNTH_AU_MAX 28  // au arrays are indexed by the AU number, 0 .. 27
#define ET_SYNTH_N_LANDMARKS 68
#define ET_SYNTH_LANDMARK_DIM (2 * ET_SYNTH_N_LANDMARKS)  // x0, y0, x1, y1, ...
#define ET_SYNTH_AU_PRESENT 0.1f
#define ET_SYNTH_TEXT_MAX 1024  // bytes of one text-sample turn (room to spare)
#define ET_SYNTH_TEXT_ROUNDS 3  // rounds of a text sample

typedef enum {
    ET_SYNTH_HAPPINESS = 0,
    ET_SYNTH_SADNESS = 1,
    ET_SYNTH_SURPRISE = 2,
    ET_SYNTH_ANGER = 3,
    ET_SYNTH_NEUTRAL = 4,
    ET_SYNTH_DISGUST = 5,
    ET_SYNTH_FEAR = 6,
} et_synth_emotion;

typedef enum { ET_SYNTH_CHILD, ET_SYNTH_YOUNG_ADULT, ET_SYNTH_ADULT, ET_SYNTH_SENIOR } et_synth_age;
typedef enum { ET_SYNTH_FEMALE, ET_SYNTH_MALE } et_synth_gender;
typedef enum { ET_SYNTH_HAIR_NONE, ET_SYNTH_HAIR_SHORT, ET_SYNTH_HAIR_LONG } et_synth_hair;
typedef enum { ET_SYNTH_TRAIN, ET_SYNTH_TEST, ET_SYNTH_CLIP } et_synth_split;

enum { ET_SYNTH_CAPTION_SHORT, ET_SYNTH_CAPTION_PROSE };

typedef struct et_synth_opts {
    uint64_t seed;
    int64_t n_train, n_test;  // samples per split (>= 0)
    int size;                 // image side in pixels, 16 .. 4096 (64)
    int faces_per_identity;   // consecutive samples sharing an identity, 1 .. 64 (7)
    float noise;              // max per-sample Gaussian noise std, 0..255 units (3)
    float blur;               // max per-sample blur sigma, pixels at 64 px (0.5)
    float pose_jitter;        // scales roll/yaw/scale/translation/gaze ranges, 0 .. 2 (1)
    float intensity_min, intensity_max;  // 0 <= min <= max <= 1 (0.6, 1)
    uint32_t emotions;                   // bit e enables emotion e; 0 = all seven (0)
    bool extra_aus;                      // random low-intensity extra AUs (true)
    // Question mix of the writer: each sample gets an AU question with probability
    // au_question_frac, else a descriptive one with probability descriptive_frac, else a
    // category question (defaults 0, 0: category questions only, the demo's task).
    float descriptive_frac, au_question_frac;
    bool shuffle_options;  // shuffle the option list of category questions per sample (true)
    int n_clips;           // clips written by et_synth_write_dataset (0)
    int clip_frames;       // frames per clip, neutral -> apex, 2 .. 256 (8)
    // Degradations and detector noise (see the contract; et_synth_opts_clean zeroes them).
    float jpeg_prob;                         // 0..1 (0.3)
    int jpeg_quality_min, jpeg_quality_max;  // 1 <= min <= max <= 100 (20, 80)
    float lowres_prob;                       // 0..1 (0.25)
    float lowres_min;                        // smallest downscale factor, 0.1 .. 1 (0.4)
    float occlusion_prob;                    // 0..1 (0.15)
    float landmark_noise;                    // detector error scale, 0 .. 10 (2)
    float landmark_fail_prob;                // failed detections when landmark_noise > 0 (0.05)
    // Pretraining text written by et_synth_write_dataset: text_train.json holds n_text
    // samples, text_test.json n_text / 10 (at least 1 when n_text > 0).
    int n_text;  // 0 .. 10^7 (10000)
    // Words of captions_*.json: et_synth_caption_short (the default) or et_synth_caption.
    int caption_style;  // ET_SYNTH_CAPTION_SHORT or ET_SYNTH_CAPTION_PROSE
} et_synth_opts;

// Identity appearance; lengths are in face units (face half-width ~1, y down, origin
// between the eyes and the nose). Colours are linear 0..1 RGB.
typedef struct et_synth_appearance {
    int age;         // et_synth_age
    int gender;      // et_synth_gender (presentation)
    int skin_group;  // 0 .. 4, light .. dark (et_synth_skin_name)
    int hair_style;  // et_synth_hair
    float skin[3], hair[3], brow[3], iris[3], lip[3], cloth[3];
    float face_w, face_up, face_low;  // half-width, forehead and chin extents
    float jaw_square, jaw_taper;      // superellipse exponent of the lower half, taper
    float eye_y, eye_dx, eye_w;       // eye line, half-distance between eyes, half-width
    float eye_up, eye_low, eye_tilt;  // upper/lower lid opening, outer-corner lift
    float iris_r;
    float brow_dy, brow_thick, brow_arch;
    float nose_y, nose_w;  // nose base height, half-width of the nostrils
    float mouth_y, mouth_w, lip_up, lip_low;
    float hairline, hair_volume, hair_len;
    float wrinkles;  // 0..1, age lines
    float stubble;   // 0..1 alpha of a beard shadow
    float scale;     // head size (children are smaller)
} et_synth_appearance;

typedef struct et_synth_pose {
    float roll;            // radians, in-plane rotation
    float yaw;             // radians; features shift by depth * sin(yaw)
    float scale;           // multiplies the head size
    float tx, ty;          // head centre offset, fraction of the image size
    float gaze_x, gaze_y;  // iris offset, -1..1
} et_synth_pose;

typedef struct et_synth_imaging {
    float exposure;          // brightness factor
    float light_x, light_y;  // brightness change per face unit
    float bg0[3], bg1[3];    // background gradient end colours
    float bg_angle;          // gradient direction, radians
    float noise_std;         // 0..255 units
    float blur_sigma;        // pixels at 64 px
    uint64_t noise_key;      // Philox key of the pixel noise
} et_synth_imaging;

typedef enum {
    ET_SYNTH_OCC_NONE,
    ET_SYNTH_OCC_SUNGLASSES,
    ET_SYNTH_OCC_HAND_MOUTH,
    ET_SYNTH_OCC_HAND_CHEEK,
    ET_SYNTH_OCC_RECT,
} et_synth_occluder;

// Per-sample degradations (all off: occluder NONE, jpeg_quality 0, lowres 0).
typedef struct et_synth_degrade {
    int occluder;      // et_synth_occluder
    float occ[6];      // shape: hands (cx, cy, size, angle, side), rect (cx, cy, w, h, angle)
    float occ_rgb[3];  // occluder colour, linear 0..1
    float lowres;      // downscale factor in (0, 1); 0 = none
    int jpeg_quality;  // 1..100; 0 = none
    float lm_noise;    // landmark_noise of the opts
    int lm_fail;       // a failed detection
    uint64_t lm_key;   // Philox key of the landmark errors
} et_synth_degrade;

typedef struct et_synth_face {
    int64_t index;     // sample index (clip number for clips)
    int64_t identity;  // global identity number
    int split;         // et_synth_split
    et_synth_appearance app;
    et_synth_pose pose;
    et_synth_imaging img;
    int emotion;                             // et_synth_emotion
    float intensity;                         // 0..1
    float au_apex[ET_SYNTH_AU_MAX];          // activations at intensity 1, indexed by AU number
    float au[ET_SYNTH_AU_MAX];               // intensity * au_apex: what the geometry shows
    float landmarks[ET_SYNTH_LANDMARK_DIM];  // normalised, see the contract
    et_synth_degrade deg;
    float detected[ET_SYNTH_LANDMARK_DIM];  // landmarks with detector noise (what is written)
} et_synth_face;

void et_synth_opts_default(et_synth_opts *o);
// Every degradation and the landmark noise off: the faces made before they existed
// (noise and blur keep their values; set them to 0 for noiseless, sharp images).
void et_synth_opts_clean(et_synth_opts *o);
// ET_ERR_INVALID naming the first bad field, or NULL.
et_status et_synth_check_opts(const et_synth_opts *o);

// Sample index >= 0 (see the contract for splits and identities).
void et_synth_sample_face(const et_synth_opts *o, int64_t index, et_synth_face *f);
// The apex face of clip `clip` (its frames: et_synth_set_intensity with a ramp).
void et_synth_sample_clip(const et_synth_opts *o, int64_t clip, et_synth_face *f);
int64_t et_synth_identity_of(const et_synth_opts *o, int64_t index);
// Sets intensity (clamped to [0, 1]), recomputes au[], the landmarks and detected (the
// detector errors are a function of deg.lm_key, so a new key gives a new draw).
void et_synth_set_intensity(et_synth_face *f, float intensity);

et_status et_synth_render(const et_synth_face *f, int size, et_image *out);
void et_synth_landmarks_px(const et_synth_face *f, int size, float out[ET_SYNTH_LANDMARK_DIM]);

// The present AU numbers in increasing order; returns their count (<= max written).
int et_synth_face_aus(const et_synth_face *f, int *aus, int max);
// "1, 2, 5, 26" (sep ", ", prefix "") or "AU1, AU2" (prefix "AU"); "" when none.
void et_synth_aus_text(const et_synth_face *f, const char *prefix, char *buf, size_t n);
// A sentence built from the present AUs and the emotion, e.g. "The person's cheeks are
// raised and the lip corners are pulled up (AU6, AU12), showing happiness."
void et_synth_describe(const et_synth_face *f, char *buf, size_t n);

// One or two short sentences for caption pretraining: the expression (an intensity word and
// the emotion), the visible AUs in plain words (sometimes with their numbers), age group and
// gender presentation ("a young woman"), hair, the head pose when it is large (turned left
// or right, tilted; as seen in the image) and a visible occluder (the AUs it hides are left
// out). The template and the optional parts are chosen by the Philox stream of
// (seed, the face's split and index), so the wording varies between faces of a class; a pure
// function of (f, seed). Lower-case words except the sentence starts and AU numbers
// ("(AU6, AU12)"). Returns the length
// (as snprintf; truncated when >= n).
int et_synth_caption(const et_synth_face *f, uint64_t seed, char *buf, size_t n);
// The same facts in one fixed structure, the default words of captions_*.json (a tiny text
// encoder learns expressions from these; from et_synth_caption's varied prose it does not):
// "Face of a young adult female, dark skin, expressing disgust (clear), sunglasses, head
// turned left. Active: AU9 (nose wrinkler), AU10 (upper lip raiser)." The intensity word is
// left out for neutral faces, occluder and pose parts when absent (pose as seen in the
// image, with et_synth_caption's thresholds), AUs an occluder hides are left out, and a face
// with none visible ends "No active AUs.". A pure function of f; returns the length (as
// snprintf; truncated when >= n).
int et_synth_caption_short(const et_synth_face *f, char *buf, size_t n);
// Text-only pretraining sample k (>= 0) of the given split (ET_SYNTH_TRAIN or ET_SYNTH_TEST;
// the two draw faces from disjoint index ranges): 1-3 rounds of human question / gpt answer
// in the words of train.json (the category question with its options, AU questions,
// descriptions) and of the captions (prose in questions; the short caption as the answer to
// "Write a short caption of the face."), about a face that is described in words; rounds after
// the first are left out where the text would pass 640 characters. Writes up to
// max_rounds (<= ET_SYNTH_TEXT_ROUNDS) (human, gpt) pairs into q[i] / a[i]; returns the
// round count (1 .. max_rounds) and the face's emotion in *emotion (may be NULL).
int et_synth_text_sample(const et_synth_opts *o, int split, int64_t k, int max_rounds,
                         char q[][ET_SYNTH_TEXT_MAX], char a[][ET_SYNTH_TEXT_MAX], int *emotion);

const char *et_synth_emotion_name(int emotion);    // "happiness", ...; "?" out of range
int et_synth_emotion_from_name(const char *name);  // -1 when unknown
const char *et_synth_age_name(int age);            // "child", "young adult", "adult", "senior"
const char *et_synth_gender_name(int gender);      // "female", "male"
const char *et_synth_skin_name(int group);         // "light" .. "dark"

// Writes out_dir/images/<id>.png, out_dir/landmarks/<id>.npy (136 float32, normalised),
// out_dir/train.json and out_dir/test.json (LLaVA format, one sample per line in a JSON
// array; fields id, image, landmark, source "synth", identity, attributes {age, gender,
// race (the skin tone group)}, label, intensity, aus, conversations), and for n_clips > 0
// out_dir/clips/<id>/frame_000.png ..., out_dir/landmarks/<id>.npy ([T, 136]) and
// out_dir/clips.json ("video": "clips/<id>", "<video>" questions). Ids: "synth_%06d" for
// samples, "synth_clip_%04d" for clips. Also, for caption and language-model pretraining:
// out_dir/captions_train.json and captions_test.json (the same images; fields id, image,
// landmark, label, attributes, conversations [{"human": "<image>\n"}, {"gpt": caption}], the
// caption in o->caption_style: LLaVA's plain-template pretraining format) and, when n_text > 0,
// out_dir/text_train.json and text_test.json (ids "synth_text_%06d" / "synth_text_test_%06d",
// fields id, source "synth_text", label, conversations; no image). Existing files are overwritten.
et_status et_synth_write_dataset(const et_synth_opts *o, const char *out_dir);

#endif
