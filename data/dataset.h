// data/dataset.h - LLaVA-format instruction datasets (FABA-Instruct, FERID, LLaVA) and
// weighted mixtures of them.
// defines: et_turn, et_role, et_sample, et_dataset_opts, et_dataset, et_dataset_open,
//          et_dataset_open_memory, et_dataset_size, et_dataset_name, et_dataset_get,
//          et_dataset_close, et_dataset_modality_lengths, et_sample_free, et_sample_answer,
//          et_mixture,
//          et_mixture_create, et_mixture_free, et_mixture_epoch, et_mixture_size,
//          et_mixture_locate, ET_DATASET_MAX_SAMPLE_BYTES
//
// Input
// - A JSON array of samples, or JSONL (one sample per line, blank lines skipped). The
//   format is JSONL when the name ends in ".jsonl", else decided by the first non-blank
//   byte ('[' = array, anything else = JSONL). A UTF-8 BOM is skipped.
// - et_dataset_open makes ONE streaming pass over the file (64 KiB reads) that records the
//   byte offset, length, line and column of every sample; nothing else is kept. The
//   array splitter tracks strings, escapes and {}/[] nesting (a mismatched bracket, a
//   missing comma between samples, a trailing comma, an unterminated array or string or
//   text after the array fail the open with file:line:column). et_dataset_get re-reads one
//   sample with pread and parses only it with cJSON, so memory does not grow with the file.
// - Sample fields (unknown fields are ignored; JSON null = absent):
//     id            string or number (-> its decimal text)
//     image, video  string path; landmark: string .npy path, or a list of numbers, or a
//                   list of [x, y, ...] lists (flattened in order)
//     attributes    object: age (number or string), gender, race (strings)
//     label         string, or number (-> its decimal text: 3 -> "3", 0.5 -> "0.5")
//     gpt4, source  strings
//     conversations array of {"from", "value"} strings; "from" is human|user (-> user),
//                   gpt|assistant (-> assistant) or system (only as the first turn).
//                   After an optional system turn, turns must alternate user, assistant,
//                   user, ... starting with user.
// - Paths: every image/video/landmark path is taken relative to opts->data_root (absolute
//   paths are allowed only inside it) and must name an existing file (for "video": a
//   file, or a directory of frame images as data/video.h reads them) whose realpath lies
//   inside the realpath of the root: "../" escapes (checked on the text first), absolute
//   paths elsewhere and symlinks that lead out are refused ("escapes the data root"); a
//   missing file is "no such file". The sample holds the realpath. (A frame directory is
//   checked as a whole; the frame files inside it are opened by data/video.h.)
// - Landmarks of a sample with a "video" may be per frame: a 2-D .npy of shape
//   [T, landmark_dim] (any T >= 1) is accepted and kept flat (n_landmark = T * D,
//   landmark_frames = T); any other shape must hold exactly landmark_dim values.
//
// Errors (et_status; the message starts with the dataset name, and for a sample with
// "name:line: sample N (id "x"): ..." or for JSON syntax "name:line:col: sample N: ...")
// - At open: cannot read the file, structural syntax errors (above), no samples
//   ("no samples"), a data_root that is not a directory.
// - Per sample, from et_dataset_get (the dataset stays usable; a loader skips the sample):
//   JSON syntax error (line and column of the error in the file), a sample that is not an
//   object, a field of the wrong type (names the field), a role that is unknown or does not
//   alternate, no conversations or no assistant turn with non-blank text when
//   opts->require_answer, a path that escapes the root or is missing, a landmark .npy that
//   cannot be read or whose element count differs from opts->landmark_dim (when non-zero;
//   inline landmarks are checked too), a landmark .npy holding NaN or Inf, a sample over
//   ET_DATASET_MAX_SAMPLE_BYTES. Input that cJSON would read differently from Python, or
//   that would train on broken text, is refused too: nesting deeper than 1000 levels
//   (said so, not "syntax error"), a duplicate key in any object of the sample (Python
//   keeps the last, cJSON the first; the message gives its path, e.g.
//   conversations[1].value), a "\u0000" escape in any string (cJSON would cut the
//   string there), a turn whose text is not valid UTF-8.
//
// Ownership and threads
// - et_sample owns all its strings and arrays; release with et_sample_free (NULL-safe,
//   leaves the struct zeroed; also safe on a zeroed struct). On error the sample is zeroed.
// - et_dataset_get is thread-safe (pread at an offset, no shared cursor; note that cJSON
//   also records the last parse error in a process-global that concurrent failing parses
//   overwrite; emotune never reads it). open/close are not concurrent with get.
// - et_mixture borrows its datasets (they must outlive it); et_mixture_epoch rebuilds its
//   order and must not run concurrently with et_mixture_locate.
#ifndef ET_DATASET_H
#define ET_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/status.h"

// A sample larger than this (its JSON text) is refused by et_dataset_get.
#define ET_DATASET_MAX_SAMPLE_BYTES ((int64_t)64 << 20)

typedef enum { ET_ROLE_SYSTEM, ET_ROLE_USER, ET_ROLE_ASSISTANT } et_role;

typedef struct et_turn {
    et_role role;
    char *from;   // as written in the file ("human", "gpt", ...), owned
    char *value;  // owned
} et_turn;

typedef struct et_sample {
    int64_t index;        // position in its dataset
    char *id;             // NULL when absent
    char *image;          // realpath under the data root, or NULL
    char *video;          // realpath, or NULL
    char *landmark_path;  // realpath of the landmark .npy, or NULL (absent or inline)
    float *landmark;      // (n_landmark) floats, or NULL
    int64_t n_landmark;
    int64_t landmark_frames;  // T of per-frame video landmarks [T, D], else 0
    bool has_attributes;
    char *age;            // attributes.age as text (a number -> decimal text), or NULL
    double age_years;     // attributes.age when numeric (or a numeric string), else NaN
    char *gender, *race;  // or NULL
    char *label;          // or NULL
    char *gpt4;           // reference text of eval files, or NULL
    char *source;         // or NULL
    et_turn *turns;       // (n_turns)
    int n_turns;
} et_sample;

typedef struct et_dataset_opts {
    const char *data_root;  // media root; NULL = the directory holding the dataset file
                            // (for et_dataset_open_memory: the current directory)
    bool require_answer;    // training: conversations with a non-blank assistant turn
    int64_t landmark_dim;   // expected landmark floats (136, 212, ...); 0 = any
    double landmark_bound;  // > 0: every landmark value must lie in [-bound, bound] (normalised
                            // coordinates; a sample outside is bad, naming the field)
    bool skip_media_check;  // do not resolve image/video paths (landmarks are always read)
} et_dataset_opts;

typedef struct et_dataset et_dataset;

// opts may be NULL (defaults: root = the file's directory, no answer required, any
// landmark size).
et_status et_dataset_open(const char *path, const et_dataset_opts *opts, et_dataset **out);
// From a buffer (copied); format detection uses name like a path. For fuzzing and tests.
et_status et_dataset_open_memory(const void *buf, size_t len, const char *name,
                                 const et_dataset_opts *opts, et_dataset **out);
int64_t et_dataset_size(const et_dataset *ds);
const char *et_dataset_name(const et_dataset *ds);
et_status et_dataset_get(const et_dataset *ds, int64_t index, et_sample *out);
void et_dataset_close(et_dataset *ds);  // NULL-safe

// LLaVA's modality_lengths (for group_by_modality_length): lengths[i] = the number of
// words (Python's str.split(): runs of non-whitespace, Unicode whitespace included) summed
// over the "value"s of sample i's conversations, positive when the sample has a non-null
// "image" or "video" (LLaVA checks only "image"; it has no video), negative otherwise.
// One pass over the file that parses every sample (no media checks); a sample that does
// not parse, or has no conversations, gets 0 (et_dataset_get reports why). Errors: I/O only.
et_status et_dataset_modality_lengths(const et_dataset *ds, int64_t *lengths);

void et_sample_free(et_sample *s);
// The first assistant turn's value, or NULL.
const char *et_sample_answer(const et_sample *s);

// ---- mixtures --------------------------------------------------------------------
// An epoch draws round(weight * size) samples from each dataset: weight 1 = every sample
// once, 2 = every sample twice, 0.5 = a seeded half (each sample at most once), 1.5 =
// every sample once plus a seeded half; all drawn entries are then interleaved by a
// seeded shuffle. The order is a pure function of (seed, epoch) through Philox
// (core/rng.h): the same on every machine and after a resume.
typedef struct et_mixture et_mixture;

// weights: n values >= 0 and finite; n >= 1. Fails when every count rounds to 0.
et_status et_mixture_create(et_dataset *const *datasets, const double *weights, int n,
                            et_mixture **out);
void et_mixture_free(et_mixture *m);  // NULL-safe; does not close the datasets
// Builds the order of one epoch (the initial order is epoch 0 with seed 0).
et_status et_mixture_epoch(et_mixture *m, uint64_t seed, int64_t epoch);
int64_t et_mixture_size(const et_mixture *m);  // samples per epoch
// Global position i in [0, size) -> which dataset and which sample of it.
void et_mixture_locate(const et_mixture *m, int64_t i, int *dataset, int64_t *index);

#endif
