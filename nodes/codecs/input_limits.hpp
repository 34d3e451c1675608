// The bounds on one input message (docs/interface.md, "Limits"): whatever a message holds,
// what predflow spends on it stays a small multiple of its size. One place for the numbers,
// so that the parsers, the sources and the dead-letter records agree.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace predflow::limits {

// NATS's default max_payload; a larger message (a server configured otherwise) is
// dead-lettered whole, unread.
inline constexpr std::size_t kMaxMessageBytes = 1u << 20;
// A correlation_id travels into every row, every record and the Nats-Msg-Id header.
inline constexpr std::size_t kMaxCorrelationIdBytes = 128;
// Dead-letter records one message may cause for its invalid `symbols` entries; past these,
// one more record gives the count of the rest.
inline constexpr std::size_t kMaxInvalidEntryRecords = 100;
// How much of the offending input a dead-letter record quotes.
inline constexpr std::size_t kMaxQuotedBytes = 4096;
// How much of a bad value an error text shows.
inline constexpr std::size_t kMaxShownBytes = 64;

// At most `max` bytes of `text`, never ending inside a UTF-8 sequence (a cut that would
// split one backs off to its start), so that valid UTF-8 stays valid.
std::string_view utf8_prefix(std::string_view text, std::size_t max);

// Empty when `id` is an acceptable correlation id (1..128 bytes, each 0x20..0x7E); else
// why not, in words.
std::string correlation_id_problem(std::string_view id);

// `value` cut to kMaxShownBytes for an error text, with "..." when cut.
std::string shown_value(std::string_view value);

}  // namespace predflow::limits
