#pragma once
// Readable C++ type names for labels and error messages.
#include <string>
#include <typeinfo>

namespace troupe::detail {

std::string demangle(const char* mangled);

template <class T>
const char* type_name() {
  static const std::string name = demangle(typeid(T).name());
  return name.c_str();
}

}  // namespace troupe::detail
