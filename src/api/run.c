/* clxp_run_file: a whole input through the model. A decoding thread reads, selects and preprocesses frames
 * ahead of inference into a bounded queue; the calling thread runs the model on batches and reports the
 * results in order. So decoding overlaps inference, and memory stays flat however long the input is. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "media/image.h"
#include "media/preprocess.h"
#include "media/video.h"
#include "util/error.h"

#define DEFAULT_BATCH 16
#define MAX_BATCH 1024

typedef struct item {
    clxp_result r; /* scores and rgb are set when reported */
    uint8_t *rgb;  /* the frame (or crop) as classified */
    float *pixels; /* preprocessed [3, S, S] */
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
} producer;

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
static clxp_status make_item(clxp_model *m, const uint8_t *rgb, int w, int h, item *it, clxp_error *err) {
    const int S = m->info.image_size;
    size_t nb = (size_t)w * h * 3;
    it->rgb = malloc(nb);
    it->pixels = malloc((size_t)3 * S * S * sizeof(float));
    if (!it->rgb || !it->pixels) {
        item_free(it);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    }
    memcpy(it->rgb, rgb, nb);
    clxp_status st = clip_preprocess(&m->pp, rgb, w, h, 3 * w, it->pixels, NULL, err);
    if (st != CLXP_OK) item_free(it);
    return st;
}

static void *produce(void *arg) {
    producer *p = arg;
    clxp_error err = {0};
    clxp_status st = CLXP_OK;
    for (;;) {
        video_frame f;
        int eof = 0;
        st = video_next(p->vr, &f, &eof, &err);
        p->decoded = video_decoded_count(p->vr);
        if (st != CLXP_OK || eof) break;
        item it;
        memset(&it, 0, sizeof it);
        it.r = (clxp_result){.input = p->input,
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
        if ((st = make_item(p->m, f.rgb, f.width, f.height, &it, &err)) != CLXP_OK) break;
        if (!queue_push(p->q, &it)) break;
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

/* Classify n items and report them; returns 1 if the callback asked to stop. */
static clxp_status classify_items(consumer *c, item *items, int n, int *stop, clxp_error *err) {
    const int S = c->m->info.image_size, C = clxp_labelbank_n_classes(c->b);
    const size_t plane = (size_t)3 * S * S;
    for (int i = 0; i < n; i++) memcpy(c->pix + i * plane, items[i].pixels, plane * sizeof(float));
    clxp_status st = model_encode_pixels(c->m, c->pix, n, c->emb, err);
    if (st == CLXP_OK) st = clxp_classify(c->b, c->emb, n, &c->opt->score, c->scores, err);
    for (int i = 0; i < n && st == CLXP_OK && !*stop; i++) {
        items[i].r.n_classes = C;
        items[i].r.scores = c->scores + (size_t)i * C;
        items[i].r.rgb = items[i].rgb;
        if (c->on_result && c->on_result(c->user, &items[i].r)) *stop = 1;
    }
    return st;
}

static clxp_status run_still_image(consumer *c, const char *input, clxp_error *err) {
    clxp_rgb_image img;
    clxp_status st = image_load(input, &img, err);
    if (st != CLXP_OK) return st;
    item it;
    memset(&it, 0, sizeof it);
    it.r = (clxp_result){.input = input, .stream_index = 0, .media_type = 'v', .pts = 0, .width = img.width,
                         .height = img.height, .box_index = -1, .box_score = NAN};
    st = make_item(c->m, img.data, img.width, img.height, &it, err);
    image_free(&img);
    int stop = 0;
    if (st == CLXP_OK) st = classify_items(c, &it, 1, &stop, err);
    if (st == CLXP_OK && c->opt->progress) c->opt->progress(c->opt->progress_user, 0, 0, 1);
    item_free(&it);
    return st;
}

clxp_status clxp_run_file(clxp_model *m, const clxp_labelbank *b, const char *input, const clxp_run_options *opt,
                          clxp_result_fn on_result, void *user, clxp_error *err) {
    static const clxp_run_options defaults;
    if (!opt) opt = &defaults;
    if (!m || !b || !input) return clxp_err_set(err, CLXP_ERR_INVALID, "clxp_run_file: missing model, bank or input");
    if (opt->boxes) return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: --boxes is not supported yet", opt->boxes);
    const int batch = opt->batch > 0 ? (opt->batch < MAX_BATCH ? opt->batch : MAX_BATCH) : DEFAULT_BATCH;
    const int S = m->info.image_size, dim = m->info.embed_dim, C = clxp_labelbank_n_classes(b);
    consumer c = {m, b, opt, on_result, user, NULL, NULL, NULL, batch};
    c.pix = malloc((size_t)batch * 3 * S * S * sizeof(float));
    c.emb = malloc((size_t)batch * dim * sizeof(float));
    c.scores = malloc((size_t)batch * C * sizeof(float));
    item *got = calloc((size_t)batch, sizeof *got);
    clxp_status st = (c.pix && c.emb && c.scores && got) ? CLXP_OK : clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    if (st == CLXP_OK && media_is_still_image(input)) {
        st = run_still_image(&c, input, err);
        goto out;
    }
    if (st != CLXP_OK) goto out;

    video_options vo = {opt->stream, opt->keyframes_only, opt->start, opt->duration, opt->scene, opt->every_t,
                        opt->every_n, opt->vf};
    video_reader *vr = NULL;
    if ((st = video_open(input, &vo, &vr, err)) != CLXP_OK) goto out;
    queue q;
    memset(&q, 0, sizeof q);
    q.cap = 2 * batch; /* one batch being decoded while one is classified */
    q.items = calloc((size_t)q.cap, sizeof *q.items);
    pthread_mutex_init(&q.mu, NULL);
    pthread_cond_init(&q.changed, NULL);
    producer p = {&q, m, input, vo, vr, video_duration(vr), 0};
    pthread_t th;
    int started = q.items && pthread_create(&th, NULL, produce, &p) == 0;
    if (!started) st = clxp_err_set(err, CLXP_ERR_NOMEM, "cannot start the decoding thread");
    int stop = 0, n;
    while (started && st == CLXP_OK && !stop && (n = queue_pop(&q, got, batch)) > 0) {
        st = classify_items(&c, got, n, &stop, err);
        if (opt->progress && n > 0) opt->progress(opt->progress_user, got[n - 1].r.time, p.duration, p.decoded);
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
        if (video_corrupt_count(vr) > 0)
            clxp_log(CLXP_LOG_WARN, "%s: %lld corrupt packets or frames were skipped", input,
                     (long long)video_corrupt_count(vr));
    }
    for (int i = 0; i < q.count; i++) item_free(&q.items[(q.head + i) % q.cap]);
    free(q.items);
    pthread_mutex_destroy(&q.mu);
    pthread_cond_destroy(&q.changed);
    video_close(vr);
out:
    free(got);
    free(c.pix);
    free(c.emb);
    free(c.scores);
    return st;
}
