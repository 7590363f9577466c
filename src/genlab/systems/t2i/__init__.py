"""t2i: rectified-flow text-to-image with MM-DiT (SD3). `load_pipeline(PATH)` loads pretrained SD3 from a
local diffusers folder or a Stability single file (imported lazily: `genlab --help` stays free of torch)."""


def __getattr__(name: str):
    if name == "load_pipeline":
        from genlab.systems.t2i.sd3 import load_pipeline

        return load_pipeline
    raise AttributeError(f"module 'genlab.systems.t2i' has no attribute {name!r}")
