/* HTML report: header, per-stream timeline charts (inline SVG), a table of results with PNG thumbnails.
 * Rows are streamed to the file as results arrive; the charts are written at the end and moved above the table
 * by CSS (flex order), so the page needs no script. Layout and limits in writer.h. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavutil/base64.h>
#include <libavutil/dict.h>
#include <libavutil/frame.h>

#include "output/writer_impl.h"
#include "util/error.h"

#define ROWS_FIRST 200      /* the first results each get a row */
#define ROWS_PER_LEVEL 50   /* then the row stride doubles every this many rows */
#define THUMB_MAX 160       /* thumbnail bound, both sides */
#define CHART_MAX_FLOATS (1 << 22)
#define CHART_MAX_POINTS 4096
#define CHART_LINES 8

static const char *const palette[CHART_LINES] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                                 "#9467bd", "#8c564b", "#e377c2", "#17becf"};

/* Chart data of one stream: points are means of `stride` consecutive whole-frame results. */
typedef struct chart_stream {
    int source, index;  /* the writer's input number (out_writer.source) and the stream index */
    const out_bank *bk; /* the bank of the stream's results (a stream index with results of two banks, in a
                         * page of several inputs, gets a chart per bank) */
    char media;
    int64_t n_seen;
    double *sum;       /* [n_classes]: over every whole-frame result, for the legend's means and the top classes */
    int64_t stride;
    int n_points, cap_points, max_points;
    double *times;     /* [cap_points] */
    float *scores;     /* [cap_points * n_classes] */
    double *acc;       /* [n_classes]: the point being accumulated */
    double acc_time;
    int64_t acc_n;
} chart_stream;

typedef struct html_state {
    out_rank_pair *pairs; /* [n_classes] */
    int *idx;             /* [max(n_classes, n_units)] */
    int64_t n_results, next_row, row_stride, rows;
    chart_stream *streams;
    int n_streams;
    /* per_input: the charts of finished inputs, rendered when the next input starts (their data is freed) */
    FILE *done;
    char *done_buf;
    size_t done_len;
    int64_t n_single;  /* per_input: streams with a single whole-frame result (not charted) */
    int64_t n_charted; /* charts written */
    /* thumbnails */
    AVCodecContext *png;
    AVFrame *frame;
    AVPacket *pkt;
    int png_failed; /* the encoder could not be opened: no more attempts */
    char *b64;
    size_t b64_cap;
} html_state;

static void chart_stream_free(chart_stream *c) {
    free(c->sum);
    free(c->times);
    free(c->scores);
    free(c->acc);
}

static void html_free(void *state) {
    html_state *s = state;
    if (!s) return;
    free(s->pairs);
    free(s->idx);
    for (int i = 0; i < s->n_streams; i++) chart_stream_free(&s->streams[i]);
    free(s->streams);
    if (s->done) fclose(s->done);
    free(s->done_buf);
    avcodec_free_context(&s->png);
    av_frame_free(&s->frame);
    av_packet_free(&s->pkt);
    free(s->b64);
    free(s);
}

/* ---- text ------------------------------------------------------------------------------------------------- */

static void put_esc(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: putc(*s, f);
        }
    }
}

static void put_time(FILE *f, double t) {
    char buf[32];
    out_format_ms(buf, sizeof buf, out_ms(t), '.');
    fputs(buf, f);
}

/* A class's display name: the label, or "Unit: Category". */
static void put_class(FILE *f, const out_bank *b, int c) {
    if (b->n_units) {
        put_esc(f, clxp_labelbank_unit_name(b->bank, clxp_labelbank_class_unit(b->bank, c)));
        fputs(": ", f);
    }
    put_esc(f, clxp_labelbank_class_name(b->bank, c));
}

static const char css[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#fafafa;color:#222}"
    "main{display:flex;flex-direction:column;max-width:1100px;margin:0 auto;padding:16px}"
    ".charts{order:1}.frames{order:2}"
    "h1{font-size:20px;margin:0 0 8px;word-break:break-all}h2{font-size:16px;margin:16px 0 8px}"
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:0}dt{color:#666}"
    "dd{margin:0;word-break:break-all}"
    "svg{background:#fff;border:1px solid #ddd;width:100%;height:auto}"
    ".legend{list-style:none;padding:0;margin:4px 0;display:flex;flex-wrap:wrap;gap:4px 16px}"
    ".legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}"
    "table{border-collapse:collapse;width:100%;background:#fff}"
    "th,td{border-bottom:1px solid #eee;padding:4px 8px;text-align:left;vertical-align:top}"
    "td.n{white-space:nowrap;font-variant-numeric:tabular-nums}img{display:block;image-rendering:auto}"
    ".p{display:inline-block;min-width:4.5em;font-variant-numeric:tabular-nums;color:#555}"
    ".note{color:#666}";

static clxp_status html_begin(out_writer *w, clxp_error *err) {
    html_state *s = calloc(1, sizeof *s);
    w->state = s;
    if (!s) return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", w->path);
    size_t n = (size_t)w->max_classes + 1;
    s->pairs = malloc(n * sizeof *s->pairs);
    s->idx = malloc(n * sizeof *s->idx);
    if (!s->pairs || !s->idx) return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", w->path);
    s->row_stride = 1;

    FILE *f = w->f;
    const char *title = w->input ? w->input : "clxp results";
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>clxp: ", f);
    put_esc(f, title);
    fprintf(f, "</title>\n<style>%s</style>\n</head>\n<body>\n<main>\n<header>\n<h1>", css);
    put_esc(f, title);
    fputs("</h1>\n<dl>", f);
    if (w->input) {
        fputs("<dt>Input</dt><dd>", f);
        put_esc(f, w->input);
        fputs("</dd>", f);
    }
    if (w->model) {
        fputs("<dt>Model</dt><dd>", f);
        put_esc(f, w->model);
        fputs("</dd>", f);
    }
    int with_units = 0, without = 0;
    fputs("<dt>Classes</dt><dd>", f);
    for (int i = 0; i < w->n_banks; i++) { /* a combined run: the video bank, then the audio bank */
        const out_bank *b = &w->banks[i];
        if (b->n_units) fprintf(f, "%s%d categories in %d units", i ? "; " : "", b->n_classes, b->n_units);
        else fprintf(f, "%s%d labels", i ? "; " : "", b->n_classes);
        with_units |= b->n_units > 0;
        without |= b->n_units == 0;
    }
    fprintf(f, "</dd><dt>Shown</dt><dd>%s%s%s, confidence &ge; %.2f</dd>", with_units ? "the best category of every unit" : "",
            with_units && without ? " or " : "", without ? "the most probable labels" : "", w->confidence);
    fputs("</dl>\n</header>\n<section class=\"frames\">\n<h2>Results</h2>\n<table>\n<thead><tr><th>Frame</th>"
          "<th>Time</th><th>Source</th><th>Classes</th></tr></thead>\n<tbody>\n",
          f);
    return CLXP_OK;
}

/* ---- thumbnails -------------------------------------------------------------------------------------------- */

/* Box-filter rgb (w x h, rows 3w bytes) into the frame's tw x th RGB24 picture. */
static void downscale(const uint8_t *rgb, int w, int h, AVFrame *fr) {
    int tw = fr->width, th = fr->height;
    for (int oy = 0; oy < th; oy++) {
        int y0 = (int)((int64_t)oy * h / th), y1 = (int)((int64_t)(oy + 1) * h / th);
        if (y1 <= y0) y1 = y0 + 1;
        uint8_t *dst = fr->data[0] + (size_t)oy * fr->linesize[0];
        for (int ox = 0; ox < tw; ox++) {
            int x0 = (int)((int64_t)ox * w / tw), x1 = (int)((int64_t)(ox + 1) * w / tw);
            if (x1 <= x0) x1 = x0 + 1;
            uint64_t sum[3] = {0, 0, 0}, n = (uint64_t)(x1 - x0) * (uint64_t)(y1 - y0);
            for (int y = y0; y < y1; y++) {
                const uint8_t *p = rgb + ((size_t)y * w + x0) * 3;
                for (int x = x0; x < x1; x++, p += 3) {
                    sum[0] += p[0];
                    sum[1] += p[1];
                    sum[2] += p[2];
                }
            }
            for (int k = 0; k < 3; k++) dst[3 * ox + k] = (uint8_t)((sum[k] + n / 2) / n);
        }
    }
}

/* PNG of the result's pixels scaled to fit THUMB_MAX, base64 in s->b64; 0 when there is none (no pixels, or the
 * encoder failed: the row is then written without a thumbnail). */
static int make_thumbnail(html_state *s, const clxp_result *r, int *tw_out, int *th_out) {
    if (!r->rgb || r->width <= 0 || r->height <= 0 || s->png_failed) return 0;
    double scale = fmin(1.0, fmin((double)THUMB_MAX / r->width, (double)THUMB_MAX / r->height));
    int tw = (int)lround(r->width * scale), th = (int)lround(r->height * scale);
    if (tw < 1) tw = 1;
    if (th < 1) th = 1;
    if (!s->png || s->png->width != tw || s->png->height != th) {
        avcodec_free_context(&s->png);
        const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_PNG);
        s->png = codec ? avcodec_alloc_context3(codec) : NULL;
        if (!s->png) {
            s->png_failed = 1;
            clxp_log(CLXP_LOG_WARN, "html: no PNG encoder, thumbnails are left out");
            return 0;
        }
        s->png->width = tw;
        s->png->height = th;
        s->png->pix_fmt = AV_PIX_FMT_RGB24;
        s->png->time_base = (AVRational){1, 25};
        s->png->compression_level = 9;
        AVDictionary *opts = NULL;
        av_dict_set(&opts, "pred", "mixed", 0); /* per-row filter choice: about half the size of the default */
        int ret = avcodec_open2(s->png, codec, &opts);
        av_dict_free(&opts);
        if (ret < 0) {
            avcodec_free_context(&s->png);
            s->png_failed = 1;
            clxp_log(CLXP_LOG_WARN, "html: cannot open the PNG encoder, thumbnails are left out");
            return 0;
        }
    }
    if (!s->frame) s->frame = av_frame_alloc();
    if (!s->pkt) s->pkt = av_packet_alloc();
    if (!s->frame || !s->pkt) return 0;
    av_frame_unref(s->frame);
    s->frame->format = AV_PIX_FMT_RGB24;
    s->frame->width = tw;
    s->frame->height = th;
    if (av_frame_get_buffer(s->frame, 0) < 0) return 0;
    downscale(r->rgb, r->width, r->height, s->frame);
    s->frame->pts = s->n_results;
    if (avcodec_send_frame(s->png, s->frame) < 0) return 0;
    int ok = 0;
    if (avcodec_receive_packet(s->png, s->pkt) == 0) {
        size_t need = AV_BASE64_SIZE((size_t)s->pkt->size);
        if (need > s->b64_cap) {
            char *p = realloc(s->b64, need);
            if (p) {
                s->b64 = p;
                s->b64_cap = need;
            }
        }
        ok = need <= s->b64_cap && av_base64_encode(s->b64, (int)s->b64_cap, s->pkt->data, s->pkt->size) != NULL;
        av_packet_unref(s->pkt);
    }
    *tw_out = tw;
    *th_out = th;
    return ok;
}

/* ---- rows -------------------------------------------------------------------------------------------------- */

static void write_row(out_writer *w, const out_bank *b, const clxp_result *r) {
    html_state *s = w->state;
    FILE *f = w->f;
    int tw = 0, th = 0;
    fputs("<tr><td>", f);
    if (make_thumbnail(s, r, &tw, &th)) {
        fprintf(f, "<img width=\"%d\" height=\"%d\" alt=\"frame %" PRId64 "\" src=\"data:image/png;base64,%s\">", tw,
                th, r->frame_index, s->b64);
    } else {
        fputs(r->media_type == 'a' ? "audio" : "&mdash;", f);
    }
    fputs("</td><td class=\"n\">", f);
    put_time(f, r->time);
    if (r->media_type == 'a' && r->duration > 0) {
        fputs(" &ndash; ", f);
        put_time(f, r->time + r->duration);
    }
    fputs("</td><td class=\"n\">", f);
    if (r->input && (!w->input || strcmp(r->input, w->input) != 0)) { /* several inputs in one page */
        put_esc(f, r->input);
        fputs("<br>", f);
    }
    fprintf(f, "stream %d, %s %" PRId64, r->stream_index, r->media_type == 'a' ? "window" : "frame",
            r->frame_index);
    if (r->box_index >= 0) {
        fprintf(f, "<br>box %d (%.0f,%.0f %.0fx%.0f)", r->box_index, r->box_x, r->box_y, r->box_w, r->box_h);
        if (r->box_label) {
            fputs(" ", f);
            put_esc(f, r->box_label);
        }
        if (isfinite(r->box_score)) fprintf(f, " %.2f", r->box_score);
    }
    fputs("</td><td>", f);
    if (b->n_units == 0) {
        int n = out_rank(r->scores, b->n_classes, b->top_k, w->confidence, s->pairs, s->idx);
        for (int i = 0; i < n; i++) {
            fprintf(f, "%s<span class=\"p\">%.1f%%</span>", i ? "<br>" : "", 100.0 * r->scores[s->idx[i]]);
            put_esc(f, clxp_labelbank_class_name(b->bank, s->idx[i]));
        }
    } else {
        int n = agg_units_winners(&b->units, r->scores, s->idx);
        for (int u = 0; u < n; u++) {
            if (s->idx[u] < 0) continue;
            fprintf(f, "%s<span class=\"p\">%.1f%%</span>", u ? "<br>" : "", 100.0 * r->scores[s->idx[u]]);
            put_class(f, b, s->idx[u]);
        }
    }
    fputs("</td></tr>\n", f);
    s->rows++;
    if (s->rows >= ROWS_FIRST && (s->rows - ROWS_FIRST) % ROWS_PER_LEVEL == 0) s->row_stride *= 2;
    s->next_row += s->row_stride;
}

/* ---- chart data -------------------------------------------------------------------------------------------- */

static chart_stream *chart_find(out_writer *w, const out_bank *b, const clxp_result *r) {
    html_state *s = w->state;
    for (int i = s->n_streams - 1; i >= 0; i--)
        if (s->streams[i].source == w->source && s->streams[i].index == r->stream_index && s->streams[i].bk == b)
            return &s->streams[i];
    chart_stream *p = realloc(s->streams, (size_t)(s->n_streams + 1) * sizeof *p);
    if (!p) return NULL;
    s->streams = p;
    chart_stream *c = &s->streams[s->n_streams];
    memset(c, 0, sizeof *c);
    size_t nc = (size_t)(b->n_classes > 0 ? b->n_classes : 1);
    c->source = w->source;
    c->index = r->stream_index;
    c->bk = b;
    c->media = r->media_type;
    c->stride = 1;
    int maxp = CHART_MAX_FLOATS / (int)nc;
    if (maxp > CHART_MAX_POINTS) maxp = CHART_MAX_POINTS;
    c->max_points = maxp < 2 ? 2 : maxp & ~1;
    c->sum = calloc(nc, sizeof *c->sum);
    c->acc = calloc(nc, sizeof *c->acc);
    if (!c->sum || !c->acc) {
        chart_stream_free(c);
        return NULL;
    }
    s->n_streams++;
    return c;
}

/* Append the accumulated point (mean of acc_n results), halving the points when they are at their bound. */
static int chart_push(chart_stream *c) {
    int nc = c->bk->n_classes;
    if (c->n_points == c->max_points) {
        for (int j = 0; j < c->n_points / 2; j++) {
            c->times[j] = 0.5 * (c->times[2 * j] + c->times[2 * j + 1]);
            for (int k = 0; k < nc; k++)
                c->scores[(size_t)j * nc + k] =
                    0.5f * (c->scores[(size_t)2 * j * nc + k] + c->scores[(size_t)(2 * j + 1) * nc + k]);
        }
        c->n_points /= 2;
        c->stride *= 2;
        return 1; /* the pending point now covers half of a new stride: keep accumulating */
    }
    if (c->n_points == c->cap_points) {
        int cap = c->cap_points ? 2 * c->cap_points : 64;
        if (cap > c->max_points) cap = c->max_points;
        double *t = realloc(c->times, (size_t)cap * sizeof *t);
        if (!t) return 0;
        c->times = t;
        float *sc = realloc(c->scores, (size_t)cap * (size_t)nc * sizeof *sc);
        if (!sc) return 0;
        c->scores = sc;
        c->cap_points = cap;
    }
    c->times[c->n_points] = c->acc_time / (double)c->acc_n;
    for (int k = 0; k < nc; k++) c->scores[(size_t)c->n_points * nc + k] = (float)(c->acc[k] / (double)c->acc_n);
    c->n_points++;
    memset(c->acc, 0, (size_t)nc * sizeof *c->acc);
    c->acc_time = 0;
    c->acc_n = 0;
    return 1;
}

static int chart_add(out_writer *w, const out_bank *b, const clxp_result *r) {
    chart_stream *c = chart_find(w, b, r);
    if (!c) return 0;
    c->n_seen++;
    for (int k = 0; k < b->n_classes; k++) {
        c->sum[k] += r->scores[k];
        c->acc[k] += r->scores[k];
    }
    c->acc_time += isfinite(r->time) ? r->time : 0;
    c->acc_n++;
    while (c->acc_n >= c->stride) {
        int before = c->n_points;
        if (!chart_push(c)) return 0;
        if (c->n_points > before) break;
    }
    return 1;
}

static int flush_charts(out_writer *w, FILE *f);

static clxp_status html_write(out_writer *w, const out_bank *b, const clxp_result *r, clxp_error *err) {
    html_state *s = w->state;
    if (s->n_results == s->next_row) write_row(w, b, r);
    s->n_results++;
    /* per_input: a new input finishes the charts of the previous ones (each input's results are consecutive) */
    if (w->per_input && s->n_streams > 0 && s->streams[s->n_streams - 1].source != w->source) {
        if (!s->done && !(s->done = open_memstream(&s->done_buf, &s->done_len)))
            return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory for the chart", w->path);
        if (!flush_charts(w, s->done) || ferror(s->done))
            return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory for the chart", w->path);
    }
    if (r->box_index == -1 && !chart_add(w, b, r))
        return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory for the chart", w->path);
    return CLXP_OK;
}

/* ---- charts ------------------------------------------------------------------------------------------------ */

#define SVG_W 960
#define SVG_H 260
#define PLOT_L 48
#define PLOT_R (SVG_W - 16)
#define PLOT_T 12
#define PLOT_B (SVG_H - 30)

/* Returns 0 when out of memory. */
static int write_chart(out_writer *w, chart_stream *c, FILE *f) {
    html_state *s = w->state;
    if (c->acc_n > 0) { /* the last, partial point (after a halving if the points are at their bound) */
        if (c->n_points == c->max_points) chart_push(c);
        chart_push(c);
    }
    fputs("<h2>", f);
    if (w->per_input) {
        put_esc(f, out_source_name(w, c->source));
        fputs(": s", f);
    } else {
        fputs("S", f);
    }
    fprintf(f, "tream %d (%s): %" PRId64 " %s</h2>\n", c->index, c->media == 'a' ? "audio" : "video", c->n_seen,
            c->media == 'a' ? "windows" : "frames");
    if (c->n_points == 0) return 1;

    /* the classes of highest mean score, as floats for out_rank */
    const out_bank *b = c->bk;
    float *mean = malloc((size_t)(b->n_classes > 0 ? b->n_classes : 1) * sizeof *mean);
    if (!mean) return 0;
    for (int k = 0; k < b->n_classes; k++) mean[k] = (float)(c->sum[k] / (double)c->n_seen);
    int n_lines = out_rank(mean, b->n_classes, CHART_LINES, -INFINITY, s->pairs, s->idx);
    free(mean);

    double t0 = c->times[0], t1 = c->times[c->n_points - 1];
    double xs = t1 > t0 ? (PLOT_R - PLOT_L) / (t1 - t0) : 0;
    fprintf(f, "<svg viewBox=\"0 0 %d %d\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\">\n", SVG_W, SVG_H);
    for (int g = 0; g <= 4; g++) {
        double y = PLOT_B - g * (PLOT_B - PLOT_T) / 4.0;
        fprintf(f,
                "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>"
                "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\" fill=\"#666\">%d%%</text>\n",
                PLOT_L, y, PLOT_R, y, PLOT_L - 6, y + 4, 25 * g);
    }
    int ticks = t1 > t0 ? 5 : 1;
    for (int g = 0; g < ticks; g++) {
        double t = ticks > 1 ? t0 + (t1 - t0) * g / (ticks - 1) : t0;
        double x = ticks > 1 ? PLOT_L + (t - t0) * xs : (PLOT_L + PLOT_R) / 2.0;
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"%s\" fill=\"#666\">", x, SVG_H - 10,
                ticks == 1 ? "middle" : g == 0 ? "start" : g == ticks - 1 ? "end" : "middle");
        char buf[32];
        out_format_ms(buf, sizeof buf, out_ms(t1 - t0 >= 10 ? round(t) : t), '.');
        if (t1 - t0 >= 10) buf[strlen(buf) - 4] = '\0'; /* whole seconds on long charts */
        fprintf(f, "%s</text>\n", buf);
    }
    for (int l = 0; l < n_lines; l++) {
        int k = s->idx[l];
        if (c->n_points == 1) {
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"><title>", (PLOT_L + PLOT_R) / 2.0,
                    PLOT_B - fmin(1.0, fmax(0.0, c->scores[k])) * (PLOT_B - PLOT_T), palette[l]);
            put_class(f, b, k);
            fputs("</title></circle>\n", f);
            continue;
        }
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", palette[l]);
        for (int j = 0; j < c->n_points; j++) {
            double p = fmin(1.0, fmax(0.0, c->scores[(size_t)j * b->n_classes + k]));
            fprintf(f, "%s%.1f,%.1f", j ? " " : "", PLOT_L + (c->times[j] - t0) * xs,
                    PLOT_B - p * (PLOT_B - PLOT_T));
        }
        fputs("\"><title>", f);
        put_class(f, b, k);
        fputs("</title></polyline>\n", f);
    }
    fputs("</svg>\n<ul class=\"legend\">", f);
    for (int l = 0; l < n_lines; l++) {
        int k = s->idx[l];
        fprintf(f, "<li><i style=\"background:%s\"></i>", palette[l]);
        put_class(f, b, k);
        fprintf(f, " <span class=\"p\">mean %.1f%%</span></li>", 100.0 * c->sum[k] / (double)c->n_seen);
    }
    fputs("</ul>\n", f);
    if (c->stride > 1)
        fprintf(f, "<p class=\"note\">Each point is the mean of %" PRId64 " consecutive results.</p>\n", c->stride);
    return 1;
}

/* Render the charts held (in (input, stream index) order) to f and free them. per_input: a stream with a single
 * whole-frame result (a still image) is only counted. Returns 0 when out of memory. */
static int flush_charts(out_writer *w, FILE *f) {
    html_state *s = w->state;
    for (int i = 1; i < s->n_streams; i++) { /* insertion sort: stable, and the input order is already kept */
        for (int j = i; j > 0 && s->streams[j - 1].source == s->streams[j].source &&
                        s->streams[j - 1].index > s->streams[j].index;
             j--) {
            chart_stream t = s->streams[j];
            s->streams[j] = s->streams[j - 1];
            s->streams[j - 1] = t;
        }
    }
    int ok = 1;
    for (int i = 0; i < s->n_streams; i++) {
        if (w->per_input && s->streams[i].n_seen < 2) s->n_single++;
        else if (ok && (ok = write_chart(w, &s->streams[i], f))) s->n_charted++;
        chart_stream_free(&s->streams[i]);
    }
    s->n_streams = 0;
    return ok;
}

static clxp_status html_finish(out_writer *w, clxp_error *err) {
    html_state *s = w->state;
    FILE *f = w->f;
    fputs("</tbody>\n</table>\n", f);
    if (s->rows < s->n_results)
        fprintf(f,
                "<p class=\"note\">%" PRId64 " of %" PRId64 " results are listed: each of the first %d, then one in 2, 4, "
                "8, ... (the step doubles every %d rows).</p>\n",
                s->rows, s->n_results, ROWS_FIRST, ROWS_PER_LEVEL);
    else fprintf(f, "<p class=\"note\">%" PRId64 " results.</p>\n", s->n_results);
    fputs("</section>\n<section class=\"charts\">\n", f);
    if (s->done) { /* per_input: the charts of the inputs before the last one */
        if (fclose(s->done) != 0) {
            s->done = NULL;
            return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", w->path);
        }
        s->done = NULL;
        fwrite(s->done_buf, 1, s->done_len, f);
    }
    if (!flush_charts(w, f)) return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", w->path);
    if (s->n_single > 0)
        fprintf(f,
                "<p class=\"note\">%" PRId64 " stream%s with a single result %s not charted (their results are in "
                "the table).</p>\n",
                s->n_single, s->n_single == 1 ? "" : "s", s->n_single == 1 ? "is" : "are");
    else if (s->n_charted == 0) fputs("<p class=\"note\">No whole-frame results to chart.</p>\n", f);
    fputs("</section>\n</main>\n</body>\n</html>\n", f);
    return out_check_stream(w, err);
}

const out_format_ops out_html_ops = {html_begin, html_write, html_finish, html_free};
