"""Tiny random CLIP and BLIP models saved to a local folder, so the optional CLIP stages can be
tested offline (the stages only ever load from a local path)."""

from __future__ import annotations

from pathlib import Path


def make_tiny_models(folder: Path) -> tuple[Path, Path]:
    import torch
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
    )
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {c: i for i, c in enumerate(tokens)}
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])  # byte-level, no merges: one token per character
    clip_dir = folder / "clip"
    image_proc = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_proc, tokenizer=tokenizer).save_pretrained(clip_dir)
    n = len(vocab)
    config = CLIPConfig(
        text_config=dict(vocab_size=n, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, bos_token_id=n - 2,
                         eos_token_id=n - 1, pad_token_id=n - 1),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=4),
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(clip_dir)

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "person", "walks", "in", "the", "park"]
    blip_dir = folder / "blip"
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}),
                  tokenizer=BertTokenizer(vocab={w: i for i, w in enumerate(words)})).save_pretrained(blip_dir)
    blip = BlipConfig(
        text_config=dict(vocab_size=len(words), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, encoder_hidden_size=32, bos_token_id=2, sep_token_id=3,
                         pad_token_id=0),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=4),
        projection_dim=16,
    )
    BlipForConditionalGeneration(blip).save_pretrained(blip_dir)
    return clip_dir, blip_dir
