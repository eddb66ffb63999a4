/* What every kernel of a model's generated CUDA code receives: the step in
 * progress (its tokens, positions, cache rows and visibility) and where the
 * executable keeps the activation buffers, the weights and the KV cache on
 * the device. One definition, included by the runtime's CUDA executable
 * (runtime/backends/cuda/CudaExecutable.cpp) and by the generated code
 * (codegen/CUDA/EmitCudaModel.cpp embeds it), so both agree on the layout;
 * LATHE_CUDA_ABI_VERSION changes whenever it or a launch shape below does.
 * Plain C with fixed-size fields: host and device compilers lay it out alike.
 *
 * Every kernel takes one argument, a pointer to the frame in device memory:
 * the executable writes the frame before each step, so that a step's
 * launches, captured once in a CUDA graph, replay unchanged for the next.
 * Launch shapes: the grid of each launch follows its entry in the launch
 * table below, as the generated host schedule decides it for a step
 * (runtime/backends/cuda/schedule/CudaScheduleAbi.h); every block has
 * LATHE_CUDA_THREADS threads, the block size the kernels are written for,
 * except the wgmma tiles' (LATHE_CUDA_WGMMA_THREADS). */
#ifndef LATHE_RUNTIME_BACKENDS_CUDA_KERNELS_CUDAFRAME_H
#define LATHE_RUNTIME_BACKENDS_CUDA_KERNELS_CUDAFRAME_H

#include <stdint.h>

#define LATHE_CUDA_ABI_VERSION 23u

/* Threads per block of every kernel (8 warps). */
#define LATHE_CUDA_THREADS 256
/* Output rows of a product per block: one per warp. */
#define LATHE_CUDA_ROWS_PER_BLOCK (LATHE_CUDA_THREADS / 32)
/* Token rows of `width` floats a product that normalizes its own input
 * holds in shared memory at once: 48 KiB, at most 4; 0 when one row does not
 * fit in 12 KiB floats (the norm then runs as a kernel of its own). */
#define LATHE_CUDA_NORM_TOKENS(width) \
  ((width) > 12288 ? 0 : (12288 / (width) < 4 ? 12288 / (width) : 4))

/* The widest input a product with int8 activations takes: a token's row
 * normalized (K floats) and its int8 codes (2 bytes a value) fit 48 KiB of
 * shared memory (CudaProductInputs.cuh). lathe-compile keeps wider
 * products in float. */
#define LATHE_CUDA_INT8_MAX_WIDTH 8192
/* The widest input a product with bf16 activations takes: a token's row,
 * rounded, fits 48 KiB of shared memory as floats (as a fused norm's does).
 * lathe-compile keeps wider products in float. */
#define LATHE_CUDA_BF16_MAX_WIDTH 12288

/* Products of steps of at least LATHE_CUDA_TILE_MIN_TOKENS tokens run on the
 * tensor cores (CudaTiledProducts.cuh): a block per LATHE_CUDA_TILE_ROWS
 * weight rows by LATHE_CUDA_TILE_TOKENS tokens. */
#define LATHE_CUDA_TILE_ROWS 16
#define LATHE_CUDA_TILE_TOKENS 16
#define LATHE_CUDA_TILE_MIN_TOKENS 5
/* From this many tokens on, the tiles take 128 weight rows by 64 tokens a
 * block (8 warps of 32 rows by 32 tokens; lathe_cuda_wide_<i>) instead of
 * 16 by 16 (8 warps splitting K): fewer rereads of weights and token rows
 * for long prompts, once there are tokens enough for such blocks to fill
 * the GPU (the Llama-3.2-1B shape's q/k/v has 24 x tokens / 64 of them).
 * The step's tokens are then rounded up to 64, not 16, for the split token
 * rows (LATHE_CUDA_TILE_ROUNDED). */
#define LATHE_CUDA_WIDE_MIN_TOKENS 512
#define LATHE_CUDA_WIDE_ROWS 128
#define LATHE_CUDA_WIDE_TOKENS 64
/* The staged wide tiles (CudaStagedTiles.cuh: bf16 weights with bf16
 * activations) keep the GPU busy with fewer blocks: a launch of them only
 * takes its wide tiles from LATHE_CUDA_STAGED_MIN_TOKENS tokens on
 * (LatheCudaLaunch::wideMinTokens), a launch whose products all take the
 * wgmma tiles (CudaWgmmaTiles.cuh) from LATHE_CUDA_WGMMA_MIN_TOKENS on.
 * Past 16 tokens the narrow tiles (16 tokens a block) read every weight
 * row twice or more. H200, Llama-3.2-1B shape, bf16, wgmma with split k
 * and residuals read ahead against the narrow tiles (2026-12-04, two
 * rounds): 16 tokens a step 10.0-10.1k against 11.8-11.9k tokens/s, 24
 * tokens 13.7-13.9k against 10.8k, 64 tokens 30.7k against 16.1k. */
#define LATHE_CUDA_STAGED_MIN_TOKENS 128
#define LATHE_CUDA_WGMMA_MIN_TOKENS 17
/* The wgmma tiles (CudaWgmmaTiles.cuh: bf16 weights and activations of
 * whole 64-value stages, on sm_90a) take 128 tokens a block where that
 * leaves blocks enough to fill most of the GPU (96 of an H200's 132 SMs),
 * else 64: the tokens of a block of a launch of `wideBlocks` blocks across
 * its weight rows, for `tokens` tokens. Host and kernel both decide by it.
 * Their dynamic shared memory: stages of 192 KiB aligned to 1 KiB where
 * wgmma runs (compute capability 9.0, the sm_90a code), else the mma.sync
 * staged tiles' 48 KiB, aligned alike. */
#define LATHE_CUDA_WGMMA_TOKENS(wideBlocks, tokens) \
  ((wideBlocks) * (((tokens) + 127) / 128) >= 96 ? 128 : 64)
#define LATHE_CUDA_WGMMA_SHARED (193 * 1024)
/* Launches of 64-token wgmma blocks too few to fill the GPU (a step of a
 * few dozen tokens: decoding sequences, a tree of speculated tokens, a
 * short prompt) split their k into the grid's z (one block an SM, as their
 * shared memory allows): each block sums a run of the stages, and the last
 * of a tile's blocks to finish adds the others' partial sums in split
 * order and stores (CudaWgmmaTiles.cuh's wgmmaSplitSums: deterministic,
 * whatever order the blocks end in). As many splits as keep the blocks to
 * one wave of `sms`, at most LATHE_CUDA_WGMMA_MAX_SPLITS, none where the
 * launch has more than half a wave; x y z of the grid at most
 * LATHE_CUDA_WGMMA_SPLIT_SLOTS, the partial sums' room in the module
 * (so at least two splits a block where they split at all), and no more
 * than the product's stages of k (the host schedule's clamp). Up to 8 splits
 * gave the same steps as 2 or 4 (H100, Llama-3.2-1B shape, bf16: tree
 * steps of 21, 32 and 64 tokens and decode of 32 and 64 sequences within
 * 1-3%, 2026-12-05): the blocks are not what those steps wait on. */
#define LATHE_CUDA_WGMMA_MAX_SPLITS 4
#define LATHE_CUDA_WGMMA_SPLIT_SLOTS 160
#define LATHE_CUDA_WGMMA_SPLIT_ROOM(sms) \
  ((sms) < LATHE_CUDA_WGMMA_SPLIT_SLOTS ? (sms) : LATHE_CUDA_WGMMA_SPLIT_SLOTS)
#define LATHE_CUDA_WGMMA_SPLITS(blocks, sms)                                        \
  (2 * (blocks) > LATHE_CUDA_WGMMA_SPLIT_ROOM(sms) ? 1                             \
   : LATHE_CUDA_WGMMA_SPLIT_ROOM(sms) / (blocks) < LATHE_CUDA_WGMMA_MAX_SPLITS      \
       ? LATHE_CUDA_WGMMA_SPLIT_ROOM(sms) / (blocks)                                \
       : LATHE_CUDA_WGMMA_MAX_SPLITS)
/* Output rows of a wgmma block: rows n .. n + 127 of a weight, or of both
 * gate and up (their product 256 rows wide); for launches without gate and
 * up, blocks of two such tiles, 256 rows (LatheCudaLaunch::wgmmaPairBlocks),
 * where a step's blocks of 128 rows would take at least twice as many waves
 * of `sms` blocks and the pairs are blocks enough for 128 tokens each
 * (LATHE_CUDA_WGMMA_TOKENS): fewer reads of each token row, for as many
 * waves' work.
 * H200, the Llama-3.2-1B shape's 2048-token down projection 100 -> 89 us
 * with pairs, its q/k/v 44 -> 52 (more waves), 512-token products all
 * slower (scripts/cuda-wgmma-check.cu, 2026-12-04). */
#define LATHE_CUDA_WGMMA_ROWS(gated) 128
#define LATHE_CUDA_WGMMA_PAIRED(blocks, pairBlocks, tokenBlocks, sms)           \
  ((pairBlocks) > 0 && (pairBlocks) * (tokenBlocks) >= 96 &&                  \
   2 * (((pairBlocks) * (tokenBlocks) + (sms) - 1) / (sms)) <=                 \
       ((blocks) * (tokenBlocks) + (sms) - 1) / (sms))
/* Threads of a wgmma tiles' block: two warpgroups multiply, a third loads
 * their stages (the one kind of block not of LATHE_CUDA_THREADS). */
#define LATHE_CUDA_WGMMA_THREADS 384
/* The weights the wgmma tiles load by TMA (lathe_cuda_tma_weights): each a
 * 2-D tensor map the runtime encodes (cuTensorMapEncodeTiled: bf16, k
 * inner, `rows` rows `rowBytes` apart, boxes of 64 values by 128 rows in
 * the 128-byte swizzle) into the frame's weightMaps at the tensor's index,
 * LATHE_CUDA_TENSOR_MAP_BYTES each. */
typedef struct LatheCudaTmaWeight {
  int32_t tensor;
  int32_t k;
  int32_t rows;
  int32_t rowBytes;
} LatheCudaTmaWeight;
#define LATHE_CUDA_TENSOR_MAP_BYTES 128
#define LATHE_CUDA_TMA_BOX_K 64
#define LATHE_CUDA_TMA_BOX_ROWS 128
/* The token rows the wgmma tiles load by TMA (lathe_cuda_tma_tokens): for
 * a wgmma launch, the split launch before it (splitTokens' RowsFrom)
 * writes its bf16 rows row-major, K values a row, at f.tokenParts (or
 * f.nextParts: next), and the runtime encodes a 2-D tensor map of them
 * (rows of 2 K bytes, as many as half the parts' room holds, boxes of 64
 * values by LATHE_CUDA_TMA_BOX_TOKENS rows in the 128-byte swizzle) into
 * the frame's tokenMaps, at the entry's index. */
typedef struct LatheCudaTmaTokens {
  int32_t k;
  int32_t next;
} LatheCudaTmaTokens;
#define LATHE_CUDA_TMA_BOX_TOKENS 64
#define LATHE_CUDA_WGMMA_FALLBACK_SHARED (49 * 1024)
#define LATHE_CUDA_WGMMA_SHARED_FOR(wgmmaCode) \
  ((wgmmaCode) ? LATHE_CUDA_WGMMA_SHARED : LATHE_CUDA_WGMMA_FALLBACK_SHARED)
/* Tokens of the largest block of any tiles: the split token rows' room. */
#define LATHE_CUDA_MAX_BLOCK_TOKENS 128
/* A step's tokens rounded up to whole blocks of `unit` tokens, the tiles'
 * block (16 for the narrow tiles, LATHE_CUDA_WIDE_TOKENS for the wide,
 * LATHE_CUDA_WGMMA_TOKENS for the wgmma ones): the split token rows, zeros
 * after the last (where attention writes them instead, CudaAttention.cuh's
 * OutputRows, whatever was there: the tiles store no sums of those). */
#define LATHE_CUDA_TILE_ROUNDED(tokens, unit) (((tokens) + (unit) - 1) / (unit) * (unit))
/* Dynamic shared memory of a tile block: its warps' partial sums. */
#define LATHE_CUDA_TILE_SHARED 16384

typedef struct LatheCudaFrame {
  float *const *buffers;          /* activation buffers, by plan index */
  const uint8_t *const *weights;  /* tensor bytes, by artifact index */
  const int32_t *tokens;          /* [rows] */
  const int32_t *positions;       /* [rows] */
  const int32_t *storeRows;       /* [rows]: cache row of each token's key/value */
  /* [rows][4]: token t sees the rows visibleRows[at + p] for p < prefix,
   * then visibleRows[extrasAt + p - prefix] for p < prefix + extras
   * (backend::VisibleRows); tokens of one sequence share its row list. */
  const int32_t *visible;
  const int32_t *visibleRows;     /* the step's row lists and extras */
  const int32_t *logitTokens;     /* [logitCount]: batch indices that return logits */
  uint8_t *kv;                    /* the KV cache buffer (kv::KVLayout) */
  /* The input of the next tensor-core product, split into bf16 parts in
   * the order of the mma's B fragments (CudaTiledProducts.cuh's
   * splitTokens): room for the step's tokens, rounded up
   * (LATHE_CUDA_TILE_ROUNDED to LATHE_CUDA_MAX_BLOCK_TOKENS), times the
   * widest buffer, 6 bytes a value. */
  uint32_t *tokenParts;
  /* As much room again: where a launch whose tiles write the next one's
   * token rows at tokenParts as they finish (gate and up's for the down
   * projection) reads its own, split there. */
  uint32_t *nextParts;
  /* The wgmma tiles' weight tensor maps, LATHE_CUDA_TENSOR_MAP_BYTES a
   * tensor by artifact index (LatheCudaTmaWeight); null where wgmma does
   * not run. */
  const uint8_t *weightMaps;
  /* Their token rows' tensor maps (LatheCudaTmaTokens), as many bytes a
   * map, by the module's index; kept with the parts they map. */
  const uint8_t *tokenMaps;
  /* [queryTileCount][3]: the query tiles of the tensor-core attention
   * (CudaFlashAttention.cuh), each {first token, tokens, the token that
   * sees the most rows}: runs of up to the launch's queryTile consecutive
   * tokens that share their sequence's row list and see no extras (a
   * token with extras is a tile of its own). */
  const int32_t *queryTiles;
  int64_t kvRows;                 /* rows of each layer's key (or value) array */
  int32_t rows;                   /* tokens in the step */
  int32_t logitCount;
  int32_t queryTileCount;
  int32_t unused;
} LatheCudaFrame;

/* How a step kernel spreads over blocks. */
typedef enum LatheCudaGrid {
  LATHE_CUDA_GRID_PER_TOKEN = 0,   /* `blocks` blocks per token: grid x tokens, y blocks */
  LATHE_CUDA_GRID_PER_HEAD = 1,    /* attention: one block per token and group of
                                      heads, grid x tokens, y `blocks` groups, z the
                                      splits of the visible rows
                                      (LATHE_CUDA_ATTENTION_SPLITS) */
  LATHE_CUDA_GRID_PRODUCT = 2,     /* `blocks` blocks: the products of the launch share
                                      them out, ceil(N / rows per block) each */
  LATHE_CUDA_GRID_SPLIT = 3,       /* `blocks` blocks per token, the tokens rounded up
                                      to 16 (with `gather`, the logits' tokens): the token
                                      rows of the next launch's tensor-core products,
                                      split; run only when that launch takes its tiles
                                      (with `narrowWritten`, its wide ones, or the
                                      launch before its wide ones); row-major where
                                      that launch runs wgmma tiles */
  LATHE_CUDA_GRID_PER_TOKENS = 4   /* as PER_TOKEN, run only for steps of several
                                      tokens: for one token the launch before does its
                                      work (the q/k/v product its RoPE and KV store) */
} LatheCudaGrid;

/* One kernel launch of the model's step, in the order they run. The
 * generated module holds them as lathe_cuda_launches[lathe_cuda_launch_count]
 * (kernel i is the extern "C" function lathe_cuda_kernel_<i>), beside
 * lathe_cuda_abi_version and lathe_cuda_plan_hash. */
typedef struct LatheCudaLaunch {
  int32_t grid;             /* LatheCudaGrid */
  int32_t blocks;           /* per token: blocks per token; per head: the head
                               groups; product: blocks of all its products */
  int32_t sharedBytes;      /* dynamic shared bytes (at most 48 KiB) */
  /* Product launches: blocks of the tensor-core tiles (0: the launch has
   * none), by weight rows; the grid's y then covers the
   * tokens, 16 per block. Their kernel is lathe_cuda_tiles_<i>, which a
   * step launches instead of lathe_cuda_kernel_<i> when the product has at
   * least LATHE_CUDA_TILE_MIN_TOKENS tokens: the step's, or with `gather`
   * set (the classifier) its logits' tokens. */
  int32_t tileBlocks;
  /* The same for the wide tiles, 128 weight rows by 64 tokens a block
   * (lathe_cuda_wide_<i>, from LATHE_CUDA_WIDE_MIN_TOKENS tokens on): a
   * kernel apart, as its registers would cost the narrow tiles occupancy. */
  int32_t wideBlocks;
  int32_t gather;
  /* Attention launches: tokens per query tile of the tensor-core kernel
   * (lathe_cuda_tiles_<i> again; 0: none), which a step launches instead
   * of the per-token kernel when its tiles average LATHE_CUDA_FLASH_TOKENS
   * tokens or more: grid x the tiles, y `blocks` as the per-token kernel. */
  int32_t queryTile;
  /* The kernel plan step the launch was emitted for (the steps fused into
   * it are its neighbours in one layer, or the add ending the layer before
   * it); non-decreasing along the table, so that a layer group's launches
   * (plan::LayerGroup::firstStep on) are a run of it
   * (Executable::executeLayers). */
  int32_t step;
  /* Product launches with wide tiles: the fewest tokens that take them
   * (LATHE_CUDA_WIDE_MIN_TOKENS, or LATHE_CUDA_STAGED_MIN_TOKENS where
   * every product of the launch is staged). */
  int32_t wideMinTokens;
  /* 0, or where the wide tiles are wgmma tiles (CudaWgmmaTiles.cuh), 1 +
   * n: their kernel is lathe_cuda_wgmma_<n>, shared by the launches of
   * one body, which takes a second argument, the launch's offset in the
   * module's argument table (wgmmaArgs): ptxas serializes wgmma in a
   * function a kernel calls, so the body cannot be the usual shared
   * function. Blocks of LATHE_CUDA_WGMMA_TOKENS tokens, dynamic shared
   * memory LATHE_CUDA_WGMMA_SHARED (or _FALLBACK_SHARED). Other wide
   * tiles (lathe_cuda_wide_<i>): blocks of LATHE_CUDA_WIDE_TOKENS, no
   * dynamic shared memory. On an attention launch with query tiles, the
   * same for its tensor-core kernel (CudaWgmmaAttention.cuh, in place of
   * lathe_cuda_tiles_<i>; static shared memory only). */
  int32_t wgmma;
  int32_t wgmmaArgs;
  /* wgmma product launches without gate and up: their blocks in pairs of
   * 128-row tiles (LATHE_CUDA_WGMMA_PAIRED), which the kernel takes when
   * its grid's x is not wideBlocks; else 0. */
  int32_t wgmmaPairBlocks;
  /* Split launches: 1 where the narrow tiles of the product launch before
   * write the token rows of the one after (GatedRows' downParts): the
   * split then runs only where either takes its wide tiles; 2 where, in
   * addition, both are wgmma launches of the same wideMinTokens whose
   * wgmma tiles write them too (GatedRows' downRows): then it runs only
   * where one takes narrow tiles and the other wide ones, or where wgmma
   * does not run. */
  int32_t narrowWritten;
} LatheCudaLaunch;

/* The splits of a token's visible rows that the one-token attention kernel
 * (CudaAttention.cuh) takes on the grid's z, so that a step of few tokens at
 * a long context still fills the GPU: up to LATHE_CUDA_ATTENTION_MAX_SPLITS,
 * as many as bring the step's blocks to LATHE_CUDA_ATTENTION_TARGET_BLOCKS.
 * A token uses one split per LATHE_CUDA_ATTENTION_SPLIT_ROWS rows it sees (at
 * most z): the blocks of the others return at once. Fixed by the step's tokens, not
 * by its context, so that a captured graph replays it for the next step.
 * The module sizes its scratch (each split's partial sums) from the same
 * bound: tokens x groups x splits < 2 x the target whenever splits > 1.
 * The target is about two blocks an SM of the H200's 132: more splits cut
 * a token's rows into runs too short to hide a block's start and its
 * merge (16 sequences at a 4096-row context, Llama-3.2-1B shape, one
 * layer's attention: 89.9 us at 1024 blocks, 77.1 at 512, 73.7 at 256 with
 * a bf16 cache; 83.0, 72.0, 69.6 with bfp4); one sequence still takes the
 * most splits. */
#define LATHE_CUDA_ATTENTION_TARGET_BLOCKS 256
/* The fewest rows a split takes: a token splits its rows only where each
 * split keeps at least this many. H200, Llama-3.2-1B shape, one sequence
 * (2026-12-04): 64 against 256 gave bf16 1018-1025 against 1002-1009
 * tokens/s at a 256-row context but 1028-1029 against 1037-1041 for a
 * 128-token prompt and 128 tokens (INT4 alike): the merge costs what the
 * shorter runs give. */
#ifndef LATHE_CUDA_ATTENTION_SPLIT_ROWS
#define LATHE_CUDA_ATTENTION_SPLIT_ROWS 256
#endif
#define LATHE_CUDA_ATTENTION_MAX_SPLITS 32
#define LATHE_CUDA_ATTENTION_WANTED_SPLITS(blocks) \
  ((LATHE_CUDA_ATTENTION_TARGET_BLOCKS + (blocks) - 1) / (blocks))
#define LATHE_CUDA_ATTENTION_SPLITS(tokens, groups)                                       \
  ((tokens) * (groups) >= LATHE_CUDA_ATTENTION_TARGET_BLOCKS ? 1                          \
   : LATHE_CUDA_ATTENTION_WANTED_SPLITS((tokens) * (groups)) < LATHE_CUDA_ATTENTION_MAX_SPLITS \
       ? LATHE_CUDA_ATTENTION_WANTED_SPLITS((tokens) * (groups))                          \
       : LATHE_CUDA_ATTENTION_MAX_SPLITS)

/* Greedy decoding's argmax (lathe_cuda_argmax, CudaArgmax.cuh) takes a
 * block a logits row and part of it: steps of up to
 * LATHE_CUDA_ARGMAX_SPLIT_ROWS rows split each row into as many parts as
 * bring the launch to about LATHE_CUDA_ARGMAX_TARGET_BLOCKS blocks (one
 * block walking a 128k vocabulary alone took 32 us on an H200), at most
 * LATHE_CUDA_ARGMAX_MAX_PARTS (a warp merges a row's candidates). */
#define LATHE_CUDA_ARGMAX_SPLIT_ROWS 64
#define LATHE_CUDA_ARGMAX_MAX_PARTS 32
#define LATHE_CUDA_ARGMAX_TARGET_BLOCKS 256
#define LATHE_CUDA_ARGMAX_PARTS(rows)                                            \
  ((rows) > LATHE_CUDA_ARGMAX_SPLIT_ROWS ? 1                                     \
   : LATHE_CUDA_ARGMAX_TARGET_BLOCKS / (rows) > LATHE_CUDA_ARGMAX_MAX_PARTS       \
       ? LATHE_CUDA_ARGMAX_MAX_PARTS                                              \
       : LATHE_CUDA_ARGMAX_TARGET_BLOCKS / (rows))

/* Whether a product launch of `tokens` tokens runs on the tensor-core tiles,
 * and on the wide ones (LatheCudaLaunch::wideMinTokens: wideMin). */
#define LATHE_CUDA_USE_TILES(tileBlocks, tokens) \
  ((tileBlocks) > 0 && (tokens) >= LATHE_CUDA_TILE_MIN_TOKENS)
#define LATHE_CUDA_USE_WIDE_TILES(wideMin, tokens) ((wideMin) > 0 && (tokens) >= (wideMin))
/* Whether an attention step of `tokens` tokens in `tiles` query tiles runs
 * on the tensor cores: tiles of few tokens (decoding sequences, tree nodes)
 * would leave most of an mma's rows empty. */
#define LATHE_CUDA_FLASH_TOKENS 4
/* The tensor-core attention's shared memory for chunks of `keys` cached
 * rows whose values split into `parts` bf16 parts (CudaFlashAttention.cuh):
 * a bf16 cache's rows as they are, keys and values, in two buffers, each
 * row padded by 16 bytes; other caches' parts, keys row by row and values
 * transposed, each row padded by 4 words, in one. It takes the largest
 * chunk of 64, 32 or 16 rows within the limit. */
#define LATHE_CUDA_FLASH_SHARED(parts, headDim, keys)                          \
  ((parts) == 1 ? 2 * 2 * (keys) * ((headDim) + 8) * 2                         \
                : (parts) * ((keys) * ((headDim) / 2 + 4) + (headDim) * ((keys) / 2 + 4)) * 4)
#define LATHE_CUDA_FLASH_SHARED_LIMIT (46 * 1024)
/* Whether it takes an attention's shapes: head dimensions in steps of 16,
 * the block's 8 warps shared out evenly among its heads, chunks that fit;
 * and its tokens per query tile, 16 per warp of a head. */
#define LATHE_CUDA_FLASH_FITS(parts, headDim, headsPerBlock)                             \
  ((headDim) % 16 == 0 && (headsPerBlock) > 0 &&                                         \
   (LATHE_CUDA_THREADS / 32) % (headsPerBlock) == 0 &&                                   \
   LATHE_CUDA_FLASH_SHARED(parts, headDim, 16) <= LATHE_CUDA_FLASH_SHARED_LIMIT)
#define LATHE_CUDA_FLASH_QUERY_TILE(headsPerBlock) (16 * (LATHE_CUDA_THREADS / 32) / (headsPerBlock))
/* The head dimension the wgmma attention takes (CudaWgmmaAttention.cuh):
 * a key or value row is one 128-byte row of wgmma's swizzle. */
#define LATHE_CUDA_WGMMA_ATTENTION_HEAD_DIM 64
/* Its blocks an SM (__launch_bounds__: at most 128 registers a thread for
 * two). H200, Llama-3.2-1B shape, 2048 tokens, a layer's attention: 158 us
 * with two, 185 with one (2026-12-04). */
#ifndef LATHE_CUDA_WGMMA_ATTENTION_BLOCKS
#define LATHE_CUDA_WGMMA_ATTENTION_BLOCKS 2
#endif
#define LATHE_CUDA_USE_FLASH(queryTile, tiles, tokens) \
  ((queryTile) > 0 && (tiles) > 0 && (tiles) * LATHE_CUDA_FLASH_TOKENS <= (tokens))

#endif
