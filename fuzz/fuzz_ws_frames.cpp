// WebSocket client frames (from any client that connects): parse_client_frame, then the
// request applied to a subscription and the reply built, as ws_server does for each frame.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "fuzz_check.hpp"
#include "nodes/websocket/ws_protocol.hpp"

using namespace predflow::ws;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = parse_client_frame(text);
  if (auto* error = std::get_if<std::string>(&parsed)) {
    FUZZ_CHECK(!error->empty());
    FUZZ_CHECK(!error_frame(*error).empty());
    return 0;
  }
  const auto& request = std::get<ClientRequest>(parsed);
  FUZZ_CHECK(!request.symbols.empty());
  for (const auto& symbol : request.symbols) FUZZ_CHECK(symbol == "*" || valid_symbol(symbol));
  Subscription subscription;
  if (auto error = subscription.apply(request)) {
    FUZZ_CHECK(!error_frame(*error).empty());
    return 0;
  }
  FUZZ_CHECK(subscription.size() <= subscription.max_symbols() + 1);  // + "*"
  // A reply lists at most kMaxListedSymbols symbols (of at most 15 bytes each): bounded
  // whatever the subscription holds.
  const std::string reply = subscribed_frame(subscription);
  FUZZ_CHECK(!reply.empty());
  FUZZ_CHECK(reply.size() <= 100 + kMaxListedSymbols * 18);
  return 0;
}
