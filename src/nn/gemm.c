#include "nn/gemm.h"

#include <dnnl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

/* Rows of the reference problem the packed layout is chosen for; oneDNN's brgemm layout depends on K, N and the
 * data type, not on M, and the same packed weights serve every batch size. */
#define PACK_REF_M 256

struct nn_engine {
    dnnl_engine_t eng;
};

struct nn_packed {
    dnnl_engine_t eng; /* the model's engine (not owned) */
    dnnl_memory_desc_t md;
    void *data; /* owned, 64-byte aligned */
    size_t bytes;
    nn_precision prec;
};

static clxp_status dnnl_fail(clxp_error *err, dnnl_status_t s, const char *what, int M, int N, int K) {
    return clxp_err_set(err, s == dnnl_out_of_memory ? CLXP_ERR_NOMEM : CLXP_ERR_INTERNAL,
                        "oneDNN %s failed (status %d, M=%d N=%d K=%d)", what, (int)s, M, N, K);
}

clxp_status nn_gemm(char ta, char tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                    int ldb, float beta, float *C, int ldc, clxp_error *err) {
    if (M == 0 || N == 0) return CLXP_OK;
    dnnl_status_t s = dnnl_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    if (s != dnnl_success) return dnnl_fail(err, s, "sgemm", M, N, K);
    return CLXP_OK;
}

void nn_add_bias(float *y, int M, int N, const float *bias) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < M; i++) {
        float *row = y + (size_t)i * N;
#pragma omp simd
        for (int j = 0; j < N; j++) row[j] += bias[j];
    }
}

clxp_status nn_linear(const float *x, int M, int K, const float *W, const float *bias, int N, float *y, int accumulate,
                      clxp_error *err) {
    clxp_status st = nn_gemm('N', 'T', M, N, K, 1.0f, x, K, W, K, accumulate ? 1.0f : 0.0f, y, N, err);
    if (st != CLXP_OK || !bias) return st;
    nn_add_bias(y, M, N, bias);
    return CLXP_OK;
}

/* ---- CPU and engine --------------------------------------------------------------------------------------- */

int nn_cpu_has_bf16(void) {
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return isa == dnnl_cpu_isa_avx512_core_bf16 || isa == dnnl_cpu_isa_avx512_core_amx;
}

const char *nn_cpu_isa(void) {
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    default: return "other";
    }
}

clxp_status nn_engine_create(nn_engine **out, clxp_error *err) {
    *out = NULL;
    nn_engine *e = calloc(1, sizeof *e);
    if (!e) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    dnnl_status_t s = dnnl_engine_create(&e->eng, dnnl_cpu, 0);
    if (s != dnnl_success) {
        free(e);
        return dnnl_fail(err, s, "engine creation", 0, 0, 0);
    }
    *out = e;
    return CLXP_OK;
}

void nn_engine_free(nn_engine *e) {
    if (!e) return;
    dnnl_engine_destroy(e->eng);
    free(e);
}

/* ---- bf16 ------------------------------------------------------------------------------------------------- */

static inline uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint32_t nan = (u & 0x7fffffffu) > 0x7f800000u;
    uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16; /* round to nearest, ties to even */
    return (uint16_t)(nan ? (u >> 16) | 0x40u : r);       /* NaN stays a (quiet) NaN */
}

float nn_round_bf16(float x) {
    uint32_t u = (uint32_t)to_bf16(x) << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void convert_bf16(const float *x, size_t n, uint16_t *out) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = to_bf16(x[i]);
}

/* ---- packed matrices -------------------------------------------------------------------------------------- */

static dnnl_data_type_t dt_of(nn_precision p) { return p == NN_BF16 ? dnnl_bf16 : dnnl_f32; }

/* Run one primitive with its arguments on a fresh stream (streams are cheap on the CPU engine; one per call keeps
 * a model usable from several threads). */
static dnnl_status_t execute(dnnl_engine_t eng, dnnl_primitive_t prim, int nargs, const dnnl_exec_arg_t *args) {
    dnnl_stream_t strm;
    dnnl_status_t s = dnnl_stream_create(&strm, eng, dnnl_stream_default_flags);
    if (s != dnnl_success) return s;
    s = dnnl_primitive_execute(prim, strm, nargs, args);
    if (s == dnnl_success) s = dnnl_stream_wait(strm);
    dnnl_stream_destroy(strm);
    return s;
}

clxp_status nn_matrix_pack(nn_matrix *m, const nn_engine *e, nn_precision prec, clxp_error *err) {
    if (m->packed) return CLXP_OK;
    if (!m->f32 || m->N <= 0 || m->K <= 0) return clxp_err_set(err, CLXP_ERR_INTERNAL, "nn_matrix_pack: no weight");
    const int N = m->N, K = m->K;
    nn_packed *p = calloc(1, sizeof *p);
    if (!p) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    p->eng = e->eng;
    p->prec = prec;
    dnnl_primitive_desc_t pd = NULL, rpd = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_memory_t from = NULL, to = NULL;
    dnnl_memory_desc_t src, wany, dst, user;
    dnnl_matmul_desc_t mm;
    dnnl_status_t s;
    /* the layout the matmul kernel wants for W^T [K,N] */
    if ((s = dnnl_memory_desc_init_by_tag(&src, 2, (dnnl_dims_t){PACK_REF_M, K}, dt_of(prec), dnnl_ab)) ||
        (s = dnnl_memory_desc_init_by_tag(&wany, 2, (dnnl_dims_t){K, N}, dt_of(prec), dnnl_format_tag_any)) ||
        (s = dnnl_memory_desc_init_by_tag(&dst, 2, (dnnl_dims_t){PACK_REF_M, N}, dnnl_f32, dnnl_ab)) ||
        (s = dnnl_matmul_desc_init(&mm, &src, &wany, NULL, &dst)) ||
        (s = dnnl_primitive_desc_create(&pd, &mm, NULL, e->eng, NULL)))
        goto fail;
    p->md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    p->bytes = dnnl_memory_desc_get_size(&p->md);
    if (posix_memalign(&p->data, 64, p->bytes) != 0) {
        p->data = NULL;
        s = dnnl_out_of_memory;
        goto fail;
    }
    /* W [N,K] row-major is W^T [K,N] with strides (1, K): tag "ba" */
    if ((s = dnnl_memory_desc_init_by_tag(&user, 2, (dnnl_dims_t){K, N}, dnnl_f32, dnnl_ba)) ||
        (s = dnnl_memory_create(&from, &user, e->eng, (void *)m->f32)) ||
        (s = dnnl_memory_create(&to, &p->md, e->eng, p->data)) ||
        (s = dnnl_reorder_primitive_desc_create(&rpd, &user, e->eng, &p->md, e->eng, NULL)) ||
        (s = dnnl_primitive_create(&reorder, rpd)))
        goto fail;
    s = execute(e->eng, reorder, 2, (dnnl_exec_arg_t[]){{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}});
fail:
    if (reorder) dnnl_primitive_destroy(reorder);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (from) dnnl_memory_destroy(from);
    if (to) dnnl_memory_destroy(to);
    if (s != dnnl_success) {
        free(p->data);
        free(p);
        return dnnl_fail(err, s, prec == NN_BF16 ? "bf16 weight packing" : "fp32 weight packing", 0, N, K);
    }
    m->packed = p;
    m->f32 = NULL;
    return CLXP_OK;
}

/* The matrices of list(model) in a new array (*n of them); NULL if out of memory. */
static nn_matrix **matrices_of(nn_matrix_list list, void *model, int *n) {
    *n = list(model, NULL, 0);
    nn_matrix **mats = malloc((size_t)(*n > 0 ? *n : 1) * sizeof *mats);
    if (mats) list(model, mats, *n);
    return mats;
}

clxp_status nn_matrices_pack(nn_matrix_list list, void *model, nn_engine **eng, nn_precision prec, clxp_error *err) {
    int n = 0;
    nn_matrix **mats = matrices_of(list, model, &n);
    if (!mats) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    clxp_status st = *eng ? CLXP_OK : nn_engine_create(eng, err);
    for (int i = 0; i < n && st == CLXP_OK; i++) st = nn_matrix_pack(mats[i], *eng, prec, err);
    free(mats);
    return st;
}

void nn_matrices_release(nn_matrix_list list, void *model) {
    int n = 0;
    nn_matrix **mats = matrices_of(list, model, &n);
    for (int i = 0; mats && i < n; i++) nn_matrix_release(mats[i]);
    free(mats);
}

void nn_matrix_release(nn_matrix *m) {
    if (!m) return;
    if (m->packed) {
        free(m->packed->data);
        free(m->packed);
    }
    m->packed = NULL;
}

size_t nn_matrix_packed_bytes(const nn_matrix *m) { return m->packed ? m->packed->bytes : 0; }

static clxp_status linear_packed(const nn_matrix *W, const float *x, int M, const float *bias, float *y,
                                 int accumulate, clxp_error *err) {
    const nn_packed *p = W->packed;
    const int N = W->N, K = W->K;
    void *src_data = (void *)x, *bf = NULL;
    if (p->prec == NN_BF16) {
        if (posix_memalign(&bf, 64, (size_t)M * K * sizeof(uint16_t)) != 0)
            return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory (%d x %d activations)", M, K);
        convert_bf16(x, (size_t)M * K, bf);
        src_data = bf;
    }
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_memory_t ms = NULL, mw = NULL, mb = NULL, md = NULL;
    dnnl_memory_desc_t src, dst, bd;
    dnnl_matmul_desc_t mm;
    dnnl_status_t s;
    if ((s = dnnl_memory_desc_init_by_tag(&src, 2, (dnnl_dims_t){M, K}, dt_of(p->prec), dnnl_ab)) ||
        (s = dnnl_memory_desc_init_by_tag(&dst, 2, (dnnl_dims_t){M, N}, dnnl_f32, dnnl_ab)) ||
        (s = dnnl_memory_desc_init_by_tag(&bd, 2, (dnnl_dims_t){1, N}, dnnl_f32, dnnl_ab)) ||
        (s = dnnl_matmul_desc_init(&mm, &src, &p->md, bias ? &bd : NULL, &dst)) ||
        (s = dnnl_primitive_attr_create(&attr)))
        goto done;
    if (accumulate) {
        if ((s = dnnl_post_ops_create(&po)) || (s = dnnl_post_ops_append_sum(po, 1.0f)) ||
            (s = dnnl_primitive_attr_set_post_ops(attr, po)))
            goto done;
    }
    if ((s = dnnl_primitive_desc_create(&pd, &mm, attr, p->eng, NULL)) || (s = dnnl_primitive_create(&prim, pd)) ||
        (s = dnnl_memory_create(&ms, &src, p->eng, src_data)) ||
        (s = dnnl_memory_create(&mw, &p->md, p->eng, p->data)) ||
        (s = dnnl_memory_create(&md, &dst, p->eng, y)) ||
        (bias && (s = dnnl_memory_create(&mb, &bd, p->eng, (void *)bias))))
        goto done;
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, md}, {DNNL_ARG_BIAS, mb}};
    s = execute(p->eng, prim, bias ? 4 : 3, args);
done:
    if (prim) dnnl_primitive_destroy(prim);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (po) dnnl_post_ops_destroy(po);
    if (ms) dnnl_memory_destroy(ms);
    if (mw) dnnl_memory_destroy(mw);
    if (mb) dnnl_memory_destroy(mb);
    if (md) dnnl_memory_destroy(md);
    free(bf);
    if (s != dnnl_success) return dnnl_fail(err, s, p->prec == NN_BF16 ? "bf16 matmul" : "matmul", M, N, K);
    return CLXP_OK;
}

clxp_status nn_linear_m(const nn_matrix *W, const float *x, int M, const float *bias, float *y, int accumulate,
                        clxp_error *err) {
    if (M == 0) return CLXP_OK;
    if (W->packed) return linear_packed(W, x, M, bias, y, accumulate, err);
    return nn_linear(x, M, W->K, W->f32, bias, W->N, y, accumulate, err);
}
