// data/store.h - the prepared dataset: one HDF5 file of preprocessed samples, random access.
// defines: et_store, et_store_writer, et_store_schema, et_store_record, ET_STORE_SCHEMA_VERSION,
//          ET_STORE_KIND_TEXT, ET_STORE_KIND_IMAGE, ET_STORE_KIND_VIDEO, et_store_create,
//          et_store_append, et_store_writer_close, et_store_writer_abort, et_store_open,
//          et_store_close, et_store_size, et_store_path, et_store_get_schema, et_store_lengths,
//          et_store_get, et_store_set_vocab, et_store_record_free
//
// File layout (schema_version 2; version 1, without the priors, is refused with a message to
// prepare the data again). N samples; S = image_size; D = landmark_dim; K = 6
// string fields. Every dataset is chunked and extendible (H5S_UNLIMITED along axis 0);
// with compression > 0 every dataset has the shuffle and deflate filters.
//   root attributes  schema_version i32 (= 2), num_samples i64 (= N, written on close),
//                    image_size i32, landmark_dim i32, prior_dim i32 (P), prior_layout
//                    (string, "" when P = 0), string_fields (the K names below,
//                    comma-separated), template, tokenizer, creator (strings; fixed-length
//                    or variable-length strings are both read)
//   kind        u8  [N]        0 text only, 1 image, 2 video
//   img_offset  i64 [N + 1]    sample i's images are pixels[img_offset[i] .. img_offset[i+1])
//                              (0 for text, 1 for an image, T >= 1 frames for a video)
//   pixels      u8  [M, S, S, 3]  HWC RGB after resize + crop (data/preprocess.h u8_hwc);
//                              chunk = one image, so reading a sample decompresses only its
//                              own images
//   tok_offset  i64 [N + 1]    sample i's tokens are ids/labels[tok_offset[i] .. [i+1])
//   ids         i32 [L]        token ids (the <image>/<video> placeholder included)
//   labels      i32 [L]        training labels (-100 = ignored)
//   has_landmarks u8 [N]       1 if landmarks[i] is meaningful
//   landmarks   f32 [N, D]     only when D > 0 (rows of samples without are zeros)
//   priors      u16 [N, P]     only when P > 0: bf16 bits of the precomputed face priors
//                              (emotune prepare with a Face Info Mining model: the face
//                              network's clues, landmarks and attribute probabilities; the
//                              layout string says which); non-finite values are refused on read
//   age         i32 [N]        -1 unknown
//   label_id    i32 [N]        class index, -1 none
//   str_offset  i64 [N*K + 1]  field f of sample i is strings[str_offset[i*K+f] .. +1)
//   strings     u8  [B]        UTF-8 bytes, no terminators; fields in this order:
//                              id, source, label, reference, gender, race
//
// Writing: et_store_create makes "<path>.tmp" (replacing any stale one); records are
// appended in order (small per-sample columns are buffered and written in blocks);
// et_store_writer_close writes num_samples, flushes, closes, fsyncs the file and renames
// it to path (then fsyncs the directory). On any error, and on et_store_writer_abort, the
// temporary file is removed and path is left untouched: a store at path is always complete.
// A failed append (invalid record, write error) poisons the writer: later appends fail
// and close returns the first error without creating path. The writer is freed by close
// or abort in every case.
//
// Reading: et_store_open validates before returning: HDF5 signature (a non-HDF5 file, a
// truncated or corrupt one -> ET_ERR_FORMAT with HDF5's own reason), schema_version == 2
// (other versions ET_ERR_UNSUPPORTED), every dataset present with the right rank, element
// type class and size, and consistent lengths (num_samples, the [N] columns, N+1 offsets,
// pixel, landmark and prior shapes against the attributes), every offset array starting at 0,
// non-decreasing and ending exactly at its data's length, kind agreeing with the image
// count. Errors name the file and the dataset or attribute. The offset arrays and the
// per-sample columns are loaded into memory (about 60 bytes per sample); et_store_get
// reads one sample's slices. A chunk whose data fails its filter (corrupt compressed bytes)
// is reported by et_store_get as ET_ERR_FORMAT naming the sample and dataset.
//
// Ownership: records given to et_store_append are only read. et_store_get fills a record
// whose arrays and strings are malloc'd (every string non-NULL, possibly ""; arrays NULL
// when empty); release it with et_store_record_free. et_store_get_schema's strings belong
// to the store.
//
// Thread safety: HDF5 is not thread-safe in its default build, so every function here
// takes one process-wide mutex around its HDF5 calls; stores and writers may be used from
// any threads. et_store_get fetches the stored (compressed) chunks it needs under the mutex
// (H5Dread_chunk) and decodes them (zlib inflate, shuffle) outside it, so concurrent reads
// scale with threads. That applies to datasets whose layout the reader decodes itself:
// chunked with whole rows per chunk, file type = native type, filters none, deflate, or
// shuffle + deflate (what the writer makes); any other layout is read with H5Dread under
// the mutex. A chunk that does not inflate to exactly its size is ET_ERR_FORMAT. Before
// H5Dread on a chunked dataset, the chunks it covers are checked to decode (no filter,
// shuffle, deflate) to exactly the chunk's size: libhdf5 1.10 would copy past a short one.
// HDF5's automatic error printing is switched off (H5Eset_auto) inside these calls; its
// error stack becomes the et_status message.
#ifndef ET_STORE_H
#define ET_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/status.h"

#define ET_STORE_SCHEMA_VERSION 2

enum { ET_STORE_KIND_TEXT = 0, ET_STORE_KIND_IMAGE = 1, ET_STORE_KIND_VIDEO = 2 };

typedef struct et_store et_store;
typedef struct et_store_writer et_store_writer;

typedef struct et_store_schema {
    int image_size;              // S (1..8192); every image is S x S
    int landmark_dim;            // D (0..65536); 0 = the store has no landmarks
    const char *template_name;   // chat template the ids were built with (may be NULL)
    const char *tokenizer_name;  // tokenizer identity (may be NULL)
    const char *supervise;       // labels rule (data.supervise): "answers" or "all"; NULL
                                 // or "" (stores written before it) read as "answers"
    const char *creator;         // tool and version that wrote the file (may be NULL)
    int compression;             // deflate level 1..9; 0 = no filters; < 0 = default (4)
    int prior_dim;               // P (0..2^22): bf16 values of precomputed face priors per
                                 // sample; 0 = none
    const char *prior_layout;    // what the P values are (the model's description, checked
                                 // by the model when it trains from the store); set when P > 0
} et_store_schema;

typedef struct et_store_record {
    // Strings (NULL is written as "").
    char *id, *source, *label, *reference, *gender, *race;
    int32_t age;       // -1 unknown
    int32_t label_id;  // -1 none
    int64_t n_tokens;
    int32_t *ids;      // [n_tokens]
    int32_t *labels;   // [n_tokens]
    bool is_video;     // kind 2; otherwise kind 1 when n_images == 1, kind 0 when 0
    int64_t n_images;  // 0, 1, or T >= 1 frames for a video
    uint8_t *pixels;   // [n_images, S, S, 3] HWC
    bool has_landmarks;
    float *landmarks;  // [D]
    uint16_t *priors;  // [P] bf16 bits, or NULL (written as zeros: a sample without priors)
} et_store_record;

// Writing.
et_status et_store_create(const char *path, const et_store_schema *schema, et_store_writer **out);
et_status et_store_append(et_store_writer *w, const et_store_record *rec);
et_status et_store_writer_close(et_store_writer *w);  // commit: tmp -> path
void et_store_writer_abort(et_store_writer *w);       // discard everything written

// Reading.
et_status et_store_open(const char *path, et_store **out);
void et_store_close(et_store *s);
int64_t et_store_size(const et_store *s);
const char *et_store_path(const et_store *s);  // the path it was opened with
// image_size, landmark_dim, template_name, tokenizer_name, creator, compression (-1: not
// recorded) of the open store.
const et_store_schema *et_store_get_schema(const et_store *s);
// Sample i's token and image counts and kind, from memory (no HDF5 call): for length
// grouping and batching without reading the sample. i must be in [0, size).
void et_store_lengths(const et_store *s, int64_t i, int64_t *n_tokens, int64_t *n_images,
                      int *kind);
// Read sample i (0 <= i < size, else ET_ERR_INVALID). On failure *out is zeroed. A sample
// whose landmarks hold NaN or Inf is ET_ERR_FORMAT (naming the file, the sample and the
// index); so is one whose tokens fall outside the vocabulary set by et_store_set_vocab.
et_status et_store_get(et_store *s, int64_t i, et_store_record *out);
// The vocabulary of the model the store feeds: afterwards et_store_get refuses a sample with
// an id outside [0, vocab_size) other than `placeholder` (the <image> id, e.g. -200), or a
// label outside [0, vocab_size) other than -100 (ET_ERR_FORMAT naming the file, the sample
// and the token), so a store prepared with another tokenizer, or damaged, never reaches the
// embedding or the loss. vocab_size <= 0 switches the check off (the default). Call it
// before reads start (it is not synchronised with concurrent et_store_get calls).
void et_store_set_vocab(et_store *s, int64_t vocab_size, int32_t placeholder);
void et_store_record_free(et_store_record *r);  // frees and zeroes; NULL-safe

#endif
