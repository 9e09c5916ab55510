// A shared library for uprobes_test, loaded by shop.cc with dlopen.
extern "C" __attribute__((noinline, visibility("default"))) int greet(int times) {
  volatile int sum = 0;  // a loop the compiler keeps: the call takes time
  for (int i = 0; i < times; ++i) sum = sum + i;
  return sum;
}
