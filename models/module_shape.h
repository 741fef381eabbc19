// One module of a model as the planner, ZeRO and LoRA see it (models/model_family.h), in a
// header of its own so that config-only code (a family's inventory) needs nothing else.
#ifndef DANCEGRPO_MODELS_MODULE_SHAPE_H_
#define DANCEGRPO_MODELS_MODULE_SHAPE_H_

#include <cstdint>
#include <string>

namespace dancegrpo::models {

// One module's parameters: their element count and the block they belong to (-1: outside
// the blocks: embeddings, head).
struct ModuleShape {
  std::string name;  // as the model names it: "blocks.3.ffn", "head"
  int64_t count = 0;
  int block = -1;
};

}  // namespace dancegrpo::models

#endif  // DANCEGRPO_MODELS_MODULE_SHAPE_H_
