#pragma once
// NCCL's entry points, as the CUDA plugin hands them over (cuda_api.hpp).
#include <nccl.h>

#include "runtime/coll/detail/cuda_api.hpp"

namespace troupe::coll::gpu {

struct NcclApi {
#define TROUPE_API_ENTRY(f) decltype(&::f) f = nullptr;
  TROUPE_NCCL_API(TROUPE_API_ENTRY)
#undef TROUPE_API_ENTRY
};

/// The plugin's NCCL; Error naming why when there is none.
const NcclApi& nc();

}  // namespace troupe::coll::gpu
