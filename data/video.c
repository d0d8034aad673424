// data/video.c - see video.h
//
// A video file is read in two passes over freshly opened demuxers: a packet scan (no
// decoding) that counts the frames and collects their timestamps, and a decode pass that
// keeps the selected frames. If the decoder delivers a different number of frames than
// there were packets, the selection is recomputed from what decoded and the decode pass
// runs once more.
#include "video.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TIME_EPS 1e-6  // seconds; timestamps within this of a target count as on it

// Containers accepted (AVFormatContext.format_whitelist): playlist-style demuxers (hls,
// concat, dash, image2 patterns) that would open other files are not in it.
static const char *const k_format_whitelist =
    "mov,mp4,m4a,3gp,3g2,mj2,avi,matroska,webm,mpeg,mpegts,mpegvideo,m4v,h264,hevc,flv,asf,"
    "ogg,nut,gif,mjpeg,yuv4mpegpipe,ivf,mxf";

et_video_opts et_video_opts_default(void) {
    et_video_opts o;
    memset(&o, 0, sizeof(o));
    o.sampling = ET_VIDEO_UNIFORM;
    o.num_frames = 8;
    o.fps = 1.0;
    return o;
}

void et_video_free(et_video *v) {
    if (!v) return;
    if (v->frames)
        for (int i = 0; i < v->n_frames; i++) et_image_free(&v->frames[i]);
    free(v->frames);
    free(v->indices);
    free(v->times);
    memset(v, 0, sizeof(*v));
}

// ---- sampling rules ----------------------------------------------------------------------

static et_status alloc_idx(int n, int64_t **out) {
    *out = malloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
    return *out ? NULL : et_err(ET_ERR_NOMEM, "out of memory for %d frame indices", n);
}

et_status et_video_uniform_indices(int64_t n, int t, int64_t **out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    if (n <= 0)
        return et_err(ET_ERR_INVALID, "uniform sampling of a video with %lld frames", (long long)n);
    if (t <= 0) return et_err(ET_ERR_INVALID, "uniform sampling needs num_frames >= 1, got %d", t);
    ET_TRY(alloc_idx(t, out));
    // np.linspace(0, n - 1, t, dtype=int): y = arange(t) * step (+ 0), y[-1] = n - 1, then
    // truncation toward zero. With n == 1 the step is 0 and numpy computes arange * 0 too.
    double step = t > 1 ? (double)(n - 1) / (double)(t - 1) : 0.0;
    for (int i = 0; i < t; i++) (*out)[i] = (int64_t)((double)i * step + 0.0);
    if (t > 1) (*out)[t - 1] = n - 1;
    *n_out = t;
    return NULL;
}

// LLaVA's frames_upbound: more than max_frames selected -> uniform over max_frames.
static et_status apply_cap(int64_t n, int count, int max_frames, int max_out, int64_t **out,
                           int *n_out) {
    if (max_frames > 0 && count > max_frames) {
        free(*out);
        ET_TRY(et_video_uniform_indices(n, max_frames, out, n_out));
        count = *n_out;
    }
    if (count > max_out) {
        free(*out);
        *out = NULL;
        *n_out = 0;
        return et_err(ET_ERR_NOMEM,
                      "sampling selects %d frames, more than the limit of %d (set max_frames)",
                      count, max_out);
    }
    *n_out = count;
    return NULL;
}

et_status et_video_fps_indices(int64_t n, const double *times, double avg_fps, double fps,
                               int max_frames, int max_out, int64_t **out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    if (n <= 0)
        return et_err(ET_ERR_INVALID, "fps sampling of a video with %lld frames", (long long)n);
    if (!(fps > 0) || !isfinite(fps))
        return et_err(ET_ERR_INVALID, "fps sampling needs fps > 0, got %g", fps);
    if (!times && !(avg_fps > 0))
        return et_err(ET_ERR_FORMAT,
                      "fps sampling needs frame timestamps or a frame rate, and the video has "
                      "neither (use uniform sampling)");
    if (max_out <= 0) max_out = ET_VIDEO_DEFAULT_MAX_OUT_FRAMES;
    // At most one selection per frame; cap the buffer by the limits as well.
    int64_t cap = n;
    int64_t lim = (int64_t)max_out + 1;
    if (max_frames > 0 && max_frames >= lim) lim = (int64_t)max_frames + 1;
    if (cap > lim) cap = lim;
    ET_TRY(alloc_idx((int)cap, out));
    int64_t count = 0;  // selections; only the first cap are stored
    double t0 = times ? times[0] : 0.0;
    double t_last = times ? times[n - 1] - t0 : (double)(n - 1) / avg_fps;
    for (int64_t i = 0; i < n; i++) {
        // Frame i is on screen for targets in [t_i - eps, t_{i+1} - eps); the targets are
        // k / fps for k >= 0 with k / fps <= t_last + eps.
        double ti = times ? times[i] - t0 : (double)i / avg_fps;
        double lo = ti - TIME_EPS;
        double k = ceil(lo * fps);
        if (k < 0) k = 0;
        while (k > 0 && (k - 1) / fps >= lo) k -= 1;
        while (k / fps < lo) k += 1;
        double target = k / fps;
        if (target > t_last + TIME_EPS) continue;
        if (i + 1 < n) {
            double tn = times ? times[i + 1] - t0 : (double)(i + 1) / avg_fps;
            if (!(target < tn - TIME_EPS)) continue;
        }
        if (count < cap) (*out)[count] = i;
        count++;
    }
    return apply_cap(n, count > INT32_MAX ? INT32_MAX : (int)count, max_frames, max_out, out,
                     n_out);
}

et_status et_video_fps_llava_indices(int64_t n, double avg_fps, double fps, int max_frames,
                                     int max_out, int64_t **out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    if (n <= 0)
        return et_err(ET_ERR_INVALID, "fps sampling of a video with %lld frames", (long long)n);
    if (!(fps > 0) || !isfinite(fps))
        return et_err(ET_ERR_INVALID, "fps sampling needs fps > 0, got %g", fps);
    if (!(avg_fps > 0) || !isfinite(avg_fps))
        return et_err(ET_ERR_FORMAT,
                      "LLaVA fps sampling needs the video's frame rate, which is unknown (use "
                      "uniform or timestamp fps sampling)");
    if (max_out <= 0) max_out = ET_VIDEO_DEFAULT_MAX_OUT_FRAMES;
    double r = nearbyint(avg_fps / fps);  // Python round(): half to even (default FP mode)
    int64_t step = r < 1 ? 1 : (r > (double)n ? n : (int64_t)r);
    int64_t total = (n + step - 1) / step;  // len(range(0, n, step))
    int64_t lim = (int64_t)max_out + 1;
    if (max_frames > 0 && max_frames >= lim) lim = (int64_t)max_frames + 1;
    int64_t keep = total < lim ? total : lim;
    ET_TRY(alloc_idx((int)keep, out));
    for (int64_t i = 0; i < keep; i++) (*out)[i] = i * step;
    int count = total > INT32_MAX ? INT32_MAX : (int)total;
    return apply_cap(n, count, max_frames, max_out, out, n_out);
}

// Selection for a source of n frames (times: seconds, may be NULL).
static et_status select_frames(const et_video_opts *o, int64_t n, const double *times,
                               double avg_fps, int max_out, int64_t **sel, int *nsel) {
    switch (o->sampling) {
        case ET_VIDEO_UNIFORM:
            if (o->num_frames > max_out)
                return et_err(ET_ERR_NOMEM, "num_frames %d is more than the limit of %d",
                              o->num_frames, max_out);
            return et_video_uniform_indices(n, o->num_frames, sel, nsel);
        case ET_VIDEO_FPS:
            return et_video_fps_indices(n, times, avg_fps, o->fps, o->max_frames, max_out, sel,
                                        nsel);
        case ET_VIDEO_FPS_LLAVA:
            return et_video_fps_llava_indices(n, avg_fps, o->fps, o->max_frames, max_out, sel,
                                              nsel);
    }
    return et_err(ET_ERR_INVALID, "unknown sampling mode %d", (int)o->sampling);
}

static et_status check_opts(const char *path, const et_video_opts *o) {
    switch (o->sampling) {
        case ET_VIDEO_UNIFORM:
            if (o->num_frames < 1)
                return et_err(ET_ERR_INVALID, "%s: uniform sampling needs num_frames >= 1, got %d",
                              path, o->num_frames);
            return NULL;
        case ET_VIDEO_FPS:
        case ET_VIDEO_FPS_LLAVA:
            if (!(o->fps > 0) || !isfinite(o->fps))
                return et_err(ET_ERR_INVALID, "%s: fps sampling needs fps > 0, got %g", path,
                              o->fps);
            if (o->max_frames < 0)
                return et_err(ET_ERR_INVALID, "%s: max_frames must be >= 0, got %d", path,
                              o->max_frames);
            return NULL;
    }
    return et_err(ET_ERR_INVALID, "%s: unknown sampling mode %d", path, (int)o->sampling);
}

typedef struct {
    int64_t max_pixels, max_source;
    int max_out, threads;
    double dir_fps;
} limits;

static limits get_limits(const et_video_opts *o) {
    limits l;
    l.max_pixels = o->max_pixels > 0 ? o->max_pixels : ET_IMAGE_DEFAULT_MAX_PIXELS;
    l.max_source =
        o->max_source_frames > 0 ? o->max_source_frames : ET_VIDEO_DEFAULT_MAX_SOURCE_FRAMES;
    l.max_out = o->max_out_frames > 0 ? o->max_out_frames : ET_VIDEO_DEFAULT_MAX_OUT_FRAMES;
    l.threads = o->threads > 0 ? o->threads : 1;
    l.dir_fps = o->dir_fps > 0 && isfinite(o->dir_fps) ? o->dir_fps : 1.0;
    return l;
}

// Output arrays for nsel frames.
static et_status alloc_out(const char *path, int nsel, et_video *out) {
    out->frames = calloc((size_t)nsel, sizeof(et_image));
    out->indices = calloc((size_t)nsel, sizeof(int64_t));
    out->times = calloc((size_t)nsel, sizeof(double));
    if (!out->frames || !out->indices || !out->times)
        return et_err(ET_ERR_NOMEM, "%s: out of memory for %d frames", path, nsel);
    out->n_frames = nsel;
    return NULL;
}

static et_status copy_image(const char *path, const et_image *src, et_image *dst) {
    et_status s = et_image_alloc(src->width, src->height, dst);
    if (s) return et_status_wrap(s, "%s", path);
    memcpy(dst->data, src->data, (size_t)src->width * (size_t)src->height * 3);
    return NULL;
}

// ---- directories of frames ---------------------------------------------------------------

static bool is_frame_name(const char *name) {
    if (name[0] == '.') return false;
    const char *dot = strrchr(name, '.');
    if (!dot) return false;
    return strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0 ||
           strcasecmp(dot, ".png") == 0;
}

// Natural order: runs of digits compare by value (leading zeros ignored, then the shorter
// run first), everything else byte-wise; full ties fall back to strcmp.
static int natural_cmp(const char *a, const char *b) {
    const char *pa = a, *pb = b;
    while (*pa && *pb) {
        if (isdigit((unsigned char)*pa) && isdigit((unsigned char)*pb)) {
            const char *sa = pa, *sb = pb;
            while (*sa == '0') sa++;
            while (*sb == '0') sb++;
            const char *ea = sa, *eb = sb;
            while (isdigit((unsigned char)*ea)) ea++;
            while (isdigit((unsigned char)*eb)) eb++;
            size_t la = (size_t)(ea - sa), lb = (size_t)(eb - sb);
            if (la != lb) return la < lb ? -1 : 1;
            int c = memcmp(sa, sb, la);
            if (c) return c < 0 ? -1 : 1;
            size_t za = (size_t)(sa - pa), zb = (size_t)(sb - pb);  // leading zeros
            if (za != zb) return za < zb ? -1 : 1;
            pa = ea;
            pb = eb;
        } else {
            if (*pa != *pb) return (unsigned char)*pa < (unsigned char)*pb ? -1 : 1;
            pa++;
            pb++;
        }
    }
    if (*pa || *pb) return *pa ? 1 : -1;
    return strcmp(a, b);
}

static int natural_qsort_cmp(const void *a, const void *b) {
    return natural_cmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, int64_t n) {
    if (!names) return;
    for (int64_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

et_status et_video_list_dir(const char *path, int64_t max_files, char ***names, int64_t *n) {
    *names = NULL;
    *n = 0;
    DIR *d = opendir(path);
    if (!d) {
        int e = errno;
        return et_err(e == ENOENT ? ET_ERR_MISSING : ET_ERR_IO, "%s: cannot open directory: %s",
                      path, strerror(e));
    }
    char **v = NULL;
    int64_t len = 0, cap = 0;
    et_status s = NULL;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        if (!is_frame_name(de->d_name)) continue;
        if (max_files > 0 && len >= max_files) {
            s = et_err(ET_ERR_NOMEM, "%s: more than %lld frame images", path, (long long)max_files);
            break;
        }
        if (len == cap) {
            int64_t nc = cap ? cap * 2 : 64;
            char **nv = realloc(v, sizeof(char *) * (size_t)nc);
            if (!nv) {
                s = et_err(ET_ERR_NOMEM, "%s: out of memory listing the directory", path);
                break;
            }
            v = nv;
            cap = nc;
        }
        v[len] = strdup(de->d_name);
        if (!v[len]) {
            s = et_err(ET_ERR_NOMEM, "%s: out of memory listing the directory", path);
            break;
        }
        len++;
    }
    if (!s && errno != 0)
        s = et_err(ET_ERR_IO, "%s: cannot read directory: %s", path, strerror(errno));
    closedir(d);
    if (s) {
        free_names(v, len);
        return s;
    }
    if (len > 1) qsort(v, (size_t)len, sizeof(char *), natural_qsort_cmp);
    *names = v;
    *n = len;
    return NULL;
}

et_status et_video_load_dir(const char *path, const et_video_opts *opts, et_video *out) {
    memset(out, 0, sizeof(*out));
    et_video_opts dflt = et_video_opts_default();
    const et_video_opts *o = opts ? opts : &dflt;
    ET_TRY(check_opts(path, o));
    limits lim = get_limits(o);
    char **names = NULL;
    int64_t n = 0;
    ET_TRY(et_video_list_dir(path, lim.max_source, &names, &n));
    if (n == 0) {
        free_names(names, n);
        return et_err(ET_ERR_FORMAT, "%s: directory has no frame images (*.jpg, *.jpeg, *.png)",
                      path);
    }
    int64_t *sel = NULL;
    int nsel = 0;
    et_status s = select_frames(o, n, NULL, lim.dir_fps, lim.max_out, &sel, &nsel);
    if (s) {
        free_names(names, n);
        return et_status_wrap(s, "%s", path);
    }
    s = alloc_out(path, nsel, out);
    et_image_opts iopts = {.max_pixels = lim.max_pixels};
    size_t plen = strlen(path);
    for (int j = 0; !s && j < nsel; j++) {
        out->indices[j] = sel[j];
        out->times[j] = (double)sel[j] / lim.dir_fps;
        if (j > 0 && sel[j] == sel[j - 1]) {
            s = copy_image(path, &out->frames[j - 1], &out->frames[j]);
            continue;
        }
        const char *name = names[sel[j]];
        char *full = malloc(plen + strlen(name) + 2);
        if (!full) {
            s = et_err(ET_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
        sprintf(full, "%s%s%s", path, (plen && path[plen - 1] == '/') ? "" : "/", name);
        s = et_image_decode_file(full, &iopts, &out->frames[j]);
        free(full);
    }
    free(sel);
    free_names(names, n);
    if (s) {
        et_video_free(out);
        return s;
    }
    out->source_frames = n;
    out->avg_fps = lim.dir_fps;
    out->duration_s = (double)(n - 1) / lim.dir_fps;
    out->width = out->frames[0].width;
    out->height = out->frames[0].height;
    return NULL;
}

// ---- video files -------------------------------------------------------------------------

static pthread_once_t g_av_once = PTHREAD_ONCE_INIT;
static void av_init_once(void) { av_log_set_level(AV_LOG_QUIET); }

static const char *av_errstr(int err, char *buf, size_t n) {
    if (av_strerror(err, buf, n) < 0) snprintf(buf, n, "FFmpeg error %d", err);
    return buf;
}

typedef struct {
    const char *path;
    AVFormatContext *fmt;
    AVCodecContext *dec;
    AVPacket *pkt;
    AVFrame *frame;
    struct SwsContext *sws;
    int stream;
    double avg_fps;
    AVRational tb;
} vctx;

static void vclose(vctx *c) {
    if (c->sws) sws_freeContext(c->sws);
    av_frame_free(&c->frame);
    av_packet_free(&c->pkt);
    avcodec_free_context(&c->dec);
    avformat_close_input(&c->fmt);
    const char *p = c->path;
    memset(c, 0, sizeof(*c));
    c->path = p;
}

// An MP4 / MOV (ISO BMFF) file is a sequence of top-level boxes (32-bit size, 4-byte type;
// size 1: a 64-bit size follows; size 0: up to the end of the file), and FFmpeg needs the
// 'moov' box (the index) to find any stream. A file cut short (a copy or download that
// stopped, a recorder killed before it wrote 'moov') makes FFmpeg report "invalid data",
// "end of file" or a stream without a codec. Returns into why (and true) when path looks like
// ISO BMFF and a box runs past the end of the file or no 'moov' box is there.
static bool mp4_damage(const char *path, char *why, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        fclose(f);
        return false;
    }
    const int64_t size = (int64_t)sb.st_size;
    static const char *const first_ok[] = {"ftyp", "moov", "mdat", "free", "skip", "wide"};
    int64_t pos = 0;
    bool moov = false, bmff = false, cut = false;
    char type[5] = "";
    int64_t box = 0;
    while (pos + 8 <= size) {
        uint8_t h[16];
        if (fseeko(f, pos, SEEK_SET) != 0 || fread(h, 1, 8, f) != 8) break;
        memcpy(type, h + 4, 4);
        if (pos == 0) {
            for (size_t k = 0; k < sizeof first_ok / sizeof *first_ok; k++)
                bmff = bmff || !memcmp(type, first_ok[k], 4);
            if (!bmff) break;
        }
        box = (int64_t)((uint64_t)h[0] << 24 | (uint64_t)h[1] << 16 | (uint64_t)h[2] << 8 | h[3]);
        if (box == 1) {
            if (fread(h + 8, 1, 8, f) != 8) {
                cut = true;
                break;
            }
            uint64_t big = 0;
            for (int k = 8; k < 16; k++) big = big << 8 | h[k];
            box = big > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)big;
        } else if (box == 0) {
            box = size - pos;  // the last box, up to the end of the file
        }
        if (box < 8) break;  // not a box header: leave the diagnosis to FFmpeg
        if (!memcmp(type, "moov", 4)) moov = true;
        if (box > size - pos) {
            cut = true;
            break;
        }
        pos += box;
    }
    fclose(f);
    if (!bmff) return false;
    for (int k = 0; k < 4; k++)
        if (!isprint((unsigned char)type[k])) type[k] = '?';
    if (cut)
        snprintf(why, n,
                 "the file is truncated: its '%s' box at byte %lld needs %lld bytes but the "
                 "file ends after %lld",
                 type, (long long)pos, (long long)box, (long long)(size - pos));
    else if (!moov)
        snprintf(why, n,
                 "the file is truncated or was never finalised: it has no 'moov' box (the index "
                 "of its streams)");
    return cut || !moov;
}

// The error for a file FFmpeg could not open or find a video stream in: a truncated MP4 is
// said to be one (FFmpeg's own reason would be "invalid data" or "no video stream").
static et_status damaged_or(const char *path, et_status fallback) {
    char why[200];
    if (!mp4_damage(path, why, sizeof why)) return fallback;
    et_status_free(fallback);
    return et_err(ET_ERR_FORMAT, "%s: corrupt MP4/MOV video: %s", path, why);
}

// Open the container, pick the stream and (if with_decoder) open its decoder.
static et_status vopen(const char *path, const limits *lim, bool with_decoder, vctx *c) {
    memset(c, 0, sizeof(*c));
    c->path = path;
    char eb[AV_ERROR_MAX_STRING_SIZE + 64];
    size_t plen = strlen(path);
    char *url = malloc(plen + 6);
    if (!url) return et_err(ET_ERR_NOMEM, "%s: out of memory", path);
    memcpy(url, "file:", 5);
    memcpy(url + 5, path, plen + 1);  // "file:" so a ':' in the name is not a protocol
    c->fmt = avformat_alloc_context();
    if (!c->fmt) {
        free(url);
        return et_err(ET_ERR_NOMEM, "%s: out of memory", path);
    }
    AVDictionary *dict = NULL;
    av_dict_set(&dict, "protocol_whitelist", "file", 0);
    av_dict_set(&dict, "format_whitelist", k_format_whitelist, 0);
    int r = avformat_open_input(&c->fmt, url, NULL, &dict);  // frees fmt on failure
    av_dict_free(&dict);
    free(url);
    if (r < 0) {
        c->fmt = NULL;
        if (r == AVERROR_EOF)
            return damaged_or(path, et_err(ET_ERR_FORMAT,
                                           "%s: corrupt video: the file is truncated (it ends "
                                           "inside its container header)",
                                           path));
        return damaged_or(path,
                          et_err(ET_ERR_FORMAT,
                                 "%s: not a video FFmpeg can read (%s; accepted containers: "
                                 "mp4/mov, avi, mkv/webm, mpeg-ps/ts, flv, asf/wmv, ogg, nut, "
                                 "gif, mxf, ivf, y4m, raw h264/hevc/m4v/mjpeg)",
                                 path, av_errstr(r, eb, sizeof(eb))));
    }
    r = avformat_find_stream_info(c->fmt, NULL);
    if (r < 0) {
        vclose(c);
        return damaged_or(path, et_err(ET_ERR_FORMAT, "%s: cannot read the stream information (%s)",
                                       path, av_errstr(r, eb, sizeof(eb))));
    }
    c->stream = -1;
    for (unsigned i = 0; i < c->fmt->nb_streams; i++) {
        AVStream *st = c->fmt->streams[i];
        if (st->codecpar->codec_type != AVMEDIA_TYPE_VIDEO) continue;
        if (st->disposition & AV_DISPOSITION_ATTACHED_PIC) continue;
        c->stream = (int)i;
        break;
    }
    if (c->stream < 0) {
        et_status s = et_err(ET_ERR_FORMAT, "%s: no video stream (%s container, %u streams)", path,
                             c->fmt->iformat->name, c->fmt->nb_streams);
        vclose(c);
        return damaged_or(path, s);
    }
    AVStream *st = c->fmt->streams[c->stream];
    c->tb = st->time_base;
    AVRational fr = st->avg_frame_rate.num > 0 && st->avg_frame_rate.den > 0 ? st->avg_frame_rate
                                                                             : st->r_frame_rate;
    c->avg_fps = fr.num > 0 && fr.den > 0 ? av_q2d(fr) : 0.0;
    int w = st->codecpar->width, h = st->codecpar->height;
    if (w > 0 && h > 0 && (int64_t)w * h > lim->max_pixels) {
        vclose(c);
        return et_err(ET_ERR_NOMEM, "%s: video is %dx%d, more than the %lld-pixel limit", path, w,
                      h, (long long)lim->max_pixels);
    }
    c->pkt = av_packet_alloc();
    if (!c->pkt) {
        vclose(c);
        return et_err(ET_ERR_NOMEM, "%s: out of memory", path);
    }
    if (!with_decoder) return NULL;
    const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
    if (!codec) {
        et_status s = et_err(ET_ERR_UNSUPPORTED, "%s: no decoder for the video codec '%s'", path,
                             avcodec_get_name(st->codecpar->codec_id));
        vclose(c);
        return s;
    }
    c->dec = avcodec_alloc_context3(codec);
    c->frame = av_frame_alloc();
    if (!c->dec || !c->frame) {
        vclose(c);
        return et_err(ET_ERR_NOMEM, "%s: out of memory", path);
    }
    r = avcodec_parameters_to_context(c->dec, st->codecpar);
    if (r >= 0) {
        c->dec->thread_count = lim->threads;
        c->dec->pkt_timebase = st->time_base;
        c->dec->max_pixels = lim->max_pixels > INT32_MAX ? INT32_MAX : lim->max_pixels;
        r = avcodec_open2(c->dec, codec, NULL);
    }
    if (r < 0) {
        et_status s = et_err(ET_ERR_FORMAT, "%s: cannot open the %s decoder (%s)", path,
                             codec->name, av_errstr(r, eb, sizeof(eb)));
        vclose(c);
        return s;
    }
    return NULL;
}

// A growable array of int64 timestamps.
typedef struct {
    int64_t *v;
    int64_t len, cap;
    bool all_valid;
} ts_list;

static bool ts_push(ts_list *l, int64_t ts) {
    if (l->len == l->cap) {
        int64_t nc = l->cap ? l->cap * 2 : 256;
        int64_t *nv = realloc(l->v, sizeof(int64_t) * (size_t)nc);
        if (!nv) return false;
        l->v = nv;
        l->cap = nc;
    }
    if (ts == AV_NOPTS_VALUE) l->all_valid = false;
    l->v[l->len++] = ts;
    return true;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

// Seconds relative to the first (smallest) timestamp, or NULL when some are missing.
static et_status ts_to_times(const char *path, const ts_list *l, AVRational tb, bool sort,
                             double **times) {
    *times = NULL;
    if (!l->all_valid || l->len == 0 || tb.num <= 0 || tb.den <= 0) return NULL;
    double *t = malloc(sizeof(double) * (size_t)l->len);
    if (!t)
        return et_err(ET_ERR_NOMEM, "%s: out of memory for %lld timestamps", path,
                      (long long)l->len);
    if (sort) qsort(l->v, (size_t)l->len, sizeof(int64_t), cmp_i64);
    double q = av_q2d(tb);
    for (int64_t i = 0; i < l->len; i++) {
        t[i] = (double)(l->v[i] - l->v[0]) * q;
        if (i > 0 && t[i] < t[i - 1]) t[i] = t[i - 1];  // decoded order: keep monotonic
    }
    *times = t;
    return NULL;
}

// Pass 1: count the stream's packets and collect their timestamps.
static et_status scan_packets(vctx *c, const limits *lim, ts_list *ts, bool *truncated) {
    int r;
    while ((r = av_read_frame(c->fmt, c->pkt)) >= 0) {
        if (c->pkt->stream_index == c->stream && c->pkt->size > 0) {
            if (ts->len >= lim->max_source) {
                av_packet_unref(c->pkt);
                return et_err(ET_ERR_NOMEM, "%s: more than %lld frames in the video", c->path,
                              (long long)lim->max_source);
            }
            int64_t t = c->pkt->pts != AV_NOPTS_VALUE ? c->pkt->pts : c->pkt->dts;
            if (!ts_push(ts, t)) {
                av_packet_unref(c->pkt);
                return et_err(ET_ERR_NOMEM, "%s: out of memory", c->path);
            }
        }
        av_packet_unref(c->pkt);
    }
    // A demuxer error, or fewer frames than the header declares (AVI's frame count, MP4's
    // sample count): the file was cut short.
    int64_t declared = c->fmt->streams[c->stream]->nb_frames;
    *truncated = r != AVERROR_EOF || (declared > 0 && ts->len < declared);
    return NULL;
}

static et_status convert_frame(vctx *c, const AVFrame *f, et_image *img) {
    enum AVPixelFormat pf = (enum AVPixelFormat)f->format;
    c->sws = sws_getCachedContext(
        c->sws, f->width, f->height, pf, f->width, f->height, AV_PIX_FMT_RGB24,
        SWS_BILINEAR | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, NULL, NULL, NULL);
    if (!c->sws) {
        const char *name = av_get_pix_fmt_name(pf);
        return et_err(ET_ERR_UNSUPPORTED, "%s: cannot convert pixel format %s to RGB", c->path,
                      name ? name : "(unknown)");
    }
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(pf);
    if (d && !(d->flags & AV_PIX_FMT_FLAG_RGB)) {
        int cs = f->colorspace;
        if (cs <= 0 || cs == AVCOL_SPC_UNSPECIFIED || cs > AVCOL_SPC_BT2020_CL) cs = SWS_CS_DEFAULT;
        bool full = f->color_range == AVCOL_RANGE_JPEG || pf == AV_PIX_FMT_YUVJ420P ||
                    pf == AV_PIX_FMT_YUVJ422P || pf == AV_PIX_FMT_YUVJ444P ||
                    pf == AV_PIX_FMT_YUVJ440P || pf == AV_PIX_FMT_YUVJ411P;
        sws_setColorspaceDetails(c->sws, sws_getCoefficients(cs), full ? 1 : 0,
                                 sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
    }
    et_status s = et_image_alloc(f->width, f->height, img);
    if (s) return et_status_wrap(s, "%s", c->path);
    uint8_t *dst[4] = {img->data, NULL, NULL, NULL};
    int dst_ls[4] = {f->width * 3, 0, 0, 0};
    int r =
        sws_scale(c->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dst, dst_ls);
    if (r != f->height) {
        et_image_free(img);
        return et_err(ET_ERR_FORMAT, "%s: pixel conversion failed", c->path);
    }
    return NULL;
}

typedef struct {
    const int64_t *sel;
    int nsel, next;  // next selection slot to fill
    int64_t index;   // frames delivered so far
    ts_list ts;      // their timestamps
    int errors;
    et_video *out;
} decode_state;

static et_status on_frame(vctx *c, const limits *lim, decode_state *ds) {
    AVFrame *f = c->frame;
    if (f->width <= 0 || f->height <= 0 || (int64_t)f->width * f->height > lim->max_pixels)
        return et_err(ET_ERR_NOMEM, "%s: frame %lld is %dx%d, over the %lld-pixel limit", c->path,
                      (long long)ds->index, f->width, f->height, (long long)lim->max_pixels);
    if (ds->index >= lim->max_source)
        return et_err(ET_ERR_NOMEM, "%s: more than %lld frames in the video", c->path,
                      (long long)lim->max_source);
    if (!ts_push(&ds->ts, f->best_effort_timestamp))
        return et_err(ET_ERR_NOMEM, "%s: out of memory", c->path);
    while (ds->next < ds->nsel && ds->sel[ds->next] == ds->index) {
        int j = ds->next;
        if (j > 0 && ds->sel[j - 1] == ds->index)
            ET_TRY(copy_image(c->path, &ds->out->frames[j - 1], &ds->out->frames[j]));
        else
            ET_TRY(convert_frame(c, f, &ds->out->frames[j]));
        ds->next++;
    }
    ds->index++;
    return NULL;
}

static et_status drain(vctx *c, const limits *lim, decode_state *ds) {
    for (;;) {
        int r = avcodec_receive_frame(c->dec, c->frame);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return NULL;
        if (r < 0) {  // a damaged frame; go on with the next
            ds->errors++;
            return NULL;
        }
        et_status s = on_frame(c, lim, ds);
        av_frame_unref(c->frame);
        if (s) return s;
    }
}

// Pass 2: decode every frame, keeping the selected ones in ds->out->frames.
static et_status decode_pass(vctx *c, const limits *lim, decode_state *ds) {
    int r;
    while ((r = av_read_frame(c->fmt, c->pkt)) >= 0) {
        if (c->pkt->stream_index != c->stream || c->pkt->size <= 0) {
            av_packet_unref(c->pkt);
            continue;
        }
        int sr = avcodec_send_packet(c->dec, c->pkt);
        if (sr == AVERROR(EAGAIN)) {  // output pending: drain, then resend
            et_status s = drain(c, lim, ds);
            if (s) {
                av_packet_unref(c->pkt);
                return s;
            }
            sr = avcodec_send_packet(c->dec, c->pkt);
        }
        av_packet_unref(c->pkt);
        if (sr < 0 && sr != AVERROR(EAGAIN)) ds->errors++;
        ET_TRY(drain(c, lim, ds));
    }
    (void)r;                            // the scan already judged how the file ends
    avcodec_send_packet(c->dec, NULL);  // flush delayed frames
    return drain(c, lim, ds);
}

et_status et_video_load_file(const char *path, const et_video_opts *opts, et_video *out) {
    memset(out, 0, sizeof(*out));
    pthread_once(&g_av_once, av_init_once);
    et_video_opts dflt = et_video_opts_default();
    const et_video_opts *o = opts ? opts : &dflt;
    ET_TRY(check_opts(path, o));
    limits lim = get_limits(o);

    struct stat sb;
    if (stat(path, &sb) != 0) {
        int e = errno;
        return et_err(e == ENOENT ? ET_ERR_MISSING : ET_ERR_IO, "%s: cannot open video: %s", path,
                      strerror(e));
    }
    if (!S_ISREG(sb.st_mode))
        return et_err(ET_ERR_IO, "%s: cannot read video: not a regular file", path);
    if (sb.st_size == 0) return et_err(ET_ERR_FORMAT, "%s: empty file (0 bytes)", path);

    // Pass 1: count frames from the packets.
    vctx c;
    ET_TRY(vopen(path, &lim, false, &c));
    ts_list pts = {.all_valid = true};
    bool truncated = false;
    et_status s = scan_packets(&c, &lim, &pts, &truncated);
    double avg_fps = c.avg_fps;
    AVRational tb = c.tb;
    vclose(&c);
    if (!s && pts.len == 0) s = et_err(ET_ERR_FORMAT, "%s: the video stream has zero frames", path);
    double *times = NULL;
    if (!s) s = ts_to_times(path, &pts, tb, true, &times);
    int64_t n = pts.len;
    free(pts.v);
    int64_t *sel = NULL;
    int nsel = 0;
    if (!s) {
        if (!(avg_fps > 0) && times && n > 1 && times[n - 1] > 0)
            avg_fps = (double)(n - 1) / times[n - 1];
        s = select_frames(o, n, times, avg_fps, lim.max_out, &sel, &nsel);
        if (s) s = et_status_wrap(s, "%s", path);
    }
    free(times);
    times = NULL;
    if (s) return s;

    // Pass 2 (and 3 if the decoded count differs from the packet count).
    decode_state ds;
    memset(&ds, 0, sizeof(ds));
    s = alloc_out(path, nsel, out);
    for (int pass = 0; !s; pass++) {
        memset(&ds, 0, sizeof(ds));
        ds.ts.all_valid = true;
        ds.sel = sel;
        ds.nsel = nsel;
        ds.out = out;
        s = vopen(path, &lim, true, &c);
        if (s) break;
        s = decode_pass(&c, &lim, &ds);
        vclose(&c);
        if (s) break;
        if (ds.index == 0) {
            s = et_err(ET_ERR_FORMAT, "%s: none of the %lld frames decodes (%d decoder errors)",
                       path, (long long)n, ds.errors);
            break;
        }
        if (ds.index == n && ds.next == nsel) break;  // as counted
        if (pass > 0) {
            s = et_err(ET_ERR_FORMAT,
                       "%s: decoding gave %lld frames, then %lld on a second pass (of %lld "
                       "packets)",
                       path, (long long)n, (long long)ds.index, (long long)pts.len);
            break;
        }
        // Recompute the selection over the frames that decoded and decode again.
        s = ts_to_times(path, &ds.ts, tb, false, &times);
        if (s) break;
        int64_t *sel2 = NULL;
        int nsel2 = 0;
        s = select_frames(o, ds.index, times, avg_fps, lim.max_out, &sel2, &nsel2);
        free(times);
        times = NULL;
        if (s) {
            s = et_status_wrap(s, "%s", path);
            break;
        }
        n = ds.index;
        free(ds.ts.v);
        ds.ts.v = NULL;
        et_video_free(out);
        free(sel);
        sel = sel2;
        nsel = nsel2;
        s = alloc_out(path, nsel, out);
    }
    if (!s) s = ts_to_times(path, &ds.ts, tb, false, &times);
    if (!s) {
        for (int j = 0; j < nsel; j++) {
            out->indices[j] = sel[j];
            out->times[j] = times ? times[sel[j]] : (avg_fps > 0 ? (double)sel[j] / avg_fps : 0);
        }
        out->source_frames = n;
        out->avg_fps = avg_fps;
        out->duration_s = times ? times[n - 1] : (avg_fps > 0 ? (double)(n - 1) / avg_fps : 0);
        out->width = out->frames[0].width;
        out->height = out->frames[0].height;
        out->truncated = truncated;
        out->decode_errors = ds.errors;
    }
    free(times);
    free(ds.ts.v);
    free(sel);
    if (s) et_video_free(out);
    return s;
}

et_status et_video_load(const char *path, const et_video_opts *opts, et_video *out) {
    memset(out, 0, sizeof(*out));
    struct stat sb;
    if (stat(path, &sb) != 0) {
        int e = errno;
        return et_err(e == ENOENT ? ET_ERR_MISSING : ET_ERR_IO, "%s: cannot open video: %s", path,
                      strerror(e));
    }
    if (S_ISDIR(sb.st_mode)) return et_video_load_dir(path, opts, out);
    return et_video_load_file(path, opts, out);
}
