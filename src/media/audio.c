/* Audio sample source (see audio.h): libavformat demuxing, libavcodec decoding, an exact float conversion and
 * channel mean done here, libswresample for the rate conversion only, and a small output queue that applies the
 * start/duration cuts. */
#include "media/audio.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/error.h>
#include <libavutil/mathematics.h>
#include <libavutil/samplefmt.h>
#include <libswresample/swresample.h>

#include "media/demux.h"
#include "util/error.h"

/* With start > 0, decoding starts this long before the point asked for (decoder and resampler warm-up). */
#define SEEK_PREROLL_S 0.5
/* Corrupt packets reported one by one; later ones are only counted. */
#define MAX_CORRUPT_WARNINGS 20
/* Read errors in a row after which the input counts as unreadable rather than damaged. */
#define MAX_READ_ERRORS 100

struct audio_reader {
    char *url;
    audio_options opt;
    AVFormatContext *fmt;
    AVCodecContext *dec;
    AVStream *st;
    AVPacket *pkt;
    AVFrame *frame;
    double start_offset; /* stream start time in seconds */
    double last_pkt_time; /* time of the last packet sent to the decoder (for warnings) */
    int out_rate;

    /* conversion: one decoded frame as the channel sum (double), as mono float, then resampled */
    double *acc;
    float *mono, *rs;
    size_t acc_cap, mono_cap, rs_cap;
    SwrContext *swr; /* NULL: no resampling (input rate == output rate, or no frame yet) */
    int in_rate;     /* rate of the frames being converted, 0 before the first frame */
    int64_t swr_in, swr_out; /* samples into and out of the resampler */

    /* output queue: samples at the output rate, before the duration cut */
    float *q;
    size_t q_pos, q_len, q_cap;

    /* timing */
    int started;       /* the first frame has been seen */
    int64_t in_skip;   /* input samples still to drop (to reach a point where both sample grids coincide) */
    int64_t drop;      /* output samples still to drop (before start) */
    int64_t pad;       /* zeros still to return (the first sample is later than start) */
    int64_t remaining; /* samples still to return with duration > 0, else -1 */

    int input_eof, decoder_eof, done;
    int read_errors; /* in a row */
    int64_t corrupt, nonfinite;
    int warned_nonfinite, corrupt_warnings;
};

static clxp_status av_fail(clxp_error *err, clxp_status code, int averr, const char *what, const char *url) {
    char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
    av_strerror(averr, buf, sizeof buf);
    return clxp_err_set(err, code, "%s: %s (%s)", url, what, buf);
}

static clxp_status no_memory(const audio_reader *r, clxp_error *err) {
    return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", r->url);
}

/* p (with *cap elements of size sz) grown to hold at least n elements: the new pointer, or NULL when out of memory
 * (p is then unchanged). */
static void *grow(void *p, size_t *cap, size_t n, size_t sz) {
    if (p && n <= *cap) return p;
    size_t c = *cap ? *cap : 1024;
    while (c < n) {
        if (c > SIZE_MAX / 2) return NULL;
        c *= 2;
    }
    if (c > SIZE_MAX / sz) return NULL;
    void *q = realloc(p, c * sz);
    if (q) *cap = c;
    return q;
}

static double ts_seconds(const audio_reader *r, int64_t pts) {
    return pts == AV_NOPTS_VALUE ? NAN : pts * av_q2d(r->st->time_base) - r->start_offset;
}

static void warn_corrupt(audio_reader *r, const char *what, double t) {
    r->corrupt++;
    if (r->corrupt_warnings++ >= MAX_CORRUPT_WARNINGS) return;
    if (isnan(t))
        clxp_log(CLXP_LOG_WARN, "%s: %s skipped%s", r->url, what,
                 r->corrupt_warnings == MAX_CORRUPT_WARNINGS ? " (further ones are only counted)" : "");
    else
        clxp_log(CLXP_LOG_WARN, "%s: %s at %.3f s skipped%s", r->url, what, t,
                 r->corrupt_warnings == MAX_CORRUPT_WARNINGS ? " (further ones are only counted)" : "");
}

/* ---- opening ------------------------------------------------------------------------------------------------ */

static clxp_status pick_stream(audio_reader *r, clxp_error *err) {
    int idx = -1;
    clxp_status st = media_pick_stream(r->fmt, r->url, r->opt.stream, AVMEDIA_TYPE_AUDIO, &idx, err);
    if (st == CLXP_OK) st = media_alloc_decoder(r->fmt, idx, r->url, &r->dec, err);
    if (st == CLXP_OK) st = media_open_decoder(r->dec, r->url, "audio decoder", err);
    if (st != CLXP_OK) return st;
    r->st = r->fmt->streams[idx];
    media_keep_stream(r->fmt, r->opt.demux, idx);
    return CLXP_OK;
}

static clxp_status check_options(const audio_options *o, const char *url, clxp_error *err) {
    if (!o) return clxp_err_set(err, CLXP_ERR_INVALID, "%s: no audio options (the output sample rate is needed)", url);
    if (o->sample_rate <= 0 || o->sample_rate > CLXP_AUDIO_MAX_RATE)
        return clxp_err_set(err, CLXP_ERR_INVALID, "%s: invalid output sample rate %d (1 to %d Hz)", url,
                            o->sample_rate, CLXP_AUDIO_MAX_RATE);
    /* the sample counts round(start * rate) and round(duration * rate) must fit in 64 bits */
    if (!(o->start >= 0 && o->start < 1e9) || !(o->duration >= 0 && o->duration < 1e9))
        return clxp_err_set(err, CLXP_ERR_INVALID, "%s: invalid start %g s or duration %g s", url, o->start,
                            o->duration);
    return CLXP_OK;
}

clxp_status audio_open(const char *url, const audio_options *o, audio_reader **out, clxp_error *err) {
    *out = NULL;
    clxp_status st = check_options(o, url, err);
    if (st != CLXP_OK) return st;
    audio_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->url = strdup(url))) {
        free(r);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    }
    r->opt = *o;
    r->out_rate = o->sample_rate;
    r->remaining = o->duration > 0 ? llround(o->duration * o->sample_rate) : -1;
    int e;
    if (r->opt.demux) { /* shared: already open */
        r->fmt = demux_context(r->opt.demux);
        goto opened;
    }
    if ((st = media_open_input(url, r->opt.interrupt, r->opt.interrupt_user, &r->fmt, err)) != CLXP_OK) goto fail;
opened:
    if ((st = pick_stream(r, err)) != CLXP_OK) goto fail;
    r->start_offset = r->st->start_time != AV_NOPTS_VALUE ? r->st->start_time * av_q2d(r->st->time_base) : 0;
    r->pkt = av_packet_alloc();
    r->frame = av_frame_alloc();
    if (!r->pkt || !r->frame) {
        st = no_memory(r, err);
        goto fail;
    }
    r->last_pkt_time = NAN;
    double from = r->opt.start - SEEK_PREROLL_S;
    if (from > 0 && !r->opt.demux) {
        int64_t ts = (int64_t)((from + r->start_offset) / av_q2d(r->st->time_base));
        e = avformat_seek_file(r->fmt, r->st->index, INT64_MIN, ts, ts, 0);
        if (e < 0) clxp_log(CLXP_LOG_WARN, "%s: cannot seek to %.3f s, decoding from the start", url, r->opt.start);
    }
    *out = r;
    return CLXP_OK;
fail:
    audio_close(r);
    return st;
}

void audio_close(audio_reader *r) {
    if (!r) return;
    swr_free(&r->swr);
    av_frame_free(&r->frame);
    av_packet_free(&r->pkt);
    avcodec_free_context(&r->dec);
    if (!r->opt.demux) avformat_close_input(&r->fmt);
    free(r->acc);
    free(r->mono);
    free(r->rs);
    free(r->q);
    free(r->url);
    free(r);
}

int audio_stream_index(const audio_reader *r) { return r->st->index; }
int64_t audio_corrupt_count(const audio_reader *r) { return r->corrupt; }
int64_t audio_nonfinite_count(const audio_reader *r) { return r->nonfinite; }

double audio_duration(const audio_reader *r) {
    if (r->st->duration != AV_NOPTS_VALUE) return r->st->duration * av_q2d(r->st->time_base);
    if (r->fmt->duration != AV_NOPTS_VALUE) return (double)r->fmt->duration / AV_TIME_BASE;
    return 0;
}

/* ---- decoding ----------------------------------------------------------------------------------------------- */

/* Decode the next frame into r->frame: 1 = got one, 0 = end of stream, -1 = error (*st set). */
static int decode_next(audio_reader *r, clxp_error *err, clxp_status *st) {
    for (;;) {
        int e = avcodec_receive_frame(r->dec, r->frame);
        if (e >= 0) {
            if (r->frame->decode_error_flags || (r->frame->flags & AV_FRAME_FLAG_CORRUPT)) {
                warn_corrupt(r, "corrupt audio frame", ts_seconds(r, r->frame->best_effort_timestamp));
                av_frame_unref(r->frame);
                continue;
            }
            return 1;
        }
        if (e == AVERROR_EOF) return 0;
        if (e != AVERROR(EAGAIN)) {
            warn_corrupt(r, "undecodable audio frame", r->last_pkt_time);
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
        if (e == AVERROR_EXIT || e == AVERROR_EOF || e == AVERROR(EIO) || (e < 0 && avio_feof(r->fmt->pb))) {
            r->input_eof = 1; /* interrupted, or the end of the input */
            continue;
        }
        if (e == AVERROR_INVALIDDATA && ++r->read_errors < MAX_READ_ERRORS) { /* damaged container: resync */
            warn_corrupt(r, "unreadable data", r->last_pkt_time);
            continue;
        }
        if (e < 0) {
            *st = av_fail(err, CLXP_ERR_FORMAT, e, "read error", r->url);
            return -1;
        }
        r->read_errors = 0;
        if (r->pkt->stream_index != r->st->index) {
            av_packet_unref(r->pkt);
            continue;
        }
        int64_t ppts = r->pkt->pts != AV_NOPTS_VALUE ? r->pkt->pts : r->pkt->dts;
        if (ppts != AV_NOPTS_VALUE) r->last_pkt_time = ts_seconds(r, ppts);
        e = avcodec_send_packet(r->dec, r->pkt);
        av_packet_unref(r->pkt);
        if (e < 0 && e != AVERROR(EAGAIN)) warn_corrupt(r, "corrupt audio packet", ts_seconds(r, ppts));
    }
}

/* ---- conversion --------------------------------------------------------------------------------------------- */

/* Channel c of frame f added into acc (set when c == 0), as float values; NaN/Inf replaced by 0 and counted. */
#define CHANNEL_LOOP(type, expr)                                                                                      \
    do {                                                                                                              \
        const type *p_ = (const type *)base;                                                                          \
        for (size_t i = 0; i < n; i++) {                                                                              \
            type v_ = p_[i * stride];                                                                                 \
            double x_ = (expr);                                                                                       \
            acc[i] = c ? acc[i] + x_ : x_;                                                                            \
        }                                                                                                             \
    } while (0)

static int64_t add_channel(double *acc, const uint8_t *base, size_t stride, size_t n, int c, enum AVSampleFormat fmt) {
    int64_t bad = 0;
    switch (fmt) {
    case AV_SAMPLE_FMT_U8: CHANNEL_LOOP(uint8_t, ((double)v_ - 128.0) / 128.0); break;
    case AV_SAMPLE_FMT_S16: CHANNEL_LOOP(int16_t, (double)v_ / 32768.0); break;
    case AV_SAMPLE_FMT_S32: CHANNEL_LOOP(int32_t, (double)v_ / 2147483648.0); break;
    case AV_SAMPLE_FMT_S64: CHANNEL_LOOP(int64_t, (double)v_ / 9223372036854775808.0); break;
    case AV_SAMPLE_FMT_FLT: CHANNEL_LOOP(float, isfinite(v_) ? (double)v_ : (bad++, 0.0)); break;
    case AV_SAMPLE_FMT_DBL: CHANNEL_LOOP(double, isfinite(v_) ? v_ : (bad++, 0.0)); break;
    default: return -1;
    }
    return bad;
}

/* r->frame as mono float in r->mono (the mean of its channels). Returns the sample count, 0 to skip the frame. */
static clxp_status downmix(audio_reader *r, size_t *n_out, clxp_error *err) {
    const AVFrame *f = r->frame;
    *n_out = 0;
    int ch = f->ch_layout.nb_channels;
    if (f->nb_samples <= 0 || ch <= 0) return CLXP_OK;
    size_t n = (size_t)f->nb_samples;
    double *acc = grow(r->acc, &r->acc_cap, n, sizeof *acc);
    if (!acc) return no_memory(r, err);
    r->acc = acc;
    float *mono = grow(r->mono, &r->mono_cap, n, sizeof *mono);
    if (!mono) return no_memory(r, err);
    r->mono = mono;
    enum AVSampleFormat fmt = f->format, packed = av_get_packed_sample_fmt(fmt);
    int planar = av_sample_fmt_is_planar(fmt), bps = av_get_bytes_per_sample(fmt);
    int64_t bad = 0;
    for (int c = 0; c < ch; c++) {
        const uint8_t *base = planar ? f->extended_data[c] : f->extended_data[0] + (size_t)c * bps;
        int64_t b = add_channel(r->acc, base, planar ? 1 : (size_t)ch, n, c, packed);
        if (b < 0) {
            const char *name = av_get_sample_fmt_name(fmt);
            return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: unsupported audio sample format %s", r->url,
                                name ? name : "(unknown)");
        }
        bad += b;
    }
    if (bad) {
        r->nonfinite += bad;
        if (!r->warned_nonfinite) {
            r->warned_nonfinite = 1;
            clxp_log(CLXP_LOG_WARN, "%s: NaN or infinite audio samples (from %.3f s) replaced by 0", r->url,
                     ts_seconds(r, f->best_effort_timestamp));
        }
    }
    for (size_t i = 0; i < n; i++) r->mono[i] = (float)(r->acc[i] / ch);
    *n_out = n;
    return CLXP_OK;
}

/* Append output samples to the queue, dropping those before start. */
static clxp_status push(audio_reader *r, const float *s, size_t n, clxp_error *err) {
    if (r->drop > 0) {
        size_t d = (uint64_t)r->drop < n ? (size_t)r->drop : n;
        s += d;
        n -= d;
        r->drop -= (int64_t)d;
    }
    if (!n) return CLXP_OK;
    if (r->q_pos == r->q_len) r->q_pos = r->q_len = 0;
    if (r->q_pos > 0 && r->q_len + n > r->q_cap) {
        memmove(r->q, r->q + r->q_pos, (r->q_len - r->q_pos) * sizeof *r->q);
        r->q_len -= r->q_pos;
        r->q_pos = 0;
    }
    float *q = grow(r->q, &r->q_cap, r->q_len + n, sizeof *q);
    if (!q) return no_memory(r, err);
    r->q = q;
    float *d = q + r->q_len;
    int64_t bad = 0;
    for (size_t i = 0; i < n; i++) { /* finite input stays finite unless it is near FLT_MAX */
        d[i] = isfinite(s[i]) ? s[i] : (bad++, 0.0f);
    }
    r->nonfinite += bad;
    r->q_len += n;
    return CLXP_OK;
}

/* Run n samples through the resampler and queue at most `limit` of its output samples (< 0: all). */
static clxp_status convert(audio_reader *r, const float *in, size_t n, int64_t limit, clxp_error *err) {
    int cap = swr_get_out_samples(r->swr, (int)n);
    if (cap < 0) return av_fail(err, CLXP_ERR_INTERNAL, cap, "resampler error", r->url);
    float *rs = grow(r->rs, &r->rs_cap, (size_t)cap + 1, sizeof *rs);
    if (!rs) return no_memory(r, err);
    r->rs = rs;
    uint8_t *o = (uint8_t *)r->rs;
    const uint8_t *i = (const uint8_t *)in;
    int got = swr_convert(r->swr, &o, cap + 1, &i, (int)n);
    if (got < 0) return av_fail(err, CLXP_ERR_INTERNAL, got, "resampler error", r->url);
    if (limit >= 0 && got > limit) got = (int)limit;
    r->swr_out += got;
    return push(r, r->rs, (size_t)got, err);
}

/* Resample n mono samples and queue the result. */
static clxp_status resample(audio_reader *r, const float *in, size_t n, clxp_error *err) {
    if (!r->swr) return push(r, in, n, err);
    r->swr_in += (int64_t)n;
    return convert(r, in, n, -1, err);
}

/* The end of the resampler's input. Output sample k is at input position k * in_rate / out_rate, so n input
 * samples make ceil(n * out_rate / in_rate) output samples. libswresample's own flush gives a few samples fewer or
 * more than that, and nothing at all for an input of less than about 20 samples: instead, the signal is continued
 * with zeros until those samples are out, and the rest is dropped. */
static clxp_status resample_end(audio_reader *r, clxp_error *err) {
    if (!r->swr) return CLXP_OK;
    static const float zeros[1024];
    int64_t want = av_rescale_rnd(r->swr_in, r->out_rate, r->in_rate, AV_ROUND_UP);
    /* more zeros than the longest filter (32 taps of the lower rate) needs: the loop always ends */
    int64_t max_zeros = 64 * ((int64_t)r->in_rate / r->out_rate + 1) + 4 * (int64_t)(sizeof zeros / sizeof zeros[0]);
    for (int64_t fed = 0; r->swr_out < want && fed < max_zeros; fed += (int64_t)(sizeof zeros / sizeof zeros[0])) {
        clxp_status st = convert(r, zeros, sizeof zeros / sizeof zeros[0], want - r->swr_out, err);
        if (st != CLXP_OK) return st;
    }
    return CLXP_OK;
}

/* Frames at `rate` from now on: flush and replace the resampler. */
static clxp_status set_rate(audio_reader *r, int rate, clxp_error *err) {
    clxp_status st = resample_end(r, err);
    if (st != CLXP_OK) return st;
    swr_free(&r->swr);
    r->swr_in = r->swr_out = 0;
    r->in_rate = rate;
    if (rate == r->out_rate) return CLXP_OK;
    AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
    int e = swr_alloc_set_opts2(&r->swr, &mono, AV_SAMPLE_FMT_FLT, r->out_rate, &mono, AV_SAMPLE_FMT_FLT, rate, 0,
                                NULL);
    if (e >= 0) e = swr_init(r->swr);
    if (e < 0) return av_fail(err, CLXP_ERR_INTERNAL, e, "cannot create the resampler", r->url);
    return CLXP_OK;
}

/* The first frame fixes the timing: its timestamp gives the input sample index of its first sample; input samples
 * are dropped up to the next index where the input and output sample grids meet (a multiple of in / gcd(in, out)),
 * so that the output sample k of the resampler lands exactly on the output grid; then output samples before start
 * are dropped, or silence is inserted when the first sample is after start. */
static void first_frame_timing(audio_reader *r, int rate) {
    double t0 = ts_seconds(r, r->frame->best_effort_timestamp);
    if (!(fabs(t0) < 1e9)) t0 = 0; /* unknown (or absurd) */
    int64_t g = av_gcd(rate, r->out_rate), m = rate / g, l = r->out_rate / g;
    int64_t idx = llround(t0 * rate);
    int64_t skip = ((-idx) % m + m) % m;
    int64_t k0 = (idx + skip) / m * l; /* output sample index of the first sample after the skip */
    int64_t target = llround(r->opt.start * r->out_rate);
    r->in_skip = skip;
    if (k0 < target) r->drop = target - k0;
    else r->pad = k0 - target;
    r->started = 1;
}

/* Decode one more frame into the queue: 1 = progress, 0 = the end (everything flushed), -1 = error. */
static int produce(audio_reader *r, clxp_error *err, clxp_status *st) {
    int got = decode_next(r, err, st);
    if (got < 0) return -1;
    if (got == 0) {
        if ((*st = resample_end(r, err)) != CLXP_OK) return -1;
        return 0;
    }
    int rate = r->frame->sample_rate > 0 ? r->frame->sample_rate : r->dec->sample_rate;
    if (rate <= 0 || rate > CLXP_AUDIO_MAX_RATE) {
        warn_corrupt(r, "audio frame with an invalid sample rate", ts_seconds(r, r->frame->best_effort_timestamp));
        av_frame_unref(r->frame);
        return 1;
    }
    if (!r->started) first_frame_timing(r, rate);
    if (rate != r->in_rate && (*st = set_rate(r, rate, err)) != CLXP_OK) {
        av_frame_unref(r->frame);
        return -1;
    }
    size_t n = 0;
    *st = downmix(r, &n, err);
    av_frame_unref(r->frame);
    if (*st != CLXP_OK) return -1;
    const float *s = r->mono;
    if (r->in_skip > 0) {
        size_t d = (uint64_t)r->in_skip < n ? (size_t)r->in_skip : n;
        s += d;
        n -= d;
        r->in_skip -= (int64_t)d;
    }
    if (n && (*st = resample(r, s, n, err)) != CLXP_OK) return -1;
    return 1;
}

clxp_status audio_read(audio_reader *r, float *buf, size_t max, size_t *got, clxp_error *err) {
    *got = 0;
    while (*got < max && r->remaining != 0) {
        size_t want = max - *got;
        if (r->remaining > 0 && (uint64_t)r->remaining < want) want = (size_t)r->remaining;
        size_t n = 0;
        if (r->pad > 0) {
            n = (uint64_t)r->pad < want ? (size_t)r->pad : want;
            memset(buf + *got, 0, n * sizeof *buf);
            r->pad -= (int64_t)n;
        } else if (r->q_pos < r->q_len) {
            n = r->q_len - r->q_pos < want ? r->q_len - r->q_pos : want;
            memcpy(buf + *got, r->q + r->q_pos, n * sizeof *buf);
            r->q_pos += n;
        } else if (r->done) {
            break;
        } else {
            clxp_status st = CLXP_OK;
            int p = produce(r, err, &st);
            if (p < 0) return st;
            if (p == 0) r->done = 1;
            continue;
        }
        *got += n;
        if (r->remaining > 0) r->remaining -= (int64_t)n;
    }
    return CLXP_OK;
}

/* ---- whole files -------------------------------------------------------------------------------------------- */

clxp_status audio_load(const char *url, const audio_options *o, size_t max_samples, float **samples, size_t *n,
                       clxp_error *err) {
    *samples = NULL;
    *n = 0;
    audio_reader *r = NULL;
    clxp_status st = audio_open(url, o, &r, err);
    if (st != CLXP_OK) return st;
    float *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) { /* len <= max_samples here: room for one more sample, which shows "too long" */
            size_t want = cap ? cap * 2 : 65536;
            if (max_samples && want > max_samples + 1) want = max_samples + 1;
            float *p = grow(buf, &cap, want, sizeof *p);
            if (!p) {
                st = no_memory(r, err);
                break;
            }
            buf = p;
        }
        size_t got = 0;
        if ((st = audio_read(r, buf + len, cap - len, &got, err)) != CLXP_OK || got == 0) break;
        len += got;
        if (max_samples && len > max_samples) {
            st = clxp_err_set(err, CLXP_ERR_LIMIT, "%s: audio longer than the limit of %zu samples (%.1f s at %d Hz)",
                              url, max_samples, (double)max_samples / o->sample_rate, o->sample_rate);
            break;
        }
    }
    audio_close(r);
    if (st != CLXP_OK) {
        free(buf);
        return st;
    }
    if (!buf && !(buf = malloc(sizeof *buf))) return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", url);
    *samples = buf;
    *n = len;
    return CLXP_OK;
}
