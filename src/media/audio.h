/* Audio sample source: demux + decode one audio stream with FFmpeg (an audio file, or the sound track of a video),
 * downmix it to mono and resample it to the model's rate, as float32 samples.
 *
 * Conversion, in this order:
 *   decode      any codec libavcodec decodes; every sample format is converted to float exactly (u8: (v - 128) / 128,
 *               s16: v / 32768, s32: v / 2^31, s64: v / 2^63, flt and dbl as they are);
 *   non-finite  a NaN or infinite sample (float/double formats) is replaced by 0, counted (audio_nonfinite_count,
 *               per channel sample) and reported by one warning per reader;
 *   downmix     the mean of all channels, (c0 + c1 + ... + cN-1) / N, computed in double and rounded once to float:
 *               no gain, no centre/surround weights (libswresample's default stereo-to-mono matrix would scale by
 *               1/sqrt(2) instead); a mono stream passes through unchanged;
 *   resample    when the stream's rate differs from the output rate, libswresample's own resampler (resampler=swr,
 *               its defaults: 32-tap windowed sinc, cutoff 0.97 of the lower Nyquist rate, exact rational phases).
 *               It is in every FFmpeg build (soxr is optional). No latency: output sample k is the input signal
 *               at time k / out_rate (measured: a click at 0.1 s peaks at 0.1 s, 44.1 -> 48 kHz and 48 -> 16 kHz),
 *               and n input samples give exactly ceil(n * out_rate / in_rate) output samples (the end of the
 *               signal is continued with zeros for the last filter taps: libswresample's own flush gives a few
 *               samples more or fewer, and none at all for fewer than about 20 input samples). Measured on a 1 kHz
 *               sine at 44.1 kHz read at 48 kHz: RMS ratio 1.00001, largest deviation from the ideal sine 2e-5
 *               away from the edges (s16 input).
 *               When the rates are equal there is no resampling at all: a 48 kHz s16 WAV read at 48 kHz gives
 *               exactly sample / 32768.0f (how the CLAP goldens decode their WAVs).
 *
 * Timing. Times are in seconds from the stream's start time (its first sample is at 0 in a typical file). The
 * samples returned are contiguous: sample k (counting from 0 over all audio_read calls) is at
 * start + k / sample_rate. The time of the first sample comes from the first decoded frame's timestamp; after that,
 * gaps and overlaps in the timestamps are ignored (the decoded samples are simply concatenated), as are packets
 * dropped as corrupt. When resampling, input samples are dropped up to the first one whose time is also on the
 * output grid (a multiple of in_rate / gcd(in_rate, out_rate) samples from the stream start, e.g. 147 at
 * 44.1 -> 48 kHz; nothing when the first frame is at 0). When the first sample is later than `start` (a first
 * packet lost, a seek that lands after the point asked for), silence is inserted in front so that the timing above
 * holds. What the decoder outputs is kept as it is: encoder priming in formats without gapless information (raw
 * AAC/ADTS) and, with FFmpeg 5.1, the padding of the last AAC frame of an MP4 (up to 1023 samples).
 *
 * start/duration. With start > 0 the reader seeks (avformat_seek_file) to half a second before start, so that the
 * decoder (AAC/MP3 overlap, the bit reservoir) and the resampler are warmed up, decodes from there and drops every
 * output sample before round(start * sample_rate) exactly. As both sample grids meet at the cut, a window
 * [start, start + duration) is the same samples as the window cut out of the whole file (for formats with exact
 * timestamps: WAV, MP4/M4A, MKV, ...; tested bit-exact for PCM, within 2e-5 for AAC, whose decoder output after a
 * seek differs that much). duration > 0 stops after round(duration * sample_rate) samples (fewer if the stream
 * ends first).
 *
 * Corrupt packets and frames are skipped with a warning naming the timestamp ("<url>: corrupt audio packet at
 * 12.345 s skipped") and counted (audio_corrupt_count); decoding continues after them. A change of the sample rate
 * in the middle of a stream is followed (the resampler is rebuilt). Library code never prints: warnings go to
 * clxp_log, and FFmpeg's own av_log output is left to the application. */
#ifndef CLXP_MEDIA_AUDIO_H
#define CLXP_MEDIA_AUDIO_H

#include <stddef.h>
#include <stdint.h>

#include "clxp.h"

/* Highest output rate accepted. */
#define CLXP_AUDIO_MAX_RATE 768000

typedef struct audio_options {
    const char *stream;     /* FFmpeg stream specifier ("a:1", "2", ...), NULL or "": the best audio stream */
    int sample_rate;        /* output rate (the model's), e.g. 48000; 1 .. CLXP_AUDIO_MAX_RATE */
    double start, duration; /* seconds: seek to start (samples before it dropped exactly), stop after duration;
                             * 0: from the beginning / to the end */
    int (*interrupt)(void *user); /* non-zero: abort blocking reads (FFmpeg's interrupt callback); may be NULL.
                                   * An interrupted read ends the stream (audio_read then reports the end). */
    void *interrupt_user;
    struct demuxer *demux; /* read through this shared demuxer (media/demux.h; url then only names the input in
                            * messages; no seek: the demuxer's owner seeks), or NULL: open url */
} audio_options;

typedef struct audio_reader audio_reader;

/* Open url and pick its audio stream. Errors: CLXP_ERR_IO (missing file), CLXP_ERR_FORMAT (not a media file),
 * CLXP_ERR_UNSUPPORTED ("<url>: no audio stream ...", or no decoder), CLXP_ERR_INVALID (bad options, a stream
 * specifier that matches nothing or a stream that is not audio). o is required (for the sample rate). */
clxp_status audio_open(const char *url, const audio_options *o, audio_reader **out, clxp_error *err);

/* Read up to max (> 0) mono float32 samples at the output rate into buf; *got = 0 (and CLXP_OK) at the end.
 * Sample-exact and contiguous: the k-th sample returned overall is at time start + k / rate (seconds from the
 * stream start). Every sample is finite. Fewer than max samples are returned only at the end of the stream (or of
 * duration). On an error the samples stored before it are lost with it. */
clxp_status audio_read(audio_reader *r, float *buf, size_t max, size_t *got, clxp_error *err);
void audio_close(audio_reader *r);

int audio_stream_index(const audio_reader *r);
double audio_duration(const audio_reader *r);           /* of the stream, seconds, <= 0 if unknown */
int64_t audio_corrupt_count(const audio_reader *r);     /* packets or frames skipped as corrupt so far */
int64_t audio_nonfinite_count(const audio_reader *r);   /* NaN/Inf samples replaced by 0 so far */

/* Convenience: a whole file (or [start, start + duration)) into a malloc'd buffer (*samples, never NULL on
 * success, even when *n is 0; the caller frees it). More than max_samples samples: CLXP_ERR_LIMIT (max_samples 0:
 * no limit but memory). */
clxp_status audio_load(const char *url, const audio_options *o, size_t max_samples, float **samples, size_t *n,
                       clxp_error *err);

#endif
