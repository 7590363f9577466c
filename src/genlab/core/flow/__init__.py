"""Probability paths, timestep densities, loss weightings, time grids, samplers and guidance.

Convention (the only one in genlab): t = 0 is data, t = 1 is noise, z_t = a_t x0 + b_t eps.
"""
