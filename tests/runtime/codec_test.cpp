#include <catch2/catch.hpp>

#include <limits>

#include "runtime/codec/capnp.hpp"
#include "runtime/codec/codec.hpp"
#include "test_schema.capnp.h"
#include "tests/support/enum_words.hpp"

using namespace troupe;
using namespace troupe::codec;

namespace {

enum class Color : std::uint8_t { red = 1, green = 2 };

struct Point {
  double x = 0, y = 0;
  std::string label;
  TROUPE_FIELDS(x, y, label)
  bool operator==(const Point&) const = default;
};

struct Shape {
  std::vector<Point> points;
  std::optional<Color> color;
  std::map<std::string, int> tags;
  TROUPE_FIELDS(points, color, tags)
  bool operator==(const Shape&) const = default;
};

template <class T>
T round_trip(const T& v) {
  return from_bytes<T>(to_bytes(v));
}

// An enum named by words (runtime/enum_words.hpp), as configuration choices are.
enum class Fruit : std::uint8_t { apple, pear, plum };

struct Basket {
  Fruit fruit = Fruit::apple;
  std::vector<Fruit> more;
  TROUPE_FIELDS(fruit, more)
};

}  // namespace

template <>
struct troupe::EnumWords<Fruit> {
  static constexpr std::array<std::string_view, 3> words{"apple", "pear", "plum"};
};

namespace {
std::string_view to_string(Fruit f) { return enum_word(f); }
}  // namespace

TEST_CASE("arithmetic types, bool and enums round-trip", "[codec]") {
  CHECK(round_trip<int>(-42) == -42);
  CHECK(round_trip<std::uint64_t>(std::numeric_limits<std::uint64_t>::max()) ==
        std::numeric_limits<std::uint64_t>::max());
  CHECK(round_trip<double>(3.25) == 3.25);
  CHECK(round_trip<float>(-0.5f) == -0.5f);
  CHECK(round_trip<bool>(true));
  CHECK(round_trip<char>('z') == 'z');
  CHECK(round_trip<Color>(Color::green) == Color::green);
  CHECK(to_bytes<std::int32_t>(1).size() == 4);
}

TEST_CASE("strings, vectors, maps, tuples and optionals round-trip", "[codec]") {
  CHECK(round_trip<std::string>("") == "");
  CHECK(round_trip<std::string>(std::string("a\0b", 3)) == std::string("a\0b", 3));
  CHECK(round_trip(std::vector<float>{1.5f, -2.f, 0.f}) == std::vector<float>{1.5f, -2.f, 0.f});
  CHECK(round_trip(std::vector<std::string>{"x", "", "yz"}) == std::vector<std::string>{"x", "", "yz"});
  CHECK(round_trip(std::vector<bool>{true, false, true}) == std::vector<bool>{true, false, true});
  std::map<std::string, std::vector<int>> m{{"a", {1, 2}}, {"b", {}}};
  CHECK(round_trip(m) == m);
  std::unordered_map<int, double> um{{1, 1.0}, {2, 4.0}};
  CHECK(round_trip(um) == um);
  auto t = std::make_tuple(1, std::string("two"), 3.0, std::optional<int>{});
  CHECK(round_trip(t) == t);
  CHECK(round_trip(std::pair<int, std::string>{7, "seven"}) == std::pair<int, std::string>{7, "seven"});
  CHECK(round_trip(std::optional<std::string>{"here"}) == std::optional<std::string>{"here"});
  CHECK(round_trip(std::array<int, 3>{1, 2, 3}) == std::array<int, 3>{1, 2, 3});
  Bytes b{std::byte{0}, std::byte{255}, std::byte{7}};
  CHECK(round_trip(b) == b);
}

TEST_CASE("user structs declared with TROUPE_FIELDS round-trip", "[codec]") {
  Shape s{{{1, 2, "a"}, {3, 4, "b"}}, Color::red, {{"layer", 3}}};
  CHECK(round_trip(s) == s);
  CHECK(round_trip(Shape{}) == Shape{});
}

TEST_CASE("Cap'n Proto messages round-trip", "[codec]") {
  capnp::MallocMessageBuilder b;
  auto root = b.initRoot<::test::Sample>();
  root.setId(99);
  root.setLabel("grad-bucket-3");
  auto vals = root.initValues(3);
  vals.set(0, 1.f);
  vals.set(1, 2.f);
  vals.set(2, 3.5f);
  root.initChild().setId(100);
  auto msg = CapnpMessage<::test::Sample>::from(b);
  auto back = round_trip(msg);
  auto r = back.reader();
  CHECK(r.getId() == 99);
  CHECK(std::string(r.getLabel().cStr()) == "grad-bucket-3");
  REQUIRE(r.getValues().size() == 3);
  CHECK(r.getValues()[2] == 3.5f);
  CHECK(r.getChild().getId() == 100);
  // And inside a larger value.
  auto pair = round_trip(std::make_pair(std::string("hdr"), msg));
  CHECK(pair.second.reader().getId() == 99);
}

TEST_CASE("truncated input is a DecodeError that says where", "[codec]") {
  Shape s{{{1, 2, "abc"}}, Color::red, {{"k", 1}}};
  auto bytes = to_bytes(s);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    std::span<const std::byte> cut(bytes.data(), n);
    CHECK_THROWS_AS(from_bytes<Shape>(cut), DecodeError);
  }
  CHECK_THROWS_WITH(from_bytes<std::uint64_t>(std::span<const std::byte>(bytes.data(), 3)),
                    Catch::Contains("truncated") && Catch::Contains("offset 0"));
}

TEST_CASE("hostile lengths are refused before allocating", "[codec]") {
  Writer w;
  w.put_len(std::uint64_t{1} << 60);  // a vector claiming 2^60 elements
  auto bytes = w.take();
  CHECK_THROWS_WITH(from_bytes<std::vector<double>>(bytes), Catch::Contains("cannot fit"));
  CHECK_THROWS_AS(from_bytes<std::string>(bytes), DecodeError);
  CHECK_THROWS_AS((from_bytes<std::map<int, int>>(bytes)), DecodeError);
}

TEST_CASE("malformed values and trailing bytes are refused", "[codec]") {
  std::vector<std::byte> bad_bool{std::byte{2}};
  CHECK_THROWS_WITH(from_bytes<bool>(bad_bool), Catch::Contains("not 0 or 1"));
  auto two = to_bytes(std::make_pair(1, 2));
  CHECK_THROWS_WITH(from_bytes<int>(two), Catch::Contains("trailing"));
  // Nesting bombs stop at the depth limit.
  Writer w;
  for (int i = 0; i < 200; ++i) w.put_scalar<std::uint8_t>(1);  // optional<optional<...>> tags
  using Deep = std::optional<std::optional<std::optional<std::optional<int>>>>;
  CHECK_THROWS_AS(from_bytes<Deep>(w.take()), DecodeError);
}

TEST_CASE("an enum named by words reads and prints its words; a value outside them is refused", "[codec]") {
  troupe::test::check_enum_words<Fruit>("fruit", "apple, pear or plum");
  CHECK(enum_values<Fruit>() == std::array{Fruit::apple, Fruit::pear, Fruit::plum});
  CHECK(fmt::format("[{:>6}]", Fruit::pear) == "[  pear]");  // string format specs apply
  CHECK(enum_word(static_cast<Fruit>(7)) == "?");
  CHECK(or_list(std::array<std::string_view, 1>{"a"}) == "a");
  CHECK(or_list(std::array<std::string_view, 2>{"a", "b"}) == "a or b");
  // On the wire: one byte, and only the values it names.
  CHECK(round_trip(Fruit::plum) == Fruit::plum);
  auto b = round_trip(Basket{Fruit::pear, {Fruit::plum, Fruit::apple}});
  CHECK(b.fruit == Fruit::pear);
  CHECK(b.more == std::vector{Fruit::plum, Fruit::apple});
  auto bytes = to_bytes(Basket{Fruit::pear, {Fruit::plum}});
  bytes[9] = std::byte{3};  // the first of `more` (after the fruit byte and the u64 count)
  CHECK_THROWS_WITH(from_bytes<Basket>(bytes),
                    Catch::Contains("codec: enum value 3 at offset 9 is not one of its 3 named values"));
  // An enum without words keeps any value it is sent.
  CHECK(from_bytes<Color>(std::vector{std::byte{9}}) == static_cast<Color>(9));
}

TEST_CASE("a corrupt Cap'n Proto message is a DecodeError", "[codec]") {
  capnp::MallocMessageBuilder b;
  b.initRoot<::test::Sample>().setLabel("x");
  auto good = to_bytes(CapnpMessage<::test::Sample>::from(b));
  auto bad = good;
  // Point the root pointer far outside the segment.
  for (std::size_t i = 16; i < 24 && i < bad.size(); ++i) bad[i] = std::byte{0x7f};
  CHECK_THROWS_AS(from_bytes<CapnpMessage<::test::Sample>>(bad), DecodeError);
  std::vector<std::byte> garbage(64, std::byte{0xff});
  garbage[0] = std::byte{7};  // 7 words follow
  for (int i = 1; i < 8; ++i) garbage[i] = std::byte{0};
  CHECK_THROWS_AS(from_bytes<CapnpMessage<::test::Sample>>(garbage), DecodeError);
}
