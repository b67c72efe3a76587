/* Output writers of the media pipeline: every clxp_result of a run goes to one file in one of five formats.
 *
 * Usage: out_open, then out_write for each result in presentation order (per stream; results of a video and an
 * audio stream may interleave in time order), then out_close on success or out_abort on failure.
 *
 * Integrity:
 *  - The output is written to a temporary file in the same directory, "<path>.XXXXXX.part" (XXXXXX random;
 *    out_partial_path names it), and renamed over <path> by out_close after an fsync: readers never see a
 *    half-written file, and an existing file is replaced only when the run succeeds. out_abort (or a failing
 *    out_close) removes the temporary file and leaves an existing <path> untouched.
 *  - overwrite = 0: an existing <path> is refused at out_open (CLXP_ERR_IO "<path>: already exists (use -y to
 *    overwrite)"); a file that appears at <path> while the run is going is not replaced either (out_close fails
 *    and keeps the finished output in the temporary file, naming it).
 *  - <path> in a directory that does not exist: CLXP_ERR_IO naming it. <path> that is the input file itself (same
 *    device and inode as options->input): CLXP_ERR_INVALID.
 *  - "-" writes to standard output, and an existing path that is not a regular file (/dev/null, a FIFO) is written
 *    directly; neither is atomic. A symbolic link to a file is followed: the file it points to is replaced.
 *  - JSONL is flushed after every record, so the .part file of a killed run holds complete lines.
 *  - The replaced file's permission bits are kept; a new file gets 0666 minus the umask.
 *
 * Formats:
 *  jsonl  one JSON object per result and line:
 *           {"input":"in.mp4","stream":0,"media":"video","frame":12,"pts":6144,"time":0.48,"duration":0.04,
 *            "labels":[{"label":"a cat","p":0.91},{"label":"a dog","p":0.05}]}
 *         "input" is the result's input (else options->input; absent when neither is set); "pts" is null when
 *         unknown; "time" and "duration" are seconds rounded to 6 decimals, scores are rounded to 6 decimals;
 *         audio windows add "end" (time + duration); a box result adds
 *         "box":{"index":0,"x":10,"y":20,"w":100,"h":80,"label":"person","score":0.87} (label/score null if
 *         unknown). Labels bank: "labels" holds the top_k labels (0 = all) with p >= confidence, most probable
 *         first (ties: bank order). Categories bank: "units":[{"unit":"Scene","category":"Day","score":0.8},...]
 *         lists the best category of every unit, always (neither top_k nor confidence removes a unit).
 *  csv    the avgclass-compatible summary, written at out_close (see classify/aggregate.h for the exact
 *         semantics): header "stream_id,label,avg_probability,count", then for every stream (ascending stream
 *         index) one row per class reported at least once, sorted by descending count, then label (bytewise),
 *         then bank order; a class is reported in a result when it is the result's top class (labels bank) or
 *         its unit's best category (categories bank) and its score >= confidence; avg_probability is the mean
 *         score over those results with 4 decimals ("%.4f"), count their number. Every result counts (boxes
 *         too). Labels containing a comma, a double quote, CR or LF are quoted per RFC 4180 (inner quotes
 *         doubled); FFmpeg's avgclass quotes labels with commas the same way. A class name shared by categories
 *         of two units gives two rows.
 *  srt    subtitles: one cue per run of consecutive whole-frame results (box_index == -1) of the same stream
 *  vtt    with the same top label (labels bank) or the same best category in every unit (categories bank).
 *         A cue starts at the run's first result and ends at the next run's first result, or for the last run
 *         at its last result's time + duration (+ the median spacing of the last 255 results when the duration
 *         is 0, + 1 s when there is a single result). Text: "label (87%)" with the mean score over the run, or
 *         one "Unit: Category (87%)" line per unit; a label / unit line whose mean is below confidence is left
 *         out and a run left without text gets no cue. Cues follow the first stream that produces a result;
 *         results of other streams are ignored (a subtitle track shows one timeline). SRT: numbered cues with
 *         "HH:MM:SS,mmm --> HH:MM:SS,mmm"; VTT: "WEBVTT" header, "HH:MM:SS.mmm" times, & < > escaped. Only the
 *         current run is kept in memory.
 *  html   one self-contained page (inline CSS, no script, no external resource): input/model header, a timeline
 *         chart per stream (inline SVG: one polyline per class for the stream's 8 classes of highest mean score,
 *         x = time, y = score, whole-frame results only, with a legend), and a table of results with a
 *         thumbnail (the result's RGB box-filtered to at most 160x160 px, PNG, data: URI), the time, and the
 *         top_k labels >= confidence or every unit's best category. Rows are streamed to the file as results
 *         arrive: the first 200 results get a row each, then one result in 2, 4, 8, ... (the stride doubles
 *         every 50 rows), so a run of N results has about 200 + 50 * log2(N / 200) rows (~500 for 10 000,
 *         ~650 for 90 000); box results have a row like any result, with the box's pixels as thumbnail. The
 *         chart keeps at most 4096 points per stream (fewer when points x classes would pass 2^22 floats); when
 *         full, neighbouring points are averaged in pairs and every later point is the mean of twice as many
 *         results. The chart is written at out_close and placed above the table by CSS. All text is
 *         HTML-escaped. PNG thumbnails of real frames are ~30 KB (~40 KB as base64), so ~20 MB for 500 rows.
 */
#ifndef CLXP_OUTPUT_WRITER_H
#define CLXP_OUTPUT_WRITER_H

#include "clxp.h"

typedef enum out_format { OUT_JSONL, OUT_CSV, OUT_SRT, OUT_VTT, OUT_HTML } out_format;

typedef struct out_options {
    int top_k;         /* labels per record in jsonl / html (0 = all); categories: every unit's best category is
                          always reported */
    float confidence;  /* a label below this is not reported (jsonl lists, csv "reported", subtitles, html) */
    int overwrite;     /* 0: an existing file is an error (CLXP_ERR_IO "... exists (use -y to overwrite)"), as
                          FFmpeg without -y */
    const char *input; /* input name for the html title / jsonl (may be NULL) */
    const char *model; /* model path for the html header (may be NULL) */
    int per_input;     /* results of several inputs in one file: 1 keeps each input's streams apart (a change of
                          clxp_result.input from one result to the next starts a new input): the csv summary gets
                          a leading "input" column and rows per input and stream, the html report a chart per
                          input and stream, subtitles follow the first input's stream. 0: a stream is keyed by its
                          index alone (results of several inputs with the same stream index merge). */
} out_options;

typedef struct out_writer out_writer;

/* "jsonl" (or "ndjson"), "csv", "srt", "vtt" (or "webvtt"), "html" (or "htm"), case-insensitive -> format;
 * anything else is CLXP_ERR_INVALID listing the names. */
clxp_status out_format_parse(const char *name, out_format *f, clxp_error *err);
/* Guess from a path's extension (.jsonl/.ndjson, .csv, .srt, .vtt, .html/.htm, case-insensitive);
 * CLXP_ERR_INVALID naming the path when there is no known extension. */
clxp_status out_format_from_path(const char *path, out_format *f, clxp_error *err);
/* Canonical name of a format ("jsonl", ...). */
const char *out_format_name(out_format f);

/* Create the temporary file for path and write the format's header. bank must outlive the writer; o may be NULL
 * (top_k 0, confidence 0, no overwrite). The option strings are copied. */
clxp_status out_open(const char *path, out_format fmt, const clxp_labelbank *bank, const out_options *o,
                     out_writer **out, clxp_error *err);
/* The same for the results of several label banks (at most OUT_MAX_BANKS), e.g. a combined video + audio run
 * (clxp_run_file_av): each result is written with the labels (or units and categories) of its own bank,
 * clxp_result.bank (NULL: banks[0]); a result of another bank is CLXP_ERR_INVALID. The formats stay the same:
 * jsonl records and html rows name the result's labels, the csv summary has rows for every stream (each stream
 * with its bank's labels), the html report a chart per stream; subtitles follow one stream (the first that
 * produces a result). */
#define OUT_MAX_BANKS 4
clxp_status out_open_banks(const char *path, out_format fmt, const clxp_labelbank *const *banks, int n_banks,
                           const out_options *o, out_writer **out, clxp_error *err);
/* Write one result (r->n_classes must be its bank's class count). After a failure every later call fails too. */
clxp_status out_write(out_writer *w, const clxp_result *r, clxp_error *err);
/* Finish (summary etc.), fsync, rename over path; frees w even on error (the temporary file is then removed). */
clxp_status out_close(out_writer *w, clxp_error *err);
/* Remove the temporary file; frees w; NULL ok. */
void out_abort(out_writer *w);
/* 1 if a and b both name the same existing file (same device and inode, so "./x", "dir/../x" and symlinks
 * count), else 0. out_open checks the output against options->input with this; a caller with several inputs can
 * check each of them. */
int out_same_file(const char *a, const char *b);
/* The temporary file being written ("<path>.XXXXXX.part"), or NULL when writing directly (stdout, a device). */
const char *out_partial_path(const out_writer *w);

#endif
