#include "compiler/Calibration/Calibration.h"

namespace lathe::compiler {

// Written for Lathe (not taken from any dataset, and distinct from the test
// corpus): simple children's stories like those the bundled model knows.
std::string_view defaultCalibrationText() {
  return R"(Once upon a time, there was a little bird named Pip. Pip lived in a tall tree near a river. Every day he sang songs to the fish in the water. One morning the river was quiet, and Pip was worried. He flew down and found a fish stuck between two rocks. Pip pushed the small rock with his beak until the fish was free. The fish jumped and splashed, and Pip sang his happiest song.
Ben had a red ball that he loved very much. He took it to the park with his dad. They kicked the ball back and forth on the green grass. Then the ball rolled under a bench, and a puppy ran to get it. The puppy brought the ball back to Ben and wagged its tail. Ben laughed and said, "You can play with us!" They played until the sun went down.
Anna wanted to bake a cake for her grandma. She put flour, eggs and sugar in a big bowl and mixed them with a spoon. Her mom helped her put the cake in the oven. Soon the kitchen smelled sweet and warm. When grandma came, Anna gave her the cake. Grandma smiled and hugged her. "This is the best cake in the world," she said.
There was a shy turtle who did not like to leave his shell. One day a friendly rabbit knocked on the shell and asked him to come and see the flowers. The turtle peeked out slowly. The flowers were yellow, pink and blue. The turtle felt brave and happy. From then on, the turtle and the rabbit walked to the garden every morning.
Tim found a shiny key on the way to school. He wondered what it could open. He tried the door of his house, the gate of the garden and the box under his bed, but the key did not fit. At last he tried his old toy chest. It opened, and inside were the blocks he had lost long ago. Tim was so excited that he built a big tower.
Lucy and her brother went to the beach. They built a sandcastle with tall towers and a deep moat. A wave came and filled the moat with water. "Look, now our castle has a lake!" said Lucy. They found shells and put them on the walls. When it was time to go home, they waved goodbye to their castle.
)";
}

} // namespace lathe::compiler
