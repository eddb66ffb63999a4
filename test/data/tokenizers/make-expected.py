#!/usr/bin/env python3
"""Writes expected.json: the token ids Hugging Face's own libraries give for
each text of texts.json, for each tokenizer folder (tokenizer.json +
tokenizer_config.json), so Lathe's tokenizer is tested against HF and not
against itself.

    python3 make-expected.py OUTFILE TOKDIR... [--texts texts.json]

TOKDIR is a folder such as ~/.cache/lathe/tokenizers/llama2 (what
scripts/fetch-tokenizers.sh writes); its basename names it in the output.
Needs `tokenizers`; `transformers` is used too where installed (AutoTokenizer
ids are recorded beside the tokenizers ids, so a disagreement between the two
libraries shows up in the data instead of being hidden).
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import sys

import tokenizers


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def cases_from_tokenizers(folder, texts):
    # The tokenizer.json alone: its normalizer, pre-tokenizer, model, added
    # tokens and post-processor (which adds BOS where the template says so).
    tok = tokenizers.Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    out = []
    for text in texts:
        with_special = tok.encode(text, add_special_tokens=True).ids
        without = tok.encode(text, add_special_tokens=False).ids
        out.append({
            "text": text,
            "ids": with_special,
            "ids_no_special": without,
            "tokens_no_special": tok.encode(text, add_special_tokens=False).tokens,
            # Decoding what encoding gave, keeping and skipping special tokens.
            "decoded": tok.decode(with_special, skip_special_tokens=False),
            "decoded_skip_special": tok.decode(with_special, skip_special_tokens=True),
            "decoded_no_special": tok.decode(without, skip_special_tokens=False),
        })
    return out


def cases_from_transformers(folder, texts):
    try:
        import transformers
    except ImportError:
        return None, None
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    out = []
    for text in texts:
        with_special = tok(text, add_special_tokens=True)["input_ids"]
        without = tok(text, add_special_tokens=False)["input_ids"]
        out.append({
            "text": text,
            "ids": with_special,
            "ids_no_special": without,
            "decoded": tok.decode(with_special, skip_special_tokens=False),
            "decoded_skip_special": tok.decode(with_special, skip_special_tokens=True),
        })
    info = {
        "class": type(tok).__name__,
        "bos_token": tok.bos_token,
        "eos_token": tok.eos_token,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
    }
    return out, info


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outfile")
    parser.add_argument("tokdirs", nargs="+")
    parser.add_argument("--texts", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "texts.json"))
    args = parser.parse_args()

    with open(args.texts, encoding="utf-8") as f:
        texts = json.load(f)
    assert all(isinstance(t, str) for t in texts), "texts.json: a list of strings"

    versions = {"tokenizers": tokenizers.__version__,
                "python": platform.python_version()}
    try:
        import transformers
        versions["transformers"] = transformers.__version__
    except ImportError:
        versions["transformers"] = None

    result = {
        "provenance": {
            "generated_by": "test/data/tokenizers/make-expected.py",
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "host": platform.node(),
            "versions": versions,
            "texts_sha256": sha256(args.texts),
        },
        "texts": texts,
        "tokenizers": {},
    }
    for folder in args.tokdirs:
        name = os.path.basename(os.path.normpath(folder))
        files = {f: sha256(os.path.join(folder, f))
                 for f in ("tokenizer.json", "tokenizer_config.json")
                 if os.path.isfile(os.path.join(folder, f))}
        entry = {"files_sha256": files,
                 "tokenizers": cases_from_tokenizers(folder, texts)}
        auto, info = cases_from_transformers(folder, texts)
        if auto is not None:
            entry["transformers"] = auto
            entry["transformers_info"] = info
            differ = [c["text"] for c, a in zip(entry["tokenizers"], auto)
                      if c["ids"] != a["ids"]
                      or c["ids_no_special"] != a["ids_no_special"]]
            entry["transformers_differs_on"] = differ
            if differ:
                print(f"{name}: AutoTokenizer differs from tokenizers on "
                      f"{len(differ)} texts", file=sys.stderr)
        result["tokenizers"][name] = entry
        print(f"{name}: {len(texts)} texts", file=sys.stderr)

    with open(args.outfile, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=True, indent=1)
        f.write("\n")
    print(f"wrote {args.outfile} ({versions})", file=sys.stderr)


if __name__ == "__main__":
    main()
