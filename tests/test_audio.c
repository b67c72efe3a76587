/* Tests of the audio sample source (media/audio.h): bit-exact decoding of 48 kHz WAVs (the CLAP goldens), the
 * channel mean, resampling (length, level, frequency, zero latency), the start/duration window against the whole
 * file, the sound track of a video and stream specifiers, silence, a 1-sample file, NaN/Inf samples, a file
 * damaged in the middle, errors and the interrupt callback.
 *
 * Inputs are written here (WAV files with exactly known samples) or generated with the ffmpeg command-line tool
 * (Debian's ffmpeg package, installed by scripts/install-deps.sh) into one mkdtemp directory under $TMPDIR or /tmp,
 * removed at the end. All are at most 4 s long, so the binary runs in a second or two, also under ASan. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libavutil/log.h>

#include "clxp.h"
#include "media/audio.h"
#include "scratch.h"
#include "test.h"

/* ---- helpers: shell, files, log ------------------------------------------------------------------------------ */

/* Minimal WAV reader for the golden inputs: PCM s16 mono; the samples and the rate, NULL if not such a file. */
static int16_t *read_wav_s16(const char *path, size_t *n_out, int *rate_out) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t hdr[12], ck[8];
    int16_t *out = NULL;
    int fmt_ok = 0;
    if (fread(hdr, 1, 12, f) != 12 || memcmp(hdr, "RIFF", 4) != 0 || memcmp(hdr + 8, "WAVE", 4) != 0) goto done;
    while (fread(ck, 1, 8, f) == 8) {
        uint32_t sz = (uint32_t)ck[4] | (uint32_t)ck[5] << 8 | (uint32_t)ck[6] << 16 | (uint32_t)ck[7] << 24;
        if (memcmp(ck, "fmt ", 4) == 0 && sz >= 16 && sz < 256) {
            uint8_t d[256];
            if (fread(d, 1, sz, f) != sz) break;
            *rate_out = (int)((uint32_t)d[4] | (uint32_t)d[5] << 8 | (uint32_t)d[6] << 16 | (uint32_t)d[7] << 24);
            fmt_ok = (d[0] | d[1] << 8) == 1 && (d[2] | d[3] << 8) == 1 && (d[14] | d[15] << 8) == 16;
        } else if (memcmp(ck, "data", 4) == 0 && fmt_ok) {
            size_t n = sz / 2;
            uint8_t *raw = malloc(sz + 1);
            out = malloc((n ? n : 1) * sizeof *out);
            if (raw && out && fread(raw, 1, sz, f) == sz) {
                for (size_t i = 0; i < n; i++) out[i] = (int16_t)(raw[2 * i] | raw[2 * i + 1] << 8);
                *n_out = n;
            } else {
                free(out);
                out = NULL;
            }
            free(raw);
            break;
        } else if (fseek(f, (long)(sz + (sz & 1)), SEEK_CUR) != 0) {
            break;
        }
    }
done:
    fclose(f);
    return out;
}

static char g_log[16384];
static size_t g_log_len;
static int g_log_warnings;

static void capture_log(void *user, clxp_log_level level, const char *msg) {
    (void)user;
    if (level <= CLXP_LOG_WARN) g_log_warnings++;
    int n = snprintf(g_log + g_log_len, sizeof g_log - g_log_len, "%s\n", msg);
    if (n > 0) g_log_len += (size_t)n < sizeof g_log - g_log_len ? (size_t)n : sizeof g_log - g_log_len - 1;
}

static void log_reset(void) {
    g_log[0] = '\0';
    g_log_len = 0;
    g_log_warnings = 0;
}

static int count_substr(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    return n;
}

/* ---- helpers: signals ------------------------------------------------------------------------------------------ */

static audio_options opts(int rate) {
    audio_options o;
    memset(&o, 0, sizeof o);
    o.sample_rate = rate;
    return o;
}

/* audio_load that must succeed (prints the message when it does not); NULL on failure. */
static float *load(const char *path, const audio_options *o, size_t *n) {
    float *s = NULL;
    clxp_error err;
    *n = 0;
    if (!path) return NULL;
    clxp_status st = audio_load(path, o, 0, &s, n, &err);
    if (st != CLXP_OK) {
        printf("  %s\n", err.msg);
        return NULL;
    }
    return s;
}

static double rms(const float *s, size_t from, size_t to) {
    double a = 0;
    for (size_t i = from; i < to; i++) a += (double)s[i] * s[i];
    return to > from ? sqrt(a / (double)(to - from)) : 0;
}

/* Sign changes (zero crossings) in s[from, to). */
static int zero_crossings(const float *s, size_t from, size_t to) {
    int n = 0;
    for (size_t i = from + 1; i < to; i++)
        if ((s[i - 1] < 0) != (s[i] < 0)) n++;
    return n;
}

static size_t argmax_abs(const float *s, size_t n) {
    size_t k = 0;
    for (size_t i = 1; i < n; i++)
        if (fabsf(s[i]) > fabsf(s[k])) k = i;
    return k;
}

static int all_finite(const float *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(s[i])) return 0;
    return 1;
}

/* ---- 1. exact decoding at the model's rate ------------------------------------------------------------------- */

/* The CLAP goldens decode their WAVs as sample / 32768.0f: 48 kHz s16 read at 48 kHz must give exactly that. */
TEST(golden_wav_exact) {
    static const char *const files[] = {"a_chirp_noise_3s.wav", "b_tones_10s.wav", "c_clicks_0p5s.wav"};
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        char rel[256];
        snprintf(rel, sizeof rel, "clap-tiny-unfused/golden/inputs/%s", files[k]);
        char path[4096];
        snprintf(path, sizeof path, "%s", test_data(rel));
        size_t nw = 0;
        int rate = 0;
        int16_t *w = read_wav_s16(path, &nw, &rate);
        REQUIRE(w);
        CHECK_EQ_INT(rate, 48000);
        audio_options o = opts(48000);
        size_t n = 0;
        float *s = load(path, &o, &n);
        CHECK(s != NULL);
        CHECK_EQ_INT(n, nw);
        size_t bad = 0;
        for (size_t i = 0; s && i < n && i < nw; i++) bad += s[i] != (float)w[i] / 32768.0f;
        CHECK_EQ_INT(bad, 0);

        /* the same through audio_read in uneven pieces */
        audio_reader *r = NULL;
        clxp_error err;
        CHECK_EQ_INT(audio_open(path, &o, &r, &err), CLXP_OK);
        if (r) {
            CHECK_EQ_INT(audio_stream_index(r), 0);
            CHECK_NEAR(audio_duration(r), (double)nw / 48000, 1e-3);
            static const size_t pieces[] = {1, 999, 4096, 7};
            float buf[4096];
            size_t total = 0, bad2 = 0, got = 0;
            for (int i = 0;; i++) {
                size_t want = pieces[i % 4];
                CHECK_EQ_INT(audio_read(r, buf, want, &got, &err), CLXP_OK);
                if (got == 0) break;
                if (got != want && total + got != nw) bad2++; /* short reads only at the end */
                for (size_t j = 0; j < got && total + j < nw; j++) bad2 += buf[j] != (float)w[total + j] / 32768.0f;
                total += got;
            }
            CHECK_EQ_INT(total, nw);
            CHECK_EQ_INT(bad2, 0);
            /* the end stays the end */
            CHECK_EQ_INT(audio_read(r, buf, 10, &got, &err), CLXP_OK);
            CHECK_EQ_INT(got, 0);
            CHECK_EQ_INT(audio_corrupt_count(r), 0);
            CHECK_EQ_INT(audio_nonfinite_count(r), 0);
            audio_close(r);
        }
        free(s);
        free(w);
    }
}

/* ---- 2. downmix: the mean of the channels ---------------------------------------------------------------------- */

TEST(downmix_stereo_mean) {
    enum { N = 4800 };
    static int16_t lr[2 * N];
    for (int i = 0; i < N; i++) {
        lr[2 * i] = (int16_t)((i * 7919) % 60000 - 30000);
        lr[2 * i + 1] = (int16_t)((i * 104729) % 50000 - 25000);
    }
    const char *path = scratch_wav("stereo.wav", 1, 2, 48000, 16, lr, sizeof lr);
    REQUIRE(path);
    audio_options o = opts(48000);
    size_t n = 0;
    float *s = load(path, &o, &n);
    REQUIRE(s);
    CHECK_EQ_INT(n, N);
    size_t bad = 0;
    for (int i = 0; i < N && (size_t)i < n; i++)
        bad += s[i] != (float)(((double)lr[2 * i] / 32768.0 + (double)lr[2 * i + 1] / 32768.0) / 2);
    CHECK_EQ_INT(bad, 0);
    free(s);

    /* L = +0.5, R = -0.5: nothing left (no 1/sqrt(2) or other gain, no channel weighting) */
    for (int i = 0; i < N; i++) {
        lr[2 * i] = 16384;
        lr[2 * i + 1] = -16384;
    }
    path = scratch_wav("opposite.wav", 1, 2, 48000, 16, lr, sizeof lr);
    REQUIRE(path);
    s = load(path, &o, &n);
    REQUIRE(s);
    CHECK_EQ_INT(n, N);
    CHECK_EQ_INT(argmax_abs(s, n) == 0 && s[0] == 0.0f, 1);
    free(s);

    /* L = R = 0.5: 0.5 */
    for (int i = 0; i < N; i++) lr[2 * i] = lr[2 * i + 1] = 16384;
    path = scratch_wav("same.wav", 1, 2, 48000, 16, lr, sizeof lr);
    REQUIRE(path);
    s = load(path, &o, &n);
    REQUIRE(s);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) off += s[i] != 0.5f;
    CHECK_EQ_INT(off, 0);
    free(s);
}

/* Six channels (5.1 to FFmpeg): the plain mean, the centre and LFE channels weigh as much as the others. */
TEST(downmix_six_channels) {
    enum { N = 1000, C = 6 };
    static int16_t x[N * C];
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++) x[i * C + c] = (int16_t)(((uint32_t)((i + 1) * (c + 3)) * 2654435761u) >> 16);
    const char *path = scratch_wav("six.wav", 1, C, 48000, 16, x, sizeof x);
    REQUIRE(path);
    audio_options o = opts(48000);
    size_t n = 0;
    float *s = load(path, &o, &n);
    REQUIRE(s);
    CHECK_EQ_INT(n, N);
    size_t bad = 0;
    for (int i = 0; i < N && (size_t)i < n; i++) {
        double sum = 0;
        for (int c = 0; c < C; c++) sum += (double)x[i * C + c] / 32768.0;
        bad += s[i] != (float)(sum / C);
    }
    CHECK_EQ_INT(bad, 0);
    free(s);
}

/* Other sample formats: u8, s32 and float (3 channels) convert exactly. */
TEST(sample_formats) {
    enum { N = 2000 };
    audio_options o = opts(16000);
    size_t n = 0;

    static uint8_t u8[N];
    for (int i = 0; i < N; i++) u8[i] = (uint8_t)(i * 31);
    const char *path = scratch_wav("u8.wav", 1, 1, 16000, 8, u8, sizeof u8);
    REQUIRE(path);
    float *s = load(path, &o, &n);
    REQUIRE(s);
    CHECK_EQ_INT(n, N);
    size_t bad = 0;
    for (int i = 0; i < N && (size_t)i < n; i++) bad += s[i] != (float)(((double)u8[i] - 128) / 128);
    CHECK_EQ_INT(bad, 0);
    free(s);

    static int32_t s32[N];
    for (int i = 0; i < N; i++) s32[i] = (int32_t)((uint32_t)i * 2654435761u);
    path = scratch_wav("s32.wav", 1, 1, 16000, 32, s32, sizeof s32);
    REQUIRE(path);
    s = load(path, &o, &n);
    REQUIRE(s);
    CHECK_EQ_INT(n, N);
    bad = 0;
    for (int i = 0; i < N && (size_t)i < n; i++) bad += s[i] != (float)((double)s32[i] / 2147483648.0);
    CHECK_EQ_INT(bad, 0);
    free(s);

    static float f3[N * 3];
    for (int i = 0; i < N * 3; i++) f3[i] = (float)sin(i * 0.37) * 0.9f;
    path = scratch_wav("f32x3.wav", 3, 3, 16000, 32, f3, sizeof f3);
    REQUIRE(path);
    s = load(path, &o, &n);
    REQUIRE(s);
    CHECK_EQ_INT(n, N);
    bad = 0;
    for (int i = 0; i < N && (size_t)i < n; i++)
        bad += s[i] != (float)(((double)f3[3 * i] + (double)f3[3 * i + 1] + (double)f3[3 * i + 2]) / 3);
    CHECK_EQ_INT(bad, 0);
    free(s);
}

/* ---- 3. resampling ------------------------------------------------------------------------------------------- */

/* 1 s of a 1 kHz sine at 44.1 kHz, stereo with L = R, amplitude 0.5, as s16. */
static const char *sine44(void) {
    return scratch_ffmpeg("sine44.wav",
               "-f lavfi -i 'aevalsrc=0.5*sin(2*PI*1000*t)|0.5*sin(2*PI*1000*t):s=44100:d=1' -c:a pcm_s16le");
}

/* 3 s of a chirp (200 Hz rising by 600 Hz/s) at 44.1 kHz: no two windows alike. */
static const char *chirp44(void) {
    return scratch_ffmpeg("chirp44.wav", "-f lavfi -i 'aevalsrc=0.4*sin(2*PI*(200*t+300*t*t)):s=44100:d=3' -c:a pcm_s16le");
}

/* The sine at 44.1 kHz read at 48 kHz. */
TEST(resample_44k_stereo) {
    const char *path = sine44();
    audio_options o = opts(48000);
    size_t n = 0;
    float *s = load(path, &o, &n);
    REQUIRE(s);
    /* n input samples make exactly ceil(n * 48000 / 44100) output samples */
    CHECK_EQ_INT(n, 48000);
    /* level: RMS within 1% of 0.5 / sqrt(2) (measured ratio: 1.00001) */
    double level = rms(s, 2400, n - 2400) / (0.5 / sqrt(2));
    CHECK_NEAR(level, 1.0, 0.01);
    /* frequency: 2 zero crossings per period (edges excluded: the sine starts at 0) */
    CHECK_NEAR(zero_crossings(s, 24, n - 24), 2000, 2);
    /* phase: no delay, the samples follow 0.5 sin(2 pi 1000 k / 48000) (measured max error: 2e-5) */
    double worst = 0;
    for (size_t k = 480; k + 480 < n; k++)
        worst = fmax(worst, fabs(s[k] - 0.5 * sin(2 * M_PI * 1000 * (double)k / 48000)));
    CHECK(worst < 2e-3);
    if (worst >= 2e-3) printf("  max deviation from the ideal sine: %g\n", worst);
    free(s);
}

/* A click: its peak lands on the same time at the output rate (the resampler has no latency), up and down. */
TEST(resample_no_latency) {
    enum { N = 8820 };
    static int16_t x[N];
    memset(x, 0, sizeof x);
    x[4410] = 16384; /* 0.1 s at 44.1 kHz */
    const char *path = scratch_wav("click44.wav", 1, 1, 44100, 16, x, sizeof x);
    REQUIRE(path);
    audio_options o = opts(48000);
    size_t n = 0;
    float *s = load(path, &o, &n);
    REQUIRE(s);
    CHECK_EQ_INT(n, 9600);
    CHECK_EQ_INT(argmax_abs(s, n), 4800);
    CHECK_NEAR(s[4800], 0.5, 0.05);
    free(s);

    static int16_t y[9600];
    memset(y, 0, sizeof y);
    y[4800] = 16384; /* 0.1 s at 48 kHz, read at 16 kHz */
    path = scratch_wav("click48.wav", 1, 1, 48000, 16, y, sizeof y);
    REQUIRE(path);
    o = opts(16000);
    s = load(path, &o, &n);
    REQUIRE(s);
    CHECK_EQ_INT(n, 3200);
    CHECK_EQ_INT(argmax_abs(s, n), 1600);
    free(s);
}

TEST(silence) {
    const char *path = scratch_ffmpeg("silence.wav", "-f lavfi -i anullsrc=r=44100:cl=stereo -t 0.5 -c:a pcm_s16le");
    audio_options o = opts(48000);
    size_t n = 0;
    float *s = load(path, &o, &n);
    REQUIRE(s);
    CHECK_EQ_INT(n, 24000);
    size_t nonzero = 0;
    for (size_t i = 0; i < n; i++) nonzero += s[i] != 0.0f;
    CHECK_EQ_INT(nonzero, 0);
    free(s);
}

/* One sample: at the same rate one sample; resampled, the output samples within its 1/rate span (44.1 -> 48 kHz:
 * ceil(48000 / 44100) = 2, the first exactly at its time). */
TEST(one_sample) {
    int16_t v = 12345;
    const char *p48 = scratch_wav("one48.wav", 1, 1, 48000, 16, &v, sizeof v);
    const char *p44 = scratch_wav("one44.wav", 1, 1, 44100, 16, &v, sizeof v);
    REQUIRE(p48 && p44);
    audio_options o = opts(48000);
    size_t n = 0;
    float *s = load(p48, &o, &n);
    REQUIRE(s);
    CHECK_EQ_INT(n, 1);
    CHECK(n == 1 && s[0] == 12345 / 32768.0f);
    free(s);
    s = load(p44, &o, &n);
    REQUIRE(s);
    CHECK_EQ_INT(n, 2);
    CHECK(all_finite(s, n));
    if (n >= 1) CHECK_NEAR(s[0], 12345 / 32768.0, 1e-3);
    free(s);
    o = opts(8000); /* downsampled: ceil(8000 / 48000) = 1 */
    s = load(p48, &o, &n);
    REQUIRE(s);
    CHECK_EQ_INT(n, 1);
    CHECK(all_finite(s, n));
    free(s);
}

/* An empty data chunk: no samples, CLXP_OK, a buffer all the same. */
TEST(empty) {
    int16_t none = 0;
    const char *path = scratch_wav("empty.wav", 1, 1, 48000, 16, &none, 0);
    REQUIRE(path);
    audio_options o = opts(48000);
    float *s = NULL;
    size_t n = 99;
    clxp_error err;
    clxp_status st = audio_load(path, &o, 0, &s, &n, &err);
    if (st != CLXP_OK) printf("  %s\n", err.msg);
    CHECK_EQ_INT(st, CLXP_OK);
    CHECK_EQ_INT(n, 0);
    CHECK(s != NULL);
    free(s);
}

/* ---- 4. start / duration ------------------------------------------------------------------------------------- */

/* The window [start, start + duration) read with start/duration, against the same window cut out of the whole. */
static void check_window(const char *path, int rate, double start, double duration, double tol) {
    audio_options o = opts(rate);
    size_t nw = 0, n = 0;
    float *whole = load(path, &o, &nw);
    o.start = start;
    o.duration = duration;
    float *s = load(path, &o, &n);
    size_t from = (size_t)llround(start * rate), len = (size_t)llround(duration * rate);
    if (!whole || !s || from + len > nw) {
        CHECK(whole && s);
        CHECK(from + len <= nw);
    } else {
        CHECK_EQ_INT(n, len);
        double worst = 0;
        for (size_t i = 0; i < n && i < len; i++) worst = fmax(worst, fabs((double)s[i] - whole[from + i]));
        if (!(worst <= tol))
            printf("  %s, %d Hz, %g s + %g s: max difference %g\n", path, rate, start, duration, worst);
        CHECK(worst <= tol);
    }
    free(whole);
    free(s);
}

TEST(start_duration_wav48) {
    char path[4096];
    snprintf(path, sizeof path, "%s", test_data("clap-tiny-unfused/golden/inputs/b_tones_10s.wav"));
    check_window(path, 48000, 2.5, 1.25, 0);
    check_window(path, 48000, 0.1234567, 0.5, 0); /* start not on a sample: rounded to the nearest */
    check_window(path, 48000, 0.3, 0.25, 0);       /* within the pre-roll: no seek */
    check_window(path, 48000, 9.75, 0.25, 0);      /* up to the last sample */

    /* past the end: nothing; duration beyond the end: up to the end */
    audio_options o = opts(48000);
    o.start = 11;
    size_t n = 1;
    float *s = load(path, &o, &n);
    CHECK(s != NULL);
    CHECK_EQ_INT(n, 0);
    free(s);
    o.start = 9.5;
    o.duration = 5;
    s = load(path, &o, &n);
    CHECK(s != NULL);
    CHECK_EQ_INT(n, 24000);
    free(s);
}

/* Resampled (44.1 kHz chirp read at 48 kHz): the window is the same samples as in the whole file. */
TEST(start_duration_resampled) {
    const char *wav = chirp44();
    REQUIRE(wav);
    check_window(wav, 48000, 1.3, 0.9, 1e-6);
    check_window(wav, 48000, 0.777, 1.111, 1e-6);
    check_window(wav, 16000, 2.0001, 0.5, 1e-6);
    /* AAC in MP4: the same samples but for the AAC decoder itself, whose output after a seek differs by about 1e-5
     * (measured 1.2e-5: its noise substitution state; resampling the decoded PCM is exact as above) */
    const char *m4a = scratch_ffmpeg("chirp44.m4a", "-f lavfi -i 'aevalsrc=0.4*sin(2*PI*(200*t+300*t*t)):s=44100:d=3' -c:a aac");
    REQUIRE(m4a);
    check_window(m4a, 48000, 1.3, 0.9, 5e-5);
    check_window(m4a, 48000, 2.05, 0.5, 5e-5);
}

/* Reads in small pieces stop exactly at the duration. */
TEST(duration_pieces) {
    const char *wav = chirp44();
    REQUIRE(wav);
    audio_options o = opts(48000);
    o.start = 0.5;
    o.duration = 0.2;
    audio_reader *r = NULL;
    clxp_error err;
    REQUIRE(audio_open(wav, &o, &r, &err) == CLXP_OK);
    float buf[333];
    size_t got = 0, total = 0;
    do {
        CHECK_EQ_INT(audio_read(r, buf, sizeof buf / sizeof buf[0], &got, &err), CLXP_OK);
        total += got;
    } while (got > 0 && total < 100000);
    CHECK_EQ_INT(total, 9600);
    audio_close(r);
}

/* ---- 5. streams ---------------------------------------------------------------------------------------------- */

TEST(video_sound_track) {
    const char *path = scratch_ffmpeg("av.mp4", "-f lavfi -i testsrc=size=64x48:rate=10:duration=1 "
                                     "-f lavfi -i 'aevalsrc=0.5*sin(2*PI*1000*t):s=44100:d=1' -c:v mpeg4 -c:a aac");
    REQUIRE(path);
    audio_options o = opts(48000);
    audio_reader *r = NULL;
    clxp_error err;
    clxp_status st = audio_open(path, &o, &r, &err);
    if (st != CLXP_OK) printf("  %s\n", err.msg);
    REQUIRE(st == CLXP_OK);
    CHECK_EQ_INT(audio_stream_index(r), 1);
    CHECK_NEAR(audio_duration(r), 1.0, 0.05);
    audio_close(r);
    size_t n = 0;
    float *s = load(path, &o, &n);
    REQUIRE(s);
    /* 1 s, and the rest of the last AAC frame (FFmpeg 5.1 does not trim the end of an MP4 sound track) */
    CHECK(n >= 48000 && n <= 48000 + 2 * 1115);
    CHECK_NEAR(zero_crossings(s, 4800, 43200), 1600, 4);
    CHECK_NEAR(rms(s, 4800, 43200), 0.5 / sqrt(2), 0.01);
    free(s);
}

/* Video, then two sound tracks (440 Hz, 1 kHz): "a:1" is the second. */
TEST(stream_specifier) {
    const char *path = scratch_ffmpeg("two.mkv", "-f lavfi -i testsrc=size=64x48:rate=10:duration=1 "
                                      "-f lavfi -i 'aevalsrc=0.5*sin(2*PI*440*t):s=48000:d=1' "
                                      "-f lavfi -i 'aevalsrc=0.5*sin(2*PI*1000*t):s=22050:d=1' "
                                      "-map 0:v -map 1:a -map 2:a -c:v mpeg4 -c:a pcm_s16le");
    REQUIRE(path);
    audio_options o = opts(48000);
    o.stream = "a:1";
    audio_reader *r = NULL;
    clxp_error err;
    REQUIRE(audio_open(path, &o, &r, &err) == CLXP_OK);
    CHECK_EQ_INT(audio_stream_index(r), 2);
    audio_close(r);
    size_t n = 0;
    float *s = load(path, &o, &n);
    REQUIRE(s);
    CHECK_EQ_INT(n, 48000);
    CHECK_NEAR(zero_crossings(s, 480, 47520), 1960, 3); /* 1 kHz */
    free(s);

    o.stream = NULL; /* the best audio stream: the first */
    s = load(path, &o, &n);
    REQUIRE(s);
    CHECK_EQ_INT(n, 48000);
    CHECK_NEAR(zero_crossings(s, 480, 47520), 862, 3); /* 440 Hz */
    free(s);

    o.stream = "v";
    CHECK_EQ_INT(audio_open(path, &o, &r, &err), CLXP_ERR_INVALID);
    CHECK(r == NULL);
    CHECK_CONTAINS(err.msg, "not an audio stream");
    o.stream = "a:7";
    CHECK_EQ_INT(audio_open(path, &o, &r, &err), CLXP_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "no stream matches \"a:7\"");
    o.stream = "x:y:z";
    CHECK_EQ_INT(audio_open(path, &o, &r, &err), CLXP_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "x:y:z");
}

TEST(no_audio_stream) {
    const char *path = scratch_ffmpeg("silent_film.mp4", "-f lavfi -i testsrc=size=64x48:rate=10:duration=0.5 -c:v mpeg4");
    REQUIRE(path);
    audio_options o = opts(48000);
    audio_reader *r = NULL;
    clxp_error err;
    CHECK_EQ_INT(audio_open(path, &o, &r, &err), CLXP_ERR_UNSUPPORTED);
    CHECK(r == NULL);
    CHECK_CONTAINS(err.msg, path);
    CHECK_CONTAINS(err.msg, "no audio stream");
    float dummy = 0, *s = &dummy;
    size_t n = 7;
    CHECK_EQ_INT(audio_load(path, &o, 0, &s, &n, &err), CLXP_ERR_UNSUPPORTED);
    CHECK(s == NULL);
    CHECK_EQ_INT(n, 0);
}

/* ---- 6. damaged input ------------------------------------------------------------------------------------------ */

/* Float samples with NaN and infinities: replaced by 0, counted, one warning; the rest exact, even resampled the
 * output is finite. */
TEST(nonfinite_samples) {
    enum { N = 4800 };
    static float x[N];
    for (int i = 0; i < N; i++) x[i] = 0.25f * (float)sin(i * 0.05);
    x[100] = NAN;
    x[200] = INFINITY;
    x[300] = -INFINITY;
    x[4000] = NAN;
    const char *path = scratch_wav("nan.wav", 3, 1, 48000, 32, x, sizeof x);
    REQUIRE(path);
    static const int rates[] = {48000, 44100, 16000};
    for (int k = 0; k < 3; k++) {
        audio_options o = opts(rates[k]);
        audio_reader *r = NULL;
        clxp_error err;
        REQUIRE(audio_open(path, &o, &r, &err) == CLXP_OK);
        log_reset();
        static float s[N * 2];
        size_t n = 0, got = 0;
        do {
            CHECK_EQ_INT(audio_read(r, s + n, 1000, &got, &err), CLXP_OK);
            n += got;
        } while (got > 0 && n + 1000 <= sizeof s / sizeof s[0]);
        CHECK_EQ_INT(n, (size_t)N * rates[k] / 48000);
        CHECK(all_finite(s, n));
        CHECK_EQ_INT(audio_nonfinite_count(r), 4);
        CHECK_EQ_INT(g_log_warnings, 1);
        CHECK_EQ_INT(count_substr(g_log, "NaN"), 1);
        CHECK_CONTAINS(g_log, path);
        if (rates[k] == 48000) {
            size_t bad = 0;
            for (int i = 0; i < N && (size_t)i < n; i++) bad += s[i] != (isfinite(x[i]) ? x[i] : 0.0f);
            CHECK_EQ_INT(bad, 0);
        }
        audio_close(r);
    }
}

/* 2 KB of fixed pseudo-random bytes in the middle of a file. */
static const char *damaged_copy(const char *good, const char *name) {
    if (!good) return NULL;
    const char *path = scratch_path(name);
    if (scratch_sh("cp '%s' '%s'", good, path) != 0) return NULL;
    FILE *f = fopen(path, "r+b");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size / 2, SEEK_SET);
    uint32_t s = 12345;
    for (int i = 0; i < 2048; i++) {
        s = s * 1103515245u + 12345u;
        fputc((int)((s >> 16) & 0xff), f);
    }
    return fclose(f) == 0 && size > 8192 ? path : NULL;
}

/* 4 s of a 1 kHz sine (MP3, AAC in ADTS) with garbage at 2 s: a warning with the time, then the rest. */
static void check_damaged(const char *path) {
    REQUIRE(path);
    audio_options o = opts(48000);
    log_reset();
    size_t cap = 6 * 48000, n = 0, got = 0;
    float *s = malloc(cap * sizeof *s);
    REQUIRE(s);
    audio_reader *r = NULL;
    clxp_error err;
    if (audio_open(path, &o, &r, &err) != CLXP_OK) {
        printf("  %s\n", err.msg);
        CHECK(r != NULL);
        free(s);
        return;
    }
    clxp_status st;
    do {
        st = audio_read(r, s + n, cap - n < 4096 ? cap - n : 4096, &got, &err);
        n += got;
    } while (st == CLXP_OK && got > 0 && n < cap);
    if (st != CLXP_OK) printf("  %s\n", err.msg);
    CHECK_EQ_INT(st, CLXP_OK);
    CHECK(audio_corrupt_count(r) >= 1);
    audio_close(r);
    /* a little is lost around 2 s; the sound goes on to the end */
    CHECK(n > 0.9 * 4 * 48000 && n < 4.2 * 48000);
    CHECK(all_finite(s, n));
    if (n > 3 * 48000) {
        CHECK_NEAR(rms(s, 48000 / 2, 48000 * 3 / 2), 0.5 / sqrt(2), 0.02);
        CHECK_NEAR(rms(s, n - 48000 * 3 / 2, n - 48000 / 2), 0.5 / sqrt(2), 0.02);
    }
    CHECK_CONTAINS(g_log, path);
    CHECK_CONTAINS(g_log, "corrupt");
    const char *at = strstr(g_log, " at ");
    double t = -1;
    CHECK(at && sscanf(at, " at %lf s", &t) == 1);
    if (!(t > 1.5 && t < 2.5)) printf("  %s", g_log);
    CHECK(t > 1.5 && t < 2.5);
    free(s);
}

TEST(corrupt_middle_mp3) {
    const char *good = scratch_ffmpeg("sine4.mp3", "-f lavfi -i 'aevalsrc=0.5*sin(2*PI*1000*t):s=44100:d=4' -c:a libmp3lame");
    check_damaged(damaged_copy(good, "bad.mp3"));
}

TEST(corrupt_middle_adts) {
    const char *good = scratch_ffmpeg("sine4.aac", "-f lavfi -i 'aevalsrc=0.5*sin(2*PI*1000*t):s=44100:d=4' -c:a aac -f adts");
    check_damaged(damaged_copy(good, "bad.aac"));
}

/* The first AAC frame (ADTS) damaged: the sound starts one frame late, and silence in front keeps the timing (the
 * same length as the intact file, the same samples after the first frames). */
TEST(damaged_first_packet) {
    const char *good = scratch_ffmpeg("sine1.aac", "-f lavfi -i 'aevalsrc=0.5*sin(2*PI*1000*t):s=44100:d=1' -c:a aac -f adts");
    REQUIRE(good);
    const char *path = scratch_path("bad_first.aac");
    REQUIRE(scratch_sh("cp '%s' '%s'", good, path) == 0);
    FILE *f = fopen(path, "r+b");
    REQUIRE(f);
    uint8_t b[32];
    fseek(f, 9, SEEK_SET); /* after the 7-byte ADTS header */
    int ok = fread(b, 1, sizeof b, f) == sizeof b;
    for (size_t i = 0; i < sizeof b; i++) b[i] ^= 0x5a;
    fseek(f, 9, SEEK_SET);
    ok = ok && fwrite(b, 1, sizeof b, f) == sizeof b;
    ok = (fclose(f) == 0) && ok;
    REQUIRE(ok);

    audio_options o = opts(48000);
    size_t ng = 0, n = 0;
    float *g = load(good, &o, &ng);
    log_reset();
    float *s = load(path, &o, &n);
    if (!g || !s) {
        CHECK(g && s);
        free(g);
        free(s);
        return;
    }
    CHECK_CONTAINS(g_log, "corrupt audio packet at 0.000 s");
    CHECK_EQ_INT(n, ng);
    /* the second frame starts at 1024 / 44100 s = sample 1114.6 at 48 kHz: the first input sample at a time on both
     * grids is 1029 / 44100 s = sample 1120 */
    size_t nonzero = 0;
    for (size_t i = 0; i < 1120 && i < n; i++) nonzero += s[i] != 0.0f;
    CHECK_EQ_INT(nonzero, 0);
    /* after the decoder has recovered (its first frame fades in), the intact file's samples at the same times: a
     * shift by one sample would differ by up to 0.065 (measured: 2.1e-4, the AAC decoder's state) */
    double worst = 0;
    for (size_t i = 5000; i < n && i < ng; i++) worst = fmax(worst, fabs((double)s[i] - g[i]));
    CHECK(worst < 2e-3);
    free(g);
    free(s);
}

/* An ADTS stream that goes from 44.1 kHz to 22.05 kHz half-way: the resampler follows, the pitch stays. */
TEST(rate_change) {
    const char *a = scratch_ffmpeg("sine1.aac", "-f lavfi -i 'aevalsrc=0.5*sin(2*PI*1000*t):s=44100:d=1' -c:a aac -f adts");
    const char *b = scratch_ffmpeg("sine22.aac", "-f lavfi -i 'aevalsrc=0.5*sin(2*PI*1000*t):s=22050:d=1' -c:a aac -f adts");
    REQUIRE(a && b);
    const char *path = scratch_path("rates.aac");
    REQUIRE(scratch_sh("cat '%s' '%s' > '%s'", a, b, path) == 0);
    audio_options o = opts(48000);
    size_t na = 0, nb = 0, n = 0;
    float *sa = load(a, &o, &na), *sb = load(b, &o, &nb), *s = load(path, &o, &n);
    free(sa);
    free(sb);
    REQUIRE(s);
    /* each part resampled from its own rate: as long as the two files read one by one */
    CHECK_EQ_INT(n, na + nb);
    CHECK_NEAR(zero_crossings(s, 4800, 43200), 1600, 4);
    CHECK_NEAR(zero_crossings(s, n - 40000, n - 8000), 1333, 4);
    CHECK_NEAR(rms(s, n - 40000, n - 8000), 0.5 / sqrt(2), 0.02);
    free(s);
}

/* ---- 7. errors, limits, interruption --------------------------------------------------------------------------- */

TEST(errors) {
    audio_options o = opts(48000);
    audio_reader *r = NULL;
    clxp_error err;
    const char *missing = scratch_path("missing.wav");
    CHECK_EQ_INT(audio_open(missing, &o, &r, &err), CLXP_ERR_IO);
    CHECK(r == NULL);
    CHECK_CONTAINS(err.msg, missing);
    CHECK_CONTAINS(err.msg, "cannot open");

    const char *text = scratch_path("notes.txt");
    FILE *f = fopen(text, "w");
    REQUIRE(f);
    fputs("not a sound\n", f);
    fclose(f);
    CHECK_EQ_INT(audio_open(text, &o, &r, &err), CLXP_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, text);

    int16_t v = 1;
    const char *wav = scratch_wav("options.wav", 1, 1, 48000, 16, &v, sizeof v);
    REQUIRE(wav);
    CHECK_EQ_INT(audio_open(wav, NULL, &r, &err), CLXP_ERR_INVALID);
    o.sample_rate = 0;
    CHECK_EQ_INT(audio_open(wav, &o, &r, &err), CLXP_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "sample rate");
    o.sample_rate = 48000;
    o.start = -1;
    CHECK_EQ_INT(audio_open(wav, &o, &r, &err), CLXP_ERR_INVALID);
    o.start = 0;
    o.duration = NAN;
    CHECK_EQ_INT(audio_open(wav, &o, &r, &err), CLXP_ERR_INVALID);
    CHECK(r == NULL);
}

TEST(load_limit) {
    const char *path = sine44(); /* 48000 samples at 48 kHz */
    REQUIRE(path);
    audio_options o = opts(48000);
    float *s = NULL;
    size_t n = 0;
    clxp_error err;
    CHECK_EQ_INT(audio_load(path, &o, 47999, &s, &n, &err), CLXP_ERR_LIMIT);
    CHECK(s == NULL);
    CHECK_CONTAINS(err.msg, path);
    CHECK_EQ_INT(audio_load(path, &o, 48000, &s, &n, &err), CLXP_OK);
    CHECK_EQ_INT(n, 48000);
    free(s);
}

static int interrupt_when_set(void *user) { return *(const int *)user; }

/* The interrupt callback: set before opening, the open fails; set while reading, the stream ends early. */
TEST(interrupt) {
    char path[4096];
    snprintf(path, sizeof path, "%s", test_data("clap-tiny-unfused/golden/inputs/b_tones_10s.wav"));
    int stop = 1;
    audio_options o = opts(48000);
    o.interrupt = interrupt_when_set;
    o.interrupt_user = &stop;
    audio_reader *r = NULL;
    clxp_error err;
    CHECK(audio_open(path, &o, &r, &err) != CLXP_OK);
    CHECK(r == NULL);
    stop = 0;
    REQUIRE(audio_open(path, &o, &r, &err) == CLXP_OK);
    static float buf[480000];
    size_t got = 0, total = 0;
    CHECK_EQ_INT(audio_read(r, buf, 1000, &got, &err), CLXP_OK);
    total += got;
    stop = 1;
    do {
        CHECK_EQ_INT(audio_read(r, buf, sizeof buf / sizeof buf[0], &got, &err), CLXP_OK);
        total += got;
    } while (got > 0);
    CHECK(total >= 1000 && total < 480000);
    audio_close(r);
}

/* ---- main ------------------------------------------------------------------------------------------------ */

int main(void) {
    av_log_set_level(AV_LOG_QUIET); /* the damaged files make the decoders talk; clxp's warnings are checked */
    clxp_set_log_callback(capture_log, NULL, CLXP_LOG_WARN);
    if (!scratch_init("audio")) return test_summary();
    RUN(golden_wav_exact);
    RUN(downmix_stereo_mean);
    RUN(downmix_six_channels);
    RUN(sample_formats);
    RUN(resample_44k_stereo);
    RUN(resample_no_latency);
    RUN(silence);
    RUN(one_sample);
    RUN(empty);
    RUN(start_duration_wav48);
    RUN(start_duration_resampled);
    RUN(duration_pieces);
    RUN(video_sound_track);
    RUN(stream_specifier);
    RUN(no_audio_stream);
    RUN(nonfinite_samples);
    RUN(corrupt_middle_mp3);
    RUN(corrupt_middle_adts);
    RUN(damaged_first_packet);
    RUN(rate_change);
    RUN(errors);
    RUN(load_limit);
    RUN(interrupt);
    scratch_cleanup();
    return test_summary();
}
