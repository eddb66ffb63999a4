#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

struct Layer {
  std::vector<float> weights;
  std::unique_ptr<int> owner;
};

using Table = std::map<int, int>;

std::string name(const std::vector<int> &ids, std::function<int(int)> f) {
  Table table;
  std::shared_ptr<Layer> layer;
  int fixed[4] = {0, 1, 2, 3};
  return "";
}
