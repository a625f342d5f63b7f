"""difforge.core: the shared diffusion core every difforge domain package builds on."""

__version__ = "0.1.0"
