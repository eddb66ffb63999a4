#include "runtime/speculative/DraftTree.h"
#include "runtime/speculative/TreeShape.h"

#include <gtest/gtest.h>

namespace lathe::speculative {
namespace {

TEST(TreeShape, ParsesBranchingPerDepth) {
  auto shape = parseTreeShape("4x2x2");
  ASSERT_TRUE(shape) << shape.error().message();
  EXPECT_EQ(shape->branching, (std::vector<int32_t>{4, 2, 2}));
  EXPECT_EQ(shape->depth(), 3);
  EXPECT_EQ(shape->widest(), 4);
  EXPECT_EQ(shape->nodeCount(), 1 + 4 + 8 + 16);
  EXPECT_EQ(shape->str(), "4x2x2");

  auto chain = parseTreeShape("1");
  ASSERT_TRUE(chain);
  EXPECT_EQ(chain->nodeCount(), 2);
}

TEST(TreeShape, DefaultIsAValidShape) {
  auto shape = parseTreeShape("default");
  ASSERT_TRUE(shape) << shape.error().message();
  auto same = parseTreeShape(kDefaultTreeShape);
  ASSERT_TRUE(same);
  EXPECT_EQ(shape->branching, same->branching);
}

TEST(TreeShape, RejectsMalformedShapesWithOneLine) {
  struct Case {
    const char *text, *says;
  };
  for (const Case &c : {Case{"", "empty"}, Case{"4x0", "depth 2 has branching 0"},
                        Case{"4x", "depth 2 is empty"}, Case{"x4", "depth 1 is empty"},
                        Case{"4xx2", "depth 2 is empty"}, Case{"4x-1", "depth 2 has branching -1"},
                        Case{"4,2", "'4,2', not a number"}, Case{"4X2", "'4X2', not a number"},
                        Case{" 4", "not a number"}, Case{"4x2 ", "'2 ', not a number"},
                        Case{"99999999999999999999", "too large"},
                        Case{"2000", "more than 1024"}, Case{"32x32x32", "more than 1024 nodes"},
                        Case{"1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1",
                             "deeper than 32"},
                        Case{"defaults", "not a number"}}) {
    auto shape = parseTreeShape(c.text);
    ASSERT_FALSE(shape) << c.text;
    const std::string &m = shape.error().message();
    EXPECT_NE(m.find(c.says), std::string::npos) << c.text << ": " << m;
    EXPECT_NE(m.find(std::string("tree shape '") + c.text + "'"), std::string::npos) << m;
    EXPECT_NE(m.find("e.g. 4x2x2"), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
}

// Lists (an artifact's schedule, a #plan.spec_tree) follow the parser's
// rules and messages.
TEST(TreeShape, ListsFollowTheParsersRules) {
  auto shape = makeTreeShape(std::vector<int32_t>{4, 2, 2});
  ASSERT_TRUE(shape) << shape.error().message();
  EXPECT_EQ(shape->str(), "4x2x2");
  EXPECT_EQ(shape->nodeCount(), 29);
  for (const char *text : {"4x0", "32x32x32", "2000", "1x-3"}) {
    std::vector<int32_t> list;
    for (std::string_view rest = text; !rest.empty();) {
      const size_t x = std::min(rest.find('x'), rest.size());
      list.push_back(std::stoi(std::string(rest.substr(0, x))));
      rest.remove_prefix(std::min(x + 1, rest.size()));
    }
    auto parsed = parseTreeShape(text);
    auto made = makeTreeShape(list);
    ASSERT_FALSE(parsed) << text;
    ASSERT_FALSE(made) << text;
    EXPECT_EQ(made.error().message(), parsed.error().message());
  }
  std::vector<int32_t> deep(33, 1);
  auto tooDeep = makeTreeShape(deep);
  ASSERT_FALSE(tooDeep);
  EXPECT_NE(tooDeep.error().message().find("deeper than 32"), std::string::npos);
  auto empty = makeTreeShape({});
  ASSERT_FALSE(empty);
  EXPECT_NE(empty.error().message().find("tree shape '': empty"), std::string::npos);
}

TEST(TreeShape, NodeListIsBreadthFirstWithParentsFirst) {
  auto shape = parseTreeShape("2x3");
  ASSERT_TRUE(shape);
  const std::vector<TreeShape::Node> nodes = shape->nodes();
  ASSERT_EQ(nodes.size(), 1u + 2 + 6);
  EXPECT_EQ(nodes[0].parent, -1);
  EXPECT_EQ(nodes[0].depth, 0);
  for (size_t i : {1u, 2u}) {
    EXPECT_EQ(nodes[i].parent, 0);
    EXPECT_EQ(nodes[i].depth, 1);
  }
  for (size_t i = 3; i < 9; ++i) {
    EXPECT_EQ(nodes[i].parent, i < 6 ? 1 : 2);
    EXPECT_EQ(nodes[i].depth, 2);
  }
}

TEST(DraftTree, KeepsToTheShapeAndSharesPrefixes) {
  auto shape = parseTreeShape("2x1");
  ASSERT_TRUE(shape);
  DraftTree tree(*shape, 7, 100);
  EXPECT_EQ(tree.maxDepth(), 2); // cut to the shape
  const int32_t a = tree.add(0, 10);
  EXPECT_EQ(tree.add(0, 10), a); // the same token is the same node
  const int32_t b = tree.add(0, 11);
  EXPECT_EQ(tree.add(0, 12), -1); // the root takes 2
  EXPECT_GE(tree.add(a, 20), 0);
  EXPECT_EQ(tree.add(a, 21), -1); // depth 1 takes 1
  EXPECT_EQ(tree.addChain(b, std::vector<int32_t>{30, 31, 32}), 1); // depth 2 is the last
  EXPECT_EQ(tree.size(), 5u);
  for (size_t n = 1; n < tree.size(); ++n) {
    EXPECT_LT(tree.parent(int32_t(n)), int32_t(n));
    EXPECT_EQ(tree.depth(int32_t(n)), tree.depth(tree.parent(int32_t(n))) + 1);
  }
  EXPECT_EQ(tree.child(0, 11), b);
  EXPECT_EQ(tree.child(0, 99), -1);
}

TEST(DraftTree, TheRoomLeftInTheContextBoundsTheNodes) {
  // A step stores every node at the sequence's tail: n slots left, n nodes.
  auto shape = parseTreeShape("4x2x2");
  ASSERT_TRUE(shape);
  DraftTree none(*shape, 1, 1);
  EXPECT_EQ(none.maxDepth(), 0);
  EXPECT_EQ(none.add(0, 5), -1);
  EXPECT_EQ(none.size(), 1u);
  DraftTree three(*shape, 1, 3);
  EXPECT_EQ(three.maxDepth(), 2);
  const int32_t a = three.add(0, 5);
  ASSERT_GE(a, 0);
  EXPECT_GE(three.add(a, 6), 0);
  EXPECT_EQ(three.add(0, 7), -1);
  EXPECT_EQ(three.size(), 3u);
}

// The limits themselves are shapes: 32 levels, and 1024 nodes in all. A
// branching of 1024 is refused for the nodes it makes (1025 with the root).
TEST(TreeShape, TheLimitsThemselvesAreAccepted) {
  auto deepest = makeTreeShape(std::vector<int32_t>(32, 1));
  ASSERT_TRUE(deepest) << deepest.error().message();
  EXPECT_EQ(deepest->depth(), 32);
  auto largest = parseTreeShape("1023");
  ASSERT_TRUE(largest) << largest.error().message();
  EXPECT_EQ(largest->nodeCount(), 1024);
  auto over = parseTreeShape("1024");
  ASSERT_FALSE(over);
  EXPECT_NE(over.error().message().find("more than 1024 nodes"), std::string::npos)
      << over.error().message();
}

// A list one level too deep is named whole, as the parser names its text;
// only a longer one is cut short.
TEST(TreeShape, ATooDeepListIsNamedAsTheParserNamesIt) {
  std::string text = "1";
  for (int d = 1; d < 33; ++d)
    text += "x1";
  auto parsed = parseTreeShape(text);
  auto made = makeTreeShape(std::vector<int32_t>(33, 1));
  ASSERT_FALSE(parsed);
  ASSERT_FALSE(made);
  EXPECT_EQ(made.error().message(), parsed.error().message());
}

} // namespace
} // namespace lathe::speculative
