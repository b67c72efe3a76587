/* Helpers shared by the benchmark programs (each bench program is its own binary): a deterministic random generator,
 * CPU accounting for the "machine busy" check, the CPU's name. static inline: a program uses what it needs. */
#ifndef CLXP_BENCH_COMMON_H
#define CLXP_BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static uint64_t bench_rng_state = 0x9E3779B97F4A7C15ull;

/* splitmix64: the same sequence on every run (the random weights and inputs are reproducible). */
static inline uint64_t bench_rng_next(void) {
    uint64_t z = (bench_rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* qsort comparison of doubles, ascending. */
static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* CPU seconds used by everything on the machine (/proc/stat; idle and iowait excluded); -1 if unknown. */
static inline double bench_machine_busy_s(void) {
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long v[8] = {0};
    int n = f ? fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                       &v[6], &v[7])
              : 0;
    if (f) fclose(f);
    if (n < 4) return -1;
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}

/* CPU seconds of this process, plus those of its finished children when with_children (e.g. ffmpeg runs). */
static inline double bench_cpu_s(int with_children) {
    double s = 0;
    const int who[2] = {RUSAGE_SELF, RUSAGE_CHILDREN};
    for (int i = 0; i < (with_children ? 2 : 1); i++) {
        struct rusage ru;
        if (getrusage(who[i], &ru) == 0)
            s += ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
    }
    return s;
}

/* The CPU's "model name" from /proc/cpuinfo ("unknown CPU" if there is none). */
static inline void bench_cpu_model(char *buf, size_t n) {
    snprintf(buf, n, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            const char *v = strchr(line, ':');
            if (v) {
                v++;
                while (*v == ' ') v++;
                snprintf(buf, n, "%s", v);
                buf[strcspn(buf, "\n")] = '\0';
            }
            break;
        }
    }
    fclose(f);
}

#endif
