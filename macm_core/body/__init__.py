"""SMPL-format bodies: the 24-joint kinematic tree, forward kinematics, joint limits."""
