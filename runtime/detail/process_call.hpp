#pragma once
// Typed calls to process actors: arguments encoded as the method's parameter
// types, the result decoded into the caller's Ref. Included by actor_ref.hpp.
#include <tuple>
#include <type_traits>

#include <fmt/format.h>

#include "runtime/detail/actor_registry.hpp"
#include "runtime/detail/method_traits.hpp"
#include "runtime/detail/process.hpp"
#include "runtime/detail/type_name.hpp"

namespace troupe::detail {

template <class R>
inline constexpr bool result_encodable_v = std::is_void_v<R> || codec::Encodable<R>;

template <class M>
struct params_encodable;
template <class M>
  requires requires { typename method_traits<M>::params; }
struct params_encodable<M> {
  template <class Tuple>
  struct all;
  template <class... P>
  struct all<std::tuple<P...>> : std::bool_constant<encodable_v<P...>> {};
  static constexpr bool value = all<typename method_traits<M>::params>::value;
};

template <class T, class M, class... S>
class TypedCall final : public PendingCall {
  using R = call_result_t<M>;
  using params = typename method_traits<M>::params;

 public:
  template <class... A>
  explicit TypedCall(A&&... a) : args_(std::forward<A>(a)...) {}
  Ref<R> ref() const { return promise_.ref(); }

  bool deps_ready() const override {
    return std::apply([](const auto&... a) { return (ready(a) && ...); }, args_);
  }
  void on_deps(std::function<void()> wake) override {
    bool hooked = false;
    std::apply([&](const auto&... a) { ((hooked = hooked || hook(a, wake)), ...); }, args_);
    if (!hooked) wake();
  }
  Bytes encode() override {
    codec::Writer w;
    encode_all(w, std::index_sequence_for<S...>{});
    return w.take();
  }
  void complete(codec::Reader& r) override {
    if constexpr (std::is_void_v<R>) {
      promise_.set_value();
    } else {
      R v = codec::decode<R>(r);
      if (r.left()) codec::fail_trailing(r.left(), typeid(R).name());
      promise_.set_value(std::move(v));
    }
  }
  void fail(std::exception_ptr e) override { promise_.set_error(std::move(e)); }

 private:
  template <class A>
  static bool ready(const A& a) {
    if constexpr (is_ref_v<A>) return a.ready();
    return true;
  }
  template <class A>
  static bool hook(const A& a, const std::function<void()>& wake) {
    if constexpr (is_ref_v<A>) {
      if (a.ready()) return false;
      a.state()->on_ready([wake]() { wake(); });
      return true;
    }
    return false;
  }
  template <std::size_t... I>
  void encode_all(codec::Writer& w, std::index_sequence<I...>) {
    (encode_one<I>(w), ...);
  }
  template <std::size_t I>
  void encode_one(codec::Writer& w) {
    using P = std::decay_t<std::tuple_element_t<I, params>>;
    const auto& a = std::get<I>(args_);
    if constexpr (is_ref_v<std::decay_t<decltype(a)>>) {
      if (a.state()->error()) std::rethrow_exception(a.state()->error());
      codec::encode<P>(w, P(a.state()->value()));
    } else {
      codec::encode<P>(w, P(a));
    }
  }

  Promise<R> promise_;
  std::tuple<S...> args_;
};

/// Queues a call of `m` on a process actor.
template <class T, class M, class... A>
Ref<call_result_t<M>> submit_call(ProcessActor& ra, M m, A&&... a) {
  using R = call_result_t<M>;
  if constexpr (!params_encodable<M>::value || !result_encodable_v<R>) {
    return Ref<R>::from_error(std::make_exception_ptr(UsageError(fmt::format(
        "{}: the method {} takes or returns a type the codec cannot send to a process actor (and so cannot be "
        "listed in TROUPE_ACTOR)",
        type_name<T>(), type_name<M>()))));
  } else {
    auto index = method_index<T>(m);
    if (!index)
      return Ref<R>::from_error(std::make_exception_ptr(UsageError(fmt::format(
          "{}: the method {} is not listed in TROUPE_ACTOR({}, {}); a process actor can only be called through "
          "the methods listed there",
          type_name<T>(), type_name<M>(), type_name<T>(), registry().method_names(typeid(T))))));
    auto c = std::make_unique<TypedCall<T, M, std::decay_t<A>...>>(std::forward<A>(a)...);
    c->method = *index;
    if (trace::on() && trace::sample()) c->trace_flow = trace::send(traced_name<T>(m));
    Ref<R> ref = c->ref();
    ref.state()->set_origin(ra.id());  // timeouts and refused waits name the actor
    ra.call(std::move(c));
    return ref;
  }
}

}  // namespace troupe::detail
