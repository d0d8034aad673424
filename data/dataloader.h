// data/dataloader.h - the training / evaluation loader: worker threads that decode, tokenize
// and batch samples ahead of the trainer, in a deterministic, resumable order, from a
// LLaVA-format JSON dataset (data/dataset.h) or a prepared HDF5 store (data/store.h).
// defines: et_batch, et_batch_free, et_loader_opts, et_loader_opts_default, et_loader,
//          et_loader_new, et_loader_new_store, et_loader_free, et_loader_next, et_loader_seek,
//          et_loader_tell, et_loader_epoch_samples, et_loader_bad_samples, et_loader_report,
//          et_loader_interrupted,
//          et_loader_load_video, et_loader_video_landmark, et_loader_prepare_store
//
// Contract
// - Sources: et_loader_new reads a JSON dataset (samples through the template and the
//   tokenizer, media decoded and preprocessed); et_loader_new_store reads a prepared store
//   (ids and labels as stored, u8 pixels normalized with the CLIP mean/std exactly as
//   data/preprocess.h does: et_clip_normalize). Both sources give the same batches for the
//   same samples (a store prepared from a JSON dataset, no sample skipped by prepare, same
//   seed, no grouping: same indices, ids, labels, landmarks and pixels). Everything below
//   holds for both.
// - Order: epoch e visits this rank's samples in a permutation that is a pure function of
//   (seed, e) (Philox Fisher-Yates; no shuffle: dataset order; shuffle_block K > 1: the
//   blocks of K consecutive samples are permuted, each kept in order), sharded as
//   order[rank], order[rank + world], ...; with group_by_length the permutation is LLaVA's
//   modality-aware length grouping (image and text-only samples in separate mega-batches of
//   batch_size * world * 50 samples sorted by length, split into batches, batches shuffled).
//   Lengths: the JSON source counts words as LLaVA does (et_dataset_modality_lengths); the
//   store source uses the stored token counts (no read), images and videos positive. So
//   grouped orders differ between the two sources; ungrouped ones do not.
// - Batches: the next batch_size samples of the order that load without error; a sample
//   that fails (unreadable image or video, bad landmarks, no supervised token after
//   truncation, a store record that cannot be read, e.g. a chunk that fails to inflate) is
//   skipped and counted by reason (et_loader_report: invalid sample, template, answer
//   truncated away, image, landmarks, video, store record; a sample the dataset refuses is
//   counted under the media field its message names) and logged once; the message names the
//   file. At the end of an
//   epoch the partial batch is dropped (drop_last) or returned short; the next call starts
//   epoch e+1. Batches do not depend on the number of workers or on timing. With drop_last,
//   an epoch walked whole without a full batch (fewer loadable samples than batch_size) is
//   an error saying how many samples load, instead of a search that never ends.
// - Stop: when opts.stop is set and *opts.stop becomes non-zero (e.g. from a signal
//   handler), et_loader_next returns an error within ~50 ms, also while it waits for a
//   worker, and et_loader_interrupted is true until the next call. The samples it took
//   are consumed (the caller restarts from a position it saved, et_loader_tell).
// - Position: (epoch, position) = the epoch and the number of its samples consumed by the
//   batches returned so far. et_loader_seek(e, p) restarts there: the batches that follow
//   are exactly those an uninterrupted loader would have returned.
// - Sample processing (JSON): the conversation through the template (labels as LLaVA),
//   truncated to max_len; the image decoded, padded to square (pad_to_square, LLaVA "pad")
//   and CLIP preprocessed to image_size (f32 CHW, normalized); landmarks (inline or .npy)
//   checked against landmark_dim (0: not loaded).
//   (store): ids/labels cut to max_len when longer (a sample left without a supervised
//   label is skipped); image_size and landmark_dim must be 0 (not loaded) or the store's.
// - Videos (video_frames = T > 0 and image_size > 0; else videos are not loaded): the JSON
//   source decodes the sample's "video" (a file or a frame directory) with data/video.h,
//   T frames by uniform sampling (np.linspace(0, N - 1, T, dtype=int)), and preprocesses
//   each frame like an image (et_loader_load_video). The store source takes the stored
//   frames, resampled uniformly to T when their count differs. Per-frame landmarks
//   ([T', D], data/dataset.h) become one row: the mean over the sampled frames
//   (et_loader_video_landmark); a store keeps that row. A sample whose text has <video>
//   but no "video" is skipped (reason video).
// - Threads: `workers` threads (0: the calling thread loads synchronously), at most
//   `prefetch` batches ahead. et_loader_next blocks until the batch is ready.
// - Ownership: the loader borrows the dataset or store (it must outlive the loader; a
//   store's reads are thread-safe, data/store.h). Batches own their tensors and arrays.
#ifndef ET_DATA_DATALOADER_H
#define ET_DATA_DATALOADER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "../core/status.h"
#include "../core/tensor.h"
#include "dataset.h"
#include "preprocess.h"
#include "store.h"
#include "template.h"
#include "tokenizer.h"

typedef struct {
    int B;                 // samples in the batch
    et_tensor **ids;       // [B] i32 [n_b]
    et_tensor **labels;    // [B] i32 [n_b]
    et_tensor *pixels;     // [B, 3, S, S] f32 or NULL (no sample has an image)
    et_tensor *landmarks;  // [B, D] f32 or NULL
    et_tensor *priors;     // [B, P] f32 (a store's precomputed face priors) or NULL
    // Videos: n_video samples of the batch have one; video_row[b] is sample b's row of
    // `video` or -1. Each row is T frames preprocessed like an image.
    int n_video;
    et_tensor *video;  // [n_video, T, 3, S, S] f32 or NULL (no video in the batch)
    int *video_row;    // [B]
    int64_t *index;    // [B] dataset indices
    char **sample_id;  // [B] sample ids (owned strings)
    int64_t n_tokens;  // sum of n_b
} et_batch;

void et_batch_free(et_batch *b);

typedef struct {
    int batch_size;
    int max_len;
    int image_size;  // 0: images are not loaded
    bool pad_to_square;
    int landmark_dim;  // 0: landmarks are not loaded
    int prior_dim;     // store source: P, the store's precomputed priors are loaded (0: not);
                       // prepare: P values per sample from prior_fn
    // prepare only: the P priors of one sample from its normalised pixels [3, S, S] (NULL for
    // a sample without an image) and landmarks [landmark_dim] (or NULL), as bf16 bits.
    et_status (*prior_fn)(void *ctx, const float *pixels, const float *landmarks, uint16_t *out);
    void *prior_ctx;
    int video_frames;  // T frames per video (uniform sampling); 0: videos not loaded
    int workers;
    int prefetch;  // batches
    uint64_t seed;
    bool shuffle;
    int shuffle_block;  // > 1: shuffle blocks of this many consecutive samples, keeping each
                        // block's order (synthetic identities: hard negatives in a batch)
    bool group_by_length;
    bool drop_last;
    int rank, world;
    const et_template *tmpl;  // JSON source only
    const et_tokenizer *tok;  // JSON source only
    int32_t image_token;      // placeholder id for <image>
    bool supervise_all;       // JSON source: every token is a label (data.supervise=all)
    const struct et_attr_prompt *attr_prompt;  // JSON source: the AGR prompt from each sample's
                                               // attributes (NULL = off); borrowed
    const char *const *attr_words;  // with attr_prompt: per dataset index i, the age, gender and
                                    // race words [3 i .. 3 i + 2] the prompt renders instead of
                                    // the sample's (attribute_prompt.source network); borrowed
    const volatile sig_atomic_t *stop;  // non-NULL: et_loader_next gives up when *stop != 0
} et_loader_opts;

et_loader_opts et_loader_opts_default(void);

typedef struct et_loader et_loader;

et_status et_loader_new(et_dataset *ds, const et_loader_opts *opts, et_loader **out);
// From a prepared store; opts->tmpl and tok are not used. ET_ERR_INVALID when image_size or
// landmark_dim is non-zero and differs from the store's schema.
et_status et_loader_new_store(et_store *store, const et_loader_opts *opts, et_loader **out);
void et_loader_free(et_loader *l);
et_status et_loader_next(et_loader *l, et_batch *out);
void et_loader_seek(et_loader *l, int64_t epoch, int64_t position);
void et_loader_tell(const et_loader *l, int64_t *epoch, int64_t *position);
int64_t et_loader_epoch_samples(const et_loader *l);  // this rank's samples per epoch
int64_t et_loader_bad_samples(const et_loader *l);
// True when the last et_loader_next returned because of opts.stop.
bool et_loader_interrupted(const et_loader *l);
// One line per skip reason with its count, into buf.
void et_loader_report(const et_loader *l, char *buf, size_t cap);

// A video as the loader reads it: T frames (uniform sampling) of the file or frame directory
// at path, each through et_clip_preprocess(pp). *u8 gets the [T, crop, crop, 3] crops
// (malloc'd, what a store keeps), *indices (malloc'd, may be NULL when not wanted) the source
// frame of each, *source_frames the frame count N. Errors from data/video.h / preprocess.h.
et_status et_loader_load_video(const char *path, int T, const et_clip_preproc *pp, uint8_t **u8,
                               int64_t **indices, int64_t *source_frames);
// One landmark row for a video from per-frame landmarks lm [frames, D]: the mean (in
// float, frames in order) over the rows of the sampled frames. Row k for sampled frame t
// is indices[t] when frames == source_frames, else np.linspace(0, frames - 1, T,
// dtype=int)[t]. indices may be NULL (then the linspace rows are used).
void et_loader_video_landmark(const float *lm, int64_t frames, int64_t D, const int64_t *indices,
                              int T, int64_t source_frames, float *out);

// `emotune prepare`: every sample of ds, in dataset order, processed exactly as the JSON
// source would (template, max_len, the u8 crop of the image or of each of the video_frames
// frames, the landmark row), with opts->workers threads, appended to a new store at path
// (data/store.h; committed only when complete). Samples that fail are skipped, counted in
// *n_bad and the first one logged. When every sample fails, nothing is committed (an error
// with the reasons; a store already at path stays as it was). schema->image_size must equal
// opts->image_size when images are loaded, schema->landmark_dim opts->landmark_dim. Strings, age
// (numeric attributes.age, else -1) and the gpt4 reference come from the sample; label_id is -1.
et_status et_loader_prepare_store(et_dataset *ds, const et_loader_opts *opts,
                                  const et_store_schema *schema, const char *path,
                                  int64_t *n_written, int64_t *n_bad);

#endif
