"""The SMPL-format body: forward kinematics, shape, mesh, loading, joint limits."""

import pickle

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from macm_core.body.limits import JOINT_LIMITS, body_pose_bounds, clamp_body_pose, limit_penalty
from macm_core.body.skeleton import JOINT_INDEX, PARENTS
from macm_core.body.smpl import BodyOutput, ProceduralSMPL, load_body_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model():
    return ProceduralSMPL()


def random_params(batch, seed):
    g = torch.Generator().manual_seed(seed)
    return dict(global_orient=torch.randn(batch, 3, generator=g),
                body_pose=0.5 * torch.randn(batch, 69, generator=g),
                betas=torch.randn(batch, 10, generator=g),
                transl=torch.randn(batch, 3, generator=g))


def reference_pose(model, *, global_orient, body_pose, betas, transl):
    """Plain per-joint loop in float64 with scipy rotations: joints (24, 3),
    global rotations (24, 3, 3) and linear-blend-skinned vertices (V, 3)."""
    shapedirs = model.shapedirs.double().numpy()
    v_shaped = model.v_template.double().numpy() + shapedirs @ betas.double().numpy()
    rest = model.J_regressor.double().numpy() @ v_shaped
    pose = np.concatenate([global_orient.double().numpy(), body_pose.double().numpy()])
    rotations, joints = [], []
    for j in range(24):
        local = Rotation.from_rotvec(pose[3 * j:3 * j + 3]).as_matrix()
        p = PARENTS[j]
        if p < 0:
            rotations.append(local)
            joints.append(rest[j])
        else:
            rotations.append(rotations[p] @ local)
            joints.append(joints[p] + rotations[p] @ (rest[j] - rest[p]))
    rotations, joints = np.stack(rotations), np.stack(joints)
    # vertex = sum_j w_j (R_j (v - rest_j) + joint_j)
    per_joint = np.einsum("jab,vjb->vja", rotations, v_shaped[:, None] - rest[None]) + joints
    vertices = np.einsum("vj,vja->va", model.lbs_weights.double().numpy(), per_joint)
    shift = transl.double().numpy()
    return joints + shift, rotations, vertices + shift


def test_forward_kinematics_matches_a_per_joint_reference_loop(model):
    params = random_params(3, seed=0)
    out = model(**params)
    assert isinstance(out, BodyOutput)
    for b in range(3):
        joints, rotations, vertices = reference_pose(
            model, **{k: v[b] for k, v in params.items()})
        np.testing.assert_allclose(out.joints[b].numpy(), joints, atol=1e-5)
        np.testing.assert_allclose(out.global_rotations[b].numpy(), rotations, atol=1e-5)
        np.testing.assert_allclose(out.vertices[b].numpy(), vertices, atol=1e-5)


def test_t_pose_joints_equal_the_template(model):
    out = model()
    assert out.joints.shape == (1, 24, 3) and out.vertices.shape[0] == 1
    torch.testing.assert_close(out.joints[0], model.rest_joints)
    j = out.joints[0]
    torch.testing.assert_close(j[JOINT_INDEX["pelvis"]], torch.tensor([0.0, -0.225, 0.028]))
    torch.testing.assert_close(j[JOINT_INDEX["left_elbow"]], torch.tensor([0.436, 0.229, -0.040]))
    torch.testing.assert_close(j[JOINT_INDEX["right_elbow"]], torch.tensor([-0.436, 0.229, -0.040]))
    torch.testing.assert_close(out.global_rotations[0], torch.eye(3).expand(24, 3, 3))
    height = out.vertices[0, :, 1].max() - out.vertices[0, :, 1].min()
    assert abs(float(height) - 1.70) < 0.01


def bone_length(joints, child):
    return (joints[..., JOINT_INDEX[child], :]
            - joints[..., PARENTS[JOINT_INDEX[child]], :]).norm(dim=-1)


def one_beta(index, value):
    betas = torch.zeros(1, 10)
    betas[0, index] = value
    return betas


def test_betas_change_the_body_the_documented_way(model):
    base = model()
    limbs = ["left_knee", "left_ankle", "right_knee", "left_elbow", "left_wrist", "left_hand"]
    trunk = ["spine1", "spine2", "spine3", "neck", "left_collar", "left_hip"]

    stature = model(betas=one_beta(0, 1.0))        # uniform 6 % scale about the origin
    torch.testing.assert_close(stature.joints, 1.06 * base.joints)
    torch.testing.assert_close(stature.vertices, 1.06 * base.vertices)

    limb = model(betas=one_beta(1, 1.0))           # arm and leg bones 5 % longer
    for child in limbs:
        torch.testing.assert_close(bone_length(limb.joints, child),
                                   1.05 * bone_length(base.joints, child))
    for child in trunk:
        torch.testing.assert_close(bone_length(limb.joints, child),
                                   bone_length(base.joints, child))

    girth = model(betas=one_beta(2, 1.0))          # radii 10 % larger, skeleton unchanged
    torch.testing.assert_close(girth.joints, base.joints)
    torch.testing.assert_close(girth.bone_radii, 1.10 * base.bone_radii)
    assert (base.bone_radii[0, 1:] > 0).all() and base.bone_radii[0, 0] == 0
    width = lambda out: out.vertices[0, :, 0].max() - out.vertices[0, :, 0].min()
    assert width(girth) > width(base)

    torso = model(betas=one_beta(3, 1.0))          # spine 5 % longer, limbs unchanged
    torch.testing.assert_close(bone_length(torso.joints, "spine2"),
                               1.05 * bone_length(base.joints, "spine2"))
    torch.testing.assert_close(bone_length(torso.joints, "left_knee"),
                               bone_length(base.joints, "left_knee"))

    # shapedirs are linear in the betas, like SMPL's
    a, b = torch.randn(1, 10), torch.randn(1, 10)
    torch.testing.assert_close(model(betas=a + b).vertices - base.vertices,
                               (model(betas=a).vertices - base.vertices)
                               + (model(betas=b).vertices - base.vertices),
                               atol=1e-5, rtol=0)


def test_joint_regressor_recovers_the_joints_exactly(model):
    params = random_params(2, seed=1)
    v_shaped = model.v_template + torch.einsum("bl,vcl->bvc", params["betas"], model.shapedirs)
    shaped = model(betas=params["betas"])
    regressor = model.J_regressor
    assert torch.equal(regressor[:, :24], torch.eye(24)) and regressor[:, 24:].abs().sum() == 0
    regressed = torch.einsum("jv,bvc->bjc", regressor, v_shaped)
    assert torch.equal(regressed, v_shaped[:, :24])   # one-hot: exact
    torch.testing.assert_close(regressed, shaped.joints, atol=1e-6, rtol=0)
    posed = model(**params)                        # joint vertices follow the joints
    torch.testing.assert_close(posed.vertices[:, :24], posed.joints, atol=1e-6, rtol=0)


def test_global_orient_rotates_every_joint_about_the_root(model):
    params = random_params(1, seed=2)
    params["global_orient"] = torch.zeros(1, 3)
    upright = model(**params).joints[0].double()
    rotvec = torch.tensor([0.3, -1.1, 0.7])
    turned = model(**{**params, "global_orient": rotvec[None]}).joints[0].double()
    rotation = torch.from_numpy(Rotation.from_rotvec(rotvec.double().numpy()).as_matrix())
    root = upright[0]
    torch.testing.assert_close(turned, root + (upright - root) @ rotation.T,
                               atol=1e-5, rtol=0)


def test_batched_forward_equals_per_sample_forward(model):
    params = random_params(4, seed=3)
    batched = model(**params)
    for b in range(4):
        single = model(**{k: v[b:b + 1] for k, v in params.items()})
        for field in ("vertices", "joints", "global_rotations", "bone_radii"):
            torch.testing.assert_close(getattr(batched, field)[b:b + 1],
                                       getattr(single, field), atol=1e-6, rtol=0)
    shared = model(body_pose=params["body_pose"], betas=params["betas"][:1])
    torch.testing.assert_close(shared.joints[2], model(body_pose=params["body_pose"][2:3],
                                                       betas=params["betas"][:1]).joints[0])


def test_bad_inputs_raise_clear_errors(model):
    with pytest.raises(ValueError, match=r"body_pose must have shape \(B, 69\)"):
        model(body_pose=torch.zeros(2, 23, 3))
    with pytest.raises(ValueError, match="batch sizes disagree"):
        model(body_pose=torch.zeros(2, 69), global_orient=torch.zeros(3, 3))
    with pytest.raises(TypeError, match="betas must be a float torch.Tensor"):
        model(betas=np.zeros((1, 10)))


def test_mesh_is_closed_and_faces_point_outward(model):
    faces = model.faces
    assert faces.dtype == torch.long and faces.shape[1] == 3
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).tolist()
    directed = set(map(tuple, edges))
    assert len(directed) == len(edges) and all((b, a) in directed for a, b in directed)
    v = model.v_template.double()
    per_capsule = faces.shape[0] // 28
    for k in range(28):
        f = faces[k * per_capsule:(k + 1) * per_capsule]
        volume = (v[f[:, 0]] * torch.linalg.cross(v[f[:, 1]], v[f[:, 2]])).sum() / 6
        assert volume > 0
    torch.testing.assert_close(model.lbs_weights.sum(dim=1), torch.ones(v.shape[0]))


def write_smpl_file(model, path):
    """The procedural body written in SMPL's .pkl layout (padded to 6890 vertices,
    as smplx reads landmark vertices up to index 6260)."""
    v = model.v_template.shape[0]
    pad = 6890 - v
    data = dict(
        v_template=np.concatenate([model.v_template.double().numpy(), np.zeros((pad, 3))]),
        shapedirs=np.concatenate([model.shapedirs.double().numpy(), np.zeros((pad, 3, 10))]),
        posedirs=np.zeros((6890, 3, 207)),
        J_regressor=np.concatenate([model.J_regressor.double().numpy(),
                                    np.zeros((24, pad))], axis=1),
        weights=np.concatenate([model.lbs_weights.double().numpy(),
                                np.eye(24)[np.zeros(pad, dtype=int)]]),
        kintree_table=np.stack([np.array(PARENTS), np.arange(24)]),
        f=model.faces.numpy().astype(np.uint32),
    )
    with open(path, "wb") as handle:
        pickle.dump(data, handle)


def test_load_body_model_reads_an_smpl_file_through_smplx(model, tmp_path):
    assert isinstance(load_body_model(), ProceduralSMPL)
    (tmp_path / "smpl").mkdir()
    write_smpl_file(model, tmp_path / "smpl" / "SMPL_NEUTRAL.pkl")
    body = load_body_model(model_path=str(tmp_path))
    params = random_params(2, seed=4)
    want, got = model(**params), body(**params)
    v = model.v_template.shape[0]
    torch.testing.assert_close(got.vertices[:, :v], want.vertices)
    torch.testing.assert_close(got.joints, want.joints)
    torch.testing.assert_close(got.global_rotations, want.global_rotations)
    assert got.joints.shape == (2, 24, 3) and got.bone_radii.shape == (2, 24)
    limbs = [JOINT_INDEX[n] for n in ("left_knee", "left_ankle", "left_elbow", "left_wrist")]
    torch.testing.assert_close(got.bone_radii[:, limbs], want.bone_radii[:, limbs])
    assert torch.equal(body.faces, model.faces)


def test_load_body_model_names_the_missing_or_broken_path(tmp_path):
    missing = tmp_path / "no_such_folder"
    with pytest.raises(FileNotFoundError, match="no_such_folder") as error:
        load_body_model(model_path=str(missing))
    assert "smpl.is.tue.mpg.de" in str(error.value)
    with pytest.raises(FileNotFoundError, match="SMPL_FEMALE.pkl"):
        load_body_model(model_path=str(tmp_path), gender="female")
    broken = tmp_path / "SMPL_NEUTRAL.pkl"
    broken.write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="SMPL_NEUTRAL.pkl"):
        load_body_model(model_path=str(tmp_path))
    with pytest.raises(ValueError, match="gender"):
        load_body_model(gender="other")


def test_limits_cover_every_body_joint_and_follow_the_documented_signs(model):
    lower, upper = body_pose_bounds()
    assert lower.shape == upper.shape == (69,) and (lower < upper).all()
    assert len(JOINT_LIMITS) == 23
    rest = model().joints[0]

    def moved(joint, component, angle, probe):
        pose = torch.zeros(1, 69)
        pose[0, 3 * (JOINT_INDEX[joint] - 1) + component] = angle
        return model(body_pose=pose).joints[0, JOINT_INDEX[probe]] - rest[JOINT_INDEX[probe]]

    knee_hi = JOINT_LIMITS["left_knee"][0][1]
    assert knee_hi > 2.0 and moved("left_knee", 0, 1.0, "left_ankle")[2] < 0  # foot goes back
    assert JOINT_LIMITS["left_elbow"][1][0] < -2.0 and moved("left_elbow", 1, -1.0, "left_wrist")[2] > 0
    assert JOINT_LIMITS["right_elbow"][1][1] > 2.0 and moved("right_elbow", 1, 1.0, "right_wrist")[2] > 0


def test_clamp_is_idempotent_and_penalty_is_zero_exactly_inside():
    pose = 2.0 * torch.randn(64, 69, generator=torch.Generator().manual_seed(5))
    clamped = clamp_body_pose(pose)
    assert torch.equal(clamp_body_pose(clamped), clamped)
    assert torch.equal(limit_penalty(clamped), torch.zeros(64))
    lower, upper = body_pose_bounds()
    outside = ((pose < lower) | (pose > upper)).any(dim=1)
    assert outside.any()
    penalty = limit_penalty(pose)
    assert (penalty[outside] > 0).all() and (penalty[~outside] == 0).all()
    torch.testing.assert_close(penalty, ((pose - clamped) ** 2).sum(dim=1))
    inside = lower + torch.rand(8, 69) * (upper - lower)
    assert torch.equal(clamp_body_pose(inside), inside)
    assert torch.equal(limit_penalty(inside), torch.zeros(8))
    pose.requires_grad_(True)
    limit_penalty(pose).sum().backward()
    assert pose.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\(B, 69\)"):
        clamp_body_pose(torch.zeros(2, 72))


def test_a_knee_bent_backwards_is_clamped():
    knee = 3 * (JOINT_INDEX["left_knee"] - 1)
    pose = torch.zeros(2, 69)
    pose[0, knee] = -1.0                 # hyperextended: foot swung forward
    pose[1, knee] = 1.5                  # a normal bend
    clamped = clamp_body_pose(pose)
    assert clamped[0, knee] == pytest.approx(JOINT_LIMITS["left_knee"][0][0])
    assert clamped[1, knee] == 1.5
    assert limit_penalty(pose)[0] == pytest.approx((1.0 - 0.1) ** 2)
    assert limit_penalty(pose)[1] == 0
