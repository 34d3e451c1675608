// model.yaml: both readers (yaml-cpp for the node, the subset reader for the standalone
// benchmark) agree on the shipped cards, and bad cards fail with clear messages.
#include <doctest/doctest.h>

#include "inference/inference_support.hpp"
#include "nodes/inference/model_card.hpp"

using namespace predflow::inference;
using namespace predflow::test;

namespace {
void check_same(const ModelCard& a, const ModelCard& b) {
  CHECK(a.yaml_path == b.yaml_path);
  CHECK(a.name == b.name);
  CHECK(a.model_type == b.model_type);
  CHECK(a.file == b.file);
  CHECK(a.input_width == b.input_width);
  CHECK(a.features == b.features);
  CHECK(a.scaler_mean == b.scaler_mean);
  CHECK(a.scaler_scale == b.scaler_scale);
  CHECK(a.dropout == b.dropout);
  CHECK(a.mc_samples_default == b.mc_samples_default);
  CHECK(a.mc_trunk == b.mc_trunk);
  CHECK(a.mc_head == b.mc_head);
  CHECK(a.mc_head_mc == b.mc_head_mc);
  CHECK(a.mc_mean == b.mc_mean);
}
}  // namespace

TEST_CASE("model card: the shipped cards read the same with yaml-cpp and with the subset reader") {
  for (const auto& dir : {normal_model(), earnings_model(), python_tiny_model()}) {
    CAPTURE(dir);
    ModelCard a = load_model_card(dir);
    ModelCard b = load_model_card_lite(choose_model(dir).yaml_path);  // the yaml file itself works too
    check_same(a, b);
    check_same(a, load_model_card_lite(dir));  // and the repository (its latest version)
  }
  ModelCard normal = load_model_card(normal_model());
  CHECK(normal.name == "lstm_normal_v2.2");
  CHECK(normal.model_type == "normal_day");
  CHECK(normal.input_width == 20);
  CHECK(normal.features.size() == 20);
  CHECK(normal.features.front() == "f00_ret_1d");
  CHECK(normal.scaler_mean.size() == 20);
  CHECK(normal.scaler_mean[11] == doctest::Approx(51.4466274));
  CHECK(normal.scaler_scale[19] == doctest::Approx(0.00915237068));
  CHECK(normal.dropout == doctest::Approx(0.1));
  CHECK(normal.file.ends_with("models/normal_day/2.2/lstm_normal_v2.2.pt"));
  CHECK(normal.mc_trunk == "trunk");  // both shipped models declare the Monte-Carlo split
  CHECK(normal.mc_head == "sample_head");
  CHECK(normal.mc_head_mc == "sample_head_mc");  // and the all-samples head with the Rao-Blackwellised mean
  CHECK(normal.mc_mean == "rao_blackwell");
  ModelCard earnings = load_model_card(earnings_model());
  CHECK(earnings.name == "lstm_earnings_v2.2");
  CHECK(earnings.model_type == "earnings_day");
  CHECK(earnings.input_width == 37);
  CHECK(earnings.has_mc_split());
  CHECK(earnings.has_mc_head());
  CHECK(earnings.mc_mean == "rao_blackwell");
  CHECK_FALSE(load_model_card(python_tiny_model()).has_mc_split());  // no split declared: sample()
}

TEST_CASE("model card: the subset reader takes block maps, comments and quoted strings") {
  TempDir dir;
  write_file(dir.path() / "m.pt", "not really a model");
  const std::string text =
      "# a comment\n"
      "name: \"quoted_v1\"   # trailing comment\n"
      "model_type: earnings_day\n"
      "file: m.pt\n"
      "input_width: 2\n"
      "features: [a, 'b']\n"
      "scaler:\n"
      "  mean: [1.5, -2]\n"
      "  scale: [0.5,\n"
      "          4]\n"
      "dropout: 0.25\n"
      "training: {data_seed: 1, optimizer: adam}\n";
  ModelCard c = parse_model_card_lite(text, (dir.path() / "model.yaml").string());
  CHECK(c.name == "quoted_v1");
  CHECK(c.model_type == "earnings_day");
  CHECK(c.features == std::vector<std::string>{"a", "b"});
  CHECK(c.scaler_mean == std::vector<float>{1.5f, -2.0f});
  CHECK(c.scaler_scale == std::vector<float>{0.5f, 4.0f});
  CHECK(c.dropout == 0.25);
  CHECK(c.mc_samples_default == 20);
  CHECK(c.file == (dir.path() / "m.pt").string());
  CHECK_FALSE(c.has_mc_split());
  ModelCard split = parse_model_card_lite(text + "monte_carlo:\n  trunk: body\n  head: draw\n", (dir.path() / "model.yaml").string());
  CHECK(split.mc_trunk == "body");
  CHECK(split.mc_head == "draw");
}

TEST_CASE("model card: clear errors for a missing folder, bad YAML, and inconsistent cards") {
  TempDir dir;
  CHECK_THROWS_WITH_AS(load_model_card((dir.path() / "nope").string()), doctest::Contains("not found"), std::runtime_error);

  write_file(dir.path() / "model.yaml", "name: [unclosed\n");
  CHECK_THROWS_WITH_AS(load_model_card(dir.str()), doctest::Contains("is not valid YAML"), std::runtime_error);

  write_file(dir.path() / "m.pt", "x");
  write_file(dir.path() / "model.yaml", "name: m\nfile: m.pt\ninput_width: 3\nscaler: {mean: [0, 0], scale: [1, 1]}\n");
  CHECK_THROWS_WITH_AS(load_model_card(dir.str()), doctest::Contains("input_width (3)"), std::runtime_error);
  CHECK_THROWS_WITH_AS(load_model_card_lite(dir.str()), doctest::Contains("input_width (3)"), std::runtime_error);

  write_file(dir.path() / "model.yaml", "name: m\nfile: m.pt\ninput_width: 2\nscaler: {mean: [0, 0], scale: [1, 0]}\n");
  CHECK_THROWS_WITH_AS(load_model_card(dir.str()), doctest::Contains("scale 0"), std::runtime_error);

  write_file(dir.path() / "model.yaml", "name: m\nfile: missing.pt\ninput_width: 2\n");
  CHECK_THROWS_WITH_AS(load_model_card(dir.str()), doctest::Contains("missing.pt not found"), std::runtime_error);

  write_file(dir.path() / "model.yaml", "file: m.pt\ninput_width: 2\n");
  CHECK_THROWS_WITH_AS(load_model_card(dir.str()), doctest::Contains("`name`"), std::runtime_error);

  write_file(dir.path() / "model.yaml", "name: m\nfile: m.pt\ninput_width: two\n");
  CHECK_THROWS_WITH_AS(load_model_card(dir.str()), doctest::Contains("input_width"), std::runtime_error);
  CHECK_THROWS_WITH_AS(load_model_card_lite(dir.str()), doctest::Contains("input_width"), std::runtime_error);

  // The Monte-Carlo split names both methods, or neither.
  write_file(dir.path() / "model.yaml", "name: m\nfile: m.pt\ninput_width: 2\nmonte_carlo: {trunk: trunk}\n");
  CHECK_THROWS_WITH_AS(load_model_card(dir.str()), doctest::Contains("both `trunk` and `head`"), std::runtime_error);
  CHECK_THROWS_WITH_AS(load_model_card_lite(dir.str()), doctest::Contains("both `trunk` and `head`"), std::runtime_error);
  write_file(dir.path() / "model.yaml", "name: m\nfile: m.pt\ninput_width: 2\nmonte_carlo: [trunk, head]\n");
  CHECK_THROWS_WITH_AS(load_model_card(dir.str()), doctest::Contains("`monte_carlo` must be a map"), std::runtime_error);
  CHECK_THROWS_WITH_AS(load_model_card_lite(dir.str()), doctest::Contains("`monte_carlo` must be a map"), std::runtime_error);

  // head_mc needs the split; mean is samples or rao_blackwell, and rao_blackwell needs head_mc.
  for (const auto& [mc, error] : std::vector<std::pair<std::string, std::string>>{
           {"{head_mc: all}", "`monte_carlo.head_mc` needs `trunk` and `head`"},
           {"{trunk: t, head: h, head_mc: all, mean: median}", "must be samples or rao_blackwell"},
           {"{trunk: t, head: h, mean: rao_blackwell}", "needs `head_mc`"}}) {
    CAPTURE(mc);
    write_file(dir.path() / "model.yaml", "name: m\nfile: m.pt\ninput_width: 2\nmonte_carlo: " + mc + "\n");
    CHECK_THROWS_WITH_AS(load_model_card(dir.str()), doctest::Contains(error.c_str()), std::runtime_error);
    CHECK_THROWS_WITH_AS(load_model_card_lite(dir.str()), doctest::Contains(error.c_str()), std::runtime_error);
  }

  // No scaler: identity.
  write_file(dir.path() / "model.yaml", "name: m\nfile: m.pt\ninput_width: 2\n");
  ModelCard c = load_model_card(dir.str());
  CHECK(c.scaler_mean == std::vector<float>{0, 0});
  CHECK(c.scaler_scale == std::vector<float>{1, 1});
}
