/* CLAP audio features: transformers 4.40.2 ClapFeatureExtractor (feature_extraction_clap.py) on one mono float32
 * waveform at the configured sampling rate, giving input_features [C, frames, mels] (C = 4 with
 * truncation "fusion", else 1; frames = nb_max_samples / hop + 1 = 1001; mels = feature_size = 64) and is_longer.
 *
 * Waveform preparation (_get_input_mel), all in float32 as numpy does for a float32 input:
 *   - shorter than nb_max_samples: "repeatpad" tiles it int(max / n) times then appends zeros, "repeat" tiles it
 *     int(max / n) + 1 times and cuts, "pad" only appends zeros;
 *   - longer, "rand_trunc": a window of nb_max_samples samples. transformers draws its start at random in
 *     [0, n - max]; here it is deterministic: the centre window, start (n - max) / 2 (integer division);
 *   - longer, "fusion": the log-mel of the whole clip, then channel 0 = that mel resized to (frames, mels) with
 *     torch's bilinear interpolation (align_corners=False, float32), channels 1..3 = frames-long chunks of it
 *     starting in the three np.array_split ranges of the candidate starts 0 .. total - frames (_random_mel_fusion;
 *     an empty second/third range is replaced by [0]). transformers draws each start at random in its range; here
 *     the start is the middle element of the range (index len // 2), e.g. 67, 201, 334 for a 14-s clip
 *     (total 1401 frames, ranges 0..133, 134..267, 268..400). A clip whose mel has exactly `frames` frames (at most
 *     hop - 1 samples too long) gives 4 copies of its whole mel.
 *   - with "fusion", clips that need no crop get 4 identical channels.
 *
 * is_longer is what a one-clip ClapFeatureExtractor call returns: with "fusion" always 1 (a clip that is not longer
 * than nb_max_samples is flagged anyway, because transformers flags one random clip of a batch in which no clip is
 * longer, and a one-clip batch has only that clip); with "rand_trunc" 1 exactly when the clip was cropped. So the
 * features of a clip never depend on the other clips encoded with it.
 *
 * Log-mel spectrogram (audio_utils.py spectrogram / mel_filter_bank / power_to_db):
 *   - reflect padding of fft/2 samples on both sides (np.pad mode="reflect", the edge sample not repeated), frames
 *     of fft samples every hop samples; the samples are promoted to float64;
 *   - periodic Hann window, np.hanning(fft + 1)[:-1] = 0.5 + 0.5 cos(pi n / fft) for n = -fft, -fft+2, ...;
 *   - real FFT in float64 (FFmpeg's av_tx AV_TX_DOUBLE_RDFT), each bin rounded to complex64 (transformers stores
 *     the rfft output in a complex64 array), power = |X|^2 in float64 (np.abs(., dtype=float64) ** 2);
 *   - mel = max(1e-10, filters^T power) in float64, dB = 10 log10(max(mel, 1e-10)) (reference 1, no top_db),
 *     cast to float32;
 *   - filters (num_frequency_bins = fft/2 + 1, feature_size) built in float64 as mel_filter_bank does: centres
 *     linspace(mel(f_min), mel(f_max), mels + 2) mapped back to Hz, FFT bin frequencies
 *     linspace(0, sampling_rate // 2, bins), triangles max(0, min(down, up)). "fusion" uses the HTK mel scale
 *     (2595 log10(1 + f/700)) without normalisation, "rand_trunc" the Slaney scale with Slaney area
 *     normalisation 2 / (f[i+2] - f[i]), as ClapFeatureExtractor picks mel_filters / mel_filters_slaney.
 *
 * Against the transformers goldens the features agree to float32 rounding (well below 1e-4 dB).
 */
#ifndef CLXP_MEDIA_AUDIO_FEATURES_H
#define CLXP_MEDIA_AUDIO_FEATURES_H

#include <stddef.h>

#include "clxp.h"
#include "io/clap_config.h"

/* Longest waveform accepted (samples): about 93 minutes at 48 kHz. The "fusion" mode computes the log-mel of the
 * whole clip, so memory grows with the length (64 floats per hop). */
#define CLAP_FE_MAX_INPUT_SAMPLES ((size_t)1 << 28)

typedef struct clap_fe clap_fe;

/* Crop starts for clips longer than nb_max_samples (tests use it to replay the reference's random choices);
 * a negative value means the deterministic default described above. */
typedef struct clap_fe_crops {
    long fusion[3]; /* start frames of the front / middle / back chunks ("fusion") */
    long trunc;     /* first sample of the kept window ("rand_trunc") */
} clap_fe_crops;

/* Build the extractor (window, mel filters, FFT set-up checks) for a configuration. */
clxp_status clap_fe_create(const clap_feature_config *cfg, clap_fe **out, clxp_error *err);
void clap_fe_free(clap_fe *fe);

const clap_feature_config *clap_fe_config(const clap_fe *fe);
int clap_fe_channels(const clap_fe *fe); /* 4 with "fusion", else 1 */
int clap_fe_frames(const clap_fe *fe);   /* nb_max_samples / hop_length + 1 */
int clap_fe_mels(const clap_fe *fe);     /* feature_size */
int clap_fe_bins(const clap_fe *fe);     /* fft_window_size / 2 + 1 */
/* The float64 mel filter bank [bins, mels] (row-major, as mel_filter_bank returns it) and window [fft]. */
const double *clap_fe_mel_filters(const clap_fe *fe);
const double *clap_fe_window(const clap_fe *fe);

/* Features of one clip: wave[0..n) float32 mono at the configured rate (finite, n >= 1, n <=
 * CLAP_FE_MAX_INPUT_SAMPLES). features: caller-allocated channels x frames x mels floats. is_longer may be NULL.
 * crops may be NULL (defaults); used (may be NULL) receives the crop starts actually taken (-1 where none).
 * Safe to call from several threads at once on one extractor (it is immutable; scratch memory is per call). */
clxp_status clap_fe_extract(const clap_fe *fe, const float *wave, size_t n, const clap_fe_crops *crops, float *features,
                            int *is_longer, clap_fe_crops *used, clxp_error *err);

/* The reference's mel-scale conversions (audio_utils.py hertz_to_mel / mel_to_hertz), exposed for tests. */
double clap_hz_to_mel(double f, int slaney);
double clap_mel_to_hz(double m, int slaney);

#endif
