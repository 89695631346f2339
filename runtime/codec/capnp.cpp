#include "runtime/codec/capnp.hpp"

#include <fmt/format.h>
#include <kj/exception.h>

namespace troupe::codec {

capnp::ReaderOptions reader_options(std::size_t words) {
  capnp::ReaderOptions o;
  o.traversalLimitInWords = std::max<std::size_t>(1024, words * 4);
  o.nestingLimit = 64;
  return o;
}

void validate_capnp(kj::ArrayPtr<const capnp::word> words) {
  try {
    capnp::FlatArrayMessageReader reader(words, reader_options(words.size()));
    // totalSize() walks every pointer, so bounds and limits are checked now,
    // not at some later field access.
    (void)reader.getRoot<capnp::AnyStruct>().totalSize();
  } catch (const kj::Exception& e) {
    throw DecodeError(fmt::format("codec: invalid Cap'n Proto message ({} words): {}", words.size(),
                                  e.getDescription().cStr()));
  }
}

}  // namespace troupe::codec
