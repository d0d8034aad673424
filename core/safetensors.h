// core/safetensors.h - reading and writing safetensors files and sharded checkpoints.
// defines: et_st_file, et_st_info, et_st_open, et_st_open_memory, et_st_close,
//          et_st_num_tensors, et_st_name, et_st_find, et_st_info_of, et_st_load,
//          et_st_metadata, et_st_num_metadata, et_st_metadata_key, et_st_path, et_st_save,
//          et_st_index, et_st_index_open, et_st_index_num_tensors, et_st_index_name,
//          et_st_index_find, et_st_index_info_of, et_st_index_load, et_st_index_close
//
// Contract
// - Files are untrusted input. et_st_open validates the whole header before returning:
//   header length, UTF-8, JSON shape, every entry's dtype/shape/data_offsets, offsets that
//   tile the data buffer exactly (sorted by begin, no overlap, no gap), total file size,
//   duplicate names and __metadata__, and names another reader would see differently: a
//   "\u0000" escape anywhere in the header (cJSON would cut the string there: "X\u0000evil"
//   would load as "X") or a tensor name holding a control character. Every failure is an
//   et_status (owned by the caller) whose message names the file and the offending field or
//   tensor. No input, however hostile, makes the reader touch memory outside the file.
// - The file is mmap'd privately (MAP_PRIVATE, read+write): a tensor returned by et_st_load
//   as a zero-copy view may be written in place; the writes stay in this process and never
//   reach the file. Two loads of the same name return two views of the same bytes. If
//   another process truncates the file while it is mapped, reads may fault (SIGBUS): that
//   is outside what a reader can defend against.
// - Ownership: et_st_open hands back an et_st_file that the caller closes with
//   et_st_close. The mapping is refcounted: every tensor from et_st_load holds a ref, so
//   tensors stay valid after et_st_close and the mapping goes when the last one is
//   released. Strings returned by et_st_name, et_st_metadata, et_st_info.name and
//   et_st_path are owned by the file and valid until et_st_close.
// - et_st_load returns a NEW tensor (release with et_release): a zero-copy view when the
//   dtype is one of emotune's (F32 BF16 F16 I32 U8 F64) and the data is aligned for it,
//   otherwise a copy. I64 becomes i32 (values outside i32 are an error naming the tensor),
//   BOOL becomes u8 0/1, I8 becomes u8 (negative values are an error). Any other dtype is
//   ET_ERR_UNSUPPORTED naming the tensor and the dtype.
// - et_st_save borrows everything it is given. Tensors on a device (GPU trainables,
//   optimizer state) are staged through host copies. The file is
//   written to "<path>.tmp.<pid>", fsynced and renamed over path, so path never holds a
//   half-written file. Layout: tensors sorted by (dtype size desc, then name), header
//   padded with spaces to a multiple of 8, so the data buffer starts 8-aligned and every
//   tensor starts at a multiple of its element size (8-byte dtypes at multiples of 8).
// - Sharded checkpoints: et_st_index_open reads model.safetensors.index.json
//   ({"metadata":{"total_size":N},"weight_map":{"tensor":"shard file"}}), opens every
//   shard once (eagerly, so a missing shard or a tensor missing from its shard is reported
//   at open) and owns them; et_st_index_close closes them. Shard names must be plain file
//   names in the index's directory (no '/', no "..").
// - Not thread-safe for concurrent open/close of one handle; concurrent et_st_load calls
//   on one open handle are fine (they only read the header tables).
#ifndef ET_SAFETENSORS_H
#define ET_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "tensor.h"

// Largest header the reader accepts (bytes), as in the reference implementation.
#define ET_ST_MAX_HEADER 100000000ull

typedef struct et_st_file et_st_file;

typedef struct {
    const char *name;  // owned by the file
    char dtype[8];     // safetensors dtype string: "F32", "BF16", "I64", "F8_E4M3", ...
    int ndim;
    int64_t shape[ET_MAX_DIMS];
    uint64_t begin, end;  // byte offsets relative to the data buffer, end exclusive
} et_st_info;

// mmap + full validation.
et_status et_st_open(const char *path, et_st_file **out);
// Same validation on bytes in memory; the bytes are copied (the caller keeps buf). name is
// used in error messages (e.g. "<memory>"). Used by the fuzzer and for embedded files.
et_status et_st_open_memory(const void *buf, size_t len, const char *name, et_st_file **out);
void et_st_close(et_st_file *f);  // NULL-safe; tensors from et_st_load stay valid

const char *et_st_path(const et_st_file *f);  // the path (or name) it was opened with
int et_st_num_tensors(const et_st_file *f);
const char *et_st_name(const et_st_file *f, int i);  // in data-offset order; NULL if out of range
int et_st_find(const et_st_file *f, const char *name);  // index for et_st_name, or -1
// ET_ERR_MISSING naming file and tensor when absent.
et_status et_st_info_of(const et_st_file *f, const char *name, et_st_info *out);
et_status et_st_load(et_st_file *f, const char *name, et_tensor **out);

const char *et_st_metadata(const et_st_file *f, const char *key);  // __metadata__ value or NULL
int et_st_num_metadata(const et_st_file *f);
const char *et_st_metadata_key(const et_st_file *f, int i);  // NULL if out of range

// names[i] -> tensors[i] for i < n; meta_kv holds n_meta key,value pairs (2*n_meta strings,
// may be NULL when n_meta is 0) written as __metadata__. Rejects duplicate names, the name
// "__metadata__", empty, non-UTF-8 or control-character names, duplicate metadata keys and
// non-CPU tensors.
et_status et_st_save(const char *path, int n, const char *const *names, et_tensor *const *tensors,
                     int n_meta, const char *const *meta_kv);

typedef struct et_st_index et_st_index;

et_status et_st_index_open(const char *index_json_path, et_st_index **out);
int et_st_index_num_tensors(const et_st_index *ix);
const char *et_st_index_name(const et_st_index *ix, int i);     // in weight_map order
int et_st_index_find(const et_st_index *ix, const char *name);  // index or -1
et_status et_st_index_info_of(const et_st_index *ix, const char *name, et_st_info *out);
et_status et_st_index_load(et_st_index *ix, const char *name, et_tensor **out);
void et_st_index_close(et_st_index *ix);  // NULL-safe; loaded tensors stay valid

#endif
