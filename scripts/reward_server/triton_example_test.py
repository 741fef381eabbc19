"""The Triton example (scripts/reward_server/triton/redness) against what the trainer's client
sends and accepts (rewards/oip/remote_reward.h), without Triton: config.pbtxt's tensors, mapped
to the protocol's datatypes as Triton's metadata reports them, are the ones the client sends
(one UINT8 video [-1, -1, -1, -1, 3], one BYTES prompt [-1], FP32 score [-1]); and model.py,
run with a stand-in for triton_python_backend_utils, scores as examples/redness.py does."""
import importlib.util
import os
import re
import sys
import types

import numpy as np

ROOT = "scripts/reward_server"
TRITON_TO_V2 = {"TYPE_UINT8": "UINT8", "TYPE_STRING": "BYTES", "TYPE_FP32": "FP32", "TYPE_FP64": "FP64"}


def parse_config(path):
    text = open(path).read()
    assert re.search(r'^backend:\s*"python"', text, re.M), "backend is not python"
    assert re.search(r"^max_batch_size:\s*0", text, re.M), "max_batch_size must be 0 (the batch is in the shapes)"

    def tensors(section):
        block = re.search(section + r"\s*\[(.*?)\n\]", text, re.S).group(1)
        out = []
        for m in re.finditer(r'name:\s*"(\w+)"\s*data_type:\s*(\w+)\s*dims:\s*\[([^\]]*)\]', block):
            out.append((m.group(1), TRITON_TO_V2[m.group(2)], [int(d) for d in m.group(3).split(",")]))
        return out

    return tensors(r"\ninput"), tensors(r"\noutput")


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeTensor:
    def __init__(self, name, array):
        self._name, self._array = name, array

    def name(self):
        return self._name

    def as_numpy(self):
        return self._array


def main():
    inputs, outputs = parse_config(f"{ROOT}/triton/redness/config.pbtxt")
    # The client's acceptance rules (remote_reward.cc, ConnectRemoteRewards), as Triton reports them.
    video = [t for t in inputs if t[1] in ("UINT8", "FP32")]
    text = [t for t in inputs if t[1] == "BYTES"]
    assert len(video) == 1 and len(text) == 1 and len(inputs) == 2, inputs
    assert len(video[0][2]) == 5 and video[0][2][4] in (3, -1), video
    assert len(text[0][2]) == 1, text
    assert all(t[1] in ("FP32", "FP64") and len(t[2]) in (1, 2) for t in outputs), outputs
    redness = load(f"{ROOT}/examples/redness.py", "redness").Redness(None)
    assert (video[0][0], video[0][1]) == (redness.video_input, redness.video_datatype)
    assert text[0][0] == redness.prompt_input and [o[0] for o in outputs] == list(redness.outputs), outputs
    print(f"ok   config.pbtxt: inputs {inputs}, outputs {outputs}: what the client sends and reads")

    # model.py under a stand-in for Triton's utilities module.
    pb = types.ModuleType("triton_python_backend_utils")
    pb.Tensor = FakeTensor
    pb.get_input_tensor_by_name = lambda request, name: request[name]
    pb.InferenceResponse = lambda output_tensors: {t.name(): t.as_numpy() for t in output_tensors}
    sys.modules["triton_python_backend_utils"] = pb
    model = load(f"{ROOT}/triton/redness/1/model.py", "triton_redness").TritonPythonModel()
    rng = np.random.default_rng(0)
    clips = rng.integers(0, 256, size=(3, 4, 6, 5, 3), dtype=np.uint8)
    prompts = ["a red square", "a blue circle", "x"]
    request = {"video": FakeTensor("video", clips),
               "prompt": FakeTensor("prompt", np.array([p.encode() for p in prompts], dtype=np.object_))}
    [response] = model.execute([request])
    want = redness.score(clips, prompts)
    assert response["score"].dtype == np.float32 and response["score"].shape == (3,), response
    assert np.array_equal(response["score"], want), (response["score"], want)
    print(f"ok   model.py scores {response['score']} = examples/redness.py's")
    print("triton example: passed")


if __name__ == "__main__":
    main()
