// Batch columns, selection, merging and the acknowledgement tokens they carry.
#include <doctest/doctest.h>

#include "engine/batch.hpp"

using namespace predflow;

namespace {
struct AckCounter {
  int done = 0, failed = 0;
  AckPtr token() {
    return std::make_shared<AckToken>([this](AckOutcome o) { (o == AckOutcome::Done ? done : failed)++; });
  }
};

Batch rows_of(const std::vector<std::string>& symbols, const AckPtr& ack, std::size_t width = 2) {
  Batch b;
  b.acks = {ack};
  b.feature_width = width;
  for (std::size_t i = 0; i < symbols.size(); ++i) {
    b.symbols.push_back(symbols[i]);
    b.prices.push_back(static_cast<double>(i + 1));
    for (std::size_t f = 0; f < width; ++f) b.features.push_back(static_cast<float>(i * 10 + f));
  }
  return b;
}
}  // namespace

TEST_CASE("an ack token fires exactly once, when the last holder lets go") {
  AckCounter c;
  {
    AckPtr t = c.token();
    AckPtr copy = t;
    t.reset();
    CHECK(c.done == 0);
  }
  CHECK(c.done == 1);
  CHECK(c.failed == 0);
}

TEST_CASE("a failed token reports Failed instead of Done") {
  AckCounter c;
  {
    AckPtr t = c.token();
    t->fail();
  }
  CHECK(c.done == 0);
  CHECK(c.failed == 1);
}

TEST_CASE("select keeps every column aligned and only the tokens of the chosen rows") {
  AckCounter a, b;
  Batch one = rows_of({"A", "B"}, a.token());
  Batch two = rows_of({"C", "D"}, b.token());
  one.append(two);
  REQUIRE(one.size() == 4);
  CHECK(one.features.size() == 8);
  CHECK(one.acks.size() == 2);
  CHECK(one.row_ack == std::vector<std::uint32_t>{0, 0, 1, 1});

  std::vector<std::uint32_t> pick{3};
  Batch d = one.select(pick);
  CHECK(d.symbols == std::vector<std::string>{"D"});
  CHECK(d.prices == std::vector<double>{2.0});
  CHECK(d.features == std::vector<float>{10.0f, 11.0f});
  REQUIRE(d.acks.size() == 1);
  CHECK(d.acks[0] == one.acks[1]);
  CHECK(d.row_ack.empty());

  two = Batch();  // drop every other holder of b's token
  one = Batch();
  CHECK(a.done == 1);  // only d is left, and it holds b's token alone
  CHECK(b.done == 0);
  d = Batch();
  CHECK(b.done == 1);
}

TEST_CASE("slice splits a batch, each piece holds the tokens its rows need") {
  AckCounter a, b;
  Batch merged = rows_of({"A", "B", "C"}, a.token());
  merged.append(rows_of({"D", "E"}, b.token()));
  Batch first = merged.slice(0, 2);
  Batch second = merged.slice(2, 5);
  CHECK(first.symbols == std::vector<std::string>{"A", "B"});
  CHECK(first.acks.size() == 1);
  CHECK(second.acks.size() == 2);
  CHECK(second.row_ack == std::vector<std::uint32_t>{0, 1, 1});
  merged = Batch();
  first = Batch();
  CHECK(a.done == 0);  // row C still in `second`
  second = Batch();
  CHECK(a.done == 1);
  CHECK(b.done == 1);
}

TEST_CASE("append pads a column that only one side has") {
  Batch x;
  x.symbols = {"A"};
  Batch y;
  y.symbols = {"B"};
  y.prices = {5.0};
  x.append(y);
  CHECK(x.prices == std::vector<double>{0.0, 5.0});
  CHECK(x.size() == 2);
}

TEST_CASE("shared tokens and failures: shared tokens reach every piece, failures travel once") {
  AckCounter a, s;
  Batch b = rows_of({"A", "B"}, a.token());
  b.shared_acks.push_back(s.token());
  b.failures.push_back({"stage", std::string("X"), "bad", "err", std::nullopt, 1, "payload"});
  Batch left = b.slice(0, 1), right = b.slice(1, 2);
  CHECK(left.failures.empty());
  CHECK(left.shared_acks.size() == 1);
  CHECK(right.shared_acks.size() == 1);
  b = Batch();
  left = Batch();
  CHECK(s.done == 0);
  right = Batch();
  CHECK(s.done == 1);
  CHECK(a.done == 1);
}

TEST_CASE("a zero-row batch's tokens are kept when appended") {
  AckCounter a;
  Batch only_failures;
  only_failures.acks = {a.token()};
  only_failures.failures.push_back({"s", std::nullopt, "r", "e", std::nullopt, 1, ""});
  Batch target;
  target.append(only_failures);
  only_failures = Batch();
  CHECK(a.done == 0);
  CHECK(target.failures.size() == 1);
  target = Batch();
  CHECK(a.done == 1);
}

TEST_CASE("take() reuses a sole owner and copies a shared batch") {
  auto b = make_batch();
  b->symbols = {"A"};
  const Batch* address = b.get();
  BatchPtr shared = b;
  b.reset();
  auto same = Batch::take(std::move(shared));
  CHECK(same.get() == address);

  BatchPtr one = same, two = same;
  same.reset();
  auto copy = Batch::take(std::move(one));
  CHECK(copy.get() != address);
  CHECK(copy->symbols == std::vector<std::string>{"A"});
}
