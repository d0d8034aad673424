// tests/test_video.c - video decoding and frame sampling (data/video.h).
//
// Test clips are encoded here with libavcodec (mpeg4 with B-frames in AVI, mjpeg in AVI,
// ffv1 in Matroska with variable frame timing) into a temporary directory. Frame i is a
// solid colour that encodes i, so the frame a sample came from can be read back from its
// pixels after lossy coding.
#include <ftw.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
#include <stdbool.h>
#include <unistd.h>

#include "../data/image_write.h"
#include "../data/video.h"
#include "test_util.h"

static char g_dir[256];

static void path_in(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", g_dir, name);
}

// The colour of frame i (i < 60): far apart in R and G so mpeg4 noise cannot confuse two.
static void frame_colour(int i, uint8_t rgb[3]) {
    rgb[0] = (uint8_t)(10 + 4 * i);
    rgb[1] = (uint8_t)(245 - 4 * i);
    rgb[2] = (uint8_t)(i % 2 ? 60 : 190);
}

// The index whose colour is nearest to the mean colour of img; *dist gets the distance.
static int frame_index_of(const et_image *img, double *dist) {
    double m[3] = {0, 0, 0};
    int64_t np = (int64_t)img->width * img->height;
    for (int64_t p = 0; p < np; p++)
        for (int c = 0; c < 3; c++) m[c] += img->data[p * 3 + c];
    for (int c = 0; c < 3; c++) m[c] /= (double)np;
    int best = -1;
    double bd = 1e30;
    for (int i = 0; i < 60; i++) {
        uint8_t rgb[3];
        frame_colour(i, rgb);
        double d = fmax(fabs(m[0] - rgb[0]), fmax(fabs(m[1] - rgb[1]), fabs(m[2] - rgb[2])));
        if (d < bd) {
            bd = d;
            best = i;
        }
    }
    if (dist) *dist = bd;
    return best;
}

// Encode n solid-colour frames into path. pts_ms: per-frame timestamps in milliseconds
// (time base 1/1000), or NULL for a constant rate of fps.
static bool write_video(const char *path, const char *format, enum AVCodecID id, int n, int w,
                        int h, int fps, const int64_t *pts_ms, int max_b_frames) {
    AVFormatContext *oc = NULL;
    if (avformat_alloc_output_context2(&oc, NULL, format, path) < 0) return false;
    const AVCodec *codec = avcodec_find_encoder(id);
    AVStream *st = avformat_new_stream(oc, NULL);
    AVCodecContext *enc = avcodec_alloc_context3(codec);
    bool ok = codec && st && enc;
    if (ok) {
        enc->width = w;
        enc->height = h;
        enc->time_base = pts_ms ? (AVRational){1, 1000} : (AVRational){1, fps};
        enc->framerate = (AVRational){fps, 1};
        enc->pix_fmt = id == AV_CODEC_ID_MJPEG ? AV_PIX_FMT_YUVJ420P : AV_PIX_FMT_YUV420P;
        enc->gop_size = 10;
        enc->max_b_frames = max_b_frames;
        enc->flags |= AV_CODEC_FLAG_QSCALE;
        enc->global_quality = FF_QP2LAMBDA * 2;
        if (oc->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
        ok = avcodec_open2(enc, codec, NULL) >= 0;
    }
    if (ok) {
        ok = avcodec_parameters_from_context(st->codecpar, enc) >= 0;
        st->time_base = enc->time_base;
    }
    if (ok) ok = avio_open(&oc->pb, path, AVIO_FLAG_WRITE) >= 0;
    if (ok) ok = avformat_write_header(oc, NULL) >= 0;
    AVFrame *fr = av_frame_alloc();
    AVPacket *pkt = av_packet_alloc();
    struct SwsContext *sws =
        sws_getContext(w, h, AV_PIX_FMT_RGB24, w, h, enc->pix_fmt, SWS_BILINEAR, NULL, NULL, NULL);
    uint8_t *rgb = malloc((size_t)w * h * 3);
    if (ok) {
        fr->format = enc->pix_fmt;
        fr->width = w;
        fr->height = h;
        ok = av_frame_get_buffer(fr, 0) >= 0 && sws && rgb;
    }
    for (int i = 0; ok && i <= n; i++) {
        if (i < n) {
            uint8_t c[3];
            frame_colour(i, c);
            for (int p = 0; p < w * h; p++) memcpy(rgb + p * 3, c, 3);
            ok = av_frame_make_writable(fr) >= 0;
            const uint8_t *src[1] = {rgb};
            int src_ls[1] = {w * 3};
            sws_scale(sws, src, src_ls, 0, h, fr->data, fr->linesize);
            fr->pts = pts_ms ? pts_ms[i] : i;
            fr->quality = enc->global_quality;
            ok = ok && avcodec_send_frame(enc, fr) >= 0;
        } else {
            avcodec_send_frame(enc, NULL);
        }
        while (ok) {
            int r = avcodec_receive_packet(enc, pkt);
            if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) break;
            if (r < 0) {
                ok = false;
                break;
            }
            // The mp4 muxer ends the edit list at the last frame's start unless the packet
            // says how long it lasts (the mov demuxer would then drop that frame).
            if (pkt->duration <= 0 && !pts_ms) pkt->duration = 1;
            av_packet_rescale_ts(pkt, enc->time_base, st->time_base);
            pkt->stream_index = st->index;
            ok = av_interleaved_write_frame(oc, pkt) >= 0;
        }
    }
    if (ok) ok = av_write_trailer(oc) >= 0;
    free(rgb);
    sws_freeContext(sws);
    av_packet_free(&pkt);
    av_frame_free(&fr);
    avcodec_free_context(&enc);
    if (oc->pb) avio_closep(&oc->pb);
    avformat_free_context(oc);
    return ok;
}

// A Matroska file with one PCM audio stream and no video.
static bool write_audio_only(const char *path) {
    AVFormatContext *oc = NULL;
    if (avformat_alloc_output_context2(&oc, NULL, "matroska", path) < 0) return false;
    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_PCM_S16LE);
    AVStream *st = avformat_new_stream(oc, NULL);
    AVCodecContext *enc = avcodec_alloc_context3(codec);
    bool ok = codec && st && enc;
    if (ok) {
        enc->sample_fmt = AV_SAMPLE_FMT_S16;
        enc->sample_rate = 8000;
        av_channel_layout_default(&enc->ch_layout, 1);
        enc->time_base = (AVRational){1, 8000};
        ok = avcodec_open2(enc, codec, NULL) >= 0;
    }
    if (ok) ok = avcodec_parameters_from_context(st->codecpar, enc) >= 0;
    if (ok) {
        st->time_base = enc->time_base;
        ok = avio_open(&oc->pb, path, AVIO_FLAG_WRITE) >= 0;
    }
    if (ok) ok = avformat_write_header(oc, NULL) >= 0;
    AVFrame *fr = av_frame_alloc();
    AVPacket *pkt = av_packet_alloc();
    for (int i = 0; ok && i < 4; i++) {
        fr->format = AV_SAMPLE_FMT_S16;
        fr->nb_samples = 800;
        fr->sample_rate = 8000;
        av_channel_layout_default(&fr->ch_layout, 1);
        ok = av_frame_get_buffer(fr, 0) >= 0;
        if (!ok) break;
        memset(fr->data[0], 0, 1600);
        fr->pts = i * 800;
        ok = avcodec_send_frame(enc, fr) >= 0;
        av_frame_unref(fr);
        while (ok && avcodec_receive_packet(enc, pkt) >= 0) {
            av_packet_rescale_ts(pkt, enc->time_base, st->time_base);
            pkt->stream_index = 0;
            ok = av_interleaved_write_frame(oc, pkt) >= 0;
        }
    }
    if (ok) ok = av_write_trailer(oc) >= 0;
    av_packet_free(&pkt);
    av_frame_free(&fr);
    avcodec_free_context(&enc);
    if (oc->pb) avio_closep(&oc->pb);
    avformat_free_context(oc);
    return ok;
}

static bool write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static uint8_t *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return b;
}

static bool has_encoder(enum AVCodecID id) { return avcodec_find_encoder(id) != NULL; }

// Every returned frame shows the source frame its index says, within tol levels.
static void check_frames_match(const et_video *v, double tol, const char *what) {
    for (int j = 0; j < v->n_frames; j++) {
        double d = 0;
        int got = frame_index_of(&v->frames[j], &d);
        CHECK(got == v->indices[j] && d <= tol,
              "%s: frame %d should be source %lld, looks like %d "
              "(colour distance %.1f)",
              what, j, (long long)v->indices[j], got, d);
    }
}

static void check_indices(const et_video *v, const int64_t *want, int n, const char *what) {
    CHECK(v->n_frames == n, "%s: %d frames, want %d", what, v->n_frames, n);
    for (int j = 0; j < n && j < v->n_frames; j++)
        CHECK(v->indices[j] == want[j], "%s: index %d = %lld, want %lld", what, j,
              (long long)v->indices[j], (long long)want[j]);
}

// ---- pure sampling rules -----------------------------------------------------------------

static void check_uniform(int64_t n, int t, const int64_t *want) {
    int64_t *idx = NULL;
    int k = 0;
    et_status s = et_video_uniform_indices(n, t, &idx, &k);
    CHECK(!s, "%s", et_status_msg(s));
    CHECK(k == t, "n=%lld t=%d: %d indices", (long long)n, t, k);
    for (int i = 0; i < k && i < t; i++)
        CHECK(idx[i] == want[i], "linspace(0, %lld, %d)[%d] = %lld, numpy says %lld",
              (long long)(n - 1), t, i, (long long)idx[i], (long long)want[i]);
    free(idx);
    et_status_free(s);
}

static void test_uniform_indices_match_numpy(void) {
    // np.linspace(0, n - 1, t, dtype=int).tolist() with numpy 2.x
    check_uniform(30, 8, (int64_t[]){0, 4, 8, 12, 16, 20, 24, 29});
    check_uniform(100, 7, (int64_t[]){0, 16, 33, 49, 66, 82, 99});
    check_uniform(3, 8, (int64_t[]){0, 0, 0, 0, 1, 1, 1, 2});
    check_uniform(1, 4, (int64_t[]){0, 0, 0, 0});
    check_uniform(2, 1, (int64_t[]){0});
    check_uniform(7, 3, (int64_t[]){0, 3, 6});
    check_uniform(
        1001, 16,
        (int64_t[]){0, 66, 133, 200, 266, 333, 400, 466, 533, 600, 666, 733, 800, 866, 933, 1000});
    // Float truncation: (i * 26) / 46 is 13 exactly at i = 23, but numpy's 23 * (26 / 46)
    // is 12.999999999999998 and truncates to 12.
    int64_t *idx = NULL;
    int k = 0;
    et_status s = et_video_uniform_indices(27, 47, &idx, &k);
    CHECK(!s && k == 47 && idx[23] == 12 && idx[22] == 12 && idx[24] == 13 && idx[46] == 26,
          "linspace(0, 26, 47) should follow numpy's float truncation (idx[23] = %lld)",
          idx ? (long long)idx[23] : -1LL);
    free(idx);
    s = et_video_uniform_indices(30, 0, &idx, &k);
    CHECK(s && et_status_code(s) == ET_ERR_INVALID, "T = 0 must be rejected");
    et_status_free(s);
    s = et_video_uniform_indices(0, 4, &idx, &k);
    CHECK(s && et_status_code(s) == ET_ERR_INVALID, "zero frames must be rejected");
    et_status_free(s);
}

static void check_fps(int64_t n, const double *times, double avg, double fps, int max_frames,
                      const int64_t *want, int nwant, bool llava) {
    int64_t *idx = NULL;
    int k = 0;
    et_status s = llava ? et_video_fps_llava_indices(n, avg, fps, max_frames, 0, &idx, &k)
                        : et_video_fps_indices(n, times, avg, fps, max_frames, 0, &idx, &k);
    CHECK(!s, "%s", et_status_msg(s));
    CHECK(k == nwant, "n=%lld avg=%g fps=%g%s: %d frames, want %d", (long long)n, avg, fps,
          llava ? " (llava)" : "", k, nwant);
    for (int i = 0; i < k && i < nwant; i++)
        CHECK(idx[i] == want[i], "n=%lld avg=%g fps=%g%s: [%d] = %lld, want %lld", (long long)n,
              avg, fps, llava ? " (llava)" : "", i, (long long)idx[i], (long long)want[i]);
    free(idx);
    et_status_free(s);
}

static void test_fps_indices(void) {
    // 30 fps, 1 fps sampling: both rules take every 30th frame.
    check_fps(95, NULL, 30, 1, 0, (int64_t[]){0, 30, 60, 90}, 4, false);
    check_fps(95, NULL, 30, 1, 0, (int64_t[]){0, 30, 60, 90}, 4, true);
    // NTSC 29.97: by timestamp the frame on screen at 1 s is 29 (30 starts at 1.001 s);
    // LLaVA's step is round(29.97) = 30.
    double t[100];
    for (int i = 0; i < 100; i++) t[i] = i * 1001.0 / 30000.0;
    check_fps(100, t, 30000.0 / 1001, 1, 0, (int64_t[]){0, 29, 59, 89}, 4, false);
    check_fps(100, NULL, 30000.0 / 1001, 1, 0, (int64_t[]){0, 30, 60, 90}, 4, true);
    // fps above the video's rate: every frame once.
    check_fps(5, NULL, 30, 60, 0, (int64_t[]){0, 1, 2, 3, 4}, 5, false);
    check_fps(5, NULL, 30, 60, 0, (int64_t[]){0, 1, 2, 3, 4}, 5, true);
    // Python round() is half to even: 25 / 10 = 2.5 -> 2, 35 / 10 = 3.5 -> 4.
    check_fps(7, NULL, 25, 10, 0, (int64_t[]){0, 2, 4, 6}, 4, true);
    check_fps(9, NULL, 35, 10, 0, (int64_t[]){0, 4, 8}, 3, true);
    // frames_upbound: 20 selected > 8 -> np.linspace(0, 299, 8, dtype=int).
    int64_t cap[8] = {0, 42, 85, 128, 170, 213, 256, 299};
    check_fps(300, NULL, 30, 2, 8, cap, 8, false);
    check_fps(300, NULL, 30, 2, 8, cap, 8, true);
    // Variable frame rate (seconds): targets 0, .5, 1, 1.5, 2, 2.5.
    double vfr[8] = {0, 0.1, 0.15, 0.7, 1.0, 1.05, 2.1, 2.5};
    check_fps(8, vfr, 0, 2, 0, (int64_t[]){0, 2, 4, 5, 7}, 5, false);
    // Limits and bad arguments.
    int64_t *idx = NULL;
    int k = 0;
    et_status s = et_video_fps_indices(100000, NULL, 30, 30, 0, 10, &idx, &k);
    CHECK(s && et_status_code(s) == ET_ERR_NOMEM, "more than max_out frames must fail");
    et_status_free(s);
    s = et_video_fps_indices(10, NULL, 0, 1, 0, 0, &idx, &k);
    CHECK(s && et_status_code(s) == ET_ERR_FORMAT, "no timestamps and no rate must fail");
    et_status_free(s);
    s = et_video_fps_llava_indices(10, 30, 0, 0, 0, &idx, &k);
    CHECK(s && et_status_code(s) == ET_ERR_INVALID, "fps 0 must fail");
    et_status_free(s);
}

// ---- encoded clips -----------------------------------------------------------------------

static void test_mpeg4_avi_uniform_and_fps(void) {
    if (!has_encoder(AV_CODEC_ID_MPEG4)) {
        printf("  (no mpeg4 encoder; skipped)\n");
        return;
    }
    char path[512];
    path_in(path, sizeof(path), "clip:mpeg4.avi");  // ':' must not be taken for a protocol
    CHECK(write_video(path, "avi", AV_CODEC_ID_MPEG4, 30, 64, 48, 25, NULL, 2), "encoding %s",
          path);
    et_video_opts o = et_video_opts_default();
    et_video v;
    et_status s = et_video_load(path, &o, &v);
    CHECK(!s, "%s", et_status_msg(s));
    if (!s) {
        check_indices(&v, (int64_t[]){0, 4, 8, 12, 16, 20, 24, 29}, 8, "mpeg4 uniform 8");
        check_frames_match(&v, 6, "mpeg4 uniform 8");
        CHECK(v.source_frames == 30, "source_frames %lld", (long long)v.source_frames);
        CHECK(v.width == 64 && v.height == 48, "size %dx%d", v.width, v.height);
        CHECK_CLOSE(v.avg_fps, 25.0, 1e-9);
        CHECK_CLOSE(v.times[7], 29 / 25.0, 1e-9);
        CHECK_CLOSE(v.duration_s, 29 / 25.0, 1e-9);
        CHECK(!v.truncated && v.decode_errors == 0, "clean file flagged damaged");
    }
    et_video_free(&v);
    et_status_free(s);

    o.sampling = ET_VIDEO_FPS;
    o.fps = 5;
    s = et_video_load_file(path, &o, &v);
    CHECK(!s, "%s", et_status_msg(s));
    if (!s) {
        check_indices(&v, (int64_t[]){0, 5, 10, 15, 20, 25}, 6, "mpeg4 fps 5");
        check_frames_match(&v, 6, "mpeg4 fps 5");
    }
    et_video_free(&v);
    et_status_free(s);

    o.sampling = ET_VIDEO_FPS_LLAVA;
    o.fps = 2;
    o.max_frames = 0;
    s = et_video_load_file(path, &o, &v);
    CHECK(!s, "%s", et_status_msg(s));
    if (!s) {
        check_indices(&v, (int64_t[]){0, 12, 24}, 3, "mpeg4 llava fps 2");  // round(12.5) = 12
        check_frames_match(&v, 6, "mpeg4 llava fps 2");
    }
    et_video_free(&v);
    et_status_free(s);

    // More frames than the clip: repeats, as numpy's linspace.
    o = et_video_opts_default();
    o.num_frames = 40;
    s = et_video_load_file(path, &o, &v);
    CHECK(!s && v.n_frames == 40, "%s", et_status_msg(s));
    if (!s) {
        CHECK(v.indices[0] == 0 && v.indices[1] == 0 && v.indices[39] == 29, "repeat indices");
        check_frames_match(&v, 6, "mpeg4 uniform 40");
    }
    et_video_free(&v);
    et_status_free(s);

    // Limits.
    o = et_video_opts_default();
    o.max_pixels = 1000;
    s = et_video_load_file(path, &o, &v);
    CHECK(s && et_status_code(s) == ET_ERR_NOMEM && strstr(et_status_msg(s), path),
          "pixel limit: %s", et_status_msg(s));
    et_status_free(s);
    o = et_video_opts_default();
    o.max_out_frames = 4;
    s = et_video_load_file(path, &o, &v);
    CHECK(s && et_status_code(s) == ET_ERR_NOMEM, "output frame limit: %s", et_status_msg(s));
    et_status_free(s);
    o = et_video_opts_default();
    o.max_source_frames = 10;
    s = et_video_load_file(path, &o, &v);
    CHECK(s && et_status_code(s) == ET_ERR_NOMEM, "source frame limit: %s", et_status_msg(s));
    et_status_free(s);
    o = et_video_opts_default();
    o.num_frames = 0;
    s = et_video_load_file(path, &o, &v);
    CHECK(s && et_status_code(s) == ET_ERR_INVALID, "num_frames 0: %s", et_status_msg(s));
    et_status_free(s);
}

static void test_other_codecs(void) {
    struct {
        const char *name, *format;
        enum AVCodecID id;
        double tol;
    } cases[] = {
        {"mjpeg.avi", "avi", AV_CODEC_ID_MJPEG, 6},
        {"ffv1.mkv", "matroska", AV_CODEC_ID_FFV1, 3},
        {"mpeg4.mp4", "mp4", AV_CODEC_ID_MPEG4, 6},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        if (!has_encoder(cases[c].id)) {
            printf("  (no %s encoder; skipped)\n", cases[c].name);
            continue;
        }
        char path[512];
        path_in(path, sizeof(path), cases[c].name);
        CHECK(write_video(path, cases[c].format, cases[c].id, 30, 64, 48, 25, NULL, 0),
              "encoding %s", path);
        et_video_opts o = et_video_opts_default();
        et_video v;
        et_status s = et_video_load(path, &o, &v);
        CHECK(!s, "%s", et_status_msg(s));
        if (!s) {
            check_indices(&v, (int64_t[]){0, 4, 8, 12, 16, 20, 24, 29}, 8, cases[c].name);
            check_frames_match(&v, cases[c].tol, cases[c].name);
            CHECK(v.source_frames == 30, "%s: source_frames %lld", cases[c].name,
                  (long long)v.source_frames);
        }
        et_video_free(&v);
        et_status_free(s);
    }
}

static void test_variable_frame_rate(void) {
    if (!has_encoder(AV_CODEC_ID_FFV1)) return;
    char path[512];
    path_in(path, sizeof(path), "vfr.mkv");
    int64_t pts[8] = {0, 100, 150, 700, 1000, 1050, 2100, 2500};
    CHECK(write_video(path, "matroska", AV_CODEC_ID_FFV1, 8, 32, 32, 10, pts, 0), "encoding");
    et_video_opts o = et_video_opts_default();
    o.sampling = ET_VIDEO_FPS;
    o.fps = 2;
    et_video v;
    et_status s = et_video_load(path, &o, &v);
    CHECK(!s, "%s", et_status_msg(s));
    if (!s) {
        check_indices(&v, (int64_t[]){0, 2, 4, 5, 7}, 5, "vfr fps 2");
        check_frames_match(&v, 3, "vfr fps 2");
        double want_t[5] = {0, 0.15, 1.0, 1.05, 2.5};
        for (int j = 0; j < 5 && j < v.n_frames; j++) CHECK_CLOSE(v.times[j], want_t[j], 1e-9);
        CHECK_CLOSE(v.duration_s, 2.5, 1e-9);
    }
    et_video_free(&v);
    et_status_free(s);
}

static void test_frame_directory(void) {
    char dir[512], path[600];
    path_in(dir, sizeof(dir), "frames");
    CHECK(mkdir(dir, 0700) == 0, "mkdir %s", dir);
    for (int i = 0; i < 30; i++) {
        et_image img;
        et_status s = et_image_alloc(16, 12, &img);
        CHECK(!s, "%s", et_status_msg(s));
        uint8_t c[3];
        frame_colour(i, c);
        for (int p = 0; p < 16 * 12; p++) memcpy(img.data + p * 3, c, 3);
        snprintf(path, sizeof(path), "%s/f%d.png", dir, i + 1);  // f1 .. f30: natural order
        s = et_image_write_png(path, &img);
        CHECK(!s, "%s", et_status_msg(s));
        et_image_free(&img);
    }
    snprintf(path, sizeof(path), "%s/notes.txt", dir);
    CHECK(write_bytes(path, "not a frame", 11), "write");
    snprintf(path, sizeof(path), "%s/.hidden.png", dir);
    CHECK(write_bytes(path, "junk", 4), "write");  // hidden: ignored, never decoded

    et_video_opts o = et_video_opts_default();
    et_video v;
    et_status s = et_video_load(dir, &o, &v);
    CHECK(!s, "%s", et_status_msg(s));
    if (!s) {
        check_indices(&v, (int64_t[]){0, 4, 8, 12, 16, 20, 24, 29}, 8, "dir uniform 8");
        check_frames_match(&v, 0, "dir uniform 8");
        CHECK(v.source_frames == 30 && v.width == 16 && v.height == 12, "dir info");
    }
    et_video_free(&v);
    et_status_free(s);

    o.sampling = ET_VIDEO_FPS;
    o.fps = 2;
    o.dir_fps = 10;
    s = et_video_load_dir(dir, &o, &v);
    CHECK(!s, "%s", et_status_msg(s));
    if (!s) {
        check_indices(&v, (int64_t[]){0, 5, 10, 15, 20, 25}, 6, "dir fps 2 of 10");
        check_frames_match(&v, 0, "dir fps 2 of 10");
        CHECK_CLOSE(v.times[1], 0.5, 1e-12);
        CHECK_CLOSE(v.avg_fps, 10, 1e-12);
    }
    et_video_free(&v);
    et_status_free(s);

    // Default dir_fps is 1 frame per second.
    o.dir_fps = 0;
    o.fps = 0.25;
    s = et_video_load_dir(dir, &o, &v);
    CHECK(!s, "%s", et_status_msg(s));
    if (!s) check_indices(&v, (int64_t[]){0, 4, 8, 12, 16, 20, 24, 28}, 8, "dir fps 0.25 of 1");
    et_video_free(&v);
    et_status_free(s);

    // A broken frame image is an error naming it.
    snprintf(path, sizeof(path), "%s/f31.png", dir);
    CHECK(write_bytes(path, "\x89PNG\r\n\x1a\nxx", 10), "write");
    o = et_video_opts_default();
    s = et_video_load_dir(dir, &o, &v);
    CHECK(s && strstr(et_status_msg(s), "f31.png"), "broken frame: %s", et_status_msg(s));
    et_status_free(s);
}

static void test_natural_order(void) {
    char dir[512], path[600];
    path_in(dir, sizeof(dir), "names");
    CHECK(mkdir(dir, 0700) == 0, "mkdir");
    const char *files[] = {"img10.jpg", "img2.PNG", "img1.jpeg", "img002.png", "a.png",
                           "img1b.png", "img.png",  "x.gif",     "img20.jpg"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        CHECK(write_bytes(path, "x", 1), "write");
    }
    const char *want[] = {"a.png",    "img.png",    "img1.jpeg", "img1b.png",
                          "img2.PNG", "img002.png", "img10.jpg", "img20.jpg"};
    char **names = NULL;
    int64_t n = 0;
    et_status s = et_video_list_dir(dir, 0, &names, &n);
    CHECK(!s && n == 8, "%s, n = %lld", et_status_msg(s), (long long)n);
    for (int64_t i = 0; !s && i < n && i < 8; i++)
        CHECK(strcmp(names[i], want[i]) == 0, "[%lld] = %s, want %s", (long long)i, names[i],
              want[i]);
    for (int64_t i = 0; i < n; i++) free(names[i]);
    free(names);
    s = et_video_list_dir(dir, 3, &names, &n);
    CHECK(s && et_status_code(s) == ET_ERR_NOMEM, "file limit");
    et_status_free(s);
}

static void test_truncated_file(void) {
    if (!has_encoder(AV_CODEC_ID_MPEG4)) return;
    char full[512], cut[512], tiny[512];
    path_in(full, sizeof(full), "whole.avi");
    path_in(cut, sizeof(cut), "cut.avi");
    path_in(tiny, sizeof(tiny), "tiny.avi");
    CHECK(write_video(full, "avi", AV_CODEC_ID_MPEG4, 30, 64, 48, 25, NULL, 2), "encoding");
    size_t n = 0;
    uint8_t *b = read_bytes(full, &n);
    CHECK(b && n > 2000, "read back %zu bytes", n);
    if (!b) return;
    // The AVI index is at the end; cut in the middle of the frame data.
    CHECK(write_bytes(cut, b, n * 6 / 10), "write");
    et_video_opts o = et_video_opts_default();
    o.num_frames = 4;
    et_video v;
    et_status s = et_video_load(cut, &o, &v);
    CHECK(!s, "truncated file should give the frames it has: %s", et_status_msg(s));
    if (!s) {
        CHECK(v.truncated, "a cut AVI (fewer frames than its header says) is flagged");
        CHECK(v.source_frames > 4 && v.source_frames < 30, "source_frames %lld",
              (long long)v.source_frames);
        CHECK(v.indices[3] == v.source_frames - 1, "last index %lld of %lld",
              (long long)v.indices[3], (long long)v.source_frames);
        // With B-frames, a cut can leave a P-frame whose preceding B-frames are gone, so
        // the decodable frames are not all consecutive: the index counts decodable frames
        // (as decord's would) and may run behind the frame's place in the whole clip.
        int prev = -1;
        for (int j = 0; j < v.n_frames; j++) {
            double d = 0;
            int got = frame_index_of(&v.frames[j], &d);
            CHECK(d <= 8 && got >= v.indices[j] && got <= v.indices[j] + 2 && got > prev,
                  "truncated: frame %d (index %lld) looks like source %d (distance %.1f)", j,
                  (long long)v.indices[j], got, d);
            prev = got;
        }
    }
    et_video_free(&v);
    et_status_free(s);
    // Only the headers: no frame at all.
    CHECK(write_bytes(tiny, b, 600), "write");
    s = et_video_load(tiny, &o, &v);
    CHECK(s && et_status_code(s) == ET_ERR_FORMAT && strstr(et_status_msg(s), tiny),
          "header-only file: %s", et_status_msg(s));
    et_status_free(s);
    free(b);
}

// A cut-off MP4 (moov, the index, is written last) says it is truncated, naming the file and
// the box, instead of "invalid data" or "no video stream" (issue 12).
static void test_truncated_mp4(void) {
    if (!has_encoder(AV_CODEC_ID_MPEG4)) return;
    char full[512], cut[512];
    path_in(full, sizeof(full), "whole.mp4");
    path_in(cut, sizeof(cut), "cut.mp4");
    CHECK(write_video(full, "mp4", AV_CODEC_ID_MPEG4, 20, 32, 32, 25, NULL, 0), "encoding");
    size_t n = 0;
    uint8_t *b = read_bytes(full, &n);
    CHECK(b && n > 1000, "read back %zu bytes", n);
    if (!b) return;
    size_t moov = 0;  // offset of the top-level moov box
    for (size_t i = 4; i + 4 < n && !moov; i++)
        if (!memcmp(b + i, "moov", 4)) moov = i - 4;
    CHECK(moov > 0, "no moov box in the encoded mp4");
    et_video_opts o = et_video_opts_default();
    o.num_frames = 4;
    et_video v;
    struct {
        size_t len;
        const char *want;
    } cuts[] = {
        {moov / 2, "corrupt MP4/MOV video: the file is truncated: its 'mdat' box at byte"},
        {moov,
         "corrupt MP4/MOV video: the file is truncated or was never finalised: it has no "
         "'moov' box"},
        {moov + 40, "corrupt MP4/MOV video: the file is truncated: its 'moov' box at byte"},
        {moov + (n - moov) / 2, "corrupt MP4/MOV video: the file is truncated: its 'moov' box"},
    };
    for (size_t k = 0; moov && k < sizeof cuts / sizeof *cuts; k++) {
        CHECK(write_bytes(cut, b, cuts[k].len), "write");
        et_status s = et_video_load(cut, &o, &v);
        char want[700];
        snprintf(want, sizeof want, "%s: %s", cut, cuts[k].want);
        CHECK(s && et_status_code(s) == ET_ERR_FORMAT && strstr(et_status_msg(s), want),
              "cut at %zu of %zu: got '%s', want '%s'", cuts[k].len, n, et_status_msg(s), want);
        if (!s) et_video_free(&v);
        et_status_free(s);
    }
    free(b);
    // the whole file still loads
    et_status s = et_video_load(full, &o, &v);
    CHECK(!s && v.n_frames == 4, "%s", et_status_msg(s));
    if (!s) et_video_free(&v);
    et_status_free(s);
}

// A packet that does not decode: the frame count and the selection follow what decodes.
static void test_damaged_packet(void) {
    if (!has_encoder(AV_CODEC_ID_MJPEG)) return;
    char path[512];
    path_in(path, sizeof(path), "damaged.avi");
    CHECK(write_video(path, "avi", AV_CODEC_ID_MJPEG, 30, 64, 48, 25, NULL, 0), "encoding");
    size_t n = 0;
    uint8_t *b = read_bytes(path, &n);
    if (!b) return;
    size_t soi[31];
    int ns = 0;
    for (size_t i = 0; i + 2 < n && ns < 31; i++)
        if (b[i] == 0xFF && b[i + 1] == 0xD8 && b[i + 2] == 0xFF) soi[ns++] = i;
    CHECK(ns == 30, "found %d JPEG frames in the AVI", ns);
    if (ns == 30) {
        memset(b + soi[10], 0, soi[11] - 16 - soi[10]);  // wipe frame 10's JPEG data
        CHECK(write_bytes(path, b, n), "write");
    }
    free(b);
    et_video_opts o = et_video_opts_default();
    o.num_frames = 29;
    et_video v;
    et_status s = et_video_load(path, &o, &v);
    CHECK(!s, "%s", et_status_msg(s));
    if (!s) {
        CHECK(v.source_frames == 29 && v.decode_errors == 1, "source_frames %lld, errors %d",
              (long long)v.source_frames, v.decode_errors);
        for (int j = 0; j < v.n_frames; j++) {
            int got = frame_index_of(&v.frames[j], NULL);
            int want = j < 10 ? j : j + 1;
            CHECK(v.indices[j] == j && got == want, "frame %d looks like %d, want %d", j, got,
                  want);
        }
        CHECK_CLOSE(v.times[10], 11 / 25.0, 1e-9);
    }
    et_video_free(&v);
    et_status_free(s);
    // By timestamp: nothing starts at 0.4 s, so the frame on screen then is source 9.
    o.sampling = ET_VIDEO_FPS;
    o.fps = 5;
    s = et_video_load(path, &o, &v);
    CHECK(!s, "%s", et_status_msg(s));
    if (!s) {
        int want[6] = {0, 5, 9, 15, 20, 25};
        CHECK(v.n_frames == 6, "%d frames", v.n_frames);
        for (int j = 0; j < 6 && j < v.n_frames; j++) {
            int got = frame_index_of(&v.frames[j], NULL);
            CHECK(got == want[j], "fps frame %d looks like %d, want %d", j, got, want[j]);
        }
    }
    et_video_free(&v);
    et_status_free(s);
}

static void test_bad_files(void) {
    char path[512];
    et_video v;
    et_video_opts o = et_video_opts_default();

    path_in(path, sizeof(path), "missing.mp4");
    et_status s = et_video_load(path, &o, &v);
    CHECK(s && et_status_code(s) == ET_ERR_MISSING && strstr(et_status_msg(s), path), "missing: %s",
          et_status_msg(s));
    et_status_free(s);
    s = et_video_load_file(path, &o, &v);
    CHECK(s && et_status_code(s) == ET_ERR_MISSING, "missing (file): %s", et_status_msg(s));
    et_status_free(s);

    path_in(path, sizeof(path), "empty.mp4");
    CHECK(write_bytes(path, "", 0), "write");
    s = et_video_load(path, &o, &v);
    CHECK(s && et_status_code(s) == ET_ERR_FORMAT && strstr(et_status_msg(s), "empty"), "empty: %s",
          et_status_msg(s));
    et_status_free(s);

    path_in(path, sizeof(path), "random.mp4");
    uint8_t junk[4096];
    uint64_t x = 0x1234567887654321ull;
    for (size_t i = 0; i < sizeof(junk); i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        junk[i] = (uint8_t)(x >> 32);
    }
    CHECK(write_bytes(path, junk, sizeof(junk)), "write");
    s = et_video_load(path, &o, &v);
    CHECK(s && et_status_code(s) == ET_ERR_FORMAT && strstr(et_status_msg(s), path),
          "random bytes: %s", et_status_msg(s));
    et_status_free(s);

    path_in(path, sizeof(path), "text.avi");
    const char *txt = "this is a text file, not a video\n";
    CHECK(write_bytes(path, txt, strlen(txt)), "write");
    s = et_video_load(path, &o, &v);
    CHECK(s && et_status_code(s) == ET_ERR_FORMAT, "text: %s", et_status_msg(s));
    et_status_free(s);

    path_in(path, sizeof(path), "audio.mkv");
    if (write_audio_only(path)) {
        s = et_video_load(path, &o, &v);
        CHECK(s && et_status_code(s) == ET_ERR_FORMAT && strstr(et_status_msg(s), "no video"),
              "audio only: %s", et_status_msg(s));
        et_status_free(s);
    } else {
        printf("  (cannot write an audio-only file; that case skipped)\n");
    }

    path_in(path, sizeof(path), "noimages");
    CHECK(mkdir(path, 0700) == 0, "mkdir");
    char f[600];
    snprintf(f, sizeof(f), "%s/readme.txt", path);
    CHECK(write_bytes(f, "x", 1), "write");
    s = et_video_load(path, &o, &v);
    CHECK(s && et_status_code(s) == ET_ERR_FORMAT && strstr(et_status_msg(s), "no frame images"),
          "empty dir: %s", et_status_msg(s));
    et_status_free(s);
    s = et_video_load_file(path, &o, &v);
    CHECK(s && et_status_code(s) == ET_ERR_IO, "a directory as a file: %s", et_status_msg(s));
    et_status_free(s);
    CHECK(v.n_frames == 0 && v.frames == NULL, "failure leaves *out zeroed");
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

int main(void) {
    snprintf(g_dir, sizeof(g_dir), "/tmp/et_video_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_uniform_indices_match_numpy);
    RUN(test_fps_indices);
    RUN(test_mpeg4_avi_uniform_and_fps);
    RUN(test_other_codecs);
    RUN(test_variable_frame_rate);
    RUN(test_frame_directory);
    RUN(test_natural_order);
    RUN(test_truncated_file);
    RUN(test_truncated_mp4);
    RUN(test_damaged_packet);
    RUN(test_bad_files);
    if (!getenv("KEEP")) nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return test_summary();
}
