#!/usr/bin/env node
// The ONNX Runtime row of clip_bench: runs the towers bench/onnx_export.py exported (vision.onnx, text.onnx: the
// same PyTorch modules as torch_clip.py on the same random weights) with onnxruntime-node's CPU execution provider,
// timed the way torch_clip.py times PyTorch (median of repeated calls after two warm-up calls, same thread count).
//
//   node bench/ort/ort_clip.js MODEL_DIR --threads N [--batches 1,16] [--reps 5] [--min-time 1.0] [--text]
//
// If MODEL_DIR holds check_pixels.f32 and check_embeds.f32 (one image and clxp's fp32 embedding of it, written by
// clip_bench), the image output is compared with clxp's; check_ids.i32 and check_text_embeds.f32 likewise for the
// text tower. On stdout, `version X` (onnxruntime-node's), then one line per measurement:
//     image BATCH fp32 ITEMS_PER_S MS_PER_BATCH [maxdiff X]
//     text BATCH TOKENS fp32 ITEMS_PER_S MS_PER_BATCH [maxdiff X]      (with --text: batch 16, 10 and 77 tokens)
// maxdiff: max |ort - clxp| / max |clxp|. Install: npm ci --ignore-scripts --prefix bench/ort (the CPU binaries are
// in the npm package; its install script only fetches CUDA ones). For benchmarking only: nothing here is used by clxp.
'use strict';

const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

function parseArgs(argv) {
  const a = {threads: 0, batches: [1, 16], reps: 5, minTime: 1.0, text: false, model: null};
  for (let i = 2; i < argv.length; i++) {
    const s = argv[i];
    if (s === '--threads') a.threads = parseInt(argv[++i], 10);
    else if (s === '--batches') a.batches = argv[++i].split(',').map((x) => parseInt(x, 10));
    else if (s === '--reps') a.reps = parseInt(argv[++i], 10);
    else if (s === '--min-time') a.minTime = parseFloat(argv[++i]);
    else if (s === '--text') a.text = true;
    else if (!a.model && !s.startsWith('--')) a.model = s;
    else throw new Error(`ort_clip.js: unknown argument ${s}`);
  }
  if (!a.model || !(a.threads > 0)) throw new Error('usage: ort_clip.js MODEL_DIR --threads N [--batches 1,16] ' +
                                                   '[--reps N] [--min-time SEC] [--text]');
  return a;
}

// xorshift64* + Box-Muller: N(0, 1) inputs, seeded
let rngState = 0x9e3779b97f4a7c15n;
function rngNext() {
  rngState ^= rngState >> 12n;
  rngState ^= (rngState << 25n) & 0xffffffffffffffffn;
  rngState ^= rngState >> 27n;
  return Number(((rngState * 0x2545f4914f6cdd1dn) & 0xffffffffffffffffn) >> 11n) / 9007199254740992;
}
function randn(n) {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(rngNext(), 1e-300), v = rngNext(), r = Math.sqrt(-2 * Math.log(u));
    x[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) x[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return x;
}

async function timed(fn, reps, minTime) {
  await fn();
  await fn();
  const t = [];
  let sum = 0;
  while (t.length < reps || (sum < minTime && t.length < 200)) {
    const t0 = process.hrtime.bigint();
    await fn();
    const dt = Number(process.hrtime.bigint() - t0) * 1e-9;
    t.push(dt);
    sum += dt;
  }
  t.sort((x, y) => x - y);
  const h = t.length >> 1;
  return t.length % 2 ? t[h] : 0.5 * (t[h - 1] + t[h]);
}

function readF32(file) {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer, b.byteOffset, b.length >> 2);
}

function maxdiff(got, want) {
  let d = 0, m = 0;
  for (let i = 0; i < want.length; i++) {
    d = Math.max(d, Math.abs(got[i] - want[i]));
    m = Math.max(m, Math.abs(want[i]));
  }
  return d / Math.max(m, 1e-30);
}

const fmt = (x) => x.toPrecision(3).replace(/\.?0+(e|$)/, '$1');

async function main() {
  const a = parseArgs(process.argv);
  const cfg = JSON.parse(fs.readFileSync(path.join(a.model, 'config.json'), 'utf8'));
  const opts = {
    executionProviders: ['cpu'],
    intraOpNumThreads: a.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
  console.log(`version ${ort.env.versions.node || ort.env.versions.common}`);
  const s = cfg.vision_config.image_size;
  const vis = await ort.InferenceSession.create(path.join(a.model, 'vision.onnx'), opts);
  let diff = null;
  const checkPx = path.join(a.model, 'check_pixels.f32');
  if (fs.existsSync(checkPx)) {
    const px = new ort.Tensor('float32', readF32(checkPx), [1, 3, s, s]);
    const out = await vis.run({pixel_values: px});
    diff = maxdiff(out.image_embeds.data, readF32(path.join(a.model, 'check_embeds.f32')));
  }
  for (const b of a.batches) {
    const px = new ort.Tensor('float32', randn(b * 3 * s * s), [b, 3, s, s]);
    const t = await timed(() => vis.run({pixel_values: px}), a.reps, a.minTime);
    const extra = diff === null ? '' : ` maxdiff ${fmt(diff)}`;
    console.log(`image ${b} fp32 ${(b / t).toFixed(3)} ${(1000 * t).toFixed(2)}${extra}`);
  }
  await vis.release();
  if (!a.text) return;
  const txt = await ort.InferenceSession.create(path.join(a.model, 'text.onnx'), opts);
  const tc = cfg.text_config, vocab = tc.vocab_size, ctx = tc.max_position_embeddings;
  const bos = 49406 < vocab ? 49406 : vocab - 2, eos = 49407 < vocab ? 49407 : vocab - 1;
  diff = null;
  const checkIds = path.join(a.model, 'check_ids.i32');
  if (fs.existsSync(checkIds)) {
    const b = fs.readFileSync(checkIds);
    const ids = BigInt64Array.from(new Int32Array(b.buffer, b.byteOffset, b.length >> 2), (x) => BigInt(x));
    const out = await txt.run({input_ids: new ort.Tensor('int64', ids, [1, ids.length])});
    diff = maxdiff(out.text_embeds.data, readF32(path.join(a.model, 'check_text_embeds.f32')));
  }
  const B = 16; // clip_bench's text rows: 16 prompts of 10 and of 77 tokens (BOS, random ids, EOS)
  for (const len of [Math.min(10, ctx), ctx]) {
    const ids = new BigInt64Array(B * len);
    for (let i = 0; i < B; i++)
      for (let t = 0; t < len; t++)
        ids[i * len + t] = BigInt(t === 0 ? bos : t < len - 1 ? 256 + Math.floor(rngNext() * (bos - 256)) : eos);
    const input = new ort.Tensor('int64', ids, [B, len]);
    const t = await timed(() => txt.run({input_ids: input}), a.reps, a.minTime);
    const extra = diff === null ? '' : ` maxdiff ${fmt(diff)}`;
    console.log(`text ${B} ${len} fp32 ${(B / t).toFixed(3)} ${(1000 * t).toFixed(2)}${extra}`);
  }
  await txt.release();
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
