"""Comparisons: variant grids and training them side by side."""
