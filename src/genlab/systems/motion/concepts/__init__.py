"""Programmatic motion concepts (Kulal et al. 2022), built on the motion-program system."""
