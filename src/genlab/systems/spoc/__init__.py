"""SPoC: search-based pseudocode to C++ (Kulal et al. 2019)."""
