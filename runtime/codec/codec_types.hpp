#pragma once
// Codec specialisations for the standard types and TROUPE_FIELDS structs.
#include "runtime/codec/codec.hpp"
#include "runtime/enum_words.hpp"

namespace troupe::codec {

template <class T>
struct Codec<T, std::enable_if_t<std::is_arithmetic_v<T> && !std::is_same_v<T, bool>>> {
  static constexpr std::size_t min_size = sizeof(T);
  static void encode(Writer& w, T v) { w.put_scalar(v); }
  static T decode(Reader& r) { return r.get_scalar<T>("a number"); }
};

template <>
struct Codec<bool> {
  static constexpr std::size_t min_size = 1;
  static void encode(Writer& w, bool v) { w.put_scalar<std::uint8_t>(v ? 1 : 0); }
  static bool decode(Reader& r);
};

template <>
struct Codec<std::byte> {
  static constexpr std::size_t min_size = 1;
  static void encode(Writer& w, std::byte v) { w.put_scalar(v); }
  static std::byte decode(Reader& r) { return r.get_scalar<std::byte>("a byte"); }
};

/// A worded enum's value outside its words (DecodeError naming it and where).
[[noreturn]] void fail_enum(std::int64_t value, std::size_t at, std::size_t words);

template <class T>
struct Codec<T, std::enable_if_t<std::is_enum_v<T> && !std::is_same_v<T, std::byte>>> {
  using U = std::underlying_type_t<T>;
  static constexpr std::size_t min_size = sizeof(U);
  static void encode(Writer& w, T v) { w.put_scalar(static_cast<U>(v)); }
  static T decode(Reader& r) {
    const U u = r.get_scalar<U>("an enum");
    const T v = static_cast<T>(u);
    // An enum named by words (runtime/enum_words.hpp) is one of them: a
    // choice that came as bytes is as checked as one that came as text.
    if constexpr (WordedEnum<T>)
      if (!enum_valid(v)) fail_enum(static_cast<std::int64_t>(u), r.offset() - sizeof(U), EnumWords<T>::words.size());
    return v;
  }
};

template <>
struct Codec<std::string> {
  static constexpr std::size_t min_size = 8;
  static void encode(Writer& w, const std::string& s) {
    w.put_len(s.size());
    w.put(s.data(), s.size());
  }
  static std::string decode(Reader& r) {
    std::size_t n = r.get_count(1, "a string");
    auto* p = r.take(n, "string bytes");
    return std::string(reinterpret_cast<const char*>(p), n);
  }
};

template <class T>
struct Codec<std::vector<T>> {
  static constexpr std::size_t min_size = 8;
  static constexpr bool bulk = std::is_arithmetic_v<T> || std::is_same_v<T, std::byte>;
  static void encode(Writer& w, const std::vector<T>& v) {
    w.put_len(v.size());
    if constexpr (bulk && !std::is_same_v<T, bool>) {
      w.put(v.data(), v.size() * sizeof(T));
    } else {
      for (const auto& x : v) Codec<T>::encode(w, x);
    }
  }
  static std::vector<T> decode(Reader& r) {
    Reader::Depth d(r);
    std::size_t n = r.get_count(Codec<T>::min_size, "a vector");
    std::vector<T> v;
    if constexpr (bulk && !std::is_same_v<T, bool>) {
      const std::byte* src = r.take(n * sizeof(T), "vector elements");
      v.resize(n);
      if (n) std::memcpy(v.data(), src, n * sizeof(T));
    } else {
      v.reserve(n);
      for (std::size_t i = 0; i < n; ++i) v.push_back(Codec<T>::decode(r));
    }
    return v;
  }
};

template <class T, std::size_t N>
struct Codec<std::array<T, N>> {
  static constexpr std::size_t min_size = N * Codec<T>::min_size;
  static void encode(Writer& w, const std::array<T, N>& a) {
    for (const auto& x : a) Codec<T>::encode(w, x);
  }
  static std::array<T, N> decode(Reader& r) {
    Reader::Depth d(r);
    std::array<T, N> a{};
    for (auto& x : a) x = Codec<T>::decode(r);
    return a;
  }
};

template <class M>
struct MapCodec {
  using K = typename M::key_type;
  using V = typename M::mapped_type;
  static constexpr std::size_t min_size = 8;
  static void encode(Writer& w, const M& m) {
    w.put_len(m.size());
    for (const auto& [k, v] : m) {
      Codec<K>::encode(w, k);
      Codec<V>::encode(w, v);
    }
  }
  static M decode(Reader& r) {
    Reader::Depth d(r);
    std::size_t n = r.get_count(Codec<K>::min_size + Codec<V>::min_size, "a map");
    M m;
    for (std::size_t i = 0; i < n; ++i) {
      K k = Codec<K>::decode(r);
      V v = Codec<V>::decode(r);
      m.insert_or_assign(std::move(k), std::move(v));
    }
    return m;
  }
};
template <class K, class V, class C, class A>
struct Codec<std::map<K, V, C, A>> : MapCodec<std::map<K, V, C, A>> {};
template <class K, class V, class H, class E, class A>
struct Codec<std::unordered_map<K, V, H, E, A>> : MapCodec<std::unordered_map<K, V, H, E, A>> {};

template <class... T>
struct Codec<std::tuple<T...>> {
  static constexpr std::size_t min_size = (std::size_t{0} + ... + Codec<T>::min_size);
  static void encode(Writer& w, const std::tuple<T...>& t) {
    std::apply([&](const auto&... x) { (Codec<std::decay_t<decltype(x)>>::encode(w, x), ...); }, t);
  }
  static std::tuple<T...> decode(Reader& r) {
    Reader::Depth d(r);
    return std::tuple<T...>{Codec<T>::decode(r)...};  // braced: left-to-right
  }
};

template <class A, class B>
struct Codec<std::pair<A, B>> {
  static constexpr std::size_t min_size = Codec<A>::min_size + Codec<B>::min_size;
  static void encode(Writer& w, const std::pair<A, B>& p) {
    Codec<A>::encode(w, p.first);
    Codec<B>::encode(w, p.second);
  }
  static std::pair<A, B> decode(Reader& r) {
    A a = Codec<A>::decode(r);
    B b = Codec<B>::decode(r);
    return {std::move(a), std::move(b)};
  }
};

template <class T>
struct Codec<std::optional<T>> {
  static constexpr std::size_t min_size = 1;
  static void encode(Writer& w, const std::optional<T>& o) {
    Codec<bool>::encode(w, o.has_value());
    if (o) Codec<T>::encode(w, *o);
  }
  static std::optional<T> decode(Reader& r) {
    Reader::Depth d(r);
    if (!Codec<bool>::decode(r)) return std::nullopt;
    return Codec<T>::decode(r);
  }
};

template <class T>
concept HasFields = requires(T& t) { t.troupe_fields(); };

template <class Tie>
struct tie_min_size;
template <class... F>
struct tie_min_size<std::tuple<F...>> {
  static constexpr std::size_t value = (std::size_t{0} + ... + Codec<std::decay_t<F>>::min_size);
};

template <class T>
struct Codec<T, std::enable_if_t<HasFields<T>>> {
  using Tie = decltype(std::declval<const T&>().troupe_fields());
  static constexpr std::size_t min_size = tie_min_size<Tie>::value;
  static void encode(Writer& w, const T& v) {
    std::apply([&](const auto&... f) { (Codec<std::decay_t<decltype(f)>>::encode(w, f), ...); },
               v.troupe_fields());
  }
  static T decode(Reader& r) {
    Reader::Depth d(r);
    T v{};
    std::apply([&](auto&... f) { ((f = Codec<std::decay_t<decltype(f)>>::decode(r)), ...); },
               v.troupe_fields());
    return v;
  }
};

}  // namespace troupe::codec
