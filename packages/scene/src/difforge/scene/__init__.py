"""difforge.scene: expandable 3D indoor scenes built block by block (after BlockFusion).

This half of the package holds the data (procedural rooms with an analytic SDF, users' meshes,
3.2 m blocks with their layout rasters), meshing with seamless blending, export, a CPU renderer and
the evaluation protocol. See README.md for the pipeline.
"""

__version__ = "0.1.0"
