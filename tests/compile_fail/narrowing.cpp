// A double for an int parameter would be truncated: refused where it is written.
// expect: call_argument_narrows<int (Counter::*)(int), 1, int, double>
// expect: would be narrowed to the method's parameter type
#include "counter.hpp"

int main() {
  troupe::Runtime rt;
  auto c = rt.spawn<Counter>();
  return c.call(&Counter::add, 2.9).get();  // error here
}
