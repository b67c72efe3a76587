/* The standard CLIP BPE vocabulary, shipped inside the library, for checkpoints that carry no tokenizer
 * (open_clip state dicts, TorchScript and OpenAI archives).
 *
 * data/clip_bpe_merges.zip holds OpenAI's merges.txt as Hugging Face ships it with openai/clip-vit-* (the first
 * line "#version: 0.2", then 48894 merges; sha256 of merges.txt 9fd691f7...299051a); it is linked into the library
 * (.incbin in clip_vocab.c). The vocabulary is derived from the merges exactly as OpenAI's SimpleTokenizer and
 * transformers' CLIPTokenizer do: the 256 byte symbols (GPT-2 bytes_to_unicode order), the same with "</w>", one
 * token per merge, then <|startoftext|> 49406 and <|endoftext|> 49407 — 49408 ids, identical to the vocab.json /
 * tokenizer.json of openai/clip-vit-base-patch32. The tokenizer.json built from it has the normaliser,
 * pre-tokeniser and post-processor of those files. */
#ifndef CLXP_IO_CLIP_VOCAB_H
#define CLXP_IO_CLIP_VOCAB_H

#include <stddef.h>

#include "clxp.h"

#define CLIP_VOCAB_SIZE 49408

/* A tokenizer.json document (malloc'd, NUL-terminated) for the bundled vocabulary. */
clxp_status clip_vocab_tokenizer_json(char **out, size_t *len, clxp_error *err);

/* The same from a merges.txt in memory (optional "#version" first line; "a b" per line); `what` names it in
 * messages. Exactly 48894 merges are required (the CLIP vocabulary size follows from them). */
clxp_status clip_vocab_from_merges(const char *merges, size_t len, const char *what, char **out, size_t *out_len,
                                   clxp_error *err);

#endif
