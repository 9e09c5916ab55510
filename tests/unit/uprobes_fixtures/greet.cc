// A shared library for uprobes_test, loaded by shop.cc with dlopen.
extern "C" __attribute__((noinline, visibility("default"))) int greet(int times) {
  int sum = 0;
  for (int i = 0; i < times; ++i) sum += i;
  return sum;
}
