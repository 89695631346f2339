#pragma once
// The codec for remote calls: C++ values <-> bytes, defensively decoded.
//
// Supported: arithmetic types and enums, std::string, std::vector, std::array,
// std::map / std::unordered_map, std::pair / std::tuple, std::optional,
// troupe::Bytes, Cap'n Proto messages (codec/capnp.hpp) and user structs that
// list their fields with TROUPE_FIELDS(...). Every length read from the input is
// checked against the bytes left before anything is allocated; truncated or
// garbage input raises DecodeError, never reads past the end.
//
// Wire format: little-endian; lengths and counts are u64; bool is one byte 0/1;
// optional is a 0/1 tag byte then the value.
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/errors.hpp"

/// Declares a struct's fields for the codec; put it inside the struct:
///   struct Point { double x, y; std::string label; TROUPE_FIELDS(x, y, label) };
/// The struct must be default-constructible.
#define TROUPE_FIELDS(...)                                                 \
  auto troupe_fields() noexcept { return std::tie(__VA_ARGS__); }          \
  auto troupe_fields() const noexcept { return std::tie(__VA_ARGS__); }

namespace troupe {

/// An opaque byte buffer (encoded with one length prefix and a bulk copy).
using Bytes = std::vector<std::byte>;

namespace codec {

static_assert(std::endian::native == std::endian::little, "troupe's codec assumes a little-endian host");

/// Containers nested deeper than this are refused (stack safety on hostile input).
inline constexpr int kMaxDepth = 64;

class Writer {
 public:
  void put(const void* p, std::size_t n) {
    if (n == 0) return;
    auto* b = static_cast<const std::byte*>(p);
    buf_.insert(buf_.end(), b, b + n);
  }
  template <class T>
  void put_scalar(T v) {
    put(&v, sizeof v);
  }
  void put_len(std::size_t n) { put_scalar<std::uint64_t>(n); }
  std::vector<std::byte>& buffer() noexcept { return buf_; }
  std::vector<std::byte> take() noexcept { return std::move(buf_); }

 private:
  std::vector<std::byte> buf_;
};

class Reader {
 public:
  explicit Reader(std::span<const std::byte> in) : begin_(in.data()), p_(in.data()), end_(in.data() + in.size()) {}

  std::size_t left() const noexcept { return static_cast<std::size_t>(end_ - p_); }
  std::size_t offset() const noexcept { return static_cast<std::size_t>(p_ - begin_); }

  /// Throws DecodeError unless `n` more bytes are there.
  void need(std::size_t n, const char* what) const;
  const std::byte* take(std::size_t n, const char* what) {
    need(n, what);
    const std::byte* at = p_;
    p_ += n;
    return at;
  }
  template <class T>
  T get_scalar(const char* what) {
    T v;
    std::memcpy(&v, take(sizeof v, what), sizeof v);
    return v;
  }
  /// A count of elements each at least `min_size` bytes: checked against what is left.
  std::size_t get_count(std::size_t min_size, const char* what);

  class Depth {
   public:
    explicit Depth(Reader& r);
    ~Depth() { --r_.depth_; }
    Depth(const Depth&) = delete;
    Depth& operator=(const Depth&) = delete;

   private:
    Reader& r_;
  };

 private:
  const std::byte* begin_;
  const std::byte* p_;
  const std::byte* end_;
  int depth_ = 0;
};

/// Codec<T>: static encode(Writer&, const T&), decode(Reader&) -> T, and
/// min_size (the fewest bytes any encoding of a T takes).
template <class T, class = void>
struct Codec;

template <class T>
concept Encodable = requires(Writer& w, Reader& r, const T& v) {
  Codec<T>::encode(w, v);
  { Codec<T>::decode(r) } -> std::same_as<T>;
};

template <class T>
void encode(Writer& w, const T& v) {
  Codec<T>::encode(w, v);
}
template <class T>
T decode(Reader& r) {
  return Codec<T>::decode(r);
}

/// Encodes one value into a fresh buffer.
template <class T>
std::vector<std::byte> to_bytes(const T& v) {
  Writer w;
  encode(w, v);
  return w.take();
}

void fail_trailing(std::size_t n, const char* type);

/// Decodes exactly one T from `in` (trailing bytes are an error).
template <class T>
T from_bytes(std::span<const std::byte> in) {
  Reader r(in);
  T v = decode<T>(r);
  if (r.left()) fail_trailing(r.left(), typeid(T).name());
  return v;
}

}  // namespace codec
}  // namespace troupe

#include "runtime/codec/codec_types.hpp"
