// Small text helpers: records that must be valid JSON strings, and texts that must not
// carry secrets into logs, exception messages or metric labels.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace predflow::connectors {

// Well-formed UTF-8 per RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF.
bool is_valid_utf8(std::string_view text);

// Standard base64 (RFC 4648, with '=' padding).
std::string base64_encode(std::string_view bytes);
// Its inverse; nullopt for text that is not padded standard base64.
std::optional<std::string> base64_decode(std::string_view text);

// `text` with each ill-formed byte sequence replaced by U+FFFD.
std::string sanitize_utf8(std::string_view text);

// `text` with the secrets that connection strings carry replaced by ***, wherever they stand
// (our messages, or a library's, such as libpq's URI errors that quote the whole URL):
//   scheme://user:password@host  → scheme://user:***@host
//   nats://token@host, tls://token@host → nats://***@host (NATS reads a lone user as a token)
//   password=value, password = 'quoted value', ?password=value (libpq conninfo and URI
//   parameters; sslpassword too) → password=***
// Then every occurrence of each of `known` (non-empty), so that a password a malformed URL
// scattered outside any of those shapes is still hidden.
std::string redact_secrets(std::string_view text, const std::vector<std::string>& known = {});

// The secrets in a URL (or a comma-separated list of them) or a libpq conninfo, as written
// and %-decoded: what redact_secrets should also hide when texts about this URL may quote
// pieces of it. Lenient: a malformed URL still yields what stands where a password would.
std::vector<std::string> url_secrets(std::string_view url_or_conninfo);

}  // namespace predflow::connectors
