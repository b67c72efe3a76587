/* Matrix products through oneDNN (Debian's libdnnl): it detects AVX-512/AMX CPUs correctly, unlike Debian 12's
 * OpenBLAS 0.3.21, and shares the OpenMP thread pool with clxp's own kernels. Row-major throughout.
 *
 * Linear layers hold their weight as an nn_matrix: plain fp32 as loaded (multiplied with dnnl_sgemm), or packed
 * once by nn_matrix_pack into the blocked layout of oneDNN's matmul kernels (brgemm), in fp32 or bf16. Packed fp32
 * gives the same fp32 arithmetic at every batch size (sgemm falls to a third of its speed for a 50-row batch);
 * bf16 rounds weights and activations to bfloat16 and accumulates in fp32 (bias and residual sum in fp32). */
#ifndef CLXP_NN_GEMM_H
#define CLXP_NN_GEMM_H

#include "clxp.h"

/* C[M,N] = alpha * op(A) op(B) + beta * C, op = transpose if ta/tb is 'T'. fp32 (dnnl_sgemm). */
clxp_status nn_gemm(char ta, char tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                    int ldb, float beta, float *C, int ldc, clxp_error *err);

/* Linear layer with a plain fp32 weight: y[M,N] = x[M,K] W[N,K]^T + bias (bias may be NULL). With accumulate,
 * y += instead (the residual connection folded into the product). */
clxp_status nn_linear(const float *x, int M, int K, const float *W, const float *bias, int N, float *y, int accumulate,
                      clxp_error *err);

/* y[i, :] += bias for each of M rows of N values. */
void nn_add_bias(float *y, int M, int N, const float *bias);

typedef enum nn_precision { NN_FP32 = 0, NN_BF16 = 1 } nn_precision;

/* Whether this CPU runs oneDNN's bf16 kernels natively (AVX512-BF16 or AMX), and the instruction set oneDNN
 * uses, e.g. "avx512_core_bf16". */
int nn_cpu_has_bf16(void);
const char *nn_cpu_isa(void);

/* The oneDNN CPU engine the packed matrices of one model are made for (thread-safe, owned by the model). */
typedef struct nn_engine nn_engine;
clxp_status nn_engine_create(nn_engine **out, clxp_error *err);
void nn_engine_free(nn_engine *e);

/* The weight W[N,K] of a linear layer. */
typedef struct nn_packed nn_packed;
typedef struct nn_matrix {
    int N, K;
    const float *f32;  /* plain row-major fp32 (not owned), or NULL once packed */
    nn_packed *packed; /* owned by the matrix: release with nn_matrix_release */
} nn_matrix;

static inline nn_matrix nn_matrix_plain(const float *w, int N, int K) { return (nn_matrix){N, K, w, NULL}; }

/* Pack m's fp32 weight in the given precision (m->f32 is then set to NULL: the caller may drop the fp32 copy). */
clxp_status nn_matrix_pack(nn_matrix *m, const nn_engine *e, nn_precision prec, clxp_error *err);
void nn_matrix_release(nn_matrix *m);
/* A model's list of matrices: stores pointers to them in out (room for cap; more are counted, not stored) and
 * returns how many there are. */
typedef int (*nn_matrix_list)(void *model, nn_matrix **out, int cap);
/* Create *eng (when NULL) and pack every matrix of list(model) in prec. */
clxp_status nn_matrices_pack(nn_matrix_list list, void *model, nn_engine **eng, nn_precision prec, clxp_error *err);
/* Release every matrix of list(model) (when the list cannot be allocated, nothing is released). */
void nn_matrices_release(nn_matrix_list list, void *model);
/* Bytes held by the packed form (0 if plain). */
size_t nn_matrix_packed_bytes(const nn_matrix *m);

/* y[M,N] = x[M,K] W^T + bias (NULL: none), or y += that with accumulate. */
clxp_status nn_linear_m(const nn_matrix *W, const float *x, int M, const float *bias, float *y, int accumulate,
                        clxp_error *err);

/* x rounded to bfloat16 and back (round to nearest even), the rounding the bf16 path applies; for tests. */
float nn_round_bf16(float x);

#endif
