"""sdvicl-bench: visual in-context learning with Stable Diffusion (SD-VICL) as a benchmark."""

__version__ = "0.1.0"
