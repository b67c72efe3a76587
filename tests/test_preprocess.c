/* Image decoding (FFmpeg → RGB with Pillow's convert("RGB") semantics), CLIP preprocessing (bit-exact with
 * transformers 4.40.2 + Pillow 9.4 on the golden data) and preprocessor_config.json parsing. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <libavutil/log.h>

#include "io/preprocessor_config.h"
#include "io/safetensors.h"
#include "media/image.h"
#include "media/preprocess.h"
#include "test.h"
#include "util/json.h"

/* ---- helpers -------------------------------------------------------------------------------------------------- */

static char g_tmpdir[64];

static const char *tmp_path(const char *name) {
    static char buf[256];
    snprintf(buf, sizeof buf, "%s/%s", g_tmpdir, name);
    return buf;
}

static int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    size_t w = n ? fwrite(data, 1, n, f) : 0;
    return fclose(f) == 0 && w == n;
}

static void *read_whole(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(len > 0 ? (size_t)len : 1);
    if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return buf;
}

/* A minimal PNG encoder (stored deflate blocks), independent of FFmpeg, to craft decode test cases. */
typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void put(bytes *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void put_be32(bytes *b, uint32_t v) {
    uint8_t q[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(b, q, 4);
}
static uint32_t crc32_png(const uint8_t *d, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= d[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return c ^ 0xffffffffu;
}
static void put_chunk(bytes *b, const char *type, const uint8_t *d, size_t n) {
    put_be32(b, (uint32_t)n);
    size_t start = b->n;
    put(b, type, 4);
    if (n) put(b, d, n);
    put_be32(b, crc32_png(b->p + start, n + 4));
}

/* rows: h rows of `row_bytes` bytes each (filter type 0 is prepended here). */
static bytes make_png(uint32_t w, uint32_t h, int bit_depth, int color_type, const uint8_t *rows, size_t row_bytes,
                      const uint8_t *plte, size_t plte_n, const uint8_t *trns, size_t trns_n) {
    bytes b = {0};
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    put(&b, sig, 8);
    uint8_t ihdr[13] = {(uint8_t)(w >> 24), (uint8_t)(w >> 16), (uint8_t)(w >> 8), (uint8_t)w,
                        (uint8_t)(h >> 24), (uint8_t)(h >> 16), (uint8_t)(h >> 8), (uint8_t)h,
                        (uint8_t)bit_depth, (uint8_t)color_type, 0, 0, 0};
    put_chunk(&b, "IHDR", ihdr, 13);
    if (plte) put_chunk(&b, "PLTE", plte, plte_n);
    if (trns) put_chunk(&b, "tRNS", trns, trns_n);
    /* zlib stream: header, one stored block per <= 65535 bytes, adler32 */
    size_t raw_n = rows ? (size_t)h * (row_bytes + 1) : 0;
    uint8_t *raw = malloc(raw_n ? raw_n : 1);
    for (size_t y = 0; rows && y < h; y++) {
        raw[y * (row_bytes + 1)] = 0;
        memcpy(raw + y * (row_bytes + 1) + 1, rows + y * row_bytes, row_bytes);
    }
    bytes z = {0};
    uint8_t zh[2] = {0x78, 0x01};
    put(&z, zh, 2);
    size_t off = 0;
    do {
        size_t len = raw_n - off > 65535 ? 65535 : raw_n - off;
        uint8_t bh[5] = {(uint8_t)(off + len == raw_n), (uint8_t)len, (uint8_t)(len >> 8), (uint8_t)~len,
                         (uint8_t)(~len >> 8)};
        put(&z, bh, 5);
        if (len) put(&z, raw + off, len);
        off += len;
    } while (off < raw_n);
    uint32_t a = 1, s2 = 0;
    for (size_t i = 0; i < raw_n; i++) {
        a = (a + raw[i]) % 65521;
        s2 = (s2 + a) % 65521;
    }
    put_be32(&z, s2 << 16 | a);
    put_chunk(&b, "IDAT", z.p, z.n);
    put_chunk(&b, "IEND", NULL, 0);
    free(z.p);
    free(raw);
    return b;
}

/* Decode crafted bytes through the file path and through memory; both must agree. */
static int decode_both(const char *name, const bytes *png, clxp_rgb_image *out) {
    clxp_error err;
    if (!write_file(tmp_path(name), png->p, png->n)) return 0;
    clxp_status st = image_load(tmp_path(name), out, &err);
    if (st != CLXP_OK) {
        printf("  decode %s: %s\n", name, err.msg);
        return 0;
    }
    clxp_rgb_image m;
    st = image_decode_memory(png->p, png->n, name, &m, &err);
    int same = st == CLXP_OK && m.width == out->width && m.height == out->height &&
               !memcmp(m.data, out->data, (size_t)m.width * m.height * 3);
    image_free(&m);
    if (!same) printf("  decode %s: memory and file decodes differ\n", name);
    return same;
}

/* ---- golden bit-exactness ------------------------------------------------------------------------------------- */

static const char *const golden_images[5] = {"img0_gradient_64x48.png", "img1_checker_200x120.png",
                                              "img2_noise_gray_31x77.png", "img3_strip_rgba_500x3.png",
                                              "img4_pixel_1x1.png"};

static int max_u8_diff(const uint8_t *a, const uint8_t *b, size_t n) {
    int m = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        if (d > m) m = d;
    }
    return m;
}

static void check_golden_model(const char *model) {
    char rel[256];
    clxp_error err;
    clip_preproc_cfg cfg;
    snprintf(rel, sizeof rel, "%s/preprocessor_config.json", model);
    REQUIRE(clip_preproc_cfg_load(test_data(rel), &cfg, &err) == CLXP_OK);

    /* the input order of the goldens is the manifest's */
    snprintf(rel, sizeof rel, "%s/golden/manifest.json", model);
    cJSON *manifest = NULL;
    REQUIRE(clxp_json_load(test_data(rel), &manifest, &err) == CLXP_OK);
    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(manifest, "inputs");
    CHECK_EQ_INT(cJSON_GetArraySize(inputs), 5);
    for (int i = 0; i < 5 && i < cJSON_GetArraySize(inputs); i++) {
        const cJSON *file = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(inputs, i), "file");
        CHECK_STR(cJSON_GetStringValue(file), golden_images[i]);
    }
    cJSON_Delete(manifest);

    st_file *g = NULL;
    snprintf(rel, sizeof rel, "%s/golden/golden.safetensors", model);
    REQUIRE(st_open(test_data(rel), &g, &err) == CLXP_OK);
    const st_tensor *pv = st_find(g, "pixel_values");
    REQUIRE(pv && pv->dtype == ST_F32 && pv->ndim == 4 && pv->shape[0] == 5 && pv->shape[1] == 3);
    int S = (int)pv->shape[2];
    CHECK_EQ_INT(pv->shape[3], S);
    CHECK_EQ_INT(cfg.crop_height, S);
    size_t plane = 3 * (size_t)S * S;
    float *out = malloc(sizeof(float) * plane), *out2 = malloc(sizeof(float) * plane);
    float *want = malloc(sizeof(float) * plane);
    int exact_resized = 0, n_resized = 0, exact_cropped = 0, exact_pixels = 0;
    for (int i = 0; i < 5; i++) {
        snprintf(rel, sizeof rel, "%s/golden/inputs/%s", model, golden_images[i]);
        clxp_rgb_image im;
        if (image_load(test_data(rel), &im, &err) != CLXP_OK) {
            printf("  %s\n", err.msg);
            CHECK(0);
            continue;
        }
        clip_preproc_debug dbg;
        CHECK(clip_preprocess(&cfg, im.data, im.width, im.height, 3 * im.width, out, &dbg, &err) == CLXP_OK);
        /* the same without the debug images: the resize is then restricted to the crop window */
        CHECK(clip_preprocess(&cfg, im.data, im.width, im.height, 3 * im.width, out2, NULL, &err) == CLXP_OK);

        char name[64];
        snprintf(name, sizeof name, "preprocess.resized_uint8.%d", i);
        const st_tensor *rz = st_find(g, name);
        int rmax = -1;
        if (rz) { /* omitted for the 500x3 strip */
            n_resized++;
            CHECK(rz->ndim == 3 && rz->shape[0] == dbg.resized_height && rz->shape[1] == dbg.resized_width);
            if (dbg.resized && rz->nbytes == 3 * (size_t)dbg.resized_width * dbg.resized_height) {
                rmax = max_u8_diff(dbg.resized, rz->data, rz->nbytes);
                exact_resized += rmax == 0;
                CHECK_EQ_INT(rmax, 0);
            }
        }
        snprintf(name, sizeof name, "preprocess.cropped_uint8.%d", i);
        const st_tensor *cr = st_find(g, name);
        int cmax = -1;
        CHECK(cr && dbg.cropped && cr->nbytes == plane);
        if (cr && dbg.cropped && cr->nbytes == plane) {
            cmax = max_u8_diff(dbg.cropped, cr->data, plane);
            exact_cropped += cmax == 0;
            CHECK_EQ_INT(cmax, 0);
        }
        memcpy(want, (const float *)pv->data + (size_t)i * plane, sizeof(float) * plane);
        test_diff d = test_compare(out, want, plane);
        int bits = !memcmp(out, want, sizeof(float) * plane);
        exact_pixels += bits;
        CHECK(bits);
        CHECK(!memcmp(out2, want, sizeof(float) * plane));
        printf("  %s img%d %dx%d: resized max diff %d, cropped max diff %d, pixel_values max |diff| %g%s\n", model,
               i, im.width, im.height, rmax, cmax, d.max_abs, bits ? " (bit-exact)" : "");
        clip_preproc_debug_free(&dbg);
        image_free(&im);
    }
    printf("  %s: bit-exact resized %d/%d, cropped %d/5, pixel_values %d/5\n", model, exact_resized, n_resized,
           exact_cropped, exact_pixels);
    free(out);
    free(out2);
    free(want);
    st_close(g);
}

TEST(golden_quickgelu) {
    check_golden_model("clip-tiny-quickgelu");
}

TEST(golden_gelu) {
    check_golden_model("clip-tiny-gelu");
}

/* ---- decoding ------------------------------------------------------------------------------------------------ */

TEST(decode_golden_inputs) {
    clxp_error err;
    clxp_rgb_image im;
    /* img4 is a single (200,30,90) pixel (manifest description) */
    REQUIRE(image_load(test_data("clip-tiny-gelu/golden/inputs/img4_pixel_1x1.png"), &im, &err) == CLXP_OK);
    CHECK_EQ_INT(im.width, 1);
    CHECK_EQ_INT(im.height, 1);
    CHECK(im.data[0] == 200 && im.data[1] == 30 && im.data[2] == 90);
    image_free(&im);
    CHECK(im.data == NULL);
    image_free(&im); /* twice is fine */

    /* 8-bit gray: every pixel R = G = B, and not all the same value */
    REQUIRE(image_load(test_data("clip-tiny-gelu/golden/inputs/img2_noise_gray_31x77.png"), &im, &err) == CLXP_OK);
    CHECK_EQ_INT(im.width, 31);
    CHECK_EQ_INT(im.height, 77);
    int gray = 1, distinct = 0;
    for (int i = 0; i < im.width * im.height; i++) {
        const uint8_t *p = im.data + 3 * i;
        gray &= p[0] == p[1] && p[1] == p[2];
        distinct |= p[0] != im.data[0];
    }
    CHECK(gray);
    CHECK(distinct);
    image_free(&im);

    /* RGBA strip: the golden cropped tensor of a 48-high model holds the strip's columns 2226.. upscaled; here
     * just check the size and that decoding through memory gives the same pixels */
    size_t n = 0;
    uint8_t *buf = read_whole(test_data("clip-tiny-gelu/golden/inputs/img3_strip_rgba_500x3.png"), &n);
    REQUIRE(buf);
    REQUIRE(image_decode_memory(buf, n, "strip", &im, &err) == CLXP_OK);
    CHECK_EQ_INT(im.width, 500);
    CHECK_EQ_INT(im.height, 3);
    clxp_rgb_image im2;
    REQUIRE(image_load(test_data("clip-tiny-gelu/golden/inputs/img3_strip_rgba_500x3.png"), &im2, &err) == CLXP_OK);
    CHECK(!memcmp(im.data, im2.data, 500 * 3 * 3));
    image_free(&im);
    image_free(&im2);
    free(buf);
}

TEST(decode_crafted_png) {
    clxp_rgb_image im;
    /* gray 8-bit: replicated */
    {
        const uint8_t rows[6] = {0, 17, 255, 128, 1, 254};
        bytes b = make_png(3, 2, 8, 0, rows, 3, NULL, 0, NULL, 0);
        REQUIRE(decode_both("gray8.png", &b, &im));
        CHECK(im.width == 3 && im.height == 2);
        for (int i = 0; i < 6; i++) CHECK(im.data[3 * i] == rows[i] && im.data[3 * i + 1] == rows[i] &&
                                          im.data[3 * i + 2] == rows[i]);
        image_free(&im);
        free(b.p);
    }
    /* gray + alpha: alpha dropped */
    {
        const uint8_t rows[4] = {10, 0, 200, 77};
        bytes b = make_png(2, 1, 8, 4, rows, 4, NULL, 0, NULL, 0);
        REQUIRE(decode_both("ya8.png", &b, &im));
        const uint8_t want[6] = {10, 10, 10, 200, 200, 200};
        CHECK(!memcmp(im.data, want, 6));
        image_free(&im);
        free(b.p);
    }
    /* RGBA: colour kept as is under alpha 0 (no compositing, no premultiplication) */
    {
        const uint8_t rows[8] = {10, 20, 30, 0, 250, 128, 3, 128};
        bytes b = make_png(2, 1, 8, 6, rows, 8, NULL, 0, NULL, 0);
        REQUIRE(decode_both("rgba8.png", &b, &im));
        const uint8_t want[6] = {10, 20, 30, 250, 128, 3};
        CHECK(!memcmp(im.data, want, 6));
        image_free(&im);
        free(b.p);
    }
    /* 16-bit RGB: the high byte of each sample (Pillow's "RGB;16B") */
    {
        const uint8_t rows[6] = {0x12, 0xff, 0x80, 0x01, 0x00, 0x7f};
        bytes b = make_png(1, 1, 16, 2, rows, 6, NULL, 0, NULL, 0);
        REQUIRE(decode_both("rgb16.png", &b, &im));
        CHECK(im.data[0] == 0x12 && im.data[1] == 0x80 && im.data[2] == 0x00);
        image_free(&im);
        free(b.p);
    }
    /* 16-bit gray: Pillow 9.4 opens it as mode "I" and clips to 0..255 on convert("RGB") */
    {
        const uint16_t v[5] = {0, 100, 255, 256, 65535};
        uint8_t rows[10];
        for (int i = 0; i < 5; i++) {
            rows[2 * i] = (uint8_t)(v[i] >> 8);
            rows[2 * i + 1] = (uint8_t)v[i];
        }
        bytes b = make_png(5, 1, 16, 0, rows, 10, NULL, 0, NULL, 0);
        REQUIRE(decode_both("gray16.png", &b, &im));
        const uint8_t want[5] = {0, 100, 255, 255, 255};
        for (int i = 0; i < 5; i++) CHECK(im.data[3 * i] == want[i] && im.data[3 * i + 2] == want[i]);
        image_free(&im);
        free(b.p);
    }
    /* 1-bit gray: 0 / 255 */
    {
        const uint8_t rows[1] = {0xa0}; /* 1 0 1 */
        bytes b = make_png(3, 1, 1, 0, rows, 1, NULL, 0, NULL, 0);
        REQUIRE(decode_both("gray1.png", &b, &im));
        CHECK(im.data[0] == 255 && im.data[3] == 0 && im.data[6] == 255 && im.data[7] == 255);
        image_free(&im);
        free(b.p);
    }
    /* 2-bit palette with transparency: palette colours, alpha dropped */
    {
        const uint8_t plte[12] = {1, 2, 3, 40, 50, 60, 255, 0, 128, 9, 9, 9};
        const uint8_t trns[2] = {0, 128};
        const uint8_t rows[1] = {0x1b}; /* indices 0 1 2 3 */
        bytes b = make_png(4, 1, 2, 3, rows, 1, plte, 12, trns, 2);
        REQUIRE(decode_both("pal2.png", &b, &im));
        CHECK(!memcmp(im.data, plte, 12));
        image_free(&im);
        free(b.p);
    }
    /* a file name that libavformat would take for a pattern or a protocol is just a file name here */
    {
        const uint8_t rows[3] = {1, 2, 3};
        bytes b = make_png(1, 1, 8, 2, rows, 3, NULL, 0, NULL, 0);
        REQUIRE(decode_both("pct%d:file.png", &b, &im));
        CHECK(im.data[0] == 1 && im.data[2] == 3);
        image_free(&im);
        free(b.p);
    }
    /* 1x1 RGB */
    {
        const uint8_t rows[3] = {7, 8, 9};
        bytes b = make_png(1, 1, 8, 2, rows, 3, NULL, 0, NULL, 0);
        REQUIRE(decode_both("one.png", &b, &im));
        CHECK(im.width == 1 && im.height == 1 && im.data[0] == 7 && im.data[1] == 8 && im.data[2] == 9);
        image_free(&im);
        free(b.p);
    }
}

/* The seed JPEG against Pillow 9.4's decode of it (stored as PNG). clxp reproduces libjpeg's chroma upsampling and
 * colour conversion; what remains are IDCT differences (measured: max 3, mean ~0.04). */
TEST(jpeg_vs_pillow) {
    clxp_error err;
    clxp_rgb_image j, p;
    REQUIRE(image_load(test_data("seed/cat_1280x781.jpg"), &j, &err) == CLXP_OK);
    REQUIRE(image_load(test_data("seed/cat_1280x781_pil_decoded.png"), &p, &err) == CLXP_OK);
    REQUIRE(j.width == 1280 && j.height == 781 && p.width == 1280 && p.height == 781);
    size_t n = (size_t)j.width * j.height * 3;
    int mx = 0;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)j.data[i] - (int)p.data[i]);
        if (d > mx) mx = d;
        sum += d;
    }
    printf("  JPEG decode vs Pillow: max %d levels, mean %.4f\n", mx, sum / (double)n);
    CHECK(mx <= 8);
    CHECK(sum / (double)n <= 1.5);
    image_free(&j);
    image_free(&p);
}

TEST(decode_errors) {
    clxp_error err;
    clxp_rgb_image im;
    /* missing file */
    CHECK_EQ_INT(image_load(tmp_path("does_not_exist.png"), &im, &err), CLXP_ERR_IO);
    CHECK_CONTAINS(err.msg, "does_not_exist.png");
    CHECK(im.data == NULL);
    /* a directory */
    CHECK_EQ_INT(image_load(g_tmpdir, &im, &err), CLXP_ERR_IO);
    /* zero bytes */
    REQUIRE(write_file(tmp_path("empty.png"), "", 0));
    CHECK_EQ_INT(image_load(tmp_path("empty.png"), &im, &err), CLXP_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "empty.png: not a decodable image");
    CHECK(strchr(err.msg, '\n') == NULL);
    /* text renamed .png */
    const char *text = "hello, this is not an image\nsecond line\n";
    REQUIRE(write_file(tmp_path("text.png"), text, strlen(text)));
    CHECK_EQ_INT(image_load(tmp_path("text.png"), &im, &err), CLXP_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "text.png: not a decodable image");
    /* text with another extension */
    REQUIRE(write_file(tmp_path("notes.txt"), text, strlen(text)));
    CHECK_EQ_INT(image_load(tmp_path("notes.txt"), &im, &err), CLXP_ERR_FORMAT);
    /* truncated PNG: half of a golden input */
    size_t n = 0;
    uint8_t *png = read_whole(test_data("clip-tiny-gelu/golden/inputs/img1_checker_200x120.png"), &n);
    REQUIRE(png && n > 100);
    REQUIRE(write_file(tmp_path("trunc.png"), png, n / 2));
    CHECK_EQ_INT(image_load(tmp_path("trunc.png"), &im, &err), CLXP_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "trunc.png");
    /* only the signature + part of IHDR */
    CHECK_EQ_INT(image_decode_memory(png, 20, "head.png", &im, &err), CLXP_ERR_FORMAT);
    /* corrupted compressed data */
    uint8_t *bad = malloc(n);
    memcpy(bad, png, n);
    for (size_t i = 60; i < n - 20; i += 7) bad[i] ^= 0x5a;
    CHECK(image_decode_memory(bad, n, "garbled.png", &im, &err) != CLXP_OK);
    CHECK(im.data == NULL);
    free(bad);
    free(png);
    /* truncated JPEG */
    uint8_t *jpg = read_whole(test_data("seed/cat_1280x781.jpg"), &n);
    REQUIRE(jpg);
    CHECK_EQ_INT(image_decode_memory(jpg, n / 2, "half.jpg", &im, &err), CLXP_ERR_FORMAT);
    free(jpg);
    /* NULL arguments */
    CHECK_EQ_INT(image_load(NULL, &im, &err), CLXP_ERR_INVALID);
    CHECK_EQ_INT(image_decode_memory(NULL, 10, "x", &im, &err), CLXP_ERR_INVALID);
    CHECK_EQ_INT(image_decode_memory(NULL, 0, "x", &im, &err), CLXP_ERR_FORMAT);
}

/* Headers claiming huge images are refused before anything of that size is allocated. */
TEST(decode_limits) {
    clxp_error err;
    clxp_rgb_image im;
    /* valid IHDR claiming 100000 x 100000 RGB, followed by a tiny IDAT */
    bytes b = make_png(100000, 100000, 8, 2, NULL, 0, NULL, 0, NULL, 0);
    REQUIRE(write_file(tmp_path("huge.png"), b.p, b.n));
    CHECK_EQ_INT(image_load(tmp_path("huge.png"), &im, &err), CLXP_ERR_LIMIT);
    CHECK_CONTAINS(err.msg, "huge.png");
    CHECK_CONTAINS(err.msg, "100000x100000");
    free(b.p);
    /* one side over 32768 although the pixel count is small */
    uint8_t *rows = calloc(40000 * 3 + 1, 1);
    b = make_png(40000, 1, 8, 2, rows, 40000 * 3, NULL, 0, NULL, 0);
    CHECK_EQ_INT(image_decode_memory(b.p, b.n, "wide.png", &im, &err), CLXP_ERR_LIMIT);
    CHECK_CONTAINS(err.msg, "40000x1");
    free(b.p);
    /* just under the side limit decodes */
    b = make_png(32768, 1, 8, 2, rows, 32768 * 3, NULL, 0, NULL, 0);
    CHECK_EQ_INT(image_decode_memory(b.p, b.n, "wide_ok.png", &im, &err), CLXP_OK);
    CHECK_EQ_INT(im.width, 32768);
    image_free(&im);
    free(b.p);
    free(rows);
    /* a GIF screen of 65535 x 65535 */
    static const uint8_t gif[] = {'G', 'I', 'F', '8', '9', 'a', 0xff, 0xff, 0xff, 0xff, 0, 0, 0, ',', 0, 0, 0, 0,
                                  0xff, 0xff, 0xff, 0xff, 0, 2, 2, 0x44, 1, 0, ';'};
    CHECK_EQ_INT(image_decode_memory(gif, sizeof gif, "huge.gif", &im, &err), CLXP_ERR_LIMIT);
}

/* ---- preprocessing beyond the goldens ------------------------------------------------------------------------ */

/* Like the library: no FMA contraction, or clang could round the reference coefficients differently. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* An independent, literal re-implementation of Pillow 9.4's 8-bit BICUBIC resize (whole image, one pass at a time)
 * following the golden README, to check the optimised windowed code on arbitrary sizes. */
static double ref_cubic(double x) {
    const double a = -0.5;
    x = x < 0 ? -x : x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* Resample along one axis: n lines of `in` samples (3 channels), sample i of line l at src[l*ls + i*ss + c]. */
static void ref_axis(const uint8_t *src, int in, int out, int n, ptrdiff_t ls, ptrdiff_t ss, uint8_t *dst,
                     ptrdiff_t dls, ptrdiff_t dss) {
    double scale = (double)in / out, fs = scale < 1 ? 1 : scale, support = 2.0 * fs;
    for (int i = 0; i < out; i++) {
        double center = (i + 0.5) * scale;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > in) xmax = in;
        double k[4096], sum = 0;
        for (int j = 0; j < xmax - xmin; j++) sum += k[j] = ref_cubic((j + xmin - center + 0.5) / fs);
        int32_t kf[4096];
        for (int j = 0; j < xmax - xmin; j++) {
            double v = sum != 0 ? k[j] / sum : k[j];
            kf[j] = (int32_t)(v < 0 ? v * (1 << 22) - 0.5 : v * (1 << 22) + 0.5);
        }
        for (int l = 0; l < n; l++) {
            for (int c = 0; c < 3; c++) {
                int64_t acc = 1 << 21;
                for (int j = 0; j < xmax - xmin; j++) acc += src[l * ls + (xmin + j) * ss + c] * (int64_t)kf[j];
                int64_t v = acc >> 22;
                dst[l * dls + i * dss + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
}

static uint8_t *ref_resize(const uint8_t *src, int w, int h, int ow, int oh) {
    uint8_t *cur = malloc(3 * (size_t)w * h);
    memcpy(cur, src, 3 * (size_t)w * h);
    if (ow != w) { /* horizontal first, into uint8 */
        uint8_t *t = malloc(3 * (size_t)ow * h);
        ref_axis(cur, w, ow, h, 3 * (ptrdiff_t)w, 3, t, 3 * (ptrdiff_t)ow, 3);
        free(cur);
        cur = t;
    }
    if (oh != h) {
        uint8_t *t = malloc(3 * (size_t)ow * oh);
        ref_axis(cur, h, oh, ow, 3, 3 * (ptrdiff_t)ow, t, 3, 3 * (ptrdiff_t)ow);
        free(cur);
        cur = t;
    }
    return cur;
}

static uint32_t rng_state = 12345;
static uint32_t rng(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

/* The whole pipeline on an image against the reference resize + transformers' padded centre crop. */
static int check_against_reference(const clip_preproc_cfg *cfg, const uint8_t *img, int w, int h) {
    clxp_error err;
    int rw, rh, ow, oh;
    if (clip_resize_output_size(cfg, w, h, &rw, &rh, &err) != CLXP_OK) return 0;
    if (clip_preproc_output_size(cfg, w, h, &ow, &oh, &err) != CLXP_OK) return 0;
    uint8_t *rz = cfg->do_resize ? ref_resize(img, w, h, rw, rh) : NULL;
    const uint8_t *r = rz ? rz : img;
    float *out = malloc(sizeof(float) * 3 * (size_t)ow * oh), *out2 = malloc(sizeof(float) * 3 * (size_t)ow * oh);
    clip_preproc_debug dbg;
    int ok = clip_preprocess(cfg, img, w, h, 3 * w, out, &dbg, &err) == CLXP_OK &&
             clip_preprocess(cfg, img, w, h, 3 * w, out2, NULL, &err) == CLXP_OK;
    if (!ok) printf("  %s\n", err.msg);
    if (ok && rz) ok = dbg.resized && dbg.resized_width == rw && !memcmp(dbg.resized, rz, 3 * (size_t)rw * rh);
    /* python: top = (H - ch) // 2 (floor), zero outside the image */
    int top = cfg->do_center_crop ? (rh - oh >= 0 ? (rh - oh) / 2 : -((oh - rh + 1) / 2)) : 0;
    int left = cfg->do_center_crop ? (rw - ow >= 0 ? (rw - ow) / 2 : -((ow - rw + 1) / 2)) : 0;
    for (int y = 0; ok && y < oh; y++) {
        for (int x = 0; ok && x < ow; x++) {
            for (int c = 0; c < 3; c++) {
                int sy = y + top, sx = x + left;
                uint8_t v = (sy >= 0 && sy < rh && sx >= 0 && sx < rw) ? r[3 * ((size_t)sy * rw + sx) + c] : 0;
                if (dbg.cropped && dbg.cropped[3 * ((size_t)y * ow + x) + c] != v) ok = 0;
                float f = cfg->do_rescale ? (float)(v * cfg->rescale_factor) : (float)v;
                if (cfg->do_normalize) f = (f - cfg->image_mean[c]) / cfg->image_std[c];
                size_t o = (size_t)c * ow * oh + (size_t)y * ow + x;
                if (out[o] != f || out2[o] != f) ok = 0;
            }
        }
    }
    if (!ok) printf("  mismatch for %dx%d -> %dx%d crop %dx%d\n", w, h, rw, rh, ow, oh);
    clip_preproc_debug_free(&dbg);
    free(rz);
    free(out);
    free(out2);
    return ok;
}

TEST(preprocess_odd_sizes_vs_reference) {
    clip_preproc_cfg cfg;
    clip_preproc_cfg_defaults(&cfg, 24);
    int w = 31, h = 77;
    uint8_t *img = malloc(3 * (size_t)w * h);
    for (int i = 0; i < 3 * w * h; i++) img[i] = (uint8_t)rng();
    CHECK(check_against_reference(&cfg, img, w, h));
    /* rows with padding (stride > 3 * width) give the same result */
    {
        int stride = 3 * w + 13;
        uint8_t *padded = malloc((size_t)stride * h);
        memset(padded, 0xee, (size_t)stride * h);
        for (int y = 0; y < h; y++) memcpy(padded + (size_t)y * stride, img + 3 * (size_t)y * w, 3 * (size_t)w);
        float *a = malloc(sizeof(float) * 3 * 24 * 24), *b = malloc(sizeof(float) * 3 * 24 * 24);
        clxp_error err;
        CHECK(clip_preprocess(&cfg, img, w, h, 3 * w, a, NULL, &err) == CLXP_OK);
        CHECK(clip_preprocess(&cfg, padded, w, h, stride, b, NULL, &err) == CLXP_OK);
        CHECK(!memcmp(a, b, sizeof(float) * 3 * 24 * 24));
        free(a);
        free(b);
        free(padded);
    }
    /* non-square crop */
    cfg.crop_height = 20;
    cfg.crop_width = 36;
    CHECK(check_against_reference(&cfg, img, w, h));
    /* crop larger than the resized image in one dimension: zero padding */
    cfg.shortest_edge = 16;
    cfg.crop_height = 30;
    cfg.crop_width = 25;
    CHECK(check_against_reference(&cfg, img, w, h));
    /* fixed-size resize, only the height changing, only the width changing, neither */
    cfg.shortest_edge = 0;
    cfg.size_height = 50, cfg.size_width = 31;
    CHECK(check_against_reference(&cfg, img, w, h));
    cfg.size_height = 77, cfg.size_width = 13;
    CHECK(check_against_reference(&cfg, img, w, h));
    cfg.size_height = 77, cfg.size_width = 31;
    CHECK(check_against_reference(&cfg, img, w, h));
    /* no crop: the output is the resized image */
    cfg.do_center_crop = 0;
    cfg.size_height = 40, cfg.size_width = 9;
    CHECK(check_against_reference(&cfg, img, w, h));
    /* nothing but the layout change */
    cfg.do_resize = cfg.do_rescale = cfg.do_normalize = 0;
    CHECK(check_against_reference(&cfg, img, w, h));
    /* crop without resize, rescale without normalise */
    cfg.do_center_crop = 1;
    cfg.do_rescale = 1;
    cfg.crop_height = 90, cfg.crop_width = 11;
    CHECK(check_against_reference(&cfg, img, w, h));
    free(img);

    /* random sizes through the default pipeline */
    for (int t = 0; t < 40; t++) {
        int rw = 1 + (int)(rng() % 150), rh = 1 + (int)(rng() % 150);
        uint8_t *r = malloc(3 * (size_t)rw * rh);
        for (int i = 0; i < 3 * rw * rh; i++) r[i] = (rng() & 1) ? (uint8_t)rng() : (rng() & 2 ? 255 : 0);
        clip_preproc_cfg_defaults(&cfg, 8 + (int)(rng() % 60));
        cfg.crop_width = 8 + (int)(rng() % 60);
        CHECK(check_against_reference(&cfg, r, rw, rh));
        free(r);
    }
}

TEST(preprocess_constant_and_sizes) {
    clxp_error err;
    clip_preproc_cfg cfg;
    clip_preproc_cfg_defaults(&cfg, 224);
    /* a constant image stays constant through any bicubic resize */
    int w = 1280, h = 720;
    uint8_t *img = malloc(3 * (size_t)w * h);
    for (int i = 0; i < w * h; i++) {
        img[3 * i] = 200;
        img[3 * i + 1] = 30;
        img[3 * i + 2] = 90;
    }
    float *out = malloc(sizeof(float) * 3 * 224 * 224);
    REQUIRE(clip_preprocess(&cfg, img, w, h, 3 * w, out, NULL, &err) == CLXP_OK);
    float r0 = (float)(200 * (1.0 / 255.0)), b0 = (float)(90 * (1.0 / 255.0));
    r0 = (r0 - cfg.image_mean[0]) / cfg.image_std[0];
    b0 = (b0 - cfg.image_mean[2]) / cfg.image_std[2];
    int same = 1;
    for (int i = 0; i < 224 * 224; i++) same &= out[i] == r0 && out[2 * 224 * 224 + i] == b0;
    CHECK(same);
    free(out);
    free(img);

    int ow, oh;
    CHECK(clip_resize_output_size(&cfg, 1280, 720, &ow, &oh, &err) == CLXP_OK && ow == 398 && oh == 224);
    CHECK(clip_resize_output_size(&cfg, 500, 3, &ow, &oh, &err) == CLXP_OK && ow == 37333 && oh == 224);
    CHECK(clip_resize_output_size(&cfg, 3, 500, &ow, &oh, &err) == CLXP_OK && ow == 224 && oh == 37333);
    CHECK(clip_preproc_output_size(&cfg, 500, 3, &ow, &oh, &err) == CLXP_OK && ow == 224 && oh == 224);
    /* extreme aspect ratio without a crop: the resized image would be too large */
    cfg.do_center_crop = 0;
    CHECK_EQ_INT(clip_preproc_output_size(&cfg, 32768, 1, &ow, &oh, &err), CLXP_ERR_LIMIT);
    CHECK(clip_resize_output_size(&cfg, 32768, 1, &ow, &oh, &err) == CLXP_OK && ow == 7340032 && oh == 224);
    CHECK_EQ_INT(clip_resize_output_size(&cfg, 1 << 30, 1, &ow, &oh, &err), CLXP_ERR_LIMIT);
    /* ... but with the crop only the window is computed: a 32768x1 line is fine */
    cfg.do_center_crop = 1;
    uint8_t *line = malloc(3 * 32768);
    for (int i = 0; i < 3 * 32768; i++) line[i] = (uint8_t)(i * 7);
    out = malloc(sizeof(float) * 3 * 224 * 224);
    CHECK(clip_preprocess(&cfg, line, 32768, 1, 3 * 32768, out, NULL, &err) == CLXP_OK);
    free(out);
    free(line);
    /* invalid arguments */
    float dummy[3];
    uint8_t px[3] = {1, 2, 3};
    CHECK_EQ_INT(clip_preprocess(&cfg, px, 0, 1, 3, dummy, NULL, &err), CLXP_ERR_INVALID);
    CHECK_EQ_INT(clip_preprocess(&cfg, px, 1, 1, 2, dummy, NULL, &err), CLXP_ERR_INVALID);
    cfg.image_std[1] = 0;
    CHECK_EQ_INT(clip_preprocess(&cfg, px, 1, 1, 3, dummy, NULL, &err), CLXP_ERR_INVALID);
}

/* ---- preprocessor_config.json --------------------------------------------------------------------------------- */

static clxp_status parse(const char *json, clip_preproc_cfg *cfg, clxp_error *err) {
    return clip_preproc_cfg_parse(json, strlen(json), "cfg.json", cfg, err);
}

TEST(config_parse) {
    clxp_error err;
    clip_preproc_cfg c;
    REQUIRE(clip_preproc_cfg_load(test_data("clip-tiny-gelu/preprocessor_config.json"), &c, &err) == CLXP_OK);
    CHECK(c.do_resize && c.do_center_crop && c.do_rescale && c.do_normalize && c.do_convert_rgb);
    CHECK_EQ_INT(c.shortest_edge, 48);
    CHECK(c.crop_height == 48 && c.crop_width == 48);
    CHECK(c.rescale_factor == 0.00392156862745098);
    CHECK(c.image_mean[0] == 0.48145466f && c.image_std[2] == 0.27577711f);
    CHECK_EQ_INT(c.resample, 3);

    /* the older openai/clip-vit-base-patch32 style: plain ints, no do_rescale / rescale_factor */
    REQUIRE(parse("{\"crop_size\": 224, \"do_center_crop\": true, \"do_normalize\": true, \"do_resize\": true,"
                  "\"feature_extractor_type\": \"CLIPFeatureExtractor\", \"image_mean\": [0.5, 0.5, 0.5],"
                  "\"image_std\": [0.25, 0.5, 1], \"resample\": 3, \"size\": 224}",
                  &c, &err) == CLXP_OK);
    CHECK(c.shortest_edge == 224 && c.crop_height == 224 && c.crop_width == 224 && c.do_rescale);
    CHECK(c.rescale_factor == 1.0 / 255.0);
    CHECK(c.image_std[0] == 0.25f && c.image_std[2] == 1.0f);

    /* defaults: CLIPImageProcessor.__init__ */
    REQUIRE(parse("{}", &c, &err) == CLXP_OK);
    CHECK(c.shortest_edge == 224 && c.crop_height == 224 && c.resample == 3);
    CHECK(c.image_mean[1] == (float)0.4578275);

    /* fixed size, non-square crop, lists, scalar mean */
    REQUIRE(parse("{\"size\": {\"height\": 30, \"width\": 40}, \"crop_size\": [20, 10], \"image_mean\": 0.5,"
                  "\"do_normalize\": false, \"longest_edge\": 9}",
                  &c, &err) == CLXP_OK);
    CHECK(c.shortest_edge == 0 && c.size_height == 30 && c.size_width == 40);
    CHECK(c.crop_height == 20 && c.crop_width == 10 && !c.do_normalize);
    CHECK(c.image_mean[0] == 0.5f && c.image_mean[2] == 0.5f);
    REQUIRE(parse("{\"size\": {\"shortest_edge\": 336, \"longest_edge\": 1000}, \"crop_size\": "
                  "{\"height\": 336, \"width\": 336}}",
                  &c, &err) == CLXP_OK);
    CHECK(c.shortest_edge == 336);

    /* defaults for a model without preprocessor_config.json */
    clip_preproc_cfg_defaults(&c, 336);
    CHECK(c.shortest_edge == 336 && c.crop_height == 336 && c.crop_width == 336 && c.do_resize);
    CHECK(c.image_std[0] == 0.26862954f);
}

TEST(config_errors) {
    clxp_error err;
    clip_preproc_cfg c;
    clip_preproc_cfg_defaults(&c, 7);
    clip_preproc_cfg before = c;
    CHECK_EQ_INT(clip_preproc_cfg_load(tmp_path("missing_preprocessor_config.json"), &c, &err), CLXP_ERR_IO);
    CHECK_CONTAINS(err.msg, "missing_preprocessor_config.json");
    CHECK_EQ_INT(parse("{\"size\": -5}", &c, &err), CLXP_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "cfg.json");
    CHECK_CONTAINS(err.msg, "size");
    CHECK_EQ_INT(parse("{\"size\": {\"shortest_edge\": 0}}", &c, &err), CLXP_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "size.shortest_edge");
    CHECK_EQ_INT(parse("{\"crop_size\": {\"height\": 10, \"width\": -1}}", &c, &err), CLXP_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "crop_size.width");
    CHECK_EQ_INT(parse("{\"crop_size\": 1e9}", &c, &err), CLXP_ERR_INVALID);
    CHECK_EQ_INT(parse("{\"size\": \"big\"}", &c, &err), CLXP_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "size");
    CHECK_EQ_INT(parse("{\"size\": {\"longest_edge\": 5}}", &c, &err), CLXP_ERR_FORMAT);
    CHECK_EQ_INT(parse("{\"size\": 22.5}", &c, &err), CLXP_ERR_FORMAT);
    CHECK_EQ_INT(parse("{\"crop_size\": {\"shortest_edge\": 5}}", &c, &err), CLXP_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "crop_size");
    CHECK_EQ_INT(parse("{\"image_std\": [0.2, 0, 0.3]}", &c, &err), CLXP_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "image_std");
    CHECK_EQ_INT(parse("{\"image_std\": [0.2, -1, 0.3]}", &c, &err), CLXP_ERR_INVALID);
    CHECK_EQ_INT(parse("{\"image_std\": [0.2, 0.3]}", &c, &err), CLXP_ERR_FORMAT);
    CHECK_EQ_INT(parse("{\"image_mean\": [0.2, \"x\", 0.3]}", &c, &err), CLXP_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "image_mean");
    CHECK_EQ_INT(parse("{\"resample\": 2}", &c, &err), CLXP_ERR_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "resample");
    CHECK_CONTAINS(err.msg, "bilinear");
    CHECK_EQ_INT(parse("{\"resample\": 2, \"do_resize\": false}", &c, &err), CLXP_OK); /* unused then */
    CHECK_EQ_INT(parse("{\"resample\": \"bicubic\"}", &c, &err), CLXP_ERR_FORMAT);
    CHECK_EQ_INT(parse("{\"do_resize\": \"yes\"}", &c, &err), CLXP_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "do_resize");
    CHECK_EQ_INT(parse("{\"rescale_factor\": 0}", &c, &err), CLXP_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "rescale_factor");
    CHECK_EQ_INT(parse("{\"size\": 224,", &c, &err), CLXP_ERR_FORMAT);
    CHECK_EQ_INT(parse("[1, 2]", &c, &err), CLXP_ERR_FORMAT);
    /* failures leave the output alone */
    clip_preproc_cfg_defaults(&c, 7);
    CHECK_EQ_INT(parse("{\"size\": -5}", &c, &err), CLXP_ERR_INVALID);
    CHECK(c.shortest_edge == before.shortest_edge && c.crop_height == before.crop_height &&
          c.crop_width == before.crop_width && c.size_height == before.size_height && c.do_resize == before.do_resize);
}

int main(void) {
    /* FFmpeg's own diagnostics about the deliberately broken files are noise here */
    av_log_set_level(AV_LOG_QUIET);
    snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp/clxp_test_preprocess_XXXXXX");
    if (!mkdtemp(g_tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(golden_quickgelu);
    RUN(golden_gelu);
    RUN(decode_golden_inputs);
    RUN(decode_crafted_png);
    RUN(jpeg_vs_pillow);
    RUN(decode_errors);
    RUN(decode_limits);
    RUN(preprocess_odd_sizes_vs_reference);
    RUN(preprocess_constant_and_sizes);
    RUN(config_parse);
    RUN(config_errors);

    static const char *const made[] = {"gray8.png", "ya8.png",  "rgba8.png", "rgb16.png", "gray16.png",
                                       "gray1.png", "pal2.png", "one.png",   "empty.png", "text.png",
                                       "notes.txt", "trunc.png", "huge.png",  "pct%d:file.png"};
    for (size_t i = 0; i < sizeof made / sizeof made[0]; i++) unlink(tmp_path(made[i]));
    rmdir(g_tmpdir);
    return test_summary();
}
