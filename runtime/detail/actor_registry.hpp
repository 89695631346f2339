#pragma once
// What a worker process needs to host an actor the driver asked for: the
// class's factories (by constructor argument types) and its methods (by
// index), registered in every process that runs the same executable
// (TROUPE_ACTOR, runtime/actor.hpp).
//
//   TROUPE_ACTOR(Counter, add, get)   // at namespace scope, once per class
#include <any>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <typeindex>
#include <vector>

#include "runtime/codec/codec.hpp"
#include "runtime/detail/type_name.hpp"
#include "runtime/options.hpp"
#include "runtime/detail/process.hpp"
#include "runtime/ref.hpp"
#include "runtime/trace.hpp"

namespace troupe {
class Runtime;
template <class T>
class ActorRef;
}  // namespace troupe

namespace troupe::detail {

struct MethodEntry {
  std::string name;
  std::type_index type{typeid(void)};
  std::array<unsigned char, 16> ptr{};
  std::size_t ptr_size = 0;
  /// Decodes the arguments, calls the local actor held in `actor`, replies.
  std::function<void(std::any& actor, codec::Reader& args, Reply reply)> invoke;
};

struct FactoryEntry {
  std::type_index type{typeid(void)};
  /// Spawns the actor on the worker's runtime from encoded constructor arguments.
  std::function<std::any(Runtime& rt, codec::Reader& args, Options opts)> spawn;
  /// Ref<void> that completes when the local actor dies for good.
  std::function<void(std::any& actor, std::function<void(std::string)> on_death)> watch;
  std::function<Ref<void>(std::any& actor)> stop;
  /// The hosted actor's id in the worker's runtime.
  std::function<std::uint64_t(std::any& actor)> id;
};

class Registry {
 public:
  void add_methods(std::type_index t, std::string class_name, std::vector<MethodEntry> methods);
  void add_factory(std::string key, FactoryEntry f);
  const FactoryEntry* factory(const std::string& key) const;
  const std::vector<MethodEntry>* methods(std::type_index t) const;
  bool registered(std::type_index t) const;
  /// "add, add_twice" (the names TROUPE_ACTOR listed for t).
  std::string method_names(std::type_index t) const;

 private:
  mutable std::mutex mu_;
  std::map<std::type_index, std::vector<MethodEntry>> methods_;
  std::map<std::type_index, std::string> names_;
  std::map<std::string, FactoryEntry> factories_;
};
Registry& registry();

template <class M>
std::array<unsigned char, 16> ptr_bytes(M m) {
  static_assert(sizeof(M) <= 16);
  std::array<unsigned char, 16> b{};
  std::memcpy(b.data(), &m, sizeof(M));
  return b;
}

/// The index of method `m` of T in its TROUPE_ACTOR list, if listed.
template <class T, class M>
std::optional<std::uint32_t> method_index(M m) {
  const auto* list = registry().methods(typeid(T));
  if (!list) return std::nullopt;
  auto bytes = ptr_bytes(m);
  for (std::uint32_t i = 0; i < list->size(); ++i) {
    const auto& e = (*list)[i];
    if (e.type == std::type_index(typeid(M)) && e.ptr_size == sizeof(M) &&
        std::memcmp(e.ptr.data(), bytes.data(), sizeof(M)) == 0)
      return i;
  }
  return std::nullopt;
}

/// "Class.method" for `troupe trace` (interned; "Class.call" when T does not
/// list m in TROUPE_ACTOR). Looked up once per thread and method.
template <class T, class M>
const char* traced_name(M m) {
  // Keyed by the method pointer's bytes as two words: compared inline (a
  // std::array == is a memcmp call, a tenth of a tiny call's cost).
  using Key = std::pair<std::uint64_t, std::uint64_t>;
  thread_local std::vector<std::pair<Key, const char*>> seen;
  const auto bytes = ptr_bytes(m);
  Key key;
  std::memcpy(&key.first, bytes.data(), 8);
  std::memcpy(&key.second, bytes.data() + 8, 8);
  for (auto& [k, n] : seen)
    if (k == key) return n;
  std::string label = type_name<T>();
  if (auto colon = label.rfind("::"); colon != std::string::npos) label.erase(0, colon + 2);
  if (auto i = method_index<T>(m))
    label += "." + (*registry().methods(typeid(T)))[*i].name;
  else
    label += ".call";
  const char* n = trace::intern(label);
  seen.emplace_back(key, n);
  return n;
}

/// Registers the factory for T built from A... (defined in runtime/actor.hpp);
/// naming `key` in the driver registers it in every process of the binary.
template <class T, class... A>
struct FactoryRegistrar {
  static const std::string key;
};

/// True if every type can go through the codec.
template <class... A>
inline constexpr bool encodable_v = (codec::Encodable<std::decay_t<A>> && ...);

}  // namespace troupe::detail

namespace troupe::detail {
/// "a, b ,c" -> {"a", "b", "c"} (TROUPE_ACTOR's method names).
std::vector<std::string> split_names(const char* names);
}  // namespace troupe::detail
