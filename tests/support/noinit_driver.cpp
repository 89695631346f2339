// A driver that forgets troupe::init(argc, argv) in main (integration tests
// run it as a driver, and as a launcher would start one of its workers).
#include <cstdio>

#include "runtime/troupe.hpp"

namespace {
class Counter {
 public:
  int add(int n) { return total_ += n; }

 private:
  int total_ = 0;
};
}  // namespace
TROUPE_ACTOR(Counter, add);

int main() {
  troupe::Runtime rt({.threads = 1});
  std::puts("driver: runtime made");
  try {
    auto c = rt.spawn<Counter>(troupe::Options{}.process());
    std::printf("driver: spawned, add -> %d\n", c.call(&Counter::add, 1).get());
  } catch (const troupe::UsageError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 3;
  }
  return 0;
}
