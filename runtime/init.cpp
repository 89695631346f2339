#include "runtime/init.hpp"

#include "runtime/remote/remote_actor.hpp"

namespace troupe {

void init(int, char**) { remote::run_worker_if_requested(); }

}  // namespace troupe
