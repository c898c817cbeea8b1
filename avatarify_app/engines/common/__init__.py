"""Inference helpers shared by several engines (engines never import each other; they may import
this package)."""
