// Two arguments for a method that takes one.
// expect: call_arity_error<int (Counter::*)(int), 1, 2>
// expect: wrong number of arguments for the method
#include "counter.hpp"

int main() {
  troupe::Runtime rt;
  auto c = rt.spawn<Counter>();
  return c.call(&Counter::add, 1, 2).get();  // error here
}
