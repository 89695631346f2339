// TROUPE_ACTOR lists a method whose parameter cannot travel to a process
// actor: refused at compile time, naming the method and the type.
// expect: actor_method_type_cannot_travel<int (Store::*)(Opaque*), Opaque*>
// expect: TROUPE_ACTOR(Store, take): a parameter or the result of Store::take cannot be sent to a process actor
#include <mutex>

#include "runtime/troupe.hpp"

struct Opaque {
  std::mutex m;
};

class Store {
 public:
  int put(int v) { return v; }
  int take(Opaque* o) { return o ? 1 : 0; }
};
TROUPE_ACTOR(Store, put, take);  // error here

int main() {}
