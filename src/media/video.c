/* Video frame source (see video.h): libavformat demuxing, libavcodec decoding, a libavfilter graph for the
 * display transform, the user's filters and scene selection, then RGB conversion (media/image.h semantics). */
#include "media/video.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libavcodec/avcodec.h>
#include <libavfilter/avfilter.h>
#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/error.h>
#include <libavutil/pixdesc.h>

#include "media/demux.h"
#include "media/image.h"
#include "util/error.h"

/* Decode index of frames inside the filter graph, found again by pts when they come out. */
#define PTS_MAP_SIZE 1024

struct video_reader {
    char *url;
    video_options opt;
    AVFormatContext *fmt;
    AVCodecContext *dec;
    AVStream *st;
    AVPacket *pkt;
    AVFrame *frame, *filtered;
    AVFilterGraph *graph;
    AVFilterContext *src, *sink;
    int g_width, g_height, g_format; /* what the graph was configured for */
    AVRational g_sar;
    uint8_t *rgb;
    size_t rgb_cap;
    int64_t decoded, corrupt, passed; /* frames decoded / skipped as corrupt / past the selections so far */
    int64_t map_pts[PTS_MAP_SIZE], map_idx[PTS_MAP_SIZE];
    double next_t;    /* every_t: next slot */
    int have_next_t;
    int input_eof, decoder_eof, graph_eof;
    int counts_exact; /* decoding from the first frame, none skipped: decode counts are frame numbers */
    double start_offset; /* stream start time in seconds */
    AVRational fps;      /* frame rate for frame numbers from timestamps: av_guess_frame_rate (MPEG-TS has no
                          * average frame rate, only r_frame_rate), 0/1 if unknown */
};

static clxp_status av_fail(clxp_error *err, clxp_status code, int averr, const char *fmt, const char *what) {
    char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
    av_strerror(averr, buf, sizeof buf);
    return clxp_err_set(err, code, "%s: %s (%s)", what, fmt, buf);
}

/* Extensions of still-image formats, for files that cannot be probed (missing, empty): they then get the
 * image decoder's error messages. */
static int has_image_extension(const char *url) {
    static const char *const ext[] = {"png", "jpg", "jpeg", "bmp", "webp", "tif", "tiff", "tga", "ppm", "pgm",
                                      "pnm", "pam", "jp2", "jxl", "exr", "dpx", "sgi", "pcx", "xbm", "xwd"};
    const char *dot = strrchr(url, '.');
    if (!dot || strchr(dot, '/')) return 0;
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (strcasecmp(dot + 1, ext[i]) == 0) return 1;
    return 0;
}

/* FFmpeg's guess at the format of a local file from its first 4 KiB: 0 when the file cannot be read or is empty,
 * else 1 with *fmt (NULL: no guess) and its probe *score. */
static int probe_head(const char *path, const AVInputFormat **fmt, int *score) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    uint8_t buf[4096 + AVPROBE_PADDING_SIZE];
    memset(buf, 0, sizeof buf);
    size_t n = fread(buf, 1, 4096, f);
    fclose(f);
    if (n == 0) return 0;
    AVProbeData pd = {.filename = path, .buf = buf, .buf_size = (int)n};
    *score = 0;
    *fmt = av_probe_input_format3(&pd, 1, score);
    return 1;
}

int media_is_still_image(const char *url) {
    const AVInputFormat *fmt = NULL;
    int score = 0;
    if (!probe_head(url, &fmt, &score)) return has_image_extension(url);
    if (!fmt) return 0;
    size_t len = strlen(fmt->name);
    return (len > 5 && strcmp(fmt->name + len - 5, "_pipe") == 0) || strcmp(fmt->name, "image2") == 0;
}

int media_probe_file(const char *path) {
    const AVInputFormat *fmt = NULL;
    int score = 0;
    return probe_head(path, &fmt, &score) && fmt != NULL && score > AVPROBE_SCORE_RETRY;
}

/* The ffmpeg command line's autorotation: rotation metadata as transpose/flip filters. */
static void rotation_filters(const AVStream *st, char *buf, size_t cap) {
    buf[0] = '\0';
    const int32_t *m = (const int32_t *)av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, NULL);
    if (!m) return;
    double theta = -round(av_display_rotation_get(m));
    theta -= 360 * floor(theta / 360 + 0.9 / 360);
    if (fabs(theta - 90) < 1.0) snprintf(buf, cap, "transpose=clock%s", m[3] > 0 ? ",vflip" : "");
    else if (fabs(theta - 180) < 1.0) snprintf(buf, cap, "%s%s%s", m[0] < 0 ? "hflip" : "", m[0] < 0 && m[4] < 0 ? "," : "", m[4] < 0 ? "vflip" : "");
    else if (fabs(theta - 270) < 1.0) snprintf(buf, cap, "transpose=cclock%s", m[3] < 0 ? ",vflip" : "");
    else if (fabs(theta) > 1.0) snprintf(buf, cap, "rotate=%f*PI/180", theta);
    else if (m[4] < 0) snprintf(buf, cap, "vflip");
}

/* The first filter name of a graph description that libavfilter does not know (into name), or 0. Filters are
 * separated by ',' or ';' outside quotes; link labels ("[in]") and instance names ("scale@big") are skipped. */
static int unknown_filter(const char *graph, char *name, size_t cap) {
    const char *p = graph;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == ',' || *p == ';') p++;
        while (*p == '[') { /* input labels */
            const char *q = strchr(p, ']');
            if (!q) return 0;
            p = q + 1;
            while (*p == ' ' || *p == '\t' || *p == '\n') p++;
        }
        size_t n = strcspn(p, "=@,;[ \t\n");
        if (n > 0 && n < cap) {
            memcpy(name, p, n);
            name[n] = '\0';
            if (!avfilter_get_by_name(name)) return 1;
        }
        /* skip the arguments up to the next separator outside quotes */
        int quote = 0;
        for (p += n; *p && (quote || (*p != ',' && *p != ';')); p++) {
            if (*p == '\\' && p[1]) p++;
            else if (*p == '\'') quote = !quote;
        }
    }
    return 0;
}

/* A bad graph: name the input and, when it is one, the unknown filter (libavfilter only says EINVAL). */
static clxp_status graph_fail(const video_reader *r, int averr, const char *what, const char *chain, clxp_error *err) {
    const char *g = r->opt.vf && *r->opt.vf ? r->opt.vf : chain;
    char name[128], buf[AV_ERROR_MAX_STRING_SIZE] = {0};
    if (unknown_filter(g, name, sizeof name))
        return clxp_err_set(err, CLXP_ERR_INVALID, "%s: %s \"%s\": no such filter \"%s\"", r->url, what, g, name);
    av_strerror(averr, buf, sizeof buf);
    return clxp_err_set(err, CLXP_ERR_INVALID, "%s: %s \"%s\" (%s)", r->url, what, g, buf);
}

static clxp_status build_graph(video_reader *r, const AVFrame *f, clxp_error *err) {
    avfilter_graph_free(&r->graph);
    r->src = r->sink = NULL;
    r->graph = avfilter_graph_alloc();
    if (!r->graph) return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", r->url);
    r->graph->nb_threads = 1;
    AVRational tb = r->st->time_base, sar = f->sample_aspect_ratio;
    if (sar.num <= 0 || sar.den <= 0) sar = (AVRational){1, 1};
    char args[256];
    snprintf(args, sizeof args, "video_size=%dx%d:pix_fmt=%d:time_base=%d/%d:pixel_aspect=%d/%d", f->width,
             f->height, f->format, tb.num, tb.den, sar.num, sar.den);
    int e = avfilter_graph_create_filter(&r->src, avfilter_get_by_name("buffer"), "in", args, NULL, r->graph);
    if (e >= 0) e = avfilter_graph_create_filter(&r->sink, avfilter_get_by_name("buffersink"), "out", NULL, NULL, r->graph);
    if (e < 0) return av_fail(err, CLXP_ERR_INTERNAL, e, "cannot create the filter graph", r->url);

    /* display transform, then the user's graph, then scene selection */
    char chain[4096], rot[128];
    size_t n = 0;
    chain[0] = '\0';
    rotation_filters(r->st, rot, sizeof rot);
    if (rot[0]) n += (size_t)snprintf(chain + n, sizeof chain - n, "%s", rot);
    if (sar.num != sar.den) /* non-square pixels: stretch to the display aspect ratio, as a player shows it */
        n += (size_t)snprintf(chain + n, sizeof chain - n, "%sscale=trunc(iw*sar/2)*2:ih,setsar=1", n ? "," : "");
    if (r->opt.vf && *r->opt.vf) n += (size_t)snprintf(chain + n, sizeof chain - n, "%s%s", n ? "," : "", r->opt.vf);
    if (r->opt.scene > 0)
        n += (size_t)snprintf(chain + n, sizeof chain - n, "%sselect=gt(scene\\,%f)", n ? "," : "", r->opt.scene);
    if (n >= sizeof chain) return clxp_err_set(err, CLXP_ERR_LIMIT, "%s: filter graph description too long", r->url);
    if (!n) snprintf(chain, sizeof chain, "null");

    AVFilterInOut *outputs = avfilter_inout_alloc(), *inputs = avfilter_inout_alloc();
    if (!outputs || !inputs) {
        avfilter_inout_free(&outputs);
        avfilter_inout_free(&inputs);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", r->url);
    }
    outputs->name = av_strdup("in");
    outputs->filter_ctx = r->src;
    inputs->name = av_strdup("out");
    inputs->filter_ctx = r->sink;
    e = avfilter_graph_parse_ptr(r->graph, chain, &inputs, &outputs, NULL);
    avfilter_inout_free(&outputs);
    avfilter_inout_free(&inputs);
    if (e < 0) return graph_fail(r, e, "invalid filter graph", chain, err);
    e = avfilter_graph_config(r->graph, NULL);
    if (e < 0) return graph_fail(r, e, "cannot configure the filter graph", chain, err);
    r->g_width = f->width;
    r->g_height = f->height;
    r->g_format = f->format;
    r->g_sar = f->sample_aspect_ratio;
    return CLXP_OK;
}

static clxp_status pick_stream(video_reader *r, clxp_error *err) {
    int idx = -1;
    clxp_status st = media_pick_stream(r->fmt, r->url, r->opt.stream, AVMEDIA_TYPE_VIDEO, &idx, err);
    if (st == CLXP_OK) st = media_alloc_decoder(r->fmt, idx, r->url, &r->dec, err);
    if (st != CLXP_OK) return st;
    r->st = r->fmt->streams[idx];
    r->dec->thread_count = 0; /* FFmpeg picks the number of threads */
    if (r->opt.keyframes_only) r->dec->skip_frame = AVDISCARD_NONKEY;
    else if (r->opt.skip_nonref) r->dec->skip_frame = AVDISCARD_NONREF;
    if ((st = media_open_decoder(r->dec, r->url, "video decoder", err)) != CLXP_OK) return st;
    media_keep_stream(r->fmt, r->opt.demux, idx);
    return CLXP_OK;
}

clxp_status video_open(const char *url, const video_options *o, video_reader **out, clxp_error *err) {
    *out = NULL;
    video_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->url = strdup(url))) {
        free(r);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    }
    if (o) r->opt = *o;
    for (int i = 0; i < PTS_MAP_SIZE; i++) r->map_pts[i] = AV_NOPTS_VALUE;
    clxp_status st = CLXP_OK;
    int e;
    if (r->opt.demux) { /* shared: already open */
        r->fmt = demux_context(r->opt.demux);
        goto opened;
    }
    if ((st = media_open_input(url, r->opt.interrupt, r->opt.interrupt_user, &r->fmt, err)) != CLXP_OK) goto fail;
opened:
    if ((st = pick_stream(r, err)) != CLXP_OK) goto fail;
    r->fps = av_guess_frame_rate(r->fmt, r->st, NULL);
    r->start_offset = r->st->start_time != AV_NOPTS_VALUE ? r->st->start_time * av_q2d(r->st->time_base) : 0;
    r->pkt = av_packet_alloc();
    r->frame = av_frame_alloc();
    r->filtered = av_frame_alloc();
    if (!r->pkt || !r->frame || !r->filtered) {
        st = clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", url);
        goto fail;
    }
    r->counts_exact = !r->opt.keyframes_only && !r->opt.skip_nonref && r->opt.start <= 0;
    if (r->opt.start > 0 && !r->opt.demux) {
        int64_t ts = (int64_t)((r->opt.start + r->start_offset) / av_q2d(r->st->time_base));
        e = avformat_seek_file(r->fmt, r->st->index, INT64_MIN, ts, ts, 0);
        if (e < 0) clxp_log(CLXP_LOG_WARN, "%s: cannot seek to %.3f s, decoding from the start", url, r->opt.start);
    }
    *out = r;
    return CLXP_OK;
fail:
    video_close(r);
    return st;
}

void video_close(video_reader *r) {
    if (!r) return;
    avfilter_graph_free(&r->graph);
    av_frame_free(&r->frame);
    av_frame_free(&r->filtered);
    av_packet_free(&r->pkt);
    avcodec_free_context(&r->dec);
    if (!r->opt.demux) avformat_close_input(&r->fmt);
    free(r->rgb);
    free(r->url);
    free(r);
}

int video_stream_index(const video_reader *r) { return r->st->index; }
int64_t video_decoded_count(const video_reader *r) { return r->decoded; }
int64_t video_corrupt_count(const video_reader *r) { return r->corrupt; }

double video_duration(const video_reader *r) {
    if (r->st->duration != AV_NOPTS_VALUE) return r->st->duration * av_q2d(r->st->time_base);
    if (r->fmt->duration != AV_NOPTS_VALUE) return (double)r->fmt->duration / AV_TIME_BASE;
    return 0;
}

static double ts_seconds(const video_reader *r, int64_t pts, AVRational tb) {
    return pts == AV_NOPTS_VALUE ? NAN : pts * av_q2d(tb) - r->start_offset;
}

/* Decode the next frame (before filtering) into r->frame: 1 = got one, 0 = end of stream. */
static int decode_next(video_reader *r, clxp_error *err, clxp_status *st) {
    for (;;) {
        int e = avcodec_receive_frame(r->dec, r->frame);
        if (e >= 0) {
            if (r->frame->decode_error_flags || (r->frame->flags & AV_FRAME_FLAG_CORRUPT)) {
                r->corrupt++;
                r->decoded++;         /* a frame of the stream all the same */
                r->counts_exact = 0; /* frames may be lost around it: number frames by timestamp from now on */
                clxp_log(CLXP_LOG_WARN, "%s: corrupt frame at %.3f s skipped", r->url,
                         ts_seconds(r, r->frame->best_effort_timestamp, r->st->time_base));
                av_frame_unref(r->frame);
                continue;
            }
            return 1;
        }
        if (e == AVERROR_EOF) return 0;
        if (e != AVERROR(EAGAIN)) {
            r->corrupt++;
            r->counts_exact = 0;
            clxp_log(CLXP_LOG_WARN, "%s: decoding error, frame skipped", r->url);
            continue;
        }
        if (r->input_eof) { /* drained the packets: flush the decoder */
            if (!r->decoder_eof) {
                avcodec_send_packet(r->dec, NULL);
                r->decoder_eof = 1;
                continue;
            }
            return 0;
        }
        e = r->opt.demux ? demux_read(r->opt.demux, r->st->index, r->pkt) : av_read_frame(r->fmt, r->pkt);
        if (e == AVERROR_EXIT) { /* interrupted: end of input */
            r->input_eof = 1;
            continue;
        }
        if (e == AVERROR_EOF || e == AVERROR(EIO) || (e < 0 && avio_feof(r->fmt->pb))) {
            r->input_eof = 1;
            continue;
        }
        if (e < 0) {
            *st = av_fail(err, CLXP_ERR_FORMAT, e, "read error", r->url);
            return -1;
        }
        if (r->pkt->stream_index != r->st->index || (r->opt.keyframes_only && !(r->pkt->flags & AV_PKT_FLAG_KEY))) {
            av_packet_unref(r->pkt);
            continue;
        }
        int64_t ppts = r->pkt->pts != AV_NOPTS_VALUE ? r->pkt->pts : r->pkt->dts;
        /* The demuxer lost data here (e.g. MPEG-TS continuity errors: whole packets may be gone, silently): the
         * decode count stops being the frame number, so number frames by timestamp from now on. */
        if (r->pkt->flags & AV_PKT_FLAG_CORRUPT) r->counts_exact = 0;
        e = avcodec_send_packet(r->dec, r->pkt);
        av_packet_unref(r->pkt);
        if (e < 0 && e != AVERROR(EAGAIN)) {
            r->corrupt++;
            r->counts_exact = 0;
            clxp_log(CLXP_LOG_WARN, "%s: corrupt packet at %.3f s skipped", r->url, ts_seconds(r, ppts, r->st->time_base));
        }
    }
}

/* Frames that pass start/duration go into the graph with their decode index remembered by pts. */
static void remember(video_reader *r, int64_t pts, int64_t idx) {
    int slot = (int)(idx % PTS_MAP_SIZE);
    r->map_pts[slot] = pts;
    r->map_idx[slot] = idx;
}

static int64_t recall(const video_reader *r, int64_t pts, int64_t fallback) {
    if (pts == AV_NOPTS_VALUE) return fallback;
    for (int i = 0; i < PTS_MAP_SIZE; i++)
        if (r->map_pts[i] == pts) return r->map_idx[i];
    return fallback;
}

/* Selections applied after the graph: every_t then every_n. */
static int keep_frame(video_reader *r, double t) {
    if (r->opt.every_t > 0 && !isnan(t)) {
        if (!r->have_next_t) {
            r->next_t = r->opt.start > 0 ? r->opt.start : t;
            r->have_next_t = 1;
        }
        if (t < r->next_t - 1e-6) return 0;
        double k = floor((t - r->next_t) / r->opt.every_t + 1e-9) + 1;
        r->next_t += k * r->opt.every_t;
    }
    int64_t pos = r->passed++;
    return r->opt.every_n <= 1 || pos % r->opt.every_n == 0;
}

/* No more input: let the graph flush what it holds. */
static clxp_status close_graph_input(video_reader *r, clxp_error *err) {
    r->graph_eof = 1;
    int e = r->src ? av_buffersrc_add_frame_flags(r->src, NULL, 0) : 0;
    return e < 0 ? av_fail(err, CLXP_ERR_INTERNAL, e, "filter graph error", r->url) : CLXP_OK;
}

clxp_status video_next(video_reader *r, video_frame *out, int *eof, clxp_error *err) {
    *eof = 0;
    clxp_status st = CLXP_OK;
    for (;;) {
        /* 1. a filtered frame ready? */
        if (r->sink) {
            int e = av_buffersink_get_frame(r->sink, r->filtered);
            if (e >= 0) {
                AVRational tb = av_buffersink_get_time_base(r->sink);
                double t = ts_seconds(r, r->filtered->pts, tb);
                if (!keep_frame(r, t)) {
                    av_frame_unref(r->filtered);
                    continue;
                }
                AVFrame *f = r->filtered;
                if ((int64_t)f->width * f->height > CLXP_IMAGE_MAX_PIXELS || f->width > CLXP_IMAGE_MAX_SIDE ||
                    f->height > CLXP_IMAGE_MAX_SIDE) {
                    const int fw = f->width, fh = f->height; /* read before the unref clears them */
                    av_frame_unref(f);
                    return clxp_err_set(err, CLXP_ERR_LIMIT,
                                        "%s: frame of %dx%d pixels is over the limit (%d per side, %lld pixels in all)",
                                        r->url, fw, fh, CLXP_IMAGE_MAX_SIDE, (long long)CLXP_IMAGE_MAX_PIXELS);
                }
                size_t need = (size_t)f->width * f->height * 3;
                if (need > r->rgb_cap) {
                    uint8_t *p = realloc(r->rgb, need);
                    if (!p) {
                        av_frame_unref(f);
                        return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", r->url);
                    }
                    r->rgb = p;
                    r->rgb_cap = need;
                }
                st = image_frame_to_rgb(f, r->rgb, 3 * f->width, r->url, err);
                if (st == CLXP_OK) {
                    out->rgb = r->rgb;
                    out->width = f->width;
                    out->height = f->height;
                    out->pts = f->pts == AV_NOPTS_VALUE ? INT64_MIN : av_rescale_q(f->pts, tb, r->st->time_base);
                    out->time = t;
                    double d = f->pkt_duration > 0 ? f->pkt_duration * av_q2d(tb) : 0;
                    if (d <= 0 && r->fps.num > 0 && r->fps.den > 0) d = 1.0 / av_q2d(r->fps);
                    out->duration = d;
                    out->frame_index = recall(r, out->pts == INT64_MIN ? AV_NOPTS_VALUE : out->pts, r->passed - 1);
                }
                av_frame_unref(f);
                return st;
            }
            if (e == AVERROR_EOF) {
                *eof = 1;
                return CLXP_OK;
            }
            if (e != AVERROR(EAGAIN)) return av_fail(err, CLXP_ERR_INTERNAL, e, "filter graph error", r->url);
        }
        if (r->graph_eof) { /* graph drained without a sink frame */
            *eof = 1;
            return CLXP_OK;
        }
        /* 2. decode and feed the graph */
        int got = decode_next(r, err, &st);
        if (got < 0) return st;
        if (got == 0) {
            if ((st = close_graph_input(r, err)) != CLXP_OK) return st;
            continue;
        }
        AVFrame *f = r->frame;
        int64_t idx = r->decoded++;
        f->pts = f->best_effort_timestamp;
        double t = ts_seconds(r, f->pts, r->st->time_base);
        if (!isnan(t) && r->opt.start > 0 && t < r->opt.start - 1e-6) { /* before --start: decoded, dropped */
            av_frame_unref(f);
            continue;
        }
        if (!isnan(t) && r->opt.duration > 0 && t >= r->opt.start + r->opt.duration - 1e-6) {
            av_frame_unref(f);
            r->input_eof = r->decoder_eof = 1;
            if ((st = close_graph_input(r, err)) != CLXP_OK) return st;
            continue;
        }
        if (!r->graph || f->width != r->g_width || f->height != r->g_height || f->format != r->g_format ||
            av_cmp_q(f->sample_aspect_ratio, r->g_sar) != 0) {
            if ((st = build_graph(r, f, err)) != CLXP_OK) {
                av_frame_unref(f);
                return st;
            }
        }
        /* After a seek or with skipped frames the decode count is not the frame number: derive it from the
         * timestamp and the frame rate (exact for constant frame rate). */
        if (!r->counts_exact && !isnan(t) && r->fps.num > 0 && r->fps.den > 0)
            idx = llround(t * av_q2d(r->fps));
        remember(r, f->pts, idx);
        int e = av_buffersrc_add_frame_flags(r->src, f, 0);
        av_frame_unref(f);
        if (e < 0) return av_fail(err, CLXP_ERR_INTERNAL, e, "filter graph error", r->url);
    }
}
