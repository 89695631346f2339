#pragma once
// A counter-based draw shared by host and device code: element i under seed
// gets the same number everywhere, so masks agree across devices and runs.
#include <cstdint>

#ifdef __CUDACC__
#define TROUPE_HD __host__ __device__
#else
#define TROUPE_HD
#endif

namespace troupe::compute::detail {

TROUPE_HD inline std::uint64_t mix64(std::uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// Uniform in [0, 1) with 24 random bits (exact in float).
TROUPE_HD inline float uniform01(std::uint64_t seed, std::uint64_t i) {
  return static_cast<float>(mix64(mix64(seed) ^ i) >> 40) * (1.0f / 16777216.0f);
}

}  // namespace troupe::compute::detail
