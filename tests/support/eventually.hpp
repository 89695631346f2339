// Waiting in tests for something another thread or process brings about:
// polled, bounded in time, and the last look decides.
#pragma once

#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

namespace troupe::test {

template <class F>
bool wait_until(F pred, std::chrono::milliseconds limit = std::chrono::seconds(10),
                std::chrono::milliseconds poll = std::chrono::milliseconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(poll);
  }
  return pred();
}

/// REQUIREs that pred() becomes true within limit.
template <class F>
void eventually(F pred, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  REQUIRE(wait_until(pred, limit));
}

}  // namespace troupe::test
