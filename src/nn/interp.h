/* The two PyTorch 1.13 (CPU, float32) interpolations CLAP uses, along the row axis of a row-major [rows, cols]
 * matrix, the column axis being kept (output cols = input cols).
 *
 * Keeping a size is exact in PyTorch too: for bilinear align_corners=False the source index of column j is
 * 1.0 * (j + 0.5) - 0.5 = j (weights 1, 0) and for bicubic align_corners=True it is j * (n-1)/(n-1) = j with
 * weights cubic(1), cubic(0), cubic(1), cubic(2) = 0, 1, 0, 0 exactly, so the 2-D kernels (UpSampleKernel.cpp,
 * sums of products in float) reduce to the 1-D ones below.
 *
 * Rounding: the reference (Debian's torch 1.13.1, the build the transformers goldens come from) runs AVX2 kernels
 * that the compiler built with fused multiply-adds. The formulas in interp.c put fmaf() exactly where that build
 * has them; they reproduce torch bit for bit on the CLAP goldens, on random data and on impulse responses of
 * every output row (1001 -> 1024 bicubic, 1401 -> 1001 bilinear). Without them the bicubic source fraction alone
 * is off by up to 6e-5 (half an ulp of ~1000), i.e. ~1e-4 on mel2img. Another PyTorch build may differ from
 * these at the ulp level.
 */
#ifndef CLXP_NN_INTERP_H
#define CLXP_NN_INTERP_H

/* F.interpolate(mode="bilinear", align_corners=False) from in_rows to out_rows rows (used by
 * ClapFeatureExtractor._random_mel_fusion to shrink the whole-clip mel). */
void nn_interp_rows_bilinear(const float *in, int in_rows, int cols, float *out, int out_rows);

/* F.interpolate(mode="bicubic", align_corners=True) from in_rows to out_rows rows: Keys cubic with A = -0.75,
 * source indices clamped to [0, in_rows - 1] (upsample_bicubic2d; used by ClapAudioEncoder.reshape_mel2img). */
void nn_interp_rows_bicubic_ac(const float *in, int in_rows, int cols, float *out, int out_rows);

#endif
