#include "actors/compute/tensor.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include <fmt/format.h>

#include "actors/compute/errors.hpp"
#include "actors/compute/half.hpp"
#include "actors/compute/stream.hpp"

namespace troupe::compute {

Device Device::parse(const std::string& text) {
  if (text == "cpu") return cpu();
  if (text == "cuda") return cuda(0);
  if (text.rfind("cuda:", 0) == 0 && text.size() > 5 &&
      std::all_of(text.begin() + 5, text.end(), [](char c) { return c >= '0' && c <= '9'; }) && text.size() < 10)
    return cuda(std::atoi(text.c_str() + 5));
  throw UsageError(fmt::format("unknown device '{}': expected cpu, cuda or cuda:N", text));
}

std::string Device::str() const { return kind == Kind::cpu ? "cpu" : fmt::format("cuda:{}", index); }

std::string shape_str(const Shape& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

std::int64_t shape_numel(const Shape& s) {
  std::int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

Storage::Storage(std::size_t bytes, Device dev) : bytes_(bytes), dev_(dev) {
  if (dev.is_cuda()) {
    ptr_ = detail::device_alloc(std::max<std::size_t>(bytes, 1), dev.index);
  } else {
    ptr_ = std::aligned_alloc(64, (std::max<std::size_t>(bytes, 1) + 63) / 64 * 64);
    if (!ptr_) throw std::bad_alloc();
  }
}

Storage::Storage(void* data, std::size_t bytes, Device dev, std::shared_ptr<void> owner)
    : ptr_(data), bytes_(bytes), dev_(dev), owned_(false), owner_(std::move(owner)) {}

Storage::~Storage() {
  if (!owned_) return;
  if (dev_.is_cuda())
    detail::device_free(ptr_, dev_.index);
  else
    std::free(ptr_);
}

namespace {

Shape contiguous_strides(const Shape& shape) {
  Shape st(shape.size());
  std::int64_t s = 1;
  for (std::size_t i = shape.size(); i-- > 0;) {
    st[i] = s;
    s *= shape[i];
  }
  return st;
}

int dev_index(Device d) { return d.is_cuda() ? d.index : -1; }

}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype, Device dev) {
  for (auto d : shape)
    if (d < 0) throw ShapeError(fmt::format("tensor shape {} has a negative dimension", shape_str(shape)));
  Tensor t;
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.dtype_ = dtype;
  t.storage_ = std::make_shared<Storage>(static_cast<std::size_t>(shape_numel(shape)) * dtype_size(dtype), dev);
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device dev) {
  Tensor t = empty(shape, dtype, dev);
  t.zero();
  return t;
}

Tensor Tensor::from(const std::vector<float>& values, const Shape& shape) {
  if (static_cast<std::int64_t>(values.size()) != shape_numel(shape))
    throw ShapeError(fmt::format("{} values do not fill a tensor of shape {}", values.size(), shape_str(shape)));
  Tensor t = empty(shape);
  if (!values.empty()) std::memcpy(t.raw(), values.data(), values.size() * sizeof(float));
  return t;
}

Tensor Tensor::from_i32(const std::vector<std::int32_t>& values, const Shape& shape) {
  if (static_cast<std::int64_t>(values.size()) != shape_numel(shape))
    throw ShapeError(fmt::format("{} values do not fill a tensor of shape {}", values.size(), shape_str(shape)));
  Tensor t = empty(shape, DType::i32);
  if (!values.empty()) std::memcpy(t.raw(), values.data(), values.size() * sizeof(std::int32_t));
  return t;
}

Tensor Tensor::wrap(float* data, const Shape& shape, Device dev, std::shared_ptr<void> owner) {
  Tensor t;
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.storage_ = std::make_shared<Storage>(data, static_cast<std::size_t>(shape_numel(shape)) * sizeof(float), dev,
                                         std::move(owner));
  return t;
}

std::int64_t Tensor::size(std::int64_t d) const {
  if (d < 0) d += dim();
  if (d < 0 || d >= dim()) throw ShapeError(fmt::format("dimension {} of a {}-D tensor", d, dim()));
  return shape_[static_cast<std::size_t>(d)];
}

bool Tensor::contiguous() const noexcept { return strides_ == contiguous_strides(shape_); }

float* Tensor::f32() const {
  if (!defined()) throw ShapeError("an undefined tensor has no data");
  if (dtype_ != DType::f32) throw ShapeError(fmt::format("{} is not float32", describe()));
  return static_cast<float*>(storage_->data()) + offset_;
}

std::int32_t* Tensor::i32() const {
  if (!defined()) throw ShapeError("an undefined tensor has no data");
  if (dtype_ != DType::i32) throw ShapeError(fmt::format("{} is not int32", describe()));
  return static_cast<std::int32_t*>(storage_->data()) + offset_;
}

void* Tensor::raw() const noexcept {
  if (!storage_) return nullptr;
  return static_cast<char*>(storage_->data()) + offset_ * static_cast<std::int64_t>(dtype_size(dtype_));
}

Tensor Tensor::view(const Shape& shape) const {
  if (!contiguous()) throw ShapeError(fmt::format("view of a non-contiguous {}: take contiguous copy first", describe()));
  Shape s = shape;
  std::int64_t known = 1;
  int infer = -1;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      if (infer >= 0) throw ShapeError(fmt::format("view shape {} has more than one -1", shape_str(shape)));
      infer = static_cast<int>(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0 && known > 0) s[static_cast<std::size_t>(infer)] = numel() / known;
  if (shape_numel(s) != numel())
    throw ShapeError(fmt::format("cannot view {} as {}", describe(), shape_str(shape)));
  Tensor t = *this;
  t.shape_ = s;
  t.strides_ = contiguous_strides(s);
  return t;
}

Tensor Tensor::narrow(std::int64_t start, std::int64_t length) const {
  if (dim() < 1 || start < 0 || length < 0 || start + length > shape_[0])
    throw ShapeError(fmt::format("rows [{}, {}) of {}", start, start + length, describe()));
  Tensor t = *this;
  t.offset_ += start * strides_[0];
  t.shape_[0] = length;
  return t;
}

Tensor Tensor::transposed() const {
  if (dim() != 2) throw ShapeError(fmt::format("transposed() wants a 2-D tensor, got {}", describe()));
  Tensor t = *this;
  std::swap(t.shape_[0], t.shape_[1]);
  std::swap(t.strides_[0], t.strides_[1]);
  return t;
}

Tensor Tensor::to(Device dev, Stream* stream) const {
  Tensor out = empty(shape_, dtype_, dev);
  out.copy_from(*this, stream);
  return out;
}

Tensor Tensor::clone() const { return to(device()); }

void Tensor::copy_from(const Tensor& src, Stream* stream) {
  if (src.shape_ != shape_ || src.dtype_ != dtype_)
    throw ShapeError(fmt::format("copy of {} into {}", src.describe(), describe()));
  if (!contiguous()) throw ShapeError(fmt::format("copy into a non-contiguous {}", describe()));
  if (numel() == 0) return;
  if (src.contiguous()) {
    detail::copy_bytes(raw(), dev_index(device()), src.raw(), dev_index(src.device()), nbytes(), stream);
    return;
  }
  if (src.dim() != 2 || dtype_ != DType::f32)
    throw ShapeError(fmt::format("copy of a non-contiguous {}: only 2-D float32 views are supported", src.describe()));
  const auto rows = shape_[0], cols = shape_[1];
  const auto rs = src.strides_[0], cs = src.strides_[1];
  // First a contiguous copy where src lives, unless that is already the destination.
  Tensor packed = device() == src.device() ? *this : empty(shape_, dtype_, src.device());
  if (src.device().is_cuda()) {
    detail::device_copy_strided(packed.f32(), src.f32(), rows, cols, rs, cs, src.device().index, stream);
  } else {
    const float* from = src.f32();
    float* to = packed.f32();
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < cols; ++c) to[r * cols + c] = from[r * rs + c * cs];
  }
  if (!packed.same_storage(*this)) copy_from(packed, stream);
}

void Tensor::fill(float value) {
  if (!contiguous()) throw ShapeError(fmt::format("fill of a non-contiguous {}", describe()));
  if (device().is_cuda())
    return detail::device_fill(f32(), static_cast<std::size_t>(numel()), value, device().index, nullptr);
  std::fill_n(f32(), numel(), value);
}

void Tensor::zero() {
  if (!defined()) return;
  if (!contiguous()) throw ShapeError(fmt::format("zero of a non-contiguous {}", describe()));
  if (device().is_cuda()) {
    if (nbytes() % 4 == 0 && reinterpret_cast<std::uintptr_t>(raw()) % 4 == 0)
      return detail::device_fill(static_cast<float*>(raw()), nbytes() / 4, 0.0f, device().index, nullptr);
    const std::vector<char> zeros(nbytes());  // half elements in odd numbers or places
    return detail::copy_bytes(raw(), device().index, zeros.data(), -1, nbytes(), nullptr);
  }
  std::memset(raw(), 0, nbytes());
}

std::vector<float> Tensor::to_vector() const {
  if (!defined()) return {};
  Tensor host = device().is_cuda() || !contiguous() ? to(Device::cpu()) : *this;
  if (is_half(dtype_)) host = cast_to(host, DType::f32);  // the host conversion (half.cpp)
  const float* p = host.f32();
  return std::vector<float>(p, p + numel());
}

float Tensor::item() const {
  if (numel() != 1) throw ShapeError(fmt::format("item() of {}: it holds {} elements", describe(), numel()));
  return to_vector()[0];
}

std::string Tensor::describe() const {
  if (!defined()) return "an undefined tensor";
  return fmt::format("{}{} on {}", dtype_name(dtype_), shape_str(shape_), device().str());
}

void expect(const Tensor& t, const Shape& shape, Device dev, const char* what) {
  if (!t.defined() || t.dtype() != DType::f32 || t.shape() != shape || t.device() != dev)
    throw ShapeError(fmt::format("{}: expected f32{} on {}, got {}", what, shape_str(shape), dev.str(), t.describe()));
}

}  // namespace troupe::compute
