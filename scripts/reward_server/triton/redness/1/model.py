"""Triton Python-backend model: the redness reward of scripts/reward_server/examples/redness.py
(how much redder than blue each clip is), behind Triton. Replace `score` with a real model
(HPS-v2.1, VideoAlign: docs/served_rewards.md); keep the tensor names of config.pbtxt."""
import numpy as np
import triton_python_backend_utils as pb_utils


def score(clips, prompts):
    """clips: uint8 [B, F, H, W, 3]; prompts: list of str -> float32 [B]."""
    x = clips.astype(np.float32) / 127.5 - 1.0
    b = x.shape[0]
    return (x[..., 0].reshape(b, -1).mean(axis=1) - x[..., 2].reshape(b, -1).mean(axis=1)).astype(np.float32)


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            clips = pb_utils.get_input_tensor_by_name(request, "video").as_numpy()
            prompts = [p.decode("utf-8") for p in pb_utils.get_input_tensor_by_name(request, "prompt").as_numpy()]
            out = pb_utils.Tensor("score", score(clips, prompts))
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
        return responses
