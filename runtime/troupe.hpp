#pragma once
// Everything a driver program needs from the runtime.
#include "runtime/actor_ref.hpp"
#include "runtime/context.hpp"
#include "runtime/init.hpp"
#include "runtime/errors.hpp"
#include "runtime/mesh.hpp"
#include "runtime/options.hpp"
#include "runtime/ref.hpp"
#include "runtime/runtime.hpp"
#include "runtime/task.hpp"
#include "runtime/when.hpp"
