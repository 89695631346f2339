#pragma once
// Cap'n Proto structs as call arguments and results: CapnpMessage<S> owns one
// flat message whose root is an S. Decoding validates the whole message under
// ReaderOptions limits, so a bad message is a DecodeError at the edge.
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <capnp/blob.h>
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/array.h>

#include "runtime/codec/codec.hpp"

namespace troupe {

namespace codec {
/// Limits for untrusted messages: traversal bounded by a multiple of the size
/// (no amplification), nesting bounded for stack safety.
capnp::ReaderOptions reader_options(std::size_t words);
/// Validates `words` as a message with a struct root; DecodeError if not.
void validate_capnp(kj::ArrayPtr<const capnp::word> words);

/// A Data field's bytes, as codec::Reader and from_bytes take them.
inline std::span<const std::byte> bytes_of(capnp::Data::Reader d) {
  return {reinterpret_cast<const std::byte*>(d.begin()), d.size()};
}
/// A Data field's bytes as text (log output, store values).
inline std::string text_of(capnp::Data::Reader d) { return {reinterpret_cast<const char*>(d.begin()), d.size()}; }
/// Bytes (the codec's output, a string) as a Data field's value.
inline capnp::Data::Reader data_of(std::span<const std::byte> b) {
  return {reinterpret_cast<const capnp::byte*>(b.data()), b.size()};
}
inline capnp::Data::Reader data_of(std::string_view s) {
  return {reinterpret_cast<const capnp::byte*>(s.data()), s.size()};
}
}  // namespace codec

template <class S>
class CapnpMessage {
 public:
  CapnpMessage() = default;
  /// Adopts flat words (from messageToFlatArray); validates them.
  explicit CapnpMessage(kj::Array<capnp::word> words) : words_(std::move(words)) {
    codec::validate_capnp(words_.asPtr());
    open();
  }
  /// Snapshots a builder's message.
  static CapnpMessage from(capnp::MessageBuilder& builder) {
    return CapnpMessage(capnp::messageToFlatArray(builder));
  }
  CapnpMessage(const CapnpMessage& o) : words_(kj::heapArray<capnp::word>(o.words_.asPtr())) {
    if (words_.size()) open();
  }
  CapnpMessage& operator=(const CapnpMessage& o) {
    if (this != &o) *this = CapnpMessage(o);
    return *this;
  }
  CapnpMessage(CapnpMessage&&) noexcept = default;
  CapnpMessage& operator=(CapnpMessage&&) noexcept = default;

  bool empty() const noexcept { return words_.size() == 0; }
  typename S::Reader reader() const {
    if (!reader_) throw UsageError("CapnpMessage: empty message");
    return reader_->template getRoot<S>();
  }
  kj::ArrayPtr<const capnp::word> words() const noexcept { return words_.asPtr(); }

 private:
  void open() {
    reader_ = std::make_unique<capnp::FlatArrayMessageReader>(words_.asPtr(), codec::reader_options(words_.size()));
  }
  kj::Array<capnp::word> words_;
  std::unique_ptr<capnp::FlatArrayMessageReader> reader_;
};

namespace codec {
template <class S>
struct Codec<CapnpMessage<S>> {
  static constexpr std::size_t min_size = 8;
  static void encode(Writer& w, const CapnpMessage<S>& m) {
    auto words = m.words();
    w.put_len(words.size());
    w.put(words.begin(), words.size() * sizeof(capnp::word));
  }
  static CapnpMessage<S> decode(Reader& r) {
    std::size_t n = r.get_count(sizeof(capnp::word), "a Cap'n Proto message");
    if (n == 0) return CapnpMessage<S>();
    auto words = kj::heapArray<capnp::word>(n);  // word-aligned copy
    std::memcpy(words.begin(), r.take(n * sizeof(capnp::word), "Cap'n Proto words"), n * sizeof(capnp::word));
    return CapnpMessage<S>(std::move(words));
  }
};
}  // namespace codec

}  // namespace troupe
