#pragma once
// Cap'n Proto framing (the standard stream format: segment table, then
// segments) with every size checked before anything is allocated.
#include <cstddef>
#include <memory>

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/array.h>

namespace troupe::net {

/// Frames larger than this are refused (the peer is dropped).
inline constexpr std::size_t kMaxFrameBytes = 64u << 20;
/// Cap'n Proto's own limit on segments per message.
inline constexpr std::size_t kMaxSegments = 512;

/// From the first word of a frame: how many words its segment table takes.
/// Throws DecodeError for a segment count past kMaxSegments.
std::size_t table_words(const capnp::word& first);
/// From the whole segment table: the frame's total size in words. Throws
/// DecodeError if it exceeds `max_bytes`.
std::size_t frame_words(kj::ArrayPtr<const capnp::word> table, std::size_t max_bytes = kMaxFrameBytes);

/// One received message: its words and a reader over them, together.
class Frame {
 public:
  /// Validates `words` as a message (ReaderOptions limits); DecodeError if not.
  explicit Frame(kj::Array<capnp::word> words);
  Frame(Frame&&) noexcept = default;
  Frame& operator=(Frame&&) noexcept = default;

  template <class S>
  typename S::Reader root() const {
    return reader_->getRoot<S>();
  }
  std::size_t bytes() const noexcept { return words_.size() * sizeof(capnp::word); }

 private:
  kj::Array<capnp::word> words_;
  std::unique_ptr<capnp::FlatArrayMessageReader> reader_;
};

/// Serialises a built message into one frame.
inline kj::Array<capnp::word> to_frame(capnp::MessageBuilder& b) { return capnp::messageToFlatArray(b); }

}  // namespace troupe::net
