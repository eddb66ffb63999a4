// The KV cache: a manager of fixed-size blocks with a block table per
// sequence (paged, as in vLLM and llama.cpp). Sequences grow by whole blocks
// taken from a free list, share blocks after a fork (copy on write: a block
// is copied the first time a sequence writes into a shared one), and give
// blocks back when they shrink or end, so many sequences of different
// lengths fit in one pool without reserving the context for each.
//
// Storage is one device buffer, laid out by KVLayout: per layer, a key array
// and a value array of `blocks x blockSize` rows of `width` values, each row
// stored in the layout's format (formats/KvFormat.h: plain elements, or
// compressed blocks with their scales, kvRowBytes bytes a row); block
// b holds rows [b * blockSize, (b + 1) * blockSize) of every layer. A
// sequence's slot s lives in row table[s / blockSize] * blockSize +
// s % blockSize, the same row in every layer, so a step works out its rows
// once (backend/Batch.h, StepLayout).
//
// KIVI formats (int4, int2) quantize keys per channel over a group of
// tokens, so a block is only quantized once it is complete, and a window
// of recent tokens stays f32. Their cache has two pools of blocks of
// format.keyGroup slots: quantized blocks (ids [0, blocks), rows [0,
// rows())), and f32 window blocks (ids and rows after them), which every
// write goes to. grow() quantizes ("seals") each window block that is
// complete and wholly older than the sequence's newest format.window
// slots, for every sequence sharing it; a write into a quantized block
// (after a rollback into it, or into a shared partial block) first decodes
// it into a window block of its own, so truncate and commit stay exact on
// what is stored. Both pools have `blocks` blocks, and the sequences
// together hold at most `blocks` of either kind: a prefill may write a
// whole context in f32 before grow() quantizes it.
//
// int8, bfp8 and bfp4 with a window (format.window > 0) use the same two
// pools: their rows are written f32 into window blocks and a block leaving
// the window is encoded by the device (backend::Device::encodeKvRows: the
// row codec's bytes; on the CPU its vectorized store step) into a block of
// the row pool, laid out as without a window; format.windowed() says
// which caches have the window pool. A cache the host cannot reach (a
// GPU's) seals and unseals through its executable's KvDeviceCodec, which
// runs the same codecs on the device. Such a device may also keep a
// compressed row's bytes apart (the GPU keeps each block of 16 rows by KV
// head): whole blocks copy as bytes, single rows through the same codec
// (KvDeviceCodec::copyRows).
#pragma once

#include "runtime/backend/Batch.h"
#include "runtime/backend/Device.h"
#include "runtime/formats/KvFormat.h"
#include "runtime/support/Expected.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace lathe::kv {

using backend::SequenceId;

/// Where a layer's keys and values sit in the cache buffer.
struct KVLayout {
  int64_t layers = 0;
  int64_t width = 0;      // kv_heads * head_dim elements per row
  int64_t blockSize = 16; // rows per block
  int64_t blocks = 0;
  formats::KvFormat format;

  /// Rows of the (quantized, for windowed formats) pool; window rows
  /// follow.
  int64_t rows() const { return blocks * blockSize; }
  bool kivi() const { return format.kivi(); }
  /// Whether the cache has an f32 window pool (formats::KvFormat::windowed).
  bool windowed() const { return format.windowed(); }
  /// A stored row: its packed bytes, scales or exponents included. Forks,
  /// copies on write and commits move whole rows and blocks of these.
  /// KIVI: a quantized row of values.
  size_t rowBytes() const { return formats::kvRowBytes(format, width); }
  /// KIVI: a quantized key group (one block) of a layer, and an f32 row.
  size_t keyGroupBytes() const { return formats::kiviKeyGroupBytes(format, width); }
  size_t windowRowBytes() const { return size_t(width) * 4; }
  /// Bytes one token takes across every layer, keys and values, as stored
  /// quantized (KIVI: the key group's scales and zeros shared out over its
  /// tokens, rounded up; the f32 window: windowTokenBytes).
  size_t tokenBytes() const {
    if (kivi())
      return (blockBytes() + size_t(blockSize) - 1) / size_t(blockSize);
    return size_t(layers) * 2 * rowBytes();
  }
  /// Windowed formats: bytes of a token in the f32 window (0 for others).
  size_t windowTokenBytes() const {
    return windowed() ? size_t(layers) * 2 * windowRowBytes() : 0;
  }
  /// Windowed formats: the slots of a sequence of `length` that are
  /// quantized once its last token was decoded (the grow from length - 1
  /// quantized every whole block written before it and older than the
  /// window); the rest of its slots are in the f32 window. 0 for other
  /// formats.
  int64_t quantizedSlots(int64_t length) const {
    if (!windowed() || length <= 0)
      return 0;
    return std::max<int64_t>(0, std::min(length - 1, length - format.window)) / blockSize *
           blockSize;
  }
  /// Bytes the `length` slots of one sequence hold across every layer, keys
  /// and values: tokenBytes each, and for windowed formats windowTokenBytes
  /// for each slot in the window (quantizedSlots).
  double sequenceBytes(int64_t length) const {
    if (!windowed())
      return double(length) * double(tokenBytes());
    const int64_t quantized = quantizedSlots(length);
    return double(quantized) * double(blockBytes()) / double(blockSize) +
           double(length - quantized) * double(windowTokenBytes());
  }
  /// Byte offset of row `row` of layer `layer`'s keys (values: `value`).
  /// Windowed formats: a window row (row >= rows()) is an f32 row. KIVI: a
  /// quantized key row gives its group's start, a quantized value row its
  /// own.
  size_t offset(int64_t layer, bool value, int64_t row) const {
    if (windowed() && row >= rows())
      return windowOffset(layer, value, row - rows());
    if (kivi()) {
      const size_t keys = size_t(layer) * quantizedLayerBytes();
      return value ? keys + size_t(blocks) * keyGroupBytes() + size_t(row) * rowBytes()
                   : keys + size_t(row / blockSize) * keyGroupBytes();
    }
    return ((size_t(layer) * 2 + (value ? 1 : 0)) * size_t(rows()) + size_t(row)) * rowBytes();
  }
  size_t totalBytes() const {
    if (windowed())
      return size_t(layers) * (quantizedLayerBytes() + 2 * size_t(rows()) * windowRowBytes());
    return size_t(layers) * 2 * size_t(rows()) * rowBytes();
  }
  /// Bytes one block holds across every layer, keys and values (windowed
  /// formats: a quantized block; a window block: windowBlockBytes).
  size_t blockBytes() const {
    if (kivi())
      return size_t(layers) * (keyGroupBytes() + size_t(blockSize) * rowBytes());
    return size_t(layers) * 2 * size_t(blockSize) * rowBytes();
  }
  size_t windowBlockBytes() const { return size_t(blockSize) * windowTokenBytes(); }

private:
  /// A layer's keys and values in the quantized pool (KIVI: key groups
  /// then value rows).
  size_t quantizedLayerBytes() const {
    if (kivi())
      return size_t(blocks) * (keyGroupBytes() + size_t(blockSize) * rowBytes());
    return 2 * size_t(rows()) * rowBytes();
  }
  size_t windowOffset(int64_t layer, bool value, int64_t windowRow) const {
    return size_t(layers) * quantizedLayerBytes() +
           ((size_t(layer) * 2 + (value ? 1 : 0)) * size_t(rows()) + size_t(windowRow)) *
               windowRowBytes();
  }
};

/// A row copied within the cache: every layer's keys and values of row
/// `from` to row `to`.
struct RowMove {
  int64_t to, from;
};

/// How a compressed cache's rows move where the host cannot reach its
/// bytes (a GPU's cache) and the device lays them out its own way: the
/// executable whose generated code knows the format and the layout seals
/// and unseals a windowed cache's blocks (KVLayout::windowed) between its
/// two pools, and copies single rows of a cache without a window, on the
/// device, ordered with its steps. A failure is kept by the
/// implementation and reported by the next step that uses the cache.
class KvDeviceCodec {
public:
  virtual ~KvDeviceCodec() = default;
  /// Copies every layer's keys and values of (quantized) row `from` to row
  /// `to` for each move, in order (a move may read a row that an earlier
  /// one wrote), in the device's layout of a block's rows.
  virtual void copyRows(backend::Buffer &cache, const KVLayout &layout,
                        std::span<const RowMove> moves) = 0;
  /// Quantizes window block `window` of every layer into quantized block
  /// `sealed` (the bytes the host codecs of formats/KvFormat.h would give,
  /// in the device's own layout of them).
  virtual void seal(backend::Buffer &cache, const KVLayout &layout, int32_t window,
                    int32_t sealed) = 0;
  /// Decodes the first `rows` rows of quantized block `from` of every layer
  /// into window block `to`.
  virtual void unseal(backend::Buffer &cache, const KVLayout &layout, int32_t from, int32_t to,
                      int64_t rows) = 0;
};

class PagedKVCache {
public:
  /// A cache of `layout.blocks` blocks on `device`, where no sequence grows
  /// past `maxSequenceLength` slots (the model's context). Fails with the
  /// size when the device cannot hold it. A windowed format needs the cache
  /// in host memory, or `codec` to seal and unseal its blocks; a compressed
  /// format without a window copies single rows through `codec` where there
  /// is one.
  static Expected<std::unique_ptr<PagedKVCache>>
  create(backend::Device &device, const KVLayout &layout, int64_t maxSequenceLength,
         std::shared_ptr<KvDeviceCodec> codec = nullptr);

  const KVLayout &layout() const { return layout_; }
  int64_t maxSequenceLength() const { return maxLength_; }

  /// A new, empty sequence.
  SequenceId addSequence();
  /// A new sequence holding what `source` holds; they share its blocks
  /// until one of them writes into a shared block.
  Expected<SequenceId> fork(SequenceId source);
  /// Ends a sequence and gives back the blocks only it held.
  void removeSequence(SequenceId sequence);
  bool contains(SequenceId sequence) const;
  /// Slots the sequence holds.
  int64_t length(SequenceId sequence) const;

  /// Adds `count` slots at the tail, in blocks only this sequence holds (a
  /// shared last block is copied first). Fails, changing nothing, when the
  /// free blocks do not suffice or the sequence would pass the maximum.
  Status grow(SequenceId sequence, int64_t count);
  /// Drops every slot from `length` on (rollback of a rejected tail); blocks
  /// left empty go back to the free list.
  void truncate(SequenceId sequence, int64_t length);
  /// After a step that grew the sequence from `base`: keeps the tail slots
  /// `kept` (each >= base, increasing), moved to slots base, base + 1, ...,
  /// and drops the rest of the tail (commit of an accepted tree path).
  Status commit(SequenceId sequence, int64_t base, std::span<const int64_t> kept);

  /// The row of slot `slot` of `sequence` (the same in every layer).
  int32_t row(SequenceId sequence, int64_t slot) const;
  std::span<const int32_t> blockTable(SequenceId sequence) const;

  /// Host pointers to the rows of layer `layer`'s keys / values (CPU
  /// devices; null when the cache lives on a device only).
  uint8_t *keys(int64_t layer);
  uint8_t *values(int64_t layer);
  /// Windowed formats: host pointers to the f32 window rows of layer
  /// `layer` (row layout().rows() is the first); null for other formats.
  float *windowKeys(int64_t layer);
  float *windowValues(int64_t layer);
  backend::Buffer &buffer() { return *buffer_; }

  /// Blocks not held by any sequence (windowed formats: of `blocks`,
  /// whichever pool the held ones are in).
  int64_t freeBlocks() const {
    return static_cast<int64_t>(free_.size()) -
           (layout_.windowed() ? layout_.blocks - static_cast<int64_t>(freeWindow_.size()) : 0);
  }
  int64_t usedBlocks() const { return layout_.blocks - freeBlocks(); }
  /// Windowed formats: blocks held in the f32 window pool.
  int64_t usedWindowBlocks() const {
    return layout_.windowed() ? layout_.blocks - static_cast<int64_t>(freeWindow_.size()) : 0;
  }
  /// Bytes of the blocks in use (windowed formats: quantized and window
  /// blocks, each at its own size) / of the whole pool.
  size_t usedBytes() const {
    return size_t(usedBlocks() - usedWindowBlocks()) * layout_.blockBytes() +
           size_t(usedWindowBlocks()) * layout_.windowBlockBytes();
  }
  size_t capacityBytes() const { return layout_.totalBytes(); }
  /// Blocks needed to hold `slots` slots.
  int64_t blocksFor(int64_t slots) const {
    return (slots + layout_.blockSize - 1) / layout_.blockSize;
  }

private:
  struct Sequence {
    bool live = false;
    int64_t length = 0;
    std::vector<int32_t> blocks;
  };
  PagedKVCache(backend::Device &device, const KVLayout &layout, int64_t maxLength,
               std::unique_ptr<backend::Buffer> buffer, std::shared_ptr<KvDeviceCodec> codec);
  Sequence &get(SequenceId id);
  const Sequence &get(SequenceId id) const;
  /// A free block, from the window pool for windowed formats.
  int32_t takeBlock();
  void releaseBlock(int32_t block);
  bool isWindow(int32_t block) const { return layout_.windowed() && block >= layout_.blocks; }
  /// Windowed formats: quantizes every window block of `sequence` that is
  /// complete (within its first `written` slots) and older than its newest
  /// format.window slots of `length`.
  void seal(SequenceId sequence, int64_t written, int64_t length);
  /// Windowed formats: the window block `block` quantized into a new
  /// quantized block, which replaces it in every sequence holding it.
  void sealBlock(int32_t block);
  /// Replaces block `index` of `sequence` by a window block of its own
  /// holding its first `rows` rows (copied, or decoded when quantized).
  void ownBlock(Sequence &sequence, int64_t index, int64_t rows);
  /// Copies every layer's keys and values of each move's row, in order.
  void copyRows(std::span<const RowMove> moves);
  void copyBlock(int32_t to, int32_t from);

  backend::Device &device_;
  KVLayout layout_;
  int64_t maxLength_;
  std::unique_ptr<backend::Buffer> buffer_;
  /// Compressed formats on a device the host cannot reach: who seals a
  /// windowed cache's blocks, or copies the single rows of one without a
  /// window (null for float caches, and in host memory).
  std::shared_ptr<KvDeviceCodec> codec_;
  std::vector<Sequence> sequences_;
  std::vector<int32_t> references_; // per block: sequences holding it
  std::vector<int32_t> free_;       // a stack; the lowest block on top
  std::vector<int32_t> freeWindow_; // windowed formats: the window pool's free blocks
};

} // namespace lathe::kv
