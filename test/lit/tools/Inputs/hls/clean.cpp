// Plain stdint code Vitis HLS synthesizes: fixed-size arrays, static loops,
// INTERFACE pragmas on every pointer/array port. lathe-hls-lint passes it.
#include <stdint.h>

constexpr int kRows = 64;
constexpr int kCols = 32;
enum { kGroup = 8 };

static const int8_t kTable[4] = {0, 1, -1, 2};

template <int N> int32_t dot(const int8_t (&a)[N], const int8_t (&b)[N]) {
  int32_t sum = 0;
  for (int i = 0; i < N; ++i) {
#pragma HLS UNROLL factor=4
    sum += a[i] * b[i];
  }
  return sum;
}

static int32_t groupSum(const int8_t *w) {
  int32_t sum = 0;
  for (int g = kGroup - 1; g >= 0; g -= 1)
    sum = sum + w[g];
  for (unsigned k = 0; k != 16; k = k + 2)
    sum += kTable[k & 3];
  return sum;
}

struct Accumulator {
  int32_t lanes[kGroup];
  int32_t total() const {
    int32_t t = 0;
    for (int i = 0; i < kGroup; i++)
      t += lanes[i];
    return t;
  }
};

extern "C" void matvec(const int8_t *w, const int8_t x[kCols], int32_t *y, int n) {
#pragma HLS INTERFACE mode=m_axi port=w bundle=gmem0 depth=2048
#pragma HLS INTERFACE m_axi port=x offset=slave bundle=gmem1
#pragma HLS INTERFACE mode=m_axi port=y bundle=gmem1 \
    depth=64
#pragma HLS INTERFACE mode=s_axilite port=return
  int8_t local[kCols];
#pragma HLS ARRAY_PARTITION variable=local type=cyclic factor=8 dim=1
  for (int c = 0; c < kCols; ++c)
    local[c] = x[c];
rows:
  for (int r = 0; r < kRows; r++) {
#pragma HLS pipeline II=1
#pragma HLS LOOP_TRIPCOUNT min=1 max=64
    int8_t row[kCols];
    for (int c = 0; c < kCols; ++c)
      row[c] = w[r * kCols + c];
    y[r] = dot<kCols>(row, local) + groupSum(row) + n;
  }
  int32_t values[4] = {1, 2, 3, 4};
  for (int32_t v : values)
    y[0] += v;
}

#if 0
#pragma HLS PIPEPLINE
#endif
