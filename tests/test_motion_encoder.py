import numpy as np
import torch

from macm_core.data.synth_clip import make_clip
from macm_core.motion.encoder import (MotionEncoder, MotionEncoderConfig, axis_angle_to_6d,
                                      motion_features, rotation_from_6d)
from smplx.lbs import batch_rodrigues


def test_6d_round_trip_recovers_the_rotation():
    pose = torch.randn(50, 3)
    six = axis_angle_to_6d(pose[:, None])[:, 0]
    torch.testing.assert_close(rotation_from_6d(six), batch_rodrigues(pose), atol=1e-5, rtol=1e-5)


def _clip_batch(seeds, frames=16):
    clips = [make_clip(s, num_frames=frames, fps=8.0, image_size=64) for s in seeds]
    def stack(arrays):
        return torch.from_numpy(np.stack(arrays))

    return motion_features(global_orient=stack([c.motion.global_orient for c in clips]),
                           body_pose=stack([c.motion.body_pose for c in clips]),
                           joints=stack([c.joints for c in clips]), fps=8.0)


def test_features_and_tokens_shapes_and_padding_mask():
    features = _clip_batch([1, 2])
    assert features.shape == (2, 16, 24 * 9)
    assert torch.equal(features[:, 0, 144:], torch.zeros(2, 72))  # no velocity at frame 0
    torch.manual_seed(0)
    encoder = MotionEncoder(MotionEncoderConfig(dim=32, heads=4, num_tokens=4)).eval()
    tokens = encoder(features)
    assert tokens.shape == (2, 4, 32) and torch.isfinite(tokens).all()
    # padded frames do not change the tokens of the real ones when masked out
    padded = torch.cat([features, torch.randn(2, 4, features.shape[-1]) * 100], dim=1)
    mask = torch.cat([torch.ones(2, 16, dtype=torch.bool), torch.zeros(2, 4, dtype=torch.bool)], dim=1)
    assert torch.isfinite(encoder(padded, mask)).all()


def test_different_motions_give_different_tokens_and_gradients_flow():
    features = _clip_batch([3, 4])
    torch.manual_seed(0)
    encoder = MotionEncoder(MotionEncoderConfig(dim=32, heads=4, num_tokens=2))
    tokens = encoder(features)
    assert not torch.allclose(tokens[0], tokens[1])
    tokens.square().mean().backward()
    assert encoder.embed.weight.grad.abs().sum() > 0


def test_too_many_frames_is_a_clear_error():
    encoder = MotionEncoder(MotionEncoderConfig(dim=16, heads=2, max_frames=8))
    try:
        encoder(torch.zeros(1, 9, 216))
    except ValueError as err:
        assert "exceed max_frames=8" in str(err)
    else:
        raise AssertionError("no error for too many frames")
