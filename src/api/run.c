/* clxp_run_file / clxp_run_file_av: a whole input through one model, or its video through a CLIP model and its
 * audio through a CLAP model in one pass. A decoding thread reads, selects and preprocesses frames and audio
 * windows ahead of inference into a bounded queue (a combined run reads the file once through a shared demuxer
 * and interleaves frames and windows by start time); the calling thread runs each model on its items of a batch
 * and reports the results in order. So decoding overlaps inference, and memory stays flat however long the
 * input is. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "io/boxes.h"
#include "media/audio.h"
#include "media/demux.h"
#include "media/image.h"
#include "media/preprocess.h"
#include "media/video.h"
#include "util/error.h"

#define DEFAULT_BATCH 16
#define MAX_BATCH 1024

typedef struct item {
    clxp_result r; /* scores, rgb and bank are set when reported */
    uint8_t *rgb;  /* the frame (or crop) as classified; NULL for audio */
    float *pixels; /* model input: preprocessed pixels [3, S, S] (CLIP) or log-mel features [C, T, mels] (CLAP) */
    int is_longer; /* CLAP: the clip goes through the fusion branch */
    int track;     /* TRACK_VIDEO or TRACK_AUDIO: the model that classifies it */
} item;

enum { TRACK_VIDEO = 0, TRACK_AUDIO = 1, N_TRACKS = 2 };

typedef struct queue {
    pthread_mutex_t mu;
    pthread_cond_t changed;
    item *items;
    int cap, head, count;
    int stop; /* the consumer wants no more items */
    int done; /* the producer has finished (eof or error) */
    clxp_status st;
    clxp_error err;
} queue;

typedef struct producer {
    queue *q;
    clxp_model *vm, *am; /* the video (CLIP) and audio (CLAP) models; NULL: that stream is not classified */
    const char *input;
    video_options vo;
    video_reader *vr;
    double duration;
    int64_t decoded; /* video frames decoded, or audio windows made when there is no video */
    const box_set *boxes;    /* region mode: classify these crops instead of whole frames */
    unsigned char *matched;  /* per box_set entry: applied to a processed frame */
    const char *target;
    int still; /* the input is a still image (decoded like the image files of clxp_encode_image_files) */
    int (*interrupt)(void *user);
    void *interrupt_user;
    /* audio windows */
    audio_reader *ar;
    size_t window, hop; /* samples */
    double audio_start; /* seconds: time of the first sample read */
    float *abuf;        /* [window] samples; the first `have` are valid */
    size_t have;
    int64_t windows; /* made so far */
    int audio_end;   /* the last window was made */
} producer;

/* Floats of one model input: pixels [3, S, S] or features [C, frames, mels]. */
static size_t model_input_size(const clxp_model *m) {
    if (m->kind == MODEL_CLAP) return model_audio_input_size(m);
    return (size_t)3 * m->info.image_size * m->info.image_size;
}

static void item_free(item *it) {
    free(it->rgb);
    free(it->pixels);
    memset(it, 0, sizeof *it);
}

/* Blocks while the queue is full; returns 0 when the consumer asked to stop (the item is then freed). */
static int queue_push(queue *q, item *it) {
    pthread_mutex_lock(&q->mu);
    while (q->count == q->cap && !q->stop) pthread_cond_wait(&q->changed, &q->mu);
    int ok = !q->stop;
    if (ok) {
        q->items[(q->head + q->count) % q->cap] = *it;
        q->count++;
        pthread_cond_broadcast(&q->changed);
    }
    pthread_mutex_unlock(&q->mu);
    if (!ok) item_free(it);
    return ok;
}

/* Pops up to max items into out (waiting until max are there or the producer is done); returns the count. */
static int queue_pop(queue *q, item *out, int max) {
    pthread_mutex_lock(&q->mu);
    while (q->count < max && !q->done) pthread_cond_wait(&q->changed, &q->mu);
    int n = q->count < max ? q->count : max;
    for (int i = 0; i < n; i++) {
        out[i] = q->items[q->head];
        q->head = (q->head + 1) % q->cap;
    }
    q->count -= n;
    pthread_cond_broadcast(&q->changed);
    pthread_mutex_unlock(&q->mu);
    return n;
}

static void queue_finish(queue *q, clxp_status st, const clxp_error *err) {
    pthread_mutex_lock(&q->mu);
    q->done = 1;
    q->st = st;
    if (st != CLXP_OK && err) q->err = *err;
    pthread_cond_broadcast(&q->changed);
    pthread_mutex_unlock(&q->mu);
}

/* Preprocess an RGB frame into a queue item owning a copy of the pixels. */
static clxp_status make_item(clxp_model *m, const uint8_t *rgb, int w, int h, int stride, item *it,
                             clxp_error *err) {
    const int S = m->info.image_size;
    it->rgb = malloc((size_t)w * h * 3);
    it->pixels = malloc((size_t)3 * S * S * sizeof(float));
    if (!it->rgb || !it->pixels) {
        item_free(it);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    }
    for (int y = 0; y < h; y++) memcpy(it->rgb + (size_t)y * w * 3, rgb + (size_t)y * stride, (size_t)w * 3);
    clxp_status st = clip_preprocess(&m->pp, it->rgb, w, h, 3 * w, it->pixels, NULL, err);
    if (st != CLXP_OK) item_free(it);
    return st;
}

/* The items of one frame: the whole frame, or in region mode one per box (clipped to the frame; empty boxes and
 * boxes of other detector labels than the target are skipped). Returns 0 when the consumer wants no more. */
static int push_frame_items(producer *p, const uint8_t *rgb, const clxp_result *meta, clxp_status *st,
                            clxp_error *err) {
    if (!p->boxes) {
        item it;
        memset(&it, 0, sizeof it);
        it.r = *meta;
        it.track = TRACK_VIDEO;
        if ((*st = make_item(p->vm, rgb, meta->width, meta->height, 3 * meta->width, &it, err)) != CLXP_OK) return 0;
        return queue_push(p->q, &it);
    }
    const box_frame *entries[64];
    int ne = boxes_for_frame(p->boxes, meta->frame_index, meta->time, meta->duration, entries, 64);
    if (ne > 64) {
        clxp_log(CLXP_LOG_WARN, "%s: frame %lld has more than 64 box lines; only the first 64 are used",
                 p->boxes->path, (long long)meta->frame_index);
        ne = 64;
    }
    int box_no = 0;
    for (int e = 0; e < ne; e++) {
        p->matched[entries[e] - p->boxes->frames] = 1;
        for (int k = 0; k < entries[e]->count; k++, box_no++) {
            const box *b = &p->boxes->boxes[entries[e]->first + k];
            if (p->target && !box_matches_target(b, p->target)) continue;
            int x, y, cw, ch;
            if (box_crop_rect(b, meta->width, meta->height, &x, &y, &cw, &ch) != 0) {
                clxp_log(CLXP_LOG_WARN, "%s:%d: box %d is empty inside the %dx%d frame, skipped", p->boxes->path,
                         entries[e]->line, k, meta->width, meta->height);
                continue;
            }
            item it;
            memset(&it, 0, sizeof it);
            it.r = *meta;
            it.track = TRACK_VIDEO;
            it.r.box_index = box_no;
            it.r.box_x = (float)x;
            it.r.box_y = (float)y;
            it.r.box_w = (float)cw;
            it.r.box_h = (float)ch;
            it.r.box_label = b->label;
            it.r.box_score = b->score;
            it.r.width = cw;
            it.r.height = ch;
            if ((*st = make_item(p->vm, rgb + ((size_t)y * meta->width + x) * 3, cw, ch, 3 * meta->width, &it, err)) !=
                CLXP_OK)
                return 0;
            if (!queue_push(p->q, &it)) return 0;
        }
    }
    return 1;
}

/* A still image is frame 0 at time 0 of stream 0. */
static clxp_status produce_still(producer *p, clxp_error *err) {
    clxp_rgb_image img;
    clxp_status st = image_load(p->input, &img, err);
    if (st != CLXP_OK) return st;
    clxp_result meta = {.input = p->input, .stream_index = 0, .media_type = 'v', .pts = 0, .width = img.width,
                        .height = img.height, .box_index = -1, .box_score = NAN};
    push_frame_items(p, img.data, &meta, &st, err);
    p->decoded = 1;
    image_free(&img);
    return st;
}

/* The next audio window into *it (*got = 1), or *got = 0 after the last one. Windows are
 * [k * hop, k * hop + window) samples while samples remain; the window that reaches the end of the stream is the
 * last and holds what is left (at least one sample). A window holding nothing after the previous window's end
 * (the stream ended exactly there, hop < window) is not made. */
static clxp_status next_window(producer *p, item *it, int *got, clxp_error *err) {
    const size_t W = p->window, H = p->hop;
    const int rate = p->am->info.sample_rate;
    float *buf = p->abuf;
    clxp_status st = CLXP_OK;
    *got = 0;
    if (p->audio_end) return CLXP_OK;
    if (p->windows > 0) { /* past the previous window (which was full: a short one is the last) */
        if (H < W) { /* slide: keep the overlap */
            memmove(buf, buf + H, (W - H) * sizeof *buf);
            p->have = W - H;
        } else { /* skip the gap between windows */
            p->have = 0;
            for (size_t skip = H - W; skip > 0;) {
                size_t n = 0;
                if ((st = audio_read(p->ar, buf, skip < W ? skip : W, &n, err)) != CLXP_OK || n == 0) break;
                skip -= n;
            }
            if (st != CLXP_OK) return st;
        }
    }
    int eof = 0;
    size_t fresh = 0; /* samples read for this window (not kept from the previous one) */
    while (p->have < W && !eof) { /* fill the window */
        size_t n = 0;
        if ((st = audio_read(p->ar, buf + p->have, W - p->have, &n, err)) != CLXP_OK) return st;
        p->have += n;
        fresh += n;
        eof = n == 0;
    }
    if (fresh == 0) { /* nothing after the previous window: it was the last */
        p->audio_end = 1;
        return CLXP_OK;
    }
    const int64_t k = p->windows;
    memset(it, 0, sizeof *it);
    it->track = TRACK_AUDIO;
    it->r = (clxp_result){.input = p->input, .stream_index = audio_stream_index(p->ar), .media_type = 'a',
                          .frame_index = k, .pts = INT64_MIN, .time = p->audio_start + (double)k * H / rate,
                          .duration = (double)p->have / rate, .box_index = -1, .box_score = NAN};
    it->pixels = malloc(model_input_size(p->am) * sizeof(float));
    if (!it->pixels) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    st = model_audio_features(p->am, buf, p->have, it->pixels, &it->is_longer, err);
    if (st != CLXP_OK) {
        item_free(it);
        return st;
    }
    p->windows = k + 1;
    if (p->have < W) p->audio_end = 1; /* a short window is the last */
    *got = 1;
    return CLXP_OK;
}

/* The decoding thread: video frames and audio windows, merged by start time (a frame first on a tie, and a frame
 * without a timestamp as soon as it comes), into the queue. */
static void *produce(void *arg) {
    producer *p = arg;
    clxp_error err = {0};
    clxp_status st = CLXP_OK;
    if (p->still) {
        st = produce_still(p, &err);
        queue_finish(p->q, st, &err);
        return NULL;
    }
    int video_end = !p->vr, have_frame = 0, have_window = 0;
    video_frame f;
    item w;
    memset(&f, 0, sizeof f);
    memset(&w, 0, sizeof w);
    for (;;) {
        if (p->interrupt && p->interrupt(p->interrupt_user)) break;
        if (!video_end && !have_frame) {
            int eof = 0;
            st = video_next(p->vr, &f, &eof, &err);
            p->decoded = video_decoded_count(p->vr);
            if (st != CLXP_OK) break;
            video_end = eof;
            have_frame = !eof;
        }
        if (p->ar && !have_window) {
            if ((st = next_window(p, &w, &have_window, &err)) != CLXP_OK) break;
            if (!p->vr) p->decoded = p->windows;
        }
        if (have_frame && !(have_window && f.time > w.r.time)) {
            clxp_result meta = {.input = p->input,
                                .stream_index = video_stream_index(p->vr),
                                .media_type = 'v',
                                .frame_index = f.frame_index,
                                .pts = f.pts,
                                .time = f.time,
                                .duration = f.duration,
                                .width = f.width,
                                .height = f.height,
                                .box_index = -1,
                                .box_score = NAN};
            have_frame = 0;
            if (!push_frame_items(p, f.rgb, &meta, &st, &err)) break;
        } else if (have_window) {
            have_window = 0;
            if (!queue_push(p->q, &w)) break;
        } else {
            break; /* both streams ended */
        }
    }
    if (have_window) item_free(&w);
    queue_finish(p->q, st, &err);
    return NULL;
}

/* One model of the run, its batch buffers and the items waiting for a full batch. */
typedef struct track {
    clxp_model *m; /* NULL: not used in this run */
    const clxp_labelbank *b;
    int n_classes;
    float *pix, *emb, *scores;
    item *pending; /* [batch] */
    int n_pending;
} track;

typedef struct consumer {
    track t[N_TRACKS];
    const clxp_run_options *opt;
    clxp_result_fn on_result;
    void *user;
} consumer;

/* Classify a track's pending items as one batch, report them in order and free them; *stop = 1 if the callback
 * asked to stop. */
static clxp_status flush_track(consumer *c, track *t, int *stop, clxp_error *err) {
    int is_longer[MAX_BATCH];
    const int n = t->n_pending;
    const size_t plane = model_input_size(t->m);
    for (int i = 0; i < n; i++) {
        memcpy(t->pix + (size_t)i * plane, t->pending[i].pixels, plane * sizeof(float));
        is_longer[i] = t->pending[i].is_longer;
    }
    clxp_status st = t->m->kind == MODEL_CLAP ? model_encode_features(t->m, t->pix, is_longer, n, t->emb, err)
                                              : model_encode_pixels(t->m, t->pix, n, t->emb, err);
    if (st == CLXP_OK) st = clxp_classify(t->b, t->emb, n, &c->opt->score, t->scores, err);
    for (int i = 0; i < n && st == CLXP_OK && !*stop; i++) {
        item *it = &t->pending[i];
        it->r.n_classes = t->n_classes;
        it->r.scores = t->scores + (size_t)i * t->n_classes;
        it->r.rgb = it->rgb;
        it->r.bank = t->b;
        if (c->on_result && c->on_result(c->user, &it->r)) *stop = 1;
    }
    for (int i = 0; i < n; i++) item_free(&t->pending[i]);
    t->n_pending = 0;
    return st;
}

/* Batch buffers of a track; 0 when out of memory. */
static int track_init(track *t, clxp_model *m, const clxp_labelbank *b, int batch) {
    t->m = m;
    t->b = b;
    t->n_classes = clxp_labelbank_n_classes(b);
    t->pix = malloc((size_t)batch * model_input_size(m) * sizeof(float));
    t->emb = malloc((size_t)batch * m->info.embed_dim * sizeof(float));
    t->scores = malloc((size_t)batch * (t->n_classes > 0 ? t->n_classes : 1) * sizeof(float));
    t->pending = calloc((size_t)batch, sizeof *t->pending);
    return t->pix && t->emb && t->scores && t->pending;
}

static void track_free(track *t) {
    for (int i = 0; i < t->n_pending; i++) item_free(&t->pending[i]);
    free(t->pending);
    free(t->pix);
    free(t->emb);
    free(t->scores);
}

/* A stream the combined run cannot classify (no such stream, no decoder): warn and go on without it. */
static clxp_status skip_stream(clxp_status st, clxp_error *err, const char *other) {
    if (st != CLXP_ERR_UNSUPPORTED) return st;
    clxp_log(CLXP_LOG_WARN, "%s; classifying the %s only", err->msg, other);
    return CLXP_OK;
}

/* The run: vm/vb classify the video stream (or the still image), am/ab the audio stream; either may be NULL.
 * combined: a clxp_run_file_av run (one demuxer for both streams; `stream` is the video stream's specifier and
 * audio_stream the audio one's; a missing stream of one kind is skipped with a warning). */
static clxp_status run(clxp_model *vm, const clxp_labelbank *vb, clxp_model *am, const clxp_labelbank *ab,
                       const char *input, const clxp_run_options *opt, int combined, clxp_result_fn on_result,
                       void *user, clxp_error *err) {
    clxp_error local;
    if (!err) err = &local; /* skip_stream reads the message */
    const int batch = opt->batch > 0 ? (opt->batch < MAX_BATCH ? opt->batch : MAX_BATCH) : DEFAULT_BATCH;
    consumer c = {.opt = opt, .on_result = on_result, .user = user};
    producer p = {.vm = vm, .am = am, .input = input, .target = opt->target,
                  .still = vm && media_is_still_image(input)};
    p.vo = (video_options){.stream = opt->stream,
                           .keyframes_only = opt->keyframes_only,
                           .skip_nonref = opt->skip_nonref,
                           .start = opt->start,
                           .duration = opt->duration,
                           .scene = opt->scene,
                           .every_t = opt->every_t,
                           .every_n = opt->every_n,
                           .vf = opt->vf,
                           .interrupt = opt->interrupt,
                           .interrupt_user = opt->interrupt_user};
    p.interrupt = opt->interrupt;
    p.interrupt_user = opt->interrupt_user;
    box_set boxes;
    memset(&boxes, 0, sizeof boxes);
    queue q;
    memset(&q, 0, sizeof q);
    q.cap = 2 * batch; /* one batch being decoded while one is classified */
    demuxer *dmx = NULL;
    q.items = calloc((size_t)q.cap, sizeof *q.items);
    clxp_status st = q.items ? CLXP_OK : clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    if (st == CLXP_OK && !vm &&
        (opt->boxes || opt->scene > 0 || opt->vf || opt->keyframes_only || opt->skip_nonref || opt->every_n > 1 ||
         opt->every_t > 0))
        st = clxp_err_set(err, CLXP_ERR_INVALID,
                          "%s: boxes, --scene, --vf, --keyframes, --skip-nonref, --every and --interval select video "
                          "frames; a CLAP model classifies audio windows (--hop sets their spacing)",
                          input);
    if (st == CLXP_OK && opt->hop < 0) st = clxp_err_set(err, CLXP_ERR_INVALID, "hop must be >= 0 seconds");
    if (st == CLXP_OK && opt->boxes) {
        st = boxes_load(opt->boxes, &boxes, err);
        p.boxes = &boxes;
        p.matched = calloc((size_t)boxes.n_frames + 1, 1);
        if (st == CLXP_OK && !p.matched) st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    }
    if (st == CLXP_OK && combined && !p.still) {
        st = demux_open(input, opt->interrupt, opt->interrupt_user, &dmx, err);
        p.vo.demux = dmx;
    }
    if (st == CLXP_OK && vm && !p.still) {
        st = video_open(input, &p.vo, &p.vr, err);
        if (combined && (st = skip_stream(st, err, "audio")) == CLXP_OK && !p.vr) p.vm = vm = NULL;
    }
    if (st == CLXP_OK && am && p.still) {
        clxp_log(CLXP_LOG_WARN, "%s: a still image has no sound; classifying the picture only", input);
        p.am = am = NULL;
    }
    if (st == CLXP_OK && am) {
        audio_options ao = {.stream = combined ? opt->audio_stream : opt->stream,
                            .sample_rate = am->info.sample_rate,
                            .start = opt->start,
                            .duration = opt->duration,
                            .interrupt = opt->interrupt,
                            .interrupt_user = opt->interrupt_user,
                            .demux = dmx};
        st = audio_open(input, &ao, &p.ar, err);
        if (combined && (st = skip_stream(st, err, "pictures")) == CLXP_OK && !p.ar) p.am = am = NULL;
        if (am) p.window = model_audio_window(am);
    }
    if (st == CLXP_OK && !vm && !am)
        st = clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: neither a video nor an audio stream to classify", input);
    if (st == CLXP_OK && dmx && opt->start > 0) { /* the readers do not seek a shared demuxer: seek once, early
                                                   * enough for both (the audio reader's 0.5 s warm-up) */
        double t = p.ar ? opt->start - 0.5 : opt->start;
        int idx = p.vr ? video_stream_index(p.vr) : audio_stream_index(p.ar);
        if (t > 0 && demux_seek(dmx, idx, t) < 0)
            clxp_log(CLXP_LOG_WARN, "%s: cannot seek to %.3f s, decoding from the start", input, opt->start);
    }
    if (st == CLXP_OK && p.vr) p.duration = video_duration(p.vr);
    if (st == CLXP_OK && p.ar) {
        double d = audio_duration(p.ar);
        if (d > p.duration) p.duration = d;
        p.hop = opt->hop > 0 ? (size_t)llround(opt->hop * am->info.sample_rate) : p.window;
        if (p.hop == 0) p.hop = 1;
        p.audio_start = opt->start;
        p.abuf = malloc(p.window * sizeof *p.abuf);
        if (!p.abuf) st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    }
    if (st == CLXP_OK && ((vm && !track_init(&c.t[TRACK_VIDEO], vm, vb, batch)) ||
                          (am && !track_init(&c.t[TRACK_AUDIO], am, ab, batch))))
        st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&q.mu, NULL);
    pthread_cond_init(&q.changed, NULL);
    p.q = &q;
    pthread_t th;
    int started = st == CLXP_OK && pthread_create(&th, NULL, produce, &p) == 0;
    if (st == CLXP_OK && !started) st = clxp_err_set(err, CLXP_ERR_NOMEM, "cannot start the decoding thread");
    /* Each model classifies its items in batches of `batch` (the last one partial), formed exactly as a run with
     * that model alone forms them: so the scores are bit-identical to a single-model run's (the GEMM's rounding
     * can depend on the batch size). */
    int stop = 0;
    while (started && st == CLXP_OK && !stop) {
        item it;
        if (queue_pop(&q, &it, 1) == 1) {
            if (opt->interrupt && opt->interrupt(opt->interrupt_user)) { /* drop the items in flight */
                item_free(&it);
                stop = 1;
                break;
            }
            track *t = &c.t[it.track];
            t->pending[t->n_pending++] = it;
            if (t->n_pending == batch) {
                st = flush_track(&c, t, &stop, err);
                if (opt->progress) opt->progress(opt->progress_user, it.r.time, p.duration, p.decoded);
            }
            continue;
        }
        for (;;) { /* the producer is done: the partial batches, the one that starts earliest first */
            track *t = NULL;
            for (int k = 0; k < N_TRACKS; k++)
                if (c.t[k].n_pending > 0 && (!t || c.t[k].pending[0].r.time < t->pending[0].r.time)) t = &c.t[k];
            if (!t || st != CLXP_OK || stop) break;
            double last = t->pending[t->n_pending - 1].r.time;
            st = flush_track(&c, t, &stop, err);
            if (opt->progress) opt->progress(opt->progress_user, last, p.duration, p.decoded);
        }
        break;
    }
    if (started) {
        pthread_mutex_lock(&q.mu);
        q.stop = 1; /* unblocks a producer waiting for room */
        pthread_cond_broadcast(&q.changed);
        pthread_mutex_unlock(&q.mu);
        pthread_join(th, NULL);
        if (st == CLXP_OK && q.st != CLXP_OK) {
            st = q.st;
            if (err) *err = q.err;
        }
        if (p.ar && audio_corrupt_count(p.ar) > 0)
            clxp_log(CLXP_LOG_WARN, "%s: %lld corrupt audio packets or frames were skipped", input,
                     (long long)audio_corrupt_count(p.ar));
        if (p.ar && audio_nonfinite_count(p.ar) > 0)
            clxp_log(CLXP_LOG_WARN, "%s: %lld NaN/Inf audio samples were replaced by silence", input,
                     (long long)audio_nonfinite_count(p.ar));
        if (p.vr && video_corrupt_count(p.vr) > 0)
            clxp_log(CLXP_LOG_WARN, "%s: %lld corrupt packets or frames were skipped", input,
                     (long long)video_corrupt_count(p.vr));
        /* A video that yields no frame at all is an error, not an empty result: every packet corrupt, or a stream
         * without frames (not when a --start past the end, or an interruption, explains it). */
        const int interrupted = opt->interrupt && opt->interrupt(opt->interrupt_user);
        if (st == CLXP_OK && !stop && !interrupted && p.vr && video_decoded_count(p.vr) == 0) {
            if (video_corrupt_count(p.vr) > 0)
                st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: no frame could be decoded (%lld corrupt packets or frames)",
                                  input, (long long)video_corrupt_count(p.vr));
            else if (opt->start <= 0)
                st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: the video stream has no frames", input);
        }
        if (st == CLXP_OK && !stop && !interrupted && p.ar && p.decoded == 0) { /* the same for audio */
            if (audio_corrupt_count(p.ar) > 0)
                st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: no audio could be decoded (%lld corrupt packets or frames)",
                                  input, (long long)audio_corrupt_count(p.ar));
            else if (opt->start <= 0)
                st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: the audio stream has no samples", input);
        }
        if (st == CLXP_OK && !stop && p.boxes) boxes_warn_unmatched(p.boxes, p.matched);
    }
    for (int i = 0; i < q.count; i++) item_free(&q.items[(q.head + i) % q.cap]);
    pthread_mutex_destroy(&q.mu);
    pthread_cond_destroy(&q.changed);
    video_close(p.vr);
    audio_close(p.ar);
    demux_close(dmx); /* after the readers that use it */
    boxes_free(&boxes);
    free(p.matched);
    free(p.abuf);
    free(q.items);
    for (int k = 0; k < N_TRACKS; k++) track_free(&c.t[k]);
    return st;
}

/* The bank must be one made by the model (a bank of another model scores wrong embeddings, or reads out of bounds). */
static clxp_status check_bank(const clxp_model *m, const clxp_labelbank *b, clxp_error *err) {
    if (labelbank_fits(b, m)) return CLXP_OK;
    return clxp_err_set(err, CLXP_ERR_INVALID, "the label bank was made by another model than %s", m->info.path);
}

clxp_status clxp_run_file(clxp_model *m, const clxp_labelbank *b, const char *input, const clxp_run_options *opt,
                          clxp_result_fn on_result, void *user, clxp_error *err) {
    static const clxp_run_options defaults;
    if (!opt) opt = &defaults;
    if (!m || !b || !input) return clxp_err_set(err, CLXP_ERR_INVALID, "clxp_run_file: missing model, bank or input");
    clxp_status st = check_bank(m, b, err);
    if (st != CLXP_OK) return st;
    if (m->kind == MODEL_CLAP) return run(NULL, NULL, m, b, input, opt, 0, on_result, user, err);
    return run(m, b, NULL, NULL, input, opt, 0, on_result, user, err);
}

clxp_status clxp_run_file_av(clxp_model *video_model, const clxp_labelbank *video_bank, clxp_model *audio_model,
                             const clxp_labelbank *audio_bank, const char *input, const clxp_run_options *opt,
                             clxp_result_fn on_result, void *user, clxp_error *err) {
    static const clxp_run_options defaults;
    if (!opt) opt = &defaults;
    if (!video_model || !video_bank || !audio_model || !audio_bank || !input)
        return clxp_err_set(err, CLXP_ERR_INVALID, "clxp_run_file_av: missing model, bank or input");
    if (video_model->kind != MODEL_CLIP)
        return clxp_err_set(err, CLXP_ERR_INVALID, "%s is a CLAP (audio) model; the video model must be a CLIP model",
                            video_model->info.path);
    if (audio_model->kind != MODEL_CLAP)
        return clxp_err_set(err, CLXP_ERR_INVALID, "%s is a CLIP (image) model; the audio model must be a CLAP model",
                            audio_model->info.path);
    clxp_status st = check_bank(video_model, video_bank, err);
    if (st == CLXP_OK) st = check_bank(audio_model, audio_bank, err);
    if (st != CLXP_OK) return st;
    return run(video_model, video_bank, audio_model, audio_bank, input, opt, 1, on_result, user, err);
}
