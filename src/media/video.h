/* Video frame source: demux + decode one video stream with FFmpeg, apply the display transform (rotation
 * metadata, non-square pixels) and the user's filter graph, select frames, and hand them out as RGB24.
 *
 * Frame selection (all combinable, applied in this order):
 *   start/duration  seek to `start` (to the key frame before it, then decode and drop frames before start, as
 *                   ffmpeg's -ss does) and stop after `duration` seconds;
 *   keyframes_only  the decoder skips every non-key frame (fast: those are never decoded);
 *   skip_nonref     the decoder skips non-reference frames (cheaper decoding; a time-sampled frame is then the
 *                   first reference frame at or after the time asked for);
 *   vf              any libavfilter graph, after the display transform;
 *   scene           libavfilter's select='gt(scene,X)': frames that differ from the previous one by more than X;
 *   every_t         at most one frame per T seconds by timestamp: the first frame at or after start + k*T, k=0,1..;
 *   every_n         every Nth of the frames that passed the selections above (the 1st, the N+1th, ...).
 * Times are in seconds from the stream's start time (the first frame of a typical file is at 0).
 * frame_index is the frame number in the stream: the decode count when decoding from the start, otherwise
 * (after a seek, or with key frames only) time x average frame rate, rounded.
 * Corrupt packets/frames are skipped with a warning naming the timestamp and counted (video_corrupt_count). */
#ifndef CLXP_MEDIA_VIDEO_H
#define CLXP_MEDIA_VIDEO_H

#include <stdint.h>

#include "clxp.h"

typedef struct video_options {
    const char *stream; /* FFmpeg stream specifier, NULL: best video stream */
    int keyframes_only;
    int skip_nonref;
    double start, duration; /* seconds; duration 0: to the end */
    double scene;           /* > 0: scene-change threshold */
    double every_t;         /* > 0: seconds between kept frames */
    int every_n;            /* > 1: keep every Nth frame */
    const char *vf;         /* user filter graph (a chain: "scale=320:-1,eq=contrast=1.2"), or NULL */
    int (*interrupt)(void *user); /* non-zero: abort blocking reads (FFmpeg's interrupt callback); may be NULL */
    void *interrupt_user;
    struct demuxer *demux; /* read through this shared demuxer (media/demux.h; url then only names the input in
                            * messages; no seek: the demuxer's owner seeks), or NULL: open url */
} video_options;

typedef struct video_frame {
    const uint8_t *rgb; /* packed RGB24, 3 * width bytes per row; owned by the reader until the next call */
    int width, height;
    int64_t pts;           /* in the stream time base, INT64_MIN if unknown */
    double time, duration; /* seconds */
    int64_t frame_index;   /* index of the frame among the stream's decoded frames (from the start of decoding) */
} video_frame;

typedef struct video_reader video_reader;

clxp_status video_open(const char *url, const video_options *o, video_reader **out, clxp_error *err);
/* Next selected frame; *eof = 1 (and CLXP_OK) at the end. */
clxp_status video_next(video_reader *r, video_frame *f, int *eof, clxp_error *err);
void video_close(video_reader *r);

int video_stream_index(const video_reader *r);
double video_duration(const video_reader *r);      /* seconds, <= 0 if unknown */
int64_t video_decoded_count(const video_reader *r); /* frames decoded so far */
int64_t video_corrupt_count(const video_reader *r); /* packets or frames skipped as corrupt */

/* 1 if url names a still image (a format FFmpeg reads with an image pipe demuxer: PNG, JPEG, WebP, ...).
 * Probes the first bytes of a local file; a file that cannot be probed (missing, empty) is judged by its
 * extension; 0 for anything else (videos, URLs). */
int media_is_still_image(const char *url);
/* 1 if FFmpeg recognises the content of the local file path as a media format (image, video or audio) by its
 * first 4 KiB: a probe score above AVPROBE_SCORE_RETRY, so that text files FFmpeg would take on their extension
 * alone (.txt, .nfo: the tty demuxer, score 1) are not. 0 for anything else (unreadable, empty). */
int media_probe_file(const char *path);

#endif
