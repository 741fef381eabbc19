"""Scorers for the client's tests (rewards/oip/remote_reward_test.cc), served by
scripts/reward_server/server.py: closed-form scores, and the server's faults."""
import numpy as np


class MeanScorer:
    """UINT8 clips: the mean of each clip / 255 plus the prompt's length; records what it saw."""
    video_datatype = "UINT8"
    outputs = {"score": 0}

    def __init__(self, arg):
        pass

    def score(self, clips, prompts):
        assert clips.dtype == np.uint8 and clips.ndim == 5 and clips.shape[-1] == 3
        means = clips.reshape(clips.shape[0], -1).astype(np.float64).mean(axis=1) / 255.0
        return means + np.array([len(p) for p in prompts], dtype=np.float64)


class VideoAlignLike:
    """Three named scores and one [B, 2] output: VQ = mean red, MQ = frames sent, TA = prompt
    length; pair = [B, 2] (height, width)."""
    video_datatype = "UINT8"
    outputs = {"VQ": 0, "MQ": 0, "TA": 0, "pair": 2}

    def __init__(self, arg):
        pass

    def score(self, clips, prompts):
        b, f, h, w, _ = clips.shape
        return {
            "VQ": clips[..., 0].reshape(b, -1).astype(np.float64).mean(axis=1) / 255.0,
            "MQ": np.full(b, float(f)),
            "TA": np.array([len(p) for p in prompts], dtype=np.float64),
            "pair": np.tile(np.array([[float(h), float(w)]]), (b, 1)),
        }


class FixedShape(MeanScorer):
    """A model that takes 2 frames of 4x4 only."""
    video_shape = [2, 4, 4]


class NaNScorer(MeanScorer):
    def score(self, clips, prompts):
        out = super().score(clips, prompts)
        out[-1] = float("nan")
        return out


class WrongCount(MeanScorer):
    def score(self, clips, prompts):
        return super().score(clips, prompts)[:-1]


class Raises(MeanScorer):
    def score(self, clips, prompts):
        raise RuntimeError("the reward model ran out of memory")


class IntVideo(MeanScorer):
    """Wrong metadata: a video input the trainer cannot send."""
    video_datatype = "INT32"


class NoText:
    """A model without a prompt input (an aesthetic score): the clips' mean / 255."""
    video_datatype = "UINT8"
    prompt_input = None
    outputs = {"aesthetic": 0}

    def __init__(self, arg):
        pass

    def score(self, clips, prompts):
        assert prompts is None
        return clips.reshape(clips.shape[0], -1).astype(np.float64).mean(axis=1) / 255.0
