// What a TreeDrafter has learnt, kept in a file between runs: Token
// Recycling's tables (each token's and each token pair's best successors
// with their probabilities) and the acceptance each kind of draft has met.
// Token Recycling keeps its table across queries for good reason (a cold
// table drafts little); `lathe-run --draft-state FILE` reads the file
// before a generation and writes it back after, as `--draft-history`
// keeps the texts. The texts themselves are not in this file.
//
// Format (host byte order, little-endian on every target Lathe builds
// for): a 48-byte header (magic "LTHDRFT1", version, bucket count,
// vocabulary, successors per row k, pair slots stored, payload bytes),
// then the token table's rows (each token's k ids, then their k
// probabilities), the
// occupied slots of the pair table in ascending order (slot, zero, the
// pair as a 64-bit tag, k ids, k probabilities), the buckets' drafted and
// accepted counts (doubles), and a 64-bit checksum of everything before it
// (artifact::checksum). A file written with another k (another tree
// shape) loads: each row keeps as many successors as both hold. Ids,
// probabilities, counts and each pair's slot are checked on load.
#pragma once

#include "runtime/speculative/TreeDrafter.h"
#include "runtime/support/Expected.h"

#include <string>

namespace lathe::speculative {

/// Writes `drafter`'s learnt state to `path` (through a temporary file
/// renamed over it, so a reader never sees half a file).
Status writeDrafterState(const TreeDrafter &drafter, const std::string &path);

/// Loads the state in `path` into `drafter`, replacing what it had learnt.
/// Returns false, changing nothing, when there is no such file. Errors are
/// one line naming the file: not a state file, another version, damaged
/// or cut short (its checksum), or written for another vocabulary.
Expected<bool> readDrafterState(const std::string &path, TreeDrafter &drafter);

} // namespace lathe::speculative
