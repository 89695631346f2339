#include "runtime/codec/codec.hpp"

#include <fmt/format.h>

#include "runtime/detail/type_name.hpp"

namespace troupe::codec {

void Reader::need(std::size_t n, const char* what) const {
  if (n > left())
    throw DecodeError(fmt::format("codec: truncated input: {} needs {} bytes at offset {}, only {} left", what, n,
                                  offset(), left()));
}

std::size_t Reader::get_count(std::size_t min_size, const char* what) {
  const std::size_t at = offset();
  auto n = get_scalar<std::uint64_t>(what);
  // Checked before any allocation: a hostile length cannot make us reserve memory.
  if (min_size > 0 && n > left() / min_size)
    throw DecodeError(fmt::format("codec: {} of {} elements at offset {} cannot fit in the {} bytes left", what,
                                  n, at, left()));
  if (min_size == 0 && n > left() + 1'000'000)
    throw DecodeError(fmt::format("codec: {} of {} elements at offset {} is implausibly long", what, n, at));
  return static_cast<std::size_t>(n);
}

Reader::Depth::Depth(Reader& r) : r_(r) {
  if (++r_.depth_ > kMaxDepth) {
    --r_.depth_;
    throw DecodeError(fmt::format("codec: values nested deeper than {} at offset {}", kMaxDepth, r_.offset()));
  }
}

bool Codec<bool>::decode(Reader& r) {
  auto b = r.get_scalar<std::uint8_t>("a bool");
  if (b > 1) throw DecodeError(fmt::format("codec: bool byte {} at offset {} is not 0 or 1", b, r.offset() - 1));
  return b == 1;
}

void fail_enum(std::int64_t value, std::size_t at, std::size_t words) {
  throw DecodeError(fmt::format("codec: enum value {} at offset {} is not one of its {} named values", value, at, words));
}

void fail_trailing(std::size_t n, const char* type) {
  throw DecodeError(fmt::format("codec: {} trailing bytes after a {}", n, detail::demangle(type)));
}

}  // namespace troupe::codec
