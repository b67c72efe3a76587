/* clxp_run_file: a whole input through the model. A decoding thread reads, selects and preprocesses frames
 * ahead of inference into a bounded queue; the calling thread runs the model on batches and reports the
 * results in order. So decoding overlaps inference, and memory stays flat however long the input is. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "io/boxes.h"
#include "media/audio.h"
#include "media/image.h"
#include "media/preprocess.h"
#include "media/video.h"
#include "util/error.h"

#define DEFAULT_BATCH 16
#define MAX_BATCH 1024

typedef struct item {
    clxp_result r; /* scores and rgb are set when reported */
    uint8_t *rgb;  /* the frame (or crop) as classified; NULL for audio */
    float *pixels; /* model input: preprocessed pixels [3, S, S] (CLIP) or log-mel features [C, T, mels] (CLAP) */
    int is_longer; /* CLAP: the clip goes through the fusion branch */
} item;

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
    clxp_model *m;
    const char *input;
    video_options vo;
    video_reader *vr;
    double duration;
    int64_t decoded;
    const box_set *boxes;    /* region mode: classify these crops instead of whole frames */
    unsigned char *matched;  /* per box_set entry: applied to a processed frame */
    const char *target;
    int still; /* the input is a still image (decoded like the image files of clxp_encode_image_files) */
    int (*interrupt)(void *user);
    void *interrupt_user;
    audio_reader *ar; /* CLAP models: the audio source */
    size_t window, hop; /* samples */
} producer;

/* Floats of one model input: pixels [3, S, S] or features [C, frames, mels]. */
static size_t model_input_size(const clxp_model *m) {
    if (m->kind == MODEL_CLAP) return (size_t)clap_fe_channels(m->fe) * clap_fe_frames(m->fe) * clap_fe_mels(m->fe);
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
        if ((*st = make_item(p->m, rgb, meta->width, meta->height, 3 * meta->width, &it, err)) != CLXP_OK) return 0;
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
            it.r.box_index = box_no;
            it.r.box_x = (float)x;
            it.r.box_y = (float)y;
            it.r.box_w = (float)cw;
            it.r.box_h = (float)ch;
            it.r.box_label = b->label;
            it.r.box_score = b->score;
            it.r.width = cw;
            it.r.height = ch;
            if ((*st = make_item(p->m, rgb + ((size_t)y * meta->width + x) * 3, cw, ch, 3 * meta->width, &it, err)) !=
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

/* Audio windows: [k * hop, k * hop + window) samples while samples remain; the window that reaches the end of the
 * stream is the last and holds what is left (at least one sample). A window holding nothing after the previous
 * window's end (the stream ended exactly there, hop < window) is not made. */
static clxp_status produce_audio(producer *p, clxp_error *err) {
    const size_t W = p->window, H = p->hop, nf = model_input_size(p->m);
    float *buf = malloc(W * sizeof *buf);
    if (!buf) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    clxp_status st = CLXP_OK;
    const int rate = p->m->info.sample_rate;
    size_t have = 0; /* valid samples at the start of buf */
    for (int64_t k = 0;; k++) {
        if (p->interrupt && p->interrupt(p->interrupt_user)) break;
        int eof = 0;
        size_t fresh = 0; /* samples read for this window (not kept from the previous one) */
        while (have < W && !eof) { /* fill the window */
            size_t got = 0;
            if ((st = audio_read(p->ar, buf + have, W - have, &got, err)) != CLXP_OK) break;
            have += got;
            fresh += got;
            eof = got == 0;
        }
        if (st != CLXP_OK || fresh == 0) break; /* nothing after the previous window: it was the last */
        item it;
        memset(&it, 0, sizeof it);
        it.r = (clxp_result){.input = p->input, .stream_index = audio_stream_index(p->ar), .media_type = 'a',
                             .frame_index = k, .pts = INT64_MIN, .time = p->vo.start + (double)k * H / rate,
                             .duration = (double)have / rate, .box_index = -1, .box_score = NAN};
        it.pixels = malloc(nf * sizeof(float));
        if (!it.pixels) {
            st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
            break;
        }
        st = clap_fe_extract(p->m->fe, buf, have, NULL, it.pixels, &it.is_longer, NULL, err);
        if (st != CLXP_OK) {
            item_free(&it);
            break;
        }
        p->decoded = k + 1;
        if (!queue_push(p->q, &it) || have < W) break; /* a short window is the last */
        if (H < W) { /* slide: keep the overlap */
            memmove(buf, buf + H, (W - H) * sizeof *buf);
            have = W - H;
        } else { /* skip the gap between windows */
            have = 0;
            for (size_t skip = H - W; skip > 0;) {
                size_t got = 0;
                if ((st = audio_read(p->ar, buf, skip < W ? skip : W, &got, err)) != CLXP_OK || got == 0) break;
                skip -= got;
            }
            if (st != CLXP_OK) break;
        }
    }
    free(buf);
    return st;
}

static void *produce(void *arg) {
    producer *p = arg;
    clxp_error err = {0};
    clxp_status st = CLXP_OK;
    if (p->ar) {
        st = produce_audio(p, &err);
        queue_finish(p->q, st, &err);
        return NULL;
    }
    if (p->still) {
        st = produce_still(p, &err);
        queue_finish(p->q, st, &err);
        return NULL;
    }
    for (;;) {
        if (p->interrupt && p->interrupt(p->interrupt_user)) break;
        video_frame f;
        int eof = 0;
        st = video_next(p->vr, &f, &eof, &err);
        p->decoded = video_decoded_count(p->vr);
        if (st != CLXP_OK || eof) break;
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
        if (!push_frame_items(p, f.rgb, &meta, &st, &err)) break;
    }
    queue_finish(p->q, st, &err);
    return NULL;
}

typedef struct consumer {
    clxp_model *m;
    const clxp_labelbank *b;
    const clxp_run_options *opt;
    clxp_result_fn on_result;
    void *user;
    float *pix, *emb, *scores;
    int batch;
} consumer;

/* Classify n items and report them; *stop = 1 if the callback asked to stop. */
static clxp_status classify_items(consumer *c, item *items, int n, int *stop, clxp_error *err) {
    const int C = clxp_labelbank_n_classes(c->b);
    const size_t plane = model_input_size(c->m);
    int is_longer[MAX_BATCH];
    for (int i = 0; i < n; i++) {
        memcpy(c->pix + i * plane, items[i].pixels, plane * sizeof(float));
        is_longer[i] = items[i].is_longer;
    }
    clxp_status st = c->m->kind == MODEL_CLAP ? model_encode_features(c->m, c->pix, is_longer, n, c->emb, err)
                                              : model_encode_pixels(c->m, c->pix, n, c->emb, err);
    if (st == CLXP_OK) st = clxp_classify(c->b, c->emb, n, &c->opt->score, c->scores, err);
    for (int i = 0; i < n && st == CLXP_OK && !*stop; i++) {
        items[i].r.n_classes = C;
        items[i].r.scores = c->scores + (size_t)i * C;
        items[i].r.rgb = items[i].rgb;
        if (c->on_result && c->on_result(c->user, &items[i].r)) *stop = 1;
    }
    return st;
}

clxp_status clxp_run_file(clxp_model *m, const clxp_labelbank *b, const char *input, const clxp_run_options *opt,
                          clxp_result_fn on_result, void *user, clxp_error *err) {
    static const clxp_run_options defaults;
    if (!opt) opt = &defaults;
    if (!m || !b || !input) return clxp_err_set(err, CLXP_ERR_INVALID, "clxp_run_file: missing model, bank or input");
    const int batch = opt->batch > 0 ? (opt->batch < MAX_BATCH ? opt->batch : MAX_BATCH) : DEFAULT_BATCH;
    const int dim = m->info.embed_dim, C = clxp_labelbank_n_classes(b);
    consumer c = {m, b, opt, on_result, user, NULL, NULL, NULL, batch};
    producer p = {.m = m, .input = input, .target = opt->target,
                  .still = m->kind == MODEL_CLIP && media_is_still_image(input)};
    p.vo = (video_options){opt->stream, opt->keyframes_only, opt->start,    opt->duration,    opt->scene,
                           opt->every_t, opt->every_n,        opt->vf,       opt->interrupt, opt->interrupt_user};
    p.interrupt = opt->interrupt;
    p.interrupt_user = opt->interrupt_user;
    box_set boxes;
    memset(&boxes, 0, sizeof boxes);
    queue q;
    memset(&q, 0, sizeof q);
    q.cap = 2 * batch; /* one batch being decoded while one is classified */
    item *got = calloc((size_t)batch, sizeof *got);
    q.items = calloc((size_t)q.cap, sizeof *q.items);
    c.pix = malloc((size_t)batch * model_input_size(m) * sizeof(float));
    c.emb = malloc((size_t)batch * dim * sizeof(float));
    c.scores = malloc((size_t)batch * C * sizeof(float));
    clxp_status st = (c.pix && c.emb && c.scores && got && q.items)
                         ? CLXP_OK
                         : clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    if (st == CLXP_OK && m->kind == MODEL_CLAP && (opt->boxes || opt->scene > 0 || opt->vf || opt->keyframes_only ||
                                                   opt->every_n > 1 || opt->every_t > 0))
        st = clxp_err_set(err, CLXP_ERR_INVALID,
                          "%s: boxes, --scene, --vf, --keyframes, --every and --interval select video frames; a CLAP "
                          "model classifies audio windows (--hop sets their spacing)",
                          input);
    if (st == CLXP_OK && opt->hop < 0) st = clxp_err_set(err, CLXP_ERR_INVALID, "hop must be >= 0 seconds");
    if (st == CLXP_OK && opt->boxes) {
        st = boxes_load(opt->boxes, &boxes, err);
        p.boxes = &boxes;
        p.matched = calloc((size_t)boxes.n_frames + 1, 1);
        if (st == CLXP_OK && !p.matched) st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    }
    if (st == CLXP_OK && m->kind == MODEL_CLAP) {
        audio_options ao = {opt->stream, m->info.sample_rate, opt->start, opt->duration, opt->interrupt,
                            opt->interrupt_user};
        st = audio_open(input, &ao, &p.ar, err);
        p.window = (size_t)clap_fe_config(m->fe)->nb_max_samples;
        p.hop = opt->hop > 0 ? (size_t)llround(opt->hop * m->info.sample_rate) : p.window;
        if (p.hop == 0) p.hop = 1;
        if (st == CLXP_OK) p.duration = audio_duration(p.ar);
    } else if (st == CLXP_OK && !p.still) {
        st = video_open(input, &p.vo, &p.vr, err);
        if (st == CLXP_OK) p.duration = video_duration(p.vr);
    }
    pthread_mutex_init(&q.mu, NULL);
    pthread_cond_init(&q.changed, NULL);
    p.q = &q;
    pthread_t th;
    int started = st == CLXP_OK && pthread_create(&th, NULL, produce, &p) == 0;
    if (st == CLXP_OK && !started) st = clxp_err_set(err, CLXP_ERR_NOMEM, "cannot start the decoding thread");
    int stop = 0, n;
    while (started && st == CLXP_OK && !stop && (n = queue_pop(&q, got, batch)) > 0) {
        if (opt->interrupt && opt->interrupt(opt->interrupt_user)) stop = 1; /* drop the batch in flight */
        if (stop) {
            for (int i = 0; i < n; i++) item_free(&got[i]);
            break;
        }
        st = classify_items(&c, got, n, &stop, err);
        if (opt->progress) opt->progress(opt->progress_user, got[n - 1].r.time, p.duration, p.decoded);
        for (int i = 0; i < n; i++) item_free(&got[i]);
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
        if (st == CLXP_OK && !stop && p.boxes) boxes_warn_unmatched(p.boxes, p.matched);
    }
    for (int i = 0; i < q.count; i++) item_free(&q.items[(q.head + i) % q.cap]);
    pthread_mutex_destroy(&q.mu);
    pthread_cond_destroy(&q.changed);
    video_close(p.vr);
    audio_close(p.ar);
    boxes_free(&boxes);
    free(p.matched);
    free(q.items);
    free(got);
    free(c.pix);
    free(c.emb);
    free(c.scores);
    return st;
}
