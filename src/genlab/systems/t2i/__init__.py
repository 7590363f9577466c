"""t2i: rectified-flow text-to-image with MM-DiT (SD3). `load_pipeline(PATH)` loads pretrained SD3 / SD3.5 from
a local diffusers folder or a Stability single file; `SkipLayerGuidance(layers, scale, start, stop)` is SD3.5's
skip-layer guidance for its `skip_layer_guidance=` argument (imported lazily: `genlab --help` stays free of torch)."""


def __getattr__(name: str):
    if name == "load_pipeline":
        from genlab.systems.t2i.sd3 import load_pipeline

        return load_pipeline
    if name == "SkipLayerGuidance":
        from genlab.core.flow.guidance import SkipLayerGuidance

        return SkipLayerGuidance
    raise AttributeError(f"module 'genlab.systems.t2i' has no attribute {name!r}")
