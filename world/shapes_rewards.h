// The shapes world's rule rewards, in the GenEval spirit, for shapes-world prompts
// (world/shapes_world.h). Linking this library registers them (rewards/registry.h), so a
// program that links it takes them in --rewards. The foreground of a frame is every pixel far
// (L2 > 1 in [-1, 1] RGB) from the prompt's background colour.
//   colour:  the fraction of foreground pixels whose nearest palette colour is the one asked;
//   count:   the fraction of frames with exactly the asked number of objects (4-connected
//            foreground components of at least 2 pixels): GenEval's counting check per frame;
//   motion:  the foreground centroid's displacement from the first to the last frame along
//            the asked direction, d, over the expected travel L: clamp(d / L, 0, 1)
//            (1 = moved as asked; still, sideways or the opposite way = 0: no credit for chance);
//   alignment: the mean of colour, count and motion.
// A prompt that is not a shapes-world prompt is refused, naming it.
#ifndef DANCEGRPO_WORLD_SHAPES_REWARDS_H_
#define DANCEGRPO_WORLD_SHAPES_REWARDS_H_

#include <string>
#include <vector>

namespace dancegrpo::world {

// The names this library registers.
std::vector<std::string> ShapesRuleRewards();

}  // namespace dancegrpo::world

#endif  // DANCEGRPO_WORLD_SHAPES_REWARDS_H_
