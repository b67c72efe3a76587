/* Shared by the libFuzzer targets (fuzz/fuzz_*.c) and the regression replayer (tests/test_regress.c).
 *
 * Every target is a plain function `int fuzz_<name>(const uint8_t *data, size_t size)` that feeds the bytes to
 * one parser, checks what it can about the result (abort() on a broken invariant, so both libFuzzer and the
 * replayer report it), frees everything and returns 0. Built with -DCLXP_LIBFUZZER (build-fuzz/, see the `fuzz`
 * section of the Makefile) each file also defines LLVMFuzzerTestOneInput through FUZZ_ENTRY; in the normal build
 * the same functions are linked into tests/test_regress, which replays tests/regress/<name>/<file> through them.
 */
#ifndef CLXP_FUZZ_H
#define CLXP_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int fuzz_safetensors(const uint8_t *data, size_t size);
int fuzz_config(const uint8_t *data, size_t size);
int fuzz_tokenizer_load(const uint8_t *data, size_t size);
int fuzz_tokenizer_encode(const uint8_t *data, size_t size);
int fuzz_prompts(const uint8_t *data, size_t size);
int fuzz_boxes(const uint8_t *data, size_t size);
int fuzz_json(const uint8_t *data, size_t size);
int fuzz_image(const uint8_t *data, size_t size);
int fuzz_pickle(const uint8_t *data, size_t size);
int fuzz_torch(const uint8_t *data, size_t size);

/* fuzz_tokenizer_encode needs the real tokenizers loaded first. data_dir is the test data directory
 * (tests/data). Returns 0 on success, -1 (after printing why to stderr) otherwise. */
int fuzz_tokenizer_encode_init(const char *data_dir);
void fuzz_tokenizer_encode_cleanup(void);
/* fuzz_image: silence FFmpeg's log (once, before the first input). */
void fuzz_image_init(void);

/* The test data directory: $CLXP_TEST_DATA when set, else tests/data when it exists (run from the repository
 * root), else <directory of argv0>/../tests/data (a binary in build-fuzz/). Returns a static buffer. */
const char *fuzz_data_dir(const char *argv0);

/* Abort with a message when an invariant of a parser's result does not hold. */
#define FUZZ_ASSERT(cond)                                                                                             \
    do {                                                                                                              \
        if (!(cond)) fuzz_fail(__FILE__, __LINE__, #cond);                                                            \
    } while (0)
void fuzz_fail(const char *file, int line, const char *cond);

#ifdef CLXP_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);
#define FUZZ_ENTRY(fn)                                                                                                \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fn(data, size); }
#else
#define FUZZ_ENTRY(fn)
#endif

#endif
