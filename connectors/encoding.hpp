// Small text helpers for records that must be valid JSON strings.
#pragma once

#include <string>
#include <string_view>

namespace predflow::connectors {

// Well-formed UTF-8 per RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF.
bool is_valid_utf8(std::string_view text);

// Standard base64 (RFC 4648, with '=' padding).
std::string base64_encode(std::string_view bytes);

// `text` with each ill-formed byte sequence replaced by U+FFFD.
std::string sanitize_utf8(std::string_view text);

}  // namespace predflow::connectors
