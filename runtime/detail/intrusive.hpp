#pragma once
// Helpers for intrusive singly linked lists (nodes with a `next` member).

namespace troupe::detail {

/// Reverses a next-linked list; returns the new head. Lock-free stacks pop
/// newest-first, and FIFO order is what every consumer wants.
template <class Node>
Node* reverse_list(Node* head) noexcept {
  Node* out = nullptr;
  while (head) {
    Node* next = head->next;
    head->next = out;
    out = head;
    head = next;
  }
  return out;
}

}  // namespace troupe::detail
