#include "runtime/net/frame.hpp"

#include <cstring>

#include <fmt/format.h>
#include <kj/exception.h>

#include "runtime/codec/capnp.hpp"
#include "runtime/errors.hpp"

namespace troupe::net {

namespace {
std::uint32_t u32_at(const capnp::word* w, std::size_t index) {
  std::uint32_t v;
  std::memcpy(&v, reinterpret_cast<const std::byte*>(w) + 4 * index, 4);
  return v;
}
}  // namespace

std::size_t table_words(const capnp::word& first) {
  std::size_t segments = std::size_t{u32_at(&first, 0)} + 1;
  if (segments > kMaxSegments)
    throw DecodeError(fmt::format("frame: {} segments (at most {})", segments, kMaxSegments));
  // 4 bytes of count, 4 per segment size, padded to a word.
  return (4 + 4 * segments + 7) / 8;
}

std::size_t frame_words(kj::ArrayPtr<const capnp::word> table, std::size_t max_bytes) {
  std::size_t segments = std::size_t{u32_at(table.begin(), 0)} + 1;
  std::size_t total = table.size();
  const std::size_t max_words = max_bytes / sizeof(capnp::word);
  for (std::size_t i = 0; i < segments; ++i) {
    total += u32_at(table.begin(), i + 1);
    if (total > max_words)
      throw DecodeError(fmt::format("frame: more than {} bytes (limit {})", total * 8, max_bytes));
  }
  return total;
}

Frame::Frame(kj::Array<capnp::word> words) : words_(std::move(words)) {
  codec::validate_capnp(words_.asPtr());
  reader_ = std::make_unique<capnp::FlatArrayMessageReader>(words_.asPtr(), codec::reader_options(words_.size()));
}

}  // namespace troupe::net
