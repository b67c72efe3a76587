/*
 * clxp — zero-shot classification of images (CLIP) against text prompts, in C.
 *
 * One public header. Every function that can fail returns a clxp_status and, when
 * the caller passes a clxp_error, fills it with a one-line message naming the file
 * and the cause. The library never prints to stdout and never exits; diagnostics go
 * to an optional log callback (clxp_set_log_callback).
 *
 * Ownership: every object created by a clxp_*_create/_load function is owned by the
 * caller and released with the matching _free function (NULL is accepted and ignored).
 * Output arrays are always caller-allocated.
 *
 * Thread safety: a clxp_model may be used by one thread at a time (it owns its
 * activation memory); distinct models may be used concurrently. A clxp_labelbank is
 * immutable after creation and may be read from any number of threads. Each call uses
 * the model's worker threads internally (clxp_load_options.n_threads).
 *
 * Example:
 *
 *     clxp_error err;
 *     clxp_model *m = NULL;
 *     if (clxp_model_load("clip-vit-base-patch32", NULL, &m, &err) != CLXP_OK) {
 *         fprintf(stderr, "%s\n", err.msg);
 *         return 1;
 *     }
 *     const char *labels[] = { "a cat", "a dog" };
 *     const char *templates[] = { "a photo of {}." };
 *     clxp_labelbank *bank = NULL;
 *     clxp_labelbank_create(m, labels, 2, templates, 1, &bank, &err);
 *     float emb[1024];                       // >= clxp_model_info_get(m)->embed_dim
 *     const char *files[] = { "cat.jpg" };
 *     clxp_encode_image_files(m, files, 1, emb, &err);
 *     float probs[2];
 *     clxp_classify(bank, emb, 1, NULL, probs, &err);
 *     printf("cat: %.3f dog: %.3f\n", probs[0], probs[1]);
 *     clxp_labelbank_free(bank);
 *     clxp_model_free(m);
 */
#ifndef CLXP_H
#define CLXP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CLXP_VERSION_STRING "0.1.0"

typedef enum clxp_status {
    CLXP_OK = 0,
    CLXP_ERR_IO = -1,          /* a file is missing or cannot be read/written */
    CLXP_ERR_FORMAT = -2,      /* a file is malformed (bad JSON, bad header, bad image data) */
    CLXP_ERR_UNSUPPORTED = -3, /* well-formed, but something clxp does not support */
    CLXP_ERR_INVALID = -4,     /* invalid argument or configuration value */
    CLXP_ERR_NOMEM = -5,       /* out of memory */
    CLXP_ERR_LIMIT = -6,       /* input exceeds a documented safety limit */
    CLXP_ERR_INTERNAL = -7     /* a bug in clxp or a failure of a backend library */
} clxp_status;

/* Filled by every failing call when non-NULL. msg is a single line without '\n'. */
typedef struct clxp_error {
    clxp_status code;
    char msg[1024];
} clxp_error;

/* Short static name for a status code ("io error", "format error", ...). */
const char *clxp_status_str(clxp_status s);

/* ---- logging (the only global state) ------------------------------------ */
typedef enum { CLXP_LOG_ERROR = 0, CLXP_LOG_WARN = 1, CLXP_LOG_INFO = 2, CLXP_LOG_DEBUG = 3 } clxp_log_level;
typedef void (*clxp_log_fn)(void *user, clxp_log_level level, const char *msg);
/* Install a log sink (NULL: discard, the default) and the most verbose level passed to it. */
void clxp_set_log_callback(clxp_log_fn fn, void *user, clxp_log_level max_level);

/* ---- models --------------------------------------------------------------- */
typedef struct clxp_model clxp_model;

/* Arithmetic of the matrix products. bf16: weights converted to bfloat16 and pre-packed once at load, activations
 * rounded to bf16 as they enter each linear layer, fp32 accumulation; LayerNorm, softmax, activations, residuals
 * and attention stay fp32. Looser than fp32 (bounds in the README); faster where the CPU has bf16 instructions. */
typedef enum {
    CLXP_PRECISION_AUTO = 0, /* bf16 where the CPU has AMX or AVX512-BF16, else fp32 */
    CLXP_PRECISION_FP32 = 1,
    CLXP_PRECISION_BF16 = 2
} clxp_precision;

typedef struct clxp_load_options {
    int n_threads;            /* worker threads for all compute; 0 = number of online CPUs */
    clxp_precision precision; /* 0 (AUTO) by default */
    /* Checkpoints other than HF directories (README "Model files"): */
    const char *tokenizer;    /* tokenizer.json (or a CLIP merges.txt) for files without one; NULL: the built-in
                                 CLIP vocabulary (or the tokenizer.json next to the file) */
    int vision_heads, text_heads; /* > 0: attention head counts, overriding the file's / OpenAI's width/64 rule */
} clxp_load_options;

typedef struct clxp_model_info {
    const char *kind;           /* "clip" (images) or "clap" (audio) */
    const char *path;           /* directory the model was loaded from */
    int embed_dim;              /* projection dimension: length of every embedding */
    float logit_scale;          /* exp(logit_scale) as learned by the model (CLAP: of logits_per_audio) */
    /* vision tower (CLIP) */
    int image_size, patch_size, vision_hidden, vision_layers, vision_heads, vision_mlp;
    const char *vision_act;     /* "quick_gelu" | "gelu" */
    /* text tower */
    int context_length, vocab_size, text_hidden, text_layers, text_heads, text_mlp;
    const char *text_act;
    /* preprocessing */
    int resize_shortest_edge, crop_size;
    float image_mean[3], image_std[3];
    /* audio tower (CLAP; the text fields above describe its RoBERTa tower) */
    int sample_rate;            /* input rate in Hz */
    double clip_seconds;        /* length of the window the model classifies */
    int audio_hidden, audio_stages, audio_window, mel_bins;
    const char *audio_truncation; /* "fusion" or "rand_trunc" */
    float logit_scale_text;     /* exp(logit_scale_t) of logits_per_text */
    /* weights */
    const char *weights_dtype;  /* dtype of the weights in the file: "F32", "F16", "BF16", "mixed" */
    int64_t n_params;           /* total number of parameters */
    const char *precision;      /* arithmetic chosen at load: "fp32" or "bf16" */
    /* source */
    const char *format;         /* "hf-safetensors", "hf-pytorch", "open_clip", "torchscript", "openai" */
    const char *format_detail;  /* the file used and how its names and configuration were mapped (one line) */
    const char *weights_file;   /* the weights file read */
} clxp_model_info;

/* Load a Hugging Face CLIPModel or ClapModel directory (config.json — its model_type says which —,
 * model.safetensors or a sharded model.safetensors.index.json, tokenizer.json, preprocessor_config.json), or any
 * other supported model file or directory: pytorch_model.bin, open_clip checkpoints, TorchScript and OpenAI archives
 * (README "Model files"). opt may be NULL. */
clxp_status clxp_model_load(const char *dir, const clxp_load_options *opt, clxp_model **out, clxp_error *err);
void clxp_model_free(clxp_model *m);
const clxp_model_info *clxp_model_get_info(const clxp_model *m);
/* Runs a gray image and two prompts through both towers and checks every output is finite. */
clxp_status clxp_model_selftest(clxp_model *m, clxp_error *err);

/* ---- encoding ------------------------------------------------------------- */

/* An 8-bit RGB image (3 bytes per pixel, rows `stride` bytes apart). */
typedef struct clxp_image {
    const uint8_t *rgb;
    int width, height, stride;
} clxp_image;

/* Text embeddings: out has n * embed_dim floats, each row L2-normalised. */
clxp_status clxp_encode_texts(clxp_model *m, const char *const *texts, int n, float *out, clxp_error *err);
/* Image embeddings from RGB buffers / from image files (any format FFmpeg decodes). L2-normalised. */
clxp_status clxp_encode_images(clxp_model *m, const clxp_image *images, int n, float *out, clxp_error *err);
clxp_status clxp_encode_image_files(clxp_model *m, const char *const *paths, int n, float *out, clxp_error *err);

/* Audio embedding (CLAP) of one clip: samples mono float32 at sample_rate, which must be the model's
 * (clxp_model_info.sample_rate; clxp_run_file and clxp_encode_audio_files resample). A clip shorter than the
 * model's window is repeat-padded, a longer one cropped deterministically as the model's truncation mode says
 * (see README "Audio"). out: embed_dim floats, L2-normalised. */
clxp_status clxp_encode_audio(clxp_model *m, const float *samples, size_t n, int sample_rate, float *out,
                              clxp_error *err);
/* Audio embeddings of whole files (any audio FFmpeg decodes, or the audio of a video), each file one clip. */
clxp_status clxp_encode_audio_files(clxp_model *m, const char *const *paths, int n, float *out, clxp_error *err);

/* ---- label bank and scoring ------------------------------------------------ */
typedef struct clxp_labelbank clxp_labelbank;

/* Encode labels once. With templates (each containing "{}" once, replaced by the label),
 * a label's embedding is the L2-normalised mean of its normalised template embeddings
 * (prompt ensembling). n_templates = 0: the label text is used as is. */
clxp_status clxp_labelbank_create(clxp_model *m, const char *const *labels, int n_labels,
                                  const char *const *templates, int n_templates,
                                  clxp_labelbank **out, clxp_error *err);
void clxp_labelbank_free(clxp_labelbank *b);
int clxp_labelbank_size(const clxp_labelbank *b);
const char *clxp_labelbank_label(const clxp_labelbank *b, int i);
/* Row-major [size x embed_dim] normalised embeddings owned by the bank. */
const float *clxp_labelbank_embeddings(const clxp_labelbank *b);

/* Build a bank from a prompt file: a labels file (one prompt per line; templates apply) or a categories file
 * ("[Unit]" / "(Category)" / prompt lines; auto-detected: a file with a "[Unit]" line; templates must be 0).
 * Limits and syntax: README "Prompt files". */
clxp_status clxp_labelbank_load_file(clxp_model *m, const char *path, const char *const *templates, int n_templates,
                                     clxp_labelbank **out, clxp_error *err);

/* Classes a bank scores: its labels, or for a categories bank its categories (size() is then the prompt count). */
int clxp_labelbank_n_classes(const clxp_labelbank *b);
/* Text prompts the bank holds an embedding for (labels, or a categories file's description lines). */
int clxp_labelbank_n_prompts(const clxp_labelbank *b);
const char *clxp_labelbank_class_name(const clxp_labelbank *b, int c);
/* Categories banks: units, and the unit each class (category) belongs to. Labels banks: 0 units, unit -1. */
int clxp_labelbank_n_units(const clxp_labelbank *b);
const char *clxp_labelbank_unit_name(const clxp_labelbank *b, int u);
int clxp_labelbank_class_unit(const clxp_labelbank *b, int c);
/* The model's exp(logit_scale) the bank was made with. */
float clxp_labelbank_logit_scale(const clxp_labelbank *b);
/* The templates the bank was made with (0 when none). */
int clxp_labelbank_n_templates(const clxp_labelbank *b);
const char *clxp_labelbank_template(const clxp_labelbank *b, int i);

/* Save a bank as a safetensors file: the embeddings, and in its metadata the prompts, templates, units and
 * categories, the logit scale and the identity of the model that made it (a hash of its config.json, text
 * projection and logit scale). Written to a temporary file and renamed; an existing path is an error unless
 * overwrite. */
clxp_status clxp_labelbank_save(const clxp_labelbank *b, const char *path, int overwrite, clxp_error *err);
/* Load a bank saved by clxp_labelbank_save for model m, without running its text tower. A bank made by another
 * model (or another format) is refused with CLXP_ERR_INVALID naming the file. */
clxp_status clxp_labelbank_load(clxp_model *m, const char *path, clxp_labelbank **out, clxp_error *err);

typedef struct clxp_score_options {
    float logit_scale; /* <= 0: the model's learned exp(logit_scale) */
    float temperature; /* logits are divided by this; <= 0 means 1 */
} clxp_score_options;

/* Scores of n embeddings (rows of embed_dim normalised floats) into scores[i * n_classes + c]:
 * labels bank: softmax over the labels of scale * cos(embeds_i, label_j) / temperature;
 * categories bank: the same softmax separately over each unit's prompts, and a category's score is the sum of
 * its prompts' probabilities (a unit's category scores sum to 1). opt may be NULL (defaults). */
clxp_status clxp_classify(const clxp_labelbank *b, const float *embeds, int n, const clxp_score_options *opt,
                          float *scores, clxp_error *err);

/* ---- whole files: video frames, still images ------------------------------------------------------------ */

/* One classified item: a sampled frame, or one box (region) of a frame. */
typedef struct clxp_result {
    const char *input;     /* the input as given */
    int stream_index;      /* FFmpeg stream index of the input */
    char media_type;       /* 'v' (video frame or still image) or 'a' (audio window) */
    int64_t frame_index;   /* 0-based index of the frame among the stream's decoded frames (video), or of the
                              window (audio) */
    int64_t pts;           /* presentation timestamp in the stream time base (INT64_MIN if unknown) */
    double time;           /* start time in seconds (pts * time base, from the start of the file) */
    double duration;       /* seconds the result stands for (frame duration / window length; 0 if unknown) */
    int width, height;     /* size of the frame as classified (after rotation, aspect and --vf) */
    int box_index;         /* -1: the whole frame; >= 0: the index of the box among the frame's boxes */
    float box_x, box_y, box_w, box_h; /* the box in pixels of the frame (box_index >= 0) */
    const char *box_label; /* detector label of the box, NULL if none */
    float box_score;       /* detector score of the box, NAN if none */
    int n_classes;
    const float *scores;   /* clxp_labelbank_n_classes() scores: label probabilities or category scores */
    const uint8_t *rgb;    /* the classified RGB24 pixels (rows 3 * width bytes), valid during the callback */
    const clxp_labelbank *bank; /* the bank the scores are for (which labels, which classes): in a combined run
                              (clxp_run_file_av) the video bank for 'v' results and the audio bank for 'a' ones.
                              Set by clxp_run_file(_av); NULL in a result made by hand means "the only bank". */
} clxp_result;

/* Called for each result in order; return non-zero to stop the run early (clxp_run_file then returns CLXP_OK). */
typedef int (*clxp_result_fn)(void *user, const clxp_result *r);
/* Progress: position and duration in seconds (duration <= 0 if unknown), frames decoded so far. */
typedef void (*clxp_progress_fn)(void *user, double position, double duration, int64_t frames);

typedef struct clxp_run_options {
    const char *stream;       /* FFmpeg stream specifier ("v:1", "0", ...); NULL: the best video stream */
    int every_n;              /* keep every Nth frame (after the other selections); 0/1: all */
    double every_t;           /* keep at most one frame per T seconds, by timestamp; 0: off */
    double scene;             /* keep frames whose scene score > this (libavfilter select); 0: off */
    int keyframes_only;       /* decode key frames only (fast) */
    int skip_nonref;          /* do not decode non-reference frames (faster; a sampled frame may be the nearest
                                 reference frame after the one asked for) */
    double start, duration;   /* seek to start (s) and stop after duration (s); duration 0: to the end */
    const char *vf;           /* a libavfilter graph applied to the frames before classification, or NULL */
    int batch;                /* frames (or audio windows) per inference batch; 0: 16 */
    double hop;               /* audio (CLAP models): seconds between window starts; 0: the window length */
    const char *boxes;        /* JSON Lines file of detection boxes per frame (classify the crops), or NULL */
    const char *target;       /* with boxes: only boxes whose detector label matches (case-insensitive) */
    clxp_score_options score; /* logit scale / temperature */
    clxp_progress_fn progress;
    void *progress_user;
    /* Polled while decoding (also inside blocking reads) and between batches: return non-zero to stop the run
     * early; the results reported so far stand and clxp_run_file returns CLXP_OK. May be NULL. */
    int (*interrupt)(void *user);
    void *interrupt_user;
    const char *audio_stream; /* clxp_run_file_av: the audio stream's specifier ("a:1", ...), NULL: the best audio
                                 stream (`stream` then selects the video stream); unused by clxp_run_file */
} clxp_run_options;

/* Decode `input` (any file or URL libavformat opens) and classify it against the bank in batches, calling
 * on_result for every result in presentation order. opt may be NULL.
 * CLIP models: the video stream's frames selected as opt says (or a still image), each frame or each box.
 * CLAP models: the audio stream (mono, resampled to the model's rate) in windows of the model's length starting
 * every `hop` seconds; the last window (or a clip shorter than one window) is repeat-padded as the model's
 * feature extractor does; time/duration give each window's start and real length. */
clxp_status clxp_run_file(clxp_model *m, const clxp_labelbank *b, const char *input, const clxp_run_options *opt,
                          clxp_result_fn on_result, void *user, clxp_error *err);

/* One pass over `input` with two models: its video stream (`opt->stream`, or the best one) through a CLIP model
 * and bank, and its audio stream (`opt->audio_stream`, or the best one) through a CLAP model and bank. The file is
 * opened and demuxed once; both streams are decoded from the same packets. Frames are selected as for
 * clxp_run_file with a CLIP model (every_n, every_t, scene, vf, keyframes, boxes, ...), audio windows as with a
 * CLAP model (hop); start/duration apply to both; batch is the batch size of each model.
 * on_result is called for every result of both streams; each stream's results come in presentation order, and
 * each model classifies its own results in batches of `batch` formed exactly as clxp_run_file forms them, so
 * the streams interleave batch by batch rather than strictly by time (batch 1: by start time, a video frame
 * first on a tie). clxp_result.media_type and .bank say which model and labels a result belongs to.
 * A file without the one kind of stream (no audio track, a still image: no sound; an audio-only file: no
 * pictures) is run with the other model alone, with a warning through the log callback; neither kind:
 * CLXP_ERR_UNSUPPORTED. video_model must be a CLIP model and audio_model a CLAP model (CLXP_ERR_INVALID).
 * Results equal those of two clxp_run_file runs on the same file, scores bit for bit; with start > 0 the audio
 * is decoded from the video's seek point, so its first samples (decoder and resampler warm-up) and scores may
 * differ slightly from a separate run's (measured: 1e-4 on probabilities, 44.1 kHz PCM resampled to 48 kHz). */
clxp_status clxp_run_file_av(clxp_model *video_model, const clxp_labelbank *video_bank, clxp_model *audio_model,
                             const clxp_labelbank *audio_bank, const char *input, const clxp_run_options *opt,
                             clxp_result_fn on_result, void *user, clxp_error *err);

#ifdef __cplusplus
}
#endif
#endif /* CLXP_H */
