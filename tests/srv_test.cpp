#include "msrp/srv.hpp"

#include <gtest/gtest.h>

#include <map>
#include <random>

namespace {

using msrp::relay_target;
using msrp::srv_record;

msrp::uri parse(std::string_view text) {
  auto parsed = msrp::uri::parse(text);
  EXPECT_TRUE(parsed) << text;
  return *parsed;
}

/// A random source that gives `values` in turn, then zeros.
msrp::random_source scripted(std::vector<std::uint64_t> values) {
  return [values = std::move(values), next = std::size_t{0}]() mutable {
    return next < values.size() ? values[next++] : 0;
  };
}

std::vector<std::string> targets_of(const std::vector<srv_record>& records) {
  std::vector<std::string> names;
  for (const auto& r : records)
    names.push_back(r.target);
  return names;
}

TEST(Srv, NameForADomainWithoutPort) {
  EXPECT_EQ(msrp::srv_name(parse("msrps://example.com;tcp")), "_msrps._tcp.example.com");
  EXPECT_EQ(msrp::srv_name(parse("msrps://example.com.;tcp")), "_msrps._tcp.example.com");
}

TEST(Srv, NoLookupForAPortAnAddressOrPlainMsrp) {
  EXPECT_FALSE(msrp::srv_name(parse("msrps://example.com:2855;tcp")));
  EXPECT_FALSE(msrp::srv_name(parse("msrps://192.0.2.1:2855;tcp")));
  EXPECT_FALSE(msrp::srv_name(parse("msrps://[2001:db8::1]:2855;tcp")));
  // RFC 4976 §8: no _msrp service is defined.
  EXPECT_FALSE(msrp::srv_name(parse("msrp://example.com;tcp")));
}

TEST(Srv, OrdersByPriorityFirst) {
  const std::vector<srv_record> found{
      {20, 5, 1, "c.example.com"}, {10, 0, 1, "a.example.com"}, {30, 9, 1, "d.example.com"}};
  const auto ordered = msrp::order_srv(found, scripted({}));
  EXPECT_EQ(targets_of(ordered),
            (std::vector<std::string>{"a.example.com", "c.example.com", "d.example.com"}));
}

// RFC 2782: running sums 1 and 3 for weights 1 and 2 (RFC 4976 §8's example); a draw of 0 or 1
// picks server1, 2 or 3 picks server2.
TEST(Srv, DrawsByRunningSumOfWeights) {
  const std::vector<srv_record> found{{0, 1, 9000, "server1.example.com"},
                                      {0, 2, 9000, "server2.example.com"}};
  EXPECT_EQ(targets_of(msrp::order_srv(found, scripted({1}))),
            (std::vector<std::string>{"server1.example.com", "server2.example.com"}));
  EXPECT_EQ(targets_of(msrp::order_srv(found, scripted({2}))),
            (std::vector<std::string>{"server2.example.com", "server1.example.com"}));
  // The draw is taken modulo sum + 1 = 4: 7 is 3.
  EXPECT_EQ(targets_of(msrp::order_srv(found, scripted({7}))),
            (std::vector<std::string>{"server2.example.com", "server1.example.com"}));
}

TEST(Srv, WeightZeroFirstInTheListButRarelyChosen) {
  const std::vector<srv_record> found{{0, 5, 1, "heavy"}, {0, 0, 1, "zero"}};
  // Running sums: zero 0, heavy 5. A draw of 0 picks "zero" (placed first), 1..5 "heavy".
  EXPECT_EQ(targets_of(msrp::order_srv(found, scripted({0}))),
            (std::vector<std::string>{"zero", "heavy"}));
  EXPECT_EQ(targets_of(msrp::order_srv(found, scripted({3}))),
            (std::vector<std::string>{"heavy", "zero"}));
}

TEST(Srv, EachDrawIsAmongTheRecordsLeft) {
  const std::vector<srv_record> found{{0, 1, 1, "a"}, {0, 1, 1, "b"}, {0, 1, 1, "c"}};
  // First draw 3 of 0..3: "c"; then among a, b (sum 2): 2 picks "b"; "a" last.
  EXPECT_EQ(targets_of(msrp::order_srv(found, scripted({3, 2}))),
            (std::vector<std::string>{"c", "b", "a"}));
}

TEST(Srv, ChoosesInProportionToWeight) {
  const std::vector<srv_record> found{{0, 1, 1, "one"}, {0, 3, 1, "three"}};
  std::mt19937_64 generator(42);
  std::map<std::string, int> first;
  for (int i = 0; i < 4000; ++i) {
    ++first[msrp::order_srv(found, [&] { return generator(); }).front().target];
  }
  // Draws 0..4: "one" for 0 and 1 (2/5), "three" for 2..4 (3/5).
  EXPECT_NEAR(first["one"], 1600, 150);
  EXPECT_NEAR(first["three"], 2400, 150);
}

TEST(Srv, TargetsFromRecords) {
  const auto relay = parse("msrps://example.com;tcp");
  const std::vector<srv_record> ordered{{0, 0, 9000, "server1.example.com"},
                                        {1, 0, 9001, "server2.example.com"}};
  EXPECT_EQ(
      msrp::relay_targets(relay, ordered),
      (std::vector<relay_target>{{"server1.example.com", 9000}, {"server2.example.com", 9001}}));
}

// RFC 4976 §8: no SRV records, so the domain's own address records on port 2855.
TEST(Srv, WithoutRecordsTheDomainOnPort2855) {
  EXPECT_EQ(msrp::relay_targets(parse("msrps://example.com;tcp"), {}),
            (std::vector<relay_target>{{"example.com", 2855}}));
}

// RFC 2782: a lone "." target: the service is decidedly not available at this domain.
TEST(Srv, RootTargetMeansNoService) {
  const auto relay = parse("msrps://example.com;tcp");
  EXPECT_TRUE(msrp::relay_targets(relay, {{0, 0, 0, "."}}).empty());
  EXPECT_TRUE(msrp::relay_targets(relay, {{0, 0, 0, ""}}).empty());
}

}  // namespace
