// One line for an exception out of libtorch or a TorchScript module (a user's reward model or
// decoder), for a Status message. c10::Error loses its C++ backtrace; an error raised inside
// TorchScript (torch::jit::JITException for `raise`, a c10::Error for a failing op) arrives as
// the interpreter's traceback, whose last line holds what was raised, e.g.
// "builtins.RuntimeError: reward server down": that line is kept.
#ifndef DANCEGRPO_HPC_TORCH_ERROR_H_
#define DANCEGRPO_HPC_TORCH_ERROR_H_

#include <exception>
#include <string>

namespace dancegrpo::hpc {

std::string ExceptionMessage(const std::exception& e);

}  // namespace dancegrpo::hpc

#endif  // DANCEGRPO_HPC_TORCH_ERROR_H_
