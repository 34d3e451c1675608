#include "engine/spec.hpp"

#include <stdexcept>

namespace predflow {

const char* category_name(Category c) {
  switch (c) {
    case Category::Source: return "source";
    case Category::Transform: return "transform";
    case Category::Router: return "router";
    case Category::Model: return "model";
    case Category::Sink: return "sink";
  }
  return "?";
}

const char* field_type_name(FieldType t) {
  switch (t) {
    case FieldType::String: return "string";
    case FieldType::Integer: return "integer";
    case FieldType::Number: return "number";
    case FieldType::Bool: return "bool";
    case FieldType::Duration: return "duration";
    case FieldType::Size: return "size";
    case FieldType::Enum: return "enum";
    case FieldType::StringList: return "list of strings";
    case FieldType::Resource: return "resource";
    case FieldType::Path: return "path";
  }
  return "?";
}

namespace field {
namespace {
FieldSpec make(std::string name, FieldType type) {
  FieldSpec f;
  f.name = std::move(name);
  f.type = type;
  return f;
}
}  // namespace
FieldSpec string(std::string name) { return make(std::move(name), FieldType::String); }
FieldSpec path(std::string name) { return make(std::move(name), FieldType::Path); }
FieldSpec integer(std::string name) { return make(std::move(name), FieldType::Integer); }
FieldSpec number(std::string name) { return make(std::move(name), FieldType::Number); }
FieldSpec boolean(std::string name) { return make(std::move(name), FieldType::Bool); }
FieldSpec duration(std::string name) { return make(std::move(name), FieldType::Duration); }
FieldSpec size(std::string name) { return make(std::move(name), FieldType::Size); }
FieldSpec one_of(std::string name, std::vector<std::string> allowed) {
  FieldSpec f = make(std::move(name), FieldType::Enum);
  f.allowed = std::move(allowed);
  return f;
}
FieldSpec string_list(std::string name) { return make(std::move(name), FieldType::StringList); }
FieldSpec resource(std::string name, std::string resource_type) {
  FieldSpec f = make(std::move(name), FieldType::Resource);
  f.resource_type = std::move(resource_type);
  return f;
}
}  // namespace field

NodeSpec& NodeSpec::input(std::string name, std::string k, std::string doc) {
  inputs.push_back({std::move(name), std::move(k), std::move(doc)});
  return *this;
}

NodeSpec& NodeSpec::output(std::string name, std::string k, std::string doc) {
  outputs.push_back({std::move(name), std::move(k), std::move(doc)});
  return *this;
}

const FieldSpec* NodeSpec::find_field(const std::string& name) const {
  for (const auto& f : fields)
    if (f.name == name) return &f;
  return nullptr;
}

const PortSpec* NodeSpec::find_output(const std::string& name) const {
  for (const auto& p : outputs)
    if (p.name == name) return &p;
  return nullptr;
}

std::vector<std::string> NodeSpec::field_names() const {
  std::vector<std::string> names;
  for (const auto& f : fields) names.push_back(f.name);
  return names;
}

void NodeConfig::set(const std::string& name, FieldValue value, std::string text) {
  values_[name] = std::move(value);
  texts_[name] = std::move(text);
}

const FieldValue& NodeConfig::get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw std::logic_error("field '" + name + "' has no value");
  return it->second;
}

namespace {
template <typename T>
const T& as(const FieldValue& v, const std::string& name) {
  if (const T* p = std::get_if<T>(&v)) return *p;
  throw std::logic_error("field '" + name + "' read with the wrong type");
}
}  // namespace

const std::string& NodeConfig::get_string(const std::string& name) const { return as<std::string>(get(name), name); }
std::int64_t NodeConfig::get_int(const std::string& name) const { return as<std::int64_t>(get(name), name); }
double NodeConfig::get_number(const std::string& name) const { return as<double>(get(name), name); }
bool NodeConfig::get_bool(const std::string& name) const { return as<bool>(get(name), name); }
Duration NodeConfig::get_duration(const std::string& name) const { return as<Duration>(get(name), name); }
std::uint64_t NodeConfig::get_size(const std::string& name) const { return as<std::uint64_t>(get(name), name); }
const std::vector<std::string>& NodeConfig::get_strings(const std::string& name) const {
  return as<std::vector<std::string>>(get(name), name);
}

const std::string& NodeConfig::text(const std::string& name) const {
  static const std::string empty;
  auto it = texts_.find(name);
  return it == texts_.end() ? empty : it->second;
}

}  // namespace predflow
