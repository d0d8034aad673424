// train/tblog.h - training logs: TensorBoard event files and a JSONL metrics log.
// defines: et_tblog, et_tblog_options, et_tblog_open, et_tblog_open_ex, et_tblog_open_file,
//          et_tblog_path, et_tblog_set_wall_time, et_tblog_scalar, et_tblog_scalars,
//          et_tblog_text, et_tblog_flush, et_tblog_close, et_tblog_scalar_event,
//          et_tblog_read_scalars, et_crc32c, et_crc32c_mask,
//          et_metrics_log, et_metrics_log_open, et_metrics_log_write, et_metrics_log_close
//
// TensorBoard event files (written from the format, no TensorFlow code):
// - File: <dir>/events.out.tfevents.<unix seconds, %010d>.<hostname>.<pid>.<counter>
//   (the name TensorBoard's EventFileWriter gives; <counter> counts the files this process
//   opened). et_tblog_open creates dir (and its parents) when missing.
// - Framing (TFRecord): u64 LE data length, u32 LE masked CRC32C of those 8 bytes, the
//   data, u32 LE masked CRC32C of the data; mask(c) = ((c >> 15) | (c << 17)) + 0xa282ead8.
// - Data: serialized tensorboard.Event protos (proto3: zero wall_time / step omitted).
//   The first record is {wall_time, file_version "brain.Event:2", source_metadata
//   {writer "emotune"}}. Scalars are Event{wall_time, step, summary{value{tag,
//   simple_value (f32)}}}, one Value per tag, as torch's SummaryWriter.add_scalar writes
//   them (the value is rounded to f32; NaN and +-Inf are stored as they are). Text is the
//   text plugin's layout (what torch's add_text writes, without its "/text_summary" tag
//   suffix): Value{tag, tensor{DT_STRING, shape [1], string_val}, metadata{plugin_data
//   {plugin_name "text"}}}; TensorBoard renders it as Markdown.
//   tests/test_tblog.c compares the bytes with a file written by TensorBoard itself.
// - Wall time: CLOCK_REALTIME at the call, unless fixed by et_tblog_set_wall_time (tests,
//   replays). Steps are int64 (negative ones are written as 10-byte varints, as protobuf).
// - Buffering: events collect in memory and are written on et_tblog_flush / close, when
//   flush_secs have passed since the last write (checked at each event; monotonic clock),
//   and when 64 KiB are pending. et_tblog_open writes the first record at once, so the run
//   shows up in TensorBoard immediately.
// - Errors: open errors (cannot create the dir or the file) are et_status values naming
//   the path. A write error is returned once, by the call that hit it, as ET_ERR_IO naming
//   the file; the writer then drops every later event (returning NULL, so a training loop
//   that only warns warns once), and et_tblog_close reports how many events were dropped.
//   Logging never aborts training. Bad arguments (NULL tag, n < 0) are programmer errors.
// - Ownership: the caller owns the et_tblog and closes it with et_tblog_close (always frees,
//   even when it returns an error). Strings passed in are copied into the buffer.
// - Thread safety: one et_tblog must not be used from two threads at once; distinct writers
//   are independent (the file counter is atomic).
//
// JSONL metrics log (et_metrics_log): one JSON object per line, {"step":370,"loss":1.234,
// "lr":9.9e-05}, keys in the caller's order after "step". Numbers: integral values with
// |v| < 2^53 print exactly as integers ("1000"), others as %.9g (round-trips an f32; e.g.
// 9.9e-05, 1.23456789e+09). JSON has no NaN/Inf: a non-finite value is written as null
// (every JSON reader accepts it; pandas reads it as NaN); the NaN/Inf event itself is for
// the training loop's own report. Keys are JSON-escaped (quotes, backslash, control
// characters). Each line is built in memory, written with one fwrite and flushed, so a crash
// leaves whole lines. append = true continues an existing file (resume); false truncates.
// Errors are et_status values (ET_ERR_IO naming the path); the caller owns the log and frees
// it with et_metrics_log_close. Not thread-safe per log.
#ifndef ET_TRAIN_TBLOG_H
#define ET_TRAIN_TBLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/status.h"

// ---- CRC32C (Castagnoli, reflected poly 0x82f63b78; slicing-by-8) ------------------------
// et_crc32c(0, "123456789", 9) == 0xe3069283. Chainable: et_crc32c(et_crc32c(0, a), b).
uint32_t et_crc32c(uint32_t crc, const void *data, size_t len);
// TFRecord's masked CRC: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
uint32_t et_crc32c_mask(uint32_t crc);

// ---- TensorBoard event file ---------------------------------------------------------------
typedef struct et_tblog et_tblog;

typedef struct {
    double flush_secs;  // write pending events at least this often; 0 = after every event
} et_tblog_options;

#define ET_TBLOG_DEFAULT_FLUSH_SECS 10.0

// Creates dir if needed and a new event file in it (name above); writes the first record.
et_status et_tblog_open(const char *dir, et_tblog **out);
// Same with options (NULL = defaults).
et_status et_tblog_open_ex(const char *dir, const et_tblog_options *opt, et_tblog **out);
// Writes exactly the file at path (created or truncated): tests and tools.
et_status et_tblog_open_file(const char *path, const et_tblog_options *opt, et_tblog **out);
// The event file's path (owned by tb).
const char *et_tblog_path(const et_tblog *tb);
// wall_time > 0: every later event (until the next call) gets this wall time (seconds since
// the epoch). wall_time <= 0: back to the real-time clock.
void et_tblog_set_wall_time(et_tblog *tb, double wall_time);

// One scalar (one Event with one Value).
et_status et_tblog_scalar(et_tblog *tb, const char *tag, int64_t step, double value);
// n scalars of one step in one Event (n Values); n == 0 writes nothing.
et_status et_tblog_scalars(et_tblog *tb, int64_t step, int n, const char *const *tags,
                           const double *values);
// A text summary (Markdown; e.g. the run config at step 0). text is UTF-8, NUL-terminated.
et_status et_tblog_text(et_tblog *tb, const char *tag, int64_t step, const char *text);
// Writes the pending events to the file (no fsync).
et_status et_tblog_flush(et_tblog *tb);
// Flushes, closes and frees tb (NULL is a no-op). Returns the flush/close error, or an
// ET_ERR_IO counting the events dropped after an earlier write error.
et_status et_tblog_close(et_tblog *tb);

// ---- reading an event file back ------------------------------------------------------------
// Every scalar (Value with a simple_value) of the event file at path, in file order, with its
// Event's step and wall time. Both CRCs of every record are checked; other events (the
// file_version record, text) are read and skipped. *out is malloc'd (free it; NULL when there
// is none). Tags longer than 255 bytes are cut. Errors: ET_ERR_IO (cannot open / read),
// ET_ERR_FORMAT naming the file and the record's byte offset (cut record, CRC mismatch, a
// record that does not parse as a tensorboard.Event); nothing is returned then.
typedef struct {
    int64_t step;
    double wall_time;
    char tag[256];
    float value;
} et_tblog_scalar_event;

et_status et_tblog_read_scalars(const char *path, et_tblog_scalar_event **out, int *n);

// ---- JSONL metrics log ----------------------------------------------------------------------
typedef struct et_metrics_log et_metrics_log;

et_status et_metrics_log_open(const char *path, bool append, et_metrics_log **out);
// Appends {"step":step,"<keys[0]>":values[0],...} and a newline, then flushes.
et_status et_metrics_log_write(et_metrics_log *log, int64_t step, int n, const char *const *keys,
                               const double *values);
// Closes and frees log (NULL is a no-op); returns the close error, if any.
et_status et_metrics_log_close(et_metrics_log *log);

#endif
