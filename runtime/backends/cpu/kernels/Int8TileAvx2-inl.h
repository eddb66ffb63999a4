// The integer matmul's AVX2 kernel (Int8Matmul.cpp includes this inside its
// HWY_NAMESPACE when compiling the AVX2 target; IntWeights, BlockScale and
// Int8Args come from there).
//
// AVX2 has no vpdpbusd; its byte product is vpmaddubsw (u8 x s8, pairs
// summed into saturating 16-bit lanes), then vpmaddwd by ones sums pairs
// of those into 32-bit lanes: four products a lane, as vpdpbusd gives.
// Saturation decides what may go in:
//   - 4-bit codes are small unsigned bytes (q + 8, FP4's 2v + 12, or the
//     raw asymmetric code, at most 24): 24 * 127 * 2 fits 16 bits, so they
//     go in as they are, and the fixed offset comes back out through the
//     activations' lane offsets (one fused multiply-subtract, as the VNNI
//     kernel);
//   - 8-bit codes stay signed (the stored two's complement, or an
//     asymmetric code minus 128) and go in by the sign trick: |w| as the
//     unsigned operand, x with w's sign as the signed one. |w| <= 128 and
//     |x| <= 127 (the activation codes never take -128), so a pair sums to
//     at most 32512: exact, and no offset to take out.
// 32 codes a step (one 256-bit vector); at T == 1 four weight rows share
// each activation load and one reduction (int8Rows in Int8Matmul.cpp picks
// the tiles, as for the VNNI kernel). Every output is summed in the
// same order whatever RT and RN are (a tree step's rows then equal a
// one-token step's bit for bit).

/// Step p (codes 32p .. 32p + 31 of the row, in activation order) as the
/// bytes the product takes (above). `present` blocks of the step exist
/// (fewer than 32 / B only in a row's last step); absent ones are zero.
template <IntCodes C, size_t B>
HWY_INLINE __m256i avx2Weights(const uint8_t *row, int64_t p, int present) {
  using W = IntWeights<C>;
  constexpr size_t kBlockBytes = W::bytes(B);
  __m256i v;
  if constexpr (!W::kNibbles) {
    if constexpr (B >= 32) {
      const uint8_t *q = row + (32 * p / B) * kBlockBytes + W::kHeader + (32 * p) % B;
      v = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(q));
    } else { // B == 16
      const uint8_t *b0 = row + 2 * p * kBlockBytes + W::kHeader;
      const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i *>(b0));
      const __m128i hi = present > 1
                             ? _mm_loadu_si128(reinterpret_cast<const __m128i *>(b0 + kBlockBytes))
                             : _mm_setzero_si128();
      v = _mm256_set_m128i(hi, lo);
    }
    if constexpr (C == IntCodes::Int8Asym) // u - 128, as a signed byte
      v = _mm256_xor_si256(v, _mm256_set1_epi8(static_cast<char>(0x80)));
    return v;
  } else {
    // A block's packed bytes give its low nibbles (the activation order's
    // first half), then its high nibbles.
    if constexpr (B >= 64) {
      constexpr int64_t kSteps = B / 32, kHalf = kSteps / 2;
      const int64_t j = p % kSteps;
      const uint8_t *q = row + (p / kSteps) * kBlockBytes + W::kHeader + (j % kHalf) * 32;
      v = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(q));
      if (j >= kHalf)
        v = _mm256_srli_epi16(v, 4);
    } else if constexpr (B == 32) {
      // 16 bytes in both halves; the upper half shifted to its high nibbles.
      const uint8_t *q = row + p * kBlockBytes + W::kHeader;
      v = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i *>(q)));
      v = _mm256_srlv_epi32(v, _mm256_set_epi32(4, 4, 4, 4, 0, 0, 0, 0));
    } else { // B == 16: 8 bytes a block, a block a 128-bit half
      const uint8_t *b0 = row + 2 * p * kBlockBytes + W::kHeader;
      uint64_t bits[2] = {0, 0};
      for (int j = 0; j < present; ++j)
        std::memcpy(&bits[j], b0 + j * kBlockBytes, 8);
      v = _mm256_set_epi64x(static_cast<long long>(bits[1]), static_cast<long long>(bits[1]),
                            static_cast<long long>(bits[0]), static_cast<long long>(bits[0]));
      v = _mm256_srlv_epi64(v, _mm256_set_epi64x(4, 0, 4, 0));
    }
    v = _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
    if constexpr (C == IntCodes::Int4Sym || C == IntCodes::Bfp4)
      v = _mm256_xor_si256(v, _mm256_set1_epi8(8));
    else if constexpr (C == IntCodes::MxFp4)
      v = _mm256_shuffle_epi8(
          _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i *>(kFp4Bytes))),
          v);
    return v;
  }
}

/// Sums of four products a 32-bit lane: w the weight bytes of avx2Weights
/// (unsigned 4-bit codes, or signed 8-bit ones), x the activation codes.
template <bool kNibbles> HWY_INLINE __m256i avx2Dot(__m256i w, __m256i x) {
  __m256i pairs;
  if constexpr (kNibbles)
    pairs = _mm256_maddubs_epi16(w, x);
  else
    pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
  return _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
}

/// The four sums of the lanes of a, b, c, d; lane i of the result is
/// summed in the same order whatever the other three hold.
HWY_INLINE __m128 avx2Reduce4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

/// Weight rows n .. n + RN - 1 against tokens t0 .. t0 + RT - 1, 32 codes
/// a step. The kP blocks of a step (32 / B, or 1) each own a range of the
/// 8 lanes and their own accumulators.
template <IntCodes C, size_t B, int RT, int RN>
HWY_INLINE void avx2Tile(const Int8Args &a, int64_t n, int64_t t0) {
  using W = IntWeights<C>;
  constexpr int kP = B <= 32 ? static_cast<int>(32 / B) : 1;
  constexpr bool kAsym = detail::isAsymmetric(C);
  constexpr bool kNibbles = W::kNibbles;
  // 4-bit codes carry the fixed offset; signed 8-bit codes carry none.
  constexpr bool kOffsets = kNibbles && !kAsym;
  constexpr size_t kBlockBytes = W::bytes(B);
  static_assert(!kAsym || kP == 1, "asymmetric INT blocks hold >= 32 codes");
  const Int8Activations &x = *a.x;
  const int64_t steps = x.codesPerRow / 32;
  const int64_t fullSteps = B >= 32 ? x.blocksPerRow * static_cast<int64_t>(B / 32)
                                    : x.blocksPerRow / kP;
  const int lastPresent = static_cast<int>(x.blocksPerRow % kP);

  __m256 acc[RT][RN][kP];
  for (int t = 0; t < RT; ++t)
    for (int r = 0; r < RN; ++r)
      for (int j = 0; j < kP; ++j) acc[t][r][j] = _mm256_setzero_ps();

  auto step = [&](int64_t p, int present) LATHE_INT8_ATTR {
    const int64_t firstBlock = B >= 32 ? 32 * p / static_cast<int64_t>(B) : p * kP;
    __m256i w[RN], zeroPoints[RN];
    float sw[RN][kP];
    for (int r = 0; r < RN; ++r) {
      const uint8_t *row = a.w + (n + r) * a.rowBytes;
      w[r] = avx2Weights<C, B>(row, p, present);
      for (int j = 0; j < kP; ++j) {
        sw[r][j] = 0.0f;
        if (j < present) {
          const BlockScale s = W::scale(row + (firstBlock + j) * kBlockBytes);
          sw[r][j] = s.scale;
          if constexpr (kAsym) // as the weights: 8-bit zero points less 128
            zeroPoints[r] = _mm256_set1_epi8(static_cast<char>(kNibbles ? s.offset : s.offset ^ 0x80));
        }
      }
    }
    for (int t = 0; t < RT; ++t) {
      const int64_t xs = (t0 + t) * steps + p;
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(x.codes.data() + xs * 32));
      const __m256 scales = _mm256_loadu_ps(x.laneScales.data() + xs * 8);
      __m256 offsets;
      if constexpr (kOffsets)
        offsets = _mm256_loadu_ps(x.laneOffsets.data() + xs * 8);
      for (int r = 0; r < RN; ++r) {
        __m256i isum = avx2Dot<kNibbles>(w[r], xv);
        if constexpr (kAsym) // exact: sum((w - z) * x) = sum(w * x) - sum(z * x)
          isum = _mm256_sub_epi32(isum, avx2Dot<kNibbles>(zeroPoints[r], xv));
        __m256 f = _mm256_cvtepi32_ps(isum);
        if constexpr (kOffsets)
          f = _mm256_fmsub_ps(f, scales, offsets);
        else
          f = _mm256_mul_ps(f, scales);
        for (int j = 0; j < kP; ++j)
          acc[t][r][j] = _mm256_fmadd_ps(f, _mm256_set1_ps(sw[r][j]), acc[t][r][j]);
      }
    }
  };

  for (int64_t p = 0; p < fullSteps; ++p) step(p, kP);
  if (fullSteps < steps && lastPresent > 0)
    step(fullSteps, lastPresent);

  // Block j's accumulator took all 8 lanes times its scale; keep its own.
  __m256 total[RT][RN];
  for (int t = 0; t < RT; ++t)
    for (int r = 0; r < RN; ++r) {
      if constexpr (kP == 1)
        total[t][r] = acc[t][r][0];
      else
        total[t][r] = _mm256_blend_ps(acc[t][r][0], acc[t][r][1], 0xF0);
    }
  if constexpr (RN == 4) {
    for (int t = 0; t < RT; ++t)
      _mm_storeu_ps(a.y + (t0 + t) * a.N + n,
                    avx2Reduce4(total[t][0], total[t][1], total[t][2], total[t][3]));
  } else if constexpr (RT == 4 && RN == 1) {
    alignas(16) float sums[4];
    _mm_store_ps(sums, avx2Reduce4(total[0][0], total[1][0], total[2][0], total[3][0]));
    for (int t = 0; t < 4; ++t) a.y[(t0 + t) * a.N + n] = sums[t];
  } else {
    for (int t = 0; t < RT; ++t)
      for (int r = 0; r < RN; ++r)
        a.y[(t0 + t) * a.N + n + r] = _mm_cvtss_f32(
            avx2Reduce4(total[t][r], total[t][r], total[t][r], total[t][r]));
  }
}
