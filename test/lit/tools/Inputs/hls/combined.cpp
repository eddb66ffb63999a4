// One violation of each rule in a kernel-shaped file (hls-lint.test).
#include <stdint.h>
#include <vector>

struct Stage {
  virtual int32_t run(int32_t x) = 0;
};

static int32_t depth(int32_t n) { return n == 0 ? 0 : 1 + depth(n - 1); }

extern "C" void kernel(const int8_t *w, int32_t *y, int32_t n, int32_t (*act)(int32_t)) {
#pragma HLS INTERFACE mode=m_axi port=w bundle=gmem0
#pragma HLS PIPELNE II=1
  std::vector<int32_t> partial(n);
  int32_t *scratch = new int32_t[n];
  for (int i = 0; i < n; ++i) {
#pragma HLS UNROLL factor=2 regoin
    scratch[i] = act(w[i]) + depth(i);
  }
  y[0] = scratch[0] + partial[0];
  delete[] scratch;
}
