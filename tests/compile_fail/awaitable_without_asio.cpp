// An asio::awaitable method called without runtime/asio.hpp: one clear error.
// expect: call_needs_asio_header<boost::asio::awaitable<int> (Timer::*)()>
// expect: include "runtime/asio.hpp" before calling it
#include <boost/asio/awaitable.hpp>

#include "runtime/troupe.hpp"

class Timer {
 public:
  boost::asio::awaitable<int> wait() { co_return 1; }
};

int main() {
  troupe::Runtime rt;
  auto t = rt.spawn<Timer>();
  return t.call(&Timer::wait).get();  // error here
}
