/* Shared demuxer (see demux.h): one AVFormatContext, a packet queue per wanted stream. */
#include "media/demux.h"

#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/error.h>

#include "util/error.h"

#define MAX_WANTED 8

typedef struct pkt_queue {
    int index; /* stream */
    AVPacket **pk;
    size_t head, count, cap, bytes;
} pkt_queue;

struct demuxer {
    AVFormatContext *fmt;
    pkt_queue q[MAX_WANTED];
    int n_wanted;
    int started; /* a packet was read: discard flags applied */
    int end;     /* sticky end of input (AVERROR_EOF / AVERROR_EXIT), 0 before */
};

static clxp_status av_fail(clxp_error *err, clxp_status code, int averr, const char *what, const char *url) {
    char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
    av_strerror(averr, buf, sizeof buf);
    return clxp_err_set(err, code, "%s: %s (%s)", url, what, buf);
}

clxp_status media_open_input(const char *url, int (*interrupt)(void *user), void *interrupt_user,
                             AVFormatContext **fmt, clxp_error *err) {
    *fmt = avformat_alloc_context();
    if (!*fmt) return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", url);
    if (interrupt) (*fmt)->interrupt_callback = (AVIOInterruptCB){interrupt, interrupt_user};
    int e = avformat_open_input(fmt, url, NULL, NULL); /* frees the context on failure */
    if (e < 0) return av_fail(err, e == AVERROR(ENOENT) ? CLXP_ERR_IO : CLXP_ERR_FORMAT, e, "cannot open", url);
    e = avformat_find_stream_info(*fmt, NULL);
    if (e < 0) {
        avformat_close_input(fmt);
        return av_fail(err, CLXP_ERR_FORMAT, e, "cannot read stream information", url);
    }
    return CLXP_OK;
}

clxp_status media_pick_stream(AVFormatContext *fmt, const char *url, const char *spec, int type, int *index,
                              clxp_error *err) {
    const int video = type == AVMEDIA_TYPE_VIDEO;
    int idx = -1;
    *index = -1;
    if (spec && *spec) {
        for (unsigned i = 0; i < fmt->nb_streams; i++) {
            int m = avformat_match_stream_specifier(fmt, fmt->streams[i], spec);
            if (m < 0) return clxp_err_set(err, CLXP_ERR_INVALID, "%s: invalid stream specifier \"%s\"", url, spec);
            if (m > 0) {
                idx = (int)i;
                break;
            }
        }
        if (idx < 0) return clxp_err_set(err, CLXP_ERR_INVALID, "%s: no stream matches \"%s\"", url, spec);
        if ((int)fmt->streams[idx]->codecpar->codec_type != type)
            return clxp_err_set(err, CLXP_ERR_INVALID, "%s: stream %d (\"%s\") is not %s stream", url, idx, spec,
                                video ? "a video" : "an audio");
    } else {
        idx = av_find_best_stream(fmt, (enum AVMediaType)type, -1, -1, NULL, 0);
        if (idx < 0) {
            int other = av_find_best_stream(fmt, video ? AVMEDIA_TYPE_AUDIO : AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0) >= 0;
            if (!other) return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: no %s stream", url, video ? "video" : "audio");
            return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: no %s stream (the file has %s only: a %s model classifies "
                                "%s; use a %s model for %s)", url, video ? "video" : "audio",
                                video ? "audio" : "pictures", video ? "CLIP" : "CLAP", video ? "pictures" : "sound",
                                video ? "CLAP" : "CLIP", video ? "sound" : "pictures");
        }
    }
    *index = idx;
    return CLXP_OK;
}

clxp_status media_alloc_decoder(AVFormatContext *fmt, int index, const char *url, AVCodecContext **dec,
                                clxp_error *err) {
    const AVStream *st = fmt->streams[index];
    const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
    *dec = NULL;
    if (!codec)
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: no decoder for codec \"%s\" in this FFmpeg build", url,
                            avcodec_get_name(st->codecpar->codec_id));
    *dec = avcodec_alloc_context3(codec);
    if (!*dec) return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", url);
    int e = avcodec_parameters_to_context(*dec, st->codecpar);
    if (e < 0) return av_fail(err, CLXP_ERR_FORMAT, e, "cannot set up the decoder", url);
    (*dec)->pkt_timebase = st->time_base;
    return CLXP_OK;
}

clxp_status media_open_decoder(AVCodecContext *dec, const char *url, const char *what, clxp_error *err) {
    int e = avcodec_open2(dec, dec->codec, NULL);
    if (e < 0) {
        char w[64];
        snprintf(w, sizeof w, "cannot open the %s", what);
        return av_fail(err, CLXP_ERR_FORMAT, e, w, url);
    }
    return CLXP_OK;
}

void media_keep_stream(AVFormatContext *fmt, demuxer *d, int index) {
    if (d) demux_want(d, index);
    else
        for (unsigned i = 0; i < fmt->nb_streams; i++)
            if ((int)i != index) fmt->streams[i]->discard = AVDISCARD_ALL;
}

clxp_status demux_open(const char *url, int (*interrupt)(void *user), void *interrupt_user, demuxer **out,
                       clxp_error *err) {
    *out = NULL;
    demuxer *d = calloc(1, sizeof *d);
    if (!d) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    clxp_status st = media_open_input(url, interrupt, interrupt_user, &d->fmt, err);
    if (st != CLXP_OK) {
        free(d);
        return st;
    }
    *out = d;
    return CLXP_OK;
}

void demux_close(demuxer *d) {
    if (!d) return;
    for (int i = 0; i < d->n_wanted; i++) {
        pkt_queue *q = &d->q[i];
        for (size_t k = 0; k < q->count; k++) av_packet_free(&q->pk[(q->head + k) % q->cap]);
        free(q->pk);
    }
    avformat_close_input(&d->fmt);
    free(d);
}

struct AVFormatContext *demux_context(demuxer *d) { return d->fmt; }

static pkt_queue *queue_of(demuxer *d, int stream_index) {
    for (int i = 0; i < d->n_wanted; i++)
        if (d->q[i].index == stream_index) return &d->q[i];
    return NULL;
}

void demux_want(demuxer *d, int stream_index) {
    if (queue_of(d, stream_index) || d->n_wanted == MAX_WANTED) return;
    d->q[d->n_wanted++] = (pkt_queue){.index = stream_index};
}

int demux_seek(demuxer *d, int stream_index, double t) {
    if (stream_index < 0 || (unsigned)stream_index >= d->fmt->nb_streams) return AVERROR(EINVAL);
    const AVStream *st = d->fmt->streams[stream_index];
    double offset = st->start_time != AV_NOPTS_VALUE ? st->start_time * av_q2d(st->time_base) : 0;
    int64_t ts = (int64_t)((t + offset) / av_q2d(st->time_base));
    return avformat_seek_file(d->fmt, stream_index, INT64_MIN, ts, ts, 0);
}

/* Keep pkt (moved) for its reader; AVERROR(ENOMEM) when out of memory or over the queue limit. */
static int enqueue(demuxer *d, pkt_queue *q, AVPacket *pkt) {
    if (q->bytes + (size_t)pkt->size > DEMUX_MAX_QUEUED_BYTES) {
        clxp_log(CLXP_LOG_ERROR,
                 "%s: more than %zu MiB of stream %d's packets wait to be decoded (its streams are far apart in the "
                 "file): classify the video and the audio in separate runs",
                 d->fmt->url ? d->fmt->url : "input", DEMUX_MAX_QUEUED_BYTES >> 20, q->index);
        return AVERROR(ENOMEM);
    }
    if (q->count == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 64;
        AVPacket **pk = malloc(cap * sizeof *pk);
        if (!pk) return AVERROR(ENOMEM);
        for (size_t k = 0; k < q->count; k++) pk[k] = q->pk[(q->head + k) % q->cap];
        free(q->pk);
        q->pk = pk;
        q->cap = cap;
        q->head = 0;
    }
    AVPacket *p = av_packet_alloc();
    if (!p) return AVERROR(ENOMEM);
    av_packet_move_ref(p, pkt);
    q->pk[(q->head + q->count) % q->cap] = p;
    q->count++;
    q->bytes += (size_t)p->size;
    return 0;
}

int demux_read(demuxer *d, int stream_index, struct AVPacket *pkt) {
    if (!d->started) { /* libavformat drops the packets of streams nobody reads */
        for (unsigned i = 0; i < d->fmt->nb_streams; i++)
            d->fmt->streams[i]->discard = queue_of(d, (int)i) ? AVDISCARD_DEFAULT : AVDISCARD_ALL;
        d->started = 1;
    }
    pkt_queue *mine = queue_of(d, stream_index);
    if (mine && mine->count > 0) {
        AVPacket *p = mine->pk[mine->head];
        mine->head = (mine->head + 1) % mine->cap;
        mine->count--;
        mine->bytes -= (size_t)p->size;
        av_packet_move_ref(pkt, p);
        av_packet_free(&p);
        return 0;
    }
    if (d->end) return d->end;
    for (;;) {
        int e = av_read_frame(d->fmt, pkt);
        if (e == AVERROR_EOF || e == AVERROR_EXIT) d->end = e;
        if (e < 0) return e;
        if (pkt->stream_index == stream_index) return 0;
        pkt_queue *q = queue_of(d, pkt->stream_index);
        if (!q) {
            av_packet_unref(pkt);
            continue;
        }
        e = enqueue(d, q, pkt);
        av_packet_unref(pkt);
        if (e < 0) return e;
    }
}
