"""Native MuJoCo physics stepped on the host, and the locomotion tasks built on it."""

from quickstudy.envs.mujoco.locomotion import Locomotion, LocomotionState, LocomotionTask
from quickstudy.envs.mujoco.physics import MujocoBatch, PhysicsParams, robot_xml

__all__ = [
    "Locomotion",
    "LocomotionState",
    "LocomotionTask",
    "MujocoBatch",
    "PhysicsParams",
    "robot_xml",
]
