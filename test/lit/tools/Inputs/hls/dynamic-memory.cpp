#include <stdint.h>
#include <stdlib.h>

int32_t sum(int n) {
  int32_t *buffer = new int32_t[16];
  int32_t *more = (int32_t *)malloc(16 * sizeof(int32_t));
  void *grown = realloc(more, 32);
  int32_t *zeros = static_cast<int32_t *>(calloc(4, 4));
  int32_t total = buffer[0] + zeros[0];
  delete[] buffer;
  free(grown);
  return total;
}

// A macro's allocation counts where the macro is used.
#define ALLOCATE(n) new int32_t[n]
int32_t *fromMacro() { return ALLOCATE(8); }
