// Names of choices: the enum<->string tables beside each enum, and the registries of the open
// extension points (gradient engines, losses, model kinds). One error type (OptionsError) and
// one message shape for an unknown name: "unknown <what> 'x' (expected a, b or c)".
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "cvnode/errors.h"

namespace cvnode::detail {

// "a", "a or b", "a, b or c".
std::string choices(const std::vector<std::string>& names);
[[noreturn]] void unknown_name(const char* what, const std::string& name, const std::vector<std::string>& names);

// An enum's spellings: the one table both directions read, in documentation order. An alias
// (e.g. "swish" for silu) parses to its value but is neither printed nor listed in messages.
template <class E>
struct EnumName {
  E value;
  const char* name;
  bool alias = false;
};

template <class E, std::size_t N>
const char* enum_name(const EnumName<E> (&table)[N], E value) {
  for (const auto& e : table)
    if (e.value == value && !e.alias) return e.name;
  return "?";
}

template <class E, std::size_t N>
E parse_enum(const EnumName<E> (&table)[N], const std::string& name, const char* what) {
  for (const auto& e : table)
    if (name == e.name) return e.value;
  std::vector<std::string> names;
  for (const auto& e : table)
    if (!e.alias) names.emplace_back(e.name);
  unknown_name(what, name, names);
}

// Factories by name, in registration order.
template <class Factory>
class Registry {
 public:
  struct Entry {
    std::string name;
    Factory factory;
  };
  Registry(const char* what, std::vector<Entry> entries) : what_(what), entries_(std::move(entries)) {}
  const Entry* find(const std::string& name) const {
    for (const auto& e : entries_)
      if (e.name == name) return &e;
    return nullptr;
  }
  // Throws OptionsError naming the registered choices.
  const Factory& at(const std::string& name) const {
    if (const Entry* e = find(name)) return e->factory;
    unknown_name(what_, name, names());
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& e : entries_) out.push_back(e.name);
    return out;
  }
  const char* what() const { return what_; }

 private:
  const char* what_;
  std::vector<Entry> entries_;
};

}  // namespace cvnode::detail
