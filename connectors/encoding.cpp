#include "connectors/encoding.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>

namespace predflow::connectors {

namespace {

// Length of the well-formed sequence starting at text[i], or 0 when it is ill-formed.
std::size_t utf8_sequence(std::string_view text, std::size_t i) {
  auto byte = [&](std::size_t k) { return static_cast<std::uint8_t>(text[k]); };
  const std::uint8_t b0 = byte(i);
  if (b0 < 0x80) return 1;
  std::size_t n;
  std::uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) n = 2;
  else if (b0 == 0xE0) n = 3, lo = 0xA0;                 // no overlong 3-byte forms
  else if (b0 >= 0xE1 && b0 <= 0xEC) n = 3;
  else if (b0 == 0xED) n = 3, hi = 0x9F;                 // no surrogates
  else if (b0 >= 0xEE && b0 <= 0xEF) n = 3;
  else if (b0 == 0xF0) n = 4, lo = 0x90;                 // no overlong 4-byte forms
  else if (b0 >= 0xF1 && b0 <= 0xF3) n = 4;
  else if (b0 == 0xF4) n = 4, hi = 0x8F;                 // nothing above U+10FFFF
  else return 0;                                         // 80..C1, F5..FF
  if (i + n > text.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  return n;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Where the authority part of a URL whose "://" ends at `from` can end in free text: at
// whitespace, a quote, or the next URL (a NATS server list holds several).
std::size_t url_token_end(std::string_view text, std::size_t from) {
  std::size_t end = from;
  while (end < text.size() && !is_space(text[end]) && text[end] != '"' && text[end] != '\'' &&
         text.compare(end, 3, "://") != 0)
    ++end;
  return end;
}

// The scheme in front of a "://" at `colon`, lower-cased ("" when none).
std::string scheme_before(std::string_view text, std::size_t colon) {
  std::size_t start = colon;
  while (start > 0 && (std::isalnum(static_cast<unsigned char>(text[start - 1])) || text[start - 1] == '+' ||
                       text[start - 1] == '-' || text[start - 1] == '.'))
    --start;
  std::string scheme(text.substr(start, colon - start));
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return scheme;
}

// NATS takes nats://TOKEN@host: a user-info without ':' is then a secret too.
bool token_scheme(const std::string& scheme) { return scheme == "nats" || scheme == "tls"; }

// When text[i..] starts a `password` key (any case, sslpassword included) followed by '=',
// the offset just past the '='; otherwise 0.
std::size_t password_key_end(std::string_view text, std::size_t i) {
  static constexpr std::string_view kKey = "password";
  if (i + kKey.size() > text.size()) return 0;
  for (std::size_t k = 0; k < kKey.size(); ++k)
    if (std::tolower(static_cast<unsigned char>(text[i + k])) != kKey[k]) return 0;
  std::size_t j = i + kKey.size();
  while (j < text.size() && (text[j] == ' ' || text[j] == '\t')) ++j;
  if (j >= text.size() || text[j] != '=') return 0;
  return j + 1;
}

// The end of a conninfo or URI-parameter value starting at `i` (after spaces): a quoted
// value to its closing quote (\' and \\ escaped, as libpq reads it), else to whitespace,
// '&', '#', or a double quote.
std::size_t password_value_end(std::string_view text, std::size_t i) {
  if (i < text.size() && text[i] == '\'') {
    for (++i; i < text.size(); ++i) {
      if (text[i] == '\\' && i + 1 < text.size()) ++i;
      else if (text[i] == '\'') return i + 1;
    }
    return text.size();
  }
  while (i < text.size() && !is_space(text[i]) && text[i] != '&' && text[i] != '#' && text[i] != '"') ++i;
  return i;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX decoded where well-formed; anything else kept as it is.
std::string percent_decoded(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    int hi = s[i] == '%' && i + 2 < s.size() ? hex_value(s[i + 1]) : -1;
    int lo = hi >= 0 ? hex_value(s[i + 2]) : -1;
    if (lo >= 0) {
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Every run of `text` covered by an occurrence of any of `secrets` becomes one "***", in
// one pass over the text as it was: replacing secret after secret would let a secret made
// of '*' match the stars of earlier replacements and grow the text each time (a fuzzer
// found a 240-byte URL that took seconds).
std::string mask_all(const std::string& text, const std::vector<std::string>& secrets) {
  std::vector<char> covered(text.size(), 0);
  bool any = false;
  for (const auto& secret : secrets) {
    if (secret.empty()) continue;
    std::size_t filled_to = 0;  // occurrences overlap: fill each position once per secret
    for (std::size_t at = text.find(secret); at != std::string::npos; at = text.find(secret, at + 1)) {
      const std::size_t end = at + secret.size();
      for (std::size_t i = std::max(at, filled_to); i < end; ++i) covered[i] = 1;
      filled_to = std::max(filled_to, end);
      any = true;
    }
  }
  if (!any) return text;
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    if (!covered[i]) {
      out += text[i++];
      continue;
    }
    out += "***";
    while (i < text.size() && covered[i]) ++i;
  }
  return out;
}

}  // namespace

std::string redact_secrets(std::string_view text, const std::vector<std::string>& known) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    if (text.compare(i, 3, "://") == 0) {
      const std::size_t from = i + 3, end = url_token_end(text, from);
      out.append("://");
      i = from;
      const std::size_t at = text.substr(from, end - from).rfind('@');
      if (at != std::string_view::npos) {
        std::string_view userinfo = text.substr(from, at);
        std::size_t colon = userinfo.find(':');
        if (colon != std::string_view::npos) {
          out.append(userinfo.substr(0, colon + 1)).append("***");
          i = from + at;  // from the '@' on, as it is
        } else if (!userinfo.empty() && token_scheme(scheme_before(text, from - 3))) {
          out.append("***");
          i = from + at;
        }
      }
      continue;
    }
    if (std::size_t value = password_key_end(text, i)) {
      out.append(text.substr(i, value - i));
      while (value < text.size() && (text[value] == ' ' || text[value] == '\t')) ++value;
      out.append("***");
      i = password_value_end(text, value);
      continue;
    }
    out += text[i++];
  }
  std::vector<std::string> secrets;
  for (const auto& secret : known)
    if (secret != "***") secrets.push_back(secret);
  return mask_all(out, secrets);
}

std::vector<std::string> url_secrets(std::string_view text) {
  std::vector<std::string> found;
  auto add_one = [&](std::string_view raw) {
    if (raw.empty()) return;
    found.emplace_back(raw);
    std::string decoded = percent_decoded(raw);
    if (decoded != raw) found.push_back(std::move(decoded));
  };
  // A password holding a bare '/', '?', '#' or '@' is cut there by URI parsers (libpq then
  // reads "Hun" of app:Hun/ter@host as a port and quotes it): each piece is a secret too.
  auto add = [&](std::string_view raw) {
    add_one(raw);
    if (raw.find_first_of("/?#@") == std::string_view::npos) return;
    for (std::size_t start = 0; start <= raw.size();) {
      std::size_t cut = std::min(raw.find_first_of("/?#@", start), raw.size());
      add_one(raw.substr(start, cut - start));
      start = cut + 1;
    }
  };
  for (std::size_t i = text.find("://"); i != std::string_view::npos; i = text.find("://", i + 3)) {
    // Lenient on purpose: to the last '@' before the next URL, spaces and '/' included,
    // since a malformed URL is exactly the one whose error text may quote it.
    std::size_t from = i + 3;
    std::size_t next = text.find("://", from);
    std::string_view rest = text.substr(from, next == std::string_view::npos ? std::string_view::npos : next - from);
    std::size_t at = rest.rfind('@');
    if (at == std::string_view::npos) continue;
    std::string_view userinfo = rest.substr(0, at);
    std::size_t colon = userinfo.find(':');
    if (colon != std::string_view::npos) add(userinfo.substr(colon + 1));
    else if (token_scheme(scheme_before(text, i))) add(userinfo);
  }
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (std::size_t value = password_key_end(text, i)) {
      while (value < text.size() && (text[value] == ' ' || text[value] == '\t')) ++value;
      std::size_t end = password_value_end(text, value);
      std::string_view v = text.substr(value, end - value);
      if (v.size() >= 2 && v.front() == '\'' && v.back() == '\'') {
        std::string unquoted;
        for (std::size_t k = 1; k + 1 < v.size(); ++k) {
          if (v[k] == '\\' && k + 2 < v.size()) ++k;
          unquoted += v[k];
        }
        if (!unquoted.empty()) found.push_back(std::move(unquoted));
      }
      add(v);
      i = end > i ? end - 1 : i;
    }
  }
  return found;
}

bool is_valid_utf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    std::size_t n = utf8_sequence(text, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string sanitize_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    std::size_t n = utf8_sequence(text, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string base64_encode(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    std::uint32_t v = static_cast<std::uint8_t>(bytes[i]) << 16 | static_cast<std::uint8_t>(bytes[i + 1]) << 8 |
                      static_cast<std::uint8_t>(bytes[i + 2]);
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += kAlphabet[v >> 6 & 63];
    out += kAlphabet[v & 63];
  }
  if (std::size_t rest = bytes.size() - i) {
    std::uint32_t v = static_cast<std::uint8_t>(bytes[i]) << 16;
    if (rest == 2) v |= static_cast<std::uint8_t>(bytes[i + 1]) << 8;
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += rest == 2 ? kAlphabet[v >> 6 & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    const int pad = last ? (text[i + 3] == '=') + (text[i + 2] == '=' && text[i + 3] == '=') : 0;
    std::uint32_t v = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      const char c = text[i + k];
      if (k >= 4 - static_cast<std::size_t>(pad)) {
        v <<= 6;
        continue;
      }
      const int d = value(c);
      if (d < 0) return std::nullopt;
      v = v << 6 | static_cast<std::uint32_t>(d);
    }
    out += static_cast<char>(v >> 16 & 0xFF);
    if (pad < 2) out += static_cast<char>(v >> 8 & 0xFF);
    if (pad < 1) out += static_cast<char>(v & 0xFF);
  }
  return out;
}

}  // namespace predflow::connectors
