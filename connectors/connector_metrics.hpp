// The metrics every connector reports, labelled {resource, type} (the resource's name in
// the pipeline file and its type: redis, postgres, nats).
#pragma once

#include <string>

namespace prometheus {
class Counter;
class Gauge;
}  // namespace prometheus

namespace predflow {
class Metrics;
}

namespace predflow::connectors {

struct ConnectorInstruments {
  prometheus::Gauge* breaker_state = nullptr;  // predflow_connector_breaker_state: 0 closed, 1 open, 2 half-open
  prometheus::Counter* failures = nullptr;     // predflow_connector_failures_total
  prometheus::Gauge* connected = nullptr;      // predflow_connector_connected: 1 when the last contact worked
  prometheus::Counter* round_trips = nullptr;  // predflow_connector_round_trips_total
  prometheus::Counter* reconnects = nullptr;   // predflow_connector_connects_total
};

// predflow_connector_connected{resource,type}, alone (NATS has no breaker).
prometheus::Gauge& connected_gauge(Metrics& metrics, const std::string& resource, const std::string& type);

ConnectorInstruments connector_instruments(Metrics& metrics, const std::string& resource, const std::string& type);

}  // namespace predflow::connectors
