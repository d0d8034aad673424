// train/eval/metrics.h - the papers' evaluation metrics: EmoLA's answer parsing (an emotion class
// and AUs from free text), WAR / UAR / confusion matrix, per-AU binary F1, ROUGE-L exactly as
// the `rouge` Python package computes it, REGE; an accumulator for the evaluator that writes
// metrics JSON and a confusion-matrix PNG.
// defines: et_emola_emotion, et_emola_aus, et_emola_emotion_names, et_au_set, et_au_set_list,
//          et_au_set_by_name, et_rouge_l, et_rouge_l_scores, et_f1_binary,
//          et_parse_emotion_label, et_parse_au_label, et_emo_eval (new/add/add_id/result/
//          write_json/write_confusion_png/free), et_emo_eval_opts, et_emo_eval_result,
//          et_emo_sample
//
// Reference: EmoLA's evaluation script (github.com/JackYFL/EmoLA emollava/eval/eval_FABA.py,
// functions remove_neg_sentences, description2emotion, AU2Labels, AUint2Labels, get_acc_F1,
// cal_rouge) and rouge 1.0.1 (rouge_l_summary_level). tools/golden/gen_metrics.py restates
// them in Python; tests/test_golden_metrics.c checks every case it writes.
//
// Text semantics: inputs are UTF-8. The rules behave as Python's `re` on str: \w is a Unicode
// letter or number (general category L or N) or '_', \s is Python's str.isspace set (29 code
// points, including U+0085, U+00A0, U+3000 and the separators U+001C..U+001F), \d is a
// Unicode decimal digit (Nd), `.` is any character but '\n'; str.lower() is ASCII lower-casing
// plus the two non-ASCII characters whose lower case is ASCII (U+212A KELVIN SIGN -> 'k',
// U+0130 -> 'i' + U+0307, a non-word mark). A byte that is not part of valid UTF-8 counts as
// one character that is neither word, space nor digit (Python never sees one: it would not
// decode).
//
// Edge cases, where EmoLA's code is the reference (it wins over REFERENCE.md section 1):
// - Emotion: negation is a lower-case SUBSTRING test ("no" drops a sentence with "nose",
//   "know", "annoyed", "normal"); the sentence splitter splits only after '.' or '?' followed
//   by ONE whitespace character, not after "x.y." or "Ab." shapes ("e.g. ", "Mr. "); the first
//   sentence ends at the first '.', '!' or '?'. With no keyword anywhere every count is 0 and
//   EmoLA's max() returns the first class, Happiness (0). Where EmoLA's code raises (no '.',
//   '!' or '?' before the first newline of the filtered text, e.g. "" or "happy"), this
//   returns ET_EMOLA_NO_ANSWER (-1), counted as a wrong answer.
// - AU: re.findall("AU(\d+)") is case-sensitive ("au12", "AU 12" do not count) and EmoLA looks
//   the digit string up as a key: "AU01" does not count as AU1. Repeats count once.
// - AU F1 (get_acc_F1): F1 = 0 when TP = 0; an AU whose 2x2 confusion matrix collapses to one
//   class - never present in targets or predictions, or (not in REFERENCE.md) present in every
//   target and every prediction - is left out of the mean, as sklearn's 1x1 matrix makes
//   EmoLA's indexing raise. With every AU left out the mean is NaN (numpy's mean of nothing).
// - ROUGE-L: the `rouge` package raises for a prediction or reference that is empty after
//   splitting on '.' ("" or only dots); EmoLA then leaves the sample out of the ROUGE mean.
//   Sentences of several hundred words make the package's recursive back-trace exceed
//   Python's recursion limit (silently skipped by EmoLA); emotune computes them.
//
// Ownership and threads: et_emo_eval is owned by its creator (et_emo_eval_free); it is not
// thread-safe, one accumulator per thread. The free functions keep no state.
#ifndef ET_METRICS_H
#define ET_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"

// ---- EmoLA's answer parsing ---------------------------------------------------------------

// EmoLA's class ids (its label files and description2emotion order).
enum {
    ET_EMO_HAPPINESS = 0,
    ET_EMO_SADNESS = 1,
    ET_EMO_SURPRISE = 2,
    ET_EMO_ANGER = 3,
    ET_EMO_NEUTRAL = 4,
    ET_EMO_DISGUST = 5,
    ET_EMO_FEAR = 6,
    ET_EMOLA_NUM_EMOTIONS = 7,
};
#define ET_EMOLA_NO_ANSWER (-1)  // EmoLA's description2emotion raises on this text

// "Happiness", "Sadness", "Surprise", "Anger", "Neutral", "Disgust", "Fear".
extern const char *const et_emola_emotion_names[ET_EMOLA_NUM_EMOTIONS];

// EmoLA's free-text -> emotion rule: a class id 0..6, or ET_EMOLA_NO_ANSWER.
int et_emola_emotion(const char *text);

// The AUs EmoLA reads from text: the distinct numbers of the `AU(\d+)` matches whose digits
// are ASCII with no leading zero (at most 4 digits), in order of first appearance. Writes
// up to max of them to out and returns how many there are (may exceed max).
int et_emola_aus(const char *text, int *out, int max);

// ---- AU selections ------------------------------------------------------------------------

typedef enum {
    ET_AUS_FABA,       // 1 2 4 5 6 10 12 17 24 25 26 43 (FABA-Bench, the default)
    ET_AUS_DISFA,      // 1 2 4 6 9 12 25 26
    ET_AUS_BP4D,       // 1 2 4 6 7 10 12 14 15 17 23 24
    ET_AUS_GFT,        // 1 2 4 6 10 12 14 15 23 24
    ET_AUS_EMOTIONET,  // 1 2 4 5 6 9 12 17 20 25 26 43
    ET_AUS_COUNT
} et_au_set;

// The AU numbers of a selection (EmoLA's select_AUs); returns their count.
int et_au_set_list(et_au_set set, const int **aus);
// "FABA", "DISFA", "BP4D", "GFT", "EmotioNet" (case-insensitive); ET_ERR_INVALID otherwise.
et_status et_au_set_by_name(const char *name, et_au_set *out);

// ---- scores -------------------------------------------------------------------------------

typedef struct {
    bool defined;       // false where the `rouge` package raises (empty prediction/reference)
    double f, p, r;     // rouge-l f, p, r (0..1); 0 when !defined
    int64_t hyp_words;  // n: distinct tokens of the prediction
    int64_t ref_words;  // m: distinct tokens of the reference
    int64_t lcs_words;  // distinct tokens of the union of the sentence-pair LCSs
} et_rouge_l_scores;

// ROUGE-L of prediction hyp against reference ref, as Rouge().get_scores(hyp, ref)["rouge-l"]
// (rouge 1.0.1): sentences split on '.', tokens split on whitespace, case-sensitive,
// punctuation kept; r = |union LCS| / m, p = |union LCS| / n, f = 2pr / (p + r + 1e-8), all
// counts over distinct tokens. Errors: ET_ERR_NOMEM when one sentence pair needs more than
// 2^28 LCS cells (two sentences of ~16k words each).
et_status et_rouge_l(const char *hyp, const char *ref, et_rouge_l_scores *out);

// EmoLA's get_acc_F1 F1: 0 when tp == 0, else 2PR / (P + R).
double et_f1_binary(int64_t tp, int64_t fp, int64_t fn);

// ---- labels -------------------------------------------------------------------------------

// An emotion label: an integer id in [0, n_names) or a class name, case-insensitive, with
// the aliases happy, sad, surprised, angry, fearful, afraid, scared, disgusted, contemptuous
// (names may use either form: "Happy" and "happiness" match each other). names NULL means
// EmoLA's 7 names. Errors (ET_ERR_FORMAT / ET_ERR_INVALID) quote the label.
et_status et_parse_emotion_label(const char *label, const char *const *names, int n_names,
                                 int *out);
// An AU label "4, 9, 15": comma-separated AU numbers (ASCII digits, no leading zero, spaces
// around commas allowed; "" = no AU). Writes the distinct numbers to out (up to max) and
// their count to *n_out. EmoLA splits on ", " exactly and silently drops anything else
// ("4,9", "AU4", "04"); emotune accepts "4,9" and rejects the others with ET_ERR_FORMAT.
et_status et_parse_au_label(const char *label, int *out, int max, int *n_out);

// ---- the accumulator ----------------------------------------------------------------------

#define ET_EVAL_MAX_CLASSES 16
#define ET_EVAL_MAX_AUS 64
#define ET_EVAL_MAX_NAME 32

typedef enum { ET_EVAL_EMOTION, ET_EVAL_AU } et_eval_kind;

typedef enum {
    ET_EMO_PARSE_EMOLA,  // EmoLA's free-text rule (et_emola_emotion), mapped to the classes
                         // by name
    ET_EMO_PARSE_NAME,   // the answer is one class name ("surprise", "Happy."): trimmed,
                         // trailing '.'/'!' removed, parsed as an emotion label
} et_emo_parse;

typedef struct {
    et_eval_kind kind;
    // Emotion: class names in label-id order (NULL = EmoLA's 7), at most
    // ET_EVAL_MAX_CLASSES, each shorter than ET_EVAL_MAX_NAME.
    const char *const *class_names;
    int n_classes;
    et_emo_parse parse;
    // AU: the AUs to score (NULL = ET_AUS_FABA), at most ET_EVAL_MAX_AUS.
    const int *aus;
    int n_aus;
} et_emo_eval_opts;

typedef struct et_emo_eval et_emo_eval;

// What one et_emo_eval_add saw (optional out parameter).
typedef struct {
    int pred_class;               // emotion: accumulator class id, -1 = no class
    int label_class;              // emotion: label class id
    int n_pred_aus, n_label_aus;  // AU: counts (arrays hold up to ET_EVAL_MAX_AUS)
    int pred_aus[ET_EVAL_MAX_AUS], label_aus[ET_EVAL_MAX_AUS];
    et_rouge_l_scores rouge;  // !defined when there was no reference
} et_emo_sample;

typedef struct {
    et_eval_kind kind;
    int64_t n_samples;
    // emotion
    int n_classes;
    char class_names[ET_EVAL_MAX_CLASSES][ET_EVAL_MAX_NAME];
    double accuracy;                                              // WAR, 0..1 (NaN if no sample)
    double uar;                                                   // mean recall over classes with
                                                                  // a target, 0..1 (NaN if none)
    double class_recall[ET_EVAL_MAX_CLASSES];                     // NaN for a class with no target
    int64_t confusion[ET_EVAL_MAX_CLASSES][ET_EVAL_MAX_CLASSES];  // [label][prediction]
    int64_t unparsed[ET_EVAL_MAX_CLASSES];  // per label: predictions that gave no class
    // AU
    int n_aus;
    int aus[ET_EVAL_MAX_AUS];
    int64_t au_tp[ET_EVAL_MAX_AUS], au_fp[ET_EVAL_MAX_AUS], au_fn[ET_EVAL_MAX_AUS],
        au_tn[ET_EVAL_MAX_AUS];
    bool au_included[ET_EVAL_MAX_AUS];  // false: single-class confusion matrix, left out
    double au_f1[ET_EVAL_MAX_AUS];      // NaN when left out
    double au_acc[ET_EVAL_MAX_AUS];     // (tp + tn) / n, NaN when left out
    double f1_mean, au_acc_mean;        // over included AUs, NaN if none
    // text similarity and the FABA-Bench score
    int64_t n_rouge;      // samples with a defined ROUGE-L
    double rouge_l_mean;  // mean rouge-l f over them, 0..1 (NaN if none)
    double s_re;          // 100 * accuracy (emotion) or 100 * f1_mean (AU)
    double s_ge;          // 100 * rouge_l_mean
    double rege;          // s_re + s_ge
} et_emo_eval_result;

// A new accumulator. Errors: ET_ERR_INVALID for a bad option (too many classes or AUs, a
// name too long, an unknown kind).
et_status et_emo_eval_new(const et_emo_eval_opts *opts, et_emo_eval **out);
void et_emo_eval_free(et_emo_eval *ev);
// Add one sample: the model's answer, its label (emotion: name or id as text; AU: "4, 9")
// and the reference description (NULL: no ROUGE for this sample). A label that does not
// parse is an error and the sample is not counted. sample may be NULL.
et_status et_emo_eval_add(et_emo_eval *ev, const char *prediction, const char *label,
                          const char *reference, et_emo_sample *sample);
// Emotion only: the label as a class id (ET_ERR_INVALID when out of range).
et_status et_emo_eval_add_id(et_emo_eval *ev, const char *prediction, int label_id,
                             const char *reference, et_emo_sample *sample);
// All the numbers so far.
void et_emo_eval_result_get(const et_emo_eval *ev, et_emo_eval_result *out);
// The result as a JSON object written to path ("<path>.tmp", then renamed); NaN is null.
// Errors: ET_ERR_IO naming the file.
et_status et_emo_eval_write_json(const et_emo_eval *ev, const char *path);
// Emotion only: the confusion matrix as a PNG heat map (train/eval/plot.h: rows = true
// classes, columns = predicted ones, each labelled on its axis; cells shaded by the
// row-normalised value with the count and row percentage; a "no class" column when some
// answers named no class). Title: "confusion matrix: <eval_name>, accuracy 85.71% (140
// samples)" (", accuracy" right after "confusion matrix" when eval_name is NULL or empty).
// cell_px <= 0 means 64.
et_status et_emo_eval_write_confusion_png(const et_emo_eval *ev, const char *path, int cell_px,
                                          const char *eval_name);

#endif
