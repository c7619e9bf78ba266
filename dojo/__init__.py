"""Dream Dojo: batched MJX tasks, a JAX camera, scripted experts, brax-compatible API."""

from dojo.env import Env, State, Wrapper
from dojo.registry import load, names, register

__all__ = ["Env", "State", "Wrapper", "load", "names", "register"]
