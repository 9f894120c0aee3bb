"""Measurements of the trained components against the simulator (torch core + SMAX, no Ray)."""
