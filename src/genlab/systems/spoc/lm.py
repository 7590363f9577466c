"""Adapter: a local causal language model (transformers, loaded from a path) as a SPoC translator.

The prompt shows a few (pseudocode, code) pairs, ideally the retrieval translator's nearest
training pairs, then the query; beam search returns M continuations, each cut at the first newline,
scored by the sum of their token log-probabilities (no length penalty). Nothing is downloaded:
the model and tokenizer must be in `path` (`local_files_only=True`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import torch

from genlab.errors import GenlabError
from genlab.systems.spoc.lexer import canonical
from genlab.systems.spoc.translate import Candidate, normalise


class CausalLMTranslator:
    def __init__(self, path: str | Path, examples: Sequence[tuple[str, str]] = (), max_new_tokens: int = 48,
                 device: str = "cpu", dtype: torch.dtype = torch.float32):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.path = Path(path)
        if not self.path.is_dir():
            raise GenlabError(f"causal LM path not found: {self.path} (a local folder with config + weights)")
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(str(self.path), local_files_only=True, dtype=dtype)
        self.model.to(device).eval()
        self.device = device
        self.examples = list(examples)
        self.max_new_tokens = max_new_tokens
        self.name = f"lm-{self.path.name}"

    def fingerprint(self) -> str:
        h = hashlib.sha256(str(self.path.resolve()).encode())
        h.update(repr((self.examples, self.max_new_tokens)).encode())
        return f"{self.name}-{h.hexdigest()[:16]}"

    def prompt(self, text: str) -> str:
        shots = "".join(f"// {t}\n{c}\n" for t, c in self.examples)
        return f"{shots}// {text}\n"

    @torch.no_grad()
    def translate(self, texts: Sequence[str], m: int) -> list[list[Candidate]]:
        results = []
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        for text in texts:
            enc = self.tokenizer(self.prompt(text), return_tensors="pt").to(self.device)
            out = self.model.generate(
                **enc, num_beams=m, num_return_sequences=m, max_new_tokens=self.max_new_tokens, do_sample=False,
                length_penalty=0.0, early_stopping=True, output_scores=True, return_dict_in_generate=True,
                pad_token_id=pad,
            )
            scores = out.sequences_scores.tolist() if out.sequences_scores is not None else [0.0] * m
            prompt_len = enc["input_ids"].shape[1]
            scored: dict[tuple[str, ...], tuple[str, float]] = {}
            for seq, score in zip(out.sequences, scores):
                code = self.tokenizer.decode(seq[prompt_len:], skip_special_tokens=True).split("\n")[0].strip()
                key = canonical(code)
                weight = float(torch.tensor(score).exp())
                if key in scored:
                    scored[key] = (scored[key][0], scored[key][1] + weight)
                else:
                    scored[key] = (code, weight)
            results.append(normalise(scored, m) if scored else [Candidate(";", 0.0)])
        return results
