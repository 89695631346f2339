#include "runtime/detail/actor_registry.hpp"

namespace troupe::detail {

Registry& registry() {
  static auto* r = new Registry();  // used during static initialisation and at exit
  return *r;
}

void Registry::add_methods(std::type_index t, std::string class_name, std::vector<MethodEntry> methods) {
  std::lock_guard lock(mu_);
  methods_[t] = std::move(methods);
  names_[t] = std::move(class_name);
}

void Registry::add_factory(std::string key, FactoryEntry f) {
  std::lock_guard lock(mu_);
  factories_.emplace(std::move(key), std::move(f));
}

const FactoryEntry* Registry::factory(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = factories_.find(key);
  return it == factories_.end() ? nullptr : &it->second;
}

const std::vector<MethodEntry>* Registry::methods(std::type_index t) const {
  std::lock_guard lock(mu_);
  auto it = methods_.find(t);
  return it == methods_.end() ? nullptr : &it->second;
}

std::string Registry::method_names(std::type_index t) const {
  std::lock_guard lock(mu_);
  std::string out;
  if (auto it = methods_.find(t); it != methods_.end())
    for (const auto& m : it->second) out += (out.empty() ? "" : ", ") + m.name;
  return out;
}

bool Registry::registered(std::type_index t) const {
  std::lock_guard lock(mu_);
  return methods_.count(t) != 0;
}

}  // namespace troupe::detail

namespace troupe::detail {

std::vector<std::string> split_names(const char* names) {
  std::vector<std::string> out;
  std::string cur;
  for (const char* p = names;; ++p) {
    if (*p == ',' || *p == 0) {
      auto b = cur.find_first_not_of(" \t\n");
      auto e = cur.find_last_not_of(" \t\n");
      out.push_back(b == std::string::npos ? "" : cur.substr(b, e - b + 1));
      cur.clear();
      if (*p == 0) break;
    } else {
      cur += *p;
    }
  }
  return out;
}

}  // namespace troupe::detail
