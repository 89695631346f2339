#pragma once
// The errors compute code raises; all are troupe::Error, with messages that
// name the operand, file or device at fault.
#include "runtime/errors.hpp"

namespace troupe::compute {

/// An operand with the wrong shape, dtype or device for an operation.
class ShapeError : public UsageError {
 public:
  using UsageError::UsageError;
};

/// A CUDA or cuBLAS call failed, or a device was asked for that is not there.
class DeviceError : public Error {
 public:
  using Error::Error;
};

}  // namespace troupe::compute
