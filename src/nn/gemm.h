/* Matrix products through oneDNN's sgemm (it detects AVX-512/AMX CPUs correctly, unlike Debian 12's
 * OpenBLAS 0.3.21, and shares the OpenMP thread pool with clxp's own kernels). Row-major. */
#ifndef CLXP_NN_GEMM_H
#define CLXP_NN_GEMM_H

#include "clxp.h"

/* C[M,N] = alpha * op(A) op(B) + beta * C, op = transpose if ta/tb is 'T'. */
clxp_status nn_gemm(char ta, char tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                    int ldb, float beta, float *C, int ldc, clxp_error *err);

/* Linear layer: y[M,N] = x[M,K] W[N,K]^T + bias (bias may be NULL). With accumulate, y += instead (the residual
 * connection folded into the product). */
clxp_status nn_linear(const float *x, int M, int K, const float *W, const float *bias, int N, float *y, int accumulate,
                      clxp_error *err);

#endif
