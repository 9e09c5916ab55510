// A program for uprobes_test: prints where its functions are in memory (as
// the process itself sees them), then waits for a line on stdin, so that the
// test can resolve the same functions from the outside and compare.
//
//   shop LIB         dlopen LIB at start
//   shop late LIB    (test_uprobes.py) dlopen LIB after the first line on
//                    stdin, print "loaded"; after the second, call its greet()
//                    for a few milliseconds, print "called"; exit at EOF
#include <dlfcn.h>

#include <cstdio>
#include <stdexcept>
#include <string>

namespace Shop {
__attribute__((noinline)) int validate(int order) {
  if (order < 0) throw std::invalid_argument("negative order");
  return order * 2;
}
struct Cart {
  __attribute__((noinline)) long total(long n) const { return n > 0 ? n + validate(int(n)) : 0; }
};
}  // namespace Shop

static __attribute__((noinline)) int local_only(int x) { return x * 3; }

extern "C" __attribute__((noinline)) int plain_c_function(int x) { return local_only(x) + 1; }

int Late(const char* path) {
  char line[8];
  if (!std::fgets(line, sizeof(line), stdin)) return 1;
  void* lib = dlopen(path, RTLD_NOW);
  auto greet = lib ? reinterpret_cast<int (*)(int)>(dlsym(lib, "greet")) : nullptr;
  if (!greet) return 1;
  std::printf("loaded\n");
  std::fflush(stdout);
  if (!std::fgets(line, sizeof(line), stdin)) return 1;
  volatile int sum = greet(20'000'000);
  (void)sum;
  std::printf("called\n");
  std::fflush(stdout);
  while (std::fgets(line, sizeof(line), stdin)) {
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "late") return Late(argv[2]);
  void* lib = argc > 1 ? dlopen(argv[1], RTLD_NOW) : nullptr;
  void* greet = lib ? dlsym(lib, "greet") : nullptr;
  long (Shop::Cart::*total)(long) const = &Shop::Cart::total;
  void* total_addr;
  static_assert(sizeof(total) >= sizeof(void*));
  __builtin_memcpy(&total_addr, &total, sizeof(void*));
  std::printf("validate %p\ntotal %p\nplain %p\ngreet %p\n", (void*)&Shop::validate, total_addr,
              (void*)&plain_c_function, greet);
  std::fflush(stdout);
  char line[8];
  if (!std::fgets(line, sizeof(line), stdin)) return 0;
  return Shop::Cart{}.total(plain_c_function(1)) > 0 ? 0 : 1;
}
