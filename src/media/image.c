/* Still-image decoding: libavformat's image2pipe demuxer + libavcodec, then a Pillow-compatible RGB conversion.
 * See image.h for the semantics. */
#include "media/image.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libavutil/mem.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#include "util/error.h"
#include "util/fileio.h"

#define AVIO_BUFFER_SIZE 65536

static const char *display_name(const char *name) {
    return name && *name ? name : "<memory>";
}

static int dims_over_limit(int64_t w, int64_t h) {
    return w > CLXP_IMAGE_MAX_SIDE || h > CLXP_IMAGE_MAX_SIDE || w * h > CLXP_IMAGE_MAX_PIXELS;
}

static clxp_status limit_error(clxp_error *err, const char *name, int64_t w, int64_t h) {
    return clxp_err_set(err, CLXP_ERR_LIMIT,
                        "%s: image is %lldx%lld pixels, over the limit (%d per side, %lld pixels in all)",
                        display_name(name), (long long)w, (long long)h, CLXP_IMAGE_MAX_SIDE,
                        (long long)CLXP_IMAGE_MAX_PIXELS);
}

/* ---- header sniffing ------------------------------------------------------------------------------------------
 * libavcodec itself refuses frames over max_pixels, but only with a generic error and after its header parser has
 * discarded the dimensions. Reading the declared size of the common formats first lets the message say what the
 * file claims. This is only for the message: the decoder guards below are what enforce the limits. */

static uint32_t rd_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint32_t rd_le32(const uint8_t *p) {
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}
static unsigned rd_be16(const uint8_t *p) {
    return (unsigned)p[0] << 8 | p[1];
}
static unsigned rd_le16(const uint8_t *p) {
    return (unsigned)p[1] << 8 | p[0];
}

/* Returns 1 and the declared size when the header of a PNG, GIF, BMP, TIFF or JPEG can be read, 0 otherwise. */
static int sniff_dimensions(const uint8_t *d, size_t n, int64_t *w, int64_t *h) {
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= 24 && !memcmp(d, png_sig, 8) && !memcmp(d + 12, "IHDR", 4)) {
        *w = rd_be32(d + 16);
        *h = rd_be32(d + 20);
        return 1;
    }
    if (n >= 10 && (!memcmp(d, "GIF87a", 6) || !memcmp(d, "GIF89a", 6))) {
        *w = rd_le16(d + 6);
        *h = rd_le16(d + 8);
        return 1;
    }
    if (n >= 26 && d[0] == 'B' && d[1] == 'M') {
        uint32_t hsize = rd_le32(d + 14);
        if (hsize == 12) {
            *w = rd_le16(d + 18);
            *h = rd_le16(d + 20);
            return 1;
        }
        if (hsize >= 40) {
            int64_t bw = (int32_t)rd_le32(d + 18), bh = (int32_t)rd_le32(d + 22);
            *w = bw < 0 ? -bw : bw;
            *h = bh < 0 ? -bh : bh; /* negative height = top-down rows */
            return 1;
        }
        return 0;
    }
    if (n >= 8 && (!memcmp(d, "II*\0", 4) || !memcmp(d, "MM\0*", 4))) { /* TIFF: first IFD's width/length */
        int be = d[0] == 'M';
        uint32_t ifd = be ? rd_be32(d + 4) : rd_le32(d + 4);
        if ((uint64_t)ifd + 2 > n) return 0;
        unsigned count = be ? rd_be16(d + ifd) : rd_le16(d + ifd);
        int64_t tw = -1, th = -1;
        for (unsigned i = 0; i < count && (uint64_t)ifd + 2 + 12 * (uint64_t)(i + 1) <= n; i++) {
            const uint8_t *e = d + ifd + 2 + 12 * (size_t)i;
            unsigned tag = be ? rd_be16(e) : rd_le16(e), type = be ? rd_be16(e + 2) : rd_le16(e + 2);
            int64_t v;
            if (type == 3) v = be ? rd_be16(e + 8) : rd_le16(e + 8); /* SHORT */
            else if (type == 4) v = be ? rd_be32(e + 8) : rd_le32(e + 8); /* LONG */
            else continue;
            if (tag == 256) tw = v;
            else if (tag == 257) th = v;
        }
        if (tw < 0 || th < 0) return 0;
        *w = tw;
        *h = th;
        return 1;
    }
    if (n >= 4 && d[0] == 0xff && d[1] == 0xd8) {
        /* Walk the marker segments up to the first SOFn (which precedes the scan data). */
        size_t p = 2;
        while (p + 4 <= n) {
            if (d[p] != 0xff) return 0;
            uint8_t m = d[p + 1];
            if (m == 0xff) { /* fill byte */
                p++;
                continue;
            }
            if (m == 0x01 || (m >= 0xd0 && m <= 0xd7)) { /* standalone markers */
                p += 2;
                continue;
            }
            if (m == 0xda || m == 0xd9) return 0; /* scan or end before any frame header */
            unsigned len = rd_be16(d + p + 2);
            if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) {
                if (p + 9 > n || len < 7) return 0;
                *h = rd_be16(d + p + 5);
                *w = rd_be16(d + p + 7);
                return 1;
            }
            if (len < 2) return 0;
            p += 2 + (size_t)len;
        }
    }
    return 0;
}

/* ---- decoding ------------------------------------------------------------------------------------------------ */

typedef struct mem_reader {
    const uint8_t *data;
    size_t size, pos;
} mem_reader;

static int mem_read(void *opaque, uint8_t *buf, int buf_size) {
    mem_reader *r = opaque;
    size_t left = r->size - r->pos;
    if (left == 0) return AVERROR_EOF;
    size_t k = (size_t)buf_size < left ? (size_t)buf_size : left;
    memcpy(buf, r->data + r->pos, k);
    r->pos += k;
    return (int)k;
}

static int64_t mem_seek(void *opaque, int64_t offset, int whence) {
    mem_reader *r = opaque;
    int64_t base;
    whence &= ~AVSEEK_FORCE;
    if (whence == AVSEEK_SIZE) return (int64_t)r->size;
    if (whence == SEEK_SET) base = 0;
    else if (whence == SEEK_CUR) base = (int64_t)r->pos;
    else if (whence == SEEK_END) base = (int64_t)r->size;
    else return AVERROR(EINVAL);
    if (offset < -base || offset > (int64_t)r->size - base) return AVERROR(EINVAL);
    r->pos = (size_t)(base + offset);
    return (int64_t)r->pos;
}

/* Per-decode state reachable from the codec context (no globals). */
typedef struct decode_guard {
    int refused;
    int width, height;
} decode_guard;

/* libavcodec calls this right before it allocates a frame: the last point to refuse oversized images. */
static int guarded_get_buffer(AVCodecContext *c, AVFrame *frame, int flags) {
    decode_guard *g = c->opaque;
    if (dims_over_limit(c->width, c->height) || dims_over_limit(frame->width, frame->height)) {
        g->refused = 1;
        g->width = c->width;
        g->height = c->height;
        return AVERROR(ERANGE);
    }
    return avcodec_default_get_buffer2(c, frame, flags);
}

static const char *av_err_text(int e, char *buf, size_t n) {
    av_strerror(e, buf, n);
    return buf;
}

/* Everything a decode owns, released in one place. */
typedef struct decoder {
    mem_reader src;
    AVIOContext *pb;
    AVFormatContext *fmt;
    AVCodecContext *dec;
    AVPacket *pkt;
    AVFrame *frame;
    decode_guard guard;
} decoder;

static void decoder_close(decoder *d) {
    av_frame_free(&d->frame);
    av_packet_free(&d->pkt);
    avcodec_free_context(&d->dec);
    avformat_close_input(&d->fmt); /* custom I/O: does not free pb */
    if (d->pb) {
        av_freep(&d->pb->buffer);
        avio_context_free(&d->pb);
    }
}

/* Decoder error → status: a refusal by our guard is a limit, allocation failures are NOMEM, the rest is bad data. */
static clxp_status decode_error(decoder *d, int e, const char *name, clxp_error *err) {
    char buf[128];
    if (d->guard.refused) return limit_error(err, name, d->guard.width, d->guard.height);
    if (e == AVERROR(ENOMEM)) return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory while decoding", name);
    return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: not a decodable image (%s)", name, av_err_text(e, buf, sizeof buf));
}

/* Receive one frame if the decoder has one: 1 = got it, 0 = needs more input / drained, <0 = error. */
static int receive(decoder *d) {
    int e = avcodec_receive_frame(d->dec, d->frame);
    if (e == 0) return 1;
    if (e == AVERROR(EAGAIN) || e == AVERROR_EOF) return 0;
    return e;
}

static clxp_status decode_first_frame(decoder *d, const uint8_t *data, size_t size, const char *name,
                                      const char *hint, clxp_error *err) {
    char ebuf[128];
    d->src = (mem_reader){data, size, 0};

    uint8_t *iobuf = av_malloc(AVIO_BUFFER_SIZE);
    if (!iobuf) return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", name);
    d->pb = avio_alloc_context(iobuf, AVIO_BUFFER_SIZE, 0, &d->src, mem_read, NULL, mem_seek);
    if (!d->pb) {
        av_free(iobuf);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", name);
    }
    d->fmt = avformat_alloc_context();
    if (!d->fmt) return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", name);
    d->fmt->pb = d->pb;

    /* image2pipe recognises every still-image format libavformat knows by content (PNG, JPEG, WebP, TIFF, BMP,
     * GIF, ...) and falls back to the extension of `hint` (TGA has no magic). Reading through our own AVIO keeps
     * the path away from libavformat's protocol and file-pattern handling ("%d" in names, "http:", "pipe:"). */
    const AVInputFormat *ifmt = av_find_input_format("image2pipe");
    if (!ifmt) return clxp_err_set(err, CLXP_ERR_INTERNAL, "%s: libavformat lacks the image2pipe demuxer", name);
    int e = avformat_open_input(&d->fmt, hint ? hint : "", ifmt, NULL);
    if (e < 0) { /* d->fmt was freed by avformat_open_input */
        return clxp_err_set(err, e == AVERROR(ENOMEM) ? CLXP_ERR_NOMEM : CLXP_ERR_FORMAT,
                            "%s: not a decodable image (%s)", name, av_err_text(e, ebuf, sizeof ebuf));
    }
    if (d->fmt->nb_streams < 1 || d->fmt->streams[0]->codecpar->codec_id == AV_CODEC_ID_NONE)
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: not a decodable image (unrecognised format)", name);

    const AVCodecParameters *par = d->fmt->streams[0]->codecpar;
    const AVCodec *codec = avcodec_find_decoder(par->codec_id);
    if (!codec)
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: no %s decoder in this FFmpeg build", name,
                            avcodec_get_name(par->codec_id));
    d->dec = avcodec_alloc_context3(codec);
    if (!d->dec) return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", name);
    e = avcodec_parameters_to_context(d->dec, par);
    if (e < 0) return decode_error(d, e, name, err);
    /* max_pixels makes the decoders reject oversized headers before allocating anything; the get_buffer2 hook
     * adds the per-side limit. One thread: a single still image gains nothing from frame threading. */
    d->dec->max_pixels = CLXP_IMAGE_MAX_PIXELS;
    d->dec->opaque = &d->guard;
    d->dec->get_buffer2 = guarded_get_buffer;
    d->dec->thread_count = 1;
    d->dec->thread_type = 0;
    /* Truncated or corrupt data is an error, as in Pillow (which raises "image file is truncated"), instead of a
     * silently concealed picture. Only for the decoders whose "explode" mode means exactly that: the TIFF decoder,
     * for one, would also refuse files with tags it merely does not know (e.g. ExtraSamples of RGBA TIFFs). */
    switch (par->codec_id) {
    case AV_CODEC_ID_MJPEG:
    case AV_CODEC_ID_PNG:
    case AV_CODEC_ID_APNG:
    case AV_CODEC_ID_WEBP:
    case AV_CODEC_ID_GIF:
    case AV_CODEC_ID_BMP: d->dec->err_recognition |= AV_EF_EXPLODE; break;
    default: break;
    }
    /* FFmpeg's "int" IDCT is a port of libjpeg's islow IDCT, the one Pillow's libjpeg(-turbo) uses. */
    if (par->codec_id == AV_CODEC_ID_MJPEG) d->dec->idct_algo = FF_IDCT_INT;
    e = avcodec_open2(d->dec, codec, NULL);
    if (e < 0) return decode_error(d, e, name, err);

    d->pkt = av_packet_alloc();
    d->frame = av_frame_alloc();
    if (!d->pkt || !d->frame) return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", name);

    int got = 0;
    while (!got) {
        e = av_read_frame(d->fmt, d->pkt);
        if (e == AVERROR_EOF) break;
        if (e < 0) return decode_error(d, e, name, err);
        if (d->pkt->stream_index == 0) {
            e = avcodec_send_packet(d->dec, d->pkt);
            if (e == AVERROR(EAGAIN)) e = 0; /* cannot happen with one frame per packet; drained below */
        }
        av_packet_unref(d->pkt);
        if (e < 0) return decode_error(d, e, name, err);
        got = receive(d);
        if (got < 0) return decode_error(d, got, name, err);
    }
    if (!got) { /* end of input: drain frames held back by the decoder */
        e = avcodec_send_packet(d->dec, NULL);
        if (e < 0 && e != AVERROR_EOF) return decode_error(d, e, name, err);
        got = receive(d);
        if (got < 0) return decode_error(d, got, name, err);
    }
    if (!got) {
        if (d->guard.refused) return limit_error(err, name, d->guard.width, d->guard.height);
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: not a decodable image (no picture decoded)", name);
    }
    if ((d->frame->flags & AV_FRAME_FLAG_CORRUPT) || d->frame->decode_error_flags)
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: not a decodable image (corrupt or truncated data)", name);
    if (d->frame->width <= 0 || d->frame->height <= 0)
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: not a decodable image (empty picture)", name);
    if (dims_over_limit(d->frame->width, d->frame->height))
        return limit_error(err, name, d->frame->width, d->frame->height);
    return CLXP_OK;
}

static clxp_status frame_to_rgb(const AVFrame *f, enum AVCodecID codec, uint8_t *dst, int dst_stride,
                                const char *name, clxp_error *err);

static clxp_status decode_memory(const uint8_t *data, size_t size, const char *name, const char *hint,
                                 clxp_rgb_image *out, clxp_error *err) {
    memset(out, 0, sizeof *out);
    if (size == 0) return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: not a decodable image (empty file)", name);
    if (size > CLXP_IMAGE_MAX_FILE_BYTES)
        return clxp_err_set(err, CLXP_ERR_LIMIT, "%s: image file is %zu bytes, over the limit of %zu", name, size,
                            CLXP_IMAGE_MAX_FILE_BYTES);
    int64_t sw, sh;
    if (sniff_dimensions(data, size, &sw, &sh) && dims_over_limit(sw, sh)) return limit_error(err, name, sw, sh);

    decoder d;
    memset(&d, 0, sizeof d);
    clxp_status st = decode_first_frame(&d, data, size, name, hint, err);
    /* FFmpeg 5.1's WebP decoder has no animation support (Pillow has): say so rather than "invalid data" */
    if (st == CLXP_ERR_FORMAT && size >= 21 && !memcmp(data, "RIFF", 4) && !memcmp(data + 8, "WEBPVP8X", 8) &&
        (data[20] & 0x02))
        st = clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: animated WebP is not supported by this FFmpeg's decoder",
                          name);
    if (st == CLXP_OK) {
        int w = d.frame->width, h = d.frame->height;
        uint8_t *rgb = malloc((size_t)w * (size_t)h * 3);
        if (!rgb) {
            st = clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory for a %dx%d image", name, w, h);
        } else {
            st = frame_to_rgb(d.frame, d.dec->codec_id, rgb, 3 * w, name, err);
            if (st == CLXP_OK) {
                out->data = rgb;
                out->width = w;
                out->height = h;
            } else {
                free(rgb);
            }
        }
    }
    decoder_close(&d);
    return st;
}

clxp_status image_decode_memory(const uint8_t *data, size_t size, const char *name, clxp_rgb_image *out,
                                clxp_error *err) {
    if (!out) return clxp_err_set(err, CLXP_ERR_INVALID, "image_decode_memory: out is NULL");
    memset(out, 0, sizeof *out);
    if (!data && size) return clxp_err_set(err, CLXP_ERR_INVALID, "image_decode_memory: data is NULL");
    return decode_memory(data, size, display_name(name), name, out, err);
}

clxp_status image_load(const char *path, clxp_rgb_image *out, clxp_error *err) {
    if (!out) return clxp_err_set(err, CLXP_ERR_INVALID, "image_load: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path) return clxp_err_set(err, CLXP_ERR_INVALID, "image_load: path is NULL");
    if (clxp_is_dir(path)) return clxp_err_set(err, CLXP_ERR_IO, "%s: is a directory, not an image file", path);
    char *buf = NULL;
    size_t len = 0;
    clxp_status st = clxp_read_file(path, CLXP_IMAGE_MAX_FILE_BYTES, &buf, &len, err);
    if (st != CLXP_OK) return st;
    st = decode_memory((const uint8_t *)buf, len, path, path, out, err);
    free(buf);
    return st;
}

void image_free(clxp_rgb_image *img) {
    if (!img) return;
    free(img->data);
    memset(img, 0, sizeof *img);
}

/* ---- frame → RGB24 --------------------------------------------------------------------------------------------
 * The simple formats are converted by hand so that values pass through unchanged (swscale may dither or round
 * differently); the byte offsets below pick the high byte of 16-bit samples, as Pillow's unpackers do. */

typedef struct packed_layout {
    enum AVPixelFormat fmt;
    int bpp;        /* bytes per pixel */
    int r, g, b;    /* byte offset of each channel (its high byte for 16-bit samples) */
} packed_layout;

static const packed_layout packed_layouts[] = {
    {AV_PIX_FMT_RGB24, 3, 0, 1, 2},     {AV_PIX_FMT_BGR24, 3, 2, 1, 0},     {AV_PIX_FMT_RGBA, 4, 0, 1, 2},
    {AV_PIX_FMT_RGB0, 4, 0, 1, 2},      {AV_PIX_FMT_BGRA, 4, 2, 1, 0},      {AV_PIX_FMT_BGR0, 4, 2, 1, 0},
    {AV_PIX_FMT_ARGB, 4, 1, 2, 3},      {AV_PIX_FMT_0RGB, 4, 1, 2, 3},      {AV_PIX_FMT_ABGR, 4, 3, 2, 1},
    {AV_PIX_FMT_0BGR, 4, 3, 2, 1},      {AV_PIX_FMT_RGB48BE, 6, 0, 2, 4},   {AV_PIX_FMT_RGB48LE, 6, 1, 3, 5},
    {AV_PIX_FMT_BGR48BE, 6, 4, 2, 0},   {AV_PIX_FMT_BGR48LE, 6, 5, 3, 1},   {AV_PIX_FMT_RGBA64BE, 8, 0, 2, 4},
    {AV_PIX_FMT_RGBA64LE, 8, 1, 3, 5},  {AV_PIX_FMT_BGRA64BE, 8, 4, 2, 0},  {AV_PIX_FMT_BGRA64LE, 8, 5, 3, 1},
    /* gray (+ alpha): r = g = b */
    {AV_PIX_FMT_GRAY8, 1, 0, 0, 0},     {AV_PIX_FMT_YA8, 2, 0, 0, 0},       {AV_PIX_FMT_YA16BE, 4, 0, 0, 0},
    {AV_PIX_FMT_YA16LE, 4, 1, 1, 1},
};

static void convert_packed(const AVFrame *f, const packed_layout *L, uint8_t *dst, int dst_stride) {
    for (int y = 0; y < f->height; y++) {
        const uint8_t *s = f->data[0] + (ptrdiff_t)y * f->linesize[0];
        uint8_t *o = dst + (ptrdiff_t)y * dst_stride;
        for (int x = 0; x < f->width; x++, s += L->bpp, o += 3) {
            o[0] = s[L->r];
            o[1] = s[L->g];
            o[2] = s[L->b];
        }
    }
}

/* 16-bit gray: Pillow 9.4 opens it as mode "I" and convert("RGB") clips to 0..255 (it does not scale). */
static void convert_gray16(const AVFrame *f, int big_endian, uint8_t *dst, int dst_stride) {
    for (int y = 0; y < f->height; y++) {
        const uint8_t *s = f->data[0] + (ptrdiff_t)y * f->linesize[0];
        uint8_t *o = dst + (ptrdiff_t)y * dst_stride;
        for (int x = 0; x < f->width; x++, s += 2, o += 3) {
            unsigned v = big_endian ? (unsigned)s[0] << 8 | s[1] : (unsigned)s[1] << 8 | s[0];
            o[0] = o[1] = o[2] = (uint8_t)(v > 255 ? 255 : v);
        }
    }
}

static void convert_pal8(const AVFrame *f, uint8_t *dst, int dst_stride) {
    const uint32_t *pal = (const uint32_t *)f->data[1]; /* 256 native-endian 0xAARRGGBB entries */
    for (int y = 0; y < f->height; y++) {
        const uint8_t *s = f->data[0] + (ptrdiff_t)y * f->linesize[0];
        uint8_t *o = dst + (ptrdiff_t)y * dst_stride;
        for (int x = 0; x < f->width; x++, o += 3) {
            uint32_t c = pal[s[x]];
            o[0] = (uint8_t)(c >> 16);
            o[1] = (uint8_t)(c >> 8);
            o[2] = (uint8_t)c;
        }
    }
}

/* 1-bit: MONOBLACK has 1 = white, MONOWHITE 1 = black; Pillow's mode "1" maps to 0 / 255. */
static void convert_mono(const AVFrame *f, int one_is_white, uint8_t *dst, int dst_stride) {
    for (int y = 0; y < f->height; y++) {
        const uint8_t *s = f->data[0] + (ptrdiff_t)y * f->linesize[0];
        uint8_t *o = dst + (ptrdiff_t)y * dst_stride;
        for (int x = 0; x < f->width; x++, o += 3) {
            int bit = (s[x >> 3] >> (7 - (x & 7))) & 1;
            o[0] = o[1] = o[2] = (uint8_t)((bit == one_is_white) ? 255 : 0);
        }
    }
}

/* Planar 8-bit G, B, R (+A) planes. */
static void convert_gbrp(const AVFrame *f, uint8_t *dst, int dst_stride) {
    for (int y = 0; y < f->height; y++) {
        const uint8_t *g = f->data[0] + (ptrdiff_t)y * f->linesize[0];
        const uint8_t *b = f->data[1] + (ptrdiff_t)y * f->linesize[1];
        const uint8_t *r = f->data[2] + (ptrdiff_t)y * f->linesize[2];
        uint8_t *o = dst + (ptrdiff_t)y * dst_stride;
        for (int x = 0; x < f->width; x++, o += 3) {
            o[0] = r[x];
            o[1] = g[x];
            o[2] = b[x];
        }
    }
}

/* ---- JPEG (JFIF) YCbCr → RGB exactly as libjpeg-turbo does it ---------------------------------------------------
 * Pillow decodes JPEG with libjpeg(-turbo): "fancy" (triangular, centre-sited) chroma upsampling, then integer
 * YCbCr→RGB with 16-bit fixed-point tables. swscale approximates both (and drifts on odd widths, as it scales
 * the ceil(W/2) chroma columns onto W), which costs up to ~20 levels on saturated edges; doing it the libjpeg way
 * leaves only the IDCT differences (and with FFmpeg's "int" IDCT, a port of libjpeg's islow, those vanish too). */

/* libjpeg's RIGHT_SHIFT: an arithmetic (floor) shift, written portably. */
static int32_t floor_shift(int32_t v, int s) {
    return v >= 0 ? v >> s : -((-v + (1 << s) - 1) >> s);
}

typedef struct jfif_tables {
    int32_t cr_r[256], cb_b[256], cr_g[256], cb_g[256];
} jfif_tables;

/* jdcolor.c build_ycc_rgb_table (SCALEBITS 16). */
static void jfif_tables_init(jfif_tables *t) {
#define JFIX(x) ((int32_t)((x) * 65536.0 + 0.5))
    for (int i = 0; i < 256; i++) {
        int32_t x = i - 128;
        t->cr_r[i] = floor_shift(JFIX(1.40200) * x + (1 << 15), 16);
        t->cb_b[i] = floor_shift(JFIX(1.77200) * x + (1 << 15), 16);
        t->cr_g[i] = -JFIX(0.71414) * x;
        t->cb_g[i] = -JFIX(0.34414) * x + (1 << 15);
    }
#undef JFIX
}

static uint8_t clamp255(int32_t v) {
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* One upsampled chroma row (jdsample.c). `above_or_below` is the next-nearest chroma row for vertical fancy
 * upsampling (NULL when there is no vertical subsampling); `lower` says the output row is the lower of the two
 * rows a chroma row covers (rounding bias differs). cw chroma columns → out gets 2*cw (h2) or cw (h1) values. */
static void upsample_row(const uint8_t *near, const uint8_t *far, int lower, int cw, int h2, int fancy, int32_t *sum,
                         uint8_t *out) {
    if (!fancy) { /* box: h2v1_upsample / h2v2_upsample / int_upsample replicate */
        for (int i = 0; i < cw; i++) {
            if (h2) out[2 * i] = out[2 * i + 1] = near[i];
            else out[i] = near[i];
        }
        return;
    }
    if (!far) { /* h2v1_fancy_upsample (needs cw > 2) */
        out[0] = near[0];
        out[1] = (uint8_t)((near[0] * 3 + near[1] + 2) >> 2);
        for (int i = 1; i < cw - 1; i++) {
            int v = near[i] * 3;
            out[2 * i] = (uint8_t)((v + near[i - 1] + 1) >> 2);
            out[2 * i + 1] = (uint8_t)((v + near[i + 1] + 2) >> 2);
        }
        out[2 * cw - 2] = (uint8_t)((near[cw - 1] * 3 + near[cw - 2] + 1) >> 2);
        out[2 * cw - 1] = near[cw - 1];
        return;
    }
    for (int i = 0; i < cw; i++) sum[i] = near[i] * 3 + far[i];
    if (!h2) { /* h1v2_fancy_upsample */
        int bias = lower ? 2 : 1;
        for (int i = 0; i < cw; i++) out[i] = (uint8_t)((sum[i] + bias) >> 2);
        return;
    }
    /* h2v2_fancy_upsample (needs cw > 2) */
    out[0] = (uint8_t)((sum[0] * 4 + 8) >> 4);
    out[1] = (uint8_t)((sum[0] * 3 + sum[1] + 7) >> 4);
    for (int i = 1; i < cw - 1; i++) {
        out[2 * i] = (uint8_t)((sum[i] * 3 + sum[i - 1] + 8) >> 4);
        out[2 * i + 1] = (uint8_t)((sum[i] * 3 + sum[i + 1] + 7) >> 4);
    }
    out[2 * cw - 2] = (uint8_t)((sum[cw - 1] * 3 + sum[cw - 2] + 8) >> 4);
    out[2 * cw - 1] = (uint8_t)((sum[cw - 1] * 4 + 7) >> 4);
}

/* Full-range 8-bit planar YCbCr with 4:4:4, 4:2:2, 4:4:0 or 4:2:0 chroma, as JPEG/JFIF stores it; 0 if not. */
static int is_jfif_frame(const AVFrame *f, int *h2, int *v2) {
    int full = f->color_range == AVCOL_RANGE_JPEG;
    switch (f->format) {
    case AV_PIX_FMT_YUVJ444P: full = 1; /* fall through */
    case AV_PIX_FMT_YUV444P: *h2 = 0; *v2 = 0; break;
    case AV_PIX_FMT_YUVJ422P: full = 1; /* fall through */
    case AV_PIX_FMT_YUV422P: *h2 = 1; *v2 = 0; break;
    case AV_PIX_FMT_YUVJ440P: full = 1; /* fall through */
    case AV_PIX_FMT_YUV440P: *h2 = 0; *v2 = 1; break;
    case AV_PIX_FMT_YUVJ420P: full = 1; /* fall through */
    case AV_PIX_FMT_YUV420P: *h2 = 1; *v2 = 1; break;
    default: return 0;
    }
    if (!full) return 0;
    if (f->colorspace != AVCOL_SPC_UNSPECIFIED && f->colorspace != AVCOL_SPC_BT470BG &&
        f->colorspace != AVCOL_SPC_SMPTE170M)
        return 0;
    if ((*h2 || *v2) && f->chroma_location != AVCHROMA_LOC_UNSPECIFIED && f->chroma_location != AVCHROMA_LOC_CENTER)
        return 0;
    return 1;
}

static clxp_status convert_jfif(const AVFrame *f, int h2, int v2, uint8_t *dst, int dst_stride, const char *name,
                                clxp_error *err) {
    int w = f->width, h = f->height;
    int cw = h2 ? (w + 1) >> 1 : w, ch = v2 ? (h + 1) >> 1 : h;
    /* libjpeg upsamples fancily only when the chroma row has more than 2 samples (jinit_upsampler); h1v2 has no
     * such condition. */
    int fancy = h2 ? cw > 2 : 1;
    jfif_tables *t = malloc(sizeof *t);
    uint8_t *up = malloc(2 * ((size_t)cw * 2 + 2));
    int32_t *sum = malloc(sizeof(int32_t) * (size_t)cw);
    if (!t || !up || !sum) {
        free(t);
        free(up);
        free(sum);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", name);
    }
    jfif_tables_init(t);
    uint8_t *cb_up = up, *cr_up = up + (size_t)cw * 2 + 2;
    for (int y = 0; y < h; y++) {
        const uint8_t *Y = f->data[0] + (ptrdiff_t)y * f->linesize[0];
        const uint8_t *cb, *cr, *cb_far = NULL, *cr_far = NULL;
        int lower = 0;
        if (v2) {
            /* chroma row cy covers luma rows 2cy and 2cy+1; the next-nearest row is above for the upper one and
             * below for the lower one; libjpeg repeats the first / last real row at the edges */
            int cy = y >> 1;
            lower = y & 1;
            int far = lower ? (cy + 1 < ch ? cy + 1 : ch - 1) : (cy > 0 ? cy - 1 : 0);
            cb = f->data[1] + (ptrdiff_t)cy * f->linesize[1];
            cr = f->data[2] + (ptrdiff_t)cy * f->linesize[2];
            if (fancy) {
                cb_far = f->data[1] + (ptrdiff_t)far * f->linesize[1];
                cr_far = f->data[2] + (ptrdiff_t)far * f->linesize[2];
            }
        } else {
            cb = f->data[1] + (ptrdiff_t)y * f->linesize[1];
            cr = f->data[2] + (ptrdiff_t)y * f->linesize[2];
        }
        if (h2 || v2) {
            upsample_row(cb, cb_far, lower, cw, h2, fancy, sum, cb_up);
            upsample_row(cr, cr_far, lower, cw, h2, fancy, sum, cr_up);
            cb = cb_up;
            cr = cr_up;
        }
        uint8_t *o = dst + (ptrdiff_t)y * dst_stride;
        for (int x = 0; x < w; x++, o += 3) {
            int32_t yy = Y[x];
            o[0] = clamp255(yy + t->cr_r[cr[x]]);
            o[1] = clamp255(yy + floor_shift(t->cb_g[cb[x]] + t->cr_g[cr[x]], 16));
            o[2] = clamp255(yy + t->cb_b[cb[x]]);
        }
    }
    free(t);
    free(up);
    free(sum);
    return CLXP_OK;
}

/* ---- WebP (VP8) YUV 4:2:0 → RGB exactly as libwebp does it ------------------------------------------------------
 * Pillow decodes WebP with libwebp: "fancy" upsampling (centre-sited bilinear, 9-3-3-1 weights with libwebp's
 * rounding; src/dsp/upsampling.c) and VP8's 14-bit fixed-point limited-range BT.601 conversion (src/dsp/yuv.h). */

static uint8_t vp8_clip8(int v) {
    return (v & ~16383) == 0 ? (uint8_t)(v >> 6) : v < 0 ? 0 : 255;
}
static int vp8_mult_hi(int v, int c) {
    return (v * c) >> 8;
}
static void vp8_yuv_to_rgb(int y, int u, int v, uint8_t *o) {
    o[0] = vp8_clip8(vp8_mult_hi(y, 19077) + vp8_mult_hi(v, 26149) - 14234);
    o[1] = vp8_clip8(vp8_mult_hi(y, 19077) - vp8_mult_hi(u, 6419) - vp8_mult_hi(v, 13320) + 8708);
    o[2] = vp8_clip8(vp8_mult_hi(y, 19077) + vp8_mult_hi(u, 33050) - 17685);
}

/* One output row of libwebp's UpsampleRgbLinePair for one chroma plane: `t` is the chroma row above the luma row,
 * `c` the one below, `bottom` selects the formulas of the pair's lower row (nearer to c). */
static void webp_upsample_row(const uint8_t *t, const uint8_t *c, int bottom, int len, uint8_t *out) {
    int tl = t[0], l = c[0];
    out[0] = (uint8_t)(bottom ? (3 * l + tl + 2) >> 2 : (3 * tl + l + 2) >> 2);
    int last_pair = (len - 1) >> 1;
    for (int x = 1; x <= last_pair; x++) {
        int tt = t[x], u = c[x];
        int avg = tl + tt + l + u + 8;
        int d12 = (avg + 2 * (tt + l)) >> 3;
        int d03 = (avg + 2 * (tl + u)) >> 3;
        if (bottom) {
            out[2 * x - 1] = (uint8_t)((d03 + l) >> 1);
            out[2 * x] = (uint8_t)((d12 + u) >> 1);
        } else {
            out[2 * x - 1] = (uint8_t)((d12 + tl) >> 1);
            out[2 * x] = (uint8_t)((d03 + tt) >> 1);
        }
        tl = tt;
        l = u;
    }
    if (!(len & 1)) out[len - 1] = (uint8_t)(bottom ? (3 * l + tl + 2) >> 2 : (3 * tl + l + 2) >> 2);
}

static clxp_status convert_webp_yuv420(const AVFrame *f, uint8_t *dst, int dst_stride, const char *name,
                                       clxp_error *err) {
    int w = f->width, h = f->height, ch = (h + 1) >> 1;
    uint8_t *up = malloc(2 * (size_t)w);
    if (!up) return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", name);
    uint8_t *u_up = up, *v_up = up + w;
    for (int y = 0; y < h; y++) {
        /* libwebp's EmitFancyRGB: row 0 uses chroma row 0 alone; rows 2k-1 (upper) and 2k (lower) sit between
         * chroma rows k-1 and k; the last row of an even-height picture uses the last chroma row alone. */
        int top, cur, bottom;
        if (y == 0) {
            top = cur = 0;
            bottom = 0;
        } else if (y & 1) {
            top = (y - 1) >> 1;
            cur = (y + 1) >> 1 < ch ? (y + 1) >> 1 : ch - 1;
            bottom = 0;
        } else {
            top = (y >> 1) - 1;
            cur = y >> 1;
            bottom = 1;
        }
        webp_upsample_row(f->data[1] + (ptrdiff_t)top * f->linesize[1], f->data[1] + (ptrdiff_t)cur * f->linesize[1],
                          bottom, w, u_up);
        webp_upsample_row(f->data[2] + (ptrdiff_t)top * f->linesize[2], f->data[2] + (ptrdiff_t)cur * f->linesize[2],
                          bottom, w, v_up);
        const uint8_t *Y = f->data[0] + (ptrdiff_t)y * f->linesize[0];
        uint8_t *o = dst + (ptrdiff_t)y * dst_stride;
        for (int x = 0; x < w; x++, o += 3) vp8_yuv_to_rgb(Y[x], u_up[x], v_up[x], o);
    }
    free(up);
    return CLXP_OK;
}

/* The deprecated full-range "J" formats: swscale warns on them through av_log, so pass the plain format and
 * the range explicitly. */
static enum AVPixelFormat unjpeg(enum AVPixelFormat f, int *full_range) {
    switch (f) {
    case AV_PIX_FMT_YUVJ420P: *full_range = 1; return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P: *full_range = 1; return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P: *full_range = 1; return AV_PIX_FMT_YUV444P;
    case AV_PIX_FMT_YUVJ440P: *full_range = 1; return AV_PIX_FMT_YUV440P;
    case AV_PIX_FMT_YUVJ411P: *full_range = 1; return AV_PIX_FMT_YUV411P;
    default: return f;
    }
}

static clxp_status convert_swscale(const AVFrame *f, uint8_t *dst, int dst_stride, const char *name,
                                   clxp_error *err) {
    const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(f->format);
    int full_range = f->color_range == AVCOL_RANGE_JPEG;
    enum AVPixelFormat src_fmt = unjpeg(f->format, &full_range);
    int is_yuv = desc && !(desc->flags & AV_PIX_FMT_FLAG_RGB) && desc->nb_components >= 3;
    if (!is_yuv) full_range = 1; /* RGB and gray data are full range unless tagged otherwise */
    if (f->color_range == AVCOL_RANGE_MPEG) full_range = 0;

    struct SwsContext *sws = sws_alloc_context();
    if (!sws) return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", name);
    /* Accurate rounding and full chroma interpolation instead of swscale's fast approximate paths; bilinear
     * chroma upsampling with the decoder's chroma siting is what libjpeg's "fancy upsampling" does. */
    int flags = SWS_BILINEAR | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT | SWS_FULL_CHR_H_INP | SWS_BITEXACT;
    av_opt_set_int(sws, "srcw", f->width, 0);
    av_opt_set_int(sws, "srch", f->height, 0);
    av_opt_set_int(sws, "src_format", src_fmt, 0);
    av_opt_set_int(sws, "dstw", f->width, 0);
    av_opt_set_int(sws, "dsth", f->height, 0);
    av_opt_set_int(sws, "dst_format", AV_PIX_FMT_RGB24, 0);
    av_opt_set_int(sws, "sws_flags", flags, 0);
    av_opt_set_int(sws, "src_range", full_range, 0);
    av_opt_set_int(sws, "dst_range", 1, 0);
    /* Chroma siting (in 1/256 luma pixels) matters only along subsampled axes; set on a 4:4:4 axis it would
     * shift the chroma by half a pixel. */
    int xpos, ypos;
    if (desc && f->chroma_location != AVCHROMA_LOC_UNSPECIFIED &&
        avcodec_enum_to_chroma_pos(&xpos, &ypos, f->chroma_location) == 0) {
        if (desc->log2_chroma_w) av_opt_set_int(sws, "src_h_chr_pos", xpos, 0);
        if (desc->log2_chroma_h) av_opt_set_int(sws, "src_v_chr_pos", ypos, 0);
    }
    int e = sws_init_context(sws, NULL, NULL);
    if (e < 0) {
        sws_freeContext(sws);
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: cannot convert pixel format %s to RGB", name,
                            desc ? desc->name : "?");
    }
    if (is_yuv) {
        int cs = SWS_CS_DEFAULT; /* BT.601, what JPEG/JFIF and WebP use */
        switch (f->colorspace) {
        case AVCOL_SPC_BT709: cs = SWS_CS_ITU709; break;
        case AVCOL_SPC_FCC: cs = SWS_CS_FCC; break;
        case AVCOL_SPC_SMPTE240M: cs = SWS_CS_SMPTE240M; break;
        case AVCOL_SPC_BT2020_NCL:
        case AVCOL_SPC_BT2020_CL: cs = SWS_CS_BT2020; break;
        default: break;
        }
        sws_setColorspaceDetails(sws, sws_getCoefficients(cs), full_range, sws_getCoefficients(SWS_CS_DEFAULT), 1,
                                 0, 1 << 16, 1 << 16);
    }
    uint8_t *dst_planes[4] = {dst, NULL, NULL, NULL};
    int dst_strides[4] = {dst_stride, 0, 0, 0};
    int h = sws_scale(sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dst_planes, dst_strides);
    sws_freeContext(sws);
    if (h != f->height)
        return clxp_err_set(err, CLXP_ERR_INTERNAL, "%s: pixel format conversion to RGB failed", name);
    return CLXP_OK;
}

/* `codec` selects decoder-specific conversions (AV_CODEC_ID_NONE when unknown). */
static clxp_status frame_to_rgb(const AVFrame *f, enum AVCodecID codec, uint8_t *dst, int dst_stride,
                                const char *name, clxp_error *err) {
    if (!f || !dst || f->width <= 0 || f->height <= 0 || dst_stride < 3 * f->width)
        return clxp_err_set(err, CLXP_ERR_INVALID, "%s: image_frame_to_rgb: bad arguments", name);
    enum AVPixelFormat fmt = f->format;
    for (size_t i = 0; i < sizeof packed_layouts / sizeof packed_layouts[0]; i++) {
        if (packed_layouts[i].fmt == fmt) {
            convert_packed(f, &packed_layouts[i], dst, dst_stride);
            return CLXP_OK;
        }
    }
    switch (fmt) {
    case AV_PIX_FMT_GRAY16BE: convert_gray16(f, 1, dst, dst_stride); return CLXP_OK;
    case AV_PIX_FMT_GRAY16LE: convert_gray16(f, 0, dst, dst_stride); return CLXP_OK;
    case AV_PIX_FMT_PAL8: convert_pal8(f, dst, dst_stride); return CLXP_OK;
    case AV_PIX_FMT_MONOBLACK: convert_mono(f, 1, dst, dst_stride); return CLXP_OK;
    case AV_PIX_FMT_MONOWHITE: convert_mono(f, 0, dst, dst_stride); return CLXP_OK;
    case AV_PIX_FMT_GBRP:
    case AV_PIX_FMT_GBRAP: convert_gbrp(f, dst, dst_stride); return CLXP_OK;
    default: break;
    }
    int h2, v2;
    if (is_jfif_frame(f, &h2, &v2)) return convert_jfif(f, h2, v2, dst, dst_stride, name, err);
    if (codec == AV_CODEC_ID_WEBP && (fmt == AV_PIX_FMT_YUV420P || fmt == AV_PIX_FMT_YUVA420P) &&
        f->color_range != AVCOL_RANGE_JPEG)
        return convert_webp_yuv420(f, dst, dst_stride, name, err);
    return convert_swscale(f, dst, dst_stride, name, err);
}

clxp_status image_frame_to_rgb(const AVFrame *f, uint8_t *dst, int dst_stride, const char *name, clxp_error *err) {
    return frame_to_rgb(f, AV_CODEC_ID_NONE, dst, dst_stride, display_name(name), err);
}
