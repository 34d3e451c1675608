#include "connectors/connector_metrics.hpp"

#include "engine/metrics.hpp"

namespace predflow::connectors {

prometheus::Gauge& connected_gauge(Metrics& metrics, const std::string& resource, const std::string& type) {
  return metrics.gauge("predflow_connector_connected", "1 while the connector's last contact with its server worked, else 0",
                       {{"resource", resource}, {"type", type}});
}

ConnectorInstruments connector_instruments(Metrics& metrics, const std::string& resource, const std::string& type) {
  prometheus::Labels labels{{"resource", resource}, {"type", type}};
  ConnectorInstruments in;
  in.breaker_state = &metrics.gauge("predflow_connector_breaker_state",
                                    "Circuit breaker state per connector: 0 closed, 1 open, 2 half-open", labels);
  in.failures = &metrics.counter("predflow_connector_failures_total",
                                 "Connector calls that failed to reach the server (counted by the breaker)", labels);
  in.connected = &connected_gauge(metrics, resource, type);
  in.round_trips = &metrics.counter("predflow_connector_round_trips_total",
                                    "Network round trips made by the connector", labels);
  in.reconnects = &metrics.counter("predflow_connector_connects_total",
                                   "Connections the connector opened (first connect and reconnects)", labels);
  return in;
}

}  // namespace predflow::connectors
