#pragma once
// The async pattern shared by the troupe rows: `batch` calls of an
// increment method, then wait for all (results checked); per-call time =
// batch time / batch.
#include <stdexcept>
#include <vector>

#include "runtime/troupe.hpp"
#include "tools/bench/report.hpp"

namespace troupe::bench {

template <class T, class M>
std::vector<double> call_batches(const ActorRef<T>& a, M inc, int calls, int batch) {
  std::vector<double> per_call;
  std::vector<Ref<int>> refs;
  refs.reserve(batch);
  for (int done = 0; done < calls; done += batch) {
    refs.clear();
    auto t0 = Clock::now();
    for (int i = 0; i < batch; ++i) refs.push_back(a.call(inc, i));
    for (int i = 0; i < batch; ++i)
      if (refs[i].get() != i + 1) throw std::runtime_error("bench: wrong result from an async call");
    per_call.push_back(micros(Clock::now() - t0) / batch);
  }
  return per_call;
}

}  // namespace troupe::bench
