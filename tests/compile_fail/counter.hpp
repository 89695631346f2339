#pragma once
// The actor the call cases get wrong.
#include "runtime/troupe.hpp"

class Counter {
 public:
  int add(int n) { return total_ += n; }

 private:
  int total_ = 0;
};
