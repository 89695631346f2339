#include <catch2/catch.hpp>

#include <thread>
#include <vector>

#include "runtime/detail/mailbox.hpp"

using namespace troupe::detail;

namespace {
struct TestMessage final : Message {
  int sender = 0, seq = 0;
  bool failed = false;
  Step run(CellBase&) override { return Step::done; }
  void fail(std::exception_ptr) noexcept override { failed = true; }
  void abandon(std::exception_ptr) noexcept override {}
  void done() noexcept override {}
};
}  // namespace

TEST_CASE("the first push into an idle inbox asks for a drain", "[mailbox]") {
  Inbox inbox;
  TestMessage a, b;
  CHECK(inbox.push(&a) == PushResult::queued_must_schedule);
  CHECK(inbox.push(&b) == PushResult::queued);
  bool closed = true;
  Message* list = inbox.take_all(closed);
  CHECK_FALSE(closed);
  REQUIRE(list == &a);
  CHECK(list->next == &b);
  CHECK(inbox.try_block());
  TestMessage c;
  CHECK(inbox.push(&c) == PushResult::queued_must_schedule);
}

TEST_CASE("try_block fails while messages wait", "[mailbox]") {
  Inbox inbox;
  TestMessage a, b;
  inbox.push(&a);
  bool closed = false;
  inbox.take_all(closed);
  inbox.push(&b);  // arrived during the drain
  CHECK_FALSE(inbox.try_block());
  CHECK(inbox.take_all(closed) == &b);
}

TEST_CASE("a closed inbox refuses pushes and hands back what it held", "[mailbox]") {
  Inbox inbox;
  TestMessage a, b, c;
  inbox.push(&a);
  inbox.push(&b);
  bool was_blocked = true;
  Message* left = inbox.close(was_blocked);
  CHECK_FALSE(was_blocked);
  REQUIRE(left == &a);
  CHECK(left->next == &b);
  CHECK(inbox.push(&c) == PushResult::closed);
  bool closed = false;
  CHECK(inbox.take_all(closed) == nullptr);
  CHECK(closed);
  CHECK_FALSE(inbox.try_block());
}

TEST_CASE("concurrent producers keep their own order", "[mailbox]") {
  constexpr int kProducers = 4, kEach = 5000;
  Inbox inbox;
  std::vector<std::vector<TestMessage>> msgs(kProducers, std::vector<TestMessage>(kEach));
  std::vector<std::thread> producers;
  std::atomic<int> schedules{0};
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kEach; ++i) {
        msgs[p][i].sender = p;
        msgs[p][i].seq = i;
        if (inbox.push(&msgs[p][i]) == PushResult::queued_must_schedule) ++schedules;
      }
    });
  }
  std::vector<int> next(kProducers, 0);
  int seen = 0;
  MessageQueue q;
  while (seen < kProducers * kEach) {
    bool closed = false;
    q.append(inbox.take_all(closed));
    while (!q.empty()) {
      auto* m = static_cast<TestMessage*>(q.pop());
      CHECK(m->seq == next[m->sender]);
      next[m->sender] = m->seq + 1;
      ++seen;
    }
  }
  for (auto& t : producers) t.join();
  CHECK(schedules == 1);  // the consumer never went idle, so only the first push scheduled
}

TEST_CASE("a drain that finds the inbox idle already is done", "[mailbox]") {
  Inbox inbox;  // idle from the start, as at spawn
  bool closed = true;
  CHECK(inbox.take_all(closed) == nullptr);
  CHECK_FALSE(closed);
  CHECK(inbox.try_block());  // before the fix this said "look again" forever
  TestMessage a;
  CHECK(inbox.push(&a) == PushResult::queued_must_schedule);
}
