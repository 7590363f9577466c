"""Motion programs (Hierarchical Motion Understanding via Motion Programs, Kulal et al. 2021)."""
