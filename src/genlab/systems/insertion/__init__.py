"""Affordance-aware human insertion (Putting People in Their Place, Kulal et al. 2023)."""
