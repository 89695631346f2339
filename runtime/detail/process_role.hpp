#pragma once
// Whether this process is a driver or a worker its launcher started, and
// whether main() called troupe::init (runtime/init.cpp).
//
// Worker mode is known from the launcher: it hands the worker a socket
// (TROUPE_WORKER_FD) or an address to dial (TROUPE_CONNECT) in the
// environment, and init() takes both out before it hosts the actor. A process
// that still has them when it builds a Runtime was started as a worker and
// never reached init: its main() would go on as a driver and spawn workers of
// its own (each re-running main: a chain of processes). It exits instead.
#include <string>

namespace troupe::detail {

/// The exit code of a worker whose main() never called troupe::init.
inline constexpr int kWorkerWithoutInit = 64;

/// troupe::init(argc, argv) has run in this process.
bool init_called() noexcept;
/// Started by a launcher as a worker, and init() has not taken that over.
bool launched_as_worker() noexcept;
/// Says why on stderr and exits with kWorkerWithoutInit (a worker without init).
[[noreturn]] void exit_worker_without_init();
/// Throws UsageError unless init() ran: `what` ("spawning Counter as a
/// process actor") needs a worker, which re-runs this executable's main.
void require_init(const std::string& what);
/// init() ran and chose `address` for the cluster ("": embedded).
void mark_init(std::string address);
/// The cluster address init() chose, else $TROUPE_ADDRESS ("": embedded).
std::string default_address();

}  // namespace troupe::detail
