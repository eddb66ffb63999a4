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
#pragma once

#include "runtime/backend/Batch.h"
#include "runtime/backend/Device.h"
#include "runtime/formats/KvFormat.h"
#include "runtime/support/Expected.h"

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

  int64_t rows() const { return blocks * blockSize; }
  /// A stored row: its packed bytes, scales or exponents included. Forks,
  /// copies on write and commits move whole rows and blocks of these.
  size_t rowBytes() const { return formats::kvRowBytes(format, width); }
  /// Bytes one token takes across every layer, keys and values.
  size_t tokenBytes() const { return size_t(layers) * 2 * rowBytes(); }
  /// Byte offset of row `row` of layer `layer`'s keys (values: `value`).
  size_t offset(int64_t layer, bool value, int64_t row) const {
    return ((size_t(layer) * 2 + (value ? 1 : 0)) * size_t(rows()) + size_t(row)) * rowBytes();
  }
  size_t totalBytes() const { return size_t(layers) * 2 * size_t(rows()) * rowBytes(); }
  /// Bytes one block holds across every layer, keys and values.
  size_t blockBytes() const { return size_t(layers) * 2 * size_t(blockSize) * rowBytes(); }
};

class PagedKVCache {
public:
  /// A cache of `layout.blocks` blocks on `device`, where no sequence grows
  /// past `maxSequenceLength` slots (the model's context). Fails with the
  /// size when the device cannot hold it.
  static Expected<std::unique_ptr<PagedKVCache>>
  create(backend::Device &device, const KVLayout &layout, int64_t maxSequenceLength);

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
  backend::Buffer &buffer() { return *buffer_; }

  int64_t freeBlocks() const { return static_cast<int64_t>(free_.size()); }
  int64_t usedBlocks() const { return layout_.blocks - freeBlocks(); }
  /// Bytes of the blocks in use / of the whole pool.
  size_t usedBytes() const { return size_t(usedBlocks()) * layout_.blockBytes(); }
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
               std::unique_ptr<backend::Buffer> buffer);
  Sequence &get(SequenceId id);
  const Sequence &get(SequenceId id) const;
  int32_t takeBlock();
  void releaseBlock(int32_t block);
  /// Copies every layer's keys and values of row `from` to row `to`.
  void copyRow(int64_t to, int64_t from);
  void copyBlock(int32_t to, int32_t from);

  backend::Device &device_;
  KVLayout layout_;
  int64_t maxLength_;
  std::unique_ptr<backend::Buffer> buffer_;
  std::vector<Sequence> sequences_;
  std::vector<int32_t> references_; // per block: sequences holding it
  std::vector<int32_t> free_;       // a stack; the lowest block on top
};

} // namespace lathe::kv
