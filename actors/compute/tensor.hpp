#pragma once
// A small owned tensor: shared storage on one device, a shape, strides and an
// element type. Views (view, narrow, transposed) share the storage; copies
// between host and device run on a stream. Nothing here includes CUDA.
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "actors/compute/dtype.hpp"
#include "runtime/enum_words.hpp"

namespace troupe::compute {


/// Where a tensor's storage lives: the host, or one CUDA device.
struct Device {
  enum class Kind : std::uint8_t { cpu, cuda };
  Kind kind = Kind::cpu;
  int index = 0;

  static Device cpu() { return {}; }
  static Device cuda(int i = 0) { return {Kind::cuda, i}; }
  /// "cpu", "cuda", "cuda:1"; anything else is a UsageError naming the text.
  static Device parse(const std::string& text);
  bool is_cuda() const noexcept { return kind == Kind::cuda; }
  std::string str() const;
  bool operator==(const Device&) const = default;
};

}  // namespace troupe::compute

template <>
struct troupe::EnumWords<troupe::compute::Device::Kind> {
  static constexpr std::array<std::string_view, 2> words{"cpu", "cuda"};
};

namespace troupe::compute {

/// "cpu", "cuda".
constexpr std::string_view to_string(Device::Kind k) noexcept { return enum_word(k); }

class Stream;  // compute/stream.hpp

using Shape = std::vector<std::int64_t>;
std::string shape_str(const Shape& s);
std::int64_t shape_numel(const Shape& s);

/// Owned bytes on a device, 64-byte aligned on the host.
class Storage {
 public:
  Storage(std::size_t bytes, Device dev);
  /// Memory owned elsewhere (a collective group's shared buffer, say), kept
  /// alive by owner for as long as this storage lives.
  Storage(void* data, std::size_t bytes, Device dev, std::shared_ptr<void> owner);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const noexcept { return ptr_; }
  std::size_t bytes() const noexcept { return bytes_; }
  Device device() const noexcept { return dev_; }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
  Device dev_;
  bool owned_ = true;            // false: the memory is not ours to free
  std::shared_ptr<void> owner_;  // keeps memory owned elsewhere alive
};

class Tensor {
 public:
  Tensor() = default;  ///< undefined: no storage

  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device dev = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device dev = Device::cpu());
  /// A float32 host tensor holding values (their count must match the shape).
  static Tensor from(const std::vector<float>& values, const Shape& shape);
  /// A float32 tensor over memory owned elsewhere (see Storage).
  static Tensor wrap(float* data, const Shape& shape, Device dev, std::shared_ptr<void> owner = {});
  static Tensor from_i32(const std::vector<std::int32_t>& values, const Shape& shape);

  bool defined() const noexcept { return storage_ != nullptr; }
  DType dtype() const noexcept { return dtype_; }
  Device device() const noexcept { return storage_ ? storage_->device() : Device::cpu(); }
  const Shape& shape() const noexcept { return shape_; }
  const Shape& strides() const noexcept { return strides_; }
  std::int64_t dim() const noexcept { return static_cast<std::int64_t>(shape_.size()); }
  std::int64_t size(std::int64_t d) const;
  std::int64_t numel() const noexcept { return shape_numel(shape_); }
  std::size_t nbytes() const noexcept { return static_cast<std::size_t>(numel()) * dtype_size(dtype_); }
  bool contiguous() const noexcept;
  bool same_storage(const Tensor& o) const noexcept { return storage_ == o.storage_; }

  /// Typed pointer to the first element (float32 tensors; any device).
  float* f32() const;
  /// Typed pointer to the first element (int32 tensors: class labels).
  std::int32_t* i32() const;
  /// Untyped pointer to the first element.
  void* raw() const noexcept;

  /// Same elements, another shape (one entry may be -1); contiguous tensors only.
  Tensor view(const Shape& shape) const;
  /// Rows [start, start+length) along dim 0 (a view).
  Tensor narrow(std::int64_t start, std::int64_t length) const;
  /// A 2-D tensor with its dimensions swapped (a strided view).
  Tensor transposed() const;

  /// A contiguous copy on dev; on a CUDA device the copy is queued on stream
  /// (the default stream when null) and ordered after work already there.
  Tensor to(Device dev, Stream* stream = nullptr) const;
  /// A contiguous copy on the same device.
  Tensor clone() const;
  /// Copies src (same shape and dtype, any device) into this tensor.
  void copy_from(const Tensor& src, Stream* stream = nullptr);
  void fill(float value);
  void zero();

  /// The elements in row-major order, copied to the host (synchronously).
  std::vector<float> to_vector() const;
  float item() const;

  std::string describe() const;  ///< "f32[128, 784] on cpu"

 private:
  std::shared_ptr<Storage> storage_;
  std::int64_t offset_ = 0;  // in elements
  Shape shape_, strides_;
  DType dtype_ = DType::f32;
};

/// Throws ShapeError unless t is a defined float32 tensor of exactly this shape
/// on dev; what names the operand in the message.
void expect(const Tensor& t, const Shape& shape, Device dev, const char* what);

}  // namespace troupe::compute
