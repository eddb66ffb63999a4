#include "runtime/kv/PagedKVCache.h"

#include <algorithm>
#include <vector>
#include <fmt/format.h>
#include <limits>

namespace lathe::kv {

Expected<std::unique_ptr<PagedKVCache>>
PagedKVCache::create(backend::Device &device, const KVLayout &layout,
                     int64_t maxSequenceLength, std::shared_ptr<KvDeviceCodec> codec) {
  if (layout.layers <= 0 || layout.width <= 0 || layout.blockSize <= 0 || layout.blocks <= 0 ||
      maxSequenceLength <= 0)
    return Error(fmt::format("KV cache: invalid shape ({} layers, width {}, {} blocks of {})",
                             layout.layers, layout.width, layout.blocks, layout.blockSize));
  if (layout.format.compressed() &&
      (layout.format.block <= 0 || layout.width % layout.format.block != 0))
    return Error(fmt::format("KV cache: rows of {} values cannot be cut into blocks of {}",
                             layout.width, layout.format.block));
  if (layout.rows() > std::numeric_limits<int32_t>::max() ||
      layout.blocks > std::numeric_limits<int32_t>::max() / layout.blockSize)
    return Error(fmt::format("KV cache: {} blocks of {} rows are more than a row index can "
                             "address",
                             layout.blocks, layout.blockSize));
  // layers x 2 x rows x width x element size must fit in memory sizes.
  // (Windowed formats: a row's share of its key group, its values and two
  // f32 window rows bound what a row of each pool takes.)
  const size_t rowBound = layout.windowed() ? layout.keyGroupBytes() + layout.rowBytes() +
                                                  2 * layout.windowRowBytes()
                                            : layout.rowBytes();
  unsigned __int128 total = static_cast<unsigned __int128>(layout.layers) * 2 *
                            static_cast<uint64_t>(layout.rows()) * rowBound;
  if (total > std::numeric_limits<size_t>::max() / 2)
    return Error(fmt::format("KV cache: {} layers of {} rows of {} bytes do not fit in memory",
                             layout.layers, layout.rows(), layout.rowBytes()));
  if (layout.kivi() && layout.blockSize != layout.format.keyGroup)
    return Error(fmt::format("KV cache: {} needs blocks of its key group ({} slots), not {}",
                             formats::kvFormatName(layout.format), layout.format.keyGroup,
                             layout.blockSize));
  // Slack past the last row: kernels may read a compressed row's last
  // block in whole aligned words (CudaAttention.cuh, ByteStream).
  constexpr size_t kReadSlack = 16;
  auto buffer = device.allocate(layout.totalBytes() + kReadSlack);
  if (!buffer)
    return Error(fmt::format("cannot allocate {:.1f} MiB for the KV cache: {}",
                             double(layout.totalBytes()) / (1 << 20), buffer.error().message()));
  // Blocks leaving the window are quantized by the cache itself (host
  // memory) or by the codec of the executable that made it; that codec
  // also copies a compressed cache's single rows (copyRows).
  if (layout.windowed() && !(*buffer)->hostData() && !codec)
    return Error(fmt::format("KV cache: {} needs a cache in host memory, or a device that "
                             "seals its blocks",
                             formats::kvFormatName(layout.format)));
  return std::unique_ptr<PagedKVCache>(new PagedKVCache(
      device, layout, maxSequenceLength, buffer.take(),
      layout.format.compressed() ? codec : nullptr));
}

PagedKVCache::PagedKVCache(backend::Device &device, const KVLayout &layout, int64_t maxLength,
                           std::unique_ptr<backend::Buffer> buffer,
                           std::shared_ptr<KvDeviceCodec> codec)
    : device_(device), layout_(layout), maxLength_(maxLength), buffer_(std::move(buffer)),
      codec_(std::move(codec)), references_(layout.blocks * (layout.windowed() ? 2 : 1), 0) {
  // A stack with block 0 on top: a fresh cache fills from the front.
  free_.reserve(layout.blocks);
  for (int64_t b = layout.blocks - 1; b >= 0; --b)
    free_.push_back(static_cast<int32_t>(b));
  if (layout.windowed())
    for (int64_t b = 2 * layout.blocks - 1; b >= layout.blocks; --b)
      freeWindow_.push_back(static_cast<int32_t>(b));
}

SequenceId PagedKVCache::addSequence() {
  for (size_t i = 0; i < sequences_.size(); ++i)
    if (!sequences_[i].live) {
      sequences_[i] = Sequence{true, 0, {}};
      return static_cast<SequenceId>(i);
    }
  sequences_.push_back(Sequence{true, 0, {}});
  return static_cast<SequenceId>(sequences_.size() - 1);
}

bool PagedKVCache::contains(SequenceId id) const {
  return id >= 0 && static_cast<size_t>(id) < sequences_.size() && sequences_[id].live;
}

PagedKVCache::Sequence &PagedKVCache::get(SequenceId id) { return sequences_.at(id); }
const PagedKVCache::Sequence &PagedKVCache::get(SequenceId id) const {
  return sequences_.at(id);
}

int64_t PagedKVCache::length(SequenceId id) const { return get(id).length; }

Expected<SequenceId> PagedKVCache::fork(SequenceId source) {
  if (!contains(source))
    return Error(fmt::format("KV cache: no sequence {} to fork", source));
  SequenceId id = addSequence();
  Sequence &copy = get(id); // after addSequence: it may reallocate
  copy.length = get(source).length;
  copy.blocks = get(source).blocks;
  for (int32_t b : copy.blocks)
    ++references_[b];
  return id;
}

void PagedKVCache::removeSequence(SequenceId id) {
  if (!contains(id))
    return;
  Sequence &s = get(id);
  for (int32_t b : s.blocks)
    releaseBlock(b);
  s = Sequence{};
}

int32_t PagedKVCache::takeBlock() {
  std::vector<int32_t> &pool = layout_.windowed() ? freeWindow_ : free_;
  int32_t b = pool.back();
  pool.pop_back();
  references_[b] = 1;
  return b;
}

void PagedKVCache::releaseBlock(int32_t b) {
  if (--references_[b] == 0)
    (isWindow(b) ? freeWindow_ : free_).push_back(b);
}

void PagedKVCache::copyRows(std::span<const RowMove> moves) {
  // Windowed formats: the rows a step wrote are window rows (grow gave the
  // tail its own window blocks), f32 rows. Compressed rows of a device
  // that lays a block's rows out its own way: through its codec, all of
  // them at once (a GPU queues them and waits once).
  if (codec_ && !layout_.windowed()) {
    if (!moves.empty())
      codec_->copyRows(*buffer_, layout_, moves);
    return;
  }
  const size_t bytes = layout_.windowed() ? layout_.windowRowBytes() : layout_.rowBytes();
  for (const RowMove &move : moves)
    for (int64_t l = 0; l < layout_.layers; ++l)
      for (bool value : {false, true})
        device_.copy(*buffer_, layout_.offset(l, value, move.to),
                     layout_.offset(l, value, move.from), bytes);
}

void PagedKVCache::seal(SequenceId id, int64_t written, int64_t length) {
  const int64_t end = std::min(written, length - layout_.format.window);
  for (int64_t i = 0; (i + 1) * layout_.blockSize <= end; ++i)
    if (int32_t b = get(id).blocks[i]; isWindow(b) && !free_.empty())
      sealBlock(b);
}

void PagedKVCache::sealBlock(int32_t block) {
  const int32_t sealed = free_.back();
  free_.pop_back();
  const int64_t n = layout_.blockSize, first = int64_t{block} * n;
  uint8_t *base = buffer_->hostData();
  if (codec_)
    codec_->seal(*buffer_, layout_, block, sealed);
  for (int64_t l = 0; l < layout_.layers && !codec_; ++l) {
    const float *keys = windowKeys(l) + (first - layout_.rows()) * layout_.width;
    const float *values = windowValues(l) + (first - layout_.rows()) * layout_.width;
    if (!layout_.kivi()) { // row formats: the device's encoder
      device_.encodeKvRows(layout_.format, layout_.width, n, keys, values,
                           base + layout_.offset(l, false, int64_t{sealed} * n),
                           base + layout_.offset(l, true, int64_t{sealed} * n));
      continue;
    }
    formats::encodeKiviKeys(layout_.format, keys, n, layout_.width,
                            base + layout_.offset(l, false, int64_t{sealed} * n));
    for (int64_t r = 0; r < n; ++r)
      formats::encodeKvRow(layout_.format,
                           {values + r * layout_.width, size_t(layout_.width)},
                           base + layout_.offset(l, true, int64_t{sealed} * n + r));
  }
  references_[sealed] = references_[block];
  references_[block] = 0;
  freeWindow_.push_back(block);
  for (Sequence &s : sequences_)
    if (s.live)
      std::replace(s.blocks.begin(), s.blocks.end(), block, sealed);
}

void PagedKVCache::ownBlock(Sequence &s, int64_t index, int64_t rows) {
  const int32_t from = s.blocks[index];
  const int32_t own = takeBlock();
  if (!layout_.windowed() || isWindow(from)) {
    copyBlock(own, from);
  } else if (codec_) {
    codec_->unseal(*buffer_, layout_, from, own, rows);
  } else {
    // A quantized block: decode its rows into f32.
    const int64_t n = layout_.blockSize;
    uint8_t *base = buffer_->hostData();
    for (int64_t l = 0; l < layout_.layers; ++l)
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t row = int64_t{own} * n + r - layout_.rows();
        std::span<float> key(windowKeys(l) + row * layout_.width, size_t(layout_.width));
        std::span<float> value(windowValues(l) + row * layout_.width, size_t(layout_.width));
        if (layout_.kivi())
          formats::decodeKiviKey(layout_.format,
                                 base + layout_.offset(l, false, int64_t{from} * n),
                                 layout_.width, r, 0, key);
        else
          formats::decodeKvValues(layout_.format,
                                  base + layout_.offset(l, false, int64_t{from} * n + r), 0, key);
        formats::decodeKvValues(layout_.format,
                                base + layout_.offset(l, true, int64_t{from} * n + r), 0, value);
      }
  }
  releaseBlock(from);
  s.blocks[index] = own;
}

void PagedKVCache::copyBlock(int32_t to, int32_t from) {
  const size_t bytes =
      size_t(layout_.blockSize) *
      (layout_.windowed() ? layout_.windowRowBytes() : layout_.rowBytes());
  for (int64_t l = 0; l < layout_.layers; ++l)
    for (bool value : {false, true})
      device_.copy(*buffer_, layout_.offset(l, value, int64_t{to} * layout_.blockSize),
                   layout_.offset(l, value, int64_t{from} * layout_.blockSize), bytes);
}

Status PagedKVCache::grow(SequenceId id, int64_t count) {
  if (!contains(id))
    return Error(fmt::format("KV cache: no sequence {}", id));
  Sequence &s = get(id);
  if (count < 0 || s.length + count > maxLength_)
    return Error(fmt::format("the sequence would reach {} tokens, longer than the model's "
                             "context of {} tokens",
                             s.length + count, maxLength_));
  // Windowed formats: blocks leaving the window are quantized first (the
  // slots written so far are the current length).
  if (layout_.windowed() && count > 0)
    seal(id, s.length, s.length + count);
  const int64_t have = static_cast<int64_t>(s.blocks.size());
  const int64_t need = blocksFor(s.length + count);
  // The last block is written into when the tail starts inside it: it must
  // be this sequence's alone, and (windowed formats) a window block.
  const bool copyLast = count > 0 && s.length % layout_.blockSize != 0 &&
                        (references_[s.blocks.back()] > 1 ||
                         (layout_.windowed() && !isWindow(s.blocks.back())));
  const int64_t fresh = need - have + (copyLast ? 1 : 0);
  if (fresh > freeBlocks() + (copyLast && references_[s.blocks.back()] == 1 ? 1 : 0))
    return Error(fmt::format("the KV cache is full: {} more blocks of {} tokens needed, {} free",
                             fresh, layout_.blockSize, freeBlocks()));
  if (copyLast)
    ownBlock(s, have - 1, s.length % layout_.blockSize);
  for (int64_t i = have; i < need; ++i)
    s.blocks.push_back(takeBlock());
  s.length += count;
  return Status::ok();
}

void PagedKVCache::truncate(SequenceId id, int64_t length) {
  Sequence &s = get(id);
  if (length < 0 || length >= s.length)
    return;
  s.length = length;
  const int64_t keep = blocksFor(length);
  while (static_cast<int64_t>(s.blocks.size()) > keep) {
    releaseBlock(s.blocks.back());
    s.blocks.pop_back();
  }
}

Status PagedKVCache::commit(SequenceId id, int64_t base, std::span<const int64_t> kept) {
  if (!contains(id))
    return Error(fmt::format("KV cache: no sequence {}", id));
  Sequence &s = get(id);
  if (base < 0 || base > s.length)
    return Error(fmt::format("KV cache: commit from slot {} of a sequence of {}", base,
                             s.length));
  int64_t previous = base - 1;
  for (int64_t slot : kept) {
    if (slot <= previous || slot >= s.length)
      return Error(fmt::format("KV cache: kept slots must increase within [{}, {})", base,
                               s.length));
    previous = slot;
  }
  // The slots written are normally this sequence's own window blocks (grow
  // copied shared blocks), unless it was forked since: then copy the shared
  // blocks that a moved slot lands in first.
  auto mustOwn = [&](int32_t b) {
    return references_[b] > 1 || (layout_.windowed() && !isWindow(b));
  };
  std::vector<int64_t> written;
  for (size_t i = 0; i < kept.size(); ++i) {
    const int64_t block = (base + static_cast<int64_t>(i)) / layout_.blockSize;
    if (kept[i] != base + static_cast<int64_t>(i) && mustOwn(s.blocks[block]) &&
        (written.empty() || written.back() != block))
      written.push_back(block);
  }
  if (static_cast<int64_t>(written.size()) > freeBlocks())
    return Error(fmt::format("the KV cache is full: {} blocks needed to commit, {} free",
                             written.size(), freeBlocks()));
  for (int64_t b : written)
    ownBlock(s, b, layout_.blockSize);
  // Moving down never overwrites a kept slot not yet moved: kept[i] >= base + i.
  std::vector<RowMove> moves;
  for (size_t i = 0; i < kept.size(); ++i) {
    const int64_t to = base + static_cast<int64_t>(i);
    if (kept[i] != to)
      moves.push_back({row(id, to), row(id, kept[i])});
  }
  copyRows(moves);
  truncate(id, base + static_cast<int64_t>(kept.size()));
  return Status::ok();
}

int32_t PagedKVCache::row(SequenceId id, int64_t slot) const {
  const Sequence &s = get(id);
  return static_cast<int32_t>(int64_t{s.blocks[slot / layout_.blockSize]} * layout_.blockSize +
                              slot % layout_.blockSize);
}

std::span<const int32_t> PagedKVCache::blockTable(SequenceId id) const {
  return get(id).blocks;
}

uint8_t *PagedKVCache::keys(int64_t layer) {
  uint8_t *base = buffer_->hostData();
  return base ? base + layout_.offset(layer, false, 0) : nullptr;
}

uint8_t *PagedKVCache::values(int64_t layer) {
  uint8_t *base = buffer_->hostData();
  return base ? base + layout_.offset(layer, true, 0) : nullptr;
}

float *PagedKVCache::windowKeys(int64_t layer) {
  uint8_t *base = buffer_->hostData();
  return base && layout_.windowed()
             ? reinterpret_cast<float *>(base + layout_.offset(layer, false, layout_.rows()))
             : nullptr;
}

float *PagedKVCache::windowValues(int64_t layer) {
  uint8_t *base = buffer_->hostData();
  return base && layout_.windowed()
             ? reinterpret_cast<float *>(base + layout_.offset(layer, true, layout_.rows()))
             : nullptr;
}

} // namespace lathe::kv
