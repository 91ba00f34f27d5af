"""An SMPL-format body: SMPL's parameters in, vertices / joints / rotations out.

Two bodies share one interface, ``forward(*, global_orient, body_pose, betas, transl)
-> BodyOutput``:

* ``ProceduralSMPL``: a body built here from a table of joint positions and capsule
  radii, so that everything runs without the licensed SMPL files. It has SMPL's
  parameterisation and conventions (24 joints, axis-angle per joint, 10 betas, Y-up,
  metres, facing +z, T-pose rest, pelvis near the origin) and is posed by smplx's own
  ``smplx.lbs.lbs``, so it is a drop-in for the real model.
* ``SMPLFileBody``: the real SMPL model read by smplx from SMPL_{GENDER}.pkl.

``load_body_model(model_path=None)`` picks one of them.

The procedural mesh is a capsule around every bone (parent joint -> child joint) and
around five end segments (head top, finger tips, toe tips). Vertex ``j < 24`` sits
exactly on joint ``j``, so the one-hot ``J_regressor`` recovers the joints from the
shaped vertices exactly. A bone's vertices are skinned to its parent joint, blended
half-and-half with the neighbouring joint at each end.

Betas (all linear in the vertices, as SMPL's ``shapedirs`` are; per unit of beta):

* beta0 stature: the whole body scales by 6 % about the origin (~10 cm of height).
* beta1 limb length: the arm and leg bones (thigh, shin, upper arm, forearm, hand,
  fingers) get 5 % longer; the trunk is unchanged.
* beta2 girth: every capsule radius grows by 10 % (bone lengths unchanged).
* beta3 torso length: the four spine bones (pelvis -> neck) get 5 % longer.
* beta4 shoulder width: collar and collar -> shoulder bones get 8 % longer.
* beta5 hip width: pelvis -> hip bones get 8 % longer.
* beta6 neck length: the neck -> head bone gets 10 % longer.
* beta7 arm/leg ratio: arm bones 3 % longer, leg bones 3 % shorter.
* beta8 torso/limb girth: trunk radii +8 %, arm and leg radii -4 %.
* beta9 head size: the head capsule (length and radius) grows by 6 %.
"""

from dataclasses import dataclass
from pathlib import Path
import math

import torch
from smplx.lbs import batch_rodrigues, lbs

from macm_core.body.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS

NUM_BETAS = 10
NUM_BODY_POSE = 3 * (NUM_JOINTS - 1)  # 69: axis-angle of joints 1..23
SMPL_DOWNLOAD_HINT = (
    "Download the SMPL body model (SMPL_NEUTRAL.pkl, SMPL_MALE.pkl, SMPL_FEMALE.pkl; "
    "free but registration-only) from https://smpl.is.tue.mpg.de and put the file "
    "there, or pass model_path=None to use the procedural body."
)

# ---------------------------------------------------------------------------------
# The template: rest (T-pose) joint positions of an average adult, in metres.
# Proportions follow SMPL's neutral template (pelvis ~0.23 m below the origin,
# legs slightly apart, palms down); left-side values are mirrored to the right.
# ---------------------------------------------------------------------------------

_REST_LEFT_AND_MIDDLE = {
    "pelvis": (0.0, -0.225, 0.028),
    "left_hip": (0.069, -0.315, 0.023),
    "spine1": (0.0, -0.109, 0.001),
    "left_knee": (0.105, -0.676, 0.017),
    "spine2": (0.0, 0.025, 0.028),
    "left_ankle": (0.090, -1.091, -0.027),
    "spine3": (0.0, 0.079, 0.031),
    "left_foot": (0.119, -1.143, 0.095),
    "neck": (0.0, 0.293, -0.012),
    "left_collar": (0.078, 0.204, -0.014),
    "head": (0.0, 0.360, 0.039),
    "left_shoulder": (0.180, 0.243, -0.019),
    "left_elbow": (0.436, 0.229, -0.040),
    "left_wrist": (0.694, 0.235, -0.033),
    "left_hand": (0.782, 0.226, -0.041),
}

# radius of the capsule that ends at this joint (bone parent -> joint), in metres
_RADIUS_LEFT_AND_MIDDLE = {
    "left_hip": 0.090, "spine1": 0.120, "left_knee": 0.075, "spine2": 0.120,
    "left_ankle": 0.050, "spine3": 0.130, "left_foot": 0.040, "neck": 0.080,
    "left_collar": 0.060, "head": 0.050, "left_shoulder": 0.055, "left_elbow": 0.045,
    "left_wrist": 0.037, "left_hand": 0.030,
}

# end segments past the leaf joints: (leaf joint, offset from it, capsule radius)
_END_SEGMENTS_LEFT_AND_MIDDLE = {
    "head_end": ("head", (0.0, 0.068, -0.010), 0.090),
    "left_foot_end": ("left_foot", (0.0, 0.0, 0.060), 0.030),
    "left_hand_end": ("left_hand", (0.090, 0.0, 0.0), 0.025),
}


def _mirror(name: str) -> str:
    return name.replace("left_", "right_")


def _both_sides(table: dict) -> dict:
    """Add the right-side entries of a left/middle table (x -> -x)."""
    out = dict(table)
    for name, value in table.items():
        if not name.startswith("left_"):
            continue
        if isinstance(value, float):  # a radius
            out[_mirror(name)] = value
        elif isinstance(value[0], str):  # an end segment
            leaf, (x, y, z), radius = value
            out[_mirror(name)] = (_mirror(leaf), (-x, y, z), radius)
        else:  # a position
            x, y, z = value
            out[_mirror(name)] = (-x, y, z)
    return out


_REST = _both_sides(_REST_LEFT_AND_MIDDLE)
_RADIUS = _both_sides(_RADIUS_LEFT_AND_MIDDLE)
_END_SEGMENTS = _both_sides(_END_SEGMENTS_LEFT_AND_MIDDLE)

# "points" are the 24 joints followed by the 5 end points; each has a parent point
POINT_NAMES: tuple[str, ...] = JOINT_NAMES + tuple(sorted(_END_SEGMENTS))
POINT_PARENTS: tuple[int, ...] = PARENTS + tuple(
    JOINT_NAMES.index(_END_SEGMENTS[name][0]) for name in POINT_NAMES[NUM_JOINTS:])


def _rest_points() -> torch.Tensor:
    """Rest positions of the joints and end points. Returns (29, 3) float64."""
    points = [_REST[name] for name in JOINT_NAMES]
    for name in POINT_NAMES[NUM_JOINTS:]:
        leaf, offset, _ = _END_SEGMENTS[name]
        points.append(tuple(a + b for a, b in zip(_REST[leaf], offset)))
    return torch.tensor(points, dtype=torch.float64)


def _point_radii() -> torch.Tensor:
    """Capsule radius of the segment ending at each point (0 for the root). (29,)"""
    radii = [0.0] + [_RADIUS[name] for name in JOINT_NAMES[1:]]
    radii += [_END_SEGMENTS[name][2] for name in POINT_NAMES[NUM_JOINTS:]]
    return torch.tensor(radii, dtype=torch.float64)


# ---------------------------------------------------------------------------------
# Betas: each one scales chosen segment lengths and capsule radii by a fraction per
# unit. Length changes propagate down the tree, so joint positions (and with them
# the vertices) move linearly in the betas.
# ---------------------------------------------------------------------------------

_ARMS = [f"{side}_{part}" for side in ("left", "right")
         for part in ("elbow", "wrist", "hand", "hand_end")]
_LEGS = [f"{side}_{part}" for side in ("left", "right") for part in ("knee", "ankle")]
_TORSO = ["spine1", "spine2", "spine3", "neck"]
_ALL = list(POINT_NAMES[1:])


@dataclass(frozen=True)
class BetaDirection:
    """What one unit of a beta does: fractional growth of segments and radii."""
    name: str
    root: float = 0.0                            # scale of the root position
    length: tuple[tuple[tuple[str, ...], float], ...] = ()  # (segments, fraction)
    radius: tuple[tuple[tuple[str, ...], float], ...] = ()  # (segments, fraction)


def _groups(*pairs) -> tuple:
    return tuple((tuple(names), value) for names, value in pairs)


BETA_DIRECTIONS: tuple[BetaDirection, ...] = (
    BetaDirection(name="stature", root=0.06,
                  length=_groups((_ALL, 0.06)), radius=_groups((_ALL, 0.06))),
    BetaDirection(name="limb_length", length=_groups((_ARMS + _LEGS, 0.05))),
    BetaDirection(name="girth", radius=_groups((_ALL, 0.10))),
    BetaDirection(name="torso_length", length=_groups((_TORSO, 0.05))),
    BetaDirection(name="shoulder_width", length=_groups((
        ["left_collar", "right_collar", "left_shoulder", "right_shoulder"], 0.08))),
    BetaDirection(name="hip_width", length=_groups((["left_hip", "right_hip"], 0.08))),
    BetaDirection(name="neck_length", length=_groups((["head"], 0.10))),
    BetaDirection(name="arm_leg_ratio", length=_groups((_ARMS, 0.03), (_LEGS, -0.03))),
    BetaDirection(name="torso_limb_girth",
                  radius=_groups((_TORSO + ["spine1"], 0.08), (_ARMS + _LEGS, -0.04))),
    BetaDirection(name="head_size",
                  length=_groups((["head_end"], 0.06)), radius=_groups((["head_end"], 0.06))),
)
BETA_NAMES: tuple[str, ...] = tuple(d.name for d in BETA_DIRECTIONS)


def _coefficients(groups) -> torch.Tensor:
    out = torch.zeros(len(POINT_NAMES), dtype=torch.float64)
    for names, value in groups:
        for name in names:
            out[POINT_NAMES.index(name)] = value
    return out


def _beta_coefficients() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns root (10,), length (10, 29) and radius (10, 29) growth per unit beta."""
    root = torch.tensor([d.root for d in BETA_DIRECTIONS], dtype=torch.float64)
    length = torch.stack([_coefficients(d.length) for d in BETA_DIRECTIONS])
    radius = torch.stack([_coefficients(d.radius) for d in BETA_DIRECTIONS])
    return root, length, radius


def _point_directions(points: torch.Tensor) -> torch.Tensor:
    """Displacement of every point per unit of each beta. (29, 3) -> (10, 29, 3)"""
    root, length, _ = _beta_coefficients()
    moves = [root[:, None] * points[0]]
    for k in range(1, len(POINT_NAMES)):
        bone = points[k] - points[POINT_PARENTS[k]]
        moves.append(moves[POINT_PARENTS[k]] + length[:, k, None] * bone)
    return torch.stack(moves, dim=1)


# ---------------------------------------------------------------------------------
# The capsule mesh
# ---------------------------------------------------------------------------------

_BLEND = 0.25  # fraction of a bone, at each end, over which skinning blends


def _perpendicular_basis(axis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two unit vectors u, v with (u, v, axis) right-handed. axis: (3,) unit."""
    helper = torch.tensor([0.0, 0.0, 1.0], dtype=axis.dtype)
    if abs(float(axis @ helper)) > 0.9:
        helper = torch.tensor([1.0, 0.0, 0.0], dtype=axis.dtype)
    u = torch.linalg.cross(helper, axis)
    u = u / u.norm()
    return u, torch.linalg.cross(axis, u)


def _capsule_rings(*, along: int, cap_rings: int) -> list[tuple[float, float, float]]:
    """(t along the bone, axial unit offset, radial unit offset) from bottom to top,
    poles excluded."""
    caps = [math.pi / 2 * i / (cap_rings + 1) for i in range(1, cap_rings + 1)]
    bottom = [(0.0, -math.cos(phi), math.sin(phi)) for phi in caps]
    body = [(i / (along - 1), 0.0, 1.0) for i in range(along)]
    top = [(1.0, math.cos(phi), math.sin(phi)) for phi in reversed(caps)]
    return bottom + body + top


@dataclass
class ProceduralMesh:
    """The SMPL-format arrays of the procedural body (float64 / long)."""
    v_template: torch.Tensor   # (V, 3)
    shapedirs: torch.Tensor    # (V, 3, 10)
    lbs_weights: torch.Tensor  # (V, 24)
    faces: torch.Tensor        # (F, 3) long
    point_radii: torch.Tensor  # (29,) capsule radius ending at each point
    radius_directions: torch.Tensor  # (10, 29) radius growth per unit beta


def build_procedural_mesh(*, around: int = 12, along: int = 6,
                          cap_rings: int = 2) -> ProceduralMesh:
    """Builds the capsule body. Vertex j < 24 is joint j; then one capsule per segment
    (bones 1..23, then the 5 end segments), each `2 + around * (along + 2 cap_rings)`
    vertices."""
    if around < 3 or along < 2 or cap_rings < 0:
        raise ValueError(f"need around >= 3, along >= 2, cap_rings >= 0; "
                         f"got around={around}, along={along}, cap_rings={cap_rings}")
    points = _rest_points()
    moves = _point_directions(points)               # (10, 29, 3)
    _, _, radius_growth = _beta_coefficients()      # (10, 29)
    radii = _point_radii()
    theta = torch.arange(around, dtype=torch.float64) * (2 * math.pi / around)

    # joint vertices first: vertex j is joint j, skinned fully to joint j
    positions = [points[:NUM_JOINTS]]
    directions = [moves[:, :NUM_JOINTS].permute(1, 2, 0)]
    weights = [torch.eye(NUM_JOINTS, dtype=torch.float64)]
    faces = []
    count = NUM_JOINTS

    rings = _capsule_rings(along=along, cap_rings=cap_rings)
    for k in range(1, len(POINT_NAMES)):
        q = POINT_PARENTS[k]                    # the segment runs q -> k, driven by q
        axis = points[k] - points[q]
        axis = axis / axis.norm()
        u, v = _perpendicular_basis(axis)
        start_joint = PARENTS[q] if q != 0 else None
        end_joint = k if k < NUM_JOINTS else None

        # every vertex: (t, unit offset from the anchor on the bone)
        ts, offsets = [0.0], [-axis]
        for t, axial, radial in rings:
            ring = radial * (torch.cos(theta)[:, None] * u + torch.sin(theta)[:, None] * v)
            ts += [t] * around
            offsets += list(ring + axial * axis)
        ts.append(1.0)
        offsets.append(axis)
        t = torch.tensor(ts, dtype=torch.float64)[:, None]      # (n, 1)
        offset = torch.stack(offsets)                           # (n, 3)

        positions.append((1 - t) * points[q] + t * points[k] + radii[k] * offset)
        directions.append(((1 - t[None]) * moves[:, q, None] + t[None] * moves[:, k, None]
                           + radius_growth[:, k, None, None] * radii[k] * offset[None])
                          .permute(1, 2, 0))
        w = torch.zeros(len(ts), NUM_JOINTS, dtype=torch.float64)
        start_share = 0.5 * (1 - t[:, 0] / _BLEND).clamp(min=0)
        end_share = 0.5 * ((t[:, 0] - (1 - _BLEND)) / _BLEND).clamp(min=0)
        if start_joint is None:
            start_share = torch.zeros_like(start_share)
        if end_joint is None:
            end_share = torch.zeros_like(end_share)
        w[:, q] = 1 - start_share - end_share
        if start_joint is not None:
            w[:, start_joint] = start_share
        if end_joint is not None:
            w[:, end_joint] = end_share
        weights.append(w)

        # faces: pole fans and quads between consecutive rings, normals outward
        bottom, top = count, count + len(ts) - 1
        ring_start = [count + 1 + i * around for i in range(len(rings))]
        for a in range(around):
            b = (a + 1) % around
            faces.append((bottom, ring_start[0] + b, ring_start[0] + a))
            faces.append((ring_start[-1] + a, ring_start[-1] + b, top))
            for lo, hi in zip(ring_start[:-1], ring_start[1:]):
                faces.append((lo + a, lo + b, hi + b))
                faces.append((lo + a, hi + b, hi + a))
        count += len(ts)

    return ProceduralMesh(
        v_template=torch.cat(positions),
        shapedirs=torch.cat(directions),
        lbs_weights=torch.cat(weights),
        faces=torch.tensor(faces, dtype=torch.long),
        point_radii=radii,
        radius_directions=radius_growth,
    )


# ---------------------------------------------------------------------------------
# Inputs, outputs and forward kinematics shared by both bodies
# ---------------------------------------------------------------------------------

@dataclass
class BodyOutput:
    """A posed body. B = batch, V = vertices.

    vertices: (B, V, 3) metres, world frame (transl applied)
    joints: (B, 24, 3) SMPL joints, world frame
    global_rotations: (B, 24, 3, 3) world rotation of each joint's frame
    bone_radii: (B, 24) radius of the capsule parent(j) -> j; entry 0 (root) is 0
    """
    vertices: torch.Tensor
    joints: torch.Tensor
    global_rotations: torch.Tensor
    bone_radii: torch.Tensor


def prepare_body_inputs(*, global_orient, body_pose, betas, transl,
                        dtype: torch.dtype, device: torch.device):
    """Checks the SMPL parameters and fills missing ones with zeros.

    Returns global_orient (B, 3), body_pose (B, 69), betas (B, 10), transl (B, 3).
    B comes from the given tensors (1 if none); betas of batch 1 broadcast to B.
    """
    widths = {"global_orient": 3, "body_pose": NUM_BODY_POSE, "betas": NUM_BETAS,
              "transl": 3}
    given = {"global_orient": global_orient, "body_pose": body_pose, "betas": betas,
             "transl": transl}
    for name, value in given.items():
        width = widths[name]
        if value is None:
            continue
        if not torch.is_tensor(value) or not value.is_floating_point():
            raise TypeError(f"{name} must be a float torch.Tensor of shape (B, {width}), "
                            f"got {type(value).__name__}"
                            f"{'' if not torch.is_tensor(value) else ' of ' + str(value.dtype)}")
        if value.ndim != 2 or value.shape[1] != width:
            raise ValueError(
                f"{name} must have shape (B, {width}), got {tuple(value.shape)}; "
                f"for one sample add a batch dimension ({name}[None]), and flatten "
                f"per-joint layouts with {name}.reshape(B, {width})")
    sizes = {name: value.shape[0] for name, value in given.items() if value is not None}
    batch = max(sizes.values(), default=1)
    if any(size != batch and not (name == "betas" and size == 1)
           for name, size in sizes.items()):
        raise ValueError(f"batch sizes disagree: {sizes}; give every parameter the same "
                         f"first dimension B (betas may also have batch 1)")

    def filled(name, value):
        if value is None:
            return torch.zeros(batch, widths[name], dtype=dtype, device=device)
        value = value.to(dtype=dtype, device=device)
        return value.expand(batch, -1) if value.shape[0] != batch else value

    return tuple(filled(name, value) for name, value in given.items())


def global_rotations(full_pose: torch.Tensor, parents: torch.Tensor) -> torch.Tensor:
    """World rotation of every joint frame: R_j = R_parent(j) @ rodrigues(pose_j).

    full_pose: (B, 24 * 3) axis-angle, root first. Returns (B, 24, 3, 3).
    """
    batch = full_pose.shape[0]
    local = batch_rodrigues(full_pose.reshape(-1, 3)).reshape(batch, -1, 3, 3)
    chain = [local[:, 0]]
    for j in range(1, local.shape[1]):
        chain.append(chain[int(parents[j])] @ local[:, j])
    return torch.stack(chain, dim=1)


def _pose_with_lbs(model: torch.nn.Module, *, global_orient, body_pose, betas, transl):
    """Runs smplx.lbs.lbs on a module holding SMPL's buffers. Returns full_pose
    (B, 72), betas (B, 10), vertices (B, V, 3) and joints (B, 24, 3), transl applied."""
    global_orient, body_pose, betas, transl = prepare_body_inputs(
        global_orient=global_orient, body_pose=body_pose, betas=betas, transl=transl,
        dtype=model.v_template.dtype, device=model.v_template.device)
    full_pose = torch.cat([global_orient, body_pose], dim=1)
    vertices, joints = lbs(betas, full_pose, model.v_template, model.shapedirs,
                           model.posedirs, model.J_regressor, model.parents,
                           model.lbs_weights)
    shift = transl[:, None]
    return full_pose, betas, vertices + shift, joints[:, :NUM_JOINTS] + shift


class ProceduralSMPL(torch.nn.Module):
    """SMPL-format capsule body (see the module docstring for the betas).

    Buffers as in smplx.SMPL: v_template (V, 3), shapedirs (V, 3, 10),
    posedirs (207, 3V) zeros, J_regressor (24, V) one-hot, lbs_weights (V, 24),
    parents (24,), faces (F, 3) long.
    """

    def __init__(self, *, around: int = 12, along: int = 6, cap_rings: int = 2,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        mesh = build_procedural_mesh(around=around, along=along, cap_rings=cap_rings)
        num_vertices = mesh.v_template.shape[0]
        regressor = torch.zeros(NUM_JOINTS, num_vertices, dtype=dtype)
        regressor[:, :NUM_JOINTS] = torch.eye(NUM_JOINTS, dtype=dtype)
        self.register_buffer("v_template", mesh.v_template.to(dtype))
        self.register_buffer("shapedirs", mesh.shapedirs.to(dtype))
        self.register_buffer("posedirs", torch.zeros(9 * (NUM_JOINTS - 1), 3 * num_vertices,
                                                     dtype=dtype))
        self.register_buffer("J_regressor", regressor)
        self.register_buffer("lbs_weights", mesh.lbs_weights.to(dtype))
        self.register_buffer("parents", torch.tensor(PARENTS, dtype=torch.long))
        self.register_buffer("faces", mesh.faces)
        self.register_buffer("base_radii", mesh.point_radii[:NUM_JOINTS].to(dtype))
        self.register_buffer("radius_directions",
                             mesh.radius_directions[:, :NUM_JOINTS].to(dtype))

    @property
    def rest_joints(self) -> torch.Tensor:
        """T-pose joints of the mean shape, (24, 3)."""
        return self.J_regressor @ self.v_template

    def forward(self, *, global_orient=None, body_pose=None, betas=None,
                transl=None) -> BodyOutput:
        """global_orient (B, 3), body_pose (B, 69), betas (B, 10) or (1, 10),
        transl (B, 3); any may be None (zeros)."""
        full_pose, betas, vertices, joints = _pose_with_lbs(
            self, global_orient=global_orient, body_pose=body_pose, betas=betas,
            transl=transl)
        radii = self.base_radii * (1 + betas @ self.radius_directions)
        return BodyOutput(vertices=vertices, joints=joints,
                          global_rotations=global_rotations(full_pose, self.parents),
                          bone_radii=radii.clamp(min=0))


# ---------------------------------------------------------------------------------
# The real SMPL model, read by smplx
# ---------------------------------------------------------------------------------

def _bone_vertex_sets(v_shaped: torch.Tensor, joints: torch.Tensor,
                      lbs_weights: torch.Tensor) -> list[torch.Tensor]:
    """For bone parent(j) -> j, the vertices mostly skinned to the parent whose
    nearest bone among the parent's children is this one. (V,3), (24,3) -> 24 index
    tensors (entry 0 empty)."""
    owner = lbs_weights.argmax(dim=1)
    sets = [torch.zeros(0, dtype=torch.long)]
    for j in range(1, NUM_JOINTS):
        p = PARENTS[j]
        siblings = [c for c in range(1, NUM_JOINTS) if PARENTS[c] == p]
        candidates = torch.nonzero(owner == p).flatten()
        distance, t = _segment_distance(v_shaped[candidates], joints[p],
                                        torch.stack([joints[c] for c in siblings]))
        mine = (distance.argmin(dim=1) == siblings.index(j))
        inside = (t[:, siblings.index(j)] > 0.05) & (t[:, siblings.index(j)] < 0.95)
        sets.append(candidates[mine & inside])
    return sets


def _segment_distance(points: torch.Tensor, start: torch.Tensor, ends: torch.Tensor):
    """Distance of points (N, 3) to segments start -> ends (S, 3), with the
    projection parameter t. Returns (N, S), (N, S)."""
    bone = ends - start                                          # (S, 3)
    rel = points[:, None] - start                                # (N, 1, 3)
    t = (rel * bone).sum(-1) / (bone * bone).sum(-1).clamp(min=1e-12)
    closest = start + t.clamp(0, 1)[..., None] * bone
    return (points[:, None] - closest).norm(dim=-1), t


class SMPLFileBody(torch.nn.Module):
    """The real SMPL model (an smplx.SMPL) behind the BodyOutput interface.

    bone_radii are an estimate (no gradient): for each bone, the median distance of
    the rest-pose shaped vertices that belong to it from the bone segment.
    """

    def __init__(self, *, smpl_model: torch.nn.Module):
        super().__init__()
        if smpl_model.J_regressor.shape[0] != NUM_JOINTS:
            raise ValueError(f"expected an SMPL model with {NUM_JOINTS} joints, got "
                             f"{smpl_model.J_regressor.shape[0]} (SMPL-H/SMPL-X files "
                             f"are not supported here)")
        self.smpl = smpl_model
        self.register_buffer("faces", smpl_model.faces_tensor)
        with torch.no_grad():
            rest = self.smpl.v_template
            self._bone_sets = _bone_vertex_sets(rest, self.smpl.J_regressor @ rest,
                                                self.smpl.lbs_weights)

    # smplx.SMPL's buffers, so _pose_with_lbs can read them
    v_template = property(lambda self: self.smpl.v_template)
    shapedirs = property(lambda self: self.smpl.shapedirs)
    posedirs = property(lambda self: self.smpl.posedirs)
    J_regressor = property(lambda self: self.smpl.J_regressor)
    lbs_weights = property(lambda self: self.smpl.lbs_weights)
    parents = property(lambda self: self.smpl.parents)

    @torch.no_grad()
    def _estimate_radii(self, betas: torch.Tensor) -> torch.Tensor:
        """(B, 10) -> (B, 24), computed once per distinct betas row."""
        unique, inverse = torch.unique(betas, dim=0, return_inverse=True)
        v_shaped = self.v_template + torch.einsum("bl,vcl->bvc", unique, self.shapedirs)
        joints = torch.einsum("jv,bvc->bjc", self.J_regressor, v_shaped)
        radii = torch.zeros(unique.shape[0], NUM_JOINTS, dtype=betas.dtype,
                            device=betas.device)
        for j in range(1, NUM_JOINTS):
            ids = self._bone_sets[j].to(betas.device)
            p = PARENTS[j]
            for b in range(unique.shape[0]):
                if len(ids) == 0:
                    radii[b, j] = 0.25 * (joints[b, j] - joints[b, p]).norm()
                    continue
                distance, _ = _segment_distance(v_shaped[b, ids], joints[b, p],
                                                joints[b, j][None])
                radii[b, j] = distance.median()
        return radii[inverse]

    def forward(self, *, global_orient=None, body_pose=None, betas=None,
                transl=None) -> BodyOutput:
        """Same arguments and output as ProceduralSMPL.forward."""
        full_pose, betas, vertices, joints = _pose_with_lbs(
            self, global_orient=global_orient, body_pose=body_pose, betas=betas,
            transl=transl)
        return BodyOutput(vertices=vertices, joints=joints,
                          global_rotations=global_rotations(full_pose, self.parents),
                          bone_radii=self._estimate_radii(betas))


def _resolve_smpl_file(model_path: str, gender: str) -> Path:
    """A file path as given, or SMPL_{GENDER}.pkl inside the folder (or its smpl/)."""
    path = Path(model_path).expanduser()
    if path.is_file():
        return path
    file_name = f"SMPL_{gender.upper()}.pkl"
    if path.is_dir():
        for candidate in (path / file_name, path / "smpl" / file_name):
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(
            f"SMPL model folder {path} has no {file_name} (looked at {path / file_name} "
            f"and {path / 'smpl' / file_name}). {SMPL_DOWNLOAD_HINT}")
    raise FileNotFoundError(f"SMPL model path {path} does not exist. {SMPL_DOWNLOAD_HINT}")


def load_body_model(*, model_path: str | None = None,
                    gender: str = "neutral") -> torch.nn.Module:
    """ProceduralSMPL when model_path is None, else the SMPL file read by smplx.

    model_path: an SMPL .pkl file, or a folder holding SMPL_{GENDER}.pkl directly or
    in a smpl/ subfolder (smplx's layout). gender: "neutral", "male" or "female".
    """
    if gender not in ("neutral", "male", "female"):
        raise ValueError(f"gender must be 'neutral', 'male' or 'female', got {gender!r}")
    if model_path is None:
        return ProceduralSMPL()
    import smplx

    path = _resolve_smpl_file(model_path, gender)
    try:
        # smplx.create(path, model_type="smpl") builds exactly this class, but only
        # for files named SMPL_*.pkl; building it directly accepts any file name
        smpl_model = smplx.SMPL(model_path=str(path), gender=gender,
                                use_hands=False, use_feet_keypoints=False)
    except ModuleNotFoundError as error:
        raise ValueError(
            f"SMPL file {path} needs the Python module {error.name!r} to unpickle "
            f"(original SMPL files store chumpy arrays): install it, or remove chumpy "
            f"from the file with smplx's tools/clean_ch.py") from error
    except Exception as error:  # pickle, EOF, missing keys, wrong shapes
        raise ValueError(f"could not read an SMPL model from {path}: "
                         f"{type(error).__name__}: {error}. {SMPL_DOWNLOAD_HINT}") from error
    return SMPLFileBody(smpl_model=smpl_model)
