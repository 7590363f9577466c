"""Video data curation pipeline (Stable Video Diffusion, section 3)."""
