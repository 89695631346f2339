// Random and mutated input for the decoder: it must throw DecodeError or
// succeed, never crash or read out of bounds (run under ASan to mean it).
#include <catch2/catch.hpp>

#include <random>

#include "runtime/codec/capnp.hpp"
#include "runtime/codec/codec.hpp"
#include "test_schema.capnp.h"

using namespace troupe;
using namespace troupe::codec;

namespace {
struct Record {
  std::uint32_t id = 0;
  std::string name;
  std::vector<std::map<std::string, std::optional<double>>> rows;
  std::tuple<bool, std::int16_t, Bytes> extra;
  TROUPE_FIELDS(id, name, rows, extra)
};

template <class T>
int decode_outcome(std::span<const std::byte> in) {
  try {
    (void)from_bytes<T>(in);
    return 1;
  } catch (const DecodeError&) {
    return 0;
  }
}
}  // namespace

TEST_CASE("random bytes never crash the decoder", "[codec][fuzz]") {
  std::mt19937_64 rng(12345);
  int decoded = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::vector<std::byte> buf(rng() % 96);
    for (auto& b : buf) b = std::byte(rng() & 0xff);
    decoded += decode_outcome<Record>(buf);
    decoded += decode_outcome<std::vector<std::string>>(buf);
    decoded += decode_outcome<CapnpMessage<test::Sample>>(buf);
  }
  SUCCEED("decoded " << decoded << " random inputs without a crash");
}

TEST_CASE("mutated valid encodings never crash the decoder", "[codec][fuzz]") {
  Record r;
  r.id = 7;
  r.name = "replica-3";
  r.rows = {{{"loss", 0.5}, {"acc", std::nullopt}}, {}};
  r.extra = {true, -3, Bytes(10, std::byte{1})};
  const auto good = to_bytes(r);
  capnp::MallocMessageBuilder b;
  auto root = b.initRoot<test::Sample>();
  root.setLabel("x");
  root.initValues(5);
  root.initChild().initChild().setId(1);
  const auto good_capnp = to_bytes(CapnpMessage<test::Sample>::from(b));

  std::mt19937 rng(777);
  for (int iter = 0; iter < 20000; ++iter) {
    auto buf = (iter % 2) ? good : good_capnp;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) buf[rng() % buf.size()] = std::byte(rng() & 0xff);
    if (rng() % 4 == 0) buf.resize(rng() % buf.size());
    decode_outcome<Record>(buf);
    decode_outcome<CapnpMessage<test::Sample>>(buf);
  }
  SUCCEED();
}
