/* CLAP feature extraction (see audio_features.h for the recipe and its transformers references). */
#include "media/audio_features.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/tx.h>

#include "nn/interp.h"
#include "util/error.h"

struct clap_fe {
    clap_feature_config cfg;
    int bins, mels, frames, channels;
    double *window;  /* [fft] periodic Hann */
    double *filters; /* [bins, mels] */
    int *lo, *hi;    /* per mel filter: its non-zero bins are lo[m] .. hi[m]-1 (the triangles are contiguous) */
};

/* ---- mel scale and filter bank (audio_utils.py) --------------------------------------------------------------- */

double clap_hz_to_mel(double f, int slaney) {
    if (!slaney) return 2595.0 * log10(1.0 + (f / 700.0));
    /* Slaney: linear below 1 kHz, logarithmic above (the scalar branch of hertz_to_mel) */
    const double min_log_hertz = 1000.0, min_log_mel = 15.0, logstep = 27.0 / log(6.4);
    if (f >= min_log_hertz) return min_log_mel + log(f / min_log_hertz) * logstep;
    return 3.0 * f / 200.0;
}

double clap_mel_to_hz(double m, int slaney) {
    if (!slaney) return 700.0 * (pow(10.0, m / 2595.0) - 1.0);
    const double min_log_hertz = 1000.0, min_log_mel = 15.0, logstep = log(6.4) / 27.0;
    if (m >= min_log_mel) return min_log_hertz * exp(logstep * (m - min_log_mel));
    return 200.0 * m / 3.0;
}

/* np.linspace(start, stop, num) (numpy 1.24, endpoint=True): i * step + start, the last value set to stop. */
static void linspace(double start, double stop, int num, double *out) {
    if (num == 1) {
        out[0] = start;
        return;
    }
    double step = (stop - start) / (num - 1);
    for (int i = 0; i < num; i++) out[i] = (double)i * step + start;
    out[num - 1] = stop;
}

/* mel_filter_bank(bins, mels, f_min, f_max, rate, norm, mel_scale), triangularize_in_mel_space=False. */
static clxp_status build_filters(clap_fe *fe, clxp_error *err) {
    const clap_feature_config *c = &fe->cfg;
    const int slaney = c->truncation != CLAP_TRUNC_FUSION, M = fe->mels, K = fe->bins;
    double *ff = malloc((size_t)(M + 2) * sizeof *ff), *fft = malloc((size_t)K * sizeof *fft);
    if (!ff || !fft) {
        free(ff);
        free(fft);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    }
    linspace(clap_hz_to_mel(c->frequency_min, slaney), clap_hz_to_mel(c->frequency_max, slaney), M + 2, ff);
    for (int i = 0; i < M + 2; i++) ff[i] = clap_mel_to_hz(ff[i], slaney);
    linspace(0.0, (double)(c->sampling_rate / 2), K, fft); /* sampling_rate // 2 */
    for (int k = 0; k < K; k++)
        for (int m = 0; m < M; m++) {
            /* _create_triangular_filter_bank: slopes = filter_freqs - fft_freqs; down = -slopes[m] / diff[m],
             * up = slopes[m+2] / diff[m+1] */
            double down = -(ff[m] - fft[k]) / (ff[m + 1] - ff[m]);
            double up = (ff[m + 2] - fft[k]) / (ff[m + 2] - ff[m + 1]);
            double v = down < up ? down : up;
            if (!(v > 0)) v = 0; /* np.maximum(0, .) */
            if (slaney) v *= 2.0 / (ff[m + 2] - ff[m]);
            fe->filters[(size_t)k * M + m] = v;
        }
    for (int m = 0; m < M; m++) {
        int lo = K, hi = 0;
        for (int k = 0; k < K; k++)
            if (fe->filters[(size_t)k * M + m] != 0) {
                if (k < lo) lo = k;
                hi = k + 1;
            }
        if (hi <= lo) lo = hi = 0; /* an all-zero filter (transformers only warns): its mel stays at the floor */
        fe->lo[m] = lo;
        fe->hi[m] = hi;
    }
    free(ff);
    free(fft);
    return CLXP_OK;
}

/* ---- creation ------------------------------------------------------------------------------------------------- */

void clap_fe_free(clap_fe *fe) {
    if (!fe) return;
    free(fe->window);
    free(fe->filters);
    free(fe->lo);
    free(fe->hi);
    free(fe);
}

clxp_status clap_fe_create(const clap_feature_config *cfg, clap_fe **out, clxp_error *err) {
    *out = NULL;
    if (cfg->fft_window_size < 2 || cfg->fft_window_size % 2 || cfg->fft_window_size > CLAP_FE_MAX_FFT ||
        cfg->hop_length < 1 || cfg->feature_size < 1 || cfg->feature_size > CLAP_FE_MAX_MELS ||
        cfg->nb_max_samples < cfg->fft_window_size || cfg->nb_max_samples > CLAP_FE_MAX_SAMPLES)
        return clxp_err_set(err, CLXP_ERR_INVALID, "invalid CLAP feature extractor configuration");
    clap_fe *fe = calloc(1, sizeof *fe);
    if (!fe) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    fe->cfg = *cfg;
    const int N = cfg->fft_window_size;
    fe->bins = N / 2 + 1;
    fe->mels = cfg->feature_size;
    fe->frames = cfg->nb_max_samples / cfg->hop_length + 1;
    fe->channels = cfg->truncation == CLAP_TRUNC_FUSION ? 4 : 1;
    fe->window = malloc((size_t)N * sizeof *fe->window);
    fe->filters = malloc((size_t)fe->bins * fe->mels * sizeof *fe->filters);
    fe->lo = malloc((size_t)fe->mels * sizeof *fe->lo);
    fe->hi = malloc((size_t)fe->mels * sizeof *fe->hi);
    if (!fe->window || !fe->filters || !fe->lo || !fe->hi) {
        clap_fe_free(fe);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    }
    /* window_function(N, "hann", periodic=True) = np.hanning(N + 1)[:-1]; numpy 1.24 evaluates
     * 0.5 + 0.5 * cos(pi * n / (M - 1)) for n = 1 - M, 3 - M, ... with M = N + 1. */
    for (int i = 0; i < N; i++) {
        double n = (double)(-N + 2 * i);
        fe->window[i] = 0.5 + 0.5 * cos(M_PI * n / (double)N);
    }
    clxp_status st = build_filters(fe, err);
    if (st == CLXP_OK) { /* make sure FFmpeg has the transform before any clip is processed */
        AVTXContext *tx = NULL;
        av_tx_fn fn = NULL;
        double scale = 1.0;
        int r = av_tx_init(&tx, &fn, AV_TX_DOUBLE_RDFT, 0, N, &scale, 0);
        av_tx_uninit(&tx);
        if (r < 0)
            st = clxp_err_set(err, CLXP_ERR_UNSUPPORTED,
                              "FFmpeg has no double-precision real FFT of size %d (error %d)", N, r);
    }
    if (st != CLXP_OK) {
        clap_fe_free(fe);
        return st;
    }
    *out = fe;
    return CLXP_OK;
}

const clap_feature_config *clap_fe_config(const clap_fe *fe) { return &fe->cfg; }
int clap_fe_channels(const clap_fe *fe) { return fe->channels; }
int clap_fe_frames(const clap_fe *fe) { return fe->frames; }
int clap_fe_mels(const clap_fe *fe) { return fe->mels; }
int clap_fe_bins(const clap_fe *fe) { return fe->bins; }
const double *clap_fe_mel_filters(const clap_fe *fe) { return fe->filters; }
const double *clap_fe_window(const clap_fe *fe) { return fe->window; }

/* ---- log-mel spectrogram ---------------------------------------------------------------------------------------- */

/* np.pad(mode="reflect") index: mirror about the end samples without repeating them (period 2 (n - 1)). */
static inline size_t reflect(int64_t i, size_t n) {
    if (n == 1) return 0;
    int64_t p = 2 * (int64_t)(n - 1);
    i %= p;
    if (i < 0) i += p;
    if (i >= (int64_t)n) i = p - i;
    return (size_t)i;
}

/* Log-mel of w[0..n) (n >= 1): out[frames][mels] float32, frames = 1 + n / hop (fft even). */
static clxp_status log_mel(const clap_fe *fe, const float *w, size_t n, float *out, size_t frames, clxp_error *err) {
    const int N = fe->cfg.fft_window_size, hop = fe->cfg.hop_length, K = fe->bins, M = fe->mels;
    const int half = N / 2;
    int nt = omp_get_max_threads();
    if (nt < 1) nt = 1;
    if ((size_t)nt > frames) nt = (int)frames;
    /* One FFT context and scratch buffers per thread (an AVTXContext is not shareable between threads). */
    AVTXContext **tx = calloc((size_t)nt, sizeof *tx);
    av_tx_fn *fn = calloc((size_t)nt, sizeof *fn);
    double *scratch = NULL;
    /* per thread: input [N], complex output [K], power [K]; every part starts 64-byte aligned (av_tx wants
     * SIMD-aligned arrays) */
    const size_t n_in = ((size_t)N + 7) & ~(size_t)7, n_out = (2 * (size_t)K + 7) & ~(size_t)7;
    const size_t per = n_in + n_out + (((size_t)K + 7) & ~(size_t)7);
    clxp_status st = CLXP_OK;
    if (!tx || !fn || posix_memalign((void **)&scratch, 64, (size_t)nt * per * sizeof(double)) != 0) {
        scratch = NULL;
        st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    }
    for (int t = 0; t < nt && st == CLXP_OK; t++) {
        double scale = 1.0;
        int r = av_tx_init(&tx[t], &fn[t], AV_TX_DOUBLE_RDFT, 0, N, &scale, 0);
        if (r < 0) st = clxp_err_set(err, CLXP_ERR_INTERNAL, "FFmpeg av_tx_init failed (%d)", r);
    }
    if (st == CLXP_OK) {
#pragma omp parallel num_threads(nt)
        {
            const int t = omp_get_thread_num();
            double *buf = scratch + (size_t)t * per;
            AVComplexDouble *X = (AVComplexDouble *)(buf + n_in);
            double *pw = buf + n_in + n_out;
#pragma omp for schedule(static)
            for (size_t f = 0; f < frames; f++) {
                /* the frame starts at f * hop in the signal padded by `half` on each side */
                int64_t s0 = (int64_t)f * hop - half;
                for (int k = 0; k < N; k++) buf[k] = (double)w[reflect(s0 + k, n)] * fe->window[k];
                fn[t](tx[t], X, buf, sizeof(double));
                X[half].im = 0; /* FFmpeg 5.1's RDFT leaves the Nyquist bin's (zero) imaginary part unwritten */
                for (int k = 0; k < K; k++) {
                    /* the reference stores the rfft result as complex64, then takes |.| in float64 */
                    double re = (double)(float)X[k].re, im = (double)(float)X[k].im;
                    double a = hypot(re, im);
                    pw[k] = a * a;
                }
                float *o = out + f * (size_t)M;
                for (int m = 0; m < M; m++) {
                    double acc = 0;
                    for (int k = fe->lo[m]; k < fe->hi[m]; k++) acc += fe->filters[(size_t)k * M + m] * pw[k];
                    if (!(acc > 1e-10)) acc = 1e-10; /* mel_floor, then power_to_db's clip at min_value */
                    o[m] = (float)(10.0 * log10(acc));
                }
            }
        }
    }
    for (int t = 0; tx && t < nt; t++) av_tx_uninit(&tx[t]);
    free(tx);
    free(fn);
    free(scratch);
    return st;
}

/* ---- the whole extractor ------------------------------------------------------------------------------------------
 */

/* Start of element len // 2 of each np.array_split(range(count), 3) part; an empty part 1 or 2 becomes [0]. */
static void default_fusion_starts(long count, long starts[3]) {
    long q = count / 3, r = count % 3, begin = 0;
    for (int k = 0; k < 3; k++) {
        long len = q + (k < r ? 1 : 0);
        starts[k] = len > 0 ? begin + len / 2 : 0;
        begin += len;
    }
}

clxp_status clap_fe_extract(const clap_fe *fe, const float *wave, size_t n, const clap_fe_crops *crops, float *features,
                            int *is_longer, clap_fe_crops *used, clxp_error *err) {
    const clap_feature_config *c = &fe->cfg;
    const size_t max = (size_t)c->nb_max_samples, F = (size_t)fe->frames, M = (size_t)fe->mels;
    clap_fe_crops none = {{-1, -1, -1}, -1};
    if (used) *used = none;
    if (n == 0) return clxp_err_set(err, CLXP_ERR_INVALID, "empty waveform");
    if (n > CLAP_FE_MAX_INPUT_SAMPLES)
        return clxp_err_set(err, CLXP_ERR_LIMIT, "waveform of %zu samples exceeds the limit of %zu samples", n,
                            CLAP_FE_MAX_INPUT_SAMPLES);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(wave[i])) return clxp_err_set(err, CLXP_ERR_INVALID, "waveform sample %zu is not finite", i);
    if (!crops) crops = &none;

    if (n > max && c->truncation == CLAP_TRUNC_FUSION) {
        /* mel of the whole clip; chunk_frames = max // hop + 1 = F */
        size_t total = n / (size_t)c->hop_length + 1;
        float *mel = malloc(total * M * sizeof *mel);
        if (!mel) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory for a %zu-frame spectrogram", total);
        clxp_status st = log_mel(fe, wave, n, mel, total, err);
        if (st != CLXP_OK) {
            free(mel);
            return st;
        }
        if (total == F) { /* at most hop - 1 samples too long: the whole mel, 4 times, not "longer" */
            for (int ch = 0; ch < 4; ch++) memcpy(features + ch * F * M, mel, F * M * sizeof *mel);
        } else {
            long count = (long)(total - F + 1), starts[3];
            default_fusion_starts(count, starts);
            for (int k = 0; k < 3; k++) {
                if (crops->fusion[k] >= 0) {
                    if (crops->fusion[k] >= count) {
                        free(mel);
                        return clxp_err_set(err, CLXP_ERR_INVALID, "fusion crop start %ld outside [0, %ld]",
                                            crops->fusion[k], count - 1);
                    }
                    starts[k] = crops->fusion[k];
                }
                memcpy(features + (size_t)(k + 1) * F * M, mel + (size_t)starts[k] * M, F * M * sizeof *mel);
                if (used) used->fusion[k] = starts[k];
            }
            nn_interp_rows_bilinear(mel, (int)total, (int)M, features, (int)F);
        }
        free(mel);
        if (is_longer) *is_longer = 1; /* see the header: a one-clip call always flags its clip */
        return CLXP_OK;
    }

    /* A waveform of exactly max samples: cropped, repeated or zero-padded as the configuration says. */
    float *buf = malloc(max * sizeof *buf);
    if (!buf) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    int longer = 0;
    if (n > max) { /* rand_trunc */
        size_t overflow = n - max, start = overflow / 2;
        if (crops->trunc >= 0) {
            if ((size_t)crops->trunc > overflow) {
                free(buf);
                return clxp_err_set(err, CLXP_ERR_INVALID, "truncation start %ld outside [0, %zu]", crops->trunc,
                                    overflow);
            }
            start = (size_t)crops->trunc;
        }
        memcpy(buf, wave + start, max * sizeof *buf);
        if (used) used->trunc = (long)start;
        longer = 1;
    } else {
        size_t filled = n;
        if (n < max && c->padding == CLAP_PAD_REPEATPAD)
            filled = (max / n) * n; /* np.tile(w, int(max / n)) */
        else if (n < max && c->padding == CLAP_PAD_REPEAT)
            filled = max; /* tile n + 1 times, cut */
        for (size_t i = 0; i < filled; i++) buf[i] = wave[i % n];
        memset(buf + filled, 0, (max - filled) * sizeof *buf); /* np.pad(constant_values=0) */
    }
    clxp_status st = log_mel(fe, buf, max, features, F, err);
    free(buf);
    if (st != CLXP_OK) return st;
    if (c->truncation == CLAP_TRUNC_FUSION) {
        for (int ch = 1; ch < 4; ch++) memcpy(features + ch * F * M, features, F * M * sizeof *features);
        longer = 1; /* the one clip of a batch without a longer clip is flagged */
    }
    if (is_longer) *is_longer = longer;
    return CLXP_OK;
}
