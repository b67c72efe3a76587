/* MS-CLAP 2023 audio front end (microsoft/CLAP msclap 1.3.3: CLAPWrapper.load_audio_into_tensor + HTSAT's
 * torchlibrosa Spectrogram / LogmelFilterBank), on one mono float32 waveform at 44.1 kHz, giving the log-mel
 * features [frames, mels] = [965, 64] the HTSAT tower takes (shared/golden/msclap-tiny-2023/README.md).
 *
 * Window (load_audio_into_tensor, duration 7 s = 308700 samples at 44.1 kHz):
 *   - n <= window: the clip is repeated ceil(window / n) times and cut to the window (no zeros, unlike LAION's
 *     repeatpad); exactly a window: unchanged;
 *   - n > window: one window-long crop. msclap draws its start with Python's random.randrange(n - window); here it is
 *     deterministic: the centre, (n - window) / 2 (integer division), or a start given by the caller (tests replay
 *     the golden's random crop).
 * Log-mel (the front end ignores config_2023.yml: window 1024, hop 320, 64 mels, fmin 50, fmax 14000, sample rate
 * 32000 although the audio is 44.1 kHz — msclap's mel filter quirk):
 *   - reflect padding of fft/2 samples each side (edge not repeated), frames of fft samples every hop: 965 frames;
 *   - STFT: torchlibrosa convolves with float32 kernels DFT x periodic Hann (the checkpoint's
 *     spectrogram_extractor.stft.conv_real/imag). When the kernels are the standard ones (always, for msclap
 *     checkpoints; checked to 1e-6 at creation) this computes the same transform in float64 with FFmpeg's av_tx real
 *     FFT; other kernels are applied as given, by a float64 direct product. Power = re^2 + im^2;
 *   - mel = power . melW with the checkpoint's logmel_extractor.melW [bins, mels] (float32 values, float64 sums), or,
 *     when the checkpoint has none, librosa 0.10's filters.mel(sr=32000, n_fft=1024, n_mels=64, fmin=50, fmax=14000)
 *     (Slaney scale and area normalisation; triangles rounded to float32 before the float64 normalisation, as
 *     librosa stores them);
 *   - dB = 10 log10(max(mel, 1e-10)) (ref 1, no top_db), cast to float32.
 * The reference's float32 convolution differs from this float64 transform by float32 rounding: about 1e-4 dB on
 * bands within 60 dB of the frame maximum, more on bands ~100 dB below it (see the golden README's tolerances).
 */
#ifndef CLXP_MEDIA_MSCLAP_FEATURES_H
#define CLXP_MEDIA_MSCLAP_FEATURES_H

#include <stddef.h>

#include "clxp.h"

/* Longest waveform accepted (samples), about 100 minutes at 44.1 kHz (only a window of it is analysed). */
#define MSCLAP_FE_MAX_INPUT_SAMPLES ((size_t)1 << 28)

typedef struct msclap_fe_config {
    int sample_rate;     /* input rate, 44100 */
    int window_samples;  /* duration * sample_rate = 308700 */
    int fft, hop, mels;  /* 1024, 320, 64 */
    double design_rate;  /* rate the mel filters are designed for: 32000 */
    double fmin, fmax;   /* 50, 14000 */
} msclap_fe_config;

/* The values msclap 2023 uses (sample rate and duration from config_2023.yml, the rest from models/config.py). */
void msclap_fe_config_defaults(msclap_fe_config *c);

typedef struct msclap_fe msclap_fe;

/* melW: [fft/2+1, mels] float32 or NULL (librosa formula); stft_real / stft_imag: [fft/2+1, fft] float32 kernels or
 * NULL (standard DFT x periodic Hann). The arrays are copied. */
clxp_status msclap_fe_create(const msclap_fe_config *cfg, const float *melW, const float *stft_real,
                             const float *stft_imag, msclap_fe **out, clxp_error *err);
void msclap_fe_free(msclap_fe *fe);

const msclap_fe_config *msclap_fe_get_config(const msclap_fe *fe);
int msclap_fe_frames(const msclap_fe *fe); /* window_samples / hop + 1 = 965 */
int msclap_fe_bins(const msclap_fe *fe);   /* fft / 2 + 1 */
const float *msclap_fe_mel_filters(const msclap_fe *fe); /* [bins, mels] float32 in use */
int msclap_fe_uses_fft(const msclap_fe *fe);             /* 1: standard kernels, av_tx FFT */

/* librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax) (Slaney), transposed to out[bins, mels]; exposed for tests. */
void msclap_mel_filters(double sr, int n_fft, int n_mels, double fmin, double fmax, float *out);

/* Features of one clip: wave[0..n) finite float32 mono at sample_rate, 1 <= n <= MSCLAP_FE_MAX_INPUT_SAMPLES.
 * features: frames x mels floats. crop: start sample for a clip longer than the window (< 0: the centre; must be
 * <= n - window); used_crop (may be NULL) receives the start taken (-1 when no crop). Thread-safe. */
clxp_status msclap_fe_extract(const msclap_fe *fe, const float *wave, size_t n, long crop, float *features,
                              long *used_crop, clxp_error *err);

/* The window msclap analyses (repeat / crop above), window_samples floats into out. */
clxp_status msclap_fe_prepare(const msclap_fe *fe, const float *wave, size_t n, long crop, float *out, long *used_crop,
                              clxp_error *err);

/* Power spectrogram [frames, bins] (float32) of exactly window_samples samples (tests compare it). */
clxp_status msclap_fe_power(const msclap_fe *fe, const float *window, float *power, clxp_error *err);

#endif
