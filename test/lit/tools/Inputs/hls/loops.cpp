#include <stdint.h>

constexpr int N = 16;

int32_t loops(int32_t n, const int32_t *data) {
  int32_t sum = 0;
  int i = 0;
  while (i < N)
    sum += data[i++];
  do {
    sum--;
  } while (sum > 100);
  for (int j = 0; j < n; ++j)
    sum += data[j];
  for (int j = 0; j < N; j += n)
    sum += data[j];
  for (int j = 0; j < N; j *= 2)
    sum += data[j];
  for (int j = 0;; ++j)
    if (j == N)
      break;
  for (int j = 0; j < N && data[j] != 0; ++j)
    sum += 1;
  for (int j = 0, k = 0; k < N; ++j)
    sum += data[j];
  for (int j = 0; j < N;)
    sum += data[j++];
  return sum;
}
