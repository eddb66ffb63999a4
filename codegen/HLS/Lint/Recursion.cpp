// The recursion rule: the file's call graph and its cycles.
#include "codegen/HLS/Lint/FileLinter.h"

#include <algorithm>

namespace lathe::hls::lint {

void FileLinter::collectCalls(CXCursor function) {
  std::string caller = take(clang_getCursorUSR(function));
  functionNames_[caller] = spelling(function);
  definitions_.push_back(function);
  walk(function, [&](CXCursor c) {
    if (clang_getCursorKind(c) == CXCursor_CallExpr) {
      CXCursor callee = clang_getCursorReferenced(c);
      if (isFunctionKind(clang_getCursorKind(callee))) {
        std::string usr = take(clang_getCursorUSR(callee));
        if (!usr.empty())
          calls_.push_back({caller, usr, spelling(callee), position(clang_getCursorLocation(c))});
      }
    }
    return true;
  });
}

void FileLinter::checkRecursion() {
  std::map<std::string, std::set<std::string>> graph;
  for (const CallEdge &edge : calls_)
    graph[edge.caller].insert(edge.callee);
  // The shortest chain of calls from `from` back to `to`, or empty.
  auto chain = [&](const std::string &from, const std::string &to) {
    std::map<std::string, std::string> previous{{from, ""}};
    std::vector<std::string> queue{from};
    for (size_t i = 0; i < queue.size(); ++i) {
      std::string node = queue[i];
      if (node == to) {
        std::vector<std::string> path;
        for (std::string at = to; !at.empty(); at = previous[at])
          path.push_back(at);
        std::reverse(path.begin(), path.end());
        return path;
      }
      for (const std::string &next : graph[node])
        if (previous.emplace(next, node).second)
          queue.push_back(next);
    }
    return std::vector<std::string>{};
  };
  for (const CallEdge &edge : calls_) {
    if (edge.caller == edge.callee) {
      report(edge.at, "recursion", "'" + edge.calleeName + "' calls itself");
      continue;
    }
    std::vector<std::string> back = chain(edge.callee, edge.caller);
    if (back.empty())
      continue;
    std::string cycle = functionNames_[edge.caller];
    for (const std::string &usr : back)
      cycle += " -> " + (functionNames_.count(usr) ? functionNames_[usr] : usr);
    report(edge.at, "recursion",
           "call to '" + edge.calleeName + "' is recursive (" + cycle + ")");
  }
}

} // namespace lathe::hls::lint
