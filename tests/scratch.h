/* A test program's scratch directory and the media files made in it (tests/scratch.c), for the tests that decode
 * generated inputs (test_audio, test_audio_pipeline, test_video). One directory per program: test state. */
#ifndef CLXP_TESTS_SCRATCH_H
#define CLXP_TESTS_SCRATCH_H

#include <stddef.h>

/* Make $TMPDIR/clxp-<name>-XXXXXX (default /tmp) and check that the ffmpeg tool runs. On failure prints
 * "FAIL setup" with the reason, counts a failed test, and returns 0. */
int scratch_init(const char *name);
/* Remove the directory and everything in it. */
void scratch_cleanup(void);
const char *scratch_dir(void);
/* Path of a file in the directory (8 rotating buffers, so several can be held at once). */
const char *scratch_path(const char *name);

/* Run a shell command (printf-style); its exit status (-1 if it could not run). Prints the command when it fails. */
int scratch_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int scratch_exists(const char *path);
/* A file made with the ffmpeg tool on first use ("ffmpeg <args> <dir>/<name>"): its path, or NULL. */
const char *scratch_ffmpeg(const char *name, const char *args);
/* A RIFF/WAVE file in the directory: format tag 1 (PCM) or 3 (IEEE float), interleaved little-endian samples;
 * its path, or NULL. */
const char *scratch_wav(const char *name, int tag, int channels, int rate, int bits, const void *data, size_t bytes);

#endif
