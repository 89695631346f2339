// A string for an int parameter, through a mesh: the error names the method,
// the parameter and both types, and the caller's line.
// expect: call_argument_error<int (Counter::*)(int), 1, int, const char (&)[5]>
// expect: this argument cannot be passed to the method's parameter
#include "counter.hpp"

int main() {
  troupe::Runtime rt;
  auto mesh = rt.spawn_mesh<Counter>(4);
  return static_cast<int>(mesh.call(&Counter::add, "five").get().size());  // error here
}
