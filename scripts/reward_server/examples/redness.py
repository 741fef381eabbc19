"""The redness reward (how much redder than blue each clip is, in [-2, 2]) as a scorer for
scripts/reward_server/server.py: the same computation as the Triton example
(scripts/reward_server/triton/redness/1/model.py), on the same tensors.

    python3 scripts/reward_server/server.py --scorer=scripts/reward_server/examples/redness.py:Redness \
        --model_name=redness --port=8001
"""
import numpy as np


class Redness:
    video_datatype = "UINT8"
    video_input = "video"
    prompt_input = "prompt"
    outputs = {"score": 0}

    def __init__(self, arg):
        pass

    def score(self, clips, prompts):
        x = clips.astype(np.float32) / 127.5 - 1.0
        b = x.shape[0]
        return (x[..., 0].reshape(b, -1).mean(axis=1) - x[..., 2].reshape(b, -1).mean(axis=1)).astype(np.float32)
