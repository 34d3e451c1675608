// Node and resource types by name, filled at static initialisation by each node's file.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/node.hpp"
#include "engine/spec.hpp"

namespace predflow {

using NodeFactory = std::function<std::unique_ptr<Node>(const NodeContext&)>;

struct ResourceSpec {
  std::string type;
  std::string summary;
  std::vector<FieldSpec> fields;
  const FieldSpec* find_field(const std::string& name) const;
};

using ResourceFactory = std::function<std::shared_ptr<Resource>(const std::string& name, const NodeConfig&, Metrics&)>;

struct NodeRegistration {
  NodeSpec spec;
  NodeFactory factory;
};

struct ResourceRegistration {
  ResourceSpec spec;
  ResourceFactory factory;
};

class Registry {
 public:
  static Registry& instance();

  bool add_node(NodeSpec spec, NodeFactory factory);
  bool add_resource(ResourceSpec spec, ResourceFactory factory);
  const NodeRegistration* find_node(const std::string& type) const;
  const ResourceRegistration* find_resource(const std::string& type) const;
  std::vector<std::string> node_types() const;
  std::vector<std::string> resource_types() const;

 private:
  std::map<std::string, NodeRegistration> nodes_;
  std::map<std::string, ResourceRegistration> resources_;
};

}  // namespace predflow

#define PREDFLOW_CONCAT_INNER(a, b) a##b
#define PREDFLOW_CONCAT(a, b) PREDFLOW_CONCAT_INNER(a, b)
// Registers a node type at static init: PREDFLOW_REGISTER_NODE(make_spec(), factory).
#define PREDFLOW_REGISTER_NODE(spec, factory)                                              \
  [[maybe_unused]] static const bool PREDFLOW_CONCAT(predflow_registered_node_, __LINE__) = \
      ::predflow::Registry::instance().add_node((spec), (factory))
#define PREDFLOW_REGISTER_RESOURCE(spec, factory)                                              \
  [[maybe_unused]] static const bool PREDFLOW_CONCAT(predflow_registered_resource_, __LINE__) = \
      ::predflow::Registry::instance().add_resource((spec), (factory))
