// The contract's symbol-carrying NATS messages (docs/interface.md §2 and §3), parsed without
// I/O so that every malformed shape is unit-tested:
//   data.features.ready   {"symbols": [...], "ts": "...", "correlation_id": "..."}
//                         or {"symbol": "AAPL", ...}; ts and correlation_id optional
//   job.predict.{route}   {"correlation_id": "...", "route": "normal", "symbols": [...], "ts": "..."}
// Bad input is never fatal: what cannot be used comes back as failures (stage, reason,
// the symbol where there is one, the message's first 4 KiB as payload) for the
// dead-letter path. The cost of one message is bounded whatever it holds (input_limits.hpp):
// it is read as a stream (no tree, no recursion, any nesting), at most 100 failures come
// from its invalid entries plus one that counts the rest, and a repeated symbol is kept once.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/batch.hpp"

namespace predflow {

// ^[A-Z0-9][A-Z0-9.\-]{0,14}$
bool is_valid_symbol(std::string_view symbol);

struct SymbolMessage {
  std::vector<std::string> symbols;           // valid symbols, in message order, each once
  std::optional<std::string> correlation_id;  // as sent; absent when the message has none
  std::optional<std::string> ts;              // as sent (upstream's time), when a string
  std::string route;                          // job messages: "normal" or "earnings"
  std::vector<RowFailure> failures;           // one per invalid symbol (at most 100 + 1), or one for the message
  std::size_t invalid_symbols = 0;            // invalid entries in all, recorded or not
};

// Reasons (RowFailure::reason) for the dead-letter records:
//   message_too_large       the payload is over 1 MiB (not read)
//   invalid_json            the payload is not JSON, or not a JSON object
//   invalid_correlation_id  correlation_id is not 1..128 bytes of printable ASCII, or not a
//                           string or number (the whole message is rejected)
//   no_symbols              neither `symbol` nor `symbols` holds anything
//   invalid_symbol          an entry that is not a string matching the pattern, however
//                           deeply it nests (one failure each, the first 100)
//   too_many_invalid_symbols  one record for the invalid entries past the 100th, with their count
//   invalid_route           (job) `route` is not "normal" or "earnings"
// `stage` names who reports them (the source node's id, e.g. "nats_in").
SymbolMessage parse_features_ready(std::string_view payload, const std::string& stage);
SymbolMessage parse_job(std::string_view payload, const std::string& stage);

// The body of a job.predict.{route} message.
std::string job_json(const std::string& correlation_id, const std::string& route, const std::vector<std::string>& symbols,
                     const std::string& ts);

}  // namespace predflow
