"""ByteTokenizer: UTF-8 bytes as tokens (ids 0-255), plus BOS (256, "<|bos|>") and EOS (257, "<|endoftext|>").

Lossless for any text, no training, no files: the tokenizer of the BitLM examples and the one
:func:`bitmodels.gguf_io.export_gguf` writes into GGUF metadata (as a GPT-2 style byte-level BPE
vocabulary with no effective merges, so llama.cpp produces the same ids).
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence, Union

BOS_ID = 256
EOS_ID = 257
BOS_TOKEN = "<|bos|>"
EOS_TOKEN = "<|endoftext|>"  # the text llama.cpp recognises as end of generation


class ByteTokenizer:
    """``encode(text) -> [ids]`` / ``decode(ids) -> text``; ``vocab_size == 258``.

    ``tok(texts, padding=True, return_tensors="pt")`` pads a batch as a Hugging Face tokenizer does
    (``input_ids`` and ``attention_mask``), for :meth:`bitmodels.BitLM.generate` and training; see
    :meth:`__call__`. ``padding_side`` is ``"right"`` by default, as in transformers: set it (or pass
    ``padding_side="left"``) for generation, which refuses right padding. Padding uses
    ``pad_token_id`` (EOS by default, transformers' usual choice; the mask hides it either way).
    """

    vocab_size = 258
    bos_token_id = BOS_ID
    eos_token_id = EOS_ID
    pad_token_id = EOS_ID
    padding_side = "right"

    def __call__(self, text: Union[str, Sequence[str]], padding: Union[bool, str] = False,
                 padding_side: Optional[str] = None, return_tensors: Optional[str] = None,
                 add_bos: bool = False, add_eos: bool = False) -> Dict[str, object]:
        """Hugging Face's tokenizer call: ``{"input_ids": ..., "attention_mask": ...}`` for one text
        (lists of ints) or a list of texts (lists of lists; with ``padding=True`` or ``"longest"``
        every row is padded to the longest with ``pad_token_id``, mask 0 there, on ``padding_side``
        (``"left"``/``"right"``, default the attribute ``padding_side``)). ``return_tensors="pt"``
        gives int64 tensors ``[1, T]`` (one text) or ``[B, T]``, so ``model.generate(**tok(texts,
        padding=True, padding_side="left", return_tensors="pt"), max_new_tokens=n)`` works.

        Raises:
            ValueError: ``text`` neither a str nor a list of str; an unknown ``padding`` (only True,
            False, ``"longest"``), ``padding_side`` or ``return_tensors`` (only None and ``"pt"``);
            texts of different lengths without padding with ``return_tensors="pt"``.
        """
        single = isinstance(text, str)
        texts = [text] if single else text
        if isinstance(texts, (bytes, bytearray)) or not isinstance(texts, Sequence) \
                or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"ByteTokenizer: text must be a str or a list of str, got {type(text).__name__}")
        if padding not in (True, False, "longest", "do_not_pad"):
            raise ValueError(f"ByteTokenizer: padding must be True, False or 'longest', got {padding!r}")
        side = self.padding_side if padding_side is None else padding_side
        if side not in ("left", "right"):
            raise ValueError(f"ByteTokenizer: padding_side must be 'left' or 'right', got {side!r}")
        if return_tensors not in (None, "pt"):
            raise ValueError(f"ByteTokenizer: return_tensors must be None or 'pt', got {return_tensors!r}")
        rows = [self.encode(t, add_bos=add_bos, add_eos=add_eos) for t in texts]
        masks = [[1] * len(r) for r in rows]
        if padding in (True, "longest") and rows:
            width = max(len(r) for r in rows)
            for i, r in enumerate(rows):
                pad = width - len(r)
                if side == "left":
                    rows[i], masks[i] = [self.pad_token_id] * pad + r, [0] * pad + masks[i]
                else:
                    rows[i], masks[i] = r + [self.pad_token_id] * pad, masks[i] + [0] * pad
        if return_tensors == "pt":
            import torch

            if len({len(r) for r in rows}) > 1:
                raise ValueError("ByteTokenizer: texts of different lengths need padding=True for "
                                 "return_tensors='pt'")
            return {"input_ids": torch.tensor(rows, dtype=torch.int64).reshape(len(rows), -1),
                    "attention_mask": torch.tensor(masks, dtype=torch.int64).reshape(len(rows), -1)}
        if single:
            return {"input_ids": rows[0], "attention_mask": masks[0]}
        return {"input_ids": rows, "attention_mask": masks}

    def batch_decode(self, sequences: Iterable[Iterable[int]], skip_special_tokens: bool = True) -> List[str]:
        """``[decode(ids) for ids in sequences]`` (rows of a ``[B, T]`` tensor included)."""
        return [self.decode(ids, skip_special_tokens=skip_special_tokens) for ids in sequences]

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> List[int]:
        if not isinstance(text, str):
            raise ValueError(f"ByteTokenizer.encode: expected str, got {type(text).__name__}")
        ids = list(text.encode("utf-8"))
        return ([BOS_ID] if add_bos else []) + ids + ([EOS_ID] if add_eos else [])

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Text of ``ids`` (invalid UTF-8 sequences become U+FFFD; ids >= 256 are special).

        Raises:
            ValueError: a negative id.
        """
        out = bytearray()
        for i in ids:
            i = int(i)
            if i < 0:
                raise ValueError(f"ByteTokenizer.decode: negative token id {i}")
            if i < 256:
                out.append(i)
            elif not skip_special_tokens:
                out += (BOS_TOKEN if i == BOS_ID else EOS_TOKEN if i == EOS_ID else f"<|{i}|>").encode()
        return out.decode("utf-8", errors="replace")
