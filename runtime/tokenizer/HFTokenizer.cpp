#include "runtime/tokenizer/HFTokenizer.h"

#include "runtime/tokenizer/ByteLevelAlphabet.h"
#include "runtime/tokenizer/Nfc.h"
#include "runtime/tokenizer/UnicodeTables.h"
#include "runtime/tokenizer/Utf8.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fmt/format.h>
#include <queue>

namespace lathe {
namespace {

// The pattern ByteLevel splits with when its use_regex is set (GPT-2's).
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

void replaceAll(std::string &s, std::string_view from, std::string_view to) {
  if (from.empty())
    return;
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size())
    out.append(s, pos, hit - pos).append(to);
  out.append(s, pos);
  s = std::move(out);
}

uint64_t pairKey(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

bool isWordChar(char32_t c) {
  return c == '_' || unicode::isLetter(c) || unicode::isNumber(c);
}

// The codepoint that ends just before byte `end` of `s` (s[..end] valid).
char32_t previousCodepoint(std::string_view s, size_t end) {
  size_t start = end;
  while (start > 0 && (static_cast<unsigned char>(s[start - 1]) & 0xC0) == 0x80 && end - start < 3)
    --start;
  if (start > 0)
    --start;
  size_t pos = start;
  return utf8::next(s, pos);
}

Status checkStage(const TokenizerStage &st, const char *pipeline,
                  std::initializer_list<std::pair<const char *, std::pair<size_t, size_t>>> known,
                  const std::string &source) {
  for (const auto &[type, counts] : known)
    if (st.type == type) {
      if (st.strings.size() != counts.first || st.ints.size() != counts.second)
        return Error(fmt::format("{}: {} '{}' has {} strings and {} numbers, expects {} and {}",
                                 source, pipeline, st.type, st.strings.size(),
                                 st.ints.size(), counts.first, counts.second));
      return Status::ok();
    }
  return Error(fmt::format("{}: unsupported {} '{}'", source, pipeline, st.type));
}

} // namespace

Expected<HFTokenizer> HFTokenizer::create(HFTokenizerSpec spec, const std::string &source) {
  HFTokenizer t;
  size_t count = spec.vocab.size();
  for (const AddedToken &a : spec.addedTokens) {
    if (a.id < 0 || a.id >= (1 << 24))
      return Error(fmt::format("{}: added token '{}' has id {}", source, a.content, a.id));
    if (a.content.empty())
      return Error(fmt::format("{}: added token {} is empty", source, a.id));
    count = std::max(count, static_cast<size_t>(a.id) + 1);
  }
  t.idCount_ = count;
  auto validId = [&](int32_t id) { return id >= 0 && static_cast<size_t>(id) < count; };
  for (size_t i = 0; i < spec.vocab.size(); ++i)
    if (!spec.vocab[i].empty())
      t.vocabIndex_.emplace(spec.vocab[i], static_cast<int32_t>(i));
  for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
    auto [a, b] = spec.merges[rank];
    if (a < 0 || b < 0 || static_cast<size_t>(a) >= spec.vocab.size() ||
        static_cast<size_t>(b) >= spec.vocab.size())
      return Error(fmt::format("{}: merge {} joins ids {} and {}, outside the vocabulary",
                               source, rank, a, b));
    auto it = t.vocabIndex_.find(spec.vocab[a] + spec.vocab[b]);
    if (it == t.vocabIndex_.end())
      return Error(fmt::format("{}: merge {} ('{}' '{}') makes a token not in the vocabulary",
                               source, rank, spec.vocab[a], spec.vocab[b]));
    // A repeated pair keeps its last rank, as HF's map of merges does.
    t.merges_[pairKey(a, b)] = Merge{static_cast<uint32_t>(rank), it->second};
  }
  if (spec.unk != -1 && !validId(spec.unk))
    return Error(fmt::format("{}: unk id {} outside the vocabulary", source, spec.unk));
  for (int32_t id : spec.prefixIds)
    if (!validId(id))
      return Error(fmt::format("{}: special token id {} outside the vocabulary", source, id));
  for (int32_t id : spec.suffixIds)
    if (!validId(id))
      return Error(fmt::format("{}: special token id {} outside the vocabulary", source, id));
  for (int32_t id : {spec.bos, spec.eos})
    if (id != -1 && !validId(id))
      return Error(fmt::format("{}: BOS/EOS id {} outside the vocabulary", source, id));

  for (const TokenizerStage &st : spec.normalizers)
    if (Status s = checkStage(st, "normalizer", {{"Prepend", {1, 0}}, {"Replace", {2, 0}}, {"NFC", {0, 0}}}, source); !s)
      return s.error();
  for (const TokenizerStage &st : spec.preTokenizers) {
    if (Status s = checkStage(st, "pre-tokenizer",
                              {{"Split", {1, 0}}, {"ByteLevel", {0, 2}}, {"Metaspace", {2, 1}}},
                              source);
        !s)
      return s.error();
    if (st.type == "Metaspace" && st.strings[1] != "always" && st.strings[1] != "first" &&
        st.strings[1] != "never")
      return Error(fmt::format("{}: Metaspace prepend_scheme '{}' is not always, first or never",
                               source, st.strings[1]));
    if (st.type == "Split" || (st.type == "ByteLevel" && st.ints[1])) {
      Expected<PretokenizerRegex> re =
          PretokenizerRegex::compile(st.type == "Split" ? std::string_view(st.strings[0]) : kGpt2Pattern);
      if (!re)
        return Error(source + ": " + re.error().message());
      t.regexes_.push_back(re.take());
    }
  }
  for (const TokenizerStage &st : spec.decoders)
    if (Status s = checkStage(st, "decoder",
                              {{"ByteLevel", {0, 0}}, {"ByteFallback", {0, 0}}, {"Fuse", {0, 0}},
                               {"Replace", {2, 0}}, {"Strip", {1, 2}}, {"Metaspace", {2, 0}}},
                              source);
        !s)
      return s.error();

  t.addedById_.assign(count, -1);
  t.addedByFirstByte_.resize(256);
  for (size_t i = 0; i < spec.addedTokens.size(); ++i) {
    const AddedToken &a = spec.addedTokens[i];
    t.addedById_[a.id] = static_cast<int32_t>(i);
    t.addedByFirstByte_[static_cast<unsigned char>(a.content[0])].push_back(static_cast<int32_t>(i));
  }
  for (std::vector<int32_t> &list : t.addedByFirstByte_)
    std::sort(list.begin(), list.end(), [&](int32_t a, int32_t b) {
      size_t la = spec.addedTokens[a].content.size(), lb = spec.addedTokens[b].content.size();
      return la != lb ? la > lb : a < b;
    });
  for (int b = 0; b < 256; ++b) {
    auto it = t.vocabIndex_.find(fmt::format("<0x{:02X}>", b));
    t.byteTokens_[b] = it == t.vocabIndex_.end() ? -1 : it->second;
  }
  t.spec_ = std::move(spec);
  return t;
}

const std::string *HFTokenizer::token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= idCount_)
    return nullptr;
  if (addedById_[id] >= 0)
    return &spec_.addedTokens[addedById_[id]].content;
  if (static_cast<size_t>(id) < spec_.vocab.size() && !spec_.vocab[id].empty())
    return &spec_.vocab[id];
  return nullptr;
}

// Added tokens are found leftmost first, longest first where several start
// at the same byte (HF's Aho-Corasick in LeftmostLongest mode). Text
// between them comes out with id -1.
void HFTokenizer::splitAddedTokens(std::string_view text,
                                   std::vector<std::pair<std::string_view, int32_t>> &out) const {
  size_t textStart = 0;
  for (size_t pos = 0; pos < text.size(); ++pos) {
    for (int32_t index : addedByFirstByte_[static_cast<unsigned char>(text[pos])]) {
      const AddedToken &a = spec_.addedTokens[index];
      if (text.compare(pos, a.content.size(), a.content) != 0)
        continue;
      size_t begin = pos, end = pos + a.content.size();
      if (a.singleWord) {
        size_t after = end;
        if ((begin > 0 && isWordChar(previousCodepoint(text, begin))) ||
            (after < text.size() && isWordChar(utf8::next(text, after))))
          continue;
      }
      if (a.lstrip)
        while (begin > textStart) {
          char32_t c = previousCodepoint(text, begin);
          if (!unicode::isWhiteSpace(c))
            break;
          std::string tmp;
          utf8::append(tmp, c);
          begin -= tmp.size();
        }
      if (a.rstrip)
        for (size_t p = end; p < text.size();) {
          if (!unicode::isWhiteSpace(utf8::next(text, p)))
            break;
          end = p;
        }
      if (begin > textStart)
        out.emplace_back(text.substr(textStart, begin - textStart), -1);
      out.emplace_back(text.substr(begin, end - begin), a.id);
      textStart = end;
      pos = end - 1;
      break;
    }
  }
  if (textStart < text.size())
    out.emplace_back(text.substr(textStart), -1);
}

std::string HFTokenizer::normalize(std::string_view text) const {
  std::string s(text);
  for (const TokenizerStage &st : spec_.normalizers) {
    if (st.type == "Prepend") {
      if (!s.empty())
        s.insert(0, st.strings[0]);
    } else if (st.type == "Replace") {
      replaceAll(s, st.strings[0], st.strings[1]);
    } else if (st.type == "NFC") {
      s = unicode::toNfc(s);
    }
  }
  return s;
}

Expected<std::vector<HFTokenizer::Piece>> HFTokenizer::preTokenize(std::string text,
                                                                   bool atStart) const {
  std::vector<Piece> pieces;
  pieces.push_back({std::move(text), atStart});
  static const std::array<char32_t, 256> alphabet = byteLevelAlphabet();
  size_t regex = 0;
  for (const TokenizerStage &st : spec_.preTokenizers) {
    std::vector<Piece> next;
    auto splitIsolated = [&](const Piece &p, const PretokenizerRegex &re) -> Status {
      Expected<std::vector<std::pair<size_t, size_t>>> matches = re.findAll(p.text);
      if (!matches)
        return matches.error();
      size_t last = 0;
      for (auto [b, e] : *matches) {
        if (b > last)
          next.push_back({p.text.substr(last, b - last), p.atStart && last == 0});
        next.push_back({p.text.substr(b, e - b), p.atStart && b == 0});
        last = e;
      }
      if (last < p.text.size())
        next.push_back({p.text.substr(last), p.atStart && last == 0});
      return Status::ok();
    };
    if (st.type == "Split") {
      for (const Piece &p : pieces)
        if (Status s = splitIsolated(p, regexes_[regex]); !s)
          return s.error();
      ++regex;
    } else if (st.type == "ByteLevel") {
      bool addPrefixSpace = st.ints[0], useRegex = st.ints[1];
      for (Piece &p : pieces) {
        if (addPrefixSpace && (p.text.empty() || p.text[0] != ' '))
          p.text.insert(0, " ");
        if (!useRegex)
          next.push_back(std::move(p));
        else if (Status s = splitIsolated(p, regexes_[regex]); !s)
          return s.error();
      }
      if (useRegex)
        ++regex;
      for (Piece &p : next) {
        std::string mapped;
        for (unsigned char b : p.text)
          utf8::append(mapped, alphabet[b]);
        p.text = std::move(mapped);
      }
    } else if (st.type == "Metaspace") {
      const std::string &rep = st.strings[0];
      const std::string &scheme = st.strings[1];
      bool split = st.ints[0];
      for (Piece &p : pieces) {
        replaceAll(p.text, " ", rep);
        if (!p.text.starts_with(rep) &&
            (scheme == "always" || (scheme == "first" && p.atStart)))
          p.text.insert(0, rep);
        if (!split) {
          next.push_back(std::move(p));
          continue;
        }
        // Split before each replacement character, which starts the next piece.
        size_t last = 0;
        for (size_t hit = p.text.find(rep, 1); hit != std::string::npos;
             hit = p.text.find(rep, hit + rep.size())) {
          if (hit > last) {
            next.push_back({p.text.substr(last, hit - last), p.atStart && last == 0});
            last = hit;
          }
        }
        next.push_back({p.text.substr(last), p.atStart && last == 0});
      }
    }
    pieces = std::move(next);
  }
  std::erase_if(pieces, [](const Piece &p) { return p.text.empty(); });
  return pieces;
}

// HF's Word::merge_all: repeatedly merge the adjacent pair of lowest rank
// (leftmost on ties) until no pair of the word is a merge.
void HFTokenizer::bpe(std::string_view word, std::vector<int32_t> &ids) const {
  if (word.empty())
    return;
  if (spec_.ignoreMerges)
    if (auto it = vocabIndex_.find(std::string(word)); it != vocabIndex_.end()) {
      ids.push_back(it->second);
      return;
    }
  struct Symbol { int32_t id; int32_t prev, next; size_t len; };
  std::vector<Symbol> symbols;
  auto push = [&](int32_t id, size_t len) {
    int32_t index = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, index - 1, index + 1, len});
  };
  size_t pendingUnk = 0; // bytes of fused unknown characters
  auto flushUnk = [&] {
    if (pendingUnk)
      push(spec_.unk, pendingUnk);
    pendingUnk = 0;
  };
  for (size_t pos = 0; pos < word.size();) {
    size_t start = pos;
    utf8::next(word, pos);
    std::string_view ch = word.substr(start, pos - start);
    if (auto it = vocabIndex_.find(std::string(ch)); it != vocabIndex_.end()) {
      flushUnk();
      push(it->second, ch.size());
      continue;
    }
    if (spec_.byteFallback &&
        std::all_of(ch.begin(), ch.end(), [&](char b) { return byteTokens_[static_cast<unsigned char>(b)] >= 0; })) {
      flushUnk();
      for (char b : ch)
        push(byteTokens_[static_cast<unsigned char>(b)], 1);
      continue;
    }
    if (spec_.unk < 0)
      continue; // without an unk token, HF drops the character
    if (spec_.fuseUnk) {
      pendingUnk += ch.size();
    } else {
      push(spec_.unk, ch.size());
    }
  }
  flushUnk();
  if (symbols.empty())
    return;
  symbols.back().next = -1;

  struct Candidate { int32_t pos; uint32_t rank; int32_t result; };
  auto later = [](const Candidate &a, const Candidate &b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(later)> queue(later);
  auto consider = [&](int32_t pos) {
    int32_t next = symbols[pos].next;
    if (next < 0)
      return;
    auto it = merges_.find(pairKey(symbols[pos].id, symbols[next].id));
    if (it != merges_.end())
      queue.push({pos, it->second.rank, it->second.result});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i)
    consider(i);
  while (!queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    Symbol &left = symbols[top.pos];
    if (left.len == 0 || left.next < 0)
      continue;
    Symbol &right = symbols[left.next];
    auto it = merges_.find(pairKey(left.id, right.id));
    if (it == merges_.end() || it->second.result != top.result)
      continue; // the pair changed since it was queued
    left.id = top.result;
    left.len += right.len;
    left.next = right.next;
    right.len = 0;
    if (left.next >= 0)
      symbols[left.next].prev = top.pos;
    if (left.prev >= 0)
      consider(left.prev);
    consider(top.pos);
  }
  for (const Symbol &s : symbols)
    if (s.len)
      ids.push_back(s.id);
}

Expected<std::vector<int32_t>> HFTokenizer::encode(std::string_view text,
                                                   bool addSpecialTokens) const {
  std::vector<int32_t> ids;
  if (addSpecialTokens)
    ids = spec_.prefixIds;
  std::vector<std::pair<std::string_view, int32_t>> segments;
  splitAddedTokens(text, segments);
  for (auto [segment, id] : segments) {
    if (id >= 0) {
      ids.push_back(id);
      continue;
    }
    bool atStart = segment.data() == text.data();
    Expected<std::vector<Piece>> pieces = preTokenize(normalize(segment), atStart);
    if (!pieces)
      return pieces.error();
    for (const Piece &p : *pieces)
      bpe(p.text, ids);
  }
  if (addSpecialTokens)
    ids.insert(ids.end(), spec_.suffixIds.begin(), spec_.suffixIds.end());
  return ids;
}

std::string HFTokenizer::decode(std::span<const int32_t> ids, bool skipSpecialTokens) const {
  std::vector<std::string> tokens;
  for (int32_t id : ids) {
    const std::string *t = token(id);
    if (!t)
      continue;
    if (skipSpecialTokens && addedById_[id] >= 0 && spec_.addedTokens[addedById_[id]].special)
      continue;
    tokens.push_back(*t);
  }
  if (spec_.decoders.empty()) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i)
      out += (i ? " " : "") + tokens[i];
    return out;
  }
  // The byte-level alphabet backwards: codepoint -> byte, -1 outside it.
  static const std::array<int16_t, 512> byteOf = [] {
    std::array<int16_t, 512> table;
    table.fill(-1);
    std::array<char32_t, 256> alphabet = byteLevelAlphabet();
    for (int b = 0; b < 256; ++b)
      table[alphabet[b]] = static_cast<int16_t>(b);
    return table;
  }();
  for (const TokenizerStage &st : spec_.decoders) {
    std::vector<std::string> next;
    if (st.type == "ByteLevel") {
      // Each token's characters back to bytes; a token with a character
      // outside the alphabet (an added token) stays as it is.
      std::string bytes;
      for (const std::string &t : tokens) {
        std::string mapped;
        bool ok = true;
        for (size_t pos = 0; pos < t.size() && ok;) {
          char32_t c = utf8::next(t, pos);
          if (c >= byteOf.size() || byteOf[c] < 0)
            ok = false;
          else
            mapped += static_cast<char>(byteOf[c]);
        }
        bytes += ok ? mapped : t;
      }
      next.push_back(utf8::lossy(bytes));
    } else if (st.type == "ByteFallback") {
      std::string pending;
      auto flush = [&] {
        if (pending.empty())
          return;
        if (utf8::valid(pending))
          next.push_back(pending);
        else
          for (size_t i = 0; i < pending.size(); ++i)
            next.push_back("\xEF\xBF\xBD"); // one U+FFFD per byte, as HF
        pending.clear();
      };
      for (const std::string &t : tokens) {
        unsigned value;
        if (t.size() == 6 && t.starts_with("<0x") && t[5] == '>' &&
            std::sscanf(t.c_str() + 3, "%2x", &value) == 1 && std::isxdigit(t[3]) &&
            std::isxdigit(t[4])) {
          pending += static_cast<char>(value);
          continue;
        }
        flush();
        next.push_back(t);
      }
      flush();
    } else if (st.type == "Fuse") {
      std::string all;
      for (const std::string &t : tokens)
        all += t;
      next.push_back(std::move(all));
    } else if (st.type == "Replace") {
      for (std::string t : tokens) {
        replaceAll(t, st.strings[0], st.strings[1]);
        next.push_back(std::move(t));
      }
    } else if (st.type == "Strip") {
      const std::string &c = st.strings[0];
      for (std::string t : tokens) {
        for (int64_t i = 0; i < st.ints[0] && !c.empty() && t.starts_with(c); ++i)
          t.erase(0, c.size());
        for (int64_t i = 0; i < st.ints[1] && !c.empty() && t.ends_with(c); ++i)
          t.erase(t.size() - c.size());
        next.push_back(std::move(t));
      }
    } else if (st.type == "Metaspace") {
      // The replacement character is a space again, except in the first
      // token, where it was the prefix the pre-tokenizer added.
      for (size_t i = 0; i < tokens.size(); ++i) {
        std::string t = tokens[i];
        replaceAll(t, st.strings[0], i == 0 && st.strings[1] != "never" ? "" : " ");
        next.push_back(std::move(t));
      }
    }
    tokens = std::move(next);
  }
  std::string out;
  for (const std::string &t : tokens)
    out += t;
  return out;
}

} // namespace lathe
