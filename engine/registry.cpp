#include "engine/registry.hpp"

#include <cstdio>
#include <cstdlib>

namespace predflow {

const FieldSpec* ResourceSpec::find_field(const std::string& name) const {
  for (const auto& f : fields)
    if (f.name == name) return &f;
  return nullptr;
}

Registry& Registry::instance() {
  static Registry registry;
  return registry;
}

bool Registry::add_node(NodeSpec spec, NodeFactory factory) {
  std::string type = spec.type;
  if (nodes_.count(type)) {  // two files claiming one name is a build mistake
    std::fprintf(stderr, "predflow: node type '%s' registered twice\n", type.c_str());
    std::abort();
  }
  nodes_.emplace(type, NodeRegistration{std::move(spec), std::move(factory)});
  return true;
}

bool Registry::add_resource(ResourceSpec spec, ResourceFactory factory) {
  std::string type = spec.type;
  if (resources_.count(type)) {
    std::fprintf(stderr, "predflow: resource type '%s' registered twice\n", type.c_str());
    std::abort();
  }
  resources_.emplace(type, ResourceRegistration{std::move(spec), std::move(factory)});
  return true;
}

const NodeRegistration* Registry::find_node(const std::string& type) const {
  auto it = nodes_.find(type);
  return it == nodes_.end() ? nullptr : &it->second;
}

const ResourceRegistration* Registry::find_resource(const std::string& type) const {
  auto it = resources_.find(type);
  return it == resources_.end() ? nullptr : &it->second;
}

std::vector<std::string> Registry::node_types() const {
  std::vector<std::string> names;
  for (const auto& [name, _] : nodes_) names.push_back(name);
  return names;
}

std::vector<std::string> Registry::resource_types() const {
  std::vector<std::string> names;
  for (const auto& [name, _] : resources_) names.push_back(name);
  return names;
}

}  // namespace predflow
