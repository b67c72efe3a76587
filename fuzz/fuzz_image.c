/* Fuzz target: still-image decoding from memory (image_decode_memory: our custom AVIO reader, format probing,
 * the size guards, and the pixel-format conversions to RGB24). FFmpeg itself is not instrumented, so this mainly
 * covers our side of it; a short run is enough. Byte 0 picks the name passed along (its extension picks the
 * decoder when probing does not recognise the data), the rest is the file. */
#include <libavutil/log.h>

#include <string.h>

#include "fuzz.h"
#include "media/image.h"

void fuzz_image_init(void) { av_log_set_level(AV_LOG_QUIET); }

#ifdef CLXP_LIBFUZZER
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_image_init();
    return 0;
}
#endif

int fuzz_image(const uint8_t *data, size_t size) {
    static const char *names[8] = {NULL, "fuzz.tga", "fuzz.png", "fuzz.jpg", "fuzz.bmp", "fuzz.ppm", "fuzz.gif",
                                   "fuzz.webp"};
    if (size < 1) return 0;
    clxp_rgb_image img;
    clxp_error err;
    clxp_status st = image_decode_memory(data + 1, size - 1, names[data[0] & 7], &img, &err);
    if (st != CLXP_OK) {
        FUZZ_ASSERT(img.data == NULL && err.code == st && !strchr(err.msg, '\n'));
        return 0;
    }
    FUZZ_ASSERT(img.data && img.width >= 1 && img.height >= 1);
    FUZZ_ASSERT(img.width <= CLXP_IMAGE_MAX_SIDE && img.height <= CLXP_IMAGE_MAX_SIDE);
    FUZZ_ASSERT((int64_t)img.width * img.height <= CLXP_IMAGE_MAX_PIXELS);
    /* every pixel byte is addressable (ASan checks the last one) */
    size_t n = (size_t)img.width * (size_t)img.height * 3;
    volatile uint8_t sink = img.data[0] ^ img.data[n - 1];
    (void)sink;
    image_free(&img);
    image_free(&img);
    return 0;
}

FUZZ_ENTRY(fuzz_image)
