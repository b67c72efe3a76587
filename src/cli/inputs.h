/* The inputs of `clxp classify`: its arguments, with each directory replaced by the media files below it. */
#ifndef CLXP_CLI_INPUTS_H
#define CLXP_CLI_INPUTS_H

#include "clxp.h"

/* At most this many inputs after expansion (CLXP_ERR_LIMIT beyond). */
#define CLI_MAX_INPUTS 1000000

typedef struct cli_inputs {
    char **path;       /* n paths (owned) */
    int n;
    long long skipped; /* entries below directories that were not taken (not media, hidden, links to directories) */
} cli_inputs;

/* Every argument that is not a directory is kept as it is (a file, a URL, a missing file: the run reports it).
 * A directory is replaced by the files below it that FFmpeg recognises as images, video or audio
 * (media_probe_file), recursively, in bytewise name order within each directory; names starting with '.' are
 * skipped, and so are symbolic links to directories (no loops) and directories nested over 64 deep (an error).
 * A directory without any media file is CLXP_ERR_INVALID naming it; one that cannot be read CLXP_ERR_IO. */
clxp_status cli_inputs_expand(char *const *args, int n_args, cli_inputs *out, clxp_error *err);
void cli_inputs_free(cli_inputs *in);

#endif
