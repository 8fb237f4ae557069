"""ByteTokenizer: UTF-8 bytes as tokens (ids 0-255), plus BOS (256, "<|bos|>") and EOS (257, "<|endoftext|>").

Lossless for any text, no training, no files: the tokenizer of the BitLM examples and the one
:func:`bitmodels.gguf_io.export_gguf` writes into GGUF metadata (as a GPT-2 style byte-level BPE
vocabulary with no effective merges, so llama.cpp produces the same ids).
"""

from __future__ import annotations

from typing import Iterable, List

BOS_ID = 256
EOS_ID = 257
BOS_TOKEN = "<|bos|>"
EOS_TOKEN = "<|endoftext|>"  # the text llama.cpp recognises as end of generation


class ByteTokenizer:
    """``encode(text) -> [ids]`` / ``decode(ids) -> text``; ``vocab_size == 258``."""

    vocab_size = 258
    bos_token_id = BOS_ID
    eos_token_id = EOS_ID

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
