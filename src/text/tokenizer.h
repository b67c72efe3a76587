/*
 * Byte-level BPE tokenizer driven by a Hugging Face `tokenizer.json` (the "fast" tokenizer file).
 *
 * One implementation serves CLIP (NFC + whitespace collapsing + lowercase, a Split regex, ByteLevel,
 * `</w>` end-of-word suffix), RoBERTa (CLAP's text tower) and GPT-2 (MS-CLAP). It reproduces the Rust
 * `tokenizers` library step by step:
 *
 *   1. added tokens with `normalized: false` are cut out of the raw text (leftmost-longest match,
 *      honouring each token's lstrip / rstrip / single_word flags);
 *   2. every remaining piece is normalized (NFC, NFD, NFKC, NFKD, Lowercase, Replace, Strip, Prepend,
 *      ByteLevel, Sequence) and added tokens with `normalized: true` are cut out of the result;
 *   3. pre-tokenizers split the pieces into words (Split with a regex or a literal and any of the five
 *      delimiter behaviours plus `invert`; ByteLevel with or without the GPT-2 regex and
 *      `add_prefix_space`; Sequence);
 *   4. the BPE model turns every word into ids (ranked merges, `continuing_subword_prefix`,
 *      `end_of_word_suffix`, unk token, `fuse_unk`, `ignore_merges`);
 *   5. truncation keeps room for the special tokens the post-processor adds (HF truncates the content to
 *      max_length - number of added tokens), then the post-processor (RobertaProcessing, BertProcessing,
 *      TemplateProcessing, ByteLevel, Sequence) adds them, then padding.
 *
 * Unsupported features are refused at load time with CLXP_ERR_UNSUPPORTED and a message naming them
 * (e.g. `tokenizer.json: unsupported pre_tokenizer type "Metaspace"`): other models than BPE,
 * `byte_fallback: true`, a non-zero `dropout`, other normalizer/pre-tokenizer/post-processor types.
 * Malformed files (bad JSON, missing or mistyped fields, merges naming tokens that are not in the
 * vocabulary, bad regexes) give CLXP_ERR_FORMAT; every message starts with the file name.
 *
 * Regexes are compiled with PCRE2 (UTF + UCP, JIT when available). The Oniguruma classes that HF uses
 * are kept exact by rewriting `\s` / `\S` to the Unicode White_Space property and `\w` / `\W` (outside
 * character classes) to Oniguruma's Letter|Mark|Number|Connector_Punctuation.
 *
 * Known divergences from HF tokenizers (none affects the shipped CLIP / RoBERTa / GPT-2 files or their
 * goldens):
 *   - Unicode tables come from utf8proc and PCRE2, HF uses the Rust crates' tables: characters assigned
 *     in different Unicode versions may normalize, case-fold or match `\p{..}` differently.
 *   - Lowercase uses utf8proc's simple mapping per code point plus Rust's one unconditional multi-char
 *     mapping (U+0130 'İ' -> "i" U+0307), which is what Rust's `char::to_lowercase` gives. Like HF, no
 *     context-dependent rule (final sigma) is applied.
 *   - Regex syntax is PCRE2's, not Oniguruma's: patterns using Oniguruma-only syntax (e.g. `\h` = hex
 *     digit) either fail to compile (CLXP_ERR_FORMAT) or mean something else. `\W` inside a character
 *     class keeps PCRE2's meaning.
 *   - An added token whose rstrip swallows the start of the next added-token match: HF emits overlapping
 *     pieces; we drop the overlapping match.
 *   - A single pre-tokenized word longer than TOK_BPE_CHUNK bytes (64 KiB, no space in it) is run through
 *     BPE in 64 KiB pieces, so tokens can differ next to the cuts; HF merges the whole word (and takes
 *     seconds for a 1 MB one). Shorter words are exact.
 *   - HF reads the ids of added tokens from the model vocabulary or assigns the next free ids, ignoring the
 *     "id" written in added_tokens (it only warns on a mismatch); we do the same and log a warning.
 *
 * Input text must be valid UTF-8 (as a Rust &str is): invalid UTF-8 gives CLXP_ERR_INVALID with the
 * byte offset, nothing is replaced. Texts longer than TOK_MAX_TEXT_BYTES give CLXP_ERR_LIMIT.
 * Cost is linear in the text: BPE uses a priority queue per word, and the pipeline is depth first, so with
 * truncation nothing after the last token kept is pre-tokenized or merged (a 1 MB label takes a few tens of
 * milliseconds; only normalizers, which see whole pieces, still read all of it).
 *
 * Thread safety: a loaded tokenizer is immutable (tok_add_special_token excepted) and tok_encode may be
 * called on it from any number of threads at once; each call allocates its own scratch memory.
 */
#ifndef CLXP_TEXT_TOKENIZER_H
#define CLXP_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "clxp.h"

/* Longest text tok_encode accepts (labels are short; this bounds the scratch memory of one call). */
#define TOK_MAX_TEXT_BYTES ((size_t)16 << 20)
/* The normalizers and byte-level steps of one encoding may produce at most this many times (the text's length +
 * 4096) bytes in all (CLXP_ERR_LIMIT beyond): real pipelines make a few times the text (CLIP: ~5x); a hostile
 * tokenizer.json chaining doubling steps (ByteLevel, Replace) would otherwise grow it exponentially. */
#define TOK_MAX_EXPANSION 64
/* Token ids in tokenizer.json must be below this. */
#define TOK_MAX_ID (1 << 24)
/* Longest word BPE merges in one piece (see the divergences above). */
#define TOK_BPE_CHUNK ((size_t)64 << 10)

typedef struct clxp_tokenizer clxp_tokenizer;

/* Load tokenizer.json. The pad token comes from the sibling special_tokens_map.json or, failing that,
 * tokenizer_config.json (`pad_token`, a string or {"content": ...}), as transformers does; failing both,
 * from tokenizer.json's own `padding.pad_id`. */
clxp_status tok_load(const char *tokenizer_json_path, clxp_tokenizer **out, clxp_error *err);
/* Same from a buffer (no sibling files are read); `what` names the source in messages. */
clxp_status tok_load_buffer(const char *json, size_t len, const char *what, clxp_tokenizer **out, clxp_error *err);
void tok_free(clxp_tokenizer *t);

typedef struct tok_encode_opts {
    int add_special_tokens; /* run the post-processor (CLIP: BOS ... EOS, RoBERTa: <s> ... </s>) */
    int max_length;         /* 0: no truncation; else at most this many tokens, added specials included */
    int pad_to;             /* 0: no padding; else pad with pad_id up to this length (never truncates) */
    int pad_id;             /* -1: the tokenizer's own pad id (tok_pad_id) */
} tok_encode_opts;

/* The CLIP / CLAP convention: specials, truncation and padding to 77 with the tokenizer's pad id. */
#define TOK_OPTS_CONTEXT77 ((tok_encode_opts){1, 77, 77, -1})

/*
 * Tokenize text[0..len) (valid UTF-8; NUL bytes are ordinary characters). opts NULL means
 * {add_special_tokens = 1, no truncation, no padding}. Writes the ids into ids[0..*n_out) and, when mask
 * is not NULL, the attention mask (1 for tokens, 0 for padding). ids/mask hold `cap` entries; if the
 * result does not fit, returns CLXP_ERR_LIMIT with *n_out set to the capacity needed.
 * Padding without a pad id (opts->pad_id = -1 and tok_pad_id() = -1) is CLXP_ERR_INVALID; so is a
 * max_length smaller than the number of special tokens the post-processor adds.
 *
 * MS-CLAP (GPT-2) reproduces microsoft/CLAP's call with: tok_add_special_token(t, "!", ...) once, then
 * encode text + " <|endoftext|>" with {add_special_tokens = 0, max_length = 0, pad_to = 77, pad_id = 0}.
 */
clxp_status tok_encode(const clxp_tokenizer *t, const char *text, size_t len, const tok_encode_opts *opts, int32_t *ids,
                       int32_t *mask, int cap, int *n_out, clxp_error *err);

/* Register a special token the way transformers' add_special_tokens does (special, not normalized, no
 * strip flags): it is then cut out of every text before BPE. Its id is its vocabulary id when the
 * vocabulary has it, else the next free id. Not thread-safe: call before sharing the tokenizer. */
clxp_status tok_add_special_token(clxp_tokenizer *t, const char *content, int *id_out, clxp_error *err);

int tok_token_to_id(const clxp_tokenizer *t, const char *token); /* added tokens first, then the vocab; -1 */
const char *tok_id_to_token(const clxp_tokenizer *t, int id);    /* NULL if unknown; owned by t */
int tok_pad_id(const clxp_tokenizer *t);                         /* -1 if unknown */
int tok_vocab_size(const clxp_tokenizer *t);                     /* largest id + 1 (vocab and added tokens) */
int tok_num_special_tokens(const clxp_tokenizer *t);             /* tokens the post-processor adds (CLIP: 2) */

#endif
