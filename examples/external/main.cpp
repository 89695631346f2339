// An outside project's driver: a process actor (its own worker process, this
// executable re-run) and a mesh of in-process actors, through troupe's
// CMake package. Prints what it computed; exits 0 when it is right.
#include <cstdio>
#include <numeric>
#include <string>
#include <unistd.h>
#include <vector>

#include "runtime/troupe.hpp"

class Tally {
 public:
  explicit Tally(std::string name) : name_(std::move(name)) {}
  long add(std::vector<long> xs) { return total_ += std::accumulate(xs.begin(), xs.end(), 0L); }
  std::string where() const { return name_ + " in pid " + std::to_string(::getpid()); }

 private:
  std::string name_;
  long total_ = 0;
};
TROUPE_ACTOR(Tally, add, where);

int main(int argc, char** argv) {
  troupe::init(argc, argv);  // in the worker this hosts the Tally and never returns
  troupe::Runtime rt;
  auto remote = rt.spawn<Tally>(std::string("remote"), troupe::Options{}.process());
  const long sum = remote.call(&Tally::add, std::vector<long>{1, 2, 3, 4}).get();
  const std::string where = remote.call(&Tally::where).get();
  auto mesh = rt.spawn_mesh<Tally>(3, std::string("local"));
  const auto each = mesh.call(&Tally::add, std::vector<long>{5}).get();
  std::printf("external: remote sum %ld (%s, driver pid %d), mesh %zu x %ld\n", sum, where.c_str(),
              static_cast<int>(::getpid()), each.size(), each.at(0));
  const bool ok = sum == 10 && where.rfind("remote in pid ", 0) == 0 && each.size() == 3 && each[0] == 5 &&
                  where != "remote in pid " + std::to_string(::getpid());
  return ok ? 0 : 1;
}
