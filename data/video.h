// data/video.h - decoding video files (FFmpeg) and frame directories into sampled RGB frames.
// defines: et_video, et_video_opts, et_video_sampling, et_video_opts_default,
//          ET_VIDEO_DEFAULT_MAX_SOURCE_FRAMES, ET_VIDEO_DEFAULT_MAX_OUT_FRAMES,
//          et_video_load, et_video_load_file, et_video_load_dir, et_video_free,
//          et_video_uniform_indices, et_video_fps_indices, et_video_fps_llava_indices,
//          et_video_list_dir
//
// Contract
// - A video is a file FFmpeg's libavformat can demux whose first video stream (attached
//   cover pictures skipped) libavcodec can decode, or a directory of frame images (*.jpg,
//   *.jpeg, *.png, case-insensitive, hidden files skipped) taken in natural name order
//   ("f2.png" < "f10.png": digit runs compare as numbers, then the rest byte-wise; see
//   et_video_list_dir). et_video_load picks one by stat()ing the path.
// - Frames are numbered 0..N-1 in presentation order. N (out->source_frames) is counted,
//   never taken from the header: first the video stream's non-empty packets are counted
//   (demuxing only, no decoding; decord's len(VideoReader) counts the same), then the
//   decode pass picks the selected frames. If the decoder delivers a different number of
//   frames than there were packets (a damaged packet that does not decode, a codec with
//   several frames per packet) the selection is recomputed from the frames that did decode
//   and they are decoded again, so the indices always refer to decodable frames.
// - Sampling (the indices are exposed as pure functions below and tested against numpy):
//   ET_VIDEO_UNIFORM: T = num_frames frames at np.linspace(0, N - 1, T, dtype=int), i.e.
//     idx_i = (int64)(i * ((N - 1) / (double)(T - 1))) truncated toward zero, the last one
//     exactly N - 1, and idx_0 = 0 when T == 1. This is LLaVA-NeXT-Video / LLaVA-OneVision's
//     `np.linspace(0, total_frame_num - 1, frames_upbound, dtype=int)` (not rounded: numpy
//     truncates when casting to int). T > N repeats frames as numpy does (each repeated
//     frame is decoded once and copied).
//   ET_VIDEO_FPS: one frame every 1/fps seconds by timestamp: with t_i the presentation
//     time of frame i minus that of frame 0, the targets are k / fps for k = 0, 1, ... while
//     k / fps <= t_{N-1}; each target takes the frame on screen at that time (the last i
//     with t_i <= k / fps + 1e-6 s); a frame chosen by several targets (fps above the
//     video's rate) is returned once. Right for variable frame rate videos.
//   ET_VIDEO_FPS_LLAVA: LLaVA-NeXT / LLaMA-VID's index rule: step = round(avg_fps / fps)
//     (Python round, half to even; at least 1), frames 0, step, 2*step, ... < N.
//   In both fps modes, max_frames > 0 caps the count the way LLaVA's frames_upbound does:
//   if more than max_frames frames were selected, the selection becomes uniform,
//   np.linspace(0, N - 1, max_frames, dtype=int).
//   For directories, frame i is at time i / dir_fps seconds (dir_fps <= 0 means 1) and
//   avg_fps is dir_fps.
// - Pixels: each selected frame is converted with libswscale to RGB24 at the source size
//   (bilinear chroma upsampling, accurate rounding, full chroma interpolation); the YUV
//   matrix follows the stream's colour-space tag (BT.601 when untagged) and range tag
//   (limited unless tagged full or a yuvj format). Not bit-exact with decord or PyAV (their
//   chroma filters differ; expect a few levels of difference). Rotation metadata (display
//   matrix) and sample aspect ratio are ignored: frames come out as stored. Directory
//   frames are decoded with data/image.h (Pillow-exact); they may differ in size.
// - Limits: width * height of the stream and of every decoded frame <= max_pixels (checked
//   before any conversion buffer is allocated), N <= max_source_frames (counting stops
//   there), frames returned <= max_out_frames. Exceeding one is ET_ERR_NOMEM.
// - Errors name the path: missing path (ET_ERR_MISSING); not a regular file or directory,
//   unreadable (ET_ERR_IO); empty file, not a container FFmpeg recognises, no video
//   stream, a stream with zero frames, a file none of whose frames decodes, a directory
//   with no frame images (ET_ERR_FORMAT); an MP4/MOV that FFmpeg cannot open or finds no
//   video stream in because it is cut short (a top-level box runs past the end of the file,
//   or there is no 'moov' box): "corrupt MP4/MOV video: the file is truncated ..." naming
//   the box (ET_ERR_FORMAT), and a file that ends inside its container header: "corrupt
//   video: the file is truncated" (ET_ERR_FORMAT); no decoder for the codec (ET_ERR_UNSUPPORTED,
//   naming the codec); bad options (ET_ERR_INVALID). A frame image that fails to decode is
//   an error naming that image. On failure *out is zeroed.
// - Truncated or damaged files: demuxing stops at the first read error and the frames
//   before it are used; packets the decoder rejects are skipped. out->truncated says that
//   the demuxer stopped on an error or delivered fewer frames than the header declares
//   (AVI and MP4 store a count), and out->decode_errors counts rejected packets, so a
//   caller that wants to refuse damaged videos can. A file that yields no decodable frame
//   at all is an error. Indices count decodable frames: when a damaged or cut-off packet
//   does not decode, the frames after it move down by one (decord's indices would instead
//   point at the missing frame), while times stay those of the frames themselves.
// - Ownership: out->frames (n_frames et_images), out->indices and out->times are malloc'd
//   and owned by *out; et_video_free releases them and zeroes *out (NULL-safe).
// - Thread safety: calls are independent (no shared state) and may run concurrently,
//   except that the first call sets FFmpeg's global log level to AV_LOG_QUIET once (so
//   damaged files do not print to stderr); a program that wants FFmpeg's messages can
//   call av_log_set_level afterwards.
#ifndef ET_VIDEO_H
#define ET_VIDEO_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/status.h"
#include "image.h"

#define ET_VIDEO_DEFAULT_MAX_SOURCE_FRAMES ((int64_t)1 << 22)  // 39 h at 30 fps
#define ET_VIDEO_DEFAULT_MAX_OUT_FRAMES 1024

typedef enum {
    ET_VIDEO_UNIFORM = 0,  // num_frames frames, np.linspace over the whole video
    ET_VIDEO_FPS,          // one frame every 1/fps seconds, by timestamp
    ET_VIDEO_FPS_LLAVA,    // every round(avg_fps / fps)-th frame (LLaVA-NeXT, LLaMA-VID)
} et_video_sampling;

typedef struct et_video_opts {
    et_video_sampling sampling;
    int num_frames;             // ET_VIDEO_UNIFORM: T >= 1
    double fps;                 // fps modes: target frames per second (> 0)
    int max_frames;             // fps modes: > 0 caps the count (uniform fallback); 0 = none
    double dir_fps;             // frame directories: frames per second (<= 0 means 1)
    int64_t max_pixels;         // per frame; <= 0 means ET_IMAGE_DEFAULT_MAX_PIXELS
    int64_t max_source_frames;  // frames in the source; <= 0 means the default above
    int max_out_frames;         // frames returned; <= 0 means the default above
    int threads;                // decoder threads; <= 0 means 1
} et_video_opts;

// Uniform sampling of 8 frames, default limits.
et_video_opts et_video_opts_default(void);

typedef struct et_video {
    int n_frames;
    et_image *frames;       // [n_frames] RGB HWC u8, owned
    int64_t *indices;       // [n_frames] source frame index of each frame (non-decreasing)
    double *times;          // [n_frames] seconds after the first frame
    int64_t source_frames;  // N, frames in the source (as counted)
    double avg_fps;         // the stream's average frame rate (0 if unknown); dir_fps for dirs
    double duration_s;      // time of the last frame minus the first (seconds)
    int width, height;      // size of the first decoded frame
    bool truncated;         // demux error, or fewer frames than the header declares
    int decode_errors;      // packets the decoder rejected
} et_video;

// A video file or a frame directory, by what the path is.
et_status et_video_load(const char *path, const et_video_opts *opts, et_video *out);
et_status et_video_load_file(const char *path, const et_video_opts *opts, et_video *out);
et_status et_video_load_dir(const char *path, const et_video_opts *opts, et_video *out);
void et_video_free(et_video *v);

// Sampling rules (see the contract). Each writes its indices to a new malloc'd array *out
// (at least one element allocated; the caller frees it) and the count to *n_out.
// times may be NULL in et_video_fps_indices, meaning t_i = i / avg_fps.
et_status et_video_uniform_indices(int64_t n, int t, int64_t **out, int *n_out);
et_status et_video_fps_indices(int64_t n, const double *times, double avg_fps, double fps,
                               int max_frames, int max_out, int64_t **out, int *n_out);
et_status et_video_fps_llava_indices(int64_t n, double avg_fps, double fps, int max_frames,
                                     int max_out, int64_t **out, int *n_out);

// The frame images of a directory in natural order: *names (a malloc'd array of *n
// malloc'd file names, not paths) is freed by the caller (each name, then the array).
// At most max_files names (<= 0: no limit) or ET_ERR_NOMEM.
et_status et_video_list_dir(const char *path, int64_t max_files, char ***names, int64_t *n);

#endif
