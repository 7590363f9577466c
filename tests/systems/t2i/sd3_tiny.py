"""A tiny random SD3 pipeline built with diffusers / transformers classes (two CLIPs, T5, a 16-channel
VAE with a shift factor, the MM-DiT), saved with `save_pretrained`, and the same weights as one file
in Stability's single-file key layout."""

from __future__ import annotations

from pathlib import Path

import torch

CLIP_L_WIDTH, CLIP_G_WIDTH, T5_WIDTH = 64, 128, 256  # heads of 64 channels, as the released encoders
T5_WORDS = ["<pad>", "</s>", "<unk>", "a", "photo", "of", "cat", "dog", "red", "car", "blurry", "on", "the", "moon"]


def clip_tokenizer():
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={c: i for i, c in enumerate(tokens)}, merges=[], model_max_length=77)  # a token per character


def t5_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(T5_WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def components(seed: int = 0, clip_layers: int = 2, t5_layers: int = 1, t5_ff: int = 256, depth: int = 2,
               qk_norm: str | None = None, dual_attention_layers: tuple[int, ...] = ()) -> dict:
    """SD3-style by default; qk_norm="rms_norm" with dual_attention_layers is an SD3.5-Medium-style MMDiT-X."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    torch.manual_seed(seed)
    tok = clip_tokenizer()
    n = len(tok)

    def clip(width, act):
        return CLIPTextModelWithProjection(CLIPTextConfig(
            vocab_size=n, hidden_size=width, intermediate_size=2 * width, num_hidden_layers=clip_layers,
            num_attention_heads=width // 64, max_position_embeddings=77, projection_dim=width, hidden_act=act,
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)).eval()

    t5 = T5EncoderModel(T5Config(vocab_size=len(T5_WORDS), d_model=T5_WIDTH, d_kv=64, num_heads=T5_WIDTH // 64,
                                 d_ff=t5_ff, num_layers=t5_layers, feed_forward_proj="gated-gelu",
                                 is_encoder_decoder=False)).eval()
    transformer = SD3Transformer2DModel(
        sample_size=16, patch_size=2, in_channels=16, num_layers=depth, attention_head_dim=64, num_attention_heads=depth,
        joint_attention_dim=T5_WIDTH, caption_projection_dim=64 * depth, pooled_projection_dim=CLIP_L_WIDTH + CLIP_G_WIDTH,
        out_channels=16, pos_embed_max_size=24, qk_norm=qk_norm, dual_attention_layers=dual_attention_layers).eval()
    # hidden = 64 * depth with heads of 64, the released models' rule (single files do not store the heads)
    with torch.no_grad():  # diffusers zero-inits nothing here, but make the output depend on every input
        for p in transformer.parameters():
            p.add_(0.05 * torch.randn_like(p))
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(32, 32), layers_per_block=1,
                        latent_channels=16, norm_num_groups=32, use_quant_conv=False, use_post_quant_conv=False,
                        scaling_factor=1.5305, shift_factor=0.0609).eval()
    clip_l = clip(CLIP_L_WIDTH, "quick_gelu")
    with torch.no_grad():  # SD3 uses CLIP-L's pooled output unprojected (single files have no projection)
        clip_l.text_projection.weight.copy_(torch.eye(CLIP_L_WIDTH))
    return dict(transformer=transformer, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
                text_encoder=clip_l, tokenizer=tok,
                text_encoder_2=clip(CLIP_G_WIDTH, "gelu"), tokenizer_2=clip_tokenizer(),
                text_encoder_3=t5, tokenizer_3=t5_tokenizer())


def diffusers_pipeline(parts: dict, t5: bool = True, img2img: bool = False):
    from diffusers import StableDiffusion3Img2ImgPipeline, StableDiffusion3Pipeline

    parts = dict(parts)
    if not t5:
        parts.update(text_encoder_3=None, tokenizer_3=None)
    pipe = (StableDiffusion3Img2ImgPipeline if img2img else StableDiffusion3Pipeline)(**parts)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_folder(parts: dict, folder: Path) -> Path:
    diffusers_pipeline(parts).save_pretrained(folder, safe_serialization=True)
    return folder


def single_file_state(parts: dict, encoders=("clip_l", "clip_g", "t5"), t5_dtype=None) -> dict:
    """The official single-file layout: reference MM-DiT names, LDM VAE names, transformers encoders."""
    from genlab.systems.t2i import convert

    state = convert.to_single_file(convert.from_diffusers(parts["transformer"].state_dict()))
    state.update({"first_stage_model." + k: v for k, v in ldm_vae_state(parts["vae"].state_dict()).items()})
    l_state = {k: v for k, v in parts["text_encoder"].state_dict().items() if k != "text_projection.weight"}
    sources = {"clip_l": ("clip_l", l_state), "clip_g": ("clip_g", parts["text_encoder_2"].state_dict()),
               "t5": ("t5xxl", parts["text_encoder_3"].state_dict())}
    for name in encoders:
        key, sd = sources[name]
        for k, v in sd.items():
            if name == "t5" and t5_dtype is not None:
                v = v.to(t5_dtype)
            state[f"text_encoders.{key}.transformer.{k}"] = v
    return state


def ldm_vae_state(sd: dict) -> dict:
    """diffusers AutoencoderKL names -> LDM names (attention as 1x1 convs): the inverse of diffusers'
    convert_ldm_vae_checkpoint, written out for the test."""
    out = {}
    for k, v in sd.items():
        ldm = k
        for side in ("encoder", "decoder"):
            ldm = ldm.replace(f"{side}.mid_block.resnets.0.", f"{side}.mid.block_1.")
            ldm = ldm.replace(f"{side}.mid_block.resnets.1.", f"{side}.mid.block_2.")
            ldm = ldm.replace(f"{side}.mid_block.attentions.0.", f"{side}.mid.attn_1.")
        ldm = ldm.replace("attn_1.group_norm.", "attn_1.norm.").replace("attn_1.to_q.", "attn_1.q.")
        ldm = ldm.replace("attn_1.to_k.", "attn_1.k.").replace("attn_1.to_v.", "attn_1.v.")
        ldm = ldm.replace("attn_1.to_out.0.", "attn_1.proj_out.")
        ldm = ldm.replace("encoder.down_blocks.", "encoder.down.").replace(".resnets.", ".block.")
        ldm = ldm.replace(".downsamplers.0.conv.", ".downsample.conv.").replace(".conv_shortcut.", ".nin_shortcut.")
        ldm = ldm.replace("encoder.conv_norm_out.", "encoder.norm_out.").replace("decoder.conv_norm_out.", "decoder.norm_out.")
        if ldm.startswith("decoder.up_blocks."):
            parts = ldm.split(".")
            n_up = 1 + max(int(x.split(".")[2]) for x in sd if x.startswith("decoder.up_blocks."))
            parts[1], parts[2] = "up", str(n_up - 1 - int(parts[2]))  # LDM counts up-levels from the bottom
            ldm = ".".join(parts).replace(".upsamplers.0.conv.", ".upsample.conv.")
        if ".attn_1." in ldm and ldm.endswith("weight") and v.ndim == 2:
            v = v[:, :, None, None]
        out[ldm] = v
    return out
