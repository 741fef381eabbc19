"""A TorchScript reward (the trainer's --rewards=torchscript=MODEL.pt) served over the Open
Inference Protocol: the same module, the same clips, the same scores, in another process.

    python3 scripts/reward_server/server.py --scorer=scripts/reward_server/examples/torchscript_reward.py:TorchScriptReward \
        --scorer_arg=reward.pt --model_name=reward --port=8001

It asks for FP32 clips (in [-1, 1], what the trainer's decoder gives) so that nothing is
rounded on the way: forward(videos [B, 3, F, H, W]) or forward(videos, prompts) -> [B].
Debian's python3-torch runs the same libtorch as the trainer; at one thread (set here) the
scores are the in-process ones bit for bit (tests/oip/).
"""
import numpy as np
import torch


class TorchScriptReward:
    video_datatype = "FP32"
    video_shape = [-1, -1, -1]
    outputs = {"score": 0}

    def __init__(self, arg):
        if not arg:
            raise SystemExit("TorchScriptReward: give the module's path as --scorer_arg")
        torch.set_num_threads(1)
        self.module = torch.jit.load(arg, map_location="cpu")
        self.module.eval()
        params = [a for a in self.module.forward.schema.arguments if a.name != "self"]
        self.takes_prompts = len(params) == 2

    def score(self, clips, prompts):
        # [B, F, H, W, 3] -> the trainer's [B, 3, F, H, W], contiguous like the trainer's clips.
        videos = torch.from_numpy(np.array(clips, dtype=np.float32)).permute(0, 4, 1, 2, 3).contiguous()
        with torch.no_grad():
            out = self.module(videos, list(prompts)) if self.takes_prompts else self.module(videos)
        return out.reshape(-1).to(torch.float32).numpy()
