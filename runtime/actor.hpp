#pragma once
// TROUPE_ACTOR: the classes (and their methods) a process actor can be.
//
//   class Counter { public: int add(int n); int get() const; ... };
//   TROUPE_ACTOR(Counter, add, get);   // at namespace scope, once per class
//
//   auto c = rt.spawn<Counter>(10, troupe::Options{}.process());
//   c.call(&Counter::add, 5).get();
//
// A process actor runs in a worker process: the driver's own executable,
// re-run (troupe::init at the top of main turns it into the worker). Its
// constructor arguments, and every listed method's arguments and result,
// travel through the codec (runtime/codec/codec.hpp): standard types,
// TROUPE_FIELDS structs, Cap'n Proto messages, actor handles.
#include <any>
#include <string>
#include <tuple>

#include "runtime/detail/actor_registry.hpp"
#include "runtime/detail/process_call.hpp"
#include "runtime/runtime.hpp"

namespace troupe {

/// TROUPE_ACTOR lists `Method`, one of whose parameters or whose result is a
/// `Type` the codec cannot carry to a process actor.
template <class Method, class Type>
struct actor_method_type_cannot_travel {
  static_assert(call_check_fails<Method>,
                "troupe: TROUPE_ACTOR lists a method with a parameter or result type the codec cannot send to a "
                "process actor (in actor_method_type_cannot_travel<method, type> named above): use standard types, "
                "a struct with TROUPE_FIELDS, a Cap'n Proto message or an ActorRef (runtime/codec/codec.hpp)");
};

namespace detail {

template <class M>
inline constexpr bool method_travels_v = params_encodable<M>::value && result_encodable_v<call_result_t<M>>;

template <class M, class T>
constexpr void name_untravelled(int& found) {
  if constexpr (!std::is_void_v<T> && !codec::Encodable<std::decay_t<T>>) {
    if (found++ == 0) (void)sizeof(actor_method_type_cannot_travel<M, std::decay_t<T>>);
  }
}
/// Instantiates the error naming the first type of M that cannot travel.
template <class M, class... P>
constexpr int name_untravelled_types(std::tuple<P...>*) {
  int found = 0;
  (name_untravelled<M, P>(found), ...);
  name_untravelled<M, call_result_t<M>>(found);
  return found;
}

}  // namespace detail
}  // namespace troupe

namespace troupe::detail {

template <class... P>
std::tuple<std::decay_t<P>...> decode_params(codec::Reader& r, std::tuple<P...>*) {
  auto t = codec::decode<std::tuple<std::decay_t<P>...>>(r);
  if (r.left()) codec::fail_trailing(r.left(), "argument list");
  return t;
}

template <class T, class M>
MethodEntry make_method(std::string name, M m) {
  using R = call_result_t<M>;
  MethodEntry e;
  e.name = std::move(name);
  e.type = typeid(M);
  e.ptr = ptr_bytes(m);
  e.ptr_size = sizeof(M);
  e.invoke = [m](std::any& actor, codec::Reader& r, Reply reply) {
    if constexpr (!params_encodable<M>::value || !result_encodable_v<R>) {
      reply(std::make_exception_ptr(UsageError("argument or result types cannot cross a process boundary")), {});
    } else {
      using Params = typename method_traits<M>::params;
      auto& ref = std::any_cast<ActorRef<T>&>(actor);
      auto args = decode_params(r, static_cast<Params*>(nullptr));
      Ref<R> out = std::apply([&](auto&... a) { return ref.call(m, std::move(a)...); }, args);
      out.state()->on_ready([out, reply]() {
        if (out.state()->error()) return reply(out.state()->error(), {});
        if constexpr (std::is_void_v<R>)
          reply(nullptr, {});
        else
          reply(nullptr, codec::to_bytes(out.state()->value()));
      });
    }
  };
  return e;
}

template <class T, class... M>
bool register_actor(const char* class_name, const char* names, M... ms) {
  auto n = split_names(names);
  std::size_t i = 0;
  std::vector<MethodEntry> entries{make_method<T>(n.at(i++), ms)...};
  registry().add_methods(typeid(T), class_name, std::move(entries));
  return true;
}

template <class T, class... A>
std::string register_factory() {
  std::string key = type_name<T>();
  key += "(";
  ((key += type_name<A>(), key += ","), ...);
  key += ")";
  FactoryEntry f;
  f.type = typeid(T);
  f.spawn = [](Runtime& rt, codec::Reader& r, Options o) -> std::any {
    if constexpr (encodable_v<A...>) {
      auto args = codec::decode<std::tuple<A...>>(r);
      return std::any(std::apply([&](auto&... a) { return rt.spawn<T>(a..., o); }, args));
    } else {
      throw UsageError("constructor arguments cannot cross a process boundary");
    }
  };
  f.watch = [](std::any& a, std::function<void(std::string)> cb) {
    auto& ref = std::any_cast<ActorRef<T>&>(a);
    ref.cell()->runtime().monitor(ref, [cb](const DownEvent& e) {
      if (!e.restarting) cb(e.detail);
    });
  };
  f.stop = [](std::any& a) { return std::any_cast<ActorRef<T>&>(a).stop(); };
  f.id = [](std::any& a) { return std::any_cast<ActorRef<T>&>(a).id(); };
  registry().add_factory(key, std::move(f));
  return key;
}

template <class T, class... A>
const std::string FactoryRegistrar<T, A...>::key = register_factory<T, A...>();

}  // namespace troupe::detail

#define TROUPE_FE_1(C, x) &C::x
#define TROUPE_FE_2(C, x, ...) &C::x, TROUPE_FE_1(C, __VA_ARGS__)
#define TROUPE_FE_3(C, x, ...) &C::x, TROUPE_FE_2(C, __VA_ARGS__)
#define TROUPE_FE_4(C, x, ...) &C::x, TROUPE_FE_3(C, __VA_ARGS__)
#define TROUPE_FE_5(C, x, ...) &C::x, TROUPE_FE_4(C, __VA_ARGS__)
#define TROUPE_FE_6(C, x, ...) &C::x, TROUPE_FE_5(C, __VA_ARGS__)
#define TROUPE_FE_7(C, x, ...) &C::x, TROUPE_FE_6(C, __VA_ARGS__)
#define TROUPE_FE_8(C, x, ...) &C::x, TROUPE_FE_7(C, __VA_ARGS__)
#define TROUPE_FE_9(C, x, ...) &C::x, TROUPE_FE_8(C, __VA_ARGS__)
#define TROUPE_FE_10(C, x, ...) &C::x, TROUPE_FE_9(C, __VA_ARGS__)
#define TROUPE_FE_11(C, x, ...) &C::x, TROUPE_FE_10(C, __VA_ARGS__)
#define TROUPE_FE_12(C, x, ...) &C::x, TROUPE_FE_11(C, __VA_ARGS__)
#define TROUPE_FE_13(C, x, ...) &C::x, TROUPE_FE_12(C, __VA_ARGS__)
#define TROUPE_FE_14(C, x, ...) &C::x, TROUPE_FE_13(C, __VA_ARGS__)
#define TROUPE_FE_15(C, x, ...) &C::x, TROUPE_FE_14(C, __VA_ARGS__)
#define TROUPE_FE_16(C, x, ...) &C::x, TROUPE_FE_15(C, __VA_ARGS__)
#define TROUPE_FE_PICK(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, _14, _15, _16, N, ...) N
#define TROUPE_MEMBER_PTRS(C, ...)                                                                          \
  TROUPE_FE_PICK(__VA_ARGS__, TROUPE_FE_16, TROUPE_FE_15, TROUPE_FE_14, TROUPE_FE_13, TROUPE_FE_12,        \
                 TROUPE_FE_11, TROUPE_FE_10, TROUPE_FE_9, TROUPE_FE_8, TROUPE_FE_7, TROUPE_FE_6, TROUPE_FE_5, \
                 TROUPE_FE_4, TROUPE_FE_3, TROUPE_FE_2, TROUPE_FE_1)                                        \
  (C, __VA_ARGS__)
#define TROUPE_CONCAT2(a, b) a##b
#define TROUPE_CONCAT(a, b) TROUPE_CONCAT2(a, b)

// One compile-time check per listed method: every parameter and the result
// must travel through the codec; the error names the class, the method and
// the type.
#define TROUPE_CHECK_METHOD(C, x)                                                                                   \
  static_assert(::troupe::detail::name_untravelled_types<decltype(&C::x)>(                                          \
                    static_cast<typename ::troupe::detail::method_traits<decltype(&C::x)>::params*>(nullptr)) >= 0 && \
                    ::troupe::detail::method_travels_v<decltype(&C::x)>,                                            \
                "TROUPE_ACTOR(" #C ", " #x "): a parameter or the result of " #C "::" #x                           \
                " cannot be sent to a process actor (the type is named above)");
#define TROUPE_CK_1(C, x) TROUPE_CHECK_METHOD(C, x)
#define TROUPE_CK_2(C, x, ...) TROUPE_CHECK_METHOD(C, x) TROUPE_CK_1(C, __VA_ARGS__)
#define TROUPE_CK_3(C, x, ...) TROUPE_CHECK_METHOD(C, x) TROUPE_CK_2(C, __VA_ARGS__)
#define TROUPE_CK_4(C, x, ...) TROUPE_CHECK_METHOD(C, x) TROUPE_CK_3(C, __VA_ARGS__)
#define TROUPE_CK_5(C, x, ...) TROUPE_CHECK_METHOD(C, x) TROUPE_CK_4(C, __VA_ARGS__)
#define TROUPE_CK_6(C, x, ...) TROUPE_CHECK_METHOD(C, x) TROUPE_CK_5(C, __VA_ARGS__)
#define TROUPE_CK_7(C, x, ...) TROUPE_CHECK_METHOD(C, x) TROUPE_CK_6(C, __VA_ARGS__)
#define TROUPE_CK_8(C, x, ...) TROUPE_CHECK_METHOD(C, x) TROUPE_CK_7(C, __VA_ARGS__)
#define TROUPE_CK_9(C, x, ...) TROUPE_CHECK_METHOD(C, x) TROUPE_CK_8(C, __VA_ARGS__)
#define TROUPE_CK_10(C, x, ...) TROUPE_CHECK_METHOD(C, x) TROUPE_CK_9(C, __VA_ARGS__)
#define TROUPE_CK_11(C, x, ...) TROUPE_CHECK_METHOD(C, x) TROUPE_CK_10(C, __VA_ARGS__)
#define TROUPE_CK_12(C, x, ...) TROUPE_CHECK_METHOD(C, x) TROUPE_CK_11(C, __VA_ARGS__)
#define TROUPE_CK_13(C, x, ...) TROUPE_CHECK_METHOD(C, x) TROUPE_CK_12(C, __VA_ARGS__)
#define TROUPE_CK_14(C, x, ...) TROUPE_CHECK_METHOD(C, x) TROUPE_CK_13(C, __VA_ARGS__)
#define TROUPE_CK_15(C, x, ...) TROUPE_CHECK_METHOD(C, x) TROUPE_CK_14(C, __VA_ARGS__)
#define TROUPE_CK_16(C, x, ...) TROUPE_CHECK_METHOD(C, x) TROUPE_CK_15(C, __VA_ARGS__)
#define TROUPE_CHECK_METHODS(C, ...)                                                                        \
  TROUPE_FE_PICK(__VA_ARGS__, TROUPE_CK_16, TROUPE_CK_15, TROUPE_CK_14, TROUPE_CK_13, TROUPE_CK_12,        \
                 TROUPE_CK_11, TROUPE_CK_10, TROUPE_CK_9, TROUPE_CK_8, TROUPE_CK_7, TROUPE_CK_6, TROUPE_CK_5, \
                 TROUPE_CK_4, TROUPE_CK_3, TROUPE_CK_2, TROUPE_CK_1)                                        \
  (C, __VA_ARGS__)

/// Registers an actor class and the methods a process actor may be called
/// with (up to 16), at namespace scope: TROUPE_ACTOR(Counter, add, get).
/// Each method's parameters and result must travel through the codec:
/// checked here, at compile time, naming the method and the type.
#define TROUPE_ACTOR(Class, ...)                                                                          \
  TROUPE_CHECK_METHODS(Class, __VA_ARGS__)                                                                \
  [[maybe_unused]] static const bool TROUPE_CONCAT(troupe_actor_registered_, __LINE__) =                    \
      ::troupe::detail::register_actor<Class>(#Class, #__VA_ARGS__, TROUPE_MEMBER_PTRS(Class, __VA_ARGS__))
