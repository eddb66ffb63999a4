struct Op {
  virtual int apply(int x) const { return x; }
  virtual ~Op() {}
};

struct Twice : Op {
  int apply(int x) const override { return 2 * x; }
};

typedef int (*UnaryFn)(int);

int inc(int x) { return x + 1; }

int run(const Op &op, UnaryFn fn, int x) {
  int (*table[2])(int) = {inc, inc};
  int direct = inc(x);
  return op.apply(x) + fn(x) + table[1](x) + (*fn)(direct);
}
