/* Scratch directory and generated media of a test program (see scratch.h). */
#include "scratch.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

static char g_dir[512];

int scratch_sh(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof cmd) return -1;
    fflush(stdout);
    int st = system(cmd);
    int rc = st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (rc != 0) printf("  command failed (%d): %s\n", rc, cmd);
    return rc;
}

int scratch_init(const char *name) {
    const char *t = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/clxp-%s-XXXXXX", t && *t ? t : "/tmp", name);
    if (!mkdtemp(g_dir)) {
        printf("FAIL setup\n  mkdtemp(%s): %s\n", g_dir, strerror(errno));
        tests_failed++;
        g_dir[0] = '\0';
        return 0;
    }
    if (scratch_sh("ffmpeg -hide_banner -version >/dev/null 2>&1") != 0) {
        printf("FAIL setup\n  the ffmpeg tool is needed (scripts/install-deps.sh installs it)\n");
        tests_failed++;
        rmdir(g_dir);
        g_dir[0] = '\0';
        return 0;
    }
    return 1;
}

void scratch_cleanup(void) {
    if (g_dir[0]) scratch_sh("rm -rf '%s'", g_dir);
    g_dir[0] = '\0';
}

const char *scratch_dir(void) { return g_dir; }

const char *scratch_path(const char *name) {
    static char buf[8][1024];
    static int next;
    char *b = buf[next++ % 8];
    snprintf(b, sizeof buf[0], "%s/%s", g_dir, name);
    return b;
}

int scratch_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

const char *scratch_ffmpeg(const char *name, const char *args) {
    const char *path = scratch_path(name);
    if (scratch_exists(path)) return path;
    if (scratch_sh("ffmpeg -nostdin -hide_banner -loglevel error -y %s '%s'", args, path) != 0 ||
        !scratch_exists(path))
        return NULL;
    return path;
}

static void put16(FILE *f, unsigned v) {
    fputc((int)(v & 0xff), f);
    fputc((int)((v >> 8) & 0xff), f);
}

static void put32(FILE *f, uint32_t v) {
    put16(f, v & 0xffff);
    put16(f, v >> 16);
}

const char *scratch_wav(const char *name, int tag, int channels, int rate, int bits, const void *data, size_t bytes) {
    const char *path = scratch_path(name);
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    int align = channels * bits / 8;
    fwrite("RIFF", 1, 4, f);
    put32(f, (uint32_t)(36 + bytes + (bytes & 1)));
    fwrite("WAVEfmt ", 1, 8, f);
    put32(f, 16);
    put16(f, (unsigned)tag);
    put16(f, (unsigned)channels);
    put32(f, (uint32_t)rate);
    put32(f, (uint32_t)(rate * align));
    put16(f, (unsigned)align);
    put16(f, (unsigned)bits);
    fwrite("data", 1, 4, f);
    put32(f, (uint32_t)bytes);
    int ok = bytes == 0 || fwrite(data, 1, bytes, f) == bytes; /* the test machines are little-endian */
    if (bytes & 1) fputc(0, f);
    return fclose(f) == 0 && ok ? path : NULL;
}
