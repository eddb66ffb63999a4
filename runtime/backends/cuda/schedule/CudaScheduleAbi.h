/* The C ABI between a model's generated CUDA host schedule (a shared object
 * built by lathe-compile --target=cuda and embedded in the artifact beside
 * the GPU code) and the runtime that loads it.
 *
 * The schedule is the host side of one step: which of the module's kernels
 * each launch of the plan runs, and on what grid, block and shared memory,
 * for the step's tokens. codegen/CUDA/EmitCudaSchedule.cpp lowers the
 * launches of the plan to MLIR's EmitC, one call per launch with its
 * constants (blocks, tiles, the neighbouring launches it depends on) as
 * literals, and lathe-compile builds it with the system C++ compiler, as it
 * does the CPU target's code (runtime/backends/cpu/native/CpuModelAbi.h).
 * The calls are the lathe_cuda_schedule_* functions below: plain C that
 * EmitC can express, deciding from the step's facts (LatheCudaStepFacts)
 * and handing each launch to the runtime's launcher
 * (runtime/backends/cuda/CudaExecutable.cpp), which owns the CUDA driver:
 * the kernels, the stream, graphs and programmatic dependent launch.
 *
 * Entry points of the generated object:
 *   uint32_t lathe_cuda_schedule_abi_version(void);
 *   uint64_t lathe_cuda_schedule_plan_hash(void);
 *   int32_t lathe_cuda_schedule_launch_count(void);
 *   void lathe_cuda_schedule(const LatheCudaStepFacts *, LatheCudaLauncher *);
 * Bump LATHE_CUDA_SCHEDULE_ABI_VERSION on any change here. */
#ifndef LATHE_RUNTIME_BACKENDS_CUDA_SCHEDULE_CUDASCHEDULEABI_H
#define LATHE_RUNTIME_BACKENDS_CUDA_SCHEDULE_CUDASCHEDULEABI_H

#include "runtime/backend/HostCodeExport.h"
#include "runtime/backends/cuda/kernels/CudaFrame.h"

#include <stdint.h>

#define LATHE_CUDA_SCHEDULE_ABI_VERSION 1u

#ifdef __cplusplus
extern "C" {
#endif

/* What a step's launches depend on beyond the plan: the step, the GPU and
 * the runtime's settings. */
typedef struct LatheCudaStepFacts {
  int64_t rows;            /* tokens in the step */
  int64_t logitTokens;     /* of them, those that return logits */
  int64_t queryTiles;      /* the step's query tiles (LatheCudaFrame::queryTileCount) */
  int64_t attentionSplits; /* the most splits of a token's rows (grid z) this step */
  int64_t wgmmaSplits;     /* the most splits of a wgmma launch's k */
  int32_t multiprocessors;
  int32_t wgmmaCode;       /* the loaded code is the sm_90a code with wgmma and TMA */
  /* The launches are captured in a graph that later steps of as many
   * tokens replay: grids that serve any of them. */
  int32_t graphed;
  /* Only launches first .. end - 1 run (a layer group's, or all). */
  int32_t first;
  int32_t end;
  int32_t unused;
} LatheCudaStepFacts;

/* Which of a launch's kernels runs (LatheCudaLaunch): lathe_cuda_kernel_<i>;
 * its tensor-core kernel (lathe_cuda_tiles_<i>, or an attention launch's
 * wgmma kernel); its wide tiles (lathe_cuda_wide_<i>, or the wgmma tiles'
 * lathe_cuda_wgmma_<n>). */
typedef enum LatheCudaKernel {
  LATHE_CUDA_KERNEL_STEP = 0,
  LATHE_CUDA_KERNEL_TILES = 1,
  LATHE_CUDA_KERNEL_WIDE = 2
} LatheCudaKernel;

/* One launch, as the schedule decided it. */
typedef struct LatheCudaLaunchCall {
  int32_t launch;       /* its index in the module's launch table */
  int32_t kernel;       /* LatheCudaKernel */
  uint32_t grid[3];
  uint32_t threads;
  uint32_t sharedBytes; /* dynamic shared memory */
  /* The launch's offset in the module's argument table, which the wgmma
   * kernels take as a second argument; -1: the kernel takes the frame only. */
  int32_t args;
} LatheCudaLaunchCall;

/* The runtime's side: `launch` queues one launch and returns 0, or returns
 * non-zero (the runtime keeps its error), after which `failed` is set and
 * the schedule queues nothing more. */
typedef struct LatheCudaLauncher {
  void *context;
  int (*launch)(void *context, const LatheCudaLaunchCall *call);
  int32_t failed;
} LatheCudaLauncher;

/* Hands one launch to the runtime, if the step runs it. */
static inline void lathe_cuda_schedule_issue(const LatheCudaStepFacts *s, LatheCudaLauncher *l,
                                             int32_t launch, int32_t kernel, int64_t gx,
                                             int64_t gy, int64_t gz, int32_t threads,
                                             int32_t shared, int32_t args) {
  if (l->failed || launch < s->first || launch >= s->end)
    return;
  LatheCudaLaunchCall call;
  call.launch = launch;
  call.kernel = kernel;
  call.grid[0] = (uint32_t)gx;
  call.grid[1] = (uint32_t)gy;
  call.grid[2] = (uint32_t)gz;
  call.threads = (uint32_t)threads;
  call.sharedBytes = (uint32_t)shared;
  call.args = args;
  if (l->launch(l->context, &call) != 0)
    l->failed = 1;
}

/* The step's SMs, at least one. */
static inline int64_t lathe_cuda_schedule_sms(const LatheCudaStepFacts *s) {
  return s->multiprocessors > 0 ? s->multiprocessors : 1;
}

/* A wgmma product's tiles run wgmma (not the staged tiles of the code for
 * other GPUs). */
static inline int lathe_cuda_schedule_wgmma_runs(const LatheCudaStepFacts *s, int32_t wgmma) {
  return wgmma > 0 && s->wgmmaCode;
}

/* A product launch's blocks across its weight rows in wide tiles for
 * `tokens` tokens: its 128-row blocks, or their pairs
 * (LATHE_CUDA_WGMMA_PAIRED). */
static inline int64_t lathe_cuda_schedule_wide_grid(const LatheCudaStepFacts *s, int64_t tokens,
                                                    int32_t wideBlocks, int32_t wgmma,
                                                    int32_t pairBlocks) {
  const int64_t tokenBlocks = (tokens + 127) / 128;
  return lathe_cuda_schedule_wgmma_runs(s, wgmma) &&
                 LATHE_CUDA_WGMMA_PAIRED((int64_t)wideBlocks, (int64_t)pairBlocks, tokenBlocks,
                                         lathe_cuda_schedule_sms(s))
             ? pairBlocks
             : wideBlocks;
}

/* The tokens of a block of a product launch's tiles for `tokens` tokens:
 * 16 (narrow), 64 (wide) or LATHE_CUDA_WGMMA_TOKENS (wgmma) for a grid of
 * `wideGrid` blocks across the weight rows. */
static inline int64_t lathe_cuda_schedule_block_tokens(int64_t tokens, int32_t wideMinTokens,
                                                       int32_t wgmma, int64_t wideGrid) {
  if (!LATHE_CUDA_USE_WIDE_TILES(wideMinTokens, tokens))
    return LATHE_CUDA_TILE_TOKENS;
  return wgmma > 0 ? LATHE_CUDA_WGMMA_TOKENS(wideGrid, tokens) : LATHE_CUDA_WIDE_TOKENS;
}

/* LATHE_CUDA_GRID_PER_TOKEN (`severalTokens` 0) and _PER_TOKENS (1, left
 * out of one-token steps): grid x the tokens, y `blocks`. */
static inline void lathe_cuda_schedule_per_token(const LatheCudaStepFacts *s,
                                                 LatheCudaLauncher *l, int32_t launch,
                                                 int32_t blocks, int32_t shared,
                                                 int32_t severalTokens) {
  if (severalTokens && s->rows == 1)
    return;
  lathe_cuda_schedule_issue(s, l, launch, LATHE_CUDA_KERNEL_STEP, s->rows, blocks, 1,
                            LATHE_CUDA_THREADS, shared, -1);
}

/* LATHE_CUDA_GRID_PER_HEAD: attention. Its query tiles on the tensor cores
 * where the step's tiles are long enough (grid x the tiles; a graph's a
 * block per token, which covers any tiling: the rest return), else a block
 * per token and head group, the visible rows split on z. */
static inline void lathe_cuda_schedule_attention(const LatheCudaStepFacts *s,
                                                 LatheCudaLauncher *l, int32_t launch,
                                                 int32_t blocks, int32_t shared,
                                                 int32_t queryTile, int32_t wgmma,
                                                 int32_t wgmmaArgs) {
  if (LATHE_CUDA_USE_FLASH(queryTile, s->queryTiles, s->rows)) {
    lathe_cuda_schedule_issue(s, l, launch, LATHE_CUDA_KERNEL_TILES,
                              s->graphed ? s->rows : s->queryTiles, blocks, 1,
                              LATHE_CUDA_THREADS, shared, wgmma > 0 ? wgmmaArgs : -1);
    return;
  }
  int64_t splits = LATHE_CUDA_ATTENTION_SPLITS(s->rows, (int64_t)blocks);
  if (splits > s->attentionSplits)
    splits = s->attentionSplits;
  lathe_cuda_schedule_issue(s, l, launch, LATHE_CUDA_KERNEL_STEP, s->rows, blocks, splits,
                            LATHE_CUDA_THREADS, shared, -1);
}

/* LATHE_CUDA_GRID_PRODUCT: `blocks` blocks share the launch's products out
 * on the CUDA cores; from LATHE_CUDA_TILE_MIN_TOKENS tokens (the step's,
 * or with `gather` its logits' tokens) on, its tensor-core tiles, weight
 * rows on x and tokens on y: narrow, or wide from wideMinTokens on, whose
 * wgmma blocks of 64 tokens too few to fill the GPU split k on z (no more
 * splits than the product's `kStages` stages of k). */
static inline void lathe_cuda_schedule_product(const LatheCudaStepFacts *s, LatheCudaLauncher *l,
                                               int32_t launch, int32_t blocks, int32_t shared,
                                               int32_t gather, int32_t tileBlocks,
                                               int32_t wideBlocks, int32_t wideMinTokens,
                                               int32_t wgmma, int32_t wgmmaArgs,
                                               int32_t pairBlocks, int32_t kStages) {
  const int64_t tokens = gather ? s->logitTokens : s->rows;
  if (!LATHE_CUDA_USE_TILES(tileBlocks, tokens)) {
    lathe_cuda_schedule_issue(s, l, launch, LATHE_CUDA_KERNEL_STEP, blocks, 1, 1,
                              LATHE_CUDA_THREADS, shared, -1);
    return;
  }
  const int wide = LATHE_CUDA_USE_WIDE_TILES(wideMinTokens, tokens);
  const int64_t gx =
      wide ? lathe_cuda_schedule_wide_grid(s, tokens, wideBlocks, wgmma, pairBlocks) : tileBlocks;
  const int64_t unit = lathe_cuda_schedule_block_tokens(tokens, wideMinTokens, wgmma, gx);
  const int64_t gy = LATHE_CUDA_TILE_ROUNDED(tokens, unit) / unit;
  int64_t gz = 1;
  int32_t threads = LATHE_CUDA_THREADS, args = -1;
  if (wide && wgmma > 0) {
    args = wgmmaArgs;
    if (lathe_cuda_schedule_wgmma_runs(s, wgmma)) { /* else its staged tiles */
      threads = LATHE_CUDA_WGMMA_THREADS;
      if (unit == 64) {
        gz = LATHE_CUDA_WGMMA_SPLITS(gx * gy, lathe_cuda_schedule_sms(s));
        if (gz > s->wgmmaSplits)
          gz = s->wgmmaSplits;
        if (gz > kStages)
          gz = kStages;
      }
    }
  }
  lathe_cuda_schedule_issue(
      s, l, launch, wide ? LATHE_CUDA_KERNEL_WIDE : LATHE_CUDA_KERNEL_TILES, gx, gy, gz, threads,
      !wide ? LATHE_CUDA_TILE_SHARED : wgmma > 0 ? LATHE_CUDA_WGMMA_SHARED_FOR(s->wgmmaCode) : 0,
      args);
}

/* LATHE_CUDA_GRID_SPLIT: the token rows of the next launch's tensor-core
 * products, split, as many as its tiles read (the tokens rounded up to its
 * blocks'); run only where that launch takes its tiles. With
 * `narrowWritten` (the narrow tiles of the launch before write those rows)
 * only where either launch takes its wide tiles, and with 2 (their wgmma
 * tiles write them too) not where the launch before runs wgmma. `before*`
 * and `after*` are the two launches' LatheCudaLaunch fields (zeros where
 * there is none). */
static inline void lathe_cuda_schedule_split(
    const LatheCudaStepFacts *s, LatheCudaLauncher *l, int32_t launch, int32_t blocks,
    int32_t shared, int32_t gather, int32_t narrowWritten, int32_t beforeWideMinTokens,
    int32_t beforeWgmma, int32_t afterWideMinTokens, int32_t afterWgmma,
    int32_t afterWideBlocks, int32_t afterPairBlocks) {
  const int64_t tokens = gather ? s->logitTokens : s->rows;
  if (!LATHE_CUDA_USE_TILES(1, tokens))
    return;
  const int beforeWide = LATHE_CUDA_USE_WIDE_TILES(beforeWideMinTokens, tokens);
  const int afterWide = LATHE_CUDA_USE_WIDE_TILES(afterWideMinTokens, tokens);
  if (narrowWritten != 0 && !beforeWide && !afterWide)
    return;
  if (narrowWritten == 2 && beforeWide && lathe_cuda_schedule_wgmma_runs(s, beforeWgmma))
    return;
  const int64_t afterGrid =
      lathe_cuda_schedule_wide_grid(s, tokens, afterWideBlocks, afterWgmma, afterPairBlocks);
  const int64_t unit =
      lathe_cuda_schedule_block_tokens(tokens, afterWideMinTokens, afterWgmma, afterGrid);
  lathe_cuda_schedule_issue(s, l, launch, LATHE_CUDA_KERNEL_STEP,
                            LATHE_CUDA_TILE_ROUNDED(tokens, unit), blocks, 1,
                            LATHE_CUDA_THREADS, shared, -1);
}

#ifdef __cplusplus
}
#endif

#endif
