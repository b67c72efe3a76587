/* One demuxer shared by a video reader and an audio reader (media/video.h, media/audio.h), so that a combined
 * video + audio run (clxp_run_file_av) opens and reads its input once.
 *
 * Each reader asks for the next packet of its own stream (demux_read). Packets of the other wanted stream read on
 * the way are queued for it (moved, not copied); packets of streams nobody wants are discarded by libavformat.
 * The queue is bounded: more than DEMUX_MAX_QUEUED_BYTES waiting for one reader (a file whose streams are far
 * apart, e.g. all the audio after all the video) makes demux_read fail with AVERROR(ENOMEM), which the
 * readers report as a read error. Readers that share a demuxer do not seek themselves: the owner seeks once with
 * demux_seek before the first read. Not thread-safe: both readers must be used from one thread. */
#ifndef CLXP_MEDIA_DEMUX_H
#define CLXP_MEDIA_DEMUX_H

#include "clxp.h"

#define DEMUX_MAX_QUEUED_BYTES ((size_t)512 << 20)

struct AVFormatContext;
struct AVPacket;
struct AVCodecContext;
typedef struct demuxer demuxer;

/* ---- helpers of the readers (media/video.c, media/audio.c), with or without a shared demuxer --------------- */

/* avformat_open_input + avformat_find_stream_info of url into *fmt (close with avformat_close_input).
 * CLXP_ERR_IO "<url>: cannot open (No such file or directory)" for a missing file, CLXP_ERR_FORMAT otherwise. */
clxp_status media_open_input(const char *url, int (*interrupt)(void *user), void *interrupt_user,
                             struct AVFormatContext **fmt, clxp_error *err);
/* The stream a reader of `type` (AVMEDIA_TYPE_VIDEO or AVMEDIA_TYPE_AUDIO) decodes: the one matching the FFmpeg
 * stream specifier spec (NULL or "": the best stream of that type). Errors name url: CLXP_ERR_INVALID for a bad
 * specifier, no match or a stream of another type; CLXP_ERR_UNSUPPORTED when the file has no stream of that type
 * (saying which model fits the stream it has). */
clxp_status media_pick_stream(struct AVFormatContext *fmt, const char *url, const char *spec, int type, int *index,
                              clxp_error *err);
/* A decoder context for stream `index`, parameters copied and pkt_timebase set, not opened yet (the caller sets
 * its options, then media_open_decoder). */
clxp_status media_alloc_decoder(struct AVFormatContext *fmt, int index, const char *url,
                                struct AVCodecContext **dec, clxp_error *err);
/* avcodec_open2 of dec; what names it in the error ("video decoder"). */
clxp_status media_open_decoder(struct AVCodecContext *dec, const char *url, const char *what, clxp_error *err);
/* Only stream `index` is read from now on: with a shared demuxer d it is wanted there, else every other stream
 * of fmt is discarded. */
void media_keep_stream(struct AVFormatContext *fmt, demuxer *d, int index);

/* Open url (avformat_open_input + avformat_find_stream_info). interrupt may be NULL (see video_options). */
clxp_status demux_open(const char *url, int (*interrupt)(void *user), void *interrupt_user, demuxer **out,
                       clxp_error *err);
void demux_close(demuxer *d);
struct AVFormatContext *demux_context(demuxer *d);
/* A reader will read stream_index: its packets are kept (queued) from now on. */
void demux_want(demuxer *d, int stream_index);
/* Seek so that decoding stream_index starts at or before t seconds from the stream's start (the key frame
 * before it). Before the first demux_read only. Returns 0, or a negative AVERROR. */
int demux_seek(demuxer *d, int stream_index, double t);
/* The next packet of stream_index into pkt (as av_read_frame: 0, or a negative AVERROR such as AVERROR_EOF;
 * the end of the input is reported to every reader). */
int demux_read(demuxer *d, int stream_index, struct AVPacket *pkt);

#endif
