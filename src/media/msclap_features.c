/* MS-CLAP 2023 audio front end (see msclap_features.h for the recipe and its msclap / torchlibrosa references). */
#include "media/msclap_features.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/tx.h>

#include "util/error.h"

/* Largest FFT / mel count accepted (msclap: 1024 / 64). */
#define MAX_FFT 8192
#define MAX_MELS 512
/* Checkpoint STFT kernels closer than this to the formula are the standard ones (float32 rounding is ~6e-8). */
#define KERNEL_TOL 1e-6

struct msclap_fe {
    msclap_fe_config cfg;
    int bins, frames;
    int fft_path;     /* 1: av_tx FFT with the window below; 0: direct product with the kernels */
    double *window;   /* [fft] periodic Hann */
    float *kre, *kim; /* [bins, fft] kernels (direct path only) */
    float *melW;      /* [bins, mels] */
    int *lo, *hi;     /* non-zero bins of each mel filter: lo[m] .. hi[m]-1 (whole range if not contiguous) */
};

void msclap_fe_config_defaults(msclap_fe_config *c) {
    c->sample_rate = 44100;
    c->window_samples = 7 * 44100;
    c->fft = 1024;
    c->hop = 320;
    c->mels = 64;
    c->design_rate = 32000;
    c->fmin = 50;
    c->fmax = 14000;
}

/* ---- librosa 0.10 mel filters --------------------------------------------------------------------------------- */

/* librosa.hz_to_mel / mel_to_hz, htk=False (Slaney): linear below 1 kHz (f_sp = 200/3), logarithmic above. */
static double hz_to_mel(double f) {
    const double f_sp = 200.0 / 3, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp, logstep = log(6.4) / 27.0;
    if (f >= min_log_hz) return min_log_mel + log(f / min_log_hz) / logstep;
    return f / f_sp;
}

static double mel_to_hz(double m) {
    const double f_sp = 200.0 / 3, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp, logstep = log(6.4) / 27.0;
    if (m >= min_log_mel) return min_log_hz * exp(logstep * (m - min_log_mel));
    return 0.0 + f_sp * m;
}

void msclap_mel_filters(double sr, int n_fft, int n_mels, double fmin, double fmax, float *out) {
    const int K = n_fft / 2 + 1, M = n_mels;
    double *mel_f = malloc((size_t)(M + 2) * sizeof *mel_f), *fftf = malloc((size_t)K * sizeof *fftf);
    if (!mel_f || !fftf) {
        free(mel_f);
        free(fftf);
        memset(out, 0, (size_t)K * M * sizeof *out);
        return;
    }
    /* mel_frequencies: np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), M + 2) -> mel_to_hz */
    const double lo = hz_to_mel(fmin), hi = hz_to_mel(fmax), step = (hi - lo) / (M + 1);
    for (int i = 0; i < M + 2; i++) mel_f[i] = mel_to_hz(i == M + 1 ? hi : (double)i * step + lo);
    /* np.fft.rfftfreq(n_fft, 1 / sr): k * (1 / (n_fft * (1 / sr))) */
    const double val = 1.0 / ((double)n_fft * (1.0 / sr));
    for (int k = 0; k < K; k++) fftf[k] = (double)k * val;
    for (int m = 0; m < M; m++) {
        const double d0 = mel_f[m + 1] - mel_f[m], d1 = mel_f[m + 2] - mel_f[m + 1];
        const double enorm = 2.0 / (mel_f[m + 2] - mel_f[m]);
        for (int k = 0; k < K; k++) {
            double lower = -(mel_f[m] - fftf[k]) / d0, upper = (mel_f[m + 2] - fftf[k]) / d1;
            double v = lower < upper ? lower : upper;
            if (!(v > 0)) v = 0;
            float tri = (float)v;                          /* weights[i] = ... stored in float32 */
            out[(size_t)k * M + m] = (float)((double)tri * enorm); /* weights *= enorm (float64 product) */
        }
    }
    free(mel_f);
    free(fftf);
}

/* ---- creation ------------------------------------------------------------------------------------------------- */

void msclap_fe_free(msclap_fe *fe) {
    if (!fe) return;
    free(fe->window);
    free(fe->kre);
    free(fe->kim);
    free(fe->melW);
    free(fe->lo);
    free(fe->hi);
    free(fe);
}

clxp_status msclap_fe_create(const msclap_fe_config *cfg, const float *melW, const float *stft_real,
                             const float *stft_imag, msclap_fe **out, clxp_error *err) {
    *out = NULL;
    if (cfg->fft < 2 || cfg->fft % 2 || cfg->fft > MAX_FFT || cfg->hop < 1 || cfg->mels < 1 || cfg->mels > MAX_MELS ||
        cfg->window_samples <= cfg->fft / 2 || cfg->window_samples > (1 << 26) || cfg->sample_rate < 1 ||
        !(cfg->design_rate > 0) || !(cfg->fmin >= 0) || !(cfg->fmax > cfg->fmin))
        return clxp_err_set(err, CLXP_ERR_INVALID, "invalid MS-CLAP feature extractor configuration");
    if ((stft_real == NULL) != (stft_imag == NULL))
        return clxp_err_set(err, CLXP_ERR_INVALID, "MS-CLAP STFT kernels: need both the real and the imaginary part");
    msclap_fe *fe = calloc(1, sizeof *fe);
    if (!fe) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    fe->cfg = *cfg;
    const int N = cfg->fft, K = N / 2 + 1, M = cfg->mels;
    fe->bins = K;
    fe->frames = cfg->window_samples / cfg->hop + 1;
    fe->window = malloc((size_t)N * sizeof *fe->window);
    fe->melW = malloc((size_t)K * M * sizeof *fe->melW);
    fe->lo = malloc((size_t)M * sizeof *fe->lo);
    fe->hi = malloc((size_t)M * sizeof *fe->hi);
    if (!fe->window || !fe->melW || !fe->lo || !fe->hi) {
        msclap_fe_free(fe);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    }
    /* scipy.signal.get_window("hann", N, fftbins=True): 0.5 - 0.5 cos(2 pi n / N) */
    for (int n = 0; n < N; n++) fe->window[n] = 0.5 - 0.5 * cos(2.0 * M_PI * n / N);
    fe->fft_path = 1;
    if (stft_real) { /* standard kernels cos / -sin (2 pi k n / N) x window? */
        double worst = 0;
        for (int k = 0; k < K && worst <= KERNEL_TOL; k++)
            for (int n = 0; n < N; n++) {
                const double a = 2.0 * M_PI * (double)(((int64_t)k * n) % N) / N;
                double dr = fabs((double)stft_real[(size_t)k * N + n] - cos(a) * fe->window[n]);
                double di = fabs((double)stft_imag[(size_t)k * N + n] + sin(a) * fe->window[n]);
                if (!(dr <= worst)) worst = dr;
                if (!(di <= worst)) worst = di;
            }
        if (!(worst <= KERNEL_TOL)) {
            fe->fft_path = 0;
            fe->kre = malloc((size_t)K * N * sizeof *fe->kre);
            fe->kim = malloc((size_t)K * N * sizeof *fe->kim);
            if (!fe->kre || !fe->kim) {
                msclap_fe_free(fe);
                return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
            }
            memcpy(fe->kre, stft_real, (size_t)K * N * sizeof *fe->kre);
            memcpy(fe->kim, stft_imag, (size_t)K * N * sizeof *fe->kim);
        }
    }
    if (melW) memcpy(fe->melW, melW, (size_t)K * M * sizeof *fe->melW);
    else msclap_mel_filters(cfg->design_rate, N, M, cfg->fmin, cfg->fmax, fe->melW);
    for (int m = 0; m < M; m++) {
        int lo = K, hi = 0;
        for (int k = 0; k < K; k++) {
            float v = fe->melW[(size_t)k * M + m];
            if (!isfinite(v)) {
                msclap_fe_free(fe);
                return clxp_err_set(err, CLXP_ERR_FORMAT, "MS-CLAP mel filter bank: value [%d, %d] is not finite", k,
                                    m);
            }
            if (v != 0) {
                if (k < lo) lo = k;
                hi = k + 1;
            }
        }
        if (hi <= lo) lo = hi = 0;
        fe->lo[m] = lo;
        fe->hi[m] = hi;
    }
    if (fe->fft_path) {
        AVTXContext *tx = NULL;
        av_tx_fn fn = NULL;
        double scale = 1.0;
        int r = av_tx_init(&tx, &fn, AV_TX_DOUBLE_RDFT, 0, N, &scale, 0);
        av_tx_uninit(&tx);
        if (r < 0) {
            msclap_fe_free(fe);
            return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "FFmpeg has no double-precision real FFT of size %d (%d)", N,
                                r);
        }
    }
    *out = fe;
    return CLXP_OK;
}

const msclap_fe_config *msclap_fe_get_config(const msclap_fe *fe) { return &fe->cfg; }
int msclap_fe_frames(const msclap_fe *fe) { return fe->frames; }
int msclap_fe_bins(const msclap_fe *fe) { return fe->bins; }
const float *msclap_fe_mel_filters(const msclap_fe *fe) { return fe->melW; }
int msclap_fe_uses_fft(const msclap_fe *fe) { return fe->fft_path; }

/* ---- spectrogram ---------------------------------------------------------------------------------------------- */

/* torch reflect padding index (edge not repeated; n > pad guaranteed by the window length). */
static inline size_t reflect(int64_t i, size_t n) {
    if (i < 0) i = -i;
    if (i >= (int64_t)n) i = 2 * (int64_t)(n - 1) - i;
    return (size_t)i;
}

/* Power spectrogram of the window w (window_samples floats) frame by frame; for every frame f calls
 * sink(ctx, f, power[bins]) from the worker threads. */
typedef void (*power_sink)(const msclap_fe *fe, void *ctx, size_t f, const double *power);

static clxp_status spectrogram(const msclap_fe *fe, const float *w, power_sink sink, void *ctx, clxp_error *err) {
    const int N = fe->cfg.fft, hop = fe->cfg.hop, K = fe->bins, half = N / 2;
    const size_t n = (size_t)fe->cfg.window_samples, frames = (size_t)fe->frames;
    int nt = omp_get_max_threads();
    if (nt < 1) nt = 1;
    if ((size_t)nt > frames) nt = (int)frames;
    AVTXContext **tx = calloc((size_t)nt, sizeof *tx);
    av_tx_fn *fn = calloc((size_t)nt, sizeof *fn);
    const size_t n_in = ((size_t)N + 7) & ~(size_t)7, n_out = (2 * (size_t)K + 7) & ~(size_t)7;
    const size_t per = n_in + n_out + (((size_t)K + 7) & ~(size_t)7);
    double *scratch = NULL;
    clxp_status st = CLXP_OK;
    if (!tx || !fn || posix_memalign((void **)&scratch, 64, (size_t)nt * per * sizeof(double)) != 0) {
        scratch = NULL;
        st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    }
    for (int t = 0; t < nt && st == CLXP_OK && fe->fft_path; t++) {
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
                const int64_t s0 = (int64_t)f * hop - half;
                if (fe->fft_path) {
                    for (int k = 0; k < N; k++) buf[k] = (double)w[reflect(s0 + k, n)] * fe->window[k];
                    fn[t](tx[t], X, buf, sizeof(double));
                    X[N / 2].im = 0; /* FFmpeg 5.1's RDFT leaves the Nyquist bin's (zero) imaginary part unwritten */
                    for (int k = 0; k < K; k++) pw[k] = X[k].re * X[k].re + X[k].im * X[k].im;
                } else {
                    for (int k = 0; k < N; k++) buf[k] = (double)w[reflect(s0 + k, n)];
                    for (int k = 0; k < K; k++) {
                        const float *kr = fe->kre + (size_t)k * N, *ki = fe->kim + (size_t)k * N;
                        double re = 0, im = 0;
                        for (int j = 0; j < N; j++) {
                            re += buf[j] * kr[j];
                            im += buf[j] * ki[j];
                        }
                        pw[k] = re * re + im * im;
                    }
                }
                sink(fe, ctx, f, pw);
            }
        }
    }
    for (int t = 0; tx && t < nt; t++) av_tx_uninit(&tx[t]);
    free(tx);
    free(fn);
    free(scratch);
    return st;
}

static void sink_power(const msclap_fe *fe, void *ctx, size_t f, const double *power) {
    float *o = (float *)ctx + f * (size_t)fe->bins;
    for (int k = 0; k < fe->bins; k++) o[k] = (float)power[k];
}

static void sink_logmel(const msclap_fe *fe, void *ctx, size_t f, const double *power) {
    const int M = fe->cfg.mels;
    float *o = (float *)ctx + f * (size_t)M;
    for (int m = 0; m < M; m++) {
        double acc = 0;
        for (int k = fe->lo[m]; k < fe->hi[m]; k++) acc += power[k] * (double)fe->melW[(size_t)k * M + m];
        if (!(acc > 1e-10)) acc = 1e-10; /* power_to_db: max(amin, x), ref 1 */
        o[m] = (float)(10.0 * log10(acc));
    }
}

clxp_status msclap_fe_power(const msclap_fe *fe, const float *window, float *power, clxp_error *err) {
    return spectrogram(fe, window, sink_power, power, err);
}

/* ---- the whole extractor ------------------------------------------------------------------------------------------
 */

clxp_status msclap_fe_prepare(const msclap_fe *fe, const float *wave, size_t n, long crop, float *out, long *used_crop,
                              clxp_error *err) {
    const size_t win = (size_t)fe->cfg.window_samples;
    if (used_crop) *used_crop = -1;
    if (n == 0) return clxp_err_set(err, CLXP_ERR_INVALID, "empty waveform");
    if (n > MSCLAP_FE_MAX_INPUT_SAMPLES)
        return clxp_err_set(err, CLXP_ERR_LIMIT, "waveform of %zu samples exceeds the limit of %zu samples", n,
                            MSCLAP_FE_MAX_INPUT_SAMPLES);
    if (n > win) {
        const size_t over = n - win;
        size_t start = over / 2;
        if (crop >= 0) {
            if ((size_t)crop > over)
                return clxp_err_set(err, CLXP_ERR_INVALID, "crop start %ld outside [0, %zu]", crop, over);
            start = (size_t)crop;
        }
        for (size_t i = 0; i < win; i++)
            if (!isfinite(wave[start + i]))
                return clxp_err_set(err, CLXP_ERR_INVALID, "waveform sample %zu is not finite", start + i);
        memcpy(out, wave + start, win * sizeof *out);
        if (used_crop) *used_crop = (long)start;
        return CLXP_OK;
    }
    for (size_t i = 0; i < n; i++)
        if (!isfinite(wave[i])) return clxp_err_set(err, CLXP_ERR_INVALID, "waveform sample %zu is not finite", i);
    /* audio_time_series.repeat(ceil(win / n))[:win] */
    for (size_t i = 0; i < win; i++) out[i] = wave[i % n];
    return CLXP_OK;
}

clxp_status msclap_fe_extract(const msclap_fe *fe, const float *wave, size_t n, long crop, float *features,
                              long *used_crop, clxp_error *err) {
    float *buf = malloc((size_t)fe->cfg.window_samples * sizeof *buf);
    if (!buf) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    clxp_status st = msclap_fe_prepare(fe, wave, n, crop, buf, used_crop, err);
    if (st == CLXP_OK) st = spectrogram(fe, buf, sink_logmel, features, err);
    free(buf);
    return st;
}
