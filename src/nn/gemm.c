#include "nn/gemm.h"

#include <dnnl.h>

#include "util/error.h"

clxp_status nn_gemm(char ta, char tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                    int ldb, float beta, float *C, int ldc, clxp_error *err) {
    if (M == 0 || N == 0) return CLXP_OK;
    dnnl_status_t s = dnnl_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    if (s != dnnl_success)
        return clxp_err_set(err, CLXP_ERR_INTERNAL, "oneDNN sgemm failed (status %d, M=%d N=%d K=%d)", (int)s, M, N,
                            K);
    return CLXP_OK;
}

clxp_status nn_linear(const float *x, int M, int K, const float *W, const float *bias, int N, float *y, int accumulate,
                      clxp_error *err) {
    clxp_status st = nn_gemm('N', 'T', M, N, K, 1.0f, x, K, W, K, accumulate ? 1.0f : 0.0f, y, N, err);
    if (st != CLXP_OK || !bias) return st;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < M; i++) {
        float *row = y + (size_t)i * N;
#pragma omp simd
        for (int j = 0; j < N; j++) row[j] += bias[j];
    }
    return CLXP_OK;
}
