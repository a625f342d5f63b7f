"""difforge.traj: road-network trajectory generation with block discrete diffusion (TrajDLM)."""

__version__ = "0.1.0"
