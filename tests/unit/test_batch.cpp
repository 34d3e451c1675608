// Batch columns, selection, merging and the acknowledgement tokens they carry.
#include <doctest/doctest.h>

#include "engine/batch.hpp"

using namespace predflow;

namespace {
// Columns of this test's own: the engine knows no column, so any node (or test) declares
// the ones it needs, and every batch operation carries them.
namespace col {
constexpr Column<double> prices{"prices"};
constexpr MatrixColumn<float> features{"features"};
}  // namespace col

struct AckCounter {
  int done = 0, failed = 0;
  AckPtr token() {
    return std::make_shared<AckToken>([this](AckOutcome o) { (o == AckOutcome::Done ? done : failed)++; });
  }
};

Batch rows_of(const std::vector<std::string>& symbols, const AckPtr& ack, std::size_t width = 2) {
  Batch b;
  b.acks = {ack};
  b[col::features].width = width;
  for (std::size_t i = 0; i < symbols.size(); ++i) {
    b.symbols.push_back(symbols[i]);
    b[col::prices].push_back(static_cast<double>(i + 1));
    for (std::size_t f = 0; f < width; ++f) b[col::features].values.push_back(static_cast<float>(i * 10 + f));
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
  CHECK(one[col::features].values.size() == 8);
  CHECK(one.acks.size() == 2);
  CHECK(one.row_ack == std::vector<std::uint32_t>{0, 0, 1, 1});

  std::vector<std::uint32_t> pick{3};
  Batch d = one.select(pick);
  CHECK(d.symbols == std::vector<std::string>{"D"});
  CHECK(d[col::prices] == std::vector<double>{2.0});
  CHECK(d[col::features].values == std::vector<float>{10.0f, 11.0f});
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
  y[col::prices] = {5.0};
  x.append(y);
  CHECK(x[col::prices] == std::vector<double>{0.0, 5.0});
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

namespace {
struct Quote {  // a type the engine has never heard of
  std::string venue;
  int lots = 0;
  bool operator==(const Quote&) const = default;
};
constexpr Column<Quote> quotes{"quotes"};
constexpr MatrixColumn<int> grid{"grid"};
constexpr Attribute<std::string> stage{"stage"};
constexpr Attribute<int> generation{"generation"};
}  // namespace

TEST_CASE("a column the engine does not know survives select, slice, append and a copy") {
  Batch b;
  b.symbols = {"A", "B", "C"};
  b[quotes] = {{"X", 1}, {"Y", 2}, {"Z", 3}};
  b[grid] = {{1, 2, 3, 4, 5, 6}, 2};
  b[stage] = "scored";

  std::vector<std::uint32_t> rows{2, 0};
  Batch picked = b.select(rows);
  CHECK(picked[quotes] == std::vector<Quote>{{"Z", 3}, {"X", 1}});
  CHECK(picked[grid].width == 2);
  CHECK(picked[grid].values == std::vector<int>{5, 6, 1, 2});
  CHECK(picked[stage] == "scored");

  Batch tail = b.slice(1, 3);
  CHECK(tail[quotes] == std::vector<Quote>{{"Y", 2}, {"Z", 3}});
  CHECK(tail[grid].row(1)[0] == 5);

  picked.append(tail);
  CHECK(picked.size() == 4);
  CHECK(picked[quotes].size() == 4);
  CHECK(picked[grid].values == std::vector<int>{5, 6, 1, 2, 3, 4, 5, 6});

  Batch copy = picked;  // a copy owns its columns: changing it leaves the original
  copy[quotes][0].lots = 99;
  CHECK(picked[quotes][0].lots == 3);
}

TEST_CASE("append pads a matrix column by its width, whichever side lacks it") {
  Batch has;
  has.symbols = {"A"};
  has[grid] = {{7, 8, 9}, 3};
  Batch lacks;
  lacks.symbols = {"B", "C"};

  Batch left = has;
  left.append(lacks);
  CHECK(left[grid].values == std::vector<int>{7, 8, 9, 0, 0, 0, 0, 0, 0});
  CHECK(left[grid].rows() == 3);

  Batch right = lacks;
  right.append(has);
  CHECK(right[grid].width == 3);
  CHECK(right[grid].values == std::vector<int>{0, 0, 0, 0, 0, 0, 7, 8, 9});
  CHECK(right[quotes].empty());  // a column neither side has stays empty
}

TEST_CASE("an attribute keeps this batch's value, and takes the other's only when it has none") {
  Batch first;
  first.symbols = {"A"};
  first[stage] = "routed";
  Batch second;
  second.symbols = {"B"};
  second[stage] = "scored";
  second[generation] = 4;

  first.append(second);
  CHECK(first[stage] == "routed");
  CHECK(first[generation] == 4);  // first had none

  Batch empty;
  empty.append(second);
  CHECK(empty[stage] == "scored");
}

TEST_CASE("reading a column a const batch lacks gives an empty one and adds nothing") {
  Batch b;
  b.symbols = {"A"};
  const Batch& view = b;
  CHECK(view[quotes].empty());
  CHECK(view[grid].width == 0);
  CHECK(view[stage].empty());
  CHECK(view[generation] == 0);
  CHECK(b.column_shapes().empty());

  b[quotes] = {{"X", 1}};
  b[stage] = "x";
  auto shapes = b.column_shapes();
  REQUIRE(shapes.size() == 2);
  CHECK(shapes[0].name == "quotes");
  CHECK(shapes[0].rows == 1);
  CHECK(shapes[0].per_row);
  CHECK_FALSE(shapes[1].per_row);

  b.erase(quotes);
  CHECK(view[quotes].empty());
  CHECK(b.column_shapes().size() == 1);
}
