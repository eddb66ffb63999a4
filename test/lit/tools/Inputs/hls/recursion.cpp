#include <stdint.h>

int32_t factorial(int32_t n) { return n <= 1 ? 1 : n * factorial(n - 1); }

bool isOdd(int32_t n);
bool isEven(int32_t n) { return n == 0 ? true : isOdd(n - 1); }
bool isOdd(int32_t n) { return n == 0 ? false : isEven(n - 1); }

int32_t leaf(int32_t n) { return n + 1; }
int32_t caller(int32_t n) { return leaf(n) + leaf(n + 1); }
